//! The module on Valkey Cluster nodes: every command touches only keys of the slots its key specs
//! name and the node serves. Each test reproduces a defect seen on cluster nodes before the module
//! knew about slots (users counted stale and dropped, keys written into slots they do not hash to,
//! no CROSSSLOT, a document written before a refused stream) and shows it gone.

mod common;

use std::collections::HashSet;

use agentic_tests::{wait_for, Cluster};
use common::*;
use redis::{Commands, Connection, Value};

/// Subscribes users through the node that serves each one (a cluster client routes by key).
fn subscribe_routed(cluster: &Cluster, users: &[String], topics: &[&str]) {
    let mut c = cluster.conn();
    for u in users {
        let added: i64 = redis::cmd("AGENT.SUBSCRIBE").arg(u).arg(topics).query(&mut c).expect("AGENT.SUBSCRIBE");
        assert_eq!(added, topics.len() as i64);
    }
}

fn fanout_reply(c: &mut Connection, args: &[&str]) -> redis::RedisResult<Value> {
    redis::cmd("AGENT.FANOUT").arg(args).query(c)
}

/// Every key a node holds hashes to a slot it serves, and CLUSTER COUNTKEYSINSLOT agrees with
/// CLUSTER KEYSLOT for every key.
fn assert_keys_in_their_slots(cluster: &Cluster) {
    for node in &cluster.nodes[..cluster.primaries] {
        let mut c = node.conn();
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).expect("KEYS");
        let mut per_slot = std::collections::HashMap::<i64, i64>::new();
        for k in &keys {
            let slot: i64 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(k).query(&mut c).expect("KEYSLOT");
            *per_slot.entry(slot).or_default() += 1;
            let owner = cluster.primary_of_slot(slot as u16);
            assert_eq!(owner.port, node.port, "key {k} (slot {slot}) is on node {} but its slot is served by {}", node.port, owner.port);
        }
        for (slot, n) in per_slot {
            let counted: i64 = redis::cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot).query(&mut c).expect("COUNTKEYSINSLOT");
            assert_eq!(counted, n, "slot {slot} on node {}", node.port);
        }
    }
}

#[test]
fn a_one_node_cluster_delivers_to_every_subscriber() {
    let cluster = Cluster::builder(1, 0).start();
    let node = &cluster.nodes[0];
    let mut c = node.conn();
    let n = 3_000;
    subscribe_many(&mut c, &users(0..n), "world");
    // The document's slot differs from almost every user's: each user must still be found.
    assert_eq!(fanout(&mut c, "world", "doc:{d1}", "hello"), (n as i64, 0));
    assert_eq!(stat(&mut c, "fanout_stale_subscribers"), 0, "no subscriber may be dropped as stale");
    assert_eq!(topic_counts(&mut c).get("world"), Some(&(n as i64)));
    // A second document reaches them all again (nobody was dropped from the index).
    assert_eq!(fanout(&mut c, "world", "doc:{d2}", "again"), (n as i64, 0));
    for u in ["user:{0}", "user:{1234}", "user:{2999}"] {
        assert_eq!(feed_docs(&mut c, u), vec!["doc:{d2}", "doc:{d1}"], "{u}");
    }
}

#[test]
fn users_of_another_slot_get_crossslot_and_nothing_is_written() {
    let cluster = Cluster::builder(1, 0).start();
    let mut c = cluster.nodes[0].conn();
    let other = "user:{1}";
    assert_ne!(cluster.key_slot(other), cluster.key_slot("doc:{2}"));
    let err = fanout_reply(&mut c, &["news", "doc:{2}", "x", "USERS", other]).expect_err("cross-slot fan-out must fail");
    assert_eq!(err.code(), Some("CROSSSLOT"), "{err}");
    let err = fanout_reply(&mut c, &["news", "doc:{2}", "x", "STREAM", "topic:news"]).expect_err("cross-slot stream must fail");
    assert_eq!(err.code(), Some("CROSSSLOT"), "{err}");
    for key in [other, "doc:{2}", "topic:news"] {
        assert!(!exists(&mut c, key), "{key} must not have been written");
    }
    // The same keys in one slot are accepted.
    let v = fanout_reply(&mut c, &["news", "doc:{1}:a", "x", "STREAM", "topic:{1}", "USERS", "user:{1}"]).expect("same-slot fan-out");
    assert_eq!(parse_outcome(&v), (1, 0));
    assert_eq!(feed_docs(&mut c, "user:{1}"), vec!["doc:{1}:a"]);
}

#[test]
fn a_primary_answers_moved_for_keys_it_does_not_serve() {
    let cluster = Cluster::builder(3, 0).start();
    let user = "user:{7}";
    let owner = cluster.primary_of_key(user);
    let elsewhere = cluster.nodes.iter().find(|n| n.port != owner.port).expect("another node");
    let doc = "doc:{7}:x".to_string();
    let err = fanout_reply(&mut elsewhere.conn(), &["news", &doc, "x", "USERS", user]).expect_err("must be redirected");
    assert_eq!(err.code(), Some("MOVED"), "{err}");
    let total: i64 = cluster.nodes.iter().map(|n| dbsize(&mut n.conn())).sum();
    assert_eq!(total, 0, "nothing was written anywhere");
}

