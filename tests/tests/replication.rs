//! Primary + replica: every fan-out reaches the replica as explicit AGENT.DELIVER commands, so the
//! replica ends bit-identical (DEBUG DIGEST), whatever its own configuration.

mod common;

use std::thread;

use agentic_tests::{wait_replica_synced, Server};
use common::*;
use redis::Connection;

const BIG: usize = 2_000;

fn assert_same_state(p: &mut Connection, r: &mut Connection) {
    let (dp, dr) = (digest(p), digest(r));
    assert_ne!(dp, "0000000000000000000000000000000000000000", "primary is empty");
    assert_eq!(dp, dr, "DEBUG DIGEST differs between primary and replica");
    assert_eq!(dbsize(p), dbsize(r));
    let users = workload_users(BIG);
    let (fp, fr) = (all_feeds(p, &users), all_feeds(r, &users));
    for ((u, a), b) in users.iter().zip(&fp).zip(&fr) {
        assert_eq!(a, b, "feed of {u} differs");
    }
    assert!(fp.iter().filter(|f| !f.is_empty()).count() > BIG, "the workload filled the feeds");
    // The replica's subscriber index follows the replicated subscriptions (it may still list
    // deleted users: the index is a superset, repaired by fan-outs).
    assert_eq!(true_topic_counts(p), true_topic_counts(r));
    assert_index_covers_keyspace(p);
    assert_index_covers_keyspace(r);
    for t in TOPICS {
        let key = format!("ts:{t}");
        let a: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE").arg(&key).arg("-").arg("+").query(p).expect("XRANGE");
        let b: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE").arg(&key).arg("-").arg("+").query(r).expect("XRANGE");
        assert_eq!(a, b, "topic stream {key} differs");
    }
}

fn promote_and_fan_out(r: &mut Connection) {
    let _: () = redis::cmd("REPLICAOF").arg("NO").arg("ONE").query(r).expect("REPLICAOF NO ONE");
    let truth = true_topic_counts(r);
    for t in TOPICS.iter().chain(&["world"]) {
        let expected = truth.get(*t).copied().unwrap_or(0);
        assert!(expected > 0, "nobody follows {t}");
        assert_eq!(fanout(r, t, &format!("doc:{{promoted-{t}}}"), "y"), (expected, 0), "topic {t}");
        assert_eq!(topic_counts(r)[*t], expected, "index of {t} repaired by the fan-out");
    }
}

/// A fan-out to the `world` audience in a thread while this connection changes the audience:
/// unsubscribes, deletes and new subscribers race with the slices of the running job.
fn concurrent_phase(server: &Server, c: &mut Connection) {
    let url = server.url();
    let big = thread::spawn(move || {
        let mut a = redis::Client::open(url).expect("url").get_connection().expect("connect");
        fanout(&mut a, "world", "doc:{world-2}", "second wave")
    });
    for i in 0..40 {
        let u = format!("user:{{{}}}", 100 + i * 37);
        match i % 4 {
            0 => {
                unsubscribe(c, &u, &["world"]);
            }
            1 => {
                let _: i64 = redis::cmd("DEL").arg(&u).query(c).expect("DEL");
            }
            2 => {
                subscribe(c, &format!("user:{{late-{i}}}"), &["world"]);
            }
            _ => {
                fanout(c, TOPICS[i % 3], &format!("doc:{{during-{i}}}"), "during");
            }
        }
    }
    let (delivered, duplicates) = big.join().expect("fan-out thread");
    assert_eq!(duplicates, 0);
    assert!(delivered > 0 && delivered <= BIG as i64, "delivered {delivered}");
}

