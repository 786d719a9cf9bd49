//! Fuzz targets for everything the fetcher reads from outside (issue 13): RSS, Atom and JSON Feed documents
//! (any site on the Internet), their bytes in unknown encodings, HTML in titles and bodies, dates,
//! and CSV/JSONL replay files. The corpus is the test fixtures. Bounded in time
//! (agentic_tests::fuzz); `make fuzz` runs them longer.
//!
//! What must hold besides "never panics": every article that comes out serialises to a JSON
//! object with a non-empty id made only of the characters ids may hold.

use agentic_tests::fuzz::{fuzz, fuzz_text};

use crate::article::{clean_text, normalize_date, Article};
use crate::feed::parse_feed;
use crate::replay::{article_of, replay_csv, replay_jsonl, Record};

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn check(article: &Article) {
    assert!(!article.id.is_empty(), "an article always has an id: {article:?}");
    let json: serde_json::Value = serde_json::from_str(&article.to_json()).expect("an article serialises to JSON");
    assert!(json.is_object());
}

#[test]
fn rss_and_atom_documents() {
    let corpus: Vec<Vec<u8>> =
        ["rss.xml", "atom.xml", "broken.xml", "malformed.xml", "feed.json", "oddities.xml"].iter().map(|f| fixture(f)).collect();
    fuzz("fetcher: RSS/Atom document", &corpus, |b| {
        let parsed = parse_feed(b, "https://fuzz.example/feed");
        parsed.articles.iter().for_each(check);
        !parsed.articles.is_empty()
    });
}

#[test]
fn jsonl_replay_files() {
    fuzz("fetcher: JSONL replay file", &[fixture("articles.jsonl")], |b| {
        let mut articles = 0;
        replay_jsonl(b, &mut |rec| {
            if let Record::Ok(f) = rec {
                check(&article_of(f, "fuzz.jsonl", 1));
                articles += 1;
            }
            Ok(true)
        });
        articles > 0
    });
}

#[test]
fn csv_replay_files() {
    fuzz("fetcher: CSV replay file", &[fixture("articles.csv")], |b| {
        let mut articles = 0;
        let _ = replay_csv(
            b,
            &mut |rec| {
                if let Record::Ok(f) = rec {
                    check(&article_of(f, "fuzz.csv", 0));
                    articles += 1;
                }
                Ok(true)
            },
            "fuzz.csv",
        );
        articles > 0
    });
}

#[test]
fn html_text_and_dates() {
    let corpus = [
        "<p>Rates &amp; <b>markets</b>&#8217;s week&nbsp;&hellip;</p><script>x()</script>",
        "Plain words &#x1F600; &unknown; &#99999999999; <br/>line",
        "&#60;b&#62; is text, &lt;i&gt; too",
        "Tue, 10 Jun 2025 08:00:00 GMT",
        "2025-06-10T08:00:00+02:00",
        "2025-06-10 09:30:00",
    ];
    fuzz_text("fetcher: HTML text and dates", &corpus, |s| {
        let text = clean_text(s);
        // A '<' in the text comes from the input: as itself, or written as an entity (`&#60;`).
        assert!(!text.contains('<') || s.contains('<') || s.contains('&'), "tags are not invented");
        let _ = normalize_date(s);
        true
    });
}
