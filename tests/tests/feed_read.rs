//! AGENT.FEED: entry shape, COUNT, BEFORE / AFTER paging, blocking reads, missing docs and users.

mod common;

use std::collections::HashSet;
use std::thread;
use std::time::{Duration, Instant};

use agentic_tests::{info_field, wait_for, Server};
use common::*;
use redis::{Connection, Value};

/// A server with `user:{1}` subscribed to sports and news and `n` documents fanned out to it,
/// alternating topics: doc:0 (sports), doc:1 (news), ...
fn with_feed(n: usize) -> (Server, Connection) {
    let server = Server::start();
    let mut c = server.conn();
    subscribe(&mut c, "user:{1}", &["sports", "news"]);
    for i in 0..n {
        let topic = if i % 2 == 0 { "sports" } else { "news" };
        assert_eq!(fanout(&mut c, topic, &format!("doc:{i}"), &format!("body {i}")), (1, 0));
    }
    (server, c)
}

fn blocked_clients(c: &mut Connection) -> i64 {
    info_field(c, "clients", "blocked_clients").and_then(|v| v.parse().ok()).unwrap_or(-1)
}

fn wait_blocked(c: &mut Connection, n: i64) {
    assert!(wait_for(|| blocked_clients(c) == n, Duration::from_secs(5)), "expected {n} blocked clients, have {}", blocked_clients(c));
}

/// `n` users `user:{<prefix><i>}` following "news".
fn news_followers(c: &mut Connection, prefix: &str, n: usize) -> Vec<String> {
    let users: Vec<String> = (0..n).map(|i| format!("user:{{{prefix}{i}}}")).collect();
    for u in &users {
        subscribe(c, u, &["news"]);
    }
    users
}

/// `AGENT.FEED <user> AFTER $ BLOCK <ms>` on a connection of its own: what it got, and how long
/// it waited.
fn blocked_reader(server: &Server, user: &str, block_ms: u64) -> thread::JoinHandle<(Vec<Entry>, Duration)> {
    let (url, user) = (server.url(), user.to_string());
    thread::spawn(move || {
        let mut r = redis::Client::open(url).expect("url").get_connection().expect("connect");
        let started = Instant::now();
        let v: Value = redis::cmd("AGENT.FEED")
            .arg(&user)
            .arg("AFTER")
            .arg("$")
            .arg("BLOCK")
            .arg(block_ms)
            .query(&mut r)
            .expect("blocking AGENT.FEED");
        (parse_feed(&v), started.elapsed())
    })
}

#[test]
fn entries_have_id_topic_doc_and_payload_newest_first() {
    let (_server, mut c) = with_feed(5);
    let f = feed(&mut c, "user:{1}", &[]);
    assert_eq!(f.len(), 5);
    for (k, e) in f.iter().enumerate() {
        let i = 4 - k;
        assert_eq!(e.doc, format!("doc:{i}"));
        assert_eq!(e.topic, if i % 2 == 0 { "sports" } else { "news" });
        assert_eq!(e.payload.as_deref(), Some(format!("body {i}").as_str()));
    }
    assert!(f.windows(2).all(|w| w[0].id_parts() > w[1].id_parts()), "ids strictly descend: {f:?}");

    let two = feed(&mut c, "user:{1}", &["COUNT", "2"]);
    assert_eq!(two, f[..2].to_vec());
    // Keywords are case-insensitive.
    assert_eq!(feed(&mut c, "user:{1}", &["count", "1"]), f[..1].to_vec());
    assert_eq!(stat(&mut c, "feed_reads"), 3);
}

#[test]
fn default_count_is_twenty() {
    let (_server, mut c) = with_feed(25);
    let f = feed(&mut c, "user:{1}", &[]);
    assert_eq!(f.len(), 20);
    assert_eq!(f[0].doc, "doc:24");
    assert_eq!(feed(&mut c, "user:{1}", &["COUNT", "100"]).len(), 25);
}

