//! AGENT.FANOUT ... STREAM key: topic-stream entries and the consumer-group-aware trim.

mod common;

use agentic_tests::Server;
use common::*;
use redis::{Connection, Value};

const STREAM: &str = "ts:{sports}";

/// A stream entry: id and field/value pairs.
type StreamEntry = (String, Vec<(String, String)>);

/// (id, [(field, value)]) of every entry, oldest first.
fn entries(c: &mut Connection) -> Vec<StreamEntry> {
    redis::cmd("XRANGE").arg(STREAM).arg("-").arg("+").query(c).expect("XRANGE")
}

fn docs_in_stream(c: &mut Connection) -> Vec<String> {
    entries(c)
        .into_iter()
        .map(|(_, f)| {
            assert_eq!(f[0].0, "doc");
            f[0].1.clone()
        })
        .collect()
}

fn fan(c: &mut Connection, i: usize) {
    fanout_with(c, "sports", &format!("doc:{i}"), &format!("body {i}"), &["STREAM", STREAM]);
}

fn group_create(c: &mut Connection, group: &str) {
    let _: () = redis::cmd("XGROUP").arg("CREATE").arg(STREAM).arg(group).arg("$").arg("MKSTREAM").query(c).expect("XGROUP CREATE");
}

/// XREADGROUP of up to `count` new entries; returns their ids.
fn read_group(c: &mut Connection, group: &str, count: usize) -> Vec<String> {
    let v: Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg("consumer-1")
        .arg("COUNT")
        .arg(count)
        .arg("STREAMS")
        .arg(STREAM)
        .arg(">")
        .query(c)
        .expect("XREADGROUP");
    let reply: Vec<(String, Vec<StreamEntry>)> = match v {
        Value::Nil => return vec![],
        other => redis::from_redis_value_ref(&other).expect("XREADGROUP reply"),
    };
    reply.into_iter().flat_map(|(_, es)| es.into_iter().map(|(id, _)| id)).collect()
}

fn ack(c: &mut Connection, group: &str, ids: &[String]) {
    let n: i64 = redis::cmd("XACK").arg(STREAM).arg(group).arg(ids).query(c).expect("XACK");
    assert_eq!(n as usize, ids.len());
}

fn names(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("doc:{i}")).collect()
}

#[test]
fn stream_entries_carry_doc_and_data() {
    let server = Server::start();
    let mut c = server.conn();
    subscribe(&mut c, "user:{1}", &["sports"]);
    assert_eq!(fanout_with(&mut c, "sports", "doc:{a}", "{\"t\":1}", &["STREAM", STREAM]), (1, 0));
    // A duplicate for every user is still a new stream entry; so is a topic nobody follows.
    assert_eq!(fanout_with(&mut c, "sports", "doc:{a}", "{\"t\":1}", &["STREAM", STREAM]), (0, 1));
    assert_eq!(fanout_with(&mut c, "nobody", "doc:{b}", "plain", &["STREAM", "ts:{nobody}"]), (0, 0));

    let es = entries(&mut c);
    assert_eq!(es.len(), 2);
    for (_, fields) in &es {
        assert_eq!(fields, &vec![("doc".to_string(), "doc:{a}".to_string()), ("data".to_string(), "{\"t\":1}".to_string())]);
    }
    assert_eq!(xlen(&mut c, "ts:{nobody}"), 1);
    assert_eq!(stat(&mut c, "stream_appends"), 3);
    // Without STREAM no stream is written.
    fanout(&mut c, "sports", "doc:{c}", "x");
    assert_eq!(xlen(&mut c, STREAM), 2);
    assert_eq!(stat(&mut c, "stream_appends"), 3);
}

#[test]
fn trimmed_to_topic_maxlen_without_consumer_groups() {
    let server = Server::builder().module_args(&["topic-maxlen", "5"]).start();
    let mut c = server.conn();
    for i in 0..8 {
        fan(&mut c, i);
    }
    assert_eq!(xlen(&mut c, STREAM), 5);
    assert_eq!(docs_in_stream(&mut c), names(3..8));
    assert_eq!(stat(&mut c, "stream_trimmed"), 3);
    assert_eq!(stat(&mut c, "stream_trim_deferred"), 0);
}