#[test]
fn subscriber_fanouts_on_each_primary_keep_every_key_in_its_slot() {
    let cluster = Cluster::builder(3, 0).start();
    let all = users(0..300);
    subscribe_routed(&cluster, &all, &["sports"]);
    subscribe_routed(&cluster, &all[..100], &["tech"]);
    let mut routed = cluster.conn();
    // Each primary fans out to its own subscribers; the documents land on their own slots' nodes.
    for (i, node) in cluster.nodes.iter().enumerate() {
        let mut c = node.conn();
        let local: i64 = topic_counts(&mut c).get("sports").copied().unwrap_or(0);
        assert!(local > 0, "node {i} has subscribers");
        // A document key this node serves.
        let doc =
            (0..).map(|k| format!("doc:{{n{i}-{k}}}")).find(|d| cluster.primary_of_key(d).port == node.port).expect("a local doc key");
        let (delivered, dups) = fanout(&mut c, "sports", &doc, "payload");
        assert_eq!((delivered, dups), (local, 0), "node {i}");
        // Named users of the document's own slot, through the routed client.
        let tag = &doc[4..doc.find('}').expect("tag") + 1];
        let v: Value = redis::cmd("AGENT.FANOUT")
            .arg("tech")
            .arg(format!("doc:{tag}:2"))
            .arg("p")
            .arg("USERS")
            .arg(format!("user:{tag}"))
            .query(&mut routed)
            .expect("USERS fan-out");
        assert_eq!(parse_outcome(&v), (1, 0));
    }
    // Unsubscribe and delete some users, then fan out again.
    for u in &all[..30] {
        let _: i64 = redis::cmd("AGENT.UNSUBSCRIBE").arg(u).arg("sports").query(&mut routed).expect("UNSUBSCRIBE");
    }
    for u in &all[30..60] {
        let _: i64 = routed.del(u).expect("DEL");
    }
    let mut delivered_total = 0;
    for (i, node) in cluster.nodes.iter().enumerate() {
        let doc =
            (0..).map(|k| format!("doc:{{m{i}-{k}}}")).find(|d| cluster.primary_of_key(d).port == node.port).expect("a local doc key");
        delivered_total += fanout(&mut node.conn(), "sports", &doc, "second").0;
    }
    assert_eq!(delivered_total, 240, "every remaining subscriber, on whichever node, got it once");
    for node in &cluster.nodes {
        assert_eq!(stat(&mut node.conn(), "fanout_stale_subscribers"), 0, "node {}", node.port);
    }
    assert_keys_in_their_slots(&cluster);
    // Each user's feed holds exactly its node's documents, newest first.
    for u in &all[60..80] {
        let docs: Vec<String> = {
            let v: Value = redis::cmd("AGENT.FEED").arg(u).arg("COUNT").arg(100).query(&mut routed).expect("FEED");
            parse_feed(&v).into_iter().map(|e| e.doc).collect()
        };
        assert_eq!(docs.len(), 2, "{u}: {docs:?}");
        assert!(docs[0].starts_with("doc:{m") && docs[1].starts_with("doc:{n"), "{u}: {docs:?}");
    }
}

#[test]
fn feeds_never_read_a_document_of_another_slot() {
    let cluster = Cluster::builder(1, 0).start();
    let mut c = cluster.nodes[0].conn();
    subscribe(&mut c, "user:{u}", &["news"]);
    assert_eq!(fanout(&mut c, "news", "doc:{elsewhere}", "far away"), (1, 0));
    let v = fanout_reply(&mut c, &["news", "doc:{u}:1", "close by", "USERS", "user:{u}"]).expect("same slot");
    assert_eq!(parse_outcome(&v), (1, 0));
    let entries = feed(&mut c, "user:{u}", &[]);
    assert_eq!(entries.len(), 2);
    assert_eq!((entries[0].doc.as_str(), entries[0].payload.as_deref()), ("doc:{u}:1", Some("close by")));
    assert_eq!(
        (entries[1].doc.as_str(), entries[1].payload.as_deref()),
        ("doc:{elsewhere}", None),
        "another slot's document has a nil body"
    );
    assert_eq!(stat(&mut c, "feed_docs_elsewhere"), 1);
    // The client reads it from the node serving it.
    let body: String = c.get("doc:{elsewhere}").expect("GET");
    assert_eq!(body, "far away");
}

