//! Proof under load: a 6-node cluster made by `valkey-cli --cluster create --cluster-replicas 1`,
//! the real fetcher ingesting synthetic news at a steady rate through its cluster client, and one
//! fault per phase: a 1,200-slot `--cluster reshard`, a 9.x `CLUSTER MIGRATESLOTS`, `CLUSTER
//! FAILOVER` of a shard primary and of the ingest primary, and `kill -9` of a primary. After each
//! phase every user's feed holds exactly the articles of their topics, each once, in news_raw
//! order; each article is in exactly one topic stream once; every replica's DEBUG DIGEST equals
//! its primary's.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agentic_tests::{info_field, wait_for, wait_replica_synced, workspace_dir, Cluster, Server};
use common::*;
use redis::cluster::ClusterConnection;
use redis::Value;

const TOPICS: [&str; 10] =
    ["politics", "business", "technology", "sports", "health", "climate", "science", "education", "entertainment", "finance"];
const RATE: &str = "25";

/// The fetcher binary, stopped by PID when dropped.
struct Fetcher(Child);

impl Fetcher {
    fn start(cluster: &Cluster, seed: u64) -> Fetcher {
        let bin = workspace_dir().join("target/release/agentic-fetcher");
        assert!(bin.is_file(), "{} is missing: `make build` builds it", bin.display());
        let seeds: Vec<String> = cluster.nodes.iter().map(|n| n.url()).collect();
        let child = Command::new(bin)
            .args(["--cluster", "--valkey", &seeds.join(","), "--metrics-addr", ""])
            .args(["generate", "--rate", RATE, "--seed", &seed.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start agentic-fetcher");
        Fetcher(child)
    }
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn role(node: &Server) -> String {
    info_field(&mut node.conn(), "replication", "role").unwrap_or_default()
}

fn interests(i: usize) -> Vec<&'static str> {
    let n = 2 + i % 3;
    let mut t: Vec<&'static str> = Vec::new();
    let mut k = i * 7;
    while t.len() < n {
        let topic = TOPICS[k % TOPICS.len()];
        if !t.contains(&topic) {
            t.push(topic);
        }
        k += 3;
    }
    t
}

fn stream_field(fields: &[Value], name: &str) -> Option<String> {
    fields.chunks(2).find_map(|kv| match (kv.first(), kv.get(1)) {
        (Some(Value::BulkString(k)), Some(Value::BulkString(v))) if k == name.as_bytes() => Some(String::from_utf8_lossy(v).into_owned()),
        _ => None,
    })
}

/// `field` of every entry of a stream, in order.
fn stream_values(c: &mut ClusterConnection, key: &str, field: &str) -> Vec<String> {
    let v: Value = redis::cmd("XRANGE").arg(key).arg("-").arg("+").query(c).expect("XRANGE");
    let Value::Array(entries) = v else { return Vec::new() };
    entries
        .iter()
        .filter_map(|e| match e {
            Value::Array(pair) => match pair.get(1) {
                Some(Value::Array(fields)) => stream_field(fields, field),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Waits until the pipeline has read and acknowledged everything in news_raw.
fn wait_drained(c: &mut ClusterConnection, within: Duration) {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    while Instant::now() < deadline {
        let groups: redis::RedisResult<Value> = redis::cmd("XINFO").arg("GROUPS").arg("news_raw").query(c);
        if let Ok(Value::Array(groups)) = groups {
            let fields: Vec<(String, String)> = groups
                .iter()
                .filter_map(|g| match g {
                    Value::Array(f) => Some(f.chunks(2).filter_map(|kv| Some((text(kv.first()?), text(kv.get(1)?)))).collect::<Vec<_>>()),
                    _ => None,
                })
                .flatten()
                .collect();
            let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            last = format!("{fields:?}");
            if get("pending").as_deref() == Some("0") && get("lag").as_deref() == Some("0") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("news_raw was not drained: {last}");
}

fn text(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Nil => "nil".into(),
        other => format!("{other:?}"),
    }
}

/// Every article once in one topic stream; every user's feed exactly the articles of their
/// topics, newest first in news_raw order; every replica's digest equal to its primary's.
fn assert_exact(cluster: &Cluster, users: &[(String, Vec<&'static str>)], phase: &str) {
    let mut c = cluster.conn();
    wait_drained(&mut c, Duration::from_secs(90));
    let ids = stream_values(&mut c, "news_raw", "id");
    assert!(!ids.is_empty(), "{phase}: the fetcher wrote nothing");
    let mut topic_of: HashMap<String, &'static str> = HashMap::new();
    for t in TOPICS {
        for doc in stream_values(&mut c, &format!("topic:{t}"), "doc") {
            assert!(topic_of.insert(doc.clone(), t).is_none(), "{phase}: {doc} is in more than one topic stream entry");
        }
    }
    let order: Vec<String> = ids.iter().map(|id| format!("doc:{{{id}}}")).collect();
    let missing: Vec<&String> = order.iter().filter(|d| !topic_of.contains_key(*d)).collect();
    assert!(missing.is_empty(), "{phase}: articles in no topic stream: {missing:?}");
    assert_eq!(topic_of.len(), order.len(), "{phase}: topic streams hold articles news_raw does not");
    let mut wrong = Vec::new();
    for (u, topics) in users {
        let want: Vec<&String> = order.iter().rev().filter(|d| topics.contains(&topic_of[*d])).collect();
        let v: Value = redis::cmd("AGENT.FEED").arg(u).arg("COUNT").arg(10_000).query(&mut c).expect("AGENT.FEED");
        let got: Vec<String> = parse_feed(&v).into_iter().map(|e| e.doc).collect();
        if got.iter().collect::<Vec<_>>() != want {
            let set: HashSet<&String> = got.iter().collect();
            let lost: Vec<&&String> = want.iter().filter(|d| !set.contains(**d)).collect();
            let wanted: HashSet<&String> = want.iter().copied().collect();
            let extra: Vec<&String> = got.iter().filter(|d| !wanted.contains(d)).collect();
            let twice = got.len() - set.len();
            wrong.push(format!(
                "{u} (node {}): {} entries, want {}; missing {lost:?}; not wanted {extra:?}; {twice} repeated",
                cluster.primary_of_key(u).port,
                got.len(),
                want.len()
            ));
        }
    }
    if !wrong.is_empty() {
        let report: Vec<(u16, String, Vec<(String, String)>)> = cluster
            .nodes
            .iter()
            .map(|n| {
                let s = stats(&mut n.conn())
                    .into_iter()
                    .filter(|(k, v)| (k.starts_with("cluster_") || k.starts_with("pipeline_") || k.starts_with("fanout_")) && v != "0")
                    .collect();
                (n.port, role(n), s)
            })
            .collect();
        wrong.truncate(5);
        panic!("{phase}: feeds differ:\n{}\n{report:#?}", wrong.join("\n"));
    }
    for replica in cluster.nodes.iter().filter(|n| role(n) == "slave") {
        let port = info_field(&mut replica.conn(), "replication", "master_port").and_then(|p| p.parse::<u16>().ok());
        let primary = cluster.nodes.iter().find(|n| Some(n.port) == port).expect("the replica's primary");
        wait_replica_synced(primary, replica);
        assert_eq!(
            digest(&mut primary.conn()),
            digest(&mut replica.conn()),
            "{phase}: replica {} differs from {}",
            replica.port,
            primary.port
        );
    }
    eprintln!("{phase}: {} articles, {} users exact, replicas match", ids.len(), users.len());
}

/// Runs the fetcher for the phase, applies `fault` while it writes, then checks everything.
fn phase(cluster: &mut Cluster, users: &[(String, Vec<&'static str>)], seed: u64, name: &str, fault: impl FnOnce(&mut Cluster)) {
    let fetcher = Fetcher::start(cluster, seed);
    std::thread::sleep(Duration::from_secs(1));
    fault(cluster);
    std::thread::sleep(Duration::from_secs(1));
    drop(fetcher);
    cluster.wait_healthy();
    assert_exact(cluster, users, name);
}

fn primaries(cluster: &Cluster) -> Vec<&Server> {
    cluster.nodes.iter().filter(|n| role(n) == "master").collect()
}

fn replica_of<'a>(cluster: &'a Cluster, primary: &Server) -> &'a Server {
    cluster
        .nodes
        .iter()
        .find(|n| role(n) == "slave" && info_field(&mut n.conn(), "replication", "master_port") == Some(primary.port.to_string()))
        .expect("a replica")
}

fn failover(replica: &Server) {
    let _: () = redis::cmd("CLUSTER").arg("FAILOVER").query(&mut replica.conn()).expect("CLUSTER FAILOVER");
    assert!(wait_for(|| role(replica) == "master", Duration::from_secs(20)), "node {} did not take over", replica.port);
}

#[test]
fn a_six_node_cluster_under_steady_ingest_survives_reshard_migration_failovers_and_kill_9() {
    let model = workspace_dir().join("model/out/tiny");
    assert!(model.join("model.onnx").is_file(), "the tiny test model is missing: run `make tiny-model` (make test does)");
    let model = model.to_str().expect("UTF-8 path").to_string();
    let mut cluster = Cluster::builder(3, 1)
        .created_by_cli()
        .node(move |b| {
            b.module_args(&[
                "model-dir",
                model.as_str(),
                "pipeline",
                "yes",
                "seen-fp-ppm",
                "1",
                "cluster-resend-ms",
                "300",
                "feed-len",
                "5000",
            ])
            .arg("--cluster-require-full-coverage", "no")
            .arg("--appendonly", "yes")
        })
        .start();
    assert_eq!(cluster.nodes.len(), 6);
    assert_eq!(primaries(&cluster).len(), 3);
    let users: Vec<(String, Vec<&'static str>)> = (0..240).map(|i| (format!("user:{{f{i}}}"), interests(i))).collect();
    let mut c = cluster.conn();
    for (u, t) in &users {
        let _: i64 = redis::cmd("AGENT.SUBSCRIBE").arg(u).arg(t).query(&mut c).expect("AGENT.SUBSCRIBE");
    }

    phase(&mut cluster, &users, 1, "(a) reshard of 1,200 slots", |cluster| {
        let ingest = cluster.primary_of_key("news_raw").port;
        let p = primaries(cluster);
        let from = p.iter().find(|n| n.port != ingest).expect("a shard primary");
        let to = p.iter().find(|n| n.port != from.port).expect("another primary");
        let out = Command::new(agentic_tests::cli_binary())
            .args(["--cluster", "reshard", &format!("127.0.0.1:{}", from.port)])
            .args(["--cluster-from", &cluster.node_id(from), "--cluster-to", &cluster.node_id(to)])
            .args(["--cluster-slots", "1200", "--cluster-yes"])
            .output()
            .expect("valkey-cli --cluster reshard");
        assert!(out.status.success(), "reshard failed: {}", String::from_utf8_lossy(&out.stderr));
    });

    let (major, _, _) = agentic_tests::server_version();
    if major >= 9 {
        phase(&mut cluster, &users, 2, "(b) CLUSTER MIGRATESLOTS", |cluster| {
            let ingest = cluster.primary_of_key("news_raw").port;
            let p = primaries(cluster);
            let from = p.iter().find(|n| n.port != ingest).expect("a shard primary");
            let to = p.iter().find(|n| n.port != from.port).expect("another primary");
            let first = cluster.migrate_half_of_first_range(from, to);
            cluster.wait_primary_of_slot(first, to);
        });
    } else {
        eprintln!("(b) SKIPPED: CLUSTER MIGRATESLOTS needs Valkey 9 (this server is {major}.x)");
    }

    phase(&mut cluster, &users, 3, "(c) CLUSTER FAILOVER of a shard primary", |cluster| {
        let ingest = cluster.primary_of_key("news_raw").port;
        let p = primaries(cluster);
        let shard = p.iter().find(|n| n.port != ingest).expect("a shard primary");
        failover(replica_of(cluster, shard));
    });
    phase(&mut cluster, &users, 4, "(c) CLUSTER FAILOVER of the ingest primary", |cluster| {
        let ingest = cluster.primary_of_key("news_raw");
        failover(replica_of(cluster, ingest));
    });
    phase(&mut cluster, &users, 5, "(d) kill -9 of a primary", |cluster| {
        let ingest = cluster.primary_of_key("news_raw").port;
        let victim = cluster.nodes.iter().position(|n| role(n) == "master" && n.port != ingest).expect("a shard primary");
        // Its replica takes over after cluster-node-timeout; the node comes back as a replica.
        cluster.kill9_and_restart_after_failover(victim);
    });
}
