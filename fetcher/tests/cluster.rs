//! The fetcher on Valkey Cluster (`--cluster`): its write script's two keys (the stream and the
//! dedup key, which carries the stream's hash tag) go to the node serving the stream, through
//! whichever node it was given; a replay run again writes nothing twice.

mod common;

use std::time::Duration;

use agentic_tests::{make_temp_dir, tls_files, Cluster};
use common::*;

#[test]
fn replay_writes_each_article_once_through_a_cluster_client() {
    let cluster = Cluster::builder(3, 0).node(|b| b.no_module()).start();
    let dir = make_temp_dir("fetcher-cluster");
    let path = dir.join("articles.jsonl");
    let text: String = (0..50).map(|i| format!("{{\"id\":\"c-{i}\",\"title\":\"Headline {i}\",\"text\":\"Body {i}.\"}}\n")).collect();
    std::fs::write(&path, text).expect("write jsonl");
    // Seeded with a node that does not serve news_raw: the client follows MOVED.
    let owner = cluster.primary_of_key("news_raw");
    let seed = cluster.nodes.iter().find(|n| n.port != owner.port).expect("another node").url();
    for _run in 0..2 {
        let mut f = Fetcher::start_no_metrics(&seed, &["--cluster", "replay", "--file", path.to_str().expect("path"), "--rate", "0"]);
        f.wait_success(Duration::from_secs(60));
    }
    let mut c = owner.conn();
    let entries = read_stream(&mut c, "news_raw");
    assert_eq!(entries.len(), 50, "each article once, also after the second run");
    assert_unique(&entries);
    let slot = cluster.key_slot("news_raw");
    let here: i64 = redis::cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot).query(&mut c).expect("COUNTKEYSINSLOT");
    assert_eq!(here, 51, "the stream and its 50 dedup keys share the stream's slot");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn replay_writes_to_a_cluster_over_tls() {
    let files = tls_files(&make_temp_dir("fetcher-cluster-tls"));
    let cluster = Cluster::builder(3, 0).tls(&files).node(|b| b.no_module()).start();
    let dir = make_temp_dir("fetcher-cluster-tls-data");
    let path = dir.join("articles.jsonl");
    let text: String = (0..20).map(|i| format!("{{\"id\":\"t-{i}\",\"title\":\"Headline {i}\",\"text\":\"Body {i}.\"}}\n")).collect();
    std::fs::write(&path, text).expect("write jsonl");
    // Seeded with the TLS port of a node that does not serve news_raw: MOVED names the owner's
    // TLS port, because the asking connection is TLS.
    let owner = cluster.primary_of_key("news_raw");
    let other = cluster.nodes.iter().position(|n| n.port != owner.port).expect("another node");
    let seed = format!("rediss://127.0.0.1:{}", cluster.tls_port(other).expect("a TLS port"));
    let mut args = files.client_args();
    args.extend(["--cluster", "replay", "--file", path.to_str().expect("path"), "--rate", "0"].map(String::from));
    let mut f = Fetcher::start_no_metrics(&seed, &args.iter().map(String::as_str).collect::<Vec<_>>());
    f.wait_success(Duration::from_secs(60));
    let entries = read_stream(&mut owner.conn(), "news_raw");
    assert_eq!(entries.len(), 20, "each article once");
    assert_unique(&entries);
    let _ = std::fs::remove_dir_all(dir);
}
