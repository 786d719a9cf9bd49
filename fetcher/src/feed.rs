//! Feed documents (RSS 0.9x / 1.0 / 2.0, Atom, JSON Feed) into [`Article`]s. feed-rs parses them;
//! this file holds our rules on top: which field becomes the id, the text and the date, which item
//! is skipped and why, and what is still read out of a document feed-rs rejects as a whole (a
//! server that cuts a feed short, a broken tag in the last item, an `<rss>` without a version).

use chrono::{DateTime, Utc};
use feed_rs::model::{Entry, Link};
use feed_rs::parser::{ParseErrorKind, ParseFeedError};
use quick_xml::events::Event;
use quick_xml::Reader;
use url::Url;

use crate::article::{parse_date, Article};

/// Why an item or document was skipped; the value is the metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// An item with neither a title nor a link.
    NoTitleOrLink,
    /// The document is not well-formed XML (items completed before the error are kept).
    InvalidXml,
    /// A JSON document that does not parse as a JSON Feed.
    InvalidJson,
    /// A document with no feed root: not `rss`, `rdf:RDF`, `feed` or a JSON Feed object.
    NotAFeed,
}

impl Malformed {
    pub fn label(self) -> &'static str {
        match self {
            Malformed::NoTitleOrLink => "no_title_or_link",
            Malformed::InvalidXml => "invalid_xml",
            Malformed::InvalidJson => "invalid_json",
            Malformed::NotAFeed => "not_a_feed",
        }
    }
}

/// A skipped item or document, with a human-readable detail for the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub reason: Malformed,
    pub detail: String,
}

/// The outcome of parsing one feed document.
#[derive(Debug, Default)]
pub struct ParsedFeed {
    pub articles: Vec<Article>,
    pub skipped: Vec<Skipped>,
}

/// Parses a feed document as fetched (raw bytes: feed-rs decodes them by the XML declaration's
/// encoding). `source` is the feed's URL: each article's `source` field and the base that relative
/// links are resolved against.
pub fn parse_feed(body: &[u8], source: &str) -> ParsedFeed {
    let base = Url::parse(source).ok();
    let mut out = ParsedFeed::default();
    let parsed = match parse_repaired(body, base.as_ref()) {
        // An undeclared legacy encoding (Latin-1 bytes with no XML declaration saying so) fails
        // feed-rs's UTF-8 decoder, reported as any of several errors; the lossy UTF-8 text keeps
        // every ASCII field readable.
        Err(_) if std::str::from_utf8(body).is_err() => parse_repaired(String::from_utf8_lossy(body).as_bytes(), base.as_ref()),
        other => other,
    };
    match parsed {
        Ok(feed) => map_entries(feed.entries, source, base.as_ref(), &mut out),
        Err((err, tried)) => return rejected(&tried, err, base.as_ref(), source),
    }
    out
}

fn parse_document(body: &[u8], base: Option<&Url>) -> Result<feed_rs::model::Feed, ParseFeedError> {
    feed_rs::parser::Builder::new()
        .base_uri(base.map(Url::as_str))
        // An empty id tells map_entries the feed had none, so our fallbacks (link, then a hash of
        // title and text) apply instead of feed-rs's own hash or random UUID.
        .id_generator(|_, _, _| String::new())
        .timestamp_parser(parse_date)
        .sanitize_content(false)
        .build()
        .parse(body)
}

/// feed-rs, and again with `version="2.0"` added to an `<rss>` root without one: common, and meant
/// as 2.0, but feed-rs insists on the attribute. The error comes with the document last tried.
fn parse_repaired(body: &[u8], base: Option<&Url>) -> Result<feed_rs::model::Feed, (ParseFeedError, Vec<u8>)> {
    match parse_document(body, base) {
        Err(ParseFeedError::ParseError(ParseErrorKind::NoFeedRoot)) => {
            let Some(at) = scan_xml(body).rss_without_version else {
                return Err((ParseFeedError::ParseError(ParseErrorKind::NoFeedRoot), body.to_vec()));
            };
            let mut fixed = Vec::with_capacity(body.len() + 16);
            fixed.extend_from_slice(&body[..at]);
            fixed.extend_from_slice(b" version=\"2.0\"");
            fixed.extend_from_slice(&body[at..]);
            parse_document(&fixed, base).map_err(|e| (e, fixed))
        }
        other => other.map_err(|e| (e, body.to_vec())),
    }
}

