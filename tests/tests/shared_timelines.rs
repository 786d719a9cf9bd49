//! Shared topic timelines (`fanout-shared-min-subscribers`): the pipeline appends an article of a
//! topic with many followers once, to `agentic:timelines`, and AGENT.FEED assembles each feed
//! from the user's own entries and the timelines of the topics they follow. Real servers, the
//! tiny model: feeds, paging, blocking reads, the delivery channel, a replica, AOF (replayed and
//! rewritten), DEBUG RELOAD, bad input and a wrong-type key.

mod common;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;
use std::thread;
use std::time::Duration;

use agentic_tests::{info_field, wait_for, wait_replica_synced, workspace_dir, Server, ServerBuilder};
use common::*;
use redis::{Connection, Value};

const TOPICS: [&str; 10] =
    ["politics", "business", "technology", "sports", "health", "climate", "science", "education", "entertainment", "finance"];
/// The topics `user:{few}` follows too: these have 4 followers, the others 3.
const FOURTH_FOLLOWS: [&str; 5] = ["politics", "business", "technology", "sports", "health"];
const ALL_TOPIC_USERS: [&str; 3] = ["user:{a}", "user:{b}", "user:{c}"];

fn builder(extra: &[&str]) -> ServerBuilder {
    let model = workspace_dir().join("model/out/tiny");
    assert!(model.join("model.onnx").is_file(), "the tiny test model is missing: run `make tiny-model` (make test does)");
    // Topics with 4 followers are shared, those with 3 are pushed to each follower's feed.
    let mut args =
        vec!["model-dir", model.to_str().expect("UTF-8 path"), "pipeline", "yes", "seen-fp-ppm", "1", "fanout-shared-min-subscribers", "4"];
    args.extend_from_slice(extra);
    Server::builder().module_args(&args)
}

fn subscribe_population(c: &mut Connection) {
    for u in ALL_TOPIC_USERS {
        subscribe(c, u, &TOPICS);
    }
    subscribe(c, "user:{few}", &FOURTH_FOLLOWS);
}

