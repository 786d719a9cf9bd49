//! The Lua baseline scripts in `lua/` against a real valkey-server without the module.

use std::fs;

use agentic_tests::{workspace_dir, Server};
use redis::{Connection, Value};

const FANOUT: &str = "lua/fanout_reference.lua";
const TRIM: &str = "lua/trim_topics.lua";

fn script_text(rel: &str) -> String {
    let path = workspace_dir().join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn load(conn: &mut Connection, rel: &str) -> String {
    redis::cmd("SCRIPT").arg("LOAD").arg(script_text(rel)).query(conn).expect("SCRIPT LOAD")
}

fn plain() -> (Server, Connection, String) {
    let server = Server::builder().no_module().start();
    let mut conn = server.conn();
    let sha = load(&mut conn, FANOUT);
    (server, conn, sha)
}

fn subscribe(conn: &mut Connection, topic: &str, uids: &[&str]) {
    let _: i64 = redis::cmd("SADD").arg(format!("subs:{topic}")).arg(uids).query(conn).expect("SADD subs");
}

struct Fanout<'a> {
    topic: &'a str,
    doc: &'a str,
    payload: &'a str,
    feed_len: i64,
    ttl: i64,
    topic_maxlen: i64,
    uids: &'a [&'a str],
}

impl<'a> Fanout<'a> {
    fn new(topic: &'a str, doc: &'a str, payload: &'a str) -> Self {
        Self { topic, doc, payload, feed_len: 100, ttl: 86400, topic_maxlen: 10000, uids: &[] }
    }

    fn run(&self, conn: &mut Connection, sha: &str) -> (i64, i64) {
        let r: Vec<i64> = redis::cmd("EVALSHA")
            .arg(sha)
            .arg(0)
            .arg(self.topic)
            .arg(self.doc)
            .arg(self.payload)
            .arg(self.feed_len)
            .arg(self.ttl)
            .arg(self.topic_maxlen)
            .arg(self.uids)
            .query(conn)
            .expect("EVALSHA fanout_reference");
        assert_eq!(r.len(), 2, "reply is {{delivered, duplicates}}");
        (r[0], r[1])
    }
}

fn llen(conn: &mut Connection, key: &str) -> i64 {
    redis::cmd("LLEN").arg(key).query(conn).expect("LLEN")
}

fn xlen(conn: &mut Connection, key: &str) -> i64 {
    redis::cmd("XLEN").arg(key).query(conn).expect("XLEN")
}

fn exists(conn: &mut Connection, key: &str) -> bool {
    let n: i64 = redis::cmd("EXISTS").arg(key).query(conn).expect("EXISTS");
    n == 1
}

/// `data` field of every entry of a stream, oldest first.
fn stream_payloads(conn: &mut Connection, key: &str) -> Vec<String> {
    let reply: Value = redis::cmd("XRANGE").arg(key).arg("-").arg("+").query(conn).expect("XRANGE");
    let Value::Array(entries) = reply else { panic!("XRANGE reply {reply:?}") };
    entries
        .into_iter()
        .map(|e| {
            let Value::Array(parts) = e else { panic!("entry {e:?}") };
            let Value::Array(fields) = &parts[1] else { panic!("fields {parts:?}") };
            let name: String = redis::from_redis_value_ref(&fields[0]).expect("field name");
            assert_eq!(name, "data");
            redis::from_redis_value_ref(&fields[1]).expect("field value")
        })
        .collect()
}

