//! A browser that never reads (issue 13 point 5): its socket's queue is bounded (`--socket-queue`,
//! overflow counted and recovered by a resync), and a write that cannot finish within
//! `--write-timeout-s` closes the socket and is counted. Other users' sockets keep receiving.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use agentic_tests::Server;
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_never_reads_is_closed_after_the_write_timeout_and_counted() {
    let s = Server::builder().module_args(&["feed-len", "1000", "seen-fp-ppm", "1"]).start();
    let g = Gateway::start(&s, &["--socket-queue", "8", "--write-timeout-s", "1"]).await;
    let mut c = s.conn();
    for user in ["mallory", "erin"] {
        let _: i64 = redis::cmd("AGENT.SUBSCRIBE").arg(format!("user:{{{user}}}")).arg("finance").query(&mut c).expect("subscribe");
    }
    // A WebSocket handshake by hand, then nothing is ever read again.
    let mut stuck = TcpStream::connect(("127.0.0.1", g.port)).expect("connect");
    write!(
        stuck,
        "GET /ws/users/mallory HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .expect("handshake");
    let mut head = [0u8; 12];
    stuck.read_exact(&mut head).expect("handshake answer");
    assert_eq!(&head, b"HTTP/1.1 101", "upgraded");
    let mut erin = connect(&g.ws_url("/ws/users/erin"), None).await.expect("erin's socket");
    next_frame(&mut erin, Duration::from_secs(10)).await.expect("erin's backlog");

    // ~24 MB of articles: far more than the socket buffers between the gateway and the stuck
    // client hold, so the gateway's writes to it stall.
    let filler = "x".repeat(60_000);
    let n = 400;
    let erin_reader = tokio::spawn(async move { collect(&mut erin, n, Duration::from_secs(60)).await });
    for i in 0..n {
        let payload = json!({ "title": format!("Big {i}"), "text": filler }).to_string();
        let _: redis::Value =
            redis::cmd("AGENT.FANOUT").arg("finance").arg(format!("doc:{{big{i}}}")).arg(payload).query(&mut c).expect("fanout");
    }
    let timed_out = tokio::time::timeout(Duration::from_secs(30), async {
        while g.metric("gateway_sockets_timed_out_total").await < 1.0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(timed_out.is_ok(), "the stuck socket was not closed:\n{}", g.log());
    assert!(g.metric("gateway_entries_dropped_total").await >= 1.0, "its bounded queue overflowed and said so");

    // The reader that kept reading got everything, once, in order.
    let (got, _) = erin_reader.await.expect("erin's reader");
    let titles: Vec<String> = got.iter().map(|e| e["article"]["title"].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(titles, (0..n).map(|i| format!("Big {i}")).collect::<Vec<_>>());
    drop(stuck);
}