fn add_articles(c: &mut Connection, from: usize, to: usize) {
    for i in from..to {
        let data = format!(r#"{{"id":"s{i}","title":"Shared headline {i} about markets, games and votes","text":"Body {i}."}}"#);
        let _: String =
            redis::cmd("XADD").arg("news_raw").arg("*").arg("id").arg(format!("s{i}")).arg("data").arg(data).query(c).expect("XADD");
    }
}

fn wait_acked(c: &mut Connection, n: i64) {
    assert!(wait_for(|| stat(c, "pipeline_acked") >= n, Duration::from_secs(30)), "only {} of {n} acknowledged", stat(c, "pipeline_acked"));
}

/// document -> topic, from the stored documents.
fn topics_of(c: &mut Connection, n: usize) -> HashMap<String, String> {
    (0..n)
        .map(|i| {
            let doc = format!("doc:{{s{i}}}");
            let stored: String = redis::cmd("GET").arg(&doc).query(c).expect("GET document");
            let json: serde_json::Value = serde_json::from_str(&stored).expect("JSON document");
            (doc, json["topic"].as_str().expect("topic").to_string())
        })
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// A server with the population subscribed and `n` articles through the pipeline; with each
/// article's topic.
fn with_articles(n: usize) -> (Server, Connection, HashMap<String, String>) {
    let server = builder(&[]).start();
    let mut c = server.conn();
    subscribe_population(&mut c);
    add_articles(&mut c, 0, n);
    wait_acked(&mut c, n as i64);
    let topics = topics_of(&mut c, n);
    (server, c, topics)
}

/// A primary with the population subscribed, its replica, and a connection to the primary.
fn population_with_replica() -> (Server, Server, Connection) {
    let primary = builder(&[]).start();
    let replica = builder(&[]).replica_of(primary.port).start();
    let mut c = primary.conn();
    subscribe_population(&mut c);
    (primary, replica, c)
}

fn every_feed(c: &mut Connection) -> Vec<Vec<Entry>> {
    ALL_TOPIC_USERS.iter().chain(["user:{few}"].iter()).map(|u| feed(c, u, &["COUNT", "1000"])).collect()
}

#[test]
fn large_topics_go_to_shared_timelines_and_every_feed_shows_its_topics_once_in_id_order() {
    let (_server, mut c, topic) = with_articles(30);
    let shared: HashSet<&String> = topic.iter().filter(|(_, t)| FOURTH_FOLLOWS.contains(&t.as_str())).map(|(d, _)| d).collect();
    assert!(!shared.is_empty() && shared.len() < 30, "the tiny model spreads 30 articles over both kinds of topic: {topic:?}");

    assert_eq!(stat(&mut c, "timeline_appends") as usize, shared.len(), "one append per article of a large topic");
    assert_eq!(stat(&mut c, "timeline_followers_reached") as usize, shared.len() * 4);
    assert_eq!(stat(&mut c, "pipeline_deliveries") as usize, shared.len() * 4 + (30 - shared.len()) * 3, "followers reached, both ways");
    assert_eq!(stat(&mut c, "timeline_entries") as usize, shared.len());
    assert_eq!(key_type(&mut c, "agentic:timelines"), "agentline");

    let all: Vec<String> = sorted(topic.keys().cloned().collect());
    for u in ALL_TOPIC_USERS {
        let f = feed(&mut c, u, &["COUNT", "1000"]);
        assert_eq!(sorted(f.iter().map(|e| e.doc.clone()).collect()), all, "{u} sees every article once");
        assert!(f.windows(2).all(|w| w[0].id_parts() > w[1].id_parts()), "{u}: ids strictly descend");
        for e in &f {
            let is_shared = shared.contains(&e.doc);
            assert_eq!(e.id_parts().1 % 2 == 1, is_shared, "{u}: shared entries have odd ids, own ones even: {e:?}");
            assert_eq!(e.topic, topic[&e.doc]);
            assert!(e.payload.as_deref().is_some_and(|p| p.contains("Shared headline")), "bodies are read as for own entries");
        }
    }
    let few = feed_docs(&mut c, "user:{few}");
    assert_eq!(sorted(few), sorted(shared.iter().map(|d| d.to_string()).collect()), "user:{{few}} follows only the large topics");

    // Paging across both kinds of entry visits each once: newest first with BEFORE, oldest first with AFTER.
    let whole = feed(&mut c, "user:{a}", &["COUNT", "1000"]);
    let mut paged = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut args = vec!["COUNT", "4"];
        if let Some(b) = before.as_deref() {
            args.extend(["BEFORE", b]);
        }
        let page = feed(&mut c, "user:{a}", &args);
        let Some(last) = page.last() else { break };
        before = Some(last.id.clone());
        paged.extend(page);
    }
    assert_eq!(paged, whole);
    let mut tailed = Vec::new();
    let mut after = "0-0".to_string();
    loop {
        let page = feed(&mut c, "user:{a}", &["COUNT", "3", "AFTER", &after]);
        let Some(last) = page.last() else { break };
        after = last.id.clone();
        tailed.extend(page);
    }
    tailed.reverse();
    assert_eq!(tailed, whole);

    // Unsubscribing hides a shared topic's entries; following it again shows them.
    let big = topic[*shared.iter().next().expect("a shared article")].clone();
    unsubscribe(&mut c, "user:{a}", &[&big]);
    assert!(feed(&mut c, "user:{a}", &["COUNT", "1000"]).iter().all(|e| e.topic != big));
    subscribe(&mut c, "user:{a}", &[&big]);
    assert_eq!(feed(&mut c, "user:{a}", &["COUNT", "1000"]), whole);
    assert!(stat(&mut c, "feed_shared_entries") > 0);
}

#[test]
fn a_document_pushed_to_a_user_and_shared_shows_once() {
    let (_server, mut c, topic) = with_articles(12);
    let (doc, big) =
        topic.iter().find(|(_, t)| FOURTH_FOLLOWS.contains(&t.as_str())).map(|(d, t)| (d.clone(), t.clone())).expect("a shared article");
    // The same document delivered to user:{a}'s own feed as well: the own entry stands, the
    // shared one is left out (the user's seen-filter has the document).
    let v: Value =
        redis::cmd("AGENT.FANOUT").arg(&big).arg(&doc).arg("again").arg("USERS").arg("user:{a}").query(&mut c).expect("AGENT.FANOUT");
    assert_eq!(parse_outcome(&v), (1, 0));
    let f = feed(&mut c, "user:{a}", &["COUNT", "1000"]);
    let copies: Vec<&Entry> = f.iter().filter(|e| e.doc == doc).collect();
    assert_eq!(copies.len(), 1, "{f:?}");
    assert_eq!(copies[0].id_parts().1 % 2, 0, "the own entry");
    assert!(stat(&mut c, "feed_shared_skipped") >= 1);
    assert_eq!(f.len(), 12);
}

#[test]
fn a_blocked_reader_wakes_on_a_shared_append_and_the_delivery_channel_announces_it() {
    let server = builder(&[]).start();
    let mut c = server.conn();
    subscribe_population(&mut c);
    let mut sub = server.conn();
    let _: () = redis::cmd("SUBSCRIBE").arg("agentic:deliveries").query(&mut sub).expect("SUBSCRIBE");
    sub.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let url = server.url();
    let reader = thread::spawn(move || {
        let mut r = redis::Client::open(url).and_then(|c| c.get_connection()).expect("reader");
        // user:{few} follows only shared topics: nothing reaches its own feed.
        let v: Value =
            redis::cmd("AGENT.FEED").arg("user:{few}").arg("AFTER").arg("$").arg("BLOCK").arg(20_000).query(&mut r).expect("blocked read");
        parse_feed(&v)
    });
    assert!(wait_for(|| info_field(&mut c, "clients", "blocked_clients").as_deref() == Some("1"), Duration::from_secs(5)));
    // Articles until one lands in a shared topic.
    let mut n = 0;
    while stat(&mut c, "timeline_appends") == 0 && n < 40 {
        add_articles(&mut c, n, n + 1);
        n += 1;
        wait_acked(&mut c, n as i64);
    }
    assert!(stat(&mut c, "timeline_appends") >= 1, "no article reached a shared topic");
    let got = reader.join().expect("reader thread");
    assert!(!got.is_empty() && got.iter().all(|e| FOURTH_FOLLOWS.contains(&e.topic.as_str()) && e.id_parts().1 % 2 == 1), "{got:?}");
    // The announcement names the timelines key and the entry id (gateways route it by topic).
    let mut shared_announced = false;
    while let Ok(msg) = sub.recv_response() {
        let Value::Array(parts) = msg else { continue };
        let Some(Value::BulkString(payload)) = parts.get(2) else { continue };
        let text = String::from_utf8_lossy(payload).into_owned();
        if text.contains("17:agentic:timelines,") {
            assert!(text.contains(&got[0].id), "{text} names {}", got[0].id);
            shared_announced = true;
            break;
        }
    }
    assert!(shared_announced);
}

/// Ids in the assembled feed follow the order entries were added, across a user's own feed and
/// the shared timelines, so a reader that remembers the last id it saw (AFTER) misses nothing.
/// The two sources' ids are forced apart with ids and times in the future.
#[test]
fn an_entry_added_after_a_read_is_after_the_readers_cursor_whichever_source_it_comes_from() {
    let (primary, replica, mut c) = population_with_replica();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as u64;
    let after = |c: &mut Connection, cursor: &str| -> Vec<String> {
        feed(c, "user:{a}", &["AFTER", cursor, "COUNT", "100"]).into_iter().map(|e| e.doc).collect()
    };
    // A shared entry ahead of the clock (sports is shared), then an own entry (science is not).
    let shared_ts = now + 10_000_000;
    run(&mut c, &["SET", "doc:{x1}", "ahead"]);
    let shared_ts_text = shared_ts.to_string();
    let shared_id = format!("{shared_ts}-1");
    let params = [shared_ts_text.as_str(), "100", "86400000", "1", "1000"];
    let mut append = vec!["AGENT.TIMELINE.APPEND", "agentic:timelines", "sports", "doc:{x1}", shared_id.as_str()];
    append.extend_from_slice(&params);
    run(&mut c, &append);
    let cursor = feed(&mut c, "user:{a}", &["COUNT", "1"])[0].id.clone();
    assert_eq!(cursor, shared_id);
    assert_eq!(fanout_reply(&mut c, "science", "doc:{x2}"), (3, 0));
    assert_eq!(after(&mut c, &cursor), ["doc:{x2}"], "the own entry added after the read comes after the cursor");
    // An own entry further ahead, then a shared one.
    let own_ts = (now + 20_000_000).to_string();
    let mut deliver = vec!["AGENT.DELIVER", "science", "doc:{x3}", own_ts.as_str(), "100", "86400000", "1000", "1000", "user:{a}"];
    run(&mut c, &["SET", "doc:{x3}", "further ahead"]);
    run(&mut c, &deliver);
    let cursor = feed(&mut c, "user:{a}", &["COUNT", "1"])[0].id.clone();
    assert_eq!(cursor, format!("{own_ts}-0"));
    assert_eq!(fanout_reply(&mut c, "sports", "doc:{x4}"), (4, 0));
    assert_eq!(after(&mut c, &cursor), ["doc:{x4}"], "the shared entry added after the read comes after the cursor");
    // Whole feeds in id order = the order added, on the replica alike.
    let docs: Vec<String> = feed(&mut c, "user:{a}", &["COUNT", "100"]).into_iter().rev().map(|e| e.doc).collect();
    assert_eq!(docs, ["doc:{x1}", "doc:{x2}", "doc:{x3}", "doc:{x4}"]);
    wait_replica_synced(&primary, &replica);
    let mut r = replica.conn();
    assert_eq!(every_feed(&mut r), every_feed(&mut c));
    assert_eq!(digest(&mut r), digest(&mut c));
    drop(replica);
    // A restarted server (from its RDB file) remembers the own ids it loaded, so the next shared
    // entry goes above them too.
    deliver[2] = "doc:{x5}";
    let later = (now + 30_000_000).to_string();
    deliver[3] = later.as_str();
    run(&mut c, &["SET", "doc:{x5}", "later still"]);
    run(&mut c, &deliver);
    let cursor = feed(&mut c, "user:{a}", &["COUNT", "1"])[0].id.clone();
    run(&mut c, &["SAVE"]);
    let dir = primary.stop();
    let restarted = builder(&[]).adopt_dir(dir).start();
    let mut c = restarted.conn();
    assert_eq!(fanout_reply(&mut c, "sports", "doc:{x6}"), (4, 0));
    assert_eq!(after(&mut c, &cursor), ["doc:{x6}"], "after a restart too");
}

fn fanout_reply(c: &mut Connection, topic: &str, doc: &str) -> (i64, i64) {
    let v: Value = redis::cmd("AGENT.FANOUT")
        .arg(topic)
        .arg(doc)
        .arg(format!("body of {doc}"))
        .arg("STREAM")
        .arg(format!("topic:{topic}"))
        .query(c)
        .expect("AGENT.FANOUT");
    parse_outcome(&v)
}

#[test]
fn agent_fanout_to_a_large_topic_appends_once_and_replicates() {
    let (primary, replica, mut c) = population_with_replica();
    // sports has 4 followers (shared), science 3 (each follower's own feed).
    assert_eq!(fanout_reply(&mut c, "sports", "doc:{f1}"), (4, 0));
    assert_eq!(stat(&mut c, "timeline_appends"), 1);
    assert_eq!(fanout_reply(&mut c, "sports", "doc:{f1}"), (0, 4), "sent again: the timeline has it");
    assert_eq!(stat(&mut c, "timeline_appends"), 1);
    assert_eq!(stat(&mut c, "timeline_duplicates"), 1);
    assert_eq!(fanout_reply(&mut c, "science", "doc:{f2}"), (3, 0));
    assert_eq!(stat(&mut c, "timeline_appends"), 1);
    assert_eq!(xlen(&mut c, "topic:sports"), 2, "the stream gets every call, as with per-user feeds");
    for u in ALL_TOPIC_USERS {
        let f = feed(&mut c, u, &[]);
        let parities: Vec<(String, u64)> = f.iter().map(|e| (e.doc.clone(), e.id_parts().1 % 2)).collect();
        assert_eq!(parities, [("doc:{f2}".to_string(), 0), ("doc:{f1}".to_string(), 1)], "{u}");
    }
    assert_eq!(feed_docs(&mut c, "user:{few}"), ["doc:{f1}"]);
    wait_replica_synced(&primary, &replica);
    let mut r = replica.conn();
    assert_eq!(every_feed(&mut r), every_feed(&mut c));
    assert_eq!(digest(&mut r), digest(&mut c));
}

fn aof_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir.join("appendonlydir")).expect("appendonlydir") {
        out.extend(fs::read(e.expect("entry").path()).expect("read AOF"));
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_replica_an_aof_restart_an_aof_rewrite_and_debug_reload_keep_the_same_feeds() {
    let aof = |b: ServerBuilder| b.arg("--appendonly", "yes").arg("--appendfsync", "always").arg("--aof-use-rdb-preamble", "no");
    let primary = aof(builder(&[])).start();
    let replica = builder(&["pipeline", "no"]).replica_of(primary.port).start();
    let mut p = primary.conn();
    let mut r = replica.conn();
    subscribe_population(&mut p);
    add_articles(&mut p, 0, 20);
    wait_acked(&mut p, 20);
    assert!(stat(&mut p, "timeline_appends") >= 1);
    wait_replica_synced(&primary, &replica);
    let feeds = every_feed(&mut p);
    assert_eq!(every_feed(&mut r), feeds, "the replica assembles the same feeds with the same ids");
    assert_eq!(digest(&mut r), digest(&mut p));
    assert!(contains(&aof_bytes(&primary.dir), b"AGENT.TIMELINE.APPEND"), "each shared append is in the AOF, fully specified");

    // DEBUG RELOAD (RDB save and load) on the replica keeps them.
    let _: () = redis::cmd("DEBUG").arg("RELOAD").query(&mut r).expect("DEBUG RELOAD");
    assert_eq!(every_feed(&mut r), feeds);
    assert_eq!(stat(&mut r, "load_errors"), 0);
    drop(r);
    drop(replica);

    // The primary restarts from its AOF (the appends replayed) ...
    drop(p);
    let dir = primary.stop();
    let primary = aof(builder(&[])).adopt_dir(dir).start();
    let mut p = primary.conn();
    assert_eq!(every_feed(&mut p), feeds);
    // ... then from a rewritten one (the timelines as one AGENT.TIMELINE.LOAD), with later
    // appends on top; the clock keeps ids unique.
    let _: String = redis::cmd("BGREWRITEAOF").query(&mut p).expect("BGREWRITEAOF");
    assert!(wait_for(
        || info_field(&mut p, "persistence", "aof_rewrite_in_progress").as_deref() == Some("0")
            && info_field(&mut p, "persistence", "aof_rewrite_scheduled").as_deref() == Some("0"),
        Duration::from_secs(20)
    ));
    assert!(contains(&aof_bytes(&primary.dir), b"AGENT.TIMELINE.LOAD"));
    add_articles(&mut p, 20, 30);
    wait_acked(&mut p, 10);
    let later = every_feed(&mut p);
    for f in &later {
        let ids: HashSet<&String> = f.iter().map(|e| &e.id).collect();
        assert_eq!(ids.len(), f.len(), "ids stay unique after the restart");
    }
    drop(p);
    let dir = primary.stop();
    let primary = aof(builder(&[])).adopt_dir(dir).start();
    let mut p = primary.conn();
    assert_eq!(every_feed(&mut p), later);
    assert_eq!(stat(&mut p, "load_errors"), 0);
}

#[test]
fn bad_appends_and_loads_change_nothing_and_a_wrong_type_key_falls_back_to_per_user_delivery() {
    let (_server, mut c, _) = with_articles(10);
    let appends = stat(&mut c, "timeline_appends");
    assert!(appends >= 1);
    let before = digest(&mut c);
    let ok = ["agentic:timelines", "sports", "doc:x", "99999999999999-1", "5", "100", "86400000", "1000", "128"];
    let with = |i: usize, v: &'static str| {
        let mut a: Vec<&str> = ok.to_vec();
        a[i] = v;
        a
    };
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (with(0, "other:key"), "shared timelines live at agentic:timelines"),
        (with(1, "Not A Topic"), "topic"),
        (with(3, "99999999999999-2"), "odd sequence numbers"),
        (with(3, "5-18446744073709551615"), "out of range"),
        (with(4, "281474976710657"), "timestamp"),
        (with(3, "1-1"), "above the shared timelines' last id"),
        (with(3, "x"), "invalid entry id"),
        (with(5, "0"), "feed length"),
        (with(6, "1"), "seen TTL"),
    ];
    for (args, expected) in cases {
        let mut full = vec!["AGENT.TIMELINE.APPEND"];
        full.extend(args);
        let err = expect_err_str(&mut c, &full);
        assert!(err.contains(expected), "{full:?}: {err}");
    }
    let err = expect_err_str(&mut c, &["AGENT.TIMELINE.LOAD", "agentic:timelines", "not an encoding"]);
    assert!(err.contains("invalid timelines encoding"), "{err}");
    assert_eq!(digest(&mut c), before, "nothing changed");
    assert_eq!(stat(&mut c, "timeline_appends"), appends);

    // Another type at the key: shared appends cannot be made, the articles reach every follower's own feed.
    let _: () = redis::cmd("DEL").arg("agentic:timelines").query(&mut c).expect("DEL");
    let _: () = redis::cmd("SET").arg("agentic:timelines").arg("a string").query(&mut c).expect("SET");
    add_articles(&mut c, 10, 20);
    wait_acked(&mut c, 20);
    assert!(stat(&mut c, "timeline_fallbacks") >= 1);
    let topic = topics_of(&mut c, 20);
    let late: Vec<String> = sorted((10..20).map(|i| format!("doc:{{s{i}}}")).collect());
    let a: Vec<String> = feed_docs(&mut c, "user:{a}").into_iter().filter(|d| late.contains(d)).collect();
    assert_eq!(sorted(a), late, "every later article reached user:{{a}}'s own feed");
    assert!(topic.len() == 20);
    let err = expect_err_str(&mut c, &["AGENT.TIMELINE.LOAD", "agentic:timelines", "x"]);
    assert!(err.contains("invalid timelines encoding") || err.contains("WRONGTYPE"), "{err}");
}
