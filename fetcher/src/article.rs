//! The article document written to the stream, its id rules and text cleaning.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde::Serialize;
use xxhash_rust::xxh3::xxh3_128;

/// Longest article id kept as is; longer ids are hashed.
pub const MAX_ID_LEN: usize = 200;

/// One raw article, serialised as the stream entry's `data` field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Article {
    pub id: String,
    pub title: String,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
}

impl Article {
    /// Builds an article from raw fields: cleans title and text, picks the id from the candidates
    /// (first non-empty one, else a hash of title and text) and sanitises it.
    pub fn build(
        id_candidates: &[Option<&str>],
        title: &str,
        text: &str,
        link: Option<&str>,
        source: &str,
        published: Option<&str>,
    ) -> Article {
        let title = clean_text(title);
        let text = clean_text(text);
        let link = link.map(str::trim).filter(|l| !l.is_empty()).map(str::to_string);
        let id = id_candidates
            .iter()
            .flatten()
            .map(|s| s.trim())
            .find(|s| !s.is_empty())
            .map(sanitize_id)
            .unwrap_or_else(|| content_hash(&title, &text));
        let published = published.and_then(normalize_date);
        Article { id, title, text, link, source: source.to_string(), published }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an article always serialises")
    }
}

/// Hex xxh3-128 of `title \n text`: the id of an article without one.
pub fn content_hash(title: &str, text: &str) -> String {
    let mut buf = Vec::with_capacity(title.len() + text.len() + 1);
    buf.extend_from_slice(title.as_bytes());
    buf.push(b'\n');
    buf.extend_from_slice(text.as_bytes());
    format!("{:032x}", xxh3_128(&buf))
}

/// Keeps an id of 1..=200 bytes of printable ASCII without spaces or braces (the pipeline stores
/// the article as `doc:{<id>}`, a hash tag); hashes anything else (xxh3-128 hex of the raw id, so
/// the same raw id always maps to the same id).
pub fn sanitize_id(raw: &str) -> String {
    let ok = !raw.is_empty() && raw.len() <= MAX_ID_LEN && raw.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'{' && b != b'}');
    if ok {
        raw.to_string()
    } else {
        format!("{:032x}", xxh3_128(raw.as_bytes()))
    }
}

/// Normalises a date to RFC 3339 (UTC, seconds); `None` when the date cannot be read.
pub fn normalize_date(raw: &str) -> Option<String> {
    parse_date(raw).map(|d| d.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// Reads a date as feeds and replay files write it: RFC 3339, RFC 2822 (also with a wrong weekday
/// or a `UTC` zone) and a few common forms (`YYYY-MM-DD HH:MM:SS`, `YYYY-MM-DDTHH:MM:SS` without
/// zone = UTC, `YYYY-MM-DD`). Also feed-rs's timestamp parser, so feeds and replays agree.
pub fn parse_date(raw: &str) -> Option<DateTime<Utc>> {
    let s = raw.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        Some(d.with_timezone(&Utc))
    } else if let Ok(d) = DateTime::parse_from_rfc2822(s) {
        Some(d.with_timezone(&Utc))
    } else if let Some(d) = parse_rfc2822_lenient(s) {
        Some(d)
    } else if let Ok(n) = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S") {
        Some(n.and_utc())
    } else if let Ok(n) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S") {
        Some(n.and_utc())
    } else if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        Some(d.and_hms_opt(0, 0, 0)?.and_utc())
    } else {
        None
    }
}

/// RFC 2822 dates as feeds really write them: a wrong weekday, or a zone name chrono does not know
/// (`UTC`, `Z`). The weekday is dropped and such zones are read as +0000.
fn parse_rfc2822_lenient(s: &str) -> Option<DateTime<Utc>> {
    let without_day = match s.split_once(',') {
        Some((_, rest)) => rest.trim(),
        None => s,
    };
    let mut parts: Vec<&str> = without_day.split_whitespace().collect();
    if let Some(last) = parts.last_mut() {
        if last.eq_ignore_ascii_case("UTC") || last.eq_ignore_ascii_case("Z") {
            *last = "+0000";
        }
    }
    DateTime::parse_from_rfc2822(&parts.join(" ")).ok().map(|d| d.with_timezone(&Utc))
}

