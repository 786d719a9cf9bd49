//! The fetcher and the in-server pipeline together under a burst of 10x the steady rate: the
//! fetcher slows down when the backlog reaches --max-backlog instead of piling articles up,
//! news_raw is never trimmed past what the group has not processed, and every article reaches
//! the feeds exactly once. Needs the module (target/release/libagentic.so) and the tiny model.

mod common;

use std::time::{Duration, Instant};

use agentic_tests::{wait_for, workspace_dir, Server};
use common::*;

const TOPICS: [&str; 10] =
    ["politics", "business", "technology", "sports", "health", "climate", "science", "education", "entertainment", "finance"];

#[test]
fn a_burst_of_ten_times_the_steady_rate_is_absorbed_without_loss() {
    let tiny = workspace_dir().join("model/out/tiny");
    assert!(tiny.join("model.onnx").is_file(), "the tiny test model is missing: run `make tiny-model` (make test does)");
    // seen-fp-ppm 1: the seen-filter's bounded false positives (0.1% by default, counted in
    // seen_false_positive_expected) would otherwise skip a few of the 6,000 deliveries.
    // A deliberately slow classifier: 2 workers x 1 text per 50 ms = ~40 articles/s of capacity
    // (the encoder alone: the static tier takes many texts per batch).
    let server = Server::builder()
        .module_args(&[
            "model-dir",
            tiny.to_str().unwrap(),
            "classify-tier",
            "model",
            "pipeline",
            "yes",
            "debug-commands",
            "yes",
            "classify-batch",
            "1",
            "pipeline-max-inflight",
            "8",
            "pipeline-stream-maxlen",
            "10",
            "feed-len",
            "1000",
            "seen-fp-ppm",
            "1",
        ])
        .start();
    let mut c = server.conn();
    assert!(wait_for(|| redis::cmd("AGENT.CLASSIFY").arg("ready?").query::<redis::Value>(&mut c).is_ok(), Duration::from_secs(20)));
    let _: () = redis::cmd("AGENT.DEBUG").arg("CLASSIFY-DELAY").arg(50).query(&mut c).expect("AGENT.DEBUG");
    for u in 0..20 {
        let _: i64 = redis::cmd("AGENT.SUBSCRIBE").arg(format!("user:{{{u}}}")).arg(&TOPICS[..]).query(&mut c).expect("subscribe");
    }
    let max_backlog = 30;
    let steady = 20; // articles/s the pipeline keeps up with
    let n = 300;
    let mut fetcher = Fetcher::start(
        &server.url(),
        &[
            "--max-backlog",
            &max_backlog.to_string(),
            "generate",
            "--rate",
            &(steady * 10).to_string(),
            "--count",
            &n.to_string(),
            "--seed",
            "7",
        ],
    );
    let t0 = Instant::now();
    let mut peak_unread = 0i64;
    let mut peak_len = 0u64;
    let mut pauses = 0f64;
    while fetcher.wait_exit(Duration::from_millis(50)).is_none() {
        if let Some(p) = fetcher.try_metrics().and_then(|t| metric_value(&t, "fetcher_backpressure_pauses_total")) {
            pauses = pauses.max(p);
        }
        peak_unread = peak_unread.max(module_stat(&mut c, "pipeline_backlog") - module_stat(&mut c, "pipeline_inflight"));
        peak_len = peak_len.max(xlen(&mut c, "news_raw"));
        assert!(t0.elapsed() < Duration::from_secs(60), "the burst took too long");
    }
    let burst_s = t0.elapsed().as_secs_f64();
    assert!(pauses >= 1.0, "the fetcher slowed down: {}", fetcher.stderr());
    // A 10x burst of 300 at 200/s would take 1.5 s; held back to the pipeline's pace it takes longer.
    assert!(burst_s > 3.0, "the fetcher did not wait for the pipeline ({burst_s:.1} s)");
    assert!(peak_unread <= max_backlog + 10, "unread backlog peaked at {peak_unread} (max-backlog {max_backlog})");
    assert_every_feed_has_each_article_once(&mut c, 20, n);
    assert_eq!(module_stat(&mut c, "stream_forced_drops"), 0, "nothing unprocessed was dropped");
    assert_eq!(module_stat(&mut c, "pipeline_malformed"), 0);
    assert!(peak_len > 10, "news_raw held unprocessed entries beyond pipeline-stream-maxlen ({peak_len})");
    assert!(wait_for(|| xlen(&mut c, "news_raw") <= 10, Duration::from_secs(5)), "trimmed once processed");
}
