//! The delivery channel: every fan-out slice announces its (user key, entry id) pairs on
//! `agentic:deliveries`, on the primary and on replicas applying AGENT.DELIVER, never during an
//! AOF load, and not at all when the channel is configured empty. The ids are the feeds' ids.
//! Changes of a user's interests are announced there too (for gateways routing shared entries).

use std::time::Duration;

use agentic_tests::{wait_replica_synced, Server};

fn netstrings(mut msg: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !msg.is_empty() {
        let colon = msg.iter().position(|&b| b == b':').expect("length");
        let len: usize = std::str::from_utf8(&msg[..colon]).unwrap().parse().unwrap();
        out.push(msg[colon + 1..colon + 1 + len].to_vec());
        assert_eq!(msg[colon + 1 + len], b',');
        msg = &msg[colon + 2 + len..];
    }
    out
}

fn listen(server: &Server, channel: &str) -> redis::Connection {
    let mut c = server.conn();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    redis::cmd("SUBSCRIBE").arg(channel).exec(&mut c).expect("SUBSCRIBE");
    c
}

/// (topic, doc key, [(user key, entry id)])
type Announcement = (String, String, Vec<(String, String)>);

/// The next announcement, or None after the timeout.
fn next_announcement(c: &mut redis::Connection) -> Option<Announcement> {
    loop {
        let v = c.recv_response().ok()?;
        let redis::Value::Array(parts) = v else { continue };
        let (Some(redis::Value::BulkString(kind)), Some(redis::Value::BulkString(payload))) = (parts.first(), parts.get(2)) else {
            continue;
        };
        if kind != b"message" {
            continue;
        }
        let f = netstrings(payload);
        if f[0] == b"agentic-interests/1" {
            // Not deliveries: interest changes, such as a replica announcing the AGENT.SUBSCRIBE it
            // applied after the listener subscribed (replication is asynchronous).
            continue;
        }
        assert_eq!(f[0], b"agentic-deliveries/1");
        let s = |b: &Vec<u8>| String::from_utf8(b.clone()).unwrap();
        let pairs = f[3..].chunks(2).map(|p| (s(&p[0]), s(&p[1]))).collect();
        return Some((s(&f[1]), s(&f[2]), pairs));
    }
}

/// The fields of the next message of any kind, or None after the timeout.
fn next_message(c: &mut redis::Connection) -> Option<Vec<String>> {
    loop {
        let v = c.recv_response().ok()?;
        let redis::Value::Array(parts) = v else { continue };
        let (Some(redis::Value::BulkString(kind)), Some(redis::Value::BulkString(payload))) = (parts.first(), parts.get(2)) else {
            continue;
        };
        if kind == b"message" {
            return Some(netstrings(payload).into_iter().map(|f| String::from_utf8(f).unwrap()).collect());
        }
    }
}

fn feed_ids(c: &mut redis::Connection, user: &str) -> Vec<String> {
    let entries: Vec<Vec<redis::Value>> = redis::cmd("AGENT.FEED").arg(user).query(c).expect("AGENT.FEED");
    entries.iter().map(|e| redis::from_redis_value_ref::<String>(&e[0]).unwrap()).collect()
}

