//! Parse speed of a feed document like a news site's (issue 14 point 2 asked for the figure when
//! the hand-written parser was replaced by feed-rs). Ignored by default: it times, it does not
//! check a rule. `cargo test --release -p agentic-fetcher feed_speed -- --ignored --nocapture`

use std::time::Instant;

use crate::feed::parse_feed;

/// 60 items with the shape of a large news site's RSS: CDATA HTML descriptions, guids, RFC 2822
/// dates, dc:creator and media:thumbnail extensions, entities in titles.
fn news_site_rss() -> String {
    let mut s = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:media="http://search.yahoo.com/mrss/" xmlns:atom="http://www.w3.org/2005/Atom">
<channel><title>Example News - World</title><link>https://news.example/world</link><description>World news</description>
<atom:link href="https://news.example/world/rss.xml" rel="self" type="application/rss+xml"/><language>en-gb</language>
"#,
    );
    for i in 0..60 {
        s.push_str(&format!(
            r#"<item><title>Leaders meet in Geneva as talks on trade &amp; climate enter day {i}</title>
<description><![CDATA[<p>Delegations from <b>forty</b> countries met on Tuesday to discuss tariffs, emissions targets and the financing of adaptation projects in developing economies.</p><p>Officials said a draft text could be ready by Friday, although several sticking points remain over verification and the timetable for phasing out subsidies.</p>]]></description>
<link>https://news.example/world/article-{i}</link><guid isPermaLink="true">https://news.example/world/article-{i}</guid>
<pubDate>Tue, 10 Jun 2025 {:02}:30:00 GMT</pubDate><dc:creator>Staff reporter</dc:creator>
<media:thumbnail width="240" height="135" url="https://img.news.example/{i}.jpg"/></item>
"#,
            i % 24
        ));
    }
    s.push_str("</channel></rss>\n");
    s
}

#[test]
#[ignore = "a benchmark, not a check: run with --ignored --nocapture (bench/RESULTS.md, Feed parsing)"]
fn feed_speed() {
    let doc = news_site_rss();
    let runs = 2000;
    let mut articles = 0;
    for _ in 0..50 {
        articles = parse_feed(doc.as_bytes(), "https://news.example/world/rss.xml").articles.len();
    }
    assert_eq!(articles, 60);
    let t = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(parse_feed(std::hint::black_box(doc.as_bytes()), "https://news.example/world/rss.xml"));
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "feed_speed: {} bytes, 60 items, {runs} parses in {secs:.3}s: {:.1} us/document, {:.1} MB/s, {:.0} items/s",
        doc.len(),
        secs / runs as f64 * 1e6,
        doc.len() as f64 * runs as f64 / secs / 1e6,
        60.0 * runs as f64 / secs
    );
}
