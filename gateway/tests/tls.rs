//! agentic-gateway to Valkey over TLS (issue 13 point 4): with `rediss://` and `--tls-ca-cert` the
//! HTTP API and a live socket work; without the CA the server is refused.

mod common;

use std::time::Duration;

use agentic_tests::{free_port, make_temp_dir, tls_files, Server};
use common::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_reads_and_follows_feeds_over_tls() {
    let files = tls_files(&make_temp_dir("gateway-tls"));
    let tls_port = free_port();
    let s = Server::builder().tls(&files, tls_port).module_args(&["seen-fp-ppm", "1"]).start();
    let mut c = s.conn();
    let _: i64 = redis::cmd("AGENT.SUBSCRIBE").arg("user:{alice}").arg("science").query(&mut c).expect("subscribe");
    let _: redis::Value =
        redis::cmd("AGENT.FANOUT").arg("science").arg("doc:{s1}").arg(json!({ "title": "Before" }).to_string()).query(&mut c).expect("fanout");
    let url = format!("rediss://127.0.0.1:{tls_port}");

    let untrusting_log = make_temp_dir("gateway-untrusting").join("stderr.log");
    let mut untrusting = std::process::Command::new(env!("CARGO_BIN_EXE_agentic-gateway"))
        .args(["--valkey", &url, "--listen", &format!("127.0.0.1:{}", free_port())])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&untrusting_log).expect("log file"))
        .spawn()
        .expect("start agentic-gateway");
    let g = Gateway::spawn_url(&url, &["--tls-ca-cert", files.ca_cert.to_str().expect("UTF-8 path")]).await;
    let http = reqwest::Client::new();
    let feed: Value = http.get(g.url("/api/users/alice/feed?count=5")).send().await.expect("feed").json().await.expect("JSON");
    assert_eq!(feed["entries"][0]["article"]["title"], "Before", "{feed}");
    let mut ws = connect(&g.ws_url("/ws/users/alice"), None).await.expect("socket");
    next_frame(&mut ws, Duration::from_secs(10)).await.expect("backlog frame");
    let _: redis::Value =
        redis::cmd("AGENT.FANOUT").arg("science").arg("doc:{s2}").arg(json!({ "title": "Live" }).to_string()).query(&mut c).expect("fanout");
    let (entries, _) = collect(&mut ws, 1, Duration::from_secs(10)).await;
    assert_eq!(entries.first().map(|e| e["article"]["title"].clone()), Some(json!("Live")));

    // The gateway without the CA never got a connection: it is still waiting, saying why.
    let said_why = agentic_tests::wait_for(
        || std::fs::read_to_string(&untrusting_log).unwrap_or_default().contains("waiting for Valkey"),
        Duration::from_secs(30),
    );
    let waiting = std::fs::read_to_string(&untrusting_log).unwrap_or_default();
    let still_running = said_why && matches!(untrusting.try_wait(), Ok(None));
    let _ = untrusting.kill();
    let _ = untrusting.wait();
    assert!(still_running && waiting.contains("waiting for Valkey"), "{waiting}");
}
