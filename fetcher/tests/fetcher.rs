//! End-to-end tests: the fetcher binary against real valkey-server processes (no module needed)
//! and a local feed server.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use agentic_tests::{make_temp_dir, Server};
use common::*;
use serde_json::json;

const T: Duration = Duration::from_secs(20);

fn plain_server() -> Server {
    Server::builder().no_module().start()
}

fn by_id(entries: &[Entry]) -> HashMap<String, serde_json::Value> {
    entries.iter().map(|e| (e.id.clone(), e.doc.clone())).collect()
}

fn write_jsonl(dir: &std::path::Path, name: &str, n: usize, prefix: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    let mut text = String::new();
    for i in 0..n {
        text.push_str(
            &json!({"id": format!("{prefix}-{i}"), "title": format!("Headline number {i}"), "text": format!("Body of article {i}.")})
                .to_string(),
        );
        text.push('\n');
    }
    std::fs::write(&path, text).expect("write jsonl");
    path
}

#[test]
fn rss_and_atom_items_become_documents() {
    let server = plain_server();
    let feeds = FeedServer::start();
    feeds.set("/rss.xml", &fixture_text("rss.xml"));
    feeds.set("/atom.xml", &fixture_text("atom.xml"));
    let (rss_url, atom_url) = (feeds.url("/rss.xml"), feeds.url("/atom.xml"));

    let mut f = Fetcher::start_no_metrics(&server.url(), &["rss", "--url", &rss_url, "--url", &atom_url, "--once"]);
    f.wait_success(T);

    let entries = read_stream(&mut server.conn(), "news_raw");
    assert_eq!(entries.len(), 5, "{entries:#?}\n{}", f.stderr());
    let docs = by_id(&entries);
    let heat_id = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(b"Heatwave grips the south\nTemperatures passed 40C on Sunday."));
    let expected = [
        json!({"id": "wire-0001", "title": "Central bank holds rates & signals cuts", "text": "Policymakers kept the benchmark rate at 4.5%. Markets rallied.",
               "link": "http://wire.example/markets/rates", "source": rss_url, "published": "2025-06-10T14:30:00Z"}),
        json!({"id": "http://wire.example/sports/transfer", "title": "Striker signs record contract", "text": "The deal is worth \u{a3}90m over five years.",
               "link": "http://wire.example/sports/transfer", "source": rss_url, "published": "2025-06-11T07:15:00Z"}),
        json!({"id": heat_id, "title": "Heatwave grips the south", "text": "Temperatures passed 40C on Sunday.", "source": rss_url}),
        json!({"id": "urn:uuid:0a1b2c3d-0001", "title": "Telescope spots water on exoplanet", "text": "Astronomers found vapour in the atmosphere.",
               "link": "http://science.example/articles/water", "source": atom_url, "published": "2025-06-12T08:00:00Z"}),
        json!({"id": "http://science.example/articles/fossil", "title": "Fossil rewrites bird history", "text": "A 150-million-year-old fossil. It has feathers.",
               "link": "http://science.example/articles/fossil", "source": atom_url, "published": "2025-06-13T08:00:00Z"}),
    ];
    for want in expected {
        let id = want["id"].as_str().unwrap();
        assert_eq!(docs.get(id), Some(&want), "document {id}; all: {docs:#?}");
    }
    // the dedup markers exist with the TTL
    let ttl: i64 = redis::cmd("TTL").arg("fetcher:seen:{news_raw}:wire-0001").query(&mut server.conn()).unwrap();
    assert!(ttl > 86000 && ttl <= 86400, "ttl {ttl}");
}

