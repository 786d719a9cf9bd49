//! AGENT.FANOUT / AGENT.DELIVER: reply shape, per-user dedup, document storage, USERS form,
//! bounded feeds, seen TTL, sliced large audiences and keyspace notifications.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use agentic_tests::Server;
use common::*;
use redis::Value;

#[test]
fn reply_shape_and_resend_is_a_duplicate_for_every_user() {
    let server = Server::start();
    let mut c = server.conn();
    for u in ["user:{1}", "user:{2}", "user:{3}"] {
        subscribe(&mut c, u, &["sports"]);
    }
    subscribe(&mut c, "user:{4}", &["news"]);

    let raw: Value = redis::cmd("AGENT.FANOUT").arg("sports").arg("doc:{1}").arg("hello").query(&mut c).expect("FANOUT");
    assert_eq!(
        raw,
        Value::Array(
            vec![Value::SimpleString("delivered".into()), Value::Int(3), Value::SimpleString("duplicates".into()), Value::Int(0),]
        )
    );
    assert_eq!(fanout(&mut c, "sports", "doc:{1}", "hello"), (0, 3));
    assert_eq!(fanout(&mut c, "sports", "doc:{1}", "hello"), (0, 3));
    // Same doc under another topic: user 4 (news only) has not seen it yet; once subscribed to
    // sports too, every sports subscriber has seen it.
    assert_eq!(fanout(&mut c, "news", "doc:{1}", "hello"), (1, 0));
    subscribe(&mut c, "user:{4}", &["sports"]);
    assert_eq!(fanout(&mut c, "sports", "doc:{1}", "hello"), (0, 4));
    for u in ["user:{1}", "user:{2}", "user:{3}", "user:{4}"] {
        assert_eq!(feed_docs(&mut c, u), vec!["doc:{1}"], "feed of {u}");
    }
    assert_eq!(fanout(&mut c, "sports", "doc:{2}", "again"), (4, 0));

    assert_eq!(stat(&mut c, "fanout_calls"), 6);
    assert_eq!(stat(&mut c, "fanout_deliveries"), 3 + 1 + 4);
    assert_eq!(stat(&mut c, "fanout_duplicates_skipped"), 3 + 3 + 4);
}

#[test]
fn document_is_stored_once_with_the_doc_ttl() {
    let server = Server::builder().module_args(&["doc-ttl", "100"]).start();
    let mut c = server.conn();
    for u in ["user:{1}", "user:{2}"] {
        subscribe(&mut c, u, &["sports"]);
    }
    fanout(&mut c, "sports", "doc:{a}", "body-a");
    assert_eq!(dbsize(&mut c), 3, "two users and one document");
    let body: String = redis::cmd("GET").arg("doc:{a}").query(&mut c).expect("GET");
    assert_eq!(body, "body-a");
    let pttl: i64 = redis::cmd("PTTL").arg("doc:{a}").query(&mut c).expect("PTTL");
    assert!(pttl > 90_000 && pttl <= 100_000, "PTTL {pttl}, doc-ttl is 100 s");
    for u in ["user:{1}", "user:{2}"] {
        let f = feed(&mut c, u, &[]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].payload.as_deref(), Some("body-a"));
    }

    // doc-ttl 0 keeps documents forever.
    let _: () = redis::cmd("CONFIG").arg("SET").arg("agentic.doc-ttl").arg("0").query(&mut c).expect("CONFIG SET");
    fanout(&mut c, "sports", "doc:{b}", "body-b");
    let pttl: i64 = redis::cmd("PTTL").arg("doc:{b}").query(&mut c).expect("PTTL");
    assert_eq!(pttl, -1);
}

