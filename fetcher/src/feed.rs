//! RSS 2.0 / RSS 1.0 (RDF) / Atom parsing into [`Article`]s, with a streaming, namespace-aware
//! reader (quick-xml).

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use crate::article::{decode_entities, is_block_tag, Article};

const NS_ATOM: &[u8] = b"http://www.w3.org/2005/Atom";
const NS_RSS1: &[u8] = b"http://purl.org/rss/1.0/";
const NS_RSS09: &[u8] = b"http://my.netscape.com/rdf/simple/0.9/";
const NS_CONTENT: &[u8] = b"http://purl.org/rss/1.0/modules/content/";
const NS_DC: &[u8] = b"http://purl.org/dc/elements/1.1/";

/// Why an item or document was skipped; the value is the metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// An item with neither a title nor a link.
    NoTitleOrLink,
    /// The document is not well-formed XML (items completed before the error are kept).
    InvalidXml,
    /// Well-formed XML whose root is not `rss`, `rdf:RDF` or `feed`.
    NotAFeed,
}

impl Malformed {
    pub fn label(self) -> &'static str {
        match self {
            Malformed::NoTitleOrLink => "no_title_or_link",
            Malformed::InvalidXml => "invalid_xml",
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

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Rss,
    Atom,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Field {
    Title,
    Link,
    Guid,
    Id,
    Description,
    Content,
    Published,
    Updated,
    DcDate,
}

#[derive(Default)]
struct ItemBuilder {
    title: Option<String>,
    link: Option<String>,
    guid: Option<String>,
    id: Option<String>,
    description: Option<String>,
    content: Option<String>,
    published: Option<String>,
    updated: Option<String>,
    dc_date: Option<String>,
}

impl ItemBuilder {
    fn slot(&mut self, f: Field) -> &mut Option<String> {
        match f {
            Field::Title => &mut self.title,
            Field::Link => &mut self.link,
            Field::Guid => &mut self.guid,
            Field::Id => &mut self.id,
            Field::Description => &mut self.description,
            Field::Content => &mut self.content,
            Field::Published => &mut self.published,
            Field::Updated => &mut self.updated,
            Field::DcDate => &mut self.dc_date,
        }
    }

    fn finish(self, kind: Kind, source: &str, index: usize) -> Result<Article, Skipped> {
        let nonempty = |o: &Option<String>| o.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        let title = nonempty(&self.title);
        let link = nonempty(&self.link);
        let title_clean = title.as_deref().map(crate::article::clean_text).unwrap_or_default();
        if title_clean.is_empty() && link.is_none() {
            let what = if kind == Kind::Rss { "item" } else { "entry" };
            return Err(Skipped { reason: Malformed::NoTitleOrLink, detail: format!("{what} #{index} has no title and no link") });
        }
        let text = nonempty(&self.description).or_else(|| nonempty(&self.content)).unwrap_or_default();
        let published = nonempty(&self.published).or_else(|| nonempty(&self.dc_date)).or_else(|| nonempty(&self.updated));
        let guid = nonempty(&self.guid);
        let id = nonempty(&self.id);
        Ok(Article::build(
            &[guid.as_deref(), id.as_deref(), link.as_deref()],
            title.as_deref().unwrap_or(""),
            &text,
            link.as_deref(),
            source,
            published.as_deref(),
        ))
    }
}

fn ns_is(ns: &ResolveResult, uri: &[u8]) -> bool {
    matches!(ns, ResolveResult::Bound(n) if n.as_ref() == uri)
}

fn ns_unbound(ns: &ResolveResult) -> bool {
    matches!(ns, ResolveResult::Unbound)
}

/// Which item field an element child of an item starts, if any.
fn field_of(kind: Kind, ns: &ResolveResult, local: &[u8]) -> Option<Field> {
    if ns_is(ns, NS_CONTENT) && local == b"encoded" {
        return Some(Field::Content);
    }
    if ns_is(ns, NS_DC) && local == b"date" {
        return Some(Field::DcDate);
    }
    match kind {
        Kind::Rss if ns_unbound(ns) || ns_is(ns, NS_RSS1) || ns_is(ns, NS_RSS09) => match local {
            b"title" => Some(Field::Title),
            b"link" => Some(Field::Link),
            b"guid" => Some(Field::Guid),
            b"description" => Some(Field::Description),
            b"pubDate" => Some(Field::Published),
            _ => None,
        },
        Kind::Atom if ns_unbound(ns) || ns_is(ns, NS_ATOM) => match local {
            b"title" => Some(Field::Title),
            b"id" => Some(Field::Id),
            b"summary" => Some(Field::Description),
            b"content" => Some(Field::Content),
            b"published" => Some(Field::Published),
            b"updated" => Some(Field::Updated),
            // `link` is an attribute-carrying element, handled separately.
            _ => None,
        },
        _ => None,
    }
}

/// The `href` of an Atom `<link>` if it is the alternate (or rel-less) link.
fn atom_link_href(reader: &NsReader<&[u8]>, e: &BytesStart) -> Option<String> {
    let mut href = None;
    let mut rel = None;
    for attr in e.attributes().flatten() {
        let (_, local) = reader.resolve_attribute(attr.key);
        let value = match attr.unescape_value() {
            Ok(v) => v.into_owned(),
            Err(_) => String::from_utf8_lossy(&attr.value).into_owned(),
        };
        match local.as_ref() {
            b"href" => href = Some(value),
            b"rel" => rel = Some(value),
            _ => {}
        }
    }
    match rel.as_deref() {
        None | Some("alternate") => href,
        _ => None,
    }
}

/// Decodes feed bytes to text: UTF-8, or ISO-8859-1 / windows-1252 when declared as such and the
/// bytes are not valid UTF-8 (each byte is its code point), else lossy UTF-8.
pub fn decode_body(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.trim_start_matches('\u{feff}').to_string(),
        Err(_) => {
            let head = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).to_ascii_lowercase();
            if head.contains("iso-8859-1") || head.contains("latin1") || head.contains("windows-1252") {
                bytes.iter().map(|&b| b as char).collect()
            } else {
                String::from_utf8_lossy(bytes).into_owned()
            }
        }
    }
}

