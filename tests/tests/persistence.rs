//! Persistence of user keys and the subscriber index: DEBUG RELOAD, RDB, AOF (command stream and
//! rewrite through AGENT.LOADUSER), kill -9 with appendfsync always, DUMP / RESTORE.

mod common;

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use agentic_tests::{info_field, wait_for, Server, ServerBuilder};
use common::*;
use redis::Connection;

const BIG: usize = 300;

/// Everything a restart must keep.
#[derive(Debug, PartialEq)]
struct Snapshot {
    digest: String,
    dbsize: i64,
    feeds: Vec<Vec<Entry>>,
    truth: HashMap<String, i64>,
    index: HashMap<String, i64>,
}

fn snapshot(c: &mut Connection) -> Snapshot {
    Snapshot {
        digest: digest(c),
        dbsize: dbsize(c),
        feeds: all_feeds(c, &workload_users(BIG)),
        truth: true_topic_counts(c),
        index: topic_counts(c),
    }
}

/// After a restart the index is rebuilt from the keyspace: exactly the true subscribers, and a
/// fan-out per topic reaches all of them.
fn assert_index_works(c: &mut Connection, before: &Snapshot) {
    assert_eq!(topic_counts(c), before.truth, "index after restart");
    for (t, n) in &before.truth {
        assert_eq!(fanout(c, t, &format!("doc:{{after-restart-{t}}}"), "z"), (*n, 0), "fan-out of {t}");
    }
}

fn aof_builder() -> ServerBuilder {
    Server::builder().arg("--appendonly", "yes").arg("--appendfsync", "always").module_args(&["fanout-slice-us", "20"])
}

fn wait_rewrite_done(c: &mut Connection) {
    let done = wait_for(
        || {
            info_field(c, "persistence", "aof_rewrite_in_progress").as_deref() == Some("0")
                && info_field(c, "persistence", "aof_rewrite_scheduled").as_deref() == Some("0")
        },
        Duration::from_secs(20),
    );
    assert!(done, "AOF rewrite did not finish");
    assert_eq!(info_field(c, "persistence", "aof_last_bgrewrite_status").as_deref(), Some("ok"));
}

