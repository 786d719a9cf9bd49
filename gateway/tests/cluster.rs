//! The gateway on a real 3-primary, 3-replica cluster with the cluster-wide pipeline: interests
//! set through the API land on each user's node, live entries come from every primary's shard
//! channel with their documents read from the documents' own nodes, and sockets keep every
//! article exactly once while slots are resharded and a primary fails over. Few Valkey
//! connections serve many sockets.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use agentic_tests::{wait_for, workspace_dir, Cluster, Server};
use common::*;
use serde_json::{json, Value};

const TOPICS: [&str; 10] =
    ["politics", "business", "technology", "sports", "health", "climate", "science", "education", "entertainment", "finance"];

fn cluster() -> Cluster {
    let model = workspace_dir().join("model/out/tiny");
    assert!(model.join("model.onnx").is_file(), "the tiny test model is missing: run `make tiny-model` (make test does)");
    let model = model.to_str().expect("UTF-8 path").to_string();
    Cluster::builder(3, 1)
        .node(move |b| {
            b.module_args(&["model-dir", model.as_str(), "pipeline", "yes", "seen-fp-ppm", "1", "cluster-resend-ms", "300"])
                .arg("--cluster-require-full-coverage", "no")
        })
        .start()
}

/// Writes articles to news_raw on the ingest node, `pause` apart, on a thread.
fn spawn_writer(url: String, ids: Vec<String>, pause: Duration) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut c = redis::Client::open(url).expect("url").get_connection().expect("connect");
        for id in ids {
            let data = json!({ "id": id, "title": format!("Headline {id}"), "text": format!("Body of article {id}.") }).to_string();
            let _: String =
                redis::cmd("XADD").arg("news_raw").arg("*").arg("id").arg(&id).arg("data").arg(data).query(&mut c).expect("XADD");
            std::thread::sleep(pause);
        }
    })
}

fn role(node: &Server) -> String {
    agentic_tests::info_field(&mut node.conn(), "replication", "role").unwrap_or_default()
}