/// Strips HTML tags (dropping `<script>`/`<style>` contents and comments), decodes HTML entities
/// and collapses whitespace to single spaces.
pub fn clean_text(raw: &str) -> String {
    let stripped = strip_tags(raw);
    let decoded = decode_entities(&stripped);
    collapse_whitespace(&decoded)
}

fn collapse_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split(|c: char| c.is_whitespace() || c == '\u{a0}').filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Removes tags. A `<` starts a tag only when followed by a letter, `/`, `!` or `?`, so text like
/// `a < b` survives. Block-level boundaries become spaces so words do not run together.
fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('<') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let starts_tag = after.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '/' || c == '!' || c == '?');
        if !starts_tag {
            out.push('<');
            rest = after;
            continue;
        }
        if let Some(body) = after.strip_prefix("!--") {
            // comment: skip to -->
            match body.find("-->") {
                Some(end) => rest = &body[end + 3..],
                None => rest = "",
            }
            out.push(' ');
            continue;
        }
        let Some(end) = after.find('>') else {
            // an unterminated tag: drop the rest
            rest = "";
            break;
        };
        let tag = &after[..end];
        rest = &after[end + 1..];
        let name: String = tag.chars().take_while(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
        if is_block_tag(&name) {
            out.push(' ');
        }
        if (name == "script" || name == "style") && !tag.ends_with('/') {
            let close = format!("</{name}");
            let lower = rest.to_ascii_lowercase();
            match lower.find(&close) {
                Some(i) => {
                    let after_close = &rest[i..];
                    rest = match after_close.find('>') {
                        Some(j) => &after_close[j + 1..],
                        None => "",
                    };
                }
                None => rest = "",
            }
        }
    }
    out.push_str(rest);
    out
}

/// Tags that separate words (block-level and line breaks); inline tags such as `<b>` do not,
/// so `<b>4.5%</b>.` reads `4.5%.`.
pub fn is_block_tag(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "p" | "div"
            | "br"
            | "hr"
            | "li"
            | "ul"
            | "ol"
            | "dl"
            | "dt"
            | "dd"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "table"
            | "tr"
            | "td"
            | "th"
            | "thead"
            | "tbody"
            | "blockquote"
            | "pre"
            | "section"
            | "article"
            | "header"
            | "footer"
            | "nav"
            | "aside"
            | "main"
            | "figure"
            | "figcaption"
            | "img"
            | "script"
            | "style"
            | "title"
            | "address"
            | "center"
            | "form"
            | "iframe"
            | "video"
            | "audio"
            | "source"
            | "body"
            | "html"
            | "head"
    )
}

/// Named entities decoded besides numeric ones (`&#39;`, `&#x2019;`).
fn named_entity(name: &str) -> Option<&'static str> {
    Some(match name {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        "nbsp" => " ",
        "ndash" => "\u{2013}",
        "mdash" => "\u{2014}",
        "lsquo" => "\u{2018}",
        "rsquo" => "\u{2019}",
        "ldquo" => "\u{201c}",
        "rdquo" => "\u{201d}",
        "hellip" => "\u{2026}",
        "bull" => "\u{2022}",
        "middot" => "\u{b7}",
        "copy" => "\u{a9}",
        "reg" => "\u{ae}",
        "trade" => "\u{2122}",
        "euro" => "\u{20ac}",
        "pound" => "\u{a3}",
        "yen" => "\u{a5}",
        "cent" => "\u{a2}",
        "deg" => "\u{b0}",
        "times" => "\u{d7}",
        "eacute" => "\u{e9}",
        "egrave" => "\u{e8}",
        "aacute" => "\u{e1}",
        "agrave" => "\u{e0}",
        "oacute" => "\u{f3}",
        "uacute" => "\u{fa}",
        "iacute" => "\u{ed}",
        "ntilde" => "\u{f1}",
        "ccedil" => "\u{e7}",
        "auml" => "\u{e4}",
        "ouml" => "\u{f6}",
        "uuml" => "\u{fc}",
        "szlig" => "\u{df}",
        _ => return None,
    })
}