#[test]
fn json_feeds_and_relative_links_become_documents() {
    let server = plain_server();
    let feeds = FeedServer::start();
    feeds.set("/feed.json", &fixture_text("feed.json"));
    feeds.set("/news/rss.xml", &fixture_text("oddities.xml"));
    let (json_url, odd_url) = (feeds.url("/feed.json"), feeds.url("/news/rss.xml"));

    let mut f = Fetcher::start_no_metrics(&server.url(), &["rss", "--url", &json_url, "--url", &odd_url, "--once"]);
    f.wait_success(T);

    let entries = read_stream(&mut server.conn(), "news_raw");
    assert_eq!(entries.len(), 6, "3 JSON Feed items and 3 RSS items: {entries:#?}\n{}", f.stderr());
    let docs = by_id(&entries);
    // relative links resolve against the URL the feed was fetched from
    let chess_link = feeds.url("/2025/06/chess");
    let want = json!({"id": "journal-0002", "title": "Teenager wins the \"open\" chess title",
        "text": "She beat the defending champion & two grandmasters. Next: the world cup.",
        "link": chess_link, "source": json_url, "published": "2025-06-15T18:45:00Z"});
    assert_eq!(docs.get("journal-0002"), Some(&want), "all: {docs:#?}");
    let budget_link = feeds.url("/news/budget-2026");
    let budget = docs.get(&budget_link).unwrap_or_else(|| panic!("no document {budget_link}: {docs:#?}"));
    assert_eq!(budget["link"], json!(budget_link));
    assert_eq!(budget.get("published"), None, "an item without a date has no published field");
    let festival = &docs["gazette-festival-2025"];
    assert_eq!(festival["link"], json!(feeds.url("/news/events/festival?day=2&lang=en")));
}

#[test]
fn conditional_get_sends_validators_and_handles_304() {
    let server = plain_server();
    let feeds = FeedServer::start();
    feeds.set("/rss.xml", &fixture_text("rss.xml"));
    let url = feeds.url("/rss.xml");
    let f = Fetcher::start(&server.url(), &["rss", "--url", &url, "--interval", "0.2"]);

    wait_until(T, || feeds.requests("/rss.xml").len() >= 4, || format!("4 polls: {:?}", feeds.requests("/rss.xml")));
    let reqs = feeds.requests("/rss.xml");
    assert_eq!(reqs[0].if_none_match, None);
    assert_eq!(reqs[0].if_modified_since, None);
    assert_eq!(reqs[0].status, 200);
    for r in &reqs[1..] {
        assert_eq!(r.if_none_match.as_deref(), Some(feeds.etag("/rss.xml").as_str()), "{r:?}");
        assert_eq!(r.if_modified_since.as_deref(), Some(feeds.last_modified("/rss.xml").as_str()), "{r:?}");
        assert_eq!(r.status, 304);
    }
    f.wait_metric("fetcher_http_not_modified_total", T, |v| v >= 3.0);
    assert_eq!(f.metric(&format!("fetcher_articles_written_total{{source=\"{url}\"}}")), 3.0);
    assert!(f.metric(&format!("fetcher_feed_polls_total{{feed=\"{url}\"}}")) >= 4.0);
    assert_eq!(f.metric("fetcher_duplicates_total"), 0.0);
    assert_eq!(xlen(&mut server.conn(), "news_raw"), 3);
}

#[test]
fn no_duplicates_across_polls_and_runs() {
    let server = plain_server();
    let feeds = FeedServer::start();
    let v1 = fixture_text("rss.xml");
    feeds.set("/news.xml", &v1);
    let url = feeds.url("/news.xml");
    let mut conn = server.conn();

    let first = Fetcher::start(&server.url(), &["rss", "--url", &url, "--interval", "0.2"]);
    wait_until(T, || xlen(&mut conn, "news_raw") == 3, || first.stderr());

    // a changed feed (new ETag) with the three old items and one new one
    let v2 = v1.replace(
        "  </channel>",
        "    <item><title>Late breaking story</title><link>http://wire.example/late</link><guid>wire-0004</guid><description>New.</description></item>\n  </channel>",
    );
    assert_ne!(v1, v2);
    feeds.set("/news.xml", &v2);
    wait_until(T, || xlen(&mut conn, "news_raw") == 4, || first.stderr());
    let polls = feeds.requests("/news.xml").len();
    wait_until(T, || feeds.requests("/news.xml").len() >= polls + 3, || "three more polls".into());
    assert_eq!(xlen(&mut conn, "news_raw"), 4);
    assert!(first.metric("fetcher_process_dedup_skipped_total") >= 3.0, "{}", first.metrics());
    assert_eq!(first.metric("fetcher_duplicates_total"), 0.0);
    drop(first);

    // a second run (fresh process, no in-process memory): Valkey's dedup keys refuse all four
    let second = Fetcher::start(&server.url(), &["rss", "--url", &url, "--once", "--linger", "30"]);
    second.wait_metric("fetcher_source_done", T, |v| v == 1.0);
    assert_eq!(second.metric("fetcher_duplicates_total"), 4.0);
    assert_eq!(second.metric(&format!("fetcher_articles_written_total{{source=\"{url}\"}}")), 0.0);
    let entries = read_stream(&mut conn, "news_raw");
    assert_eq!(entries.len(), 4);
    assert_unique(&entries);
    assert!(entries.iter().any(|e| e.id == "wire-0004"));
}

