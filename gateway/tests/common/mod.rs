//! A real gateway process next to a real valkey-server with the module, for the tests.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agentic_tests::{free_port, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The gateway binary, killed (by PID) when dropped, also when a test fails.
pub struct Gateway {
    child: Child,
    pub port: u16,
    log: std::path::PathBuf,
}

impl Gateway {
    /// A gateway in cluster mode, seeded with every primary; returns once it follows all of
    /// their shard channels.
    pub async fn start_cluster(cluster: &agentic_tests::Cluster, extra: &[&str]) -> Gateway {
        let seeds: Vec<String> = cluster.nodes[..cluster.primaries].iter().map(|n| n.url()).collect();
        let want = format!("following deliveries on {} shard channels", cluster.primaries);
        Gateway::spawn(&seeds.join(","), &[&["--cluster"][..], extra].concat(), &want).await
    }

    /// A gateway on a cluster given by seed URLs (e.g. `rediss://` ones), following every primary.
    pub async fn start_cluster_urls(seeds: &[String], primaries: usize, extra: &[&str]) -> Gateway {
        let want = format!("following deliveries on {primaries} shard channels");
        Gateway::spawn(&seeds.join(","), &[&["--cluster"][..], extra].concat(), &want).await
    }

    pub async fn start(server: &Server, extra: &[&str]) -> Gateway {
        Gateway::spawn(&server.url(), extra, "following deliveries").await
    }

    /// A gateway on a standalone server given by URL (credentials included).
    pub async fn spawn_url(valkey: &str, extra: &[&str]) -> Gateway {
        Gateway::spawn(valkey, extra, "following deliveries").await
    }

    async fn spawn(valkey: &str, extra: &[&str], ready_line: &str) -> Gateway {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("agentic-gateway-test-{port}.log"));
        let out = std::fs::File::create(&log).expect("gateway log file");
        let child = Command::new(env!("CARGO_BIN_EXE_agentic-gateway"))
            .args(["--valkey", valkey, "--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("start agentic-gateway");
        let g = Gateway { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let healthy = matches!(reqwest::get(g.url("/healthz")).await, Ok(r) if r.status().is_success());
            if healthy && g.log().contains(ready_line) {
                return g;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("gateway did not become healthy:\n{}", g.log());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// One sample of the gateway's Prometheus text: the value of `name` (with labels) or 0.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(self.url("/metrics")).await.expect("GET /metrics").text().await.expect("metrics body");
        text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            // A failed test shows what the gateway said (CI keeps nothing else).
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(200).collect();
            eprintln!("--- gateway log (last {} lines) ---", tail.len());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

pub async fn connect(url: &str, origin: Option<&str>) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut req = url.into_client_request()?;
    if let Some(o) = origin {
        req.headers_mut().insert("Origin", o.parse().expect("origin header"));
    }
    tokio_tungstenite::connect_async(req).await.map(|(ws, _)| ws)
}

/// The next `entries` frame (skips pings), or None on timeout.
pub async fn next_frame(ws: &mut Ws, timeout: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.ok()??.ok()?;
        if let Message::Text(t) = msg {
            return Some(serde_json::from_str(&t).expect("frames are JSON"));
        }
    }
}

/// Reads frames until `n` entries arrived in total (or the timeout); returns the entries and the
/// frames' modes.
pub async fn collect(ws: &mut Ws, n: usize, timeout: Duration) -> (Vec<Value>, Vec<String>) {
    let deadline = tokio::time::Instant::now() + timeout;
    let (mut entries, mut modes) = (Vec::new(), Vec::new());
    while entries.len() < n {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(f) = next_frame(ws, left).await else { break };
        assert_eq!(f["type"], "entries", "unexpected frame {f}");
        modes.push(f["mode"].as_str().unwrap_or("").to_string());
        entries.extend(f["entries"].as_array().cloned().unwrap_or_default());
    }
    (entries, modes)
}

pub fn ids(entries: &[Value]) -> Vec<String> {
    entries.iter().map(|e| e["id"].as_str().expect("entry id").to_string()).collect()
}

pub fn id_key(id: &str) -> (u64, u64) {
    let (a, b) = id.split_once('-').expect("ms-seq");
    (a.parse().expect("ms"), b.parse().expect("seq"))
}

pub fn assert_increasing(ids: &[String]) {
    for w in ids.windows(2) {
        assert!(id_key(&w[0]) < id_key(&w[1]), "ids not increasing: {} then {}", w[0], w[1]);
    }
}

pub async fn close(mut ws: Ws) {
    let _ = ws.send(Message::Close(None)).await;
}

/// The socket's first frame is an error naming `reason`, then it closes.
pub async fn assert_refused(ws: &mut Ws, reason: &str) {
    let f = next_frame(ws, Duration::from_secs(5)).await.expect("an error frame");
    assert_eq!(f["type"], "error", "{f}");
    assert!(f["message"].as_str().unwrap_or("").contains(reason), "{f}");
    assert!(next_frame(ws, Duration::from_secs(2)).await.is_none(), "closed after the error");
}
