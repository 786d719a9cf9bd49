//! One pipeline for the whole cluster: an article written to news_raw on the primary that serves
//! it is classified once, stored once, appended to its topic stream once and delivered to every
//! subscriber on every primary exactly once, in news_raw order; also when a primary is killed and
//! comes back while articles flow.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use agentic_tests::{wait_for, workspace_dir, Cluster, ClusterBuilder};
use common::*;
use redis::cluster::ClusterConnection;
use redis::Value;

const TOPICS: [&str; 10] =
    ["politics", "business", "technology", "sports", "health", "climate", "science", "education", "entertainment", "finance"];

fn cluster(primaries: usize, extra: &[&'static str]) -> ClusterBuilder {
    cluster_with(primaries, 0, extra)
}

fn cluster_with(primaries: usize, replicas: usize, extra: &[&'static str]) -> ClusterBuilder {
    let model = workspace_dir().join("model/out/tiny");
    assert!(model.join("model.onnx").is_file(), "the tiny test model is missing: run `make tiny-model` (make test does)");
    let model = model.to_str().expect("UTF-8 path").to_string();
    let extra: Vec<&'static str> = extra.to_vec();
    Cluster::builder(primaries, replicas).node(move |b| {
        let mut args = vec!["model-dir", model.as_str(), "pipeline", "yes", "seen-fp-ppm", "1", "cluster-resend-ms", "300"];
        args.extend_from_slice(&extra);
        b.module_args(&args).arg("--cluster-require-full-coverage", "no")
    })
}

fn article_json(id: &str) -> String {
    format!(r#"{{"id":"{id}","title":"Headline {id}","text":"Body of article {id}."}}"#)
}

fn add_article(c: &mut impl redis::ConnectionLike, id: &str) {
    let _: String =
        redis::cmd("XADD").arg("news_raw").arg("*").arg("id").arg(id).arg("data").arg(article_json(id)).query(c).expect("XADD news_raw");
}

/// Writes articles to news_raw on the node at `url` (the ingest node), `pause` apart, on a thread.
fn spawn_writer(url: String, ids: Vec<String>, pause: Duration) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut direct = redis::Client::open(url).expect("url").get_connection().expect("connect");
        for id in ids {
            add_article(&mut direct, &id);
            std::thread::sleep(pause);
        }
    })
}

fn subscribe_everyone(c: &mut ClusterConnection, users: &[String]) {
    for u in users {
        let _: i64 = redis::cmd("AGENT.SUBSCRIBE").arg(u).arg(&TOPICS[..]).query(c).expect("AGENT.SUBSCRIBE");
    }
}

fn feed_doc_keys(c: &mut ClusterConnection, user: &str) -> Vec<String> {
    let v: Value = redis::cmd("AGENT.FEED").arg(user).arg("COUNT").arg(1000).query(c).expect("AGENT.FEED");
    parse_feed(&v).into_iter().map(|e| e.doc).collect()
}

fn sum_stat(cluster: &Cluster, name: &str) -> i64 {
    cluster.nodes.iter().map(|n| stat(&mut n.conn(), name)).sum()
}

fn cluster_report(cluster: &Cluster) -> Vec<(u16, HashMap<String, String>)> {
    cluster
        .nodes
        .iter()
        .map(|node| {
            let s = stats(&mut node.conn())
                .into_iter()
                .filter(|(k, v)| (k.starts_with("cluster_") || k.starts_with("pipeline_") || k.starts_with("fanout_")) && v != "0")
                .collect();
            (node.port, s)
        })
        .collect()
}

fn wait_all_acked(cluster: &Cluster, n: i64, within: Duration) {
    let ok = wait_for(|| sum_stat(cluster, "pipeline_acked") >= n, within);
    let report: Vec<HashMap<String, String>> = cluster
        .nodes
        .iter()
        .map(|node| stats(&mut node.conn()).into_iter().filter(|(k, _)| k.starts_with("cluster_") || k.starts_with("pipeline_")).collect())
        .collect();
    assert!(ok, "only {} of {n} articles acknowledged: {report:#?}", sum_stat(cluster, "pipeline_acked"));
}

