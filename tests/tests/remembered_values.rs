//! The fan-out remembers where each subscriber's value lives to skip the keyspace lookup. These
//! tests change user keys behind its back between and during fan-outs: the remembered address
//! must never be used once the key was deleted, expired, renamed, moved, overwritten or flushed.

mod common;

use std::thread;
use std::time::Duration;

use agentic_tests::{wait_for, Server};
use common::*;

fn warm(c: &mut redis::Connection, topic: &str, n: i64) {
    assert_eq!(fanout(c, topic, "doc:warm", "warm-up").0, n, "warm-up fan-out reaches everyone");
}

#[test]
fn changes_between_fan_outs_are_seen() {
    let server = Server::start();
    let mut c = server.conn();
    for u in ["user:{1}", "user:{2}", "user:{3}", "user:{4}", "user:{5}"] {
        subscribe(&mut c, u, &["sports"]);
    }
    warm(&mut c, "sports", 5);

    let _: i64 = redis::cmd("DEL").arg("user:{1}").query(&mut c).expect("DEL");
    let _: () = redis::cmd("RENAME").arg("user:{2}").arg("user:{20}").query(&mut c).expect("RENAME");
    let _: i64 = redis::cmd("PEXPIRE").arg("user:{3}").arg(30).query(&mut c).expect("PEXPIRE");
    let _: () = redis::cmd("SET").arg("user:{4}").arg("now a string").query(&mut c).expect("SET");
    thread::sleep(Duration::from_millis(80));

    // Only user:{5} and the renamed user:{20} are still subscribers.
    assert_eq!(fanout(&mut c, "sports", "doc:after", "x"), (2, 0));
    assert!(!exists(&mut c, "user:{1}") && !exists(&mut c, "user:{2}") && !exists(&mut c, "user:{3}"));
    let s: String = redis::cmd("GET").arg("user:{4}").query(&mut c).expect("GET");
    assert_eq!(s, "now a string");
    assert_eq!(feed_docs(&mut c, "user:{20}"), vec!["doc:after", "doc:warm"]);
    assert_eq!(feed_docs(&mut c, "user:{5}"), vec!["doc:after", "doc:warm"]);
}

#[test]
fn moved_user_is_not_written_through_the_old_database() {
    let server = Server::start();
    let mut c = server.conn();
    subscribe(&mut c, "user:{1}", &["sports"]);
    subscribe(&mut c, "user:{2}", &["sports"]);
    warm(&mut c, "sports", 2);
    let moved: i64 = redis::cmd("MOVE").arg("user:{1}").arg(3).query(&mut c).expect("MOVE");
    assert_eq!(moved, 1);
    assert_eq!(fanout(&mut c, "sports", "doc:after", "x"), (1, 0));
    let _: () = redis::cmd("SELECT").arg(3).query(&mut c).expect("SELECT");
    let v: Vec<u8> = redis::cmd("DUMP").arg("user:{1}").query(&mut c).expect("DUMP");
    let _: () = redis::cmd("SELECT").arg(0).query(&mut c).expect("SELECT");
    // Restored back into db 0 under a new name, its feed holds only the warm-up document.
    let _: () = redis::cmd("RESTORE").arg("user:{9}").arg(0).arg(v).query(&mut c).expect("RESTORE");
    assert_eq!(feed_docs(&mut c, "user:{9}"), vec!["doc:warm"]);
}

#[test]
fn flush_during_a_sliced_fan_out_neither_crashes_nor_resurrects_users() {
    let server = Server::builder().module_args(&["fanout-slice-us", "10"]).start();
    let mut c = server.conn();
    let n = 20_000usize;

    // The flush and a look at the job queue run atomically (MULTI), so a busy machine that lets
    // the job finish before the flush is seen, and the attempt repeated, instead of being
    // mistaken for users who were delivered to after they were flushed.
    for attempt in 0..5 {
        let _: () = redis::cmd("FLUSHALL").query(&mut c).expect("FLUSHALL");
        subscribe_many(&mut c, &users(0..n), "world");
        warm(&mut c, "world", n as i64);
        let doc = format!("doc:{{big{attempt}}}");
        let ((delivered, _), flushed) = during_fanout(&server, &mut c, "world", &doc, "big news", |c| {
            let (stats, _): (Vec<String>, String) =
                redis::pipe().atomic().cmd("AGENT.STATS").cmd("FLUSHALL").arg("ASYNC").query(c).expect("MULTI");
            stats.chunks(2).find(|p| p[0] == "fanout_jobs_pending").map_or(0, |p| p[1].parse::<i64>().unwrap_or(0))
        });
        if flushed.unwrap_or(0) == 0 {
            continue;
        }
        assert!(delivered < n as i64, "users flushed mid-job must not receive the document");
        let pong: String = redis::cmd("PING").query(&mut c).expect("server alive");
        assert_eq!(pong, "PONG");
        let size: i64 = redis::cmd("DBSIZE").query(&mut c).expect("DBSIZE");
        assert_eq!(size, 0, "no user was recreated after the flush");
        assert!(wait_for(|| stat(&mut server.conn(), "user_keys") == 0, Duration::from_secs(5)));
        assert_eq!(fanout(&mut c, "world", "doc:after", "x"), (0, 0));
        // Index entries the job still pointed at were kept until it ended, then freed.
        assert_eq!(stat(&mut c, "index_retired_entries"), 0);
        return;
    }
    panic!("the flush never landed while the fan-out was in progress");
}

#[test]
fn unsubscribing_during_a_sliced_fan_out_stops_delivery() {
    let server = Server::builder().module_args(&["fanout-slice-us", "10"]).start();
    let mut c = server.conn();
    let n = 20_000usize;
    let audience = users(0..n);
    subscribe_many(&mut c, &audience, "world");
    warm(&mut c, "world", n as i64);
    let last = audience[n - 1].clone();

    // The last subscriber is served last: it leaves before its turn. The unsubscribe and a look
    // at the job queue run atomically (MULTI), so a busy machine that lets the job finish first
    // is seen, and the attempt repeated, instead of being mistaken for a delivery after leaving.
    for attempt in 0..5 {
        let doc = format!("doc:{{big{attempt}}}");
        let ((delivered, _), left) = during_fanout(&server, &mut c, "world", &doc, "big news", |c| {
            let (left, stats): (i64, Vec<String>) =
                redis::pipe().atomic().cmd("AGENT.UNSUBSCRIBE").arg(&last).arg("world").cmd("AGENT.STATS").query(c).expect("MULTI");
            let pending = stats.chunks(2).find(|p| p[0] == "fanout_jobs_pending").map_or(0, |p| p[1].parse::<i64>().unwrap_or(0));
            (left, pending)
        });
        let Some((left, pending)) = left else { continue };
        assert_eq!(left, 1);
        if pending == 0 {
            subscribe(&mut c, &last, &["world"]);
            continue;
        }
        assert_eq!(delivered, n as i64 - 1, "the user who left mid-job was skipped");
        assert!(!feed_docs(&mut c, &last).contains(&doc), "the document did not reach the user who left");
        return;
    }
    panic!("the unsubscribe never landed while the fan-out was in progress");
}