/// The outcome for a document feed-rs rejected: the reason, and the items that are still there.
fn rejected(body: &[u8], err: ParseFeedError, base: Option<&Url>, source: &str) -> ParsedFeed {
    let mut out = ParsedFeed::default();
    let reason = match err {
        ParseFeedError::ParseError(ParseErrorKind::NoFeedRoot) => {
            let detail = match scan_xml(body).root {
                Some(name) => format!("root element <{name}> is not rss, rdf:RDF or feed"),
                None => "the document has no feed root (XML or JSON)".to_string(),
            };
            Skipped { reason: Malformed::NotAFeed, detail }
        }
        ParseFeedError::JsonSerde(e) => Skipped { reason: Malformed::InvalidJson, detail: format!("not a JSON Feed: {e}") },
        ParseFeedError::JsonUnsupportedVersion(v) => {
            Skipped { reason: Malformed::NotAFeed, detail: format!("JSON Feed version {v} is not supported") }
        }
        other => return rejected_keep_complete_items(body, &other.to_string(), base, source),
    };
    out.skipped.push(reason);
    out
}

/// Keeps the items that were complete before the document broke: the text up to the last
/// `</item>` or `</entry>` before the first XML error, with the elements still open closed, parsed
/// again.
fn rejected_keep_complete_items(body: &[u8], why: &str, base: Option<&Url>, source: &str) -> ParsedFeed {
    let mut out = ParsedFeed::default();
    let scan = scan_xml(body);
    let detail = match &scan.error {
        Some(e) => e.clone(),
        None => why.to_string(),
    };
    if let Some((end, open)) = scan.last_complete_item {
        let mut prefix = body[..end].to_vec();
        for name in open.iter().rev() {
            prefix.extend_from_slice(b"</");
            prefix.extend_from_slice(name.as_bytes());
            prefix.push(b'>');
        }
        if let Ok(feed) = parse_document(&prefix, base) {
            map_entries(feed.entries, source, base, &mut out);
        }
    }
    out.skipped.push(Skipped { reason: Malformed::InvalidXml, detail });
    out
}

/// What a pass of quick-xml over a rejected document tells: its root element, where an `<rss>`
/// root lacks a version, the first well-formedness error, and the end of the last complete item
/// before it with the elements then open.
#[derive(Default)]
struct XmlScan {
    root: Option<String>,
    rss_without_version: Option<usize>,
    error: Option<String>,
    last_complete_item: Option<(usize, Vec<String>)>,
}

fn scan_xml(body: &[u8]) -> XmlScan {
    let mut scan = XmlScan::default();
    let mut reader = Reader::from_reader(body);
    let mut open: Vec<String> = Vec::new();
    loop {
        let before = reader.buffer_position();
        match reader.read_event() {
            Err(e) => {
                scan.error = Some(format!("XML error at byte {}: {e}", reader.error_position()));
                break;
            }
            Ok(Event::Start(e)) => {
                if scan.root.is_none() {
                    let name = e.name();
                    scan.root = Some(name.as_ref().to_string());
                    if name.as_ref() == "rss" && !e.attributes().flatten().any(|a| a.key.as_ref() == "version") {
                        // just after "<rss", where the attribute can go
                        scan.rss_without_version = usize::try_from(before).ok().map(|p| p + 4);
                    }
                }
                open.push(e.name().as_ref().to_string());
            }
            Ok(Event::Empty(e)) if scan.root.is_none() => {
                scan.root = Some(e.name().as_ref().to_string());
            }
            Ok(Event::End(e)) => {
                open.pop();
                let local = e.local_name();
                if local.as_ref() == "item" || local.as_ref() == "entry" {
                    if let Ok(end) = usize::try_from(reader.buffer_position()) {
                        scan.last_complete_item = Some((end, open.clone()));
                    }
                }
            }
            Ok(Event::Eof) => {
                if !open.is_empty() {
                    scan.error = Some("the document ends inside an element (truncated?)".to_string());
                }
                break;
            }
            Ok(_) => {}
        }
    }
    scan
}

