//! Test support: the fetcher binary as a child process (killed by pid on drop), a local HTTP
//! server for feed fixtures (ETag / Last-Modified / 304), stream and metrics helpers.

#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentic_tests::{file_tail, free_port, make_temp_dir};
use chrono::{TimeZone, Utc};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

pub const BIN: &str = env!("CARGO_BIN_EXE_agentic-fetcher");

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

pub fn fixture_text(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap_or_else(|e| panic!("read fixture {name}: {e}"))
}

/// Polls `cond` every 20 ms until true; panics with `what()` after `timeout`.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool, what: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {}", what());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// The fetcher process

/// A running `agentic-fetcher`; SIGKILLed (by pid) and reaped on drop, also when a test panics.
pub struct Fetcher {
    child: Child,
    pub pid: u32,
    dir: PathBuf,
    pub metrics_addr: Option<String>,
}

impl Fetcher {
    /// Starts the fetcher against `valkey` with a /metrics endpoint on a free port.
    /// `args` are the subcommand and its options (and any extra common options).
    pub fn start(valkey: &str, args: &[&str]) -> Fetcher {
        let addr = format!("127.0.0.1:{}", free_port());
        Self::start_inner(valkey, args, Some(addr))
    }

    /// Starts the fetcher without a metrics endpoint.
    pub fn start_no_metrics(valkey: &str, args: &[&str]) -> Fetcher {
        Self::start_inner(valkey, args, None)
    }

    fn start_inner(valkey: &str, args: &[&str], metrics_addr: Option<String>) -> Fetcher {
        let dir = make_temp_dir("agentic-fetcher-test");
        let log = std::fs::File::create(dir.join("stderr.log")).expect("create stderr log");
        let mut cmd = Command::new(BIN);
        cmd.arg("--valkey").arg(valkey);
        cmd.arg("--metrics-addr").arg(metrics_addr.as_deref().unwrap_or(""));
        cmd.args(args).env("RUST_LOG", "info").stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
        let pid = child.id();
        let f = Fetcher { child, pid, dir, metrics_addr };
        if f.metrics_addr.is_some() {
            f.wait_metrics_up();
        }
        f
    }

    fn wait_metrics_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.try_metrics().is_some() {
                return;
            }
            if Instant::now() > deadline {
                panic!("the fetcher's /metrics did not come up\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    /// Waits for the process to exit; `None` on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for a successful exit (panics with stderr otherwise).
    pub fn wait_success(&mut self, timeout: Duration) {
        match self.wait_exit(timeout) {
            Some(s) if s.success() => {}
            Some(s) => panic!("fetcher exited with {s}\n{}", self.stderr()),
            None => panic!("fetcher still running after {timeout:?}\n{}", self.stderr()),
        }
    }

    pub fn try_metrics(&self) -> Option<String> {
        http_get(self.metrics_addr.as_deref()?, "/metrics").ok().filter(|(status, _)| *status == 200).map(|(_, body)| body)
    }

    pub fn metrics(&self) -> String {
        self.try_metrics().unwrap_or_else(|| panic!("cannot read /metrics\n{}", self.stderr()))
    }

    /// Value of one series (e.g. `fetcher_malformed_total{reason="empty"}`); 0 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        metric_value(&self.metrics(), series).unwrap_or(0.0)
    }

    /// Waits until `series` satisfies `pred`.
    pub fn wait_metric(&self, series: &str, timeout: Duration, pred: impl Fn(f64) -> bool) {
        let last = std::cell::Cell::new(0.0);
        wait_until(
            timeout,
            || {
                last.set(self.metric(series));
                pred(last.get())
            },
            || format!("{series} (last value {})\n{}", last.get(), self.stderr()),
        );
    }
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill(); // SIGKILL by pid
        }
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- fetcher {} stderr (tail) ---\n{}", self.pid, file_tail(&self.dir.join("stderr.log"), 60));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Minimal blocking HTTP/1.0 GET: (status, body).
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((status, body.to_string()))
}

/// The value of `series` (name plus optional `{labels}`, exactly as rendered) in a text exposition.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
}

// ---------------------------------------------------------------------------------------------
// Stream helpers

/// One stream entry: (entry id, `id` field, parsed `data` JSON).
#[derive(Debug, Clone)]
pub struct Entry {
    pub entry_id: String,
    pub id: String,
    pub doc: serde_json::Value,
}

pub fn read_stream(conn: &mut redis::Connection, stream: &str) -> Vec<Entry> {
    let raw: Vec<(String, Vec<String>)> = redis::cmd("XRANGE").arg(stream).arg("-").arg("+").query(conn).expect("XRANGE");
    raw.into_iter()
        .map(|(entry_id, kv)| {
            let fields: HashMap<String, String> = kv.chunks(2).map(|c| (c[0].clone(), c[1].clone())).collect();
            assert_eq!(fields.len(), 2, "entry {entry_id} has fields {fields:?}, expected id and data");
            let id = fields.get("id").cloned().expect("id field");
            let doc: serde_json::Value = serde_json::from_str(fields.get("data").expect("data field")).expect("data is JSON");
            assert_eq!(doc["id"].as_str(), Some(id.as_str()), "the id field and the document id agree");
            Entry { entry_id, id, doc }
        })
        .collect()
}