#[test]
fn users_form_creates_missing_users_and_delivers_to_exactly_those() {
    let server = Server::start();
    let mut c = server.conn();
    subscribe(&mut c, "user:{1}", &["sports"]);
    subscribe(&mut c, "user:{2}", &["sports"]);

    assert_eq!(fanout_with(&mut c, "sports", "doc:1", "x", &["USERS", "user:{2}", "user:{5}"]), (2, 0));
    assert!(feed_docs(&mut c, "user:{1}").is_empty(), "subscriber not listed got the doc");
    assert_eq!(feed_docs(&mut c, "user:{2}"), vec!["doc:1"]);
    assert_eq!(feed_docs(&mut c, "user:{5}"), vec!["doc:1"]);
    assert_eq!(key_type(&mut c, "user:{5}"), "agentuser");
    assert!(interests(&mut c, "user:{5}").is_empty(), "an explicit delivery does not subscribe");
    assert_eq!(topic_counts(&mut c).get("sports"), Some(&2));

    // Then the subscriber set: user 2 already has it; user 5 is not a subscriber.
    assert_eq!(fanout(&mut c, "sports", "doc:1", "x"), (1, 1));
    // A USERS list naming a user twice delivers once.
    assert_eq!(fanout_with(&mut c, "sports", "doc:2", "y", &["USERS", "user:{6}", "user:{6}"]), (1, 1));
    assert_eq!(feed_docs(&mut c, "user:{6}"), vec!["doc:2"]);
}

#[test]
fn feed_is_bounded_to_feed_len_newest_first() {
    let server = Server::builder().module_args(&["feed-len", "5"]).start();
    let mut c = server.conn();
    subscribe(&mut c, "user:{1}", &["tech"]);
    subscribe(&mut c, "user:{2}", &["tech"]);
    for i in 0..8 {
        assert_eq!(fanout(&mut c, "tech", &format!("doc:{i}"), &format!("body {i}")), (2, 0));
    }
    for u in ["user:{1}", "user:{2}"] {
        let f = feed(&mut c, u, &["COUNT", "100"]);
        let docs: Vec<&str> = f.iter().map(|e| e.doc.as_str()).collect();
        assert_eq!(docs, vec!["doc:7", "doc:6", "doc:5", "doc:4", "doc:3"], "feed of {u}");
        assert_eq!(f[0].payload.as_deref(), Some("body 7"));
        assert!(f.windows(2).all(|w| w[0].id_parts() > w[1].id_parts()), "ids descend: {f:?}");
    }
    assert_eq!(stat(&mut c, "feed_evictions"), 6, "3 per user");
    // Evicted documents are still remembered as seen.
    assert_eq!(fanout(&mut c, "tech", "doc:0", "body 0"), (0, 2));
}

#[test]
fn seen_ttl_expires_and_the_doc_is_delivered_again() {
    let server = Server::builder().module_args(&["seen-ttl", "1"]).start();
    let mut c = server.conn();
    subscribe(&mut c, "user:{1}", &["tech"]);
    let t0 = Instant::now();
    assert_eq!(fanout(&mut c, "tech", "doc:1", "x"), (1, 0));
    assert_eq!(fanout(&mut c, "tech", "doc:1", "x"), (0, 1));
    assert!(t0.elapsed() < Duration::from_millis(900), "the duplicate check ran too late to be meaningful");
    // The filter keeps a document for at most ttl + ttl/4.
    thread::sleep(Duration::from_millis(1400));
    assert_eq!(fanout(&mut c, "tech", "doc:1", "x"), (1, 0));
    assert_eq!(feed_docs(&mut c, "user:{1}"), vec!["doc:1", "doc:1"]);
    assert_eq!(fanout(&mut c, "tech", "doc:1", "x"), (0, 1));
}