#[test]
fn malformed_items_and_unreachable_feeds_are_counted() {
    let server = plain_server();
    let feeds = FeedServer::start();
    feeds.set("/malformed.xml", &fixture_text("malformed.xml"));
    feeds.set("/broken.xml", &fixture_text("broken.xml"));
    feeds.set("/page.html", "<html><body><p>Not a feed</p></body></html>");
    let missing = feeds.url("/missing.xml");
    let dead = format!("http://127.0.0.1:{}/feed.xml", agentic_tests::free_port());
    let (malformed, broken, page) = (feeds.url("/malformed.xml"), feeds.url("/broken.xml"), feeds.url("/page.html"));

    let f = Fetcher::start(
        &server.url(),
        &[
            "rss",
            "--url",
            &malformed,
            "--url",
            &broken,
            "--url",
            &page,
            "--url",
            &missing,
            "--url",
            &dead,
            "--interval",
            "0.3",
            "--timeout",
            "2",
        ],
    );
    // unreachable feeds are retried every interval
    f.wait_metric(&format!("fetcher_feed_errors_total{{feed=\"{dead}\"}}"), T, |v| v >= 2.0);
    f.wait_metric(&format!("fetcher_feed_errors_total{{feed=\"{missing}\"}}"), T, |v| v >= 2.0);
    wait_until(T, || feeds.requests("/broken.xml").len() >= 2 && feeds.requests("/malformed.xml").len() >= 2, || "second polls".into());

    // parsed once (later polls are 304), so each malformed item is counted once
    assert_eq!(f.metric("fetcher_malformed_total{reason=\"no_title_or_link\"}"), 2.0, "{}", f.metrics());
    assert_eq!(f.metric("fetcher_malformed_total{reason=\"invalid_xml\"}"), 1.0);
    assert_eq!(f.metric("fetcher_malformed_total{reason=\"not_a_feed\"}"), 1.0);
    assert_eq!(f.metric(&format!("fetcher_articles_written_total{{source=\"{malformed}\"}}")), 2.0);
    assert_eq!(f.metric(&format!("fetcher_articles_written_total{{source=\"{broken}\"}}")), 1.0);

    let entries = read_stream(&mut server.conn(), "news_raw");
    let titles: BTreeSet<&str> = entries.iter().map(|e| e.doc["title"].as_str().unwrap()).collect();
    assert_eq!(titles, BTreeSet::from(["Good item one", "", "Complete item before the error"]));
    let untitled = entries.iter().find(|e| e.doc["title"] == "").unwrap();
    assert_eq!(untitled.id, "http://messy.example/4");

    let log = f.stderr();
    assert!(log.contains("no_title_or_link") && log.contains("item #2 has no title and no link"), "{log}");
    assert!(log.contains("invalid_xml"), "{log}");
    assert!(log.contains("HTTP 404"), "{log}");
}