pub fn xlen(conn: &mut redis::Connection, stream: &str) -> u64 {
    redis::cmd("XLEN").arg(stream).query(conn).expect("XLEN")
}

/// Panics if an article id appears more than once.
pub fn assert_unique(entries: &[Entry]) {
    let mut seen = std::collections::HashSet::new();
    for e in entries {
        assert!(seen.insert(e.id.clone()), "duplicate article {} in the stream", e.id);
    }
}

/// Milliseconds part of a stream entry id.
pub fn entry_ms(entry_id: &str) -> u64 {
    entry_id.split('-').next().and_then(|s| s.parse().ok()).expect("entry id")
}

// ---------------------------------------------------------------------------------------------
// The feed server

/// One request the feed server answered.
#[derive(Debug, Clone)]
pub struct Req {
    pub path: String,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<String>,
    pub status: u16,
}

struct Doc {
    body: Vec<u8>,
    etag: String,
    last_modified: String,
}

#[derive(Default)]
struct State {
    docs: HashMap<String, Doc>,
    log: Vec<Req>,
    version: i64,
}

/// A local HTTP server for feed fixtures on 127.0.0.1:<random>, answering conditional requests
/// with 304 when `If-None-Match` (or, without it, `If-Modified-Since`) matches.
pub struct FeedServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FeedServer {
    pub fn start() -> FeedServer {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("tokio runtime");
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind feed server");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).expect("tokio listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let st = st.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(answer(&st, &req)) }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        FeedServer { addr, state, runtime: Some(runtime) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Serves `body` at `path` with a new ETag and Last-Modified.
    pub fn set(&self, path: &str, body: &str) {
        let mut st = self.state.lock().unwrap();
        st.version += 1;
        let etag = format!("\"v{}-{:x}\"", st.version, xxhash_rust::xxh3::xxh3_64(body.as_bytes()));
        let when = Utc.timestamp_opt(1_749_000_000 + st.version * 60, 0).single().expect("timestamp");
        let last_modified = when.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        st.docs.insert(path.to_string(), Doc { body: body.as_bytes().to_vec(), etag, last_modified });
    }

    pub fn etag(&self, path: &str) -> String {
        self.state.lock().unwrap().docs[path].etag.clone()
    }

    pub fn last_modified(&self, path: &str) -> String {
        self.state.lock().unwrap().docs[path].last_modified.clone()
    }

    pub fn requests(&self, path: &str) -> Vec<Req> {
        self.state.lock().unwrap().log.iter().filter(|r| r.path == path).cloned().collect()
    }
}

impl Drop for FeedServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn answer(state: &Mutex<State>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let path = req.uri().path().to_string();
    let if_none_match = header("if-none-match");
    let if_modified_since = header("if-modified-since");
    let mut st = state.lock().unwrap();
    let (status, resp) = match st.docs.get(&path) {
        None => (404, Response::builder().status(StatusCode::NOT_FOUND).body(Full::new(Bytes::from_static(b"no such feed\n"))).unwrap()),
        Some(doc) => {
            let not_modified = match &if_none_match {
                Some(inm) => inm.split(',').any(|t| t.trim() == doc.etag || t.trim() == "*"),
                None => if_modified_since.as_deref() == Some(doc.last_modified.as_str()),
            };
            let builder = Response::builder().header("ETag", &doc.etag).header("Last-Modified", &doc.last_modified);
            if not_modified {
                (304, builder.status(StatusCode::NOT_MODIFIED).body(Full::new(Bytes::new())).unwrap())
            } else {
                (
                    200,
                    builder
                        .header("Content-Type", "application/xml; charset=utf-8")
                        .body(Full::new(Bytes::from(doc.body.clone())))
                        .unwrap(),
                )
            }
        }
    };
    st.log.push(Req { path, if_none_match, if_modified_since, status });
    resp
}

// ---------------------------------------------------------------------------------------------
// Module helpers

/// One integer of AGENT.STATS (panics when missing).
pub fn module_stat(c: &mut redis::Connection, name: &str) -> i64 {
    let flat: Vec<String> = redis::cmd("AGENT.STATS").query(c).expect("AGENT.STATS");
    flat.chunks(2).find(|p| p[0] == name).and_then(|p| p[1].parse().ok()).unwrap_or_else(|| panic!("no {name}"))
}

/// Waits until the pipeline delivered `n` articles, then checks that the feeds of `user:{0}` ..
/// `user:{users-1}` (each following every topic) hold each of them exactly once.
pub fn assert_every_feed_has_each_article_once(c: &mut redis::Connection, users: usize, n: usize) {
    let delivered = agentic_tests::wait_for(|| module_stat(c, "pipeline_delivered") == n as i64, Duration::from_secs(60));
    assert!(delivered, "delivered {} of {n}", module_stat(c, "pipeline_delivered"));
    for u in 0..users {
        let v: Vec<redis::Value> = redis::cmd("AGENT.FEED").arg(format!("user:{{{u}}}")).arg("COUNT").arg(10_000).query(c).expect("feed");
        let docs: Vec<String> = v.iter().map(|e| format!("{e:?}")).collect();
        let mut unique = docs.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), n, "user {u}: {} distinct of {} entries", unique.len(), docs.len());
        assert_eq!(docs.len(), n, "user {u} got duplicates");
    }
}