/// Our article rules over feed-rs's entries: an entry with neither a title nor a link is skipped;
/// the text is the summary (RSS description, Atom summary, JSON Feed summary) or else the content;
/// the date is the published one or else the updated one; the id is the feed's (guid, Atom id,
/// JSON Feed id), else the link, else a hash of title and text.
fn map_entries(entries: Vec<Entry>, source: &str, base: Option<&Url>, out: &mut ParsedFeed) {
    for (i, entry) in entries.into_iter().enumerate() {
        let nonempty = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
        let title = nonempty(entry.title.map(|t| t.content));
        let link = entry.links.iter().find(|l| is_article_link(l)).map(|l| resolve(&l.href, base)).filter(|l| !l.is_empty());
        let title_clean = title.as_deref().map(crate::article::clean_text).unwrap_or_default();
        if title_clean.is_empty() && link.is_none() {
            out.skipped.push(Skipped { reason: Malformed::NoTitleOrLink, detail: format!("item #{} has no title and no link", i + 1) });
            continue;
        }
        let text = nonempty(entry.summary.map(|t| t.content)).or_else(|| nonempty(entry.content.and_then(|c| c.body))).unwrap_or_default();
        let published = entry.published.or(entry.updated).map(|d: DateTime<Utc>| d.to_rfc3339());
        let id = nonempty(Some(entry.id));
        out.articles.push(Article::build(
            &[id.as_deref(), link.as_deref()],
            title.as_deref().unwrap_or(""),
            &text,
            link.as_deref(),
            source,
            published.as_deref(),
        ));
    }
}

/// The link to the article itself: not a comments link, not Atom's `self`, `edit` or `enclosure`.
fn is_article_link(l: &Link) -> bool {
    l.target.is_none() && matches!(l.rel.as_deref(), None | Some("alternate")) && !l.href.trim().is_empty()
}