/// Concatenated contents of every AOF file in `dir/appendonlydir` whose name contains `part`.
fn aof_bytes(dir: &Path, part: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir.join("appendonlydir")).expect("appendonlydir") {
        let p = e.expect("dir entry").path();
        if p.file_name().is_some_and(|n| n.to_string_lossy().contains(part)) {
            out.extend(fs::read(&p).expect("read AOF file"));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn debug_reload_keeps_digest_feeds_and_index() {
    let server = Server::builder().module_args(&["fanout-slice-us", "20"]).start();
    let mut c = server.conn();
    workload(&mut c, BIG);
    let before = snapshot(&mut c);
    let _: () = redis::cmd("DEBUG").arg("RELOAD").query(&mut c).expect("DEBUG RELOAD");
    let after = snapshot(&mut c);
    assert_eq!(after, before);
    assert_eq!(stat(&mut c, "load_errors"), 0);
    assert_eq!(stat(&mut c, "user_keys") as usize, user_keys(&mut c).len());
    assert_index_works(&mut c, &before);
}

#[test]
fn rdb_save_and_restart_keeps_everything() {
    let server = Server::builder().module_args(&["fanout-slice-us", "20"]).start();
    let mut c = server.conn();
    workload(&mut c, BIG);
    let before = snapshot(&mut c);
    let _: () = redis::cmd("SAVE").query(&mut c).expect("SAVE");
    drop(c);
    let dir = server.stop();
    let server = Server::builder().adopt_dir(dir).start();
    let mut c = server.conn();
    assert_eq!(snapshot(&mut c).digest, before.digest);
    assert_eq!(snapshot(&mut c).feeds, before.feeds);
    assert_index_works(&mut c, &before);
}

#[test]
fn aof_replay_after_restart_gives_the_same_digest() {
    let server = aof_builder().start();
    let mut c = server.conn();
    workload(&mut c, BIG);
    let before = snapshot(&mut c);
    drop(c);
    let dir = server.stop();
    let server = aof_builder().adopt_dir(dir).start();
    let mut c = server.conn();
    let after = snapshot(&mut c);
    assert_eq!(after.digest, before.digest);
    assert_eq!(after.feeds, before.feeds);
    assert_eq!(after.truth, before.truth);
    assert_index_works(&mut c, &before);
}

#[test]
fn aof_rewrite_uses_loaduser_and_restores_the_same_state() {
    let builder = aof_builder().arg("--aof-use-rdb-preamble", "no");
    let server = builder.clone().start();
    let mut c = server.conn();
    workload(&mut c, BIG);
    let _: String = redis::cmd("BGREWRITEAOF").query(&mut c).expect("BGREWRITEAOF");
    wait_rewrite_done(&mut c);
    let base = aof_bytes(&server.dir, ".base.");
    assert!(contains(&base, b"AGENT.LOADUSER"), "the rewritten AOF must recreate user keys with AGENT.LOADUSER");
    assert!(!contains(&base, b"AGENT.DELIVER"), "the rewrite replaces the delivery history");
    // Writes after the rewrite land in the incremental file on top of it.
    fanout(&mut c, "sports", "doc:{after-rewrite}", "x");
    subscribe(&mut c, "user:{1}", &["tech"]);
    let before = snapshot(&mut c);
    drop(c);
    let dir = server.stop();
    let server = builder.adopt_dir(dir).start();
    let mut c = server.conn();
    let after = snapshot(&mut c);
    assert_eq!(after.digest, before.digest);
    assert_eq!(after.feeds, before.feeds);
    assert_eq!(after.index, before.index, "AGENT.STATS topic counts after loading the rewrite");
    assert_eq!(stat(&mut c, "load_errors"), 0);
    assert_index_works(&mut c, &before);
}

#[test]
fn kill9_with_appendfsync_always_loses_nothing() {
    let server = aof_builder().start();
    let mut c = server.conn();
    workload(&mut c, BIG);
    let before = snapshot(&mut c);
    drop(c);
    let dir = server.kill9();
    let server = aof_builder().adopt_dir(dir).start();
    let mut c = server.conn();
    let after = snapshot(&mut c);
    assert_eq!(after.digest, before.digest);
    assert_eq!(after.feeds, before.feeds);
    assert_index_works(&mut c, &before);
}

#[test]
fn dump_restore_round_trips_and_registers_the_user() {
    let server = Server::start();
    let mut c = server.conn();
    subscribe(&mut c, "user:{1}", &["sports", "news"]);
    fanout(&mut c, "sports", "doc:1", "one");
    fanout(&mut c, "news", "doc:2", "two");
    let dump: Vec<u8> = redis::cmd("DUMP").arg("user:{1}").query(&mut c).expect("DUMP");
    assert!(!dump.is_empty());

    let _: () = redis::cmd("RESTORE").arg("user:{2}").arg(0).arg(&dump).query(&mut c).expect("RESTORE");
    assert_eq!(key_type(&mut c, "user:{2}"), "agentuser");
    assert_eq!(interests(&mut c, "user:{2}"), vec!["news", "sports"]);
    assert_eq!(feed(&mut c, "user:{2}", &[]), feed(&mut c, "user:{1}", &[]));
    let dump2: Vec<u8> = redis::cmd("DUMP").arg("user:{2}").query(&mut c).expect("DUMP");
    assert_eq!(dump2, dump, "DUMP of the restored key is byte-identical");
    // The restored key is in the index: it receives fan-outs, with the seen-filter restored.
    assert_eq!(fanout(&mut c, "sports", "doc:1", "one"), (0, 2));
    assert_eq!(fanout(&mut c, "sports", "doc:3", "three"), (2, 0));
    assert_eq!(topic_counts(&mut c)["news"], 2);

    // RESTORE REPLACE over an existing user, and RESTORE into another server.
    let _: () = redis::cmd("RESTORE").arg("user:{1}").arg(0).arg(&dump).arg("REPLACE").query(&mut c).expect("RESTORE REPLACE");
    assert_eq!(feed_docs(&mut c, "user:{1}"), vec!["doc:2", "doc:1"]);
    let other = Server::start();
    let mut o = other.conn();
    let _: () = redis::cmd("RESTORE").arg("user:{7}").arg(0).arg(&dump).query(&mut o).expect("RESTORE elsewhere");
    assert_eq!(fanout(&mut o, "news", "doc:9", "nine"), (1, 0));
    assert_eq!(feed_docs(&mut o, "user:{7}"), vec!["doc:9", "doc:2", "doc:1"]);

    // A corrupted payload is refused by the server's checksum, nothing is written.
    let mut bad = dump.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    let r: redis::RedisResult<()> = redis::cmd("RESTORE").arg("user:{8}").arg(0).arg(&bad).query(&mut o);
    assert!(r.is_err());
    assert!(!exists(&mut o, "user:{8}"));
}

/// The commands of an AOF file (RESP arrays of bulk strings), in order.
fn parse_aof(mut b: &[u8]) -> Vec<Vec<Vec<u8>>> {
    fn line<'a>(b: &mut &'a [u8]) -> &'a [u8] {
        let end = b.windows(2).position(|w| w == b"\r\n").expect("CRLF");
        let l = &b[..end];
        *b = &b[end + 2..];
        l
    }
    let mut cmds = Vec::new();
    while !b.is_empty() {
        let head = line(&mut b);
        assert_eq!(head[0], b'*', "AOF record {:?}", String::from_utf8_lossy(head));
        let n: usize = std::str::from_utf8(&head[1..]).expect("count").parse().expect("count");
        let mut args = Vec::with_capacity(n);
        for _ in 0..n {
            let h = line(&mut b);
            assert_eq!(h[0], b'$');
            let len: usize = std::str::from_utf8(&h[1..]).expect("len").parse().expect("len");
            args.push(b[..len].to_vec());
            b = &b[len + 2..];
        }
        cmds.push(args);
    }
    cmds
}