#[test]
fn unread_entries_of_a_group_are_kept_until_acknowledged() {
    let server = Server::builder().module_args(&["topic-maxlen", "5"]).start();
    let mut c = server.conn();
    group_create(&mut c, "fast");
    group_create(&mut c, "slow");
    for i in 0..8 {
        fan(&mut c, i);
    }
    assert_eq!(xlen(&mut c, STREAM), 8, "nothing unprocessed may be dropped");
    assert!(stat(&mut c, "stream_trim_deferred") > 0);
    assert_eq!(stat(&mut c, "stream_trimmed"), 0);

    // One group processes everything: the other still holds the entries back.
    let ids = read_group(&mut c, "fast", 100);
    assert_eq!(ids.len(), 8);
    ack(&mut c, "fast", &ids);
    fan(&mut c, 8);
    assert_eq!(xlen(&mut c, STREAM), 9);

    let ids = read_group(&mut c, "slow", 100);
    assert_eq!(ids.len(), 9);
    ack(&mut c, "slow", &ids);
    fan(&mut c, 9);
    assert_eq!(xlen(&mut c, STREAM), 5);
    assert_eq!(docs_in_stream(&mut c), names(5..10));
    assert_eq!(stat(&mut c, "stream_trimmed"), 5);
    assert_eq!(stat(&mut c, "stream_forced_drops"), 0);
}

#[test]
fn read_but_unacknowledged_entries_are_kept() {
    let server = Server::builder().module_args(&["topic-maxlen", "5"]).start();
    let mut c = server.conn();
    group_create(&mut c, "workers");
    for i in 0..8 {
        fan(&mut c, i);
    }
    let ids = read_group(&mut c, "workers", 100);
    assert_eq!(ids.len(), 8);
    ack(&mut c, "workers", &ids[..2]);
    let deferred_before = stat(&mut c, "stream_trim_deferred");
    fan(&mut c, 8);
    // 9 entries, maxlen 5: only the 2 acknowledged ones may go.
    assert_eq!(xlen(&mut c, STREAM), 7);
    assert_eq!(docs_in_stream(&mut c), names(2..9));
    assert!(stat(&mut c, "stream_trim_deferred") > deferred_before);

    // Every pending entry can still be claimed with its data.
    let claimed: Vec<StreamEntry> =
        redis::cmd("XCLAIM").arg(STREAM).arg("workers").arg("consumer-2").arg(0).arg(&ids[2..]).query(&mut c).expect("XCLAIM");
    assert_eq!(claimed.len(), 6);
    for (k, (_, fields)) in claimed.iter().enumerate() {
        assert_eq!(fields[1], ("data".to_string(), format!("body {}", k + 2)));
    }

    // Acknowledging them lets the next fan-out trim to maxlen.
    ack(&mut c, "workers", &ids[2..]);
    let rest = read_group(&mut c, "workers", 100);
    ack(&mut c, "workers", &rest);
    fan(&mut c, 9);
    assert_eq!(docs_in_stream(&mut c), names(5..10));
}

#[test]
fn hard_maxlen_forces_drops_and_counts_them() {
    let server = Server::builder().module_args(&["topic-maxlen", "5", "topic-hard-maxlen", "7"]).start();
    let mut c = server.conn();
    group_create(&mut c, "idle");
    for i in 0..7 {
        fan(&mut c, i);
    }
    assert_eq!(xlen(&mut c, STREAM), 7, "up to the hard limit nothing unprocessed is dropped");
    assert_eq!(stat(&mut c, "stream_forced_drops"), 0);
    fan(&mut c, 7);
    assert_eq!(xlen(&mut c, STREAM), 5);
    assert_eq!(docs_in_stream(&mut c), names(3..8));
    assert_eq!(stat(&mut c, "stream_forced_drops"), 3);
    assert!(server.log_tail(50).contains("had not processed"), "a forced drop is logged:\n{}", server.log_tail(50));
}

/// Trimming several entries in one fan-out (here after lowering topic-maxlen, no consumer group)
/// walks more than one stream entry.
#[test]
fn lowering_topic_maxlen_trims_many_entries_at_once() {
    let server = Server::start();
    let mut c = server.conn();
    for i in 0..8 {
        fan(&mut c, i);
    }
    assert_eq!(xlen(&mut c, STREAM), 8);
    let _: () = redis::cmd("CONFIG").arg("SET").arg("agentic.topic-maxlen").arg("2").query(&mut c).expect("CONFIG SET");
    fan(&mut c, 8);
    assert_eq!(docs_in_stream(&mut c), names(7..9));
    assert_eq!(stat(&mut c, "stream_trimmed"), 7);
    let pong: String = redis::cmd("PING").query(&mut c).expect("PING");
    assert_eq!(pong, "PONG");
}