/// feed-rs resolves relative XML links against the base it is given, but not JSON Feed ones.
fn resolve(href: &str, base: Option<&Url>) -> String {
    let href = href.trim();
    match (Url::parse(href), base) {
        (Err(url::ParseError::RelativeUrlWithoutBase), Some(base)) => {
            base.join(href).map(String::from).unwrap_or_else(|_| href.to_string())
        }
        _ => href.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:atom="http://www.w3.org/2005/Atom">
<channel><title>Chan</title><link>http://chan/</link><description>channel text</description>
<atom:link href="http://chan/rss" rel="self"/>
<item><title>One &amp; only</title><link>http://x/1</link><guid isPermaLink="false">g-1</guid>
<description><![CDATA[<p>Hello <b>there</b></p>]]></description><pubDate>Tue, 10 Jun 2025 14:30:00 GMT</pubDate></item>
<item><title>Two</title><link>http://x/2</link><description>&lt;p&gt;Escaped &amp;amp; html&lt;/p&gt;</description>
<content:encoded>ignored body</content:encoded><dc:date>2025-06-11T08:00:00Z</dc:date></item>
<item><description>no title no link</description></item>
<item><title>Three</title><content:encoded><![CDATA[<div>Body only</div>]]></content:encoded></item>
</channel></rss>"#;

    fn parse(doc: &str, source: &str) -> ParsedFeed {
        parse_feed(doc.as_bytes(), source)
    }

    #[test]
    fn rss_items() {
        let p = parse(RSS, "http://feed");
        assert_eq!(p.articles.len(), 3, "{:?}", p);
        let a = &p.articles[0];
        assert_eq!(a.id, "g-1");
        assert_eq!(a.title, "One & only");
        assert_eq!(a.text, "Hello there");
        assert_eq!(a.link.as_deref(), Some("http://x/1"));
        assert_eq!(a.source, "http://feed");
        assert_eq!(a.published.as_deref(), Some("2025-06-10T14:30:00Z"));
        let b = &p.articles[1];
        assert_eq!(b.id, "http://x/2");
        assert_eq!(b.text, "Escaped & html");
        assert_eq!(b.published.as_deref(), Some("2025-06-11T08:00:00Z"));
        let c = &p.articles[2];
        assert_eq!(c.text, "Body only");
        assert_eq!(c.id, crate::article::content_hash("Three", "Body only"));
        assert_eq!(c.published, None);
        assert_eq!(p.skipped.len(), 1);
        assert_eq!(p.skipped[0].reason, Malformed::NoTitleOrLink);
        assert!(p.skipped[0].detail.contains("#3"), "{}", p.skipped[0].detail);
    }

    const ATOM: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>F</title><id>urn:feed</id>
<link href="http://site/"/>
<entry><title type="html">&lt;em&gt;Atom&lt;/em&gt; one</title><id>urn:uuid:1</id>
<link rel="self" href="http://site/self/1"/><link rel="alternate" href="http://site/1"/>
<summary>Short   summary</summary><content type="html">long</content>
<published>2025-06-10T10:00:00+02:00</published><updated>2025-06-12T00:00:00Z</updated></entry>
<entry><title>Xhtml</title><link href="http://site/2"/>
<content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>Para one.</p><p>Para two.</p></div></content>
<updated>2025-06-12T00:00:00Z</updated></entry>
</feed>"#;

    #[test]
    fn atom_entries() {
        let p = parse(ATOM, "src");
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        assert_eq!(p.articles.len(), 2);
        let a = &p.articles[0];
        assert_eq!(a.id, "urn:uuid:1");
        assert_eq!(a.title, "Atom one");
        assert_eq!(a.text, "Short summary");
        assert_eq!(a.link.as_deref(), Some("http://site/1"));
        assert_eq!(a.published.as_deref(), Some("2025-06-10T08:00:00Z"));
        let b = &p.articles[1];
        assert_eq!(b.id, "http://site/2");
        assert_eq!(b.text, "Para one. Para two.");
        assert_eq!(b.published.as_deref(), Some("2025-06-12T00:00:00Z"));
    }

    #[test]
    fn broken_and_foreign_documents() {
        let broken = "<rss><channel><item><title>ok</title><link>http://a</link></item><item><title>bad</titel></item></channel></rss>";
        let p = parse(broken, "s");
        assert_eq!(p.articles.len(), 1);
        assert_eq!(p.skipped.len(), 1);
        assert_eq!(p.skipped[0].reason, Malformed::InvalidXml);

        let truncated = "<rss><channel><item><title>ok</title><link>http://a</link></item><item><title>cut";
        let p = parse(truncated, "s");
        assert_eq!(p.articles.len(), 1);
        assert_eq!(p.skipped[0].reason, Malformed::InvalidXml);

        let html = "<html><body>not a feed</body></html>";
        let p = parse(html, "s");
        assert!(p.articles.is_empty());
        assert_eq!(p.skipped[0].reason, Malformed::NotAFeed);

        let p = parse("just text", "s");
        assert_eq!(p.skipped[0].reason, Malformed::NotAFeed);
    }

    #[test]
    fn rdf_rss1() {
        let rdf = r#"<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="x"><title>c</title></channel>
<item rdf:about="http://r/1"><title>R1</title><link>http://r/1</link><description>d</description><dc:date>2025-01-02</dc:date></item></rdf:RDF>"#;
        let p = parse(rdf, "s");
        assert_eq!(p.articles.len(), 1, "{:?}", p);
        assert_eq!(p.articles[0].title, "R1");
        assert_eq!(p.articles[0].published.as_deref(), Some("2025-01-02T00:00:00Z"));
    }

    #[test]
    fn latin1_bodies_decode() {
        let declared = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><rss><channel><item><title>Caf\xe9</title><link>http://a</link></item></channel></rss>";
        let p = parse_feed(declared, "s");
        assert_eq!(p.articles[0].title, "Caf\u{e9}");
        // windows-1252 puts punctuation at 0x80-0x9f, where Latin-1 has control characters
        let cp1252 = b"<?xml version=\"1.0\" encoding=\"windows-1252\"?><rss version=\"2.0\"><channel><item><title>It\x92s \x93quoted\x94</title><link>http://a</link></item></channel></rss>";
        assert_eq!(parse_feed(cp1252, "s").articles[0].title, "It\u{2019}s \u{201c}quoted\u{201d}");
        // undeclared non-UTF-8 bytes: the item is kept, the bad byte replaced
        let undeclared = b"<rss version=\"2.0\"><channel><item><title>Caf\xe9 au lait</title><link>http://a</link></item></channel></rss>";
        let p = parse_feed(undeclared, "s");
        assert_eq!(p.articles.len(), 1, "{p:?}");
        assert_eq!(p.articles[0].title, "Caf\u{fffd} au lait");
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn json_feed_items() {
        let source = "https://journal.example/feed.json";
        let p = parse_feed(&fixture("feed.json"), source);
        assert_eq!(p.articles.len(), 3, "{p:?}");
        let a = &p.articles[0];
        assert_eq!(a.id, "journal-0001");
        assert_eq!(a.title, "Ports reopen after the storm");
        assert_eq!(a.text, "Shipping resumed on Monday.", "the summary wins over content_html");
        assert_eq!(a.link.as_deref(), Some("https://journal.example/2025/06/ports"));
        assert_eq!(a.source, source);
        assert_eq!(a.published.as_deref(), Some("2025-06-14T08:00:00Z"));
        let b = &p.articles[1];
        assert_eq!(b.id, "journal-0002");
        assert_eq!(b.title, "Teenager wins the \"open\" chess title");
        assert_eq!(b.text, "She beat the defending champion & two grandmasters. Next: the world cup.");
        assert_eq!(b.link.as_deref(), Some("https://journal.example/2025/06/chess"), "relative url resolved against the feed");
        assert_eq!(b.published.as_deref(), Some("2025-06-15T18:45:00Z"), "date_modified stands in for a missing date_published");
        let c = &p.articles[2];
        assert_eq!(
            (c.id.as_str(), c.text.as_str(), c.link.as_deref(), c.published.as_deref()),
            ("journal-0003", "Open until 10pm from July.", None, None)
        );
        assert_eq!(p.skipped.len(), 1);
        assert_eq!(p.skipped[0].reason, Malformed::NoTitleOrLink);
        assert!(p.skipped[0].detail.contains("#4"), "{}", p.skipped[0].detail);
    }

    #[test]
    fn broken_json_documents() {
        for doc in ["{\"version\": \"https://jsonfeed.org/version/1.1\", \"title\": \"t\", \"items\": [", "{\"items\": 3}"] {
            let p = parse(doc, "https://j.example/feed.json");
            assert!(p.articles.is_empty(), "{doc}: {p:?}");
            assert_eq!(p.skipped.len(), 1, "{doc}: {p:?}");
            assert_eq!(p.skipped[0].reason, Malformed::InvalidJson, "{doc}: {p:?}");
        }
    }

    #[test]
    fn real_world_oddities() {
        let source = "https://gazette.example/feeds/rss.xml";
        let p = parse_feed(&fixture("oddities.xml"), source);
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        assert_eq!(p.articles.len(), 3, "{p:?}");

        let cdata = &p.articles[0];
        assert_eq!(cdata.title, "Mayor & council agree budget: rise <5% for 2026", "CDATA is text, `<5` is not a tag");
        assert_eq!(cdata.link.as_deref(), Some("https://gazette.example/news/budget-2026"), "root-relative link");
        assert_eq!(cdata.id, "https://gazette.example/news/budget-2026", "no guid: the resolved link is the id");
        assert_eq!(
            cdata.text, "The vote was 9\u{2013}2. Caf\u{e9} owners welcomed the \u{201c}small business\u{201d} relief \u{2026}",
            "HTML entities inside CDATA"
        );
        assert_eq!(cdata.published, None, "no date at all");

        let entities = &p.articles[1];
        assert_eq!(entities.title, "Festival draws 40,000 \u{2013} a record \u{1f389}", "numeric character references");
        assert_eq!(entities.link.as_deref(), Some("https://gazette.example/feeds/events/festival?day=2&lang=en"), "path-relative link");
        assert_eq!(entities.id, "gazette-festival-2025");
        assert_eq!(entities.text, "Crowds filled the park \u{2014} organisers said.", "escaped HTML with HTML-only entities");
        assert_eq!(entities.published.as_deref(), Some("2025-06-14T20:00:00Z"), "RFC 2822 with a UTC zone name");

        let weather = &p.articles[2];
        assert_eq!(weather.title, "Weather: sunny spells");
        assert_eq!(weather.text, "Highs of 24C.", "content:encoded without description, script dropped");
        assert_eq!(weather.published, None, "empty pubDate");
    }

    #[test]
    fn relative_links_without_a_base_stay_as_written() {
        let doc = r#"<rss version="2.0"><channel><item><title>T</title><link>/a/b</link></item></channel></rss>"#;
        let p = parse(doc, "not a url");
        assert_eq!(p.articles[0].link.as_deref(), Some("/a/b"));
    }
}
