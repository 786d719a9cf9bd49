//! Helpers shared by the AGENT.* integration tests (each test file is its own crate and includes
//! this module with `mod common;`; not every file uses every helper).
#![allow(dead_code)]

pub mod classify;

use std::collections::HashMap;

use redis::{Connection, RedisError, RedisResult, Value};

/// `CODE detail` of a server error, e.g. `WRONGTYPE Operation against ...`.
pub fn err_text(e: &RedisError) -> String {
    // A failed pipeline or transaction carries its commands' errors (redis 1.x): the first is the
    // one redis 0.27 returned as the error itself.
    if let Some((_, first)) = e.clone().into_server_errors().and_then(|errs| errs.first().cloned()) {
        return format!("{} {}", first.code(), first.details().unwrap_or(""));
    }
    match e.code() {
        Some(code) => format!("{code} {}", e.detail().unwrap_or("")),
        None => format!("(not a server error) {e}"),
    }
}

/// Runs `args` and returns the error text; panics when the command succeeds.
pub fn expect_err(conn: &mut Connection, args: &[&[u8]]) -> String {
    let mut cmd = redis::cmd(std::str::from_utf8(args[0]).expect("command name is UTF-8"));
    for a in &args[1..] {
        cmd.arg(*a);
    }
    let r: RedisResult<Value> = cmd.query(conn);
    match r {
        Ok(v) => panic!("{:?} succeeded with {v:?}, expected an error", printable(args)),
        Err(e) => err_text(&e),
    }
}

/// Like [`expect_err`] for all-text arguments.
pub fn expect_err_str(conn: &mut Connection, args: &[&str]) -> String {
    let bytes: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    expect_err(conn, &bytes)
}

fn printable(args: &[&[u8]]) -> Vec<String> {
    args.iter()
        .map(|a| {
            let s = String::from_utf8_lossy(a);
            if s.len() > 60 {
                format!("{}...({} bytes)", &s[..40], a.len())
            } else {
                s.into_owned()
            }
        })
        .collect()
}

/// Runs a command given as text arguments and returns the raw reply (panics on error).
pub fn run(conn: &mut Connection, args: &[&str]) -> Value {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(conn).unwrap_or_else(|e| panic!("{args:?} failed: {}", err_text(&e)))
}

pub fn as_string(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).expect("UTF-8 bulk string"),
        Value::SimpleString(s) => s.clone(),
        Value::Okay => "OK".into(),
        Value::Int(i) => i.to_string(),
        other => panic!("not a string: {other:?}"),
    }
}

/// AGENT.STATS as ordered (name, value) pairs; asserts the reply is a flat, even-length array of
/// bulk strings.
pub fn stats_pairs(conn: &mut Connection) -> Vec<(String, String)> {
    let v: Value = redis::cmd("AGENT.STATS").query(conn).expect("AGENT.STATS");
    let Value::Array(items) = v else { panic!("AGENT.STATS reply {v:?}") };
    assert_eq!(items.len() % 2, 0, "AGENT.STATS reply has odd length {}", items.len());
    items
        .chunks(2)
        .map(|kv| {
            for x in kv {
                assert!(matches!(x, Value::BulkString(_)), "AGENT.STATS item {x:?} is not a bulk string");
            }
            (as_string(&kv[0]), as_string(&kv[1]))
        })
        .collect()
}

pub fn stats(conn: &mut Connection) -> HashMap<String, String> {
    stats_pairs(conn).into_iter().collect()
}

/// One integer metric from AGENT.STATS (panics when missing).
pub fn stat(conn: &mut Connection, name: &str) -> i64 {
    let s = stats(conn);
    let v = s.get(name).unwrap_or_else(|| panic!("AGENT.STATS has no {name}: {s:?}"));
    v.parse().unwrap_or_else(|_| panic!("{name} = {v} is not an integer"))
}

/// `topic_subscribers:<topic>` entries of AGENT.STATS.
pub fn topic_counts(conn: &mut Connection) -> HashMap<String, i64> {
    stats_pairs(conn)
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix("topic_subscribers:").map(|t| (t.to_string(), v.parse().expect("subscriber count"))))
        .collect()
}

pub fn subscribe(conn: &mut Connection, user: &str, topics: &[&str]) -> i64 {
    redis::cmd("AGENT.SUBSCRIBE")
        .arg(user)
        .arg(topics)
        .query(conn)
        .unwrap_or_else(|e| panic!("AGENT.SUBSCRIBE {user} {topics:?}: {}", err_text(&e)))
}

pub fn unsubscribe(conn: &mut Connection, user: &str, topics: &[&str]) -> i64 {
    redis::cmd("AGENT.UNSUBSCRIBE")
        .arg(user)
        .arg(topics)
        .query(conn)
        .unwrap_or_else(|e| panic!("AGENT.UNSUBSCRIBE {user} {topics:?}: {}", err_text(&e)))
}

pub fn interests(conn: &mut Connection, user: &str) -> Vec<String> {
    redis::cmd("AGENT.INTERESTS").arg(user).query(conn).expect("AGENT.INTERESTS")
}