/// Every user has every article exactly once, newest first in news_raw order; every topic
/// stream entry, document and acknowledgement is there once.
fn assert_exactly_once(cluster: &Cluster, users: &[String], ids: &[String]) {
    assert_feeds_streams_documents(cluster, users, ids);
    assert_eq!(sum_stat(cluster, "fanout_stale_subscribers"), 0);
}

fn assert_feeds_streams_documents(cluster: &Cluster, users: &[String], ids: &[String]) {
    let mut c = cluster.conn();
    let expected: Vec<String> = ids.iter().rev().map(|id| format!("doc:{{{id}}}")).collect();
    let mut wrong: Vec<String> = Vec::new();
    for u in users {
        let got = feed_doc_keys(&mut c, u);
        if got != expected {
            let missing: Vec<&String> = expected.iter().filter(|d| !got.contains(d)).collect();
            let extra = got.len() as i64 - (expected.len() - missing.len()) as i64;
            wrong.push(format!("{u} (node {}): missing {missing:?}, {extra} extra or out of order", cluster.primary_of_key(u).port));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} feeds differ:\n{}\nstats: {:#?}",
        wrong.len(),
        users.len(),
        wrong.join("\n"),
        cluster_report(cluster)
    );
    let mut in_streams: Vec<(String, String)> = Vec::new();
    for t in TOPICS {
        let entries: Vec<(String, HashMap<String, String>)> =
            redis::cmd("XRANGE").arg(format!("topic:{t}")).arg("-").arg("+").query(&mut c).expect("XRANGE");
        in_streams.extend(entries.into_iter().map(|(id, fields)| (fields.get("doc").cloned().unwrap_or_default(), format!("{t} {id}"))));
    }
    in_streams.sort();
    assert_eq!(in_streams.len(), ids.len(), "each article is in its topic stream once: {in_streams:?}");
    for id in ids {
        let body: String = redis::cmd("GET").arg(format!("doc:{{{id}}}")).query(&mut c).expect("GET doc");
        assert!(body.contains("\"topic\""), "{id}: {body}");
    }
    let pending: Value = redis::cmd("XPENDING").arg("news_raw").arg("agentic").query(&mut c).expect("XPENDING");
    assert!(matches!(&pending, Value::Array(p) if p.first() == Some(&Value::Int(0))), "nothing pending: {pending:?}");
    assert_eq!(sum_stat(cluster, "cluster_messages_malformed"), 0);
}

#[test]
fn every_article_reaches_subscribers_on_every_primary_once_in_order() {
    let cluster = cluster(3, &[]).start();
    let mut c = cluster.conn();
    let users = users(0..600);
    subscribe_everyone(&mut c, &users);
    for node in &cluster.nodes {
        assert!(topic_counts(&mut node.conn()).get("sports").copied().unwrap_or(0) > 100, "users on every primary");
    }
    let ids: Vec<String> = (0..10).map(|i| format!("a{i}")).collect();
    for id in &ids {
        add_article(&mut c, id);
    }
    wait_all_acked(&cluster, 10, Duration::from_secs(30));
    assert_exactly_once(&cluster, &users, &ids);
    // Only the ingest node read news_raw; every primary applied every article.
    let ingest = cluster.primary_of_key("news_raw");
    for node in &cluster.nodes {
        let mut n = node.conn();
        assert_eq!(stat(&mut n, "pipeline_read"), if node.port == ingest.port { 10 } else { 0 });
        // Articles sent again (an acknowledgement slower than cluster-resend-ms) are applied again
        // and change nothing; they are counted apart.
        let applied = stat(&mut n, "cluster_articles_applied") - stat(&mut n, "cluster_articles_reapplied");
        assert_eq!(applied, 10, "node {}", node.port);
    }
    assert_eq!(sum_stat(&cluster, "pipeline_deliveries"), 6000);
}

#[test]
fn a_primary_killed_and_restarted_mid_stream_misses_nothing_and_gets_nothing_twice() {
    let mut cluster = cluster(3, &[]).node(|b| b.arg("--appendonly", "yes").arg("--appendfsync", "always")).start();
    let mut c = cluster.conn();
    let users = users(0..300);
    subscribe_everyone(&mut c, &users);
    let ingest_port = cluster.primary_of_key("news_raw").port;
    let victim = cluster.nodes.iter().position(|n| n.port != ingest_port).expect("another primary");
    let ids: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    for id in &ids[..10] {
        add_article(&mut c, id);
    }
    wait_all_acked(&cluster, 10, Duration::from_secs(30));
    // While the victim is down, articles go on arriving at the ingest node.
    let url = cluster.nodes.iter().find(|n| n.port == ingest_port).expect("ingest").url();
    let writer = spawn_writer(url, ids[10..].to_vec(), Duration::from_millis(30));
    std::thread::sleep(Duration::from_millis(100));
    cluster.kill9_and_restart(victim, Duration::from_millis(1500));
    writer.join().expect("writer");
    cluster.wait_healthy();
    wait_all_acked(&cluster, 30, Duration::from_secs(60));
    assert_exactly_once(&cluster, &users, &ids);
    assert!(sum_stat(&cluster, "cluster_resends") > 0, "the restarted primary was sent what it missed");
}

#[test]
fn resharding_3000_slots_while_articles_flow_loses_and_repeats_nothing() {
    let cluster = cluster(3, &[]).start();
    let mut c = cluster.conn();
    let users = users(0..300);
    subscribe_everyone(&mut c, &users);
    let ingest = cluster.primary_of_key("news_raw");
    let (from, to) = {
        let others: Vec<_> = cluster.nodes.iter().filter(|n| n.port != ingest.port).collect();
        (others[0], others[1])
    };
    let ids: Vec<String> = (0..80).map(|i| format!("r{i}")).collect();
    let writer = spawn_writer(ingest.url(), ids.clone(), Duration::from_millis(25));
    // Legacy resharding: MIGRATE moves users, documents and stream entries key by key.
    let out = std::process::Command::new(agentic_tests::cli_binary())
        .args(["--cluster", "reshard", &format!("127.0.0.1:{}", from.port)])
        .args(["--cluster-from", &cluster.node_id(from), "--cluster-to", &cluster.node_id(to)])
        .args(["--cluster-slots", "3000", "--cluster-yes"])
        .output()
        .expect("valkey-cli --cluster reshard");
    assert!(out.status.success(), "reshard failed: {}", String::from_utf8_lossy(&out.stderr));
    writer.join().expect("writer");
    cluster.wait_healthy();
    wait_all_acked(&cluster, ids.len() as i64, Duration::from_secs(60));
    assert_feeds_streams_documents(&cluster, &users, &ids);
    let moved = users.iter().filter(|u| cluster.primary_of_key(u).port == to.port).count();
    assert!(moved > 0, "users moved");
    eprintln!(
        "resharding: {moved} users moved; caught up {} users with {} deliveries; {} stale entries met",
        sum_stat(&cluster, "cluster_catchup_users"),
        sum_stat(&cluster, "cluster_catchup_deliveries"),
        sum_stat(&cluster, "fanout_stale_subscribers")
    );
}

/// Runs CLUSTER FAILOVER on `replica` and waits until it is a primary.
fn failover(replica: &agentic_tests::Server) {
    let _: () = redis::cmd("CLUSTER").arg("FAILOVER").query(&mut replica.conn()).expect("CLUSTER FAILOVER");
    let ok = wait_for(
        || agentic_tests::info_field(&mut replica.conn(), "replication", "role").as_deref() == Some("master"),
        Duration::from_secs(20),
    );
    assert!(ok, "node {} did not take over", replica.port);
}

#[test]
fn failovers_of_a_shard_and_of_the_ingest_primary_lose_and_repeat_nothing() {
    let cluster = cluster_with(3, 1, &[]).start();
    let mut c = cluster.conn();
    let users = users(0..300);
    subscribe_everyone(&mut c, &users);
    let ingest_port = cluster.primary_of_key("news_raw").port;
    let ingest_index = cluster.nodes.iter().position(|n| n.port == ingest_port).expect("ingest node");
    let shard_index = (0..3).find(|&i| i != ingest_index).expect("another shard");
    // Replicas of primary i are nodes[3 + i] (one replica each).
    let ids: Vec<String> = (0..60).map(|i| format!("f{i}")).collect();
    let writer = {
        let urls: Vec<String> = cluster.nodes.iter().map(|n| n.url()).collect();
        let all = ids.clone();
        std::thread::spawn(move || {
            let mut routed = redis::cluster::ClusterClient::new(urls).expect("client").get_connection().expect("connect");
            for id in all {
                let data = article_json(&id);
                // A write during a failover may be refused once; it is retried like any client would.
                let mut last = None;
                let ok = (0..50).any(|_| {
                    let r: redis::RedisResult<String> =
                        redis::cmd("XADD").arg("news_raw").arg("*").arg("id").arg(&id).arg("data").arg(&data).query(&mut routed);
                    match r {
                        Ok(_) => true,
                        Err(e) => {
                            last = Some(e.to_string());
                            std::thread::sleep(Duration::from_millis(100));
                            false
                        }
                    }
                });
                assert!(ok, "XADD {id} never succeeded: {last:?}");
                std::thread::sleep(Duration::from_millis(40));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    failover(&cluster.nodes[3 + shard_index]);
    std::thread::sleep(Duration::from_millis(500));
    failover(&cluster.nodes[3 + ingest_index]);
    std::thread::sleep(Duration::from_millis(300));
    for n in &cluster.nodes {
        let log = std::fs::read_to_string(n.dir.join("valkey.log")).unwrap_or_default();
        if log.contains("crashed by signal") || log.contains("ASSERTION FAILED") {
            let start = log.find("BUG REPORT START").unwrap_or(0);
            panic!("node {} crashed:\n{}", n.port, &log[start..(start + 6000).min(log.len())]);
        }
    }
    writer.join().expect("writer");
    cluster.wait_healthy();
    wait_all_acked(&cluster, ids.len() as i64, Duration::from_secs(60));
    assert_feeds_streams_documents(&cluster, &users, &ids);
    // Replicas hold what their primaries hold.
    for i in 0..3 {
        let (a, b) = (&cluster.nodes[i], &cluster.nodes[3 + i]);
        let (primary, replica) =
            if agentic_tests::info_field(&mut a.conn(), "replication", "role").as_deref() == Some("master") { (a, b) } else { (b, a) };
        agentic_tests::wait_replica_synced(primary, replica);
        assert_eq!(digest(&mut primary.conn()), digest(&mut replica.conn()), "shard {i}");
    }
}

#[test]
fn kill_9_of_a_shard_primary_with_a_replica_loses_and_repeats_nothing() {
    let mut cluster = cluster_with(3, 1, &[]).start();
    let mut c = cluster.conn();
    let users = users(0..300);
    subscribe_everyone(&mut c, &users);
    let ingest_port = cluster.primary_of_key("news_raw").port;
    let victim = (0..3).find(|&i| cluster.nodes[i].port != ingest_port).expect("another shard");
    let ids: Vec<String> = (0..60).map(|i| format!("x{i}")).collect();
    let writer = spawn_writer(cluster.primary_of_key("news_raw").url(), ids.clone(), Duration::from_millis(40));
    std::thread::sleep(Duration::from_millis(600));
    // The replica takes over after cluster-node-timeout; the killed node comes back as a replica.
    cluster.kill9_and_restart_after_failover(victim);
    writer.join().expect("writer");
    cluster.wait_healthy();
    wait_all_acked(&cluster, ids.len() as i64, Duration::from_secs(60));
    assert_feeds_streams_documents(&cluster, &users, &ids);
    let (a, b) = (&cluster.nodes[victim], &cluster.nodes[3 + victim]);
    let (primary, replica) =
        if agentic_tests::info_field(&mut a.conn(), "replication", "role").as_deref() == Some("master") { (a, b) } else { (b, a) };
    agentic_tests::wait_replica_synced(primary, replica);
    assert_eq!(digest(&mut primary.conn()), digest(&mut replica.conn()));
}

#[test]
fn atomic_slot_migration_while_articles_flow_loses_and_repeats_nothing() {
    let (major, _, _) = agentic_tests::server_version();
    if major < 9 {
        eprintln!("SKIPPED: CLUSTER MIGRATESLOTS needs Valkey 9 (this server is {major}.x)");
        return;
    }
    let cluster = cluster(3, &[]).start();
    let mut c = cluster.conn();
    let users = users(0..300);
    subscribe_everyone(&mut c, &users);
    let ingest = cluster.primary_of_key("news_raw");
    let others: Vec<_> = cluster.nodes.iter().filter(|n| n.port != ingest.port).collect();
    let (from, to) = (others[0], others[1]);
    let ids: Vec<String> = (0..60).map(|i| format!("m{i}")).collect();
    let writer = spawn_writer(ingest.url(), ids.clone(), Duration::from_millis(30));
    std::thread::sleep(Duration::from_millis(300));
    // Half of `from`'s slots move to `to` in one atomic migration.
    let first = cluster.migrate_half_of_first_range(from, to);
    writer.join().expect("writer");
    cluster.wait_primary_of_slot(first, to);
    cluster.wait_healthy();
    wait_all_acked(&cluster, ids.len() as i64, Duration::from_secs(60));
    assert_feeds_streams_documents(&cluster, &users, &ids);
}

/// `AGENT.CLASSIFY text` on one node: the best topic, or the error.
fn classify_on(node: &agentic_tests::Server, text: &str) -> Result<String, String> {
    let v: Value = redis::cmd("AGENT.CLASSIFY").arg(text).query(&mut node.conn()).map_err(|e| e.to_string())?;
    match v {
        Value::Array(parts) => {
            parts.first().map(|b| redis::from_redis_value_ref::<String>(b).map_err(|e| e.to_string())).unwrap_or(Err("empty".into()))
        }
        other => Err(format!("{other:?}")),
    }
}

#[test]
fn topics_set_on_the_catalog_node_are_used_by_every_node_and_by_the_pipeline() {
    let cluster = cluster_with(3, 1, &[]).start();
    let catalog = cluster.primary_of_key("agentic:topics");
    let ingest = cluster.primary_of_key("news_raw");
    assert_ne!(catalog.port, ingest.port, "the catalog and news_raw must be on different primaries for this test");
    // Every node classifies with the defaults it received from the catalog's primary.
    for n in &cluster.nodes {
        let ok = wait_for(|| classify_on(n, "The striker scored twice in the cup final").is_ok(), Duration::from_secs(15));
        assert!(ok, "node {} cannot classify: {:?}", n.port, classify_on(n, "x"));
    }
    // The catalog becomes one custom topic.
    let mut cc = catalog.conn();
    let _: Value = redis::cmd("AGENT.TOPIC.SET")
        .arg("gardening")
        .arg("Plants, flowers, soil and growing vegetables")
        .query(&mut cc)
        .expect("TOPIC.SET");
    let _: Value = redis::cmd("AGENT.TOPIC.DEL").arg(&TOPICS[..]).query(&mut cc).expect("TOPIC.DEL");
    for n in &cluster.nodes {
        let ok =
            wait_for(|| classify_on(n, "The striker scored twice in the cup final").as_deref() == Ok("gardening"), Duration::from_secs(15));
        assert!(ok, "node {} still classifies with another catalog: {:?}", n.port, classify_on(n, "x"));
    }
    // The pipeline on the ingest node files every article under it.
    let mut c = cluster.conn();
    let users = users(0..60);
    for u in &users {
        let _: i64 = redis::cmd("AGENT.SUBSCRIBE").arg(u).arg("gardening").query(&mut c).expect("AGENT.SUBSCRIBE");
    }
    let ids: Vec<String> = (0..5).map(|i| format!("gd{i}")).collect();
    spawn_writer(ingest.url(), ids.clone(), Duration::from_millis(10)).join().expect("writer");
    wait_all_acked(&cluster, ids.len() as i64, Duration::from_secs(60));
    let expected: Vec<String> = ids.iter().rev().map(|id| format!("doc:{{{id}}}")).collect();
    for u in &users {
        assert_eq!(feed_doc_keys(&mut c, u), expected, "{u}");
    }
    let len: i64 = redis::cmd("XLEN").arg("topic:gardening").query(&mut c).expect("XLEN");
    assert_eq!(len, ids.len() as i64);
    assert!(sum_stat(&cluster, "catalog_copies_received") >= 8, "the other four nodes received the defaults and the change");
}