#[test]
fn deliver_uses_its_explicit_parameters() {
    let server = Server::start();
    let mut c = server.conn();
    let deliver = |c: &mut redis::Connection, ts: &str, users: &[&str]| -> (i64, i64) {
        let v: Value = redis::cmd("AGENT.DELIVER")
            .arg("sports")
            .arg("doc:{x}")
            .arg(ts)
            .arg(2) // feed-len
            .arg(60_000) // seen-ttl-ms
            .arg(1000) // seen-fp-ppm
            .arg(128) // seen-capacity
            .arg(users)
            .query(c)
            .expect("AGENT.DELIVER");
        parse_outcome(&v)
    };
    assert_eq!(deliver(&mut c, "1000", &["user:{1}", "user:{2}"]), (2, 0));
    assert_eq!(deliver(&mut c, "2000", &["user:{1}", "user:{3}"]), (1, 1));
    let f = feed(&mut c, "user:{1}", &[]);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].id, "1000-0", "the entry id comes from ts-ms");
    assert_eq!(feed(&mut c, "user:{3}", &[])[0].id, "2000-0");
    // The document key is not written by DELIVER (it only delivers references).
    assert!(!exists(&mut c, "doc:{x}"));
    assert_eq!(f[0].payload, None);
    // ttl 60 s from ts 1000: still a duplicate at ts 50000, new again at ts 1_000_000.
    assert_eq!(deliver(&mut c, "50000", &["user:{1}"]), (0, 1));
    assert_eq!(deliver(&mut c, "1000000", &["user:{1}"]), (1, 0));
    // A timestamp that goes back keeps ids increasing; feed-len 2 bounds the feed.
    for (i, ts) in ["10", "20"].iter().enumerate() {
        let v: Value = redis::cmd("AGENT.DELIVER")
            .arg("sports")
            .arg(format!("doc:{{y{i}}}"))
            .arg(*ts)
            .arg(2)
            .arg(60_000)
            .arg(1000)
            .arg(128)
            .arg("user:{1}")
            .query(&mut c)
            .expect("AGENT.DELIVER");
        assert_eq!(parse_outcome(&v), (1, 0));
    }
    let ids: Vec<String> = feed(&mut c, "user:{1}", &[]).into_iter().map(|e| e.id).collect();
    // Own feeds take even sequence numbers (shared timelines the odd ones).
    assert_eq!(ids, vec!["1000000-4", "1000000-2"]);
}

fn pending_jobs(c: &mut redis::Connection) -> i64 {
    stat(c, "fanout_jobs_pending")
}

#[test]
fn large_audience_is_sliced_and_blocks_only_the_caller() {
    // Small slices and a large audience keep the fan-out in progress long enough to be observed
    // from another connection even on a loaded machine.
    let server = Server::builder().module_args(&["fanout-slice-us", "10"]).start();
    let mut c = server.conn();
    let n = 20_000;
    let audience = users(0..n);
    subscribe_many(&mut c, &audience, "world");

    // While the big fan-out is in progress, this connection is served, and a second fan-out
    // queues behind the first.
    let (first, second) = during_fanout(&server, &mut c, "world", "doc:{big}", "big news", |c| {
        let pong: String = redis::cmd("PING").query(c).expect("PING during fan-out");
        assert_eq!(pong, "PONG");
        fanout(c, "world", "doc:{second}", "later news")
    });
    assert!(second.is_some(), "never observed the fan-out in progress from another connection");
    assert_eq!(first, (n as i64, 0));
    assert_eq!(second, Some((n as i64, 0)));
    assert!(stat(&mut c, "fanout_blocked_calls") >= 1);
    assert!(stat(&mut c, "fanout_slices") > 1);
    assert_eq!(pending_jobs(&mut c), 0);
    assert_eq!(stat(&mut c, "fanout_deliveries"), 2 * n as i64);

    // Every user got both documents, in the order the fan-outs arrived.
    let mut pipe = redis::pipe();
    for u in &audience {
        pipe.cmd("AGENT.FEED").arg(u);
    }
    let feeds: Vec<Value> = pipe.query(&mut c).expect("pipelined AGENT.FEED");
    for (u, v) in audience.iter().zip(&feeds) {
        let docs: Vec<String> = parse_feed(v).into_iter().map(|e| e.doc).collect();
        assert_eq!(docs, vec!["doc:{second}", "doc:{big}"], "feed of {u}");
    }
}

#[test]
fn deliveries_raise_module_keyspace_events() {
    let server = Server::builder().arg("--notify-keyspace-events", "Kd").start();
    let mut c = server.conn();
    subscribe(&mut c, "user:{1}", &["sports"]);
    subscribe(&mut c, "user:{2}", &["sports"]);

    let mut sub_conn = server.conn();
    let mut ps = sub_conn.as_pubsub();
    ps.psubscribe("__keyspace@0__:*").expect("PSUBSCRIBE");
    ps.set_read_timeout(Some(Duration::from_millis(300))).expect("read timeout");
    fanout(&mut c, "sports", "doc:1", "x");
    fanout(&mut c, "sports", "doc:1", "x"); // duplicates: no event
    subscribe(&mut c, "user:{1}", &["news"]);

    let mut events = Vec::new();
    while let Ok(msg) = ps.get_message() {
        let payload: String = msg.get_payload().expect("payload");
        events.push((msg.get_channel_name().to_string(), payload));
    }
    events.sort();
    assert_eq!(
        events,
        vec![
            ("__keyspace@0__:user:{1}".to_string(), "agent.deliver".to_string()),
            ("__keyspace@0__:user:{1}".to_string(), "agent.subscribe".to_string()),
            ("__keyspace@0__:user:{2}".to_string(), "agent.deliver".to_string()),
        ],
        "with class d only, module events (and no SET of the doc) are published"
    );
}