/// Checks the `[delivered, N, duplicates, M]` shape and returns (N, M).
pub fn parse_outcome(v: &Value) -> (i64, i64) {
    let Value::Array(items) = v else { panic!("fan-out reply {v:?} is not an array") };
    assert_eq!(items.len(), 4, "fan-out reply {v:?}");
    assert_eq!(items[0], Value::SimpleString("delivered".into()), "reply {v:?}");
    assert_eq!(items[2], Value::SimpleString("duplicates".into()), "reply {v:?}");
    let (Value::Int(d), Value::Int(m)) = (&items[1], &items[3]) else { panic!("fan-out counts are not integers: {v:?}") };
    (*d, *m)
}

/// AGENT.FANOUT topic doc payload [extra...] -> (delivered, duplicates).
pub fn fanout_with(conn: &mut Connection, topic: &str, doc: &str, payload: &str, extra: &[&str]) -> (i64, i64) {
    let v: Value = redis::cmd("AGENT.FANOUT")
        .arg(topic)
        .arg(doc)
        .arg(payload)
        .arg(extra)
        .query(conn)
        .unwrap_or_else(|e| panic!("AGENT.FANOUT {topic} {doc} {extra:?}: {}", err_text(&e)));
    parse_outcome(&v)
}

pub fn fanout(conn: &mut Connection, topic: &str, doc: &str, payload: &str) -> (i64, i64) {
    fanout_with(conn, topic, doc, payload, &[])
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    pub topic: String,
    pub doc: String,
    pub payload: Option<String>,
}

impl Entry {
    /// (ms, seq) of the entry id, for ordering checks.
    pub fn id_parts(&self) -> (u64, u64) {
        parse_id(&self.id)
    }
}

pub fn parse_id(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or_else(|| panic!("entry id {id} is not <ms>-<seq>"));
    (ms.parse().expect("id ms"), seq.parse().expect("id seq"))
}

/// Parses an AGENT.FEED reply, checking every entry is `[id, topic, doc-key, payload-or-nil]`.
pub fn parse_feed(v: &Value) -> Vec<Entry> {
    let Value::Array(items) = v else { panic!("AGENT.FEED reply {v:?} is not an array") };
    items
        .iter()
        .map(|e| {
            let Value::Array(f) = e else { panic!("feed entry {e:?} is not an array") };
            assert_eq!(f.len(), 4, "feed entry {e:?}");
            for x in &f[..3] {
                assert!(matches!(x, Value::BulkString(_)), "feed entry field {x:?} is not a bulk string");
            }
            let payload = match &f[3] {
                Value::Nil => None,
                Value::BulkString(b) => Some(String::from_utf8(b.clone()).expect("UTF-8 payload")),
                other => panic!("payload {other:?}"),
            };
            let entry = Entry { id: as_string(&f[0]), topic: as_string(&f[1]), doc: as_string(&f[2]), payload };
            parse_id(&entry.id);
            entry
        })
        .collect()
}

/// AGENT.FEED user [args...] parsed.
pub fn feed(conn: &mut Connection, user: &str, args: &[&str]) -> Vec<Entry> {
    let v: Value =
        redis::cmd("AGENT.FEED").arg(user).arg(args).query(conn).unwrap_or_else(|e| panic!("AGENT.FEED {user} {args:?}: {}", err_text(&e)));
    parse_feed(&v)
}

/// Doc keys of a feed, in reply order (newest first without AFTER).
pub fn feed_docs(conn: &mut Connection, user: &str) -> Vec<String> {
    feed(conn, user, &["COUNT", "10000"]).into_iter().map(|e| e.doc).collect()
}

pub fn digest(conn: &mut Connection) -> String {
    redis::cmd("DEBUG").arg("DIGEST").query(conn).expect("DEBUG DIGEST")
}

pub fn dbsize(conn: &mut Connection) -> i64 {
    redis::cmd("DBSIZE").query(conn).expect("DBSIZE")
}

pub fn key_type(conn: &mut Connection, key: &str) -> String {
    redis::cmd("TYPE").arg(key).query(conn).expect("TYPE")
}

pub fn exists(conn: &mut Connection, key: &str) -> bool {
    let n: i64 = redis::cmd("EXISTS").arg(key).query(conn).expect("EXISTS");
    n == 1
}

pub fn xlen(conn: &mut Connection, key: &str) -> i64 {
    redis::cmd("XLEN").arg(key).query(conn).expect("XLEN")
}

/// `user:{i}` for i in range.
pub fn users(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("user:{{{i}}}")).collect()
}

/// Subscribes many users to one topic in one pipeline.
pub fn subscribe_many(conn: &mut Connection, users: &[String], topic: &str) {
    for chunk in users.chunks(1000) {
        let mut pipe = redis::pipe();
        for u in chunk {
            pipe.cmd("AGENT.SUBSCRIBE").arg(u).arg(topic);
        }
        let added: Vec<i64> = pipe.query(conn).expect("pipelined AGENT.SUBSCRIBE");
        assert!(added.iter().all(|&n| n == 1), "every pipelined subscribe adds one topic");
    }
}

pub const TOPICS: [&str; 3] = ["sports", "news", "tech"];