#[test]
fn each_slice_announces_its_deliveries_with_the_feed_ids() {
    let server = Server::start();
    let mut c = server.conn();
    for u in ["user:{1}", "user:{2}", "user:{3}"] {
        let _: i64 = redis::cmd("AGENT.SUBSCRIBE").arg(u).arg("sports").query(&mut c).unwrap();
    }
    let _: i64 = redis::cmd("AGENT.SUBSCRIBE").arg("user:{3}").arg("politics").query(&mut c).unwrap();
    let mut sub = listen(&server, "agentic:deliveries");
    let _: redis::Value = redis::cmd("AGENT.FANOUT").arg("sports").arg("doc:{1}").arg("{}").query(&mut c).unwrap();
    let (topic, doc, mut pairs) = next_announcement(&mut sub).expect("an announcement");
    assert_eq!((topic.as_str(), doc.as_str()), ("sports", "doc:{1}"));
    pairs.sort();
    let users: Vec<&str> = pairs.iter().map(|(u, _)| u.as_str()).collect();
    assert_eq!(users, ["user:{1}", "user:{2}", "user:{3}"]);
    for (u, id) in &pairs {
        assert_eq!(feed_ids(&mut c, u), vec![id.clone()], "the announced id is {u}'s feed entry");
    }
    // Duplicates are not announced; a fan-out that reaches nobody announces nothing.
    let _: redis::Value = redis::cmd("AGENT.FANOUT").arg("sports").arg("doc:{1}").arg("{}").query(&mut c).unwrap();
    let _: redis::Value = redis::cmd("AGENT.FANOUT").arg("science").arg("doc:{2}").arg("{}").query(&mut c).unwrap();
    let _: redis::Value = redis::cmd("AGENT.FANOUT").arg("politics").arg("doc:{3}").arg("{}").query(&mut c).unwrap();
    let (topic, _, pairs) = next_announcement(&mut sub).expect("politics announcement");
    assert_eq!((topic.as_str(), pairs.len(), pairs[0].0.as_str()), ("politics", 1, "user:{3}"));
    assert!(next_announcement(&mut sub).is_none());
    let stats: Vec<String> = redis::cmd("AGENT.STATS").query(&mut c).unwrap();
    let stat = |name: &str| stats.chunks(2).find(|p| p[0] == name).map(|p| p[1].parse::<i64>().unwrap());
    assert_eq!(stat("delivery_interest_messages"), Some(4), "the four subscriptions");
    assert_eq!(stat("delivery_messages"), Some(4 + 2), "and two deliveries");
}

#[test]
fn a_large_fanout_is_announced_slice_by_slice_and_completely() {
    let server = Server::builder().module_args(&["fanout-slice-us", "10"]).start();
    let mut c = server.conn();
    let n = 5000;
    let mut pipe = redis::pipe();
    for u in 0..n {
        pipe.cmd("AGENT.SUBSCRIBE").arg(format!("user:{{{u}}}")).arg("health").ignore();
    }
    pipe.exec(&mut c).unwrap();
    let mut sub = listen(&server, "agentic:deliveries");
    let _: redis::Value = redis::cmd("AGENT.FANOUT").arg("health").arg("doc:{big}").arg("{}").query(&mut c).unwrap();
    let mut users = std::collections::HashSet::new();
    let mut messages = 0;
    while users.len() < n {
        let (_, doc, pairs) = next_announcement(&mut sub).expect("more announcements");
        assert_eq!(doc, "doc:{big}");
        messages += 1;
        for (u, _) in pairs {
            assert!(users.insert(u), "announced twice");
        }
    }
    assert!(messages > 1, "a 5,000-user fan-out in 10 us slices takes several slices");
}

#[test]
fn replicas_announce_what_they_apply_and_an_empty_channel_disables() {
    let primary = Server::builder().module_args(&["delivery-channel", ""]).start();
    let replica = Server::builder().replica_of(primary.port).start();
    wait_replica_synced(&primary, &replica);
    let mut c = primary.conn();
    let _: i64 = redis::cmd("AGENT.SUBSCRIBE").arg("user:{r}").arg("climate").query(&mut c).unwrap();
    let mut on_primary = listen(&primary, "agentic:deliveries");
    let mut on_replica = listen(&replica, "agentic:deliveries");
    let _: redis::Value = redis::cmd("AGENT.FANOUT").arg("climate").arg("doc:{r}").arg("{}").query(&mut c).unwrap();
    let (_, doc, pairs) = next_announcement(&mut on_replica).expect("the replica announces");
    assert_eq!(doc, "doc:{r}");
    wait_replica_synced(&primary, &replica);
    assert_eq!(vec![pairs[0].1.clone()], feed_ids(&mut replica.conn(), "user:{r}"));
    assert!(next_announcement(&mut on_primary).is_none(), "the primary's channel is configured off");
}

