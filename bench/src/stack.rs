//! Processes of a whole stack for the long-running tools (chaos, soak): companions started and
//! killed by PID, connections that give up quickly while a server restarts, and readiness probes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use agentic_tests::{free_port, info_field, parse_info_field, workspace_dir, Server, ServerBuilder};
use futures_util::StreamExt;
use redis::{Connection, Value};
use std::collections::HashMap;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// A connection to 127.0.0.1:`port` that gives up quickly (the server may be restarting).
pub fn connect(port: u16) -> Option<Connection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    let c = client.get_connection_with_timeout(Duration::from_millis(500)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    Some(c)
}

/// Polls `cond` every 20 ms until it holds (true) or `limit` passes (false).
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

/// GET `path` answers 200.
pub fn http_ok(port: u16, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if n >= 12 && &buf[9..12] == b"200")
}

/// A companion process (fetcher, gateway, sidecar, agent): SIGKILL on drop.
pub struct Proc {
    pub name: &'static str,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &'static str, mut cmd: Command, log: PathBuf) -> Proc {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let err = out.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let child = cmd.stdin(Stdio::null()).stdout(out).stderr(err).spawn().unwrap_or_else(|e| panic!("cannot start the {name}: {e}"));
        Proc { name, child: Some(child), log }
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Exited on its own (not killed by us)?
    pub fn exited(&mut self) -> Option<String> {
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

/// A whole stack: a primary with the module and the in-server pipeline (AOF), a replica, the
/// fetcher, the gateway, a sidecar and a Python agent. Servers keep their ports and data dirs
/// across restarts; companions are started by the caller, each into its own log.
pub struct Stack {
    pub fsync: &'static str,
    pub model: String,
    pub primary: Option<Server>,
    pub primary_port: u16,
    pub primary_dir: PathBuf,
    pub replica: Option<Server>,
    pub replica_port: u16,
    pub replica_dir: PathBuf,
    pub fetcher: Option<Proc>,
    pub fetcher_seeds: Vec<u64>,
    pub gateway: Option<Proc>,
    pub gateway_port: u16,
    pub sidecar: Option<Proc>,
    pub sidecars_started: u32,
    pub agent: Option<Proc>,
    /// Full resyncs the primary served (its counter restarts with it, so summed per fault).
    pub full_syncs: i64,
    pub agent_port: u16,
    pub logs: PathBuf,
    pub rate: u64,
    pub seed: u64,
    /// Module arguments after `model-dir` and `pipeline yes`.
    pub module_extra: Vec<String>,
    /// Arguments of `agentic-fetcher generate` after the stack's own.
    pub fetcher_extra: Vec<String>,
}

fn module_args(model: &str, extra: &[String]) -> Vec<String> {
    ["model-dir", model, "pipeline", "yes"].iter().map(|s| s.to_string()).chain(extra.iter().cloned()).collect()
}

impl Stack {
    /// Nothing started yet; data dirs and companion logs go under `logs`.
    pub fn new(fsync: &'static str, model: &Path, logs: PathBuf, rate: u64, seed: u64) -> Stack {
        Stack {
            fsync,
            model: std::fs::canonicalize(model).unwrap_or(model.to_path_buf()).display().to_string(),
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
            logs,
            rate,
            seed,
            module_extra: Vec::new(),
            fetcher_extra: Vec::new(),
        }
    }

    pub fn primary_builder(&self) -> ServerBuilder {
        let margs = module_args(&self.model, &self.module_extra);
        let refs: Vec<&str> = margs.iter().map(String::as_str).collect();
        Server::builder()
            .dir(&self.primary_dir)
            .port(self.primary_port)
            .module_args(&refs)
            .arg("--appendonly", "yes")
            .arg("--appendfsync", self.fsync)
    }

    pub fn replica_builder(&self) -> ServerBuilder {
        let margs = module_args(&self.model, &self.module_extra);
        let refs: Vec<&str> = margs.iter().map(String::as_str).collect();
        Server::builder().dir(&self.replica_dir).port(self.replica_port).module_args(&refs).replica_of(self.primary_port)
    }

    /// The primary (its model loaded) and the replica, synced.
    pub fn start_servers(&mut self) -> Result<(), String> {
        self.primary = Some(self.primary_builder().start());
        let mut c = self.conn().ok_or("cannot connect to the primary")?;
        crate::wait_model_ready(&mut c, Duration::from_secs(60))?;
        self.replica = Some(self.replica_builder().start());
        if !wait_until(Duration::from_secs(30), || replica_caught_up(self.primary_port, self.replica_port)) {
            return Err("the replica did not sync".into());
        }
        Ok(())
    }

    pub fn start_gateway_ready(&mut self) -> Result<(), String> {
        self.start_gateway();
        if !wait_until(Duration::from_secs(30), || http_ok(self.gateway_port, "/healthz")) {
            return Err(format!("the gateway did not start; see {}", self.logs.join("gateway.log").display()));
        }
        Ok(())
    }

    pub fn start_sidecar_ready(&mut self) -> Result<(), String> {
        self.start_sidecar();
        let (port, id) = (self.primary_port, self.sidecar_id());
        if !wait_until(Duration::from_secs(60), || sidecar_listed(port, &id)) {
            return Err(format!("the sidecar did not register; see {}", self.logs.join("sidecar.log").display()));
        }
        Ok(())
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.primary_port)
    }

    pub fn start_fetcher(&mut self) {
        let seed = self.seed * 1000 + self.fetcher_seeds.len() as u64;
        self.fetcher_seeds.push(seed);
        let mut cmd = Command::new(workspace_dir().join("target/release/agentic-fetcher"));
        cmd.args(["--valkey", &self.url(), "--metrics-addr", ""]);
        cmd.args(["generate", "--rate", &self.rate.to_string(), "--seed", &seed.to_string()]);
        cmd.args(&self.fetcher_extra);
        self.fetcher = Some(Proc::spawn("fetcher", cmd, self.logs.join("fetcher.log")));
    }

    pub fn start_gateway(&mut self) {
        let mut cmd = Command::new(workspace_dir().join("target/release/agentic-gateway"));
        cmd.args(["--valkey", &self.url(), "--listen", &format!("127.0.0.1:{}", self.gateway_port)]);
        self.gateway = Some(Proc::spawn("gateway", cmd, self.logs.join("gateway.log")));
    }

    pub fn start_sidecar(&mut self) {
        let bin = workspace_dir().join("sidecar/.venv/bin/agentic-sidecar");
        let mut cmd = Command::new(bin);
        cmd.args(["--valkey", &self.url(), "--model-dir", &self.model, "--use-cuda", "0", "--backend", "onnxruntime"]);
        self.sidecars_started += 1;
        cmd.args(["--id", &self.sidecar_id(), "--metrics-port", &free_port().to_string()]);
        self.sidecar = Some(Proc::spawn("sidecar", cmd, self.logs.join("sidecar.log")));
    }

    pub fn sidecar_id(&self) -> String {
        format!("stack-sidecar-{}", self.sidecars_started)
    }

    pub fn sync_full(&self) -> i64 {
        self.conn().and_then(|mut c| info_field(&mut c, "stats", "sync_full")).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    pub fn start_agent(&mut self) {
        let bin = workspace_dir().join("agents-py-compat/.venv/bin/agentic-user-reader");
        let mut cmd = Command::new(bin);
        cmd.env("VALKEY_URL", self.url()).env("METRICS_PORT", self.agent_port.to_string()).env("POP_RATE", "1").env("MAX_READER_RPS", "50");
        self.agent = Some(Proc::spawn("agent", cmd, self.logs.join("agent.log")));
    }

    pub fn conn(&self) -> Option<Connection> {
        connect(self.primary_port)
    }

    /// Anything that died without being killed by us.
    pub fn unexpected_exits(&mut self) -> Vec<String> {
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

/// Whether the replica on `port` is linked to its primary.
pub fn replica_linked(port: u16) -> bool {
    let Some(mut r) = connect(port) else { return false };
    let info: String = redis::cmd("INFO").arg("replication").query(&mut r).unwrap_or_default();
    parse_info_field(&info, "master_link_status").as_deref() == Some("up")
}

/// Linked and at the primary's replication offset.
pub fn replica_caught_up(primary_port: u16, replica_port: u16) -> bool {
    let (Some(mut p), Some(mut r)) = (connect(primary_port), connect(replica_port)) else { return false };
    let p_off = info_field(&mut p, "replication", "master_repl_offset");
    let info: String = redis::cmd("INFO").arg("replication").query(&mut r).unwrap_or_default();
    parse_info_field(&info, "master_link_status").as_deref() == Some("up")
        && p_off.is_some()
        && parse_info_field(&info, "slave_repl_offset") == p_off
}

/// Every string in a reply, depth first.
pub fn strings_of(v: &Value, out: &mut Vec<String>) {
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
pub fn sidecar_listed(port: u16, id: &str) -> bool {
    let Some(mut c) = connect(port) else { return false };
    let Ok(v) = redis::cmd("AGENT.SIDECAR.LIST").query::<Value>(&mut c) else { return false };
    let mut names = Vec::new();
    strings_of(&v, &mut names);
    names.iter().any(|n| n == id)
}

/// Every entry of a feed, oldest first: (entry id, article id).
pub fn read_feed(c: &mut Connection, user: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut after = "0-0".to_string();
    loop {
        let v: Value =
            match redis::cmd("AGENT.FEED").arg(format!("user:{{{user}}}")).arg("COUNT").arg(1000).arg("AFTER").arg(&after).query(c) {
                Ok(v) => v,
                Err(e) => panic!("AGENT.FEED {user}: {e}"),
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

/// Resident memory of a process in bytes (VmRSS), None when it is gone.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

/// What the browser-like socket clients saw, per user.
#[derive(Default)]
pub struct SocketLog {
    pub articles: HashMap<String, u32>,
    pub connects: u64,
    pub truncated: u64,
    pub errors: Vec<String>,
}

/// Browser-like WebSocket clients on the gateway, one per user: each reconnects after a close and
/// resumes with `after=<last entry id>`, as the UI does.
pub struct Sockets {
    pub logs: Vec<(String, Arc<Mutex<SocketLog>>)>,
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
    pub fn start(port: u16, users: &[String]) -> Sockets {
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

    pub fn connects(&self) -> Vec<u64> {
        self.logs.iter().map(|(_, l)| l.lock().unwrap_or_else(|p| p.into_inner()).connects).collect()
    }

    pub fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.runtime.take() {
            let _ = r.join();
        }
    }
}

/// Two to four distinct topics, as the benchmarks' users have.
pub fn random_interests(rng: &mut crate::Rng) -> Vec<&'static str> {
    let n = rng.range(2, 4);
    let mut picked: Vec<&'static str> = Vec::new();
    while picked.len() < n {
        let t = crate::TOPICS[rng.below(crate::TOPICS.len())];
        if !picked.contains(&t) {
            picked.push(t);
        }
    }
    picked
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn note_interrupt(_signal: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// After this, Ctrl-C or SIGTERM only sets [`interrupted`], so a long run can stop early and still
/// stop every process it started (they are not its process group's to lose).
pub fn catch_interrupts() {
    let handler = note_interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t;
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}