/// Decodes `&name;`, `&#NNN;` and `&#xHH;`; anything unknown is kept verbatim.
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let semi = after.find(';').filter(|&i| i > 0 && i <= 32);
        let decoded = semi.and_then(|i| {
            let name = &after[..i];
            let ch = if let Some(num) = name.strip_prefix('#') {
                let code = if let Some(hex) = num.strip_prefix('x').or_else(|| num.strip_prefix('X')) {
                    u32::from_str_radix(hex, 16).ok()
                } else {
                    num.parse::<u32>().ok()
                };
                code.and_then(char::from_u32).map(|c| c.to_string())
            } else {
                named_entity(name).map(str::to_string)
            };
            ch.map(|c| (c, i))
        });
        match decoded {
            Some((c, i)) => {
                out.push_str(&c);
                rest = &after[i + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_markup_is_text() {
        // Found by the input fuzzer: an entity that decodes to '<' is content, not a tag.
        assert_eq!(clean_text("&#60;b&#62; is text, &lt;i&gt; too <b>bold</b>"), "<b> is text, <i> too bold");
    }

    #[test]
    fn cleans_html_and_whitespace() {
        assert_eq!(clean_text("  <p>Hello&nbsp;<b>world</b></p>\n\n<p>again &amp; again</p> "), "Hello world again & again");
        assert_eq!(clean_text("a < b and c > d"), "a < b and c > d");
        assert_eq!(clean_text("x<script>var a = '<p>';</script>y<style>p{}</style>z"), "x y z");
        assert_eq!(clean_text("before<!-- a <b> comment -->after"), "before after");
        assert_eq!(clean_text("it&#39;s &#x2019;quoted&rsquo; &unknown; &"), "it's \u{2019}quoted\u{2019} &unknown; &");
        assert_eq!(clean_text("line<br/>break"), "line break");
        assert_eq!(clean_text("<p>rate at <b>4.5%</b>.</p><p>Next</p>"), "rate at 4.5%. Next");
        assert_eq!(clean_text("<a href=\"x\">link</a>ed"), "linked");
    }

    #[test]
    fn ids_are_sanitised() {
        assert_eq!(sanitize_id("https://example.com/a?b=1"), "https://example.com/a?b=1");
        let spaced = sanitize_id("has space");
        assert_eq!(spaced.len(), 32);
        assert!(spaced.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(spaced, sanitize_id("has space"), "hashing is deterministic");
        assert_eq!(sanitize_id(&"x".repeat(200)), "x".repeat(200));
        assert_eq!(sanitize_id(&"x".repeat(201)).len(), 32);
        assert_eq!(sanitize_id("caf\u{e9}").len(), 32);
        assert_eq!(sanitize_id("a{b}").len(), 32, "braces would break the doc key's hash tag");
    }

    #[test]
    fn id_falls_back_to_hash_of_title_and_text() {
        let a = Article::build(&[None, Some("  ")], "<b>T</b>", "body", None, "s", None);
        assert_eq!(a.id, content_hash("T", "body"));
        let b = Article::build(&[None, Some("guid-1")], "T", "body", Some(" http://l "), "s", None);
        assert_eq!(b.id, "guid-1");
        assert_eq!(b.link.as_deref(), Some("http://l"));
    }

    #[test]
    fn dates_normalise_to_rfc3339_utc() {
        assert_eq!(normalize_date("Tue, 10 Jun 2025 14:30:00 GMT").as_deref(), Some("2025-06-10T14:30:00Z"));
        assert_eq!(normalize_date("Tue, 10 Jun 2025 16:30:00 +0200").as_deref(), Some("2025-06-10T14:30:00Z"));
        assert_eq!(normalize_date("Mon, 10 Jun 2025 14:30:00 UTC").as_deref(), Some("2025-06-10T14:30:00Z"));
        assert_eq!(normalize_date("2025-06-10T14:30:00-04:00").as_deref(), Some("2025-06-10T18:30:00Z"));
        assert_eq!(normalize_date("2025-06-10 14:30:00").as_deref(), Some("2025-06-10T14:30:00Z"));
        assert_eq!(normalize_date("2025-06-10").as_deref(), Some("2025-06-10T00:00:00Z"));
        assert_eq!(normalize_date("yesterday"), None);
        assert_eq!(normalize_date(""), None);
    }

    #[test]
    fn json_omits_unknown_link_and_date() {
        let a = Article::build(&[Some("x")], "T", "B", None, "synthetic", None);
        assert_eq!(a.to_json(), r#"{"id":"x","title":"T","text":"B","source":"synthetic"}"#);
    }
}