#[test]
fn replay_csv_and_jsonl_skip_bad_lines() {
    let server = plain_server();
    let mut conn = server.conn();

    let csv = fixture("articles.csv");
    let f =
        Fetcher::start(&server.url(), &["replay", "--file", csv.to_str().unwrap(), "--rate", "0", "--stream", "csv_raw", "--linger", "30"]);
    f.wait_metric("fetcher_source_done", T, |v| v == 1.0);
    assert_eq!(f.metric("fetcher_malformed_total{reason=\"invalid_csv\"}"), 1.0, "{}", f.metrics());
    assert_eq!(f.metric("fetcher_malformed_total{reason=\"empty\"}"), 1.0);
    assert_eq!(f.metric("fetcher_articles_written_total{source=\"articles.csv\"}"), 3.0);
    let log = f.stderr();
    assert!(log.contains("line 5") && log.contains("invalid_csv"), "{log}");
    assert!(log.contains("line 6") && log.contains("empty"), "{log}");
    drop(f);
    let docs = by_id(&read_stream(&mut conn, "csv_raw"));
    assert_eq!(
        docs["csv-1"],
        json!({"id": "csv-1", "title": "Parliament passes budget", "text": "The budget, which raises spending, passed 310 to 290.",
               "link": "http://csv.example/1", "source": "articles.csv", "published": "2025-06-10T08:00:00Z"})
    );
    assert_eq!(docs["csv-2"]["text"], "A description over two lines with markup");
    assert_eq!(docs["csv-2"]["title"], "Quoted, with comma");
    assert_eq!(docs["csv-2"]["published"], "2025-06-10T09:30:00Z");
    let hashed = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(b"No id column value\nHashed id"));
    assert_eq!(docs[&hashed]["title"], "No id column value");
    assert!(docs[&hashed].get("link").is_none() && docs[&hashed].get("published").is_none());

    let jsonl = fixture("articles.jsonl");
    let f = Fetcher::start(
        &server.url(),
        &["replay", "--file", jsonl.to_str().unwrap(), "--rate", "0", "--stream", "jsonl_raw", "--linger", "30"],
    );
    f.wait_metric("fetcher_source_done", T, |v| v == 1.0);
    assert_eq!(f.metric("fetcher_malformed_total{reason=\"invalid_json\"}"), 1.0, "{}", f.metrics());
    assert_eq!(f.metric("fetcher_malformed_total{reason=\"not_an_object\"}"), 1.0);
    assert_eq!(f.metric("fetcher_malformed_total{reason=\"empty\"}"), 1.0);
    assert_eq!(f.metric("fetcher_articles_written_total{source=\"articles.jsonl\"}"), 4.0);
    let log = f.stderr();
    assert!(log.contains("line 3: skipped (invalid_json)"), "{log}");
    assert!(log.contains("line 5: skipped (not_an_object)"), "{log}");
    assert!(log.contains("line 7: skipped (empty)"), "{log}");
    let entries = read_stream(&mut conn, "jsonl_raw");
    let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    let no_id = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(b"No id here\nUses the description key"));
    assert_eq!(ids, vec!["0", "1", "ag-2", no_id.as_str()], "replay keeps the file order");
    assert_eq!(entries[0].doc["title"], "Harbour Cranes Idle as Dockworkers Walk Out (Fixture Wire)");
    assert_eq!(entries[0].doc["source"], "articles.jsonl");
    assert!(entries[0].doc.get("label").is_none());
    assert_eq!(entries[3].doc["link"], "http://jsonl.example/x");
    assert_eq!(entries[3].doc["published"], "2025-06-10T14:30:00Z");
}