#[test]
fn loaduser_replaces_a_user_and_its_index_entries() {
    let server = aof_builder().arg("--aof-use-rdb-preamble", "no").start();
    let mut c = server.conn();
    subscribe(&mut c, "user:{1}", &["sports", "news"]);
    fanout(&mut c, "sports", "doc:1", "one");
    let _: String = redis::cmd("BGREWRITEAOF").query(&mut c).expect("BGREWRITEAOF");
    wait_rewrite_done(&mut c);
    let cmds = parse_aof(&aof_bytes(&server.dir, ".base."));
    let load = cmds
        .iter()
        .find(|a| a[0].eq_ignore_ascii_case(b"AGENT.LOADUSER") && a[1] == b"user:{1}")
        .expect("AGENT.LOADUSER user:{1} in the rewritten AOF");
    let blob = load[2].clone();

    // Onto an existing user following other topics: replaced, index follows.
    let other = Server::start();
    let mut o = other.conn();
    subscribe(&mut o, "user:{1}", &["tech"]);
    let ok: String = redis::cmd("AGENT.LOADUSER").arg("user:{1}").arg(&blob).query(&mut o).expect("LOADUSER");
    assert_eq!(ok, "OK");
    assert_eq!(interests(&mut o, "user:{1}"), vec!["news", "sports"]);
    let counts = topic_counts(&mut o);
    assert_eq!(counts.get("tech"), None, "{counts:?}");
    assert_eq!(counts.get("sports"), Some(&1));
    assert_eq!(feed_docs(&mut o, "user:{1}"), vec!["doc:1"]);
    assert_eq!(fanout(&mut o, "sports", "doc:1", "one"), (0, 1), "the seen-filter came with the blob");
    assert_eq!(fanout(&mut o, "news", "doc:2", "two"), (1, 0));
    // Onto a new name, and never onto another type.
    let _: String = redis::cmd("AGENT.LOADUSER").arg("user:{2}").arg(&blob).query(&mut o).expect("LOADUSER");
    assert_eq!(fanout(&mut o, "sports", "doc:3", "three"), (2, 0));
    let _: () = redis::cmd("SET").arg("plain").arg("v").query(&mut o).expect("SET");
    let e = expect_err(&mut o, &[b"AGENT.LOADUSER", b"plain", &blob]);
    assert!(e.starts_with("WRONGTYPE"), "{e}");
}
