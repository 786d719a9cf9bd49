//! agentic-gateway to Valkey over TLS (issue 13 point 4) with Valkey's default `tls-auth-clients
//! yes`: with `rediss://`, `--tls-ca-cert` and a client certificate (`--tls-cert`, `--tls-key`) the
//! HTTP API and a live socket work, on one server and on a cluster (whose nodes tell a TLS client
//! their TLS ports); without the CA the gateway refuses the server, without a client certificate
//! the server refuses the gateway.

mod common;

use std::time::Duration;

use agentic_tests::{free_port, make_temp_dir, tls_files, workspace_dir, Cluster, Server};
use common::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_reads_and_follows_feeds_over_tls() {
    let files = tls_files(&make_temp_dir("gateway-tls"));
    let tls_port = free_port();
    let s = Server::builder().tls(&files, tls_port).module_args(&["seen-fp-ppm", "1"]).start();
    let mut c = s.conn();
    let _: i64 = redis::cmd("AGENT.SUBSCRIBE").arg("user:{alice}").arg("science").query(&mut c).expect("subscribe");
    let _: redis::Value = redis::cmd("AGENT.FANOUT")
        .arg("science")
        .arg("doc:{s1}")
        .arg(json!({ "title": "Before" }).to_string())
        .query(&mut c)
        .expect("fanout");
    let url = format!("rediss://127.0.0.1:{tls_port}");

    let start_refused = |name: &str, args: &[&str]| {
        let log = make_temp_dir(name).join("stderr.log");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_agentic-gateway"))
            .args(["--valkey", &url, "--listen", &format!("127.0.0.1:{}", free_port())])
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start agentic-gateway");
        (child, log)
    };
    let untrusting = start_refused("gateway-untrusting", &[]);
    let anonymous = start_refused("gateway-anonymous", &["--tls-ca-cert", files.ca_cert.to_str().expect("UTF-8 path")]);
    let args = files.client_args();
    let g = Gateway::spawn_url(&url, &args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let http = reqwest::Client::new();
    let feed: Value = http.get(g.url("/api/users/alice/feed?count=5")).send().await.expect("feed").json().await.expect("JSON");
    assert_eq!(feed["entries"][0]["article"]["title"], "Before", "{feed}");
    let mut ws = connect(&g.ws_url("/ws/users/alice"), None).await.expect("socket");
    next_frame(&mut ws, Duration::from_secs(10)).await.expect("backlog frame");
    let _: redis::Value = redis::cmd("AGENT.FANOUT")
        .arg("science")
        .arg("doc:{s2}")
        .arg(json!({ "title": "Live" }).to_string())
        .query(&mut c)
        .expect("fanout");
    let (entries, _) = collect(&mut ws, 1, Duration::from_secs(10)).await;
    assert_eq!(entries.first().map(|e| e["article"]["title"].clone()), Some(json!("Live")));

    // The gateway without the CA and the one without a client certificate never got a
    // connection: they are still waiting, saying why.
    let outcomes: Vec<(bool, String)> = [untrusting, anonymous]
        .into_iter()
        .map(|(mut child, log)| {
            let said_why = agentic_tests::wait_for(
                || std::fs::read_to_string(&log).unwrap_or_default().contains("waiting for Valkey"),
                Duration::from_secs(30),
            );
            let still_running = said_why && matches!(child.try_wait(), Ok(None));
            let _ = child.kill();
            let _ = child.wait();
            (still_running, std::fs::read_to_string(&log).unwrap_or_default())
        })
        .collect();
    for (still_running, waiting) in outcomes {
        assert!(still_running && waiting.contains("waiting for Valkey"), "{waiting}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_follows_every_shard_of_a_cluster_over_tls() {
    let model = workspace_dir().join("model/out/tiny");
    assert!(model.join("model.onnx").is_file(), "the tiny test model is missing: run `make tiny-model` (make test does)");
    let model = model.to_str().expect("UTF-8 path").to_string();
    let files = tls_files(&make_temp_dir("gateway-cluster-tls"));
    let cluster = Cluster::builder(3, 0)
        .tls(&files)
        .node(move |b| b.module_args(&["model-dir", model.as_str(), "pipeline", "yes", "seen-fp-ppm", "1", "cluster-resend-ms", "300"]))
        .start();
    let seeds: Vec<String> =
        (0..cluster.primaries).map(|i| format!("rediss://127.0.0.1:{}", cluster.tls_port(i).expect("a TLS port"))).collect();
    let args = files.client_args();
    let g = Gateway::start_cluster_urls(&seeds, cluster.primaries, &args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let http = reqwest::Client::new();
    let topics = ["politics", "business", "technology", "sports", "health", "climate", "science", "education", "entertainment", "finance"];
    // Users on every primary: their interests are written through the TLS cluster client, their
    // live entries come over each primary's own TLS subscription.
    let users: Vec<String> = (0..12).map(|i| format!("u{i}")).collect();
    let homes: std::collections::HashSet<u16> = users.iter().map(|u| cluster.primary_of_key(&format!("user:{{{u}}}")).port).collect();
    assert_eq!(homes.len(), 3, "users on every primary");
    for u in &users {
        let put = http.put(g.url(&format!("/api/users/{u}/interests"))).json(&json!({ "interests": topics })).send().await.expect("PUT");
        assert!(put.status().is_success(), "PUT interests of {u}: {}", put.text().await.unwrap_or_default());
    }
    let mut sockets = Vec::new();
    for u in &users {
        let mut ws = connect(&g.ws_url(&format!("/ws/users/{u}")), None).await.expect("socket");
        next_frame(&mut ws, Duration::from_secs(10)).await.expect("backlog frame");
        sockets.push(ws);
    }
    let n = 6;
    let mut ingest = cluster.primary_of_key("news_raw").conn();
    for i in 0..n {
        let data = json!({ "id": format!("t{i}"), "title": format!("Headline {i}"), "text": format!("Body of article {i}.") }).to_string();
        let _: String = redis::cmd("XADD")
            .arg("news_raw")
            .arg("*")
            .arg("id")
            .arg(format!("t{i}"))
            .arg("data")
            .arg(data)
            .query(&mut ingest)
            .expect("XADD");
    }
    for (u, ws) in users.iter().zip(&mut sockets) {
        let (entries, _) = collect(ws, n, Duration::from_secs(20)).await;
        let docs: std::collections::HashSet<String> = entries.iter().filter_map(|e| e["doc"].as_str().map(str::to_string)).collect();
        assert_eq!((entries.len(), docs.len()), (n, n), "{u} got each article once, live: {entries:?}\n{}", g.log());
        assert!(entries.iter().all(|e| e["article"]["id"].is_string()), "{u}: entries carry their articles (read from their own nodes)");
    }
    let feed: Value = http.get(g.url("/api/users/u0/feed?count=50")).send().await.expect("feed").json().await.expect("JSON");
    assert_eq!(feed["entries"].as_array().map(Vec::len), Some(n), "{feed}");
}