#[test]
fn before_pages_walk_the_whole_feed_without_gaps_or_duplicates() {
    let (_server, mut c) = with_feed(23);
    let mut all = Vec::new();
    let mut page = feed(&mut c, "user:{1}", &["COUNT", "5"]);
    let mut pages = 1;
    while !page.is_empty() {
        let last = page.last().expect("non-empty").id.clone();
        all.extend(page);
        page = feed(&mut c, "user:{1}", &["COUNT", "5", "BEFORE", &last]);
        pages += 1;
        assert!(pages < 20, "paging does not terminate");
    }
    assert_eq!(pages, 6, "5 full pages, 1 of 3, then an empty one");
    let docs: Vec<String> = all.iter().map(|e| e.doc.clone()).collect();
    let expected: Vec<String> = (0..23).rev().map(|i| format!("doc:{i}")).collect();
    assert_eq!(docs, expected);
    let ids: HashSet<&str> = all.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), 23);
    // BEFORE the oldest id: nothing.
    assert!(feed(&mut c, "user:{1}", &["BEFORE", &all[22].id]).is_empty());
}

#[test]
fn after_returns_newer_entries_oldest_first() {
    let (_server, mut c) = with_feed(10);
    let newest_first = feed(&mut c, "user:{1}", &["COUNT", "10"]);
    let pivot = &newest_first[6].id; // doc:3
    let after = feed(&mut c, "user:{1}", &["AFTER", pivot]);
    let docs: Vec<&str> = after.iter().map(|e| e.doc.as_str()).collect();
    assert_eq!(docs, vec!["doc:4", "doc:5", "doc:6", "doc:7", "doc:8", "doc:9"]);
    let limited = feed(&mut c, "user:{1}", &["AFTER", pivot, "COUNT", "2"]);
    assert_eq!(limited, after[..2].to_vec());
    assert!(feed(&mut c, "user:{1}", &["AFTER", &newest_first[0].id]).is_empty());
    // AFTER 0 is everything, oldest first; an id without -seq means <ms>-0.
    let everything = feed(&mut c, "user:{1}", &["AFTER", "0", "COUNT", "100"]);
    assert_eq!(everything.len(), 10);
    assert_eq!(everything[0].doc, "doc:0");
    let ms = newest_first[0].id_parts().0;
    let all_before_last_ms = feed(&mut c, "user:{1}", &["AFTER", &(ms - 1).to_string(), "COUNT", "100"]);
    assert!(all_before_last_ms.iter().any(|e| e.doc == "doc:9"));
    // AFTER $ without BLOCK: nothing is newer than now.
    assert!(feed(&mut c, "user:{1}", &["AFTER", "$"]).is_empty());
}

#[test]
fn after_dollar_block_zero_wakes_on_delivery_to_that_user() {
    let (server, mut c) = with_feed(3);
    subscribe(&mut c, "user:{2}", &["weather"]);
    let reader = blocked_reader(&server, "user:{1}", 0);
    wait_blocked(&mut c, 1);
    // A delivery to someone else, and a duplicate for this user, do not wake the reader.
    assert_eq!(fanout(&mut c, "weather", "doc:w", "rain"), (1, 0));
    assert_eq!(fanout(&mut c, "sports", "doc:0", "body 0"), (0, 1));
    thread::sleep(Duration::from_millis(100));
    assert!(!reader.is_finished(), "reader woke up without a delivery of its own");
    assert_eq!(blocked_clients(&mut c), 1);

    assert_eq!(fanout(&mut c, "news", "doc:new", "fresh"), (1, 0));
    let (got, waited) = reader.join().expect("reader thread");
    assert!(waited >= Duration::from_millis(100));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].doc, "doc:new");
    assert_eq!(got[0].topic, "news");
    assert_eq!(got[0].payload.as_deref(), Some("fresh"));
    assert_eq!(blocked_clients(&mut c), 0);
    assert_eq!(stat(&mut c, "feed_blocked_reads"), 1);
    assert_eq!(stat(&mut c, "feed_read_timeouts"), 0);
}

#[test]
fn blocked_reader_of_a_missing_user_wakes_when_the_user_gets_a_delivery() {
    let server = Server::start();
    let mut c = server.conn();
    let reader = blocked_reader(&server, "user:{new}", 5000);
    wait_blocked(&mut c, 1);
    assert_eq!(fanout_with(&mut c, "sports", "doc:1", "hello", &["USERS", "user:{new}"]), (1, 0));
    let (got, _) = reader.join().expect("reader thread");
    assert_eq!(got.iter().map(|e| e.doc.as_str()).collect::<Vec<_>>(), vec!["doc:1"]);
}