#[test]
fn replay_paces_at_the_requested_rate() {
    let server = plain_server();
    let dir = make_temp_dir("fetcher-rate");
    let file = write_jsonl(&dir, "fifty.jsonl", 50, "rate");
    let started = Instant::now();
    let mut f = Fetcher::start_no_metrics(&server.url(), &["replay", "--file", file.to_str().unwrap(), "--rate", "100"]);
    f.wait_success(T);
    let wall = started.elapsed();
    let entries = read_stream(&mut server.conn(), "news_raw");
    assert_eq!(entries.len(), 50);
    // 50 articles at 100/s: 49 gaps of 10 ms between the first and the last write
    let span = entry_ms(&entries[49].entry_id) - entry_ms(&entries[0].entry_id);
    assert!((440..=1200).contains(&span), "first-to-last span {span} ms");
    assert!(wall >= Duration::from_millis(480), "took {wall:?}");
    // steady, not bursts: no 100 ms window holds more than ~12 writes
    let ms: Vec<u64> = entries.iter().map(|e| entry_ms(&e.entry_id)).collect();
    for (i, &t) in ms.iter().enumerate() {
        let in_window = ms[i..].iter().take_while(|&&u| u < t + 100).count();
        assert!(in_window <= 13, "{in_window} writes within 100 ms after entry {i}: {ms:?}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn generator_is_deterministic_for_a_seed() {
    let run = |seed: &str| {
        let server = plain_server();
        let mut f = Fetcher::start_no_metrics(&server.url(), &["generate", "--count", "30", "--seed", seed, "--rate", "0"]);
        f.wait_success(T);
        read_stream(&mut server.conn(), "news_raw")
    };
    let a = run("11");
    let b = run("11");
    let c = run("12");
    assert_eq!(a.len(), 30);
    let docs = |v: &[Entry]| v.iter().map(|e| e.doc.clone()).collect::<Vec<_>>();
    assert_eq!(docs(&a), docs(&b));
    let ids: Vec<String> = a.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, (0..30).map(|n| format!("syn-11-{n}")).collect::<Vec<_>>());
    assert_ne!(a.iter().map(|e| &e.doc["title"]).collect::<Vec<_>>(), c.iter().map(|e| &e.doc["title"]).collect::<Vec<_>>());
    for e in &a {
        assert_eq!(e.doc["source"], "synthetic");
        assert!(e.doc["title"].as_str().unwrap().len() > 10 && e.doc["text"].as_str().unwrap().len() > 40, "{:?}", e.doc);
    }
}

#[test]
fn backpressure_pauses_at_max_backlog_until_the_group_reads() {
    let server = plain_server();
    let mut conn = server.conn();
    let _: () = redis::cmd("XGROUP").arg("CREATE").arg("news_raw").arg("agentic").arg("$").arg("MKSTREAM").query(&mut conn).unwrap();
    let dir = make_temp_dir("fetcher-bp");
    let file = write_jsonl(&dir, "hundred.jsonl", 100, "bp");
    let f = Fetcher::start(
        &server.url(),
        &["--max-backlog", "20", "replay", "--file", file.to_str().unwrap(), "--rate", "0", "--linger", "60"],
    );

    // it stops at 20 unread entries and stays there
    wait_until(T, || xlen(&mut conn, "news_raw") >= 20, || f.stderr());
    f.wait_metric("fetcher_backpressure_paused", T, |v| v == 1.0);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(xlen(&mut conn, "news_raw"), 20, "{}", f.stderr());
    assert_eq!(f.metric("fetcher_backpressure_pauses_total"), 1.0);
    assert_eq!(f.metric("fetcher_backlog"), 20.0);

    // the pipeline consumes slowly; the fetcher follows, never above 20 unread
    let mut read: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while read.len() < 100 {
        assert!(Instant::now() < deadline, "only {} read\n{}", read.len(), f.stderr());
        let reply: redis::Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("agentic")
            .arg("c1")
            .arg("COUNT")
            .arg(5)
            .arg("STREAMS")
            .arg("news_raw")
            .arg(">")
            .query(&mut conn)
            .unwrap();
        let mut batch: Vec<(String, String)> = Vec::new(); // (entry id, article id)
        if let redis::Value::Array(streams) = reply {
            for s in streams {
                let redis::Value::Array(parts) = s else { continue };
                let redis::Value::Array(items) = &parts[1] else { continue };
                for item in items {
                    let (eid, fields): (String, Vec<String>) = redis::from_redis_value_ref(item).unwrap();
                    batch.push((eid, fields[1].clone()));
                }
            }
        }
        for (eid, id) in &batch {
            let _: i64 = redis::cmd("XACK").arg("news_raw").arg("agentic").arg(eid).query(&mut conn).unwrap();
            read.push(id.clone());
        }
        let unread = xlen(&mut conn, "news_raw") - read.len() as u64;
        assert!(unread <= 20, "{unread} unread entries > max-backlog 20");
        std::thread::sleep(Duration::from_millis(15));
    }
    f.wait_metric("fetcher_source_done", T, |v| v == 1.0);
    assert_eq!(xlen(&mut conn, "news_raw"), 100);
    let mut sorted = read.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 100, "no duplicates");
    assert_eq!(read, (0..100).map(|i| format!("bp-{i}")).collect::<Vec<_>>());
    assert!(f.metric("fetcher_backpressure_pauses_total") >= 2.0, "{}", f.metrics());
    assert!(f.metric("fetcher_backpressure_paused_seconds_total") > 0.3);
    assert!(f.stderr().contains("backpressure: backlog 20 >= max-backlog 20; pausing"));
    let _ = std::fs::remove_dir_all(dir);
}