/// Parses an RSS or Atom document. `source` becomes each article's `source` field.
pub fn parse_feed(xml: &str, source: &str) -> ParsedFeed {
    let mut out = ParsedFeed::default();
    let mut reader = NsReader::from_str(xml);
    reader.config_mut().trim_text(false);
    reader.config_mut().expand_empty_elements = false;

    let mut depth: usize = 0;
    let mut root_checked = false;
    // (kind, depth of the item element, builder, item index)
    let mut item: Option<(Kind, usize, ItemBuilder)> = None;
    let mut items_seen = 0usize;
    // (field, depth of the field element, accumulated text)
    let mut field: Option<(Field, usize, String)> = None;

    loop {
        let ev = match reader.read_resolved_event() {
            Ok(ev) => ev,
            Err(e) => {
                let pos = reader.error_position();
                out.skipped.push(Skipped { reason: Malformed::InvalidXml, detail: format!("XML error at byte {pos}: {e}") });
                return out;
            }
        };
        match ev {
            (ns, Event::Start(e)) => {
                depth += 1;
                let local = e.local_name();
                let local = local.as_ref();
                if !root_checked {
                    root_checked = true;
                    let is_feed = (local == b"rss" && ns_unbound(&ns))
                        || local == b"RDF"
                        || (local == b"feed" && (ns_is(&ns, NS_ATOM) || ns_unbound(&ns)));
                    if !is_feed {
                        let name = String::from_utf8_lossy(local).into_owned();
                        out.skipped.push(Skipped {
                            reason: Malformed::NotAFeed,
                            detail: format!("root element <{name}> is not rss, rdf:RDF or feed"),
                        });
                        return out;
                    }
                }
                if let Some((_, _, text)) = field.as_mut() {
                    // markup inside a field (Atom xhtml content): block elements separate words
                    if is_block_tag(&String::from_utf8_lossy(local)) {
                        text.push(' ');
                    }
                    continue;
                }
                match item.as_mut() {
                    None => {
                        if local == b"item" && !ns_is(&ns, NS_ATOM) {
                            item = Some((Kind::Rss, depth, ItemBuilder::default()));
                        } else if local == b"entry" && (ns_is(&ns, NS_ATOM) || ns_unbound(&ns)) {
                            item = Some((Kind::Atom, depth, ItemBuilder::default()));
                        }
                    }
                    Some((kind, item_depth, builder)) => {
                        if depth == *item_depth + 1 {
                            if *kind == Kind::Atom && local == b"link" && (ns_is(&ns, NS_ATOM) || ns_unbound(&ns)) {
                                if builder.link.is_none() {
                                    builder.link = atom_link_href(&reader, &e);
                                }
                            } else if let Some(f) = field_of(*kind, &ns, local) {
                                field = Some((f, depth, String::new()));
                            }
                        }
                    }
                }
            }
            (ns, Event::Empty(e)) => {
                if !root_checked {
                    out.skipped.push(Skipped { reason: Malformed::NotAFeed, detail: "the document is a single empty element".into() });
                    return out;
                }
                if let Some((_, _, text)) = field.as_mut() {
                    if is_block_tag(&String::from_utf8_lossy(e.local_name().as_ref())) {
                        text.push(' ');
                    }
                    continue;
                }
                if let Some((Kind::Atom, item_depth, builder)) = item.as_mut() {
                    let local = e.local_name();
                    if depth == *item_depth
                        && local.as_ref() == b"link"
                        && (ns_is(&ns, NS_ATOM) || ns_unbound(&ns))
                        && builder.link.is_none()
                    {
                        builder.link = atom_link_href(&reader, &e);
                    }
                }
            }
            (_, Event::End(e)) => {
                if let Some((f, fdepth, mut text)) = field.take() {
                    if depth == fdepth {
                        if let Some((_, _, builder)) = item.as_mut() {
                            let slot = builder.slot(f);
                            if slot.is_none() {
                                *slot = Some(text);
                            }
                        }
                    } else {
                        if is_block_tag(&String::from_utf8_lossy(e.local_name().as_ref())) {
                            text.push(' ');
                        }
                        field = Some((f, fdepth, text));
                    }
                }
                if let Some((kind, _, builder)) = item.take_if(|(_, d, _)| *d == depth) {
                    items_seen += 1;
                    match builder.finish(kind, source, items_seen) {
                        Ok(a) => out.articles.push(a),
                        Err(s) => out.skipped.push(s),
                    }
                }
                depth = depth.saturating_sub(1);
            }
            (_, Event::Text(t)) => {
                if let Some((_, _, text)) = field.as_mut() {
                    // XML layer: lenient unescape (unknown entities such as &nbsp; are kept and
                    // decoded with the HTML layer later).
                    let raw = String::from_utf8_lossy(t.as_ref());
                    text.push_str(&decode_entities(&raw));
                }
            }
            (_, Event::CData(c)) => {
                if let Some((_, _, text)) = field.as_mut() {
                    text.push_str(&String::from_utf8_lossy(&c.into_inner()));
                }
            }
            (_, Event::Eof) => break,
            _ => {}
        }
    }
    if !root_checked {
        out.skipped.push(Skipped { reason: Malformed::NotAFeed, detail: "the document has no root element".into() });
    } else if depth != 0 || item.is_some() {
        out.skipped.push(Skipped { reason: Malformed::InvalidXml, detail: "the document ends inside an element (truncated?)".into() });
    }
    out
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

    #[test]
    fn rss_items() {
        let p = parse_feed(RSS, "http://feed");
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
        let p = parse_feed(ATOM, "src");
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
        let p = parse_feed(broken, "s");
        assert_eq!(p.articles.len(), 1);
        assert_eq!(p.skipped.len(), 1);
        assert_eq!(p.skipped[0].reason, Malformed::InvalidXml);

        let truncated = "<rss><channel><item><title>ok</title><link>http://a</link></item><item><title>cut";
        let p = parse_feed(truncated, "s");
        assert_eq!(p.articles.len(), 1);
        assert_eq!(p.skipped[0].reason, Malformed::InvalidXml);

        let html = "<html><body>not a feed</body></html>";
        let p = parse_feed(html, "s");
        assert!(p.articles.is_empty());
        assert_eq!(p.skipped[0].reason, Malformed::NotAFeed);

        let p = parse_feed("just text", "s");
        assert_eq!(p.skipped[0].reason, Malformed::NotAFeed);
    }

    #[test]
    fn rdf_rss1() {
        let rdf = r#"<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="x"><title>c</title></channel>
<item rdf:about="http://r/1"><title>R1</title><link>http://r/1</link><description>d</description><dc:date>2025-01-02</dc:date></item></rdf:RDF>"#;
        let p = parse_feed(rdf, "s");
        assert_eq!(p.articles.len(), 1, "{:?}", p);
        assert_eq!(p.articles[0].title, "R1");
        assert_eq!(p.articles[0].published.as_deref(), Some("2025-01-02T00:00:00Z"));
    }

    #[test]
    fn latin1_bodies_decode() {
        let bytes = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><rss><channel><item><title>Caf\xe9</title><link>http://a</link></item></channel></rss>";
        let text = decode_body(bytes);
        let p = parse_feed(&text, "s");
        assert_eq!(p.articles[0].title, "Caf\u{e9}");
    }
}