#[test]
fn replica_ends_identical_to_the_primary() {
    let primary = Server::builder().module_args(&["fanout-slice-us", "20"]).start();
    let replica = Server::builder().replica_of(primary.port).start();
    wait_replica_synced(&primary, &replica);
    let mut p = primary.conn();
    let mut r = replica.conn();

    workload(&mut p, BIG);
    assert!(stat(&mut p, "fanout_blocked_calls") >= 1, "the large fan-out was not sliced");
    concurrent_phase(&primary, &mut p);
    wait_replica_synced(&primary, &replica);
    assert_same_state(&mut p, &mut r);

    // The replica is read-only for the module's write commands too.
    let e = expect_err_str(&mut r, &["AGENT.SUBSCRIBE", "user:{1}", "sports"]);
    assert!(e.starts_with("READONLY"), "{e}");
    // It replayed exactly the primary's deliveries: no more, no fewer, and no duplicates
    // (only the users actually delivered to are replicated).
    assert_eq!(stat(&mut r, "fanout_deliveries"), stat(&mut p, "fanout_deliveries"));
    assert_eq!(stat(&mut r, "fanout_duplicates_skipped"), 0);
    // Promoted, the replica fans out to exactly the live subscribers.
    promote_and_fan_out(&mut r);
}

#[test]
fn replica_with_different_config_still_ends_identical() {
    let primary = Server::builder().module_args(&["fanout-slice-us", "20", "feed-len", "10"]).start();
    let replica = Server::builder()
        .replica_of(primary.port)
        .module_args(&["feed-len", "3", "seen-ttl", "5", "seen-capacity", "8", "doc-ttl", "7"])
        .start();
    wait_replica_synced(&primary, &replica);
    let mut p = primary.conn();
    let mut r = replica.conn();
    workload(&mut p, BIG);
    concurrent_phase(&primary, &mut p);
    wait_replica_synced(&primary, &replica);
    // Users with more than 3 entries prove the replica did not apply its own feed-len.
    assert!(feed(&mut r, "user:{2}", &["COUNT", "100"]).len() > 3);
    assert_same_state(&mut p, &mut r);
}

#[test]
fn full_sync_of_an_existing_dataset_rebuilds_the_replica_index() {
    let primary = Server::builder().module_args(&["fanout-slice-us", "20"]).start();
    let mut p = primary.conn();
    workload(&mut p, BIG);
    let replica = Server::builder().replica_of(primary.port).start();
    wait_replica_synced(&primary, &replica);
    let mut r = replica.conn();
    assert_same_state(&mut p, &mut r);
    // The replica keeps following the stream after the full sync.
    fanout(&mut p, "sports", "doc:{after-sync}", "x");
    wait_replica_synced(&primary, &replica);
    assert_same_state(&mut p, &mut r);
    // Promoted, the former replica fans out to the subscribers it learnt from the RDB.
    promote_and_fan_out(&mut r);
}

#[test]
fn blocked_feed_reader_on_a_replica_wakes_on_replicated_deliveries() {
    let primary = Server::start();
    let replica = Server::builder().replica_of(primary.port).start();
    wait_replica_synced(&primary, &replica);
    let mut p = primary.conn();
    subscribe(&mut p, "user:{1}", &["sports"]);
    wait_replica_synced(&primary, &replica);
    let url = replica.url();
    let reader = std::thread::spawn(move || {
        let mut r = redis::Client::open(url).expect("url").get_connection().expect("connect");
        feed(&mut r, "user:{1}", &["AFTER", "$", "BLOCK", "10000"])
    });
    let mut r = replica.conn();
    assert!(
        agentic_tests::wait_for(
            || agentic_tests::info_field(&mut r, "clients", "blocked_clients").as_deref() == Some("1"),
            std::time::Duration::from_secs(5)
        ),
        "the reader did not block on the replica"
    );
    fanout(&mut p, "sports", "doc:{r}", "replicated");
    let got = reader.join().expect("reader thread");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].doc, "doc:{r}");
    assert_eq!(got[0].payload.as_deref(), Some("replicated"));
}

#[test]
fn replica_index_forgets_users_deleted_on_the_primary() {
    let primary = Server::start();
    let replica = Server::builder().replica_of(primary.port).start();
    let mut p = primary.conn();
    let mut r = replica.conn();
    subscribe(&mut p, "user:{1}", &["sports", "news"]);
    subscribe(&mut p, "user:{2}", &["sports"]);
    wait_replica_synced(&primary, &replica);
    assert_eq!(topic_counts(&mut r).get("sports"), Some(&2));
    let _: i64 = redis::cmd("DEL").arg("user:{1}").query(&mut p).expect("DEL");
    wait_replica_synced(&primary, &replica);
    let counts = topic_counts(&mut r);
    assert_eq!(counts.get("sports"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("news"), None, "{counts:?}");
}