#[test]
fn block_times_out_with_an_empty_array() {
    let (_server, mut c) = with_feed(2);
    let t = Instant::now();
    let f = feed(&mut c, "user:{1}", &["AFTER", "$", "BLOCK", "100"]);
    let waited = t.elapsed();
    assert!(f.is_empty());
    assert!(waited >= Duration::from_millis(95), "returned after {waited:?}");
    assert!(waited < Duration::from_secs(3), "returned after {waited:?}");
    assert_eq!(stat(&mut c, "feed_read_timeouts"), 1);
    // A missing user times out the same way.
    assert!(feed(&mut c, "user:{nobody}", &["BLOCK", "50"]).is_empty());
    assert_eq!(stat(&mut c, "feed_read_timeouts"), 2);
    // With entries available, BLOCK returns at once.
    let t = Instant::now();
    assert_eq!(feed(&mut c, "user:{1}", &["BLOCK", "5000"]).len(), 2);
    assert!(t.elapsed() < Duration::from_secs(1));
    assert_eq!(stat(&mut c, "feed_read_timeouts"), 2);
}

#[test]
fn missing_document_is_a_nil_payload_and_counted() {
    let (_server, mut c) = with_feed(3);
    let _: i64 = redis::cmd("DEL").arg("doc:1").query(&mut c).expect("DEL");
    let f = feed(&mut c, "user:{1}", &[]);
    let payloads: Vec<Option<&str>> = f.iter().map(|e| e.payload.as_deref()).collect();
    assert_eq!(payloads, vec![Some("body 2"), None, Some("body 0")]);
    assert_eq!(f[1].doc, "doc:1", "the reference survives the document");
    assert_eq!(stat(&mut c, "feed_missing_docs"), 1);
}

#[test]
fn missing_user_is_an_empty_feed() {
    let server = Server::start();
    let mut c = server.conn();
    assert!(feed(&mut c, "user:{404}", &[]).is_empty());
    assert!(feed(&mut c, "user:{404}", &["AFTER", "0"]).is_empty());
    assert!(feed(&mut c, "user:{404}", &["BEFORE", "99999999999999"]).is_empty());
    assert_eq!(dbsize(&mut c), 0, "reading must not create the user");
}

#[test]
fn block_inside_multi_returns_immediately() {
    let (_server, mut c) = with_feed(1);
    let t = Instant::now();
    let (r,): (Value,) = redis::pipe()
        .atomic()
        .cmd("AGENT.FEED")
        .arg("user:{1}")
        .arg("AFTER")
        .arg("$")
        .arg("BLOCK")
        .arg(0)
        .query(&mut c)
        .expect("MULTI/EXEC");
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(parse_feed(&r).is_empty());
    assert_eq!(stat(&mut c, "feed_blocked_reads"), 0);
    // Inside MULTI with data available the entries come back as usual.
    let (r,): (Value,) = redis::pipe().atomic().cmd("AGENT.FEED").arg("user:{1}").arg("BLOCK").arg(0).query(&mut c).expect("MULTI/EXEC");
    assert_eq!(parse_feed(&r).len(), 1);
}