#[test]
fn topic_commands_are_served_by_the_catalog_node() {
    let cluster = Cluster::builder(3, 0).start();
    let owner = cluster.primary_of_key("agentic:topics");
    let slot = cluster.key_slot("agentic:topics");
    for node in cluster.nodes.iter().filter(|n| n.port != owner.port) {
        for args in [vec!["AGENT.TOPIC.SET", "space", "Rockets and planets"], vec!["AGENT.TOPIC.LIST"]] {
            let err = expect_err_str(&mut node.conn(), &args);
            assert_eq!(err, format!("MOVED {slot} 127.0.0.1:{}", owner.port), "{args:?} on {}", node.port);
        }
    }
    let mut c = owner.conn();
    let _: Value = redis::cmd("AGENT.TOPIC.SET").arg("space").arg("Rockets and planets").query(&mut c).expect("TOPIC.SET on the owner");
    let got: Value = redis::cmd("AGENT.TOPIC.GET").arg("space").query(&mut c).expect("TOPIC.GET");
    assert!(format!("{got:?}").contains("Rockets and planets"));
    // No node other than the owner holds the catalog key.
    for node in &cluster.nodes {
        let here: i64 = redis::cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot).query(&mut node.conn()).expect("COUNTKEYSINSLOT");
        assert_eq!(here, i64::from(node.port == owner.port), "node {}", node.port);
    }
}

#[test]
fn subscriber_fanout_inside_multi_is_refused_before_any_write() {
    let cluster = Cluster::builder(1, 0).start();
    let mut c = cluster.nodes[0].conn();
    subscribe(&mut c, "user:{1}", &["news"]);
    let _: () = redis::cmd("MULTI").query(&mut c).expect("MULTI");
    let _: Value = redis::cmd("AGENT.FANOUT").arg("news").arg("doc:{m}").arg("x").query(&mut c).expect("queued");
    let r: redis::RedisResult<Value> = redis::cmd("EXEC").query(&mut c);
    let text = match r {
        Ok(v) => format!("{v:?}"),
        Err(e) => e.to_string(),
    };
    assert!(text.contains("cannot run inside MULTI"), "{text}");
    assert!(!exists(&mut c, "doc:{m}"));
    assert!(feed_docs(&mut c, "user:{1}").is_empty());
}

#[test]
fn replicas_apply_deliveries_replicated_one_slot_at_a_time() {
    let cluster = Cluster::builder(1, 1).start();
    let (primary, replica) = (&cluster.nodes[0], &cluster.nodes[1]);
    let mut c = primary.conn();
    subscribe_many(&mut c, &users(0..500), "world");
    for d in 0..5 {
        assert_eq!(fanout(&mut c, "world", &format!("doc:{{r{d}}}"), "x"), (500, 0));
    }
    agentic_tests::wait_replica_synced(primary, replica);
    assert_eq!(digest(&mut c), digest(&mut replica.conn()));
    let mut rc = replica.conn();
    let _: () = redis::cmd("READONLY").query(&mut rc).expect("READONLY");
    assert_eq!(feed_docs(&mut rc, "user:{42}").len(), 5);
    let distinct: HashSet<String> = users(0..500).iter().map(|u| cluster.key_slot(u).to_string()).collect();
    assert!(distinct.len() > 100, "the users span many slots");
}

#[test]
fn atomic_slot_migration_keeps_the_index_exact() {
    let (major, _, _) = agentic_tests::server_version();
    if major < 9 {
        eprintln!("SKIPPED: CLUSTER MIGRATESLOTS needs Valkey 9 (this server is {major}.x)");
        return;
    }
    let cluster = Cluster::builder(2, 0).start();
    let all = users(0..200);
    subscribe_routed(&cluster, &all, &["news"]);
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let before_a = topic_counts(&mut a.conn()).get("news").copied().unwrap_or(0);
    let before_b = topic_counts(&mut b.conn()).get("news").copied().unwrap_or(0);
    assert_eq!(before_a + before_b, 200);
    // Move node a's whole first half of slots to b.
    let b_id = cluster.node_id(b);
    let _: Value = redis::cmd("CLUSTER")
        .arg("MIGRATESLOTS")
        .arg("SLOTSRANGE")
        .arg(0)
        .arg(4095)
        .arg("NODE")
        .arg(&b_id)
        .query(&mut a.conn())
        .expect("MIGRATESLOTS");
    let moved = all.iter().filter(|u| cluster.key_slot(u) <= 4095).count() as i64;
    let ok = wait_for(
        || {
            topic_counts(&mut a.conn()).get("news").copied().unwrap_or(0) == before_a - moved
                && topic_counts(&mut b.conn()).get("news").copied().unwrap_or(0) == before_b + moved
        },
        std::time::Duration::from_secs(30),
    );
    assert!(ok, "index after migration: a {:?}, b {:?} (moved {moved})", topic_counts(&mut a.conn()), topic_counts(&mut b.conn()));
    // Both nodes deliver to exactly their users now.
    let mut total = 0;
    for (i, node) in [a, b].into_iter().enumerate() {
        let doc = (0..).map(|k| format!("doc:{{z{i}-{k}}}")).find(|d| cluster.primary_of_key(d).port == node.port).expect("local doc");
        total += fanout(&mut node.conn(), "news", &doc, "after").0;
        assert_eq!(stat(&mut node.conn(), "fanout_stale_subscribers"), 0);
    }
    assert_eq!(total, 200);
    assert_keys_in_their_slots(&cluster);
}