/// Starts a server on `dir` with AOF `appendfsync always` (and a unix socket in the dir), on
/// `port` when given: a restarted server is where its clients expect it.
fn aof_server(dir: &std::path::Path, port: Option<u16>, last: bool) -> Server {
    let sock = dir.join("valkey.sock");
    let mut b = Server::builder()
        .no_module()
        .arg("--appendonly", "yes")
        .arg("--appendfsync", "always")
        .arg("--unixsocket", sock.to_str().unwrap())
        .arg("--unixsocketperm", "700");
    if let Some(p) = port {
        b = b.port(p);
    }
    if last {
        b.adopt_dir(dir).start()
    } else {
        b.dir(dir).start()
    }
}

/// kill -9 of Valkey mid-run, restart on the same port and data dir: the fetcher reconnects and
/// the stream ends with every article exactly once.
fn restart_scenario(via_unix_socket: bool) {
    let dir = make_temp_dir("fetcher-restart");
    let server = aof_server(&dir, None, false);
    let port = server.port;
    let url = if via_unix_socket { format!("unix://{}", dir.join("valkey.sock").display()) } else { server.url() };
    let f = Fetcher::start(&url, &["generate", "--count", "300", "--rate", "150", "--seed", "5", "--linger", "60"]);
    let mut conn = server.conn();
    wait_until(T, || xlen(&mut conn, "news_raw") >= 60, || f.stderr());
    drop(conn);
    let dir_back = server.kill9();
    assert_eq!(dir_back, dir);
    std::thread::sleep(Duration::from_millis(700));
    let server = aof_server(&dir, Some(port), true);
    assert_eq!(server.port, port);
    let mut conn = server.conn();

    f.wait_metric("fetcher_source_done", Duration::from_secs(30), |v| v == 1.0);
    let entries = read_stream(&mut conn, "news_raw");
    assert_unique(&entries);
    let ids: BTreeSet<String> = entries.iter().map(|e| e.id.clone()).collect();
    let want: BTreeSet<String> = (0..300).map(|n| format!("syn-5-{n}")).collect();
    assert_eq!(ids, want, "every article exactly once");
    assert_eq!(entries.len(), 300);
    assert!(f.metric("fetcher_valkey_reconnects_total") >= 1.0, "{}", f.metrics());
    let written = f.metric("fetcher_articles_written_total{source=\"synthetic\"}");
    let dups = f.metric("fetcher_duplicates_total");
    assert_eq!(written + dups, 300.0, "written {written} + duplicates {dups}");
    assert!(f.stderr().contains("reconnected"), "{}", f.stderr());
}

#[test]
fn resumes_after_valkey_restart_on_the_same_port() {
    restart_scenario(false);
}

#[test]
fn resumes_after_valkey_restart_via_unix_socket() {
    restart_scenario(true);
}

#[test]
fn survives_killed_connections() {
    let server = plain_server();
    let f = Fetcher::start(&server.url(), &["generate", "--count", "200", "--rate", "200", "--seed", "9", "--linger", "60"]);
    let mut admin = server.conn();
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while f.metric("fetcher_source_done") != 1.0 {
        assert!(Instant::now() < deadline, "{}", f.stderr());
        std::thread::sleep(Duration::from_millis(120));
        let killed: i64 = redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal").arg("SKIPME").arg("yes").query(&mut admin).unwrap();
        kills += killed;
    }
    assert!(kills >= 3, "killed {kills} connections");
    let entries = read_stream(&mut admin, "news_raw");
    assert_unique(&entries);
    assert_eq!(entries.len(), 200);
    assert!(f.metric("fetcher_valkey_reconnects_total") >= 3.0, "{}", f.metrics());
}