#[test]
fn delivers_to_subscribers_of_the_topic_only() {
    let (_server, mut conn, sha) = plain();
    subscribe(&mut conn, "politics", &["1", "2", "3"]);
    subscribe(&mut conn, "sports", &["3", "4"]);

    let payload = r#"{"id":"a1","topic":"politics","title":"Vote"}"#;
    assert_eq!(Fanout::new("politics", "a1", payload).run(&mut conn, &sha), (3, 0));

    for uid in ["1", "2", "3"] {
        let feed: Vec<String> = redis::cmd("LRANGE").arg(format!("feed:{{{uid}}}")).arg(0).arg(-1).query(&mut conn).expect("LRANGE");
        assert_eq!(feed, vec![payload.to_string()], "feed of user {uid}");
        assert_eq!(stream_payloads(&mut conn, &format!("feedstream:{{{uid}}}")), vec![payload]);
        let seen: Vec<String> = redis::cmd("SMEMBERS").arg(format!("seen:{{{uid}}}")).query(&mut conn).expect("SMEMBERS");
        assert_eq!(seen, vec!["a1".to_string()]);
    }
    for key in ["feed:{4}", "feedstream:{4}", "seen:{4}"] {
        assert!(!exists(&mut conn, key), "{key} must not exist: user 4 is not subscribed to politics");
    }
    assert_eq!(stream_payloads(&mut conn, "topic:politics"), vec![payload]);
    assert!(!exists(&mut conn, "topic:sports"));

    // A topic nobody subscribes to: the article still lands in the topic stream.
    assert_eq!(Fanout::new("health", "h1", "x").run(&mut conn, &sha), (0, 0));
    assert_eq!(xlen(&mut conn, "topic:health"), 1);
}

#[test]
fn resend_is_deduplicated_per_user() {
    let (_server, mut conn, sha) = plain();
    subscribe(&mut conn, "politics", &["1", "2", "3"]);
    subscribe(&mut conn, "sports", &["3", "4"]);

    assert_eq!(Fanout::new("politics", "d1", "p").run(&mut conn, &sha), (3, 0));
    assert_eq!(Fanout::new("politics", "d1", "p").run(&mut conn, &sha), (0, 3));
    // Same document id under another topic: user 3 has seen it, user 4 has not.
    assert_eq!(Fanout::new("sports", "d1", "p").run(&mut conn, &sha), (1, 1));
    for (uid, n) in [("1", 1), ("2", 1), ("3", 1), ("4", 1)] {
        assert_eq!(llen(&mut conn, &format!("feed:{{{uid}}}")), n, "feed of user {uid}");
        assert_eq!(xlen(&mut conn, &format!("feedstream:{{{uid}}}")), n);
    }
    // The topic stream records every send, duplicates included (the reference does not dedup it).
    assert_eq!(xlen(&mut conn, "topic:politics"), 2);
    // A new document is delivered again.
    assert_eq!(Fanout::new("politics", "d2", "q").run(&mut conn, &sha), (3, 0));
    assert_eq!(llen(&mut conn, "feed:{1}"), 2);
}

#[test]
fn feed_is_bounded_newest_first() {
    // Small stream nodes make the approximate (~) trim of the feed stream tight enough to assert.
    let server = Server::builder().no_module().arg("--stream-node-max-entries", "10").start();
    let mut conn = server.conn();
    let sha = load(&mut conn, FANOUT);
    subscribe(&mut conn, "tech", &["7"]);

    let feed_len = 5;
    for i in 0..40 {
        let doc = format!("doc{i}");
        let mut f = Fanout::new("tech", &doc, &doc);
        f.feed_len = feed_len;
        assert_eq!(f.run(&mut conn, &sha), (1, 0));
    }
    let feed: Vec<String> = redis::cmd("LRANGE").arg("feed:{7}").arg(0).arg(-1).query(&mut conn).expect("LRANGE");
    assert_eq!(feed, vec!["doc39", "doc38", "doc37", "doc36", "doc35"]);

    let stream = stream_payloads(&mut conn, "feedstream:{7}");
    let n = stream.len() as i64;
    assert!(n >= feed_len && n < feed_len + 10, "feed stream length {n} not trimmed to ~{feed_len}");
    assert_eq!(stream.last().map(String::as_str), Some("doc39"));
    // The seen set keeps growing: it is bounded by its TTL, not by the feed length.
    let seen: i64 = redis::cmd("SCARD").arg("seen:{7}").query(&mut conn).expect("SCARD");
    assert_eq!(seen, 40);
}