#[test]
fn inside_multi_and_lua_the_fanout_runs_inline() {
    let server = Server::builder().module_args(&["fanout-slice-us", "10"]).start();
    let mut c = server.conn();
    let n = 1_500;
    subscribe_many(&mut c, &users(0..n), "world");
    let (v,): (Value,) =
        redis::pipe().atomic().cmd("AGENT.FANOUT").arg("world").arg("doc:{multi}").arg("m").query(&mut c).expect("MULTI/EXEC");
    assert_eq!(parse_outcome(&v), (n as i64, 0));
    let v: Value = redis::cmd("EVAL")
        .arg("return redis.call('AGENT.FANOUT', 'world', KEYS[1], ARGV[1])")
        .arg(1)
        .arg("doc:{lua}")
        .arg("l")
        .query(&mut c)
        .expect("EVAL");
    assert_eq!(parse_outcome(&v), (n as i64, 0));
    assert_eq!(stat(&mut c, "fanout_blocked_calls"), 0, "MULTI and scripts cannot block");
    assert_eq!(feed_docs(&mut c, "user:{1499}"), vec!["doc:{lua}", "doc:{multi}"]);
}

#[test]
fn a_delivery_invalidates_watch_on_that_user_only() {
    let server = Server::start();
    let mut c = server.conn();
    let mut other = server.conn();
    subscribe(&mut c, "user:{1}", &["sports"]);
    subscribe(&mut c, "user:{2}", &["news"]);

    let _: () = redis::cmd("WATCH").arg("user:{1}").query(&mut c).expect("WATCH");
    fanout(&mut other, "sports", "doc:1", "x");
    let r: Option<(i64,)> = redis::pipe().atomic().cmd("DBSIZE").query(&mut c).expect("EXEC");
    assert_eq!(r, None, "EXEC must abort: the watched user got a delivery");

    let _: () = redis::cmd("WATCH").arg("user:{2}").query(&mut c).expect("WATCH");
    fanout(&mut other, "sports", "doc:2", "y");
    let r: Option<(i64,)> = redis::pipe().atomic().cmd("DBSIZE").query(&mut c).expect("EXEC");
    assert!(r.is_some(), "a delivery to someone else aborted EXEC");

    // A duplicate changes nothing, so it does not abort EXEC either.
    let _: () = redis::cmd("WATCH").arg("user:{1}").query(&mut c).expect("WATCH");
    assert_eq!(fanout(&mut other, "sports", "doc:1", "x"), (0, 1));
    let r: Option<(i64,)> = redis::pipe().atomic().cmd("DBSIZE").query(&mut c).expect("EXEC");
    assert!(r.is_some(), "a duplicate (no change) aborted EXEC");

    // Later deliveries take the fast path (remembered value, no keyspace lookup): still seen.
    let _: () = redis::cmd("WATCH").arg("user:{1}").query(&mut c).expect("WATCH");
    assert_eq!(fanout(&mut other, "sports", "doc:3", "z"), (1, 0));
    let r: Option<(i64,)> = redis::pipe().atomic().cmd("DBSIZE").query(&mut c).expect("EXEC");
    assert_eq!(r, None, "EXEC must abort after a fast-path delivery to the watched user");
}