/// Readers made ready by one write: `feed-wake-batch` user keys are woken per event-loop
/// iteration and the rest in the following ones, so every reader gets the entry, the readers of
/// other topics keep waiting, and the keys woken later are counted. Both ways a write reaches
/// readers: a shared timeline append and deliveries to each follower's feed.
#[test]
fn readers_made_ready_by_one_write_are_woken_a_batch_per_iteration_and_all_answered() {
    let server = Server::builder().module_args(&["feed-wake-batch", "2", "fanout-shared-min-subscribers", "1"]).start();
    let mut c = server.conn();
    let followers = news_followers(&mut c, "w", 7);
    subscribe(&mut c, "user:{other}", &["sports"]);
    let block_all = |c: &mut Connection| -> Vec<thread::JoinHandle<(Vec<Entry>, Duration)>> {
        let readers: Vec<_> =
            followers.iter().map(String::as_str).chain(["user:{other}"]).map(|u| blocked_reader(&server, u, 3_000)).collect();
        wait_blocked(c, 8);
        readers
    };
    for (round, (shared, doc)) in [("1", "doc:{shared}"), ("0", "doc:{own}")].into_iter().enumerate() {
        let _: () = redis::cmd("CONFIG").arg("SET").arg("agentic.fanout-shared-min-subscribers").arg(shared).query(&mut c).unwrap();
        let readers = block_all(&mut c);
        assert_eq!(fanout(&mut c, "news", doc, "body").0, 7);
        let got: Vec<Vec<Entry>> = readers.into_iter().map(|r| r.join().expect("reader").0).collect();
        for (u, entries) in followers.iter().zip(&got) {
            assert_eq!(entries.iter().map(|e| e.doc.as_str()).collect::<Vec<_>>(), vec![doc], "{u}, round {round}");
        }
        assert!(got[7].is_empty(), "the sports reader timed out empty: {:?}", got[7]);
        // 7 keys, 2 per iteration: the last 5 in later iterations.
        assert_eq!(stat(&mut c, "feed_wakeups_deferred"), 5 * (round as i64 + 1), "round {round}");
    }
    assert_eq!(stat(&mut c, "feed_read_timeouts"), 2);
    assert_eq!(stat(&mut c, "timeline_appends"), 1);
}

/// Two writes in one event-loop iteration (pipelined): the first wakes the reader with nothing
/// to show it (a shared entry its feed already had), the second has something new. The reader
/// gets it at once: a key is spared a second wake-up only until the server has looked at its
/// readers.
#[test]
fn a_reader_woken_for_nothing_is_woken_again_by_the_next_write_in_the_same_iteration() {
    let server = Server::builder().module_args(&["fanout-shared-min-subscribers", "1"]).start();
    let mut c = server.conn();
    subscribe(&mut c, "user:{r}", &["news"]);
    // doc:{x} straight into the user's own feed: the shared timeline's copy is then hidden from it.
    assert_eq!(fanout_with(&mut c, "news", "doc:{x}", "x", &["USERS", "user:{r}"]).0, 1);
    let reader = blocked_reader(&server, "user:{r}", 5_000);
    wait_blocked(&mut c, 1);
    let started = Instant::now();
    let _: Value = redis::pipe()
        .cmd("AGENT.FANOUT")
        .arg("news")
        .arg("doc:{x}")
        .arg("x")
        .cmd("AGENT.FANOUT")
        .arg("news")
        .arg("doc:{y}")
        .arg("y")
        .query(&mut c)
        .expect("two fan-outs in one write");
    let (got, _) = reader.join().expect("reader");
    assert_eq!(got.iter().map(|e| e.doc.as_str()).collect::<Vec<_>>(), vec!["doc:{y}"]);
    assert!(started.elapsed() < Duration::from_secs(2), "the reader waited for its timeout: {:?}", started.elapsed());
    assert_eq!(stat(&mut c, "timeline_appends"), 2);
    assert_eq!(stat(&mut c, "feed_read_timeouts"), 0);
}

/// A reader's timeout can come while its key still waits for its batch (the server handles
/// timeouts before keys made ready): it gets the entries written by then, not an empty reply.
/// Here the write and a sleep past every timeout run in one transaction, with one key woken per
/// iteration.
#[test]
fn a_reader_timing_out_while_its_wake_up_is_queued_gets_what_was_written() {
    let server = Server::builder().module_args(&["feed-wake-batch", "1", "fanout-shared-min-subscribers", "1"]).start();
    let mut c = server.conn();
    let followers = news_followers(&mut c, "t", 3);
    let readers: Vec<_> = followers.iter().map(|u| blocked_reader(&server, u, 200)).collect();
    wait_blocked(&mut c, 3);
    let _: Value = redis::pipe()
        .atomic()
        .cmd("AGENT.FANOUT")
        .arg("news")
        .arg("doc:{late}")
        .arg("body")
        .cmd("DEBUG")
        .arg("SLEEP")
        .arg("0.5")
        .query(&mut c)
        .expect("MULTI: fan-out, then sleep past the timeouts");
    for (u, r) in followers.iter().zip(readers) {
        let (got, _) = r.join().expect("reader");
        assert_eq!(got.iter().map(|e| e.doc.as_str()).collect::<Vec<_>>(), vec!["doc:{late}"], "{u}");
    }
    assert_eq!(stat(&mut c, "feed_read_timeouts"), 0);
}