#[test]
fn seen_set_gets_the_ttl() {
    let (_server, mut conn, sha) = plain();
    subscribe(&mut conn, "science", &["9"]);
    let mut f = Fanout::new("science", "s1", "x");
    f.ttl = 3600;
    assert_eq!(f.run(&mut conn, &sha), (1, 0));
    let ttl: i64 = redis::cmd("TTL").arg("seen:{9}").query(&mut conn).expect("TTL");
    assert!(ttl > 3590 && ttl <= 3600, "seen TTL {ttl}");
    // The feed keys themselves do not expire in the reference.
    let feed_ttl: i64 = redis::cmd("TTL").arg("feed:{9}").query(&mut conn).expect("TTL");
    assert_eq!(feed_ttl, -1);

    // A new delivery refreshes the TTL (EXPIRE runs on every newly seen document).
    let _: () = redis::cmd("EXPIRE").arg("seen:{9}").arg(10).query(&mut conn).expect("EXPIRE");
    let mut f = Fanout::new("science", "s2", "y");
    f.ttl = 3600;
    assert_eq!(f.run(&mut conn, &sha), (1, 0));
    let ttl: i64 = redis::cmd("TTL").arg("seen:{9}").query(&mut conn).expect("TTL");
    assert!(ttl > 3590, "seen TTL {ttl} not refreshed");

    // A duplicate does not refresh it.
    let _: () = redis::cmd("EXPIRE").arg("seen:{9}").arg(10).query(&mut conn).expect("EXPIRE");
    assert_eq!(f.run(&mut conn, &sha), (0, 1));
    let ttl: i64 = redis::cmd("TTL").arg("seen:{9}").query(&mut conn).expect("TTL");
    assert!(ttl <= 10, "duplicate refreshed the TTL to {ttl}");
}

#[test]
fn topic_stream_is_trimmed() {
    let server = Server::builder().no_module().arg("--stream-node-max-entries", "10").start();
    let mut conn = server.conn();
    let sha = load(&mut conn, FANOUT);
    for i in 0..100 {
        let doc = format!("t{i}");
        let mut f = Fanout::new("climate", &doc, &doc);
        f.topic_maxlen = 20;
        assert_eq!(f.run(&mut conn, &sha), (0, 0));
    }
    let stream = stream_payloads(&mut conn, "topic:climate");
    assert!(stream.len() >= 20 && stream.len() < 30, "topic stream length {}", stream.len());
    assert_eq!(stream.last().map(String::as_str), Some("t99"));
}

#[test]
fn explicit_uids_override_the_subscriber_set() {
    let (_server, mut conn, sha) = plain();
    subscribe(&mut conn, "finance", &["1", "2"]);
    let mut f = Fanout::new("finance", "f1", "x");
    f.uids = &["2", "5"];
    assert_eq!(f.run(&mut conn, &sha), (2, 0));
    assert!(!exists(&mut conn, "feed:{1}"));
    assert_eq!(llen(&mut conn, "feed:{2}"), 1);
    assert_eq!(llen(&mut conn, "feed:{5}"), 1);
    // Then the subscriber set: user 2 already has it.
    assert_eq!(Fanout::new("finance", "f1", "x").run(&mut conn, &sha), (1, 1));
}

#[test]
fn binary_and_large_payloads_are_kept_verbatim() {
    let (_server, mut conn, sha) = plain();
    subscribe(&mut conn, "education", &["1"]);
    let payload: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    let r: Vec<i64> = redis::cmd("EVALSHA")
        .arg(&sha)
        .arg(0)
        .arg("education")
        .arg("bin1")
        .arg(&payload)
        .arg(10)
        .arg(60)
        .arg(100)
        .query(&mut conn)
        .expect("EVALSHA");
    assert_eq!(r, vec![1, 0]);
    let got: Vec<u8> = redis::cmd("LINDEX").arg("feed:{1}").arg(0).query(&mut conn).expect("LINDEX");
    assert_eq!(got, payload);
}

#[test]
fn bad_arguments_are_rejected_without_side_effects() {
    let (_server, mut conn, sha) = plain();
    subscribe(&mut conn, "politics", &["1"]);
    for (feed_len, ttl, maxlen) in [("0", "10", "10"), ("x", "10", "10"), ("5", "-1", "10"), ("5", "10", "1.5")] {
        let r: redis::RedisResult<Value> =
            redis::cmd("EVALSHA").arg(&sha).arg(0).arg("politics").arg("d").arg("p").arg(feed_len).arg(ttl).arg(maxlen).query(&mut conn);
        assert!(r.is_err(), "args {feed_len} {ttl} {maxlen} accepted: {r:?}");
    }
    let r: redis::RedisResult<Value> = redis::cmd("EVALSHA").arg(&sha).arg(0).arg("politics").query(&mut conn);
    assert!(r.is_err());
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut conn).expect("DBSIZE");
    assert_eq!(dbsize, 1, "only subs:politics exists");
}