#[test]
fn caller_disconnecting_mid_fanout_does_not_stop_it() {
    use std::io::Write;
    let server = Server::builder().module_args(&["fanout-slice-us", "20"]).start();
    let mut c = server.conn();
    let n = 5_000;
    let audience = users(0..n);
    subscribe_many(&mut c, &audience, "world");
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    raw.write_all(b"*4\r\n$12\r\nAGENT.FANOUT\r\n$5\r\nworld\r\n$9\r\ndoc:{bye}\r\n$3\r\nbye\r\n").expect("send");
    let seen = agentic_tests::wait_for(|| pending_jobs(&mut c) >= 1 || stat(&mut c, "fanout_calls") == 1, Duration::from_secs(5));
    assert!(seen);
    drop(raw);
    assert!(agentic_tests::wait_for(|| pending_jobs(&mut c) == 0, Duration::from_secs(10)), "the job never finished");
    let pong: String = redis::cmd("PING").query(&mut c).expect("PING");
    assert_eq!(pong, "PONG");
    assert_eq!(stat(&mut c, "fanout_deliveries"), n as i64);
    assert_eq!(feed_docs(&mut c, &audience[n - 1]), vec!["doc:{bye}"]);
    // The server still serves fan-outs (and blocked ones) normally afterwards.
    assert_eq!(fanout(&mut c, "world", "doc:{next}", "next"), (n as i64, 0));
}

#[test]
fn seen_filter_false_positives_stay_bounded() {
    let server = Server::start();
    let mut c = server.conn();
    // 20,000 distinct documents to one user with fp 1000 ppm: fewer than 20 expected duplicates.
    let n = 20_000;
    let mut duplicates = 0;
    for chunk in (0..n).collect::<Vec<_>>().chunks(2_000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.cmd("AGENT.DELIVER")
                .arg("sports")
                .arg(format!("doc:{i}"))
                .arg(1_000_000 + i)
                .arg(10)
                .arg(86_400_000)
                .arg(1000)
                .arg(128)
                .arg("user:{1}");
        }
        let replies: Vec<Value> = pipe.query(&mut c).expect("pipelined AGENT.DELIVER");
        duplicates += replies.iter().map(|v| parse_outcome(v).1).sum::<i64>();
    }
    assert!(duplicates <= 40, "{duplicates} of {n} new documents skipped as seen (bound 0.1%)");
    let expected: f64 = stats(&mut c)["seen_false_positive_expected"].parse().expect("float");
    assert!(expected > 0.0 && expected < 20.0, "seen_false_positive_expected {expected}");
    // Every one of them is still remembered.
    let mut pipe = redis::pipe();
    for i in (0..n).step_by(97) {
        pipe.cmd("AGENT.DELIVER")
            .arg("sports")
            .arg(format!("doc:{i}"))
            .arg(1_000_000 + n)
            .arg(10)
            .arg(86_400_000)
            .arg(1000)
            .arg(128)
            .arg("user:{1}");
    }
    let replies: Vec<Value> = pipe.query(&mut c).expect("pipelined AGENT.DELIVER");
    assert!(replies.iter().all(|v| parse_outcome(v) == (0, 1)), "a seen document was delivered again");
}

/// A fan-out that cannot block (MULTI) issued while a sliced fan-out is still running must not
/// overtake it: every feed receives documents in the order they were fanned out.
#[test]
fn inline_fanout_does_not_overtake_a_running_one() {
    // As in large_audience_is_sliced_and_blocks_only_the_caller: small slices and a large audience
    // keep the first fan-out in progress long enough to be seen on a loaded machine.
    let server = Server::builder().module_args(&["fanout-slice-us", "10"]).start();
    let mut c = server.conn();
    let n = 20_000;
    let audience = users(0..n);
    subscribe_many(&mut c, &audience, "world");
    let (first, second) = during_fanout(&server, &mut c, "world", "doc:{first}", "first", |c| {
        let (v,): (Value,) =
            redis::pipe().atomic().cmd("AGENT.FANOUT").arg("world").arg("doc:{second}").arg("second").query(c).expect("MULTI/EXEC");
        parse_outcome(&v)
    });
    assert_eq!(first, (n as i64, 0));
    assert_eq!(second, Some((n as i64, 0)), "never observed the first fan-out in progress");
    let feeds = all_feeds(&mut c, &audience);
    for (u, f) in audience.iter().zip(&feeds) {
        let docs: Vec<&str> = f.iter().map(|e| e.doc.as_str()).collect();
        assert_eq!(docs, vec!["doc:{second}", "doc:{first}"], "feed of {u} (newest first)");
    }
}
