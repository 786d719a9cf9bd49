//! The gateway's outside surface under random input (issue 13): raw HTTP requests built from the
//! real routes with mutated paths, query strings, headers and bodies (and some that are not HTTP
//! at all), WebSocket upgrades with random frames, and random messages published on the module's
//! delivery channel. The gateway must answer every HTTP request with a status below 500, stay
//! up, and still deliver a real article to a real socket afterwards.
//!
//! Time budget: 10 x `AGENTIC_FUZZ_SECONDS` (default 1 s); `AGENTIC_FUZZ_SEED` replays a run.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use agentic_tests::fuzz::{mutate_once, Rng};
use agentic_tests::{pid_alive, Server};
use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

const PATHS: [&str; 12] = [
    "/healthz",
    "/metrics",
    "/api/config",
    "/api/topics",
    "/api/topics/sports/feed?count=5",
    "/api/users/alice/interests",
    "/api/users/alice/feed?count=3&before=1700000000000-0",
    "/api/users/bob/feed?after=0-0&token=v1.1.x.bob",
    "/api/stats",
    "/api/unknown",
    "/u/alice",
    "/",
];
const METHODS: [&str; 6] = ["GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD"];

fn budget() -> Duration {
    let s: f64 = std::env::var("AGENTIC_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).filter(|s: &f64| *s > 0.0).unwrap_or(1.0);
    Duration::from_secs_f64(s * 10.0)
}

/// A request, and whether it was mangled past being HTTP (then the client half-closes: the
/// gateway would otherwise wait for the rest of it).
fn request(rng: &mut Rng) -> (Vec<u8>, bool) {
    let mut path = rng.pick(&PATHS).as_bytes().to_vec();
    for _ in 0..rng.below(3) {
        let other = rng.pick(&PATHS).as_bytes().to_vec();
        mutate_once(rng, &mut path, &other);
    }
    // The request line must stay one line for the request to be about this path.
    path.retain(|c| !c.is_ascii_whitespace() && *c != 0);
    if path.first() != Some(&b'/') {
        path.insert(0, b'/');
    }
    let mut body = br#"{"interests":["sports","science"]}"#.to_vec();
    for _ in 0..rng.below(4) {
        mutate_once(rng, &mut body, br#"{"interests":[]}"#);
    }
    let method = *rng.pick(&METHODS);
    let mut req = format!("{method} ").into_bytes();
    req.extend(&path);
    req.extend(b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if rng.chance(4) {
        req.extend(b"Origin: http://evil.example\r\n");
    }
    if rng.chance(6) {
        req.extend(b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: x\r\n");
    }
    if method == "PUT" || method == "POST" {
        req.extend(b"Content-Type: application/json\r\n");
        // A Content-Length shorter than the body leaves bytes that read as a next, broken request
        // (a longer one would only make the gateway wait for the rest).
        let declared = if rng.chance(8) { body.len().saturating_sub(rng.below(10)) } else { body.len() };
        req.extend(format!("Content-Length: {declared}\r\n\r\n").as_bytes());
        req.extend(&body);
    } else {
        req.extend(b"\r\n");
    }
    let mangled = rng.chance(20);
    if mangled {
        let other = b"GET / HTTP/1.1\r\n\r\n".to_vec();
        mutate_once(rng, &mut req, &other);
    }
    (req, mangled)
}

/// The status of the response to `req`, or None when the gateway closed without one (allowed for
/// input that is not HTTP).
fn send(port: u16, req: &[u8], mangled: bool) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("the gateway accepts connections");
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(req).ok()?;
    if mangled {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut head = [0u8; 64];
    let n = s.read(&mut head).ok()?;
    let line = String::from_utf8_lossy(&head[..n]);
    line.strip_prefix("HTTP/1.1 ").or_else(|| line.strip_prefix("HTTP/1.0 "))?.get(..3)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_requests_frames_and_channel_messages_never_break_the_gateway() {
    let seed: u64 = std::env::var("AGENTIC_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64));
    let server = Server::builder().module_args(&["fanout-slice-us", "1000"]).start();
    let g = Gateway::start(&server, &["--demo-users", "alice,bob"]).await;
    let mut c = server.conn();
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let (mut requests, mut statuses, mut frames, mut published) = (0u64, std::collections::BTreeMap::<u16, u64>::new(), 0u64, 0u64);
    let port = g.port;
    while started.elapsed() < budget() {
        // HTTP, on a blocking thread (raw sockets).
        let batch: Vec<(Vec<u8>, bool)> = (0..50).map(|_| request(&mut rng)).collect();
        let answers = tokio::task::spawn_blocking(move || batch.into_iter().map(|(r, m)| (send(port, &r, m), r)).collect::<Vec<_>>())
            .await
            .expect("requests");
        for (status, req) in answers {
            requests += 1;
            if let Some(s) = status {
                *statuses.entry(s).or_default() += 1;
                assert!(s < 500, "status {s} for (seed {seed}):\n{}\ngateway log:\n{}", String::from_utf8_lossy(&req), g.log());
            }
        }
        // A socket that sends random frames, then goes away.
        let path = if rng.chance(2) { "/ws/users/alice" } else { "/ws/topics/sports?after=0-0" };
        if let Ok(mut ws) = connect(&g.ws_url(path), None).await {
            for _ in 0..rng.below(5) {
                let mut bytes = b"{\"type\":\"ack\"}".to_vec();
                mutate_once(&mut rng, &mut bytes, b"ping");
                let msg = if rng.chance(2) {
                    Message::Binary(bytes.into())
                } else {
                    Message::Text(String::from_utf8_lossy(&bytes).into_owned().into())
                };
                let _ = ws.send(msg).await;
                frames += 1;
            }
            if rng.chance(2) {
                let _ = ws.close(None).await;
            }
        }
        // Messages on the delivery channel from any client allowed to PUBLISH.
        for _ in 0..10 {
            let mut msg = b"20:agentic-deliveries/1,6:sports,5:doc:1,11:user:{alice},15:1700000000000-0,".to_vec();
            for _ in 0..1 + rng.below(3) {
                mutate_once(&mut rng, &mut msg, b"5:doc:2,");
            }
            let _: i64 = redis::cmd("PUBLISH").arg("agentic:deliveries").arg(msg).query(&mut c).expect("PUBLISH");
            published += 1;
        }
        assert!(pid_alive(g.pid()), "the gateway died (seed {seed}):\n{}", g.log());
    }

    // Still working: a real article reaches a real socket.
    let _: i64 = redis::cmd("AGENT.SUBSCRIBE").arg("user:{carol}").arg("science").query(&mut c).expect("subscribe");
    let mut ws = connect(&g.ws_url("/ws/users/carol"), None).await.expect("a socket after the fuzz");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _: redis::Value =
        redis::cmd("AGENT.FANOUT").arg("science").arg("doc:after-fuzz").arg(r#"{"title":"After"}"#).query(&mut c).expect("fanout");
    let (entries, _) = collect(&mut ws, 1, Duration::from_secs(10)).await;
    assert_eq!(entries.len(), 1, "the gateway still delivers after the fuzz:\n{}", g.log());
    assert_eq!(entries[0]["article"]["title"], "After");
    println!(
        "fuzz gateway HTTP/WS: {requests} requests (statuses {statuses:?}), {frames} WebSocket frames, {published} channel messages, 0 crashes (seed {seed})"
    );
    if let Ok(path) = std::env::var("AGENTIC_FUZZ_REPORT") {
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(f, "fuzz gateway HTTP/WS: {requests} requests, {frames} WebSocket frames, {published} channel messages, 0 crashes (seed {seed})");
        }
    }
}
