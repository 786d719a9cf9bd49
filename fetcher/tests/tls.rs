//! agentic-fetcher to Valkey over TLS (issue 13 point 4) with Valkey's default `tls-auth-clients
//! yes`: with `rediss://`, the CA that signed the server's certificate and a client certificate it
//! writes its articles and the pipeline delivers them; without the CA it refuses the server, and
//! without a client certificate the server refuses it (both counted, nothing written).

mod common;

use std::time::Duration;

use agentic_tests::{free_port, make_temp_dir, tls_files, workspace_dir, Server};
use common::*;

#[test]
fn the_fetcher_writes_over_tls_with_a_client_certificate_and_checks_the_servers() {
    let tiny = workspace_dir().join("model/out/tiny");
    assert!(tiny.join("model.onnx").is_file(), "the tiny test model is missing: run `make tiny-model` (make test does)");
    let files = tls_files(&make_temp_dir("fetcher-tls"));
    let tls_port = free_port();
    let server = Server::builder()
        .tls(&files, tls_port)
        .module_args(&["model-dir", tiny.to_str().expect("UTF-8 path"), "pipeline", "yes", "seen-fp-ppm", "1"])
        .start();
    let mut c = server.conn();
    let _: i64 = redis::cmd("AGENT.SUBSCRIBE")
        .arg("user:{0}")
        .arg(&["politics", "business", "technology", "sports", "health", "climate", "science", "education", "entertainment", "finance"][..])
        .query(&mut c)
        .expect("subscribe");
    let url = format!("rediss://127.0.0.1:{tls_port}");

    // Without the CA the server's certificate is unknown: refused, counted, nothing written.
    let untrusting = Fetcher::start(&url, &["generate", "--rate", "50", "--count", "5"]);
    untrusting.wait_metric("fetcher_valkey_errors_total{kind=\"io\"}", Duration::from_secs(20), |v| v >= 1.0);
    drop(untrusting);
    assert_eq!(redis::cmd("XLEN").arg("news_raw").query::<i64>(&mut c).expect("XLEN"), 0, "nothing written without trust");

    // Trusting the server but without a client certificate: the server refuses the handshake.
    let ca = files.ca_cert.to_str().expect("UTF-8 path");
    let anonymous = Fetcher::start(&url, &["--tls-ca-cert", ca, "generate", "--rate", "50", "--count", "5"]);
    anonymous.wait_metric("fetcher_valkey_errors_total{kind=\"io\"}", Duration::from_secs(20), |v| v >= 1.0);
    drop(anonymous);
    assert_eq!(redis::cmd("XLEN").arg("news_raw").query::<i64>(&mut c).expect("XLEN"), 0, "nothing written without a client certificate");

    let n = 30;
    let mut args = files.client_args();
    args.extend(["generate", "--rate", "100", "--count", &n.to_string()].map(String::from));
    let mut fetcher = Fetcher::start(&url, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(fetcher.wait_exit(Duration::from_secs(60)).is_some_and(|s| s.success()), "the fetcher finished:\n{}", fetcher.stderr());
    assert_every_feed_has_each_article_once(&mut c, 1, n);
}