/// Reads a socket until it has `ids.len()` entries or `within` passes; returns the documents in
/// arrival order and checks every entry carries its article.
async fn read_docs(ws: &mut Ws, have: &mut Vec<String>, want: usize, within: Duration) {
    let (entries, _) = collect(ws, want.saturating_sub(have.len()), within).await;
    for e in &entries {
        assert!(e["article"]["id"].is_string(), "an entry without its article: {e}");
    }
    have.extend(entries.iter().map(|e| e["doc"].as_str().expect("doc key").to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_follow_every_shard_through_resharding_and_failover() {
    let cluster = cluster();
    let http = reqwest::Client::new();
    // 24 users spread over the three primaries.
    let users: Vec<String> = (0..24).map(|i| format!("u{i}")).collect();
    let per_primary: HashSet<u16> = users.iter().map(|u| cluster.primary_of_key(&format!("user:{{{u}}}")).port).collect();
    assert_eq!(per_primary.len(), 3, "users on every primary");
    let g = Gateway::start_cluster(&cluster, &[]).await;
    for u in &users {
        let put = http.put(g.url(&format!("/api/users/{u}/interests"))).json(&json!({ "interests": TOPICS })).send().await.unwrap();
        assert!(put.status().is_success(), "PUT interests of {u}: {}", put.text().await.unwrap_or_default());
    }
    let mut c = cluster.conn();
    for u in &users {
        let have: Vec<String> = redis::cmd("AGENT.INTERESTS").arg(format!("user:{{{u}}}")).query(&mut c).expect("AGENT.INTERESTS");
        assert_eq!(have.len(), TOPICS.len(), "{u} has every interest on its own node");
    }
    let mut sockets = Vec::new();
    for u in &users {
        let mut ws = connect(&g.ws_url(&format!("/ws/users/{u}")), None).await.expect("socket");
        let backlog = next_frame(&mut ws, Duration::from_secs(10)).await.expect("backlog frame");
        assert_eq!((&backlog["mode"], &backlog["entries"]), (&json!("backlog"), &json!([])), "{u}");
        sockets.push((ws, Vec::<String>::new()));
    }
    let ingest = cluster.primary_of_key("news_raw").url();

    // Live from every shard, bodies from the documents' nodes.
    let first: Vec<String> = (0..5).map(|i| format!("g{i}")).collect();
    spawn_writer(ingest.clone(), first.clone(), Duration::from_millis(20)).join().expect("writer");
    for (ws, have) in &mut sockets {
        read_docs(ws, have, first.len(), Duration::from_secs(20)).await;
    }
    for (u, (_, have)) in users.iter().zip(&sockets) {
        assert_eq!(have.len(), first.len(), "{u} got {have:?} live");
    }
    let feed: Value = http.get(g.url("/api/users/u0/feed?count=50")).send().await.unwrap().json().await.unwrap();
    let entries = feed["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), first.len());
    assert!(entries.iter().all(|e| e["article"]["id"].is_string()), "feed entries carry documents of other slots: {feed}");
    let stats: Value = http.get(g.url("/api/stats")).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats["module"]["fanout_deliveries"], json!((users.len() * first.len()) as f64), "summed over the primaries: {stats}");

    // Resharding 2000 slots while articles flow.
    let primaries: Vec<&Server> = cluster.nodes.iter().filter(|n| role(n) == "master").collect();
    let from = primaries.iter().find(|n| n.url() != ingest).expect("a non-ingest primary");
    let to = primaries.iter().find(|n| n.port != from.port).expect("another primary");
    let during: Vec<String> = (0..30).map(|i| format!("r{i}")).collect();
    let writer = spawn_writer(ingest.clone(), during.clone(), Duration::from_millis(40));
    let out = std::process::Command::new(agentic_tests::cli_binary())
        .args(["--cluster", "reshard", &format!("127.0.0.1:{}", from.port)])
        .args(["--cluster-from", &cluster.node_id(from), "--cluster-to", &cluster.node_id(to)])
        .args(["--cluster-slots", "2000", "--cluster-yes"])
        .output()
        .expect("valkey-cli --cluster reshard");
    assert!(out.status.success(), "reshard failed: {}", String::from_utf8_lossy(&out.stderr));
    writer.join().expect("writer");
    let moved = users.iter().filter(|u| cluster.primary_of_key(&format!("user:{{{u}}}")).port == to.port).count();
    let want = first.len() + during.len();
    for (ws, have) in &mut sockets {
        read_docs(ws, have, want, Duration::from_secs(30)).await;
    }

    // A shard primary fails over to its replica while articles flow.
    let replica = cluster
        .nodes
        .iter()
        .find(|n| {
            role(n) == "slave" && n.port != to.port && {
                let master_port = agentic_tests::info_field(&mut n.conn(), "replication", "master_port").unwrap_or_default();
                master_port != ingest.rsplit(':').next().unwrap_or("") && master_port != to.port.to_string()
            }
        })
        .expect("a replica of the third primary");
    let after: Vec<String> = (0..30).map(|i| format!("f{i}")).collect();
    let writer = spawn_writer(ingest.clone(), after.clone(), Duration::from_millis(40));
    let _: () = redis::cmd("CLUSTER").arg("FAILOVER").query(&mut replica.conn()).expect("CLUSTER FAILOVER");
    assert!(wait_for(|| role(replica) == "master", Duration::from_secs(20)), "the replica took over");
    writer.join().expect("writer");
    let want = want + after.len();
    for (ws, have) in &mut sockets {
        read_docs(ws, have, want, Duration::from_secs(30)).await;
    }

    let expected: HashSet<String> = first.iter().chain(&during).chain(&after).map(|id| format!("doc:{{{id}}}")).collect();
    for (u, (_, have)) in users.iter().zip(&sockets) {
        let distinct: HashSet<&String> = have.iter().collect();
        assert_eq!(distinct.len(), have.len(), "{u} got a document twice: {have:?}");
        let got: HashSet<String> = have.iter().cloned().collect();
        let missing: Vec<&String> = expected.difference(&got).collect();
        if !missing.is_empty() {
            let feed: redis::Value =
                redis::cmd("AGENT.FEED").arg(format!("user:{{{u}}}")).arg("COUNT").arg(1000).query(&mut c).expect("AGENT.FEED");
            let in_feed = format!("{feed:?}");
            let stored: Vec<bool> = missing.iter().map(|d| in_feed.contains(d.as_str())).collect();
            panic!("{u} misses {missing:?} (in its feed in Valkey: {stored:?})\ngateway log:\n{}", g.log());
        }
        assert_eq!(have.len(), expected.len());
    }
    assert!(moved > 0, "resharding moved some users");
    assert!(g.metric("gateway_cluster_topology_changes_total").await >= 2.0, "slot moves and the failover were seen");
    assert!(g.metric("gateway_holds_total").await > 0.0, "sockets were held while a shard channel was subscribed again");
    // Each node sees at most: the shared cluster connections, one topic-free subscription per
    // primary, nothing per socket.
    for n in &cluster.nodes {
        let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut n.conn()).expect("CLIENT LIST");
        let mine = list.lines().filter(|l| !l.contains("cmd=client|list") && !l.contains("flags=M") && !l.contains("flags=S")).count();
        assert!(mine <= 6, "node {} has {mine} client connections for {} sockets:\n{list}", n.port, users.len());
    }
    eprintln!("{moved} users resharded; gateway log:\n{}", g.log());
}

/// When no node answers for longer than the cluster reply deadline (10 s), a request is retried
/// on another connection, and each connection whose deadline passed is replaced by a new one (the
/// redis crate's cluster connection has been seen to stop answering for good after a resharding).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_connection_that_stops_answering_is_replaced() {
    let cluster = Cluster::builder(3, 0).start();
    let g = Gateway::start_cluster(&cluster, &[]).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("HTTP client");
    let put = http.put(g.url("/api/users/p0/interests")).json(&json!({ "interests": ["science"] })).send().await.expect("PUT");
    assert!(put.status().is_success(), "PUT interests: {}", put.text().await.unwrap_or_default());
    assert_eq!(g.metric("gateway_cluster_connections_replaced_total").await, 0.0);

    for n in &cluster.nodes {
        let _: () = redis::cmd("CLIENT").arg("PAUSE").arg(12_000).arg("ALL").query(&mut n.conn()).expect("CLIENT PAUSE");
    }
    let started = std::time::Instant::now();
    let stalled = http.get(g.url("/api/users/p0/interests")).send().await.expect("GET during the pause");
    let waited = started.elapsed();
    assert!(stalled.status().is_success(), "answered once the nodes answer again: {}", stalled.text().await.unwrap_or_default());
    assert!(waited >= Duration::from_secs(10), "the request waited out the pause ({waited:?})");

    let mut replaced = 0.0;
    for _ in 0..100 {
        replaced = g.metric("gateway_cluster_connections_replaced_total").await;
        if replaced >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(replaced >= 1.0, "a connection whose deadline passed was replaced:\n{}", g.log());
    let started = std::time::Instant::now();
    let body: Value = http.get(g.url("/api/users/p0/interests")).send().await.expect("GET").json().await.expect("JSON");
    assert_eq!(body["interests"], json!(["science"]), "{body}");
    assert!(started.elapsed() < Duration::from_secs(5), "served at once afterwards");
}