/// A mixed workload touching every write path: subscribes, ~50 fan-outs with duplicates and
/// topic streams, a large fan-out to `big` subscribers of `world` (sliced when the server's
/// fanout-slice-us is small), unsubscribes, the USERS form and a deleted subscriber.
/// Users: `user:{0..30}` on the small topics, `user:{100..100+big}` on `world`.
pub fn workload(c: &mut Connection, big: usize) {
    for i in 0..30 {
        let mut ts = vec![TOPICS[i % 3]];
        if i % 2 == 0 {
            ts.push(TOPICS[(i + 1) % 3]);
        }
        subscribe(c, &format!("user:{{{i}}}"), &ts);
    }
    if big > 0 {
        subscribe_many(c, &users(100..100 + big), "world");
    }
    for i in 0..50 {
        let topic = TOPICS[i % 3];
        let doc = format!("doc:{}", i % 40); // docs 0..9 are sent twice
        let payload = format!("{{\"i\":{i},\"topic\":\"{topic}\"}}");
        if i % 5 == 0 {
            fanout_with(c, topic, &doc, &payload, &["STREAM", &format!("ts:{topic}")]);
        } else {
            fanout(c, topic, &doc, &payload);
        }
    }
    if big > 0 {
        assert_eq!(fanout(c, "world", "doc:{world}", "big news"), (big as i64, 0));
        assert_eq!(fanout(c, "world", "doc:{world}", "big news"), (0, big as i64));
    }
    unsubscribe(c, "user:{0}", &["sports"]);
    unsubscribe(c, "user:{1}", &TOPICS);
    fanout_with(c, "news", "doc:direct", "direct", &["USERS", "user:{0}", "user:{999}"]);
    let _: i64 = redis::cmd("DEL").arg("user:{5}").query(c).expect("DEL");
    for t in TOPICS {
        fanout(c, t, &format!("doc:last-{t}"), "last");
    }
}

/// Every user key the workload may have written.
pub fn workload_users(big: usize) -> Vec<String> {
    let mut v = users(0..30);
    v.extend(users(100..100 + big));
    v.push("user:{999}".into());
    v
}

/// Full feeds (COUNT 10000, newest first) of `users`, pipelined.
pub fn all_feeds(c: &mut Connection, users: &[String]) -> Vec<Vec<Entry>> {
    let mut pipe = redis::pipe();
    for u in users {
        pipe.cmd("AGENT.FEED").arg(u).arg("COUNT").arg(10_000);
    }
    let replies: Vec<Value> = pipe.query(c).expect("pipelined AGENT.FEED");
    replies.iter().map(parse_feed).collect()
}

/// Every key of type `agentuser` (SCAN ... TYPE agentuser).
pub fn user_keys(c: &mut Connection) -> Vec<String> {
    let mut cursor = 0u64;
    let mut keys = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) =
            redis::cmd("SCAN").arg(cursor).arg("TYPE").arg("agentuser").arg("COUNT").arg(1000).query(c).expect("SCAN");
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys
}

/// Subscribers per topic as the keyspace says (INTERESTS of every user key); the module's index
/// must be a superset of this.
pub fn true_topic_counts(c: &mut Connection) -> HashMap<String, i64> {
    let keys = user_keys(c);
    let mut pipe = redis::pipe();
    for k in &keys {
        pipe.cmd("AGENT.INTERESTS").arg(k);
    }
    let all: Vec<Vec<String>> = pipe.query(c).expect("pipelined AGENT.INTERESTS");
    let mut counts = HashMap::new();
    for t in all.into_iter().flatten() {
        *counts.entry(t).or_insert(0) += 1;
    }
    counts
}

/// The index counts are at least the true counts for every followed topic.
pub fn assert_index_covers_keyspace(c: &mut Connection) {
    let index = topic_counts(c);
    for (t, n) in true_topic_counts(c) {
        let have = index.get(&t).copied().unwrap_or(0);
        assert!(have >= n, "index lists {have} subscribers of {t}, the keyspace has {n}");
    }
}

/// Starts `AGENT.FANOUT topic doc payload` on its own connection and, as soon as `c` sees it in
/// progress (`fanout_jobs_pending >= 1`), runs `during` on `c`. Returns the fan-out's outcome and
/// what `during` returned, or None if the fan-out finished before it could be observed.
pub fn during_fanout<R>(
    server: &agentic_tests::Server,
    c: &mut Connection,
    topic: &str,
    doc: &str,
    payload: &str,
    during: impl FnOnce(&mut Connection) -> R,
) -> ((i64, i64), Option<R>) {
    let url = server.url();
    let (topic, doc, payload) = (topic.to_string(), doc.to_string(), payload.to_string());
    let big = std::thread::spawn(move || {
        let mut a = redis::Client::open(url).expect("url").get_connection().expect("connect");
        fanout(&mut a, &topic, &doc, &payload)
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut result = None;
    while !big.is_finished() && std::time::Instant::now() < deadline {
        if stat(c, "fanout_jobs_pending") >= 1 {
            result = Some(during(c));
            break;
        }
    }
    (big.join().expect("fan-out thread"), result)
}