#[test]
fn an_aof_load_announces_nothing() {
    let dir = agentic_tests::make_temp_dir("delivery-aof");
    let server = Server::builder().dir(&dir).arg("appendonly", "yes").arg("appendfsync", "always").start();
    let mut c = server.conn();
    let _: i64 = redis::cmd("AGENT.SUBSCRIBE").arg("user:{a}").arg("sports").query(&mut c).unwrap();
    for i in 0..50 {
        let _: redis::Value = redis::cmd("AGENT.FANOUT").arg("sports").arg(format!("doc:{{{i}}}")).arg("{}").query(&mut c).unwrap();
    }
    let port = server.port;
    let dir = server.stop();
    let restarted = Server::builder().adopt_dir(&dir).port(port).arg("appendonly", "yes").start();
    let mut c = restarted.conn();
    assert_eq!(feed_ids(&mut c, "user:{a}").len(), 20);
    let stats: Vec<String> = redis::cmd("AGENT.STATS").query(&mut c).unwrap();
    let messages = stats.chunks(2).find(|p| p[0] == "delivery_messages").map(|p| p[1].clone());
    assert_eq!(messages.as_deref(), Some("0"));
}

#[test]
fn interest_changes_are_announced_with_the_whole_new_list() {
    let primary = Server::start();
    let replica = Server::builder().replica_of(primary.port).start();
    wait_replica_synced(&primary, &replica);
    let mut c = primary.conn();
    let mut on_primary = listen(&primary, "agentic:deliveries");
    let mut on_replica = listen(&replica, "agentic:deliveries");
    let run = |c: &mut redis::Connection, args: &[&str]| -> i64 { redis::cmd(args[0]).arg(&args[1..]).query(c).expect("command") };
    let interests = |m: Vec<String>| -> (String, String, Vec<String>) {
        let mut topics = m[2..].to_vec();
        topics.sort();
        (m[0].clone(), m[1].clone(), topics)
    };
    let expect =
        |topics: &[&str]| ("agentic-interests/1".to_string(), "user:{i}".to_string(), topics.iter().map(|t| t.to_string()).collect());
    assert_eq!(run(&mut c, &["AGENT.SUBSCRIBE", "user:{i}", "sports", "politics"]), 2);
    for sub in [&mut on_primary, &mut on_replica] {
        assert_eq!(interests(next_message(sub).expect("announced")), expect(&["politics", "sports"]));
    }
    // No change, no message.
    assert_eq!(run(&mut c, &["AGENT.SUBSCRIBE", "user:{i}", "sports"]), 0);
    assert_eq!(run(&mut c, &["AGENT.UNSUBSCRIBE", "user:{i}", "health"]), 0);
    assert_eq!(run(&mut c, &["AGENT.UNSUBSCRIBE", "user:{i}", "sports"]), 1);
    assert_eq!(interests(next_message(&mut on_primary).expect("announced")), expect(&["politics"]));
    assert_eq!(run(&mut c, &["AGENT.UNSUBSCRIBE", "user:{i}", "politics"]), 1);
    assert_eq!(interests(next_message(&mut on_primary).expect("announced")), expect(&[]), "follows nothing now");
    // (A read that times out closes the connection: the check for silence comes last.)
    // A user key that goes away (DEL here; also expiry, eviction, RENAME, MOVE, an overwrite)
    // follows nothing from then on, on the primary and on the replica; other keys say nothing.
    assert_eq!(run(&mut c, &["AGENT.SUBSCRIBE", "user:{i}", "health"]), 1);
    assert_eq!(interests(next_message(&mut on_primary).expect("announced")), expect(&["health"]));
    let _: () = redis::cmd("SET").arg("doc:{gone}").arg("x").query(&mut c).unwrap();
    assert_eq!(run(&mut c, &["DEL", "doc:{gone}"]), 1);
    assert_eq!(run(&mut c, &["DEL", "user:{i}"]), 1);
    assert_eq!(interests(next_message(&mut on_primary).expect("announced")), expect(&[]), "deleted");
    let on_replica_seen: Vec<_> = std::iter::from_fn(|| next_message(&mut on_replica)).map(interests).collect();
    assert_eq!(on_replica_seen.last(), Some(&expect(&[])), "the replica announces the deletion too: {on_replica_seen:?}");
    assert!(next_message(&mut on_primary).is_none());
    let stats: Vec<String> = redis::cmd("AGENT.STATS").query(&mut c).unwrap();
    let stat = |name: &str| stats.chunks(2).find(|p| p[0] == name).map(|p| p[1].clone());
    assert_eq!(stat("delivery_interest_messages").as_deref(), Some("5"));
    assert_eq!(stat("delivery_messages").as_deref(), Some("5"));
}