fn xadd_n(conn: &mut Connection, key: &str, n: usize) {
    for i in 0..n {
        let _: String = redis::cmd("XADD").arg(key).arg("*").arg("i").arg(i).query(conn).expect("XADD");
    }
}

#[test]
fn trim_script_trims_exactly_and_counts() {
    let server = Server::builder().no_module().start();
    let mut conn = server.conn();
    xadd_n(&mut conn, "topic:a", 50);
    xadd_n(&mut conn, "topic:b", 5);
    let counts: Vec<i64> = redis::cmd("EVAL")
        .arg(script_text(TRIM))
        .arg(3)
        .arg("topic:a")
        .arg("topic:b")
        .arg("topic:missing")
        .arg(10)
        .query(&mut conn)
        .expect("EVAL trim_topics");
    assert_eq!(counts, vec![40, 0, 0]);
    assert_eq!(xlen(&mut conn, "topic:a"), 10);
    assert_eq!(xlen(&mut conn, "topic:b"), 5);
    assert!(!exists(&mut conn, "topic:missing"), "trim must not create keys");
    // The newest entries survive.
    let kept: Vec<(String, Vec<(String, String)>)> =
        redis::cmd("XRANGE").arg("topic:a").arg("-").arg("+").query(&mut conn).expect("XRANGE");
    let values: Vec<&str> = kept.iter().map(|(_, f)| f[0].1.as_str()).collect();
    assert_eq!(values, ["40", "41", "42", "43", "44", "45", "46", "47", "48", "49"]);

    // maxlen 0 empties the stream; a bad maxlen is an error.
    let counts: Vec<i64> = redis::cmd("EVAL").arg(script_text(TRIM)).arg(1).arg("topic:a").arg(0).query(&mut conn).expect("EVAL");
    assert_eq!(counts, vec![10]);
    let r: redis::RedisResult<Value> = redis::cmd("EVAL").arg(script_text(TRIM)).arg(1).arg("topic:b").arg("ten").query(&mut conn);
    assert!(r.is_err());
    assert_eq!(xlen(&mut conn, "topic:b"), 5);
}

/// Documents the baseline's flaw that the module fixes: the blind trim drops entries a consumer
/// group has not even read yet, and entries that are read but still pending.
#[test]
fn trim_script_drops_unprocessed_group_entries() {
    let server = Server::builder().no_module().start();
    let mut conn = server.conn();
    xadd_n(&mut conn, "topic:x", 20);
    let _: () = redis::cmd("XGROUP").arg("CREATE").arg("topic:x").arg("workers").arg("0").query(&mut conn).expect("XGROUP CREATE");
    // The consumer reads 5 entries and acknowledges none; 15 are not even delivered.
    let _: Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("workers")
        .arg("c1")
        .arg("COUNT")
        .arg(5)
        .arg("STREAMS")
        .arg("topic:x")
        .arg(">")
        .query(&mut conn)
        .expect("XREADGROUP");
    let counts: Vec<i64> = redis::cmd("EVAL").arg(script_text(TRIM)).arg(1).arg("topic:x").arg(3).query(&mut conn).expect("EVAL");
    assert_eq!(counts, vec![17], "the blind trim removes unprocessed entries");
    assert_eq!(xlen(&mut conn, "topic:x"), 3);
    // The pending entries list still names the 5 read entries, but their data is gone.
    let pending: Value = redis::cmd("XPENDING").arg("topic:x").arg("workers").query(&mut conn).expect("XPENDING");
    let Value::Array(p) = pending else { panic!("XPENDING {pending:?}") };
    assert_eq!(p[0], Value::Int(5));
    let detail: Vec<(String, String, i64, i64)> =
        redis::cmd("XPENDING").arg("topic:x").arg("workers").arg("-").arg("+").arg(10).query(&mut conn).expect("XPENDING detail");
    assert_eq!(detail.len(), 5);
    // Claiming a pending entry yields nothing: its data was trimmed away.
    let claimed: Value =
        redis::cmd("XCLAIM").arg("topic:x").arg("workers").arg("c2").arg(0).arg(&detail[0].0).query(&mut conn).expect("XCLAIM");
    assert!(matches!(claimed, Value::Array(ref a) if a.is_empty()), "{claimed:?}");
}
