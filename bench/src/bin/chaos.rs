//! chaos: the whole stack under steady ingest while processes are killed with SIGKILL and
//! restarted in random order (issue 13 point 2). One phase per AOF fsync policy, each on a fresh
//! stack: a primary with the module, the tiny model and the in-server pipeline (AOF, `appendfsync`
//! always or everysec), a replica, agentic-fetcher generating articles, agentic-gateway with
//! browser-like WebSocket clients (they reconnect and resume with `after=<last id>`, as the UI
//! does), a classification sidecar on the CPU and a Python agent (agentic-user-reader).
//!
//!     cargo run --release -p agentic-bench --bin chaos -- [--seconds S] [--fsync always|everysec|both]
//!         [--rate R] [--seed N] [--users N] [--model DIR]
//!
//! Faults: kill -9 of the primary (restarted on its AOF), of the replica, of the fetcher (a new
//! one takes over with a new seed), of the gateway, of the sidecar and of the agent, and a full
//! resync of the replica (killed and restarted without its data). After each it measures the time
//! to recover from the kill: the primary, a new article in the all-topics feed and the replica
//! linked again; the replica, linked and caught up; the fetcher, its first article written; the
//! gateway, every socket reconnected; the sidecar, live again; the agent, serving metrics again.
//!
//! At the end (the fetcher stopped, the pipeline drained) it counts: articles ingested (the
//! fetcher's dedup keys left on the primary), articles acknowledged to the fetcher but missing
//! afterwards (a gap in one fetcher's numbering: the primary lost its last writes), articles
//! ingested but never delivered to a user who follows every topic, duplicates in feeds and on
//! sockets, entries a socket missed, and whether the replica's data equals the primary's
//! (DEBUG DIGEST). It exits non-zero when a fault did not recover, anything was duplicated, a
//! socket missed an entry, the digests differ, or, with appendfsync always, anything was lost.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{exit, Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use agentic_bench::{agent_stat, cpu_model, wait_model_ready, Rng, TOPICS};
use agentic_tests::{free_port, info_field, make_temp_dir, parse_info_field, workspace_dir, Server, ServerBuilder};
use futures_util::StreamExt;
use redis::{Connection, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const RECOVERY_LIMIT: Duration = Duration::from_secs(90);
const CHECK_USER: &str = "chaos-all";
const SOCKET_USERS: usize = 4;

fn fail(msg: &str) -> ! {
    eprintln!("chaos: {msg}");
    exit(2)
}

fn connect(port: u16) -> Option<Connection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    let c = client.get_connection_with_timeout(Duration::from_millis(500)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    Some(c)
}

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A companion process (fetcher, gateway, sidecar, agent): SIGKILL on drop.
struct Proc {
    name: &'static str,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &'static str, mut cmd: Command, log: PathBuf) -> Proc {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap_or_else(|e| fail(&format!("{}: {e}", log.display())));
        let err = out.try_clone().unwrap_or_else(|e| fail(&e.to_string()));
        let child = cmd.stdin(Stdio::null()).stdout(out).stderr(err).spawn().unwrap_or_else(|e| fail(&format!("cannot start the {name}: {e}")));
        Proc { name, child: Some(child), log }
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Exited on its own (not killed by us)?
    fn exited(&mut self) -> Option<String> {
        let c = self.child.as_mut()?;
        match c.try_wait() {
            Ok(Some(status)) => Some(format!("the {} exited by itself ({status}); log {}", self.name, self.log.display())),
            _ => None,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    Primary,
    Replica,
    ReplicaFullResync,
    Fetcher,
    Gateway,
    Sidecar,
    Agent,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Primary => "kill -9 primary",
            Fault::Replica => "kill -9 replica",
            Fault::ReplicaFullResync => "replica full resync",
            Fault::Fetcher => "kill -9 fetcher",
            Fault::Gateway => "kill -9 gateway",
            Fault::Sidecar => "kill -9 sidecar",
            Fault::Agent => "kill -9 agent",
        }
    }
}

/// What the browser-like socket clients saw, per user.
#[derive(Default)]
struct SocketLog {
    articles: HashMap<String, u32>,
    connects: u64,
    truncated: u64,
    errors: Vec<String>,
}

struct Sockets {
    logs: Vec<(String, Arc<Mutex<SocketLog>>)>,
    stop: Arc<AtomicBool>,
    runtime: Option<thread::JoinHandle<()>>,
}

fn article_id_of(entry: &serde_json::Value) -> Option<String> {
    let a = entry.get("article")?;
    a.get("id").and_then(|v| v.as_str()).map(str::to_string)
}

async fn socket_client(port: u16, user: String, log: Arc<Mutex<SocketLog>>, stop: Arc<AtomicBool>) {
    let mut last: Option<String> = None;
    while !stop.load(Ordering::Relaxed) {
        let mut url = format!("ws://127.0.0.1:{port}/ws/users/{user}");
        if let Some(l) = &last {
            url.push_str(&format!("?after={l}"));
        }
        let Ok(mut req) = url.as_str().into_client_request() else { return };
        if let Ok(origin) = format!("http://127.0.0.1:{port}").parse() {
            req.headers_mut().insert("Origin", origin);
        }
        let ws = tokio::time::timeout(Duration::from_secs(2), tokio_tungstenite::connect_async(req)).await;
        let Ok(Ok((mut ws, _))) = ws else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut first = true;
        while !stop.load(Ordering::Relaxed) {
            let msg = match tokio::time::timeout(Duration::from_millis(300), ws.next()).await {
                Err(_) => continue,
                Ok(None) | Ok(Some(Err(_))) => break,
                Ok(Some(Ok(m))) => m,
            };
            let Message::Text(text) = msg else { continue };
            let Ok(frame) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
            let mut l = log.lock().unwrap_or_else(|p| p.into_inner());
            if frame["type"] != "entries" {
                l.errors.push(text.to_string());
                continue;
            }
            if first {
                first = false;
                l.connects += 1;
            }
            if frame["truncated"] == true {
                l.truncated += 1;
            }
            for e in frame["entries"].as_array().into_iter().flatten() {
                if let Some(id) = e["id"].as_str() {
                    last = Some(id.to_string());
                }
                if let Some(a) = article_id_of(e) {
                    *l.articles.entry(a).or_insert(0) += 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Sockets {
    fn start(port: u16, users: &[String]) -> Sockets {
        let stop = Arc::new(AtomicBool::new(false));
        let logs: Vec<(String, Arc<Mutex<SocketLog>>)> = users.iter().map(|u| (u.clone(), Arc::default())).collect();
        let tasks: Vec<_> = logs.iter().map(|(u, l)| (u.clone(), l.clone())).collect();
        let stop2 = stop.clone();
        let runtime = thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
            rt.block_on(async move {
                let handles: Vec<_> = tasks.into_iter().map(|(u, l)| tokio::spawn(socket_client(port, u, l, stop2.clone()))).collect();
                for h in handles {
                    let _ = h.await;
                }
            });
        });
        Sockets { logs, stop, runtime: Some(runtime) }
    }

    fn connects(&self) -> Vec<u64> {
        self.logs.iter().map(|(_, l)| l.lock().unwrap_or_else(|p| p.into_inner()).connects).collect()
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.runtime.take() {
            let _ = r.join();
        }
    }
}

struct Options {
    seconds: u64,
    rate: u64,
    seed: u64,
    users: usize,
    model: PathBuf,
}

/// One phase's stack. Servers keep their ports and data dirs across restarts.
struct Stack {
    fsync: &'static str,
    model: String,
    primary: Option<Server>,
    primary_port: u16,
    primary_dir: PathBuf,
    replica: Option<Server>,
    replica_port: u16,
    replica_dir: PathBuf,
    fetcher: Option<Proc>,
    fetcher_seeds: Vec<u64>,
    gateway: Option<Proc>,
    gateway_port: u16,
    sidecar: Option<Proc>,
    sidecars_started: u32,
    agent: Option<Proc>,
    /// Full resyncs the primary served (its counter restarts with it, so summed per fault).
    full_syncs: i64,
    agent_port: u16,
    logs: PathBuf,
    rate: u64,
    seed: u64,
}

fn module_args(model: &str) -> Vec<String> {
    // seen-fp-ppm 1: the seen filter's false positives (skipped deliveries) would read as losses.
    ["model-dir", model, "pipeline", "yes", "feed-len", "100000", "seen-fp-ppm", "1", "classify-escalate-max-per-sec", "1000000"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

impl Stack {
    fn primary_builder(&self) -> ServerBuilder {
        let margs = module_args(&self.model);
        let refs: Vec<&str> = margs.iter().map(String::as_str).collect();
        Server::builder()
            .dir(&self.primary_dir)
            .port(self.primary_port)
            .module_args(&refs)
            .arg("--appendonly", "yes")
            .arg("--appendfsync", self.fsync)
    }

    fn replica_builder(&self) -> ServerBuilder {
        let margs = module_args(&self.model);
        let refs: Vec<&str> = margs.iter().map(String::as_str).collect();
        Server::builder().dir(&self.replica_dir).port(self.replica_port).module_args(&refs).replica_of(self.primary_port)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.primary_port)
    }

    fn start_fetcher(&mut self) {
        let seed = self.seed * 1000 + self.fetcher_seeds.len() as u64;
        self.fetcher_seeds.push(seed);
        let mut cmd = Command::new(workspace_dir().join("target/release/agentic-fetcher"));
        cmd.args(["--valkey", &self.url(), "--metrics-addr", ""]);
        cmd.args(["generate", "--rate", &self.rate.to_string(), "--seed", &seed.to_string()]);
        self.fetcher = Some(Proc::spawn("fetcher", cmd, self.logs.join("fetcher.log")));
    }

    fn start_gateway(&mut self) {
        let mut cmd = Command::new(workspace_dir().join("target/release/agentic-gateway"));
        cmd.args(["--valkey", &self.url(), "--listen", &format!("127.0.0.1:{}", self.gateway_port)]);
        self.gateway = Some(Proc::spawn("gateway", cmd, self.logs.join("gateway.log")));
    }

    fn start_sidecar(&mut self) {
        let bin = workspace_dir().join("sidecar/.venv/bin/agentic-sidecar");
        let mut cmd = Command::new(bin);
        cmd.args(["--valkey", &self.url(), "--model-dir", &self.model, "--use-cuda", "0", "--backend", "onnxruntime"]);
        self.sidecars_started += 1;
        cmd.args(["--id", &self.sidecar_id(), "--metrics-port", &free_port().to_string()]);
        self.sidecar = Some(Proc::spawn("sidecar", cmd, self.logs.join("sidecar.log")));
    }

    fn sidecar_id(&self) -> String {
        format!("chaos-sidecar-{}", self.sidecars_started)
    }

    fn sync_full(&self) -> i64 {
        self.conn().and_then(|mut c| info_field(&mut c, "stats", "sync_full")).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    fn start_agent(&mut self) {
        let bin = workspace_dir().join("agents-py-compat/.venv/bin/agentic-user-reader");
        let mut cmd = Command::new(bin);
        cmd.env("VALKEY_URL", self.url()).env("METRICS_PORT", self.agent_port.to_string()).env("POP_RATE", "1").env("MAX_READER_RPS", "50");
        self.agent = Some(Proc::spawn("agent", cmd, self.logs.join("agent.log")));
    }

    fn conn(&self) -> Option<Connection> {
        connect(self.primary_port)
    }

    /// Anything that died without being killed by us.
    fn unexpected_exits(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for p in [&mut self.fetcher, &mut self.gateway, &mut self.sidecar, &mut self.agent].into_iter().flatten() {
            if let Some(e) = p.exited() {
                out.push(e);
            }
        }
        for (name, s) in [("primary", &mut self.primary), ("replica", &mut self.replica)] {
            if let Some(s) = s.as_mut() {
                if !s.is_running() {
                    out.push(format!("the {name} exited by itself: {}", s.log_tail(20)));
                }
            }
        }
        out
    }
}

/// The newest entry id of a feed ("0-0" when empty).
fn newest_entry(c: &mut Connection, user: &str) -> Option<String> {
    let v: Value = redis::cmd("AGENT.FEED").arg(format!("user:{{{user}}}")).arg("COUNT").arg(1).query(c).ok()?;
    let Value::Array(entries) = v else { return Some("0-0".into()) };
    match entries.first() {
        Some(Value::Array(f)) => match f.first() {
            Some(Value::BulkString(id)) => Some(String::from_utf8_lossy(id).into_owned()),
            _ => Some("0-0".into()),
        },
        _ => Some("0-0".into()),
    }
}

/// Every entry of a feed, oldest first: (entry id, article id).
fn read_feed(c: &mut Connection, user: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut after = "0-0".to_string();
    loop {
        let v: Value = match redis::cmd("AGENT.FEED").arg(format!("user:{{{user}}}")).arg("COUNT").arg(1000).arg("AFTER").arg(&after).query(c) {
            Ok(v) => v,
            Err(e) => fail(&format!("AGENT.FEED {user}: {e}")),
        };
        let Value::Array(entries) = v else { break };
        if entries.is_empty() {
            break;
        }
        for e in entries {
            let Value::Array(f) = e else { continue };
            let (Some(Value::BulkString(id)), Some(Value::BulkString(payload))) = (f.first(), f.get(3)) else { continue };
            after = String::from_utf8_lossy(id).into_owned();
            let article = serde_json::from_slice::<serde_json::Value>(payload)
                .ok()
                .and_then(|j| j["id"].as_str().map(str::to_string))
                .unwrap_or_default();
            out.push((after.clone(), article));
        }
    }
    out
}

fn seen_keys(c: &mut Connection) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor = "0".to_string();
    loop {
        let (next, keys): (String, Vec<String>) =
            match redis::cmd("SCAN").arg(&cursor).arg("MATCH").arg("fetcher:seen:{news_raw}:*").arg("COUNT").arg(1000).query(c) {
                Ok(v) => v,
                Err(e) => fail(&format!("SCAN: {e}")),
            };
        out.extend(keys.into_iter().filter_map(|k| k.strip_prefix("fetcher:seen:{news_raw}:").map(str::to_string)));
        if next == "0" {
            return out;
        }
        cursor = next;
    }
}

fn replica_linked(port: u16) -> bool {
    let Some(mut r) = connect(port) else { return false };
    let info: String = redis::cmd("INFO").arg("replication").query(&mut r).unwrap_or_default();
    parse_info_field(&info, "master_link_status").as_deref() == Some("up")
}

fn replica_caught_up(primary_port: u16, replica_port: u16) -> bool {
    let (Some(mut p), Some(mut r)) = (connect(primary_port), connect(replica_port)) else { return false };
    let p_off = info_field(&mut p, "replication", "master_repl_offset");
    let info: String = redis::cmd("INFO").arg("replication").query(&mut r).unwrap_or_default();
    parse_info_field(&info, "master_link_status").as_deref() == Some("up")
        && p_off.is_some()
        && parse_info_field(&info, "slave_repl_offset") == p_off
}

fn http_ok(port: u16, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if n >= 12 && &buf[9..12] == b"200")
}

fn strings_of(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::BulkString(b) => out.push(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => out.push(s.clone()),
        Value::Array(items) | Value::Set(items) => items.iter().for_each(|i| strings_of(i, out)),
        Value::Map(pairs) => pairs.iter().for_each(|(k, v)| {
            strings_of(k, out);
            strings_of(v, out)
        }),
        _ => {}
    }
}

/// The sidecar of this name has called the module (a killed one stays listed until its TTL).
fn sidecar_listed(port: u16, id: &str) -> bool {
    let Some(mut c) = connect(port) else { return false };
    let Ok(v) = redis::cmd("AGENT.SIDECAR.LIST").query::<Value>(&mut c) else { return false };
    let mut names = Vec::new();
    strings_of(&v, &mut names);
    names.iter().any(|n| n == id)
}

struct FaultRecord {
    fault: Fault,
    recovered: Option<Duration>,
}

struct PhaseResult {
    fsync: &'static str,
    faults: Vec<FaultRecord>,
    ingested: usize,
    acked_then_lost: usize,
    undelivered: usize,
    feed_duplicates: usize,
    socket_duplicates: u64,
    socket_missed: usize,
    socket_truncated: u64,
    socket_reconnects: u64,
    socket_error_frames: u64,
    digests_equal: bool,
    full_syncs: i64,
    unexpected: Vec<String>,
    seconds: f64,
}

/// Injects one fault and waits for the stack to recover; returns the time from the kill.
fn inject(stack: &mut Stack, fault: Fault, sockets: &Sockets, rng: &mut Rng) -> Option<Duration> {
    let down = Duration::from_millis(rng.below(1000) as u64);
    let started;
    match fault {
        Fault::Primary => {
            let before = stack.conn().and_then(|mut c| newest_entry(&mut c, CHECK_USER)).unwrap_or_else(|| "0-0".into());
            started = Instant::now();
            if let Some(p) = stack.primary.take() {
                p.kill9();
            }
            thread::sleep(down);
            stack.primary = Some(stack.primary_builder().start());
            let delivered = wait_until(RECOVERY_LIMIT, || {
                stack.conn().and_then(|mut c| newest_entry(&mut c, CHECK_USER)).is_some_and(|n| n != before && n != "0-0")
            });
            let linked = delivered && wait_until(RECOVERY_LIMIT, || replica_linked(stack.replica_port));
            let recovered = (delivered && linked).then(|| started.elapsed());
            stack.full_syncs += stack.sync_full();
            return recovered;
        }
        Fault::Replica | Fault::ReplicaFullResync => {
            let syncs_before = stack.sync_full();
            started = Instant::now();
            if let Some(r) = stack.replica.take() {
                r.kill9();
            }
            if fault == Fault::ReplicaFullResync {
                // Without its data the replica cannot continue where it was: the primary sends everything.
                if let Ok(entries) = std::fs::read_dir(&stack.replica_dir) {
                    for e in entries.flatten() {
                        let name = e.file_name();
                        if !name.to_string_lossy().ends_with(".log") {
                            let p = e.path();
                            let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
                        }
                    }
                }
            }
            thread::sleep(down);
            stack.replica = Some(stack.replica_builder().start());
            let ok = wait_until(RECOVERY_LIMIT, || replica_caught_up(stack.primary_port, stack.replica_port));
            let recovered = ok.then(|| started.elapsed());
            stack.full_syncs += stack.sync_full() - syncs_before;
            return recovered;
        }
        Fault::Fetcher => {
            started = Instant::now();
            if let Some(mut f) = stack.fetcher.take() {
                f.kill9();
            }
            thread::sleep(down);
            stack.start_fetcher();
            let first = format!("fetcher:seen:{{news_raw}}:syn-{}-0", stack.fetcher_seeds.last().copied().unwrap_or(0));
            let ok = wait_until(RECOVERY_LIMIT, || {
                stack.conn().is_some_and(|mut c| redis::cmd("EXISTS").arg(&first).query::<i64>(&mut c).unwrap_or(0) == 1)
            });
            return ok.then(|| started.elapsed());
        }
        Fault::Gateway => {
            let before = sockets.connects();
            started = Instant::now();
            if let Some(mut g) = stack.gateway.take() {
                g.kill9();
            }
            thread::sleep(down);
            stack.start_gateway();
            let ok = wait_until(RECOVERY_LIMIT, || sockets.connects().iter().zip(&before).all(|(now, then)| now > then));
            return ok.then(|| started.elapsed());
        }
        Fault::Sidecar => {
            started = Instant::now();
            if let Some(mut s) = stack.sidecar.take() {
                s.kill9();
            }
            // The module notices the dead sidecar after sidecar-ttl-ms; the new one registers anew.
            thread::sleep(down);
            stack.start_sidecar();
            let (port, id) = (stack.primary_port, stack.sidecar_id());
            let ok = wait_until(RECOVERY_LIMIT, || sidecar_listed(port, &id));
            return ok.then(|| started.elapsed());
        }
        Fault::Agent => {
            started = Instant::now();
            if let Some(mut a) = stack.agent.take() {
                a.kill9();
            }
            thread::sleep(down);
            stack.start_agent();
            let port = stack.agent_port;
            let ok = wait_until(RECOVERY_LIMIT, || http_ok(port, "/metrics"));
            return ok.then(|| started.elapsed());
        }
    }
}

fn run_phase(opts: &Options, fsync: &'static str, with_sidecar: bool, with_agent: bool) -> PhaseResult {
    let logs = make_temp_dir("agentic-chaos");
    let mut stack = Stack {
        fsync,
        model: std::fs::canonicalize(&opts.model).unwrap_or(opts.model.clone()).display().to_string(),
        primary: None,
        primary_port: free_port(),
        primary_dir: logs.join("primary"),
        replica: None,
        replica_port: free_port(),
        replica_dir: logs.join("replica"),
        fetcher: None,
        fetcher_seeds: Vec::new(),
        gateway: None,
        gateway_port: free_port(),
        sidecar: None,
        sidecars_started: 0,
        agent: None,
        full_syncs: 0,
        agent_port: free_port(),
        logs: logs.clone(),
        rate: opts.rate,
        seed: opts.seed,
    };
    println!("\n== phase appendfsync {fsync}: {} s of faults, {} articles/s, logs in {}", opts.seconds, opts.rate, logs.display());
    stack.primary = Some(stack.primary_builder().start());
    let mut c = stack.conn().unwrap_or_else(|| fail("cannot connect to the primary"));
    wait_model_ready(&mut c, Duration::from_secs(60)).unwrap_or_else(|e| fail(&e));
    stack.replica = Some(stack.replica_builder().start());
    if !wait_until(Duration::from_secs(30), || replica_caught_up(stack.primary_port, stack.replica_port)) {
        fail("the replica did not sync");
    }

    let mut rng = Rng::new(opts.seed ^ if fsync == "always" { 1 } else { 2 });
    let mut users: Vec<String> = (0..opts.users).map(|i| i.to_string()).collect();
    users.push(CHECK_USER.to_string());
    let mut pipe = redis::pipe();
    for u in &users {
        let mut cmd = redis::cmd("AGENT.SUBSCRIBE");
        cmd.arg(format!("user:{{{u}}}"));
        if u == CHECK_USER {
            cmd.arg(&TOPICS[..]);
        } else {
            let n = rng.range(2, 4);
            let mut picked = HashSet::new();
            while picked.len() < n {
                picked.insert(TOPICS[rng.below(TOPICS.len())]);
            }
            cmd.arg(picked.into_iter().collect::<Vec<_>>());
        }
        pipe.add_command(cmd).ignore();
    }
    let _: () = pipe.query(&mut c).unwrap_or_else(|e| fail(&format!("AGENT.SUBSCRIBE: {e}")));

    stack.start_gateway();
    if !wait_until(Duration::from_secs(30), || http_ok(stack.gateway_port, "/healthz")) {
        fail(&format!("the gateway did not start; see {}", logs.join("gateway.log").display()));
    }
    let mut socket_users: Vec<String> = vec![CHECK_USER.to_string()];
    socket_users.extend((0..SOCKET_USERS.min(opts.users)).map(|i| i.to_string()));
    let mut sockets = Sockets::start(stack.gateway_port, &socket_users);
    if with_sidecar {
        stack.start_sidecar();
        let (port, id) = (stack.primary_port, stack.sidecar_id());
        if !wait_until(Duration::from_secs(60), || sidecar_listed(port, &id)) {
            fail(&format!("the sidecar did not register; see {}", logs.join("sidecar.log").display()));
        }
    }
    if with_agent {
        stack.start_agent();
    }
    if !wait_until(Duration::from_secs(30), || sockets.connects().iter().all(|&n| n >= 1)) {
        fail("the sockets did not connect");
    }
    stack.start_fetcher();
    drop(c);

    let mut faults: Vec<Fault> = vec![Fault::Primary, Fault::Replica, Fault::ReplicaFullResync, Fault::Fetcher, Fault::Gateway];
    if with_sidecar {
        faults.push(Fault::Sidecar);
    }
    if with_agent {
        faults.push(Fault::Agent);
    }
    let started = Instant::now();
    let mut records = Vec::new();
    let mut unexpected = Vec::new();
    let mut bag: Vec<Fault> = Vec::new();
    thread::sleep(Duration::from_secs(2));
    while started.elapsed() < Duration::from_secs(opts.seconds) {
        if bag.is_empty() {
            bag = faults.clone();
            for i in (1..bag.len()).rev() {
                bag.swap(i, rng.below(i + 1));
            }
        }
        let fault = bag.pop().unwrap_or(Fault::Fetcher);
        let recovered = inject(&mut stack, fault, &sockets, &mut rng);
        match recovered {
            Some(d) => println!("  {:>6.1} s  {:<22} recovered in {:>6.0} ms", started.elapsed().as_secs_f64(), fault.name(), d.as_secs_f64() * 1e3),
            None => println!("  {:>6.1} s  {:<22} NOT RECOVERED within {RECOVERY_LIMIT:?}", started.elapsed().as_secs_f64(), fault.name()),
        }
        records.push(FaultRecord { fault, recovered });
        unexpected.extend(stack.unexpected_exits());
        thread::sleep(Duration::from_millis(1000 + rng.below(3000) as u64));
    }
    let seconds = started.elapsed().as_secs_f64();

    // Stop ingest, let the pipeline finish, let the sockets receive the last deliveries.
    if let Some(mut f) = stack.fetcher.take() {
        f.kill9();
    }
    let mut c = stack.conn().unwrap_or_else(|| fail("cannot connect to the primary at the end"));
    let drained = wait_until(Duration::from_secs(180), || {
        agent_stat(&mut c, "pipeline_backlog") == 0.0 && agent_stat(&mut c, "pipeline_inflight") == 0.0
    });
    if !drained {
        unexpected.push("the pipeline did not drain within 180 s".into());
    }
    let check_feed = read_feed(&mut c, CHECK_USER);
    let socket_log = sockets.logs[0].1.clone();
    wait_until(Duration::from_secs(30), || {
        let l = socket_log.lock().unwrap_or_else(|p| p.into_inner());
        check_feed.iter().all(|(_, a)| l.articles.contains_key(a))
    });
    sockets.finish();

    let ingested: Vec<String> = seen_keys(&mut c);
    let ingested_set: HashSet<&str> = ingested.iter().map(String::as_str).collect();
    // Per fetcher seed, the numbers written: a gap below the highest means an acknowledged write vanished.
    let mut by_seed: HashMap<u64, Vec<u64>> = HashMap::new();
    for id in &ingested {
        let mut parts = id.rsplitn(2, '-');
        if let (Some(n), Some(rest)) = (parts.next(), parts.next()) {
            if let (Ok(n), Some(Ok(seed))) = (n.parse::<u64>(), rest.strip_prefix("syn-").map(str::parse::<u64>)) {
                by_seed.entry(seed).or_default().push(n);
            }
        }
    }
    let acked_then_lost: usize = by_seed.values().map(|ns| (*ns.iter().max().unwrap_or(&0) as usize + 1).saturating_sub(ns.len())).sum();

    let mut feed_duplicates = 0;
    let mut feeds: HashMap<String, HashSet<String>> = HashMap::new();
    for u in &socket_users {
        let entries = if u == CHECK_USER { check_feed.clone() } else { read_feed(&mut c, u) };
        let mut set = HashSet::new();
        for (_, a) in entries {
            if !set.insert(a) {
                feed_duplicates += 1;
            }
        }
        feeds.insert(u.clone(), set);
    }
    let delivered = &feeds[CHECK_USER];
    let undelivered = ingested_set.iter().filter(|a| !delivered.contains(**a)).count();

    let mut socket_duplicates = 0;
    let mut socket_missed = 0;
    let mut socket_truncated = 0;
    let mut socket_reconnects = 0;
    let mut socket_error_frames = 0;
    for (u, log) in &sockets.logs {
        let l = log.lock().unwrap_or_else(|p| p.into_inner());
        socket_duplicates += l.articles.values().filter(|&&n| n > 1).map(|&n| (n - 1) as u64).sum::<u64>();
        socket_missed += feeds[u].iter().filter(|a| !l.articles.contains_key(*a)).count();
        socket_truncated += l.truncated;
        socket_reconnects += l.connects.saturating_sub(1);
        // While the primary restarts the gateway cannot read a feed: it says so and closes the
        // socket, and the client resumes from its last id (checked by the counts above).
        for e in &l.errors {
            if e.contains("cannot read the feed") {
                socket_error_frames += 1;
            } else {
                unexpected.push(format!("socket of {u}: error frame {e}"));
            }
        }
    }

    // The replica holds exactly the primary's data.
    let digests_equal = wait_until(Duration::from_secs(60), || {
        replica_caught_up(stack.primary_port, stack.replica_port) && {
            let (Some(mut p), Some(mut r)) = (connect(stack.primary_port), connect(stack.replica_port)) else { return false };
            let a: Option<String> = redis::cmd("DEBUG").arg("DIGEST").query(&mut p).ok();
            let b: Option<String> = redis::cmd("DEBUG").arg("DIGEST").query(&mut r).ok();
            a.is_some() && a == b
        }
    });
    let full_syncs = stack.full_syncs;
    unexpected.extend(stack.unexpected_exits());
    drop(c);
    drop(stack);
    let _ = std::fs::remove_dir_all(&logs);
    PhaseResult {
        fsync,
        faults: records,
        ingested: ingested.len(),
        acked_then_lost,
        undelivered,
        feed_duplicates,
        socket_duplicates,
        socket_missed,
        socket_truncated,
        socket_reconnects,
        socket_error_frames,
        digests_equal,
        full_syncs,
        unexpected,
        seconds,
    }
}

fn summary(r: &PhaseResult) -> bool {
    println!("\n-- appendfsync {}: {:.0} s, {} faults injected", r.fsync, r.seconds, r.faults.len());
    let mut kinds: Vec<Fault> = r.faults.iter().map(|f| f.fault).collect();
    kinds.sort_by_key(|f| f.name());
    kinds.dedup();
    let mut ok = true;
    for k in kinds {
        let times: Vec<f64> = r.faults.iter().filter(|f| f.fault == k).filter_map(|f| f.recovered).map(|d| d.as_secs_f64() * 1e3).collect();
        let failed = r.faults.iter().filter(|f| f.fault == k && f.recovered.is_none()).count();
        let max = times.iter().copied().fold(0.0, f64::max);
        let mean = if times.is_empty() { 0.0 } else { times.iter().sum::<f64>() / times.len() as f64 };
        println!("  {:<22} x{:<3} recovery mean {:>6.0} ms, max {:>6.0} ms{}", k.name(), times.len() + failed, mean, max,
            if failed > 0 { format!(", {failed} NOT RECOVERED") } else { String::new() });
        ok &= failed == 0;
    }
    println!("  articles ingested (acknowledged and still on the primary): {}", r.ingested);
    println!("  acknowledged to the fetcher, then lost with the primary's last writes: {}", r.acked_then_lost);
    println!("  ingested but not delivered to the all-topics feed: {}", r.undelivered);
    println!("  duplicates in feeds: {}; duplicates on sockets: {}", r.feed_duplicates, r.socket_duplicates);
    println!(
        "  feed entries a socket never received: {} ({} reconnects, {} truncated catch-ups, {} closed with \"cannot read the feed\" while the primary was down)",
        r.socket_missed, r.socket_reconnects, r.socket_truncated, r.socket_error_frames
    );
    println!("  full resyncs of the replica: {}; replica data equal to the primary's (DEBUG DIGEST): {}", r.full_syncs, if r.digests_equal { "yes" } else { "NO" });
    for u in &r.unexpected {
        println!("  UNEXPECTED: {u}");
    }
    ok &= r.undelivered == 0 && r.feed_duplicates == 0 && r.socket_duplicates == 0 && r.socket_missed == 0 && r.digests_equal && r.unexpected.is_empty();
    if r.fsync == "always" {
        ok &= r.acked_then_lost == 0;
    }
    ok
}

fn main() {
    let mut opts = Options { seconds: 90, rate: 20, seed: 1, users: 200, model: workspace_dir().join("model/out/tiny") };
    let mut fsyncs: Vec<&'static str> = vec!["always", "everysec"];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || args.next().unwrap_or_else(|| fail(&format!("{a} needs a value")));
        match a.as_str() {
            "--seconds" => opts.seconds = v().parse().unwrap_or_else(|_| fail("--seconds: a number")),
            "--rate" => opts.rate = v().parse().unwrap_or_else(|_| fail("--rate: a number")),
            "--seed" => opts.seed = v().parse().unwrap_or_else(|_| fail("--seed: a number")),
            "--users" => opts.users = v().parse().unwrap_or_else(|_| fail("--users: a number")),
            "--model" => opts.model = v().into(),
            "--fsync" => {
                fsyncs = match v().as_str() {
                    "always" => vec!["always"],
                    "everysec" => vec!["everysec"],
                    "both" => vec!["always", "everysec"],
                    other => fail(&format!("--fsync always|everysec|both, not {other}")),
                }
            }
            other => fail(&format!("unknown argument {other}")),
        }
    }
    if !opts.model.join("model.onnx").is_file() {
        fail(&format!("no model in {} (make tiny-model)", opts.model.display()));
    }
    for bin in ["agentic-fetcher", "agentic-gateway"] {
        if !workspace_dir().join("target/release").join(bin).is_file() {
            fail(&format!("target/release/{bin} is missing: cargo build --release -p {bin}"));
        }
    }
    let with_sidecar = Path::new(&workspace_dir().join("sidecar/.venv/bin/agentic-sidecar")).is_file();
    let with_agent = Path::new(&workspace_dir().join("agents-py-compat/.venv/bin/agentic-user-reader")).is_file();
    if !with_sidecar {
        println!("chaos: no sidecar (sidecar/.venv is missing: make test-sidecar creates it); its faults are skipped");
    }
    if !with_agent {
        println!("chaos: no Python agent (agents-py-compat/.venv is missing: make test-agents creates it); its faults are skipped");
    }
    let (a, b, c) = agentic_tests::server_version();
    println!("chaos: {} | valkey-server {a}.{b}.{c} | model {} | seed {}", cpu_model(), opts.model.display(), opts.seed);
    let results: Vec<PhaseResult> = fsyncs.iter().map(|f| run_phase(&opts, f, with_sidecar, with_agent)).collect();
    let mut ok = true;
    for r in &results {
        ok &= summary(r);
    }
    println!("\nchaos: {}", if ok { "PASSED" } else { "FAILED" });
    if !ok {
        exit(1);
    }
}
