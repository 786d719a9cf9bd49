//! Test harness: real `valkey-server` processes, optionally with `libagentic.so` loaded.
//!
//! ```no_run
//! use agentic_tests::Server;
//! let server = Server::builder().module_args(&["feed-len", "50"]).start();
//! let mut conn = server.conn();
//! let pong: String = redis::cmd("PING").query(&mut conn).expect("PING");
//! assert_eq!(pong, "PONG");
//! // the process is killed (by pid) and its temp dir removed when `server` drops,
//! // also when the test panics.
//! ```
//!
//! Environment:
//! - `AGENTIC_MODULE`: path of the module to load (default `<workspace>/target/release/libagentic.so`);
//! - `VALKEY_SERVER`: server binary (default `valkey-server` from `PATH`).

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long `start()` waits for the first PING answer.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `Drop` waits after SIGTERM before it sends SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(2);

/// The workspace root: parent of this crate's manifest directory.
pub fn workspace_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or_else(|| manifest.to_path_buf())
}

/// Path of the module to load: `$AGENTIC_MODULE`, else `<workspace>/target/release/libagentic.so`.
///
/// Panics with a clear message when the file does not exist.
pub fn module_path() -> PathBuf {
    let path = match std::env::var_os("AGENTIC_MODULE") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => workspace_dir().join("target/release/libagentic.so"),
    };
    if !path.is_file() {
        panic!(
            "module not found at {}: build the module first: cargo build --release -p agentic \
             (or point AGENTIC_MODULE at libagentic.so)",
            path.display()
        );
    }
    path
}

/// The `valkey-server` binary: `$VALKEY_SERVER` or `valkey-server` from `PATH`.
pub fn server_binary() -> PathBuf {
    match std::env::var_os("VALKEY_SERVER") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from("valkey-server"),
    }
}

static DIR_COUNTER: AtomicU64 = AtomicU64::new(0);
static RUN_DIR: OnceLock<PathBuf> = OnceLock::new();

/// Creates a fresh, unique directory for a test, inside one folder per process that is removed
/// when the process exits, also after failed tests (their messages carry the servers' log tails).
/// `AGENTIC_KEEP_TEST_DIRS=1` keeps them for a look afterwards.
pub fn make_temp_dir(prefix: &str) -> PathBuf {
    let run_dir = RUN_DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("agentic-run-{}", std::process::id()));
        if std::env::var_os("AGENTIC_KEEP_TEST_DIRS").is_none() {
            // SAFETY: registers a plain function; atexit only fails when its table is full, and
            // then the folder is merely left behind.
            unsafe {
                libc::atexit(remove_run_dir);
            }
        }
        dir
    });
    fs::create_dir_all(run_dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", run_dir.display()));
    unique_dir_in(run_dir, prefix)
}

extern "C" fn remove_run_dir() {
    if let Some(dir) = RUN_DIR.get() {
        let _ = fs::remove_dir_all(dir);
    }
}

/// Creates a fresh, unique directory under the system temp dir that outlives the process: for
/// the logs that `make chaos`, `make soak` and the benchmarks point to when they end.
pub fn make_kept_dir(prefix: &str) -> PathBuf {
    unique_dir_in(&std::env::temp_dir(), prefix)
}

fn unique_dir_in(base: &Path, prefix: &str) -> PathBuf {
    loop {
        let n = DIR_COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let path = base.join(format!("{prefix}-{}-{n}-{nanos:09}", std::process::id()));
        match fs::create_dir(&path) {
            Ok(()) => return path,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("cannot create temp dir {}: {e}", path.display()),
        }
    }
}

/// A free loopback TCP port (bind 127.0.0.1:0, read the port, release it).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
    listener.local_addr().expect("local_addr of probe listener").port()
}

/// Last `n` lines of a text file ("" when it cannot be read). Reads at most the last 256 KiB.
pub fn file_tail(path: &Path, n: usize) -> String {
    let mut file = match fs::File::open(path) {
        Ok(f) => f,
        Err(_) => return String::new(),
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(256 * 1024);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    if file.read_to_end(&mut buf).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn send_signal(pid: u32, signal: libc::c_int) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid, signal) == 0 }
}

/// True while a process with this pid exists (`kill -0`).
pub fn pid_alive(pid: u32) -> bool {
    send_signal(pid, 0)
}

/// Builder for [`Server`]. Obtain with [`Server::builder`].
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    with_module: bool,
    module: Option<PathBuf>,
    module_args: Vec<String>,
    extra: Vec<Vec<String>>,
    dir: Option<PathBuf>,
    remove_dir: bool,
    replica_of: Option<u16>,
    port: Option<u16>,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerBuilder {
    pub fn new() -> Self {
        Self {
            with_module: true,
            module: None,
            module_args: Vec::new(),
            extra: Vec::new(),
            dir: None,
            remove_dir: false,
            replica_of: None,
            port: None,
        }
    }

    /// Arguments passed to the module, after `--loadmodule <path>`.
    pub fn module_args(mut self, args: &[&str]) -> Self {
        self.module_args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    /// Load this module file instead of [`module_path`].
    pub fn module(mut self, path: impl Into<PathBuf>) -> Self {
        self.module = Some(path.into());
        self.with_module = true;
        self
    }

    /// Start a plain server without the module (pure Lua / baseline tests).
    pub fn no_module(mut self) -> Self {
        self.with_module = false;
        self
    }

    /// Extra config `--name value`, appended after the defaults so it overrides them
    /// (e.g. `.arg("--appendonly", "yes")`). The leading `--` is optional.
    pub fn arg(self, name: &str, value: &str) -> Self {
        self.args(name, &[value])
    }

    /// Extra config with several values, e.g. `.args("--replicaof", &["127.0.0.1", "7000"])`.
    pub fn args(mut self, name: &str, values: &[&str]) -> Self {
        let name = if name.starts_with("--") { name.to_string() } else { format!("--{name}") };
        let mut line = vec![name];
        line.extend(values.iter().map(|s| s.to_string()));
        self.extra.push(line);
        self
    }

    /// Use an existing data dir (e.g. the one returned by [`Server::kill9`] / [`Server::stop`]).
    /// The directory is *not* removed on drop.
    pub fn dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.dir = Some(path.into());
        self.remove_dir = false;
        self
    }

    /// Like [`ServerBuilder::dir`], but the new server takes ownership of the directory and
    /// removes it on drop (use for the last restart of a temp dir).
    pub fn adopt_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.dir = Some(path.into());
        self.remove_dir = true;
        self
    }

    /// Listen on this port instead of a free one (to restart a server where its clients expect it).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Start as a replica of `127.0.0.1:<port>`.
    pub fn replica_of(mut self, port: u16) -> Self {
        self.replica_of = Some(port);
        self
    }

    /// The full argument list `valkey-server` would get for this port/dir (for debugging).
    pub fn command_args(&self, port: u16, dir: &Path, module: Option<&Path>) -> Vec<String> {
        let log = dir.join("valkey.log");
        let mut a: Vec<String> = vec![
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            dir.display().to_string(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--enable-debug-command".into(),
            "local".into(),
            "--loglevel".into(),
            "warning".into(),
            "--logfile".into(),
            log.display().to_string(),
            // Full syncs start at once instead of after the default 5 s diskless-sync delay.
            "--repl-diskless-sync-delay".into(),
            "0".into(),
        ];
        if let Some(m) = module {
            a.push("--loadmodule".into());
            a.push(m.display().to_string());
            a.extend(self.module_args.iter().cloned());
        }
        if let Some(p) = self.replica_of {
            a.push("--replicaof".into());
            a.push("127.0.0.1".into());
            a.push(p.to_string());
        }
        for line in &self.extra {
            a.extend(line.iter().cloned());
        }
        a
    }

    /// Spawn the server and wait until it answers PING (panics with the log tail on failure).
    pub fn start(self) -> Server {
        let module = if self.with_module {
            Some(match &self.module {
                Some(p) => p.clone(),
                None => module_path(),
            })
        } else {
            None
        };
        let (dir, remove_dir) = match &self.dir {
            Some(d) => {
                fs::create_dir_all(d).unwrap_or_else(|e| panic!("cannot create data dir {}: {e}", d.display()));
                (d.clone(), self.remove_dir)
            }
            None => (make_temp_dir("agentic-test"), true),
        };

        // The probe port may be taken by someone else between probe and bind: retry a few times.
        let mut last_err = String::new();
        for _attempt in 0..5 {
            let port = self.port.unwrap_or_else(free_port);
            let args = self.command_args(port, &dir, module.as_deref());
            let out = fs::OpenOptions::new().create(true).append(true).open(dir.join("stdout.log")).expect("open stdout.log in data dir");
            let err = out.try_clone().expect("clone stdout.log handle");
            let child = Command::new(server_binary())
                .args(&args)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", server_binary().display()));
            let mut server = Server { port, pid: child.id(), dir: dir.clone(), remove_dir, child: Some(child) };
            match server.wait_ready(START_TIMEOUT) {
                Ok(()) => return server,
                Err(e) => {
                    let tail = server.log_tail(40);
                    // Do not let this failed attempt delete the dir we may retry in.
                    server.remove_dir = false;
                    drop(server);
                    if tail.contains("Address already in use") {
                        last_err = format!("{e}\n{tail}");
                        continue;
                    }
                    if remove_dir {
                        let _ = fs::remove_dir_all(&dir);
                    }
                    panic!("valkey-server did not start ({e}); args: {args:?}\n--- log tail ({}) ---\n{tail}", dir.display());
                }
            }
        }
        if remove_dir {
            let _ = fs::remove_dir_all(&dir);
        }
        panic!("valkey-server did not start after 5 port attempts: {last_err}");
    }
}

/// A running `valkey-server` child process. Dropping it kills the process (SIGTERM, then SIGKILL
/// after [`TERM_GRACE`]) and removes its temp dir unless the dir was supplied with `.dir()`.
#[derive(Debug)]
pub struct Server {
    pub port: u16,
    pub pid: u32,
    pub dir: PathBuf,
    remove_dir: bool,
    child: Option<Child>,
}

impl Server {
    pub fn builder() -> ServerBuilder {
        ServerBuilder::new()
    }

    /// Start a server with the module and default settings.
    pub fn start() -> Server {
        ServerBuilder::new().start()
    }

    /// Start a plain server without the module.
    pub fn start_plain() -> Server {
        ServerBuilder::new().no_module().start()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("valid redis url")
    }

    /// A new synchronous connection.
    pub fn conn(&self) -> redis::Connection {
        self.client().get_connection().unwrap_or_else(|e| panic!("connect to {}: {e}\n{}", self.url(), self.log_tail(20)))
    }

    /// Last `n` lines of the server log plus anything written to stdout/stderr (panics, crash
    /// reports of a module go there).
    pub fn log_tail(&self, n: usize) -> String {
        let log = file_tail(&self.dir.join("valkey.log"), n);
        let out = file_tail(&self.dir.join("stdout.log"), n);
        if out.trim().is_empty() {
            log
        } else {
            format!("{log}\n--- stdout/stderr ---\n{out}")
        }
    }

    /// Whether the child process is still running (reaps it if it exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let client = self.client();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("server exited early with {status}"));
                }
            }
            let attempt =
                client.get_connection_with_timeout(Duration::from_millis(500)).and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            match attempt {
                Ok(_) => return Ok(()),
                // LOADING errors etc.: keep polling until the deadline.
                Err(e) if Instant::now() >= deadline => return Err(format!("no PING answer within {timeout:?}: {e}")),
                Err(_) => thread::sleep(Duration::from_millis(25)),
            }
        }
    }

    fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let Some(child) = self.child.as_mut() else {
            return true;
        };
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return true,
                Ok(None) if Instant::now() >= deadline => return false,
                Ok(None) => thread::sleep(Duration::from_millis(10)),
                Err(_) => return true,
            }
        }
    }

    fn kill_now(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill(); // SIGKILL by pid
            let _ = child.wait();
        }
        self.child = None;
    }

    fn terminate(&mut self) {
        if self.child.is_none() {
            return;
        }
        if self.is_running() {
            send_signal(self.pid, libc::SIGTERM);
            if !self.wait_exit(TERM_GRACE) {
                self.kill_now();
            }
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }

    /// SIGKILL the server (no final fsync or save) and hand back its data dir, which the caller
    /// now owns (start a new server on it with `.dir()` / `.adopt_dir()`).
    pub fn kill9(mut self) -> PathBuf {
        self.kill_now();
        self.remove_dir = false;
        self.dir.clone()
    }

    /// Graceful stop (`SHUTDOWN NOSAVE`, falling back to SIGTERM/SIGKILL); returns the data dir,
    /// which the caller now owns. With AOF enabled the AOF is fsynced on shutdown.
    pub fn stop(mut self) -> PathBuf {
        if let Ok(mut c) = self.client().get_connection_with_timeout(Duration::from_secs(1)) {
            // The server closes the connection instead of replying: ignore the result.
            let _: redis::RedisResult<()> = redis::cmd("SHUTDOWN").arg("NOSAVE").query(&mut c);
        }
        if !self.wait_exit(Duration::from_secs(5)) {
            self.terminate();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        self.remove_dir = false;
        self.dir.clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.terminate();
        if self.remove_dir {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Value of `field` in `INFO <section>`, if present.
pub fn info_field(conn: &mut redis::Connection, section: &str, field: &str) -> Option<String> {
    let info: String = redis::cmd("INFO").arg(section).query(conn).ok()?;
    parse_info_field(&info, field)
}

/// Finds `field:value` in an INFO text.
pub fn parse_info_field(info: &str, field: &str) -> Option<String> {
    info.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k == field).then(|| v.trim().to_string())
    })
}

/// Polls `cond` every 10 ms until it is true (returns true) or `timeout` passes (returns false).
pub fn wait_for<F: FnMut() -> bool>(mut cond: F, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Waits (up to 15 s, else panics) until `replica` has `master_link_status:up` and its
/// replication offset equals the primary's `master_repl_offset`.
pub fn wait_replica_synced(primary: &Server, replica: &Server) {
    let mut pc = primary.conn();
    let mut rc = replica.conn();
    let mut last = String::new();
    let ok = wait_for(
        || {
            let p_off = info_field(&mut pc, "replication", "master_repl_offset");
            let r_info: String = match redis::cmd("INFO").arg("replication").query(&mut rc) {
                Ok(s) => s,
                Err(_) => return false,
            };
            let link = parse_info_field(&r_info, "master_link_status");
            let r_off = parse_info_field(&r_info, "slave_repl_offset").or_else(|| parse_info_field(&r_info, "master_repl_offset"));
            last = format!("primary offset {p_off:?}, replica link {link:?} offset {r_off:?}");
            link.as_deref() == Some("up") && p_off.is_some() && p_off == r_off
        },
        Duration::from_secs(15),
    );
    if !ok {
        panic!(
            "replica on port {} did not sync with primary on port {}: {last}\n--- replica log ---\n{}",
            replica.port,
            primary.port,
            replica.log_tail(30)
        );
    }
}

mod cluster;
pub use cluster::*;
pub mod fuzz;

/// ops/acl/users.acl with the password `pw-<user>` for each user, written into `dir`; start a
/// server with `.arg("--aclfile", ...)` and connect with [`acl_user_url`].
pub fn test_acl_file(dir: &Path) -> PathBuf {
    let template = std::fs::read_to_string(workspace_dir().join("ops/acl/users.acl")).expect("ops/acl/users.acl");
    let path = dir.join("users.acl");
    std::fs::create_dir_all(dir).expect("ACL file folder");
    std::fs::write(&path, template.replace("CHANGE-ME-", "pw-")).expect("write the ACL file");
    path
}

/// The URL of `server` as `user` of [`test_acl_file`].
pub fn acl_user_url(server: &Server, user: &str) -> String {
    format!("redis://{user}:pw-{user}@127.0.0.1:{}", server.port)
}

/// A test CA, a server certificate for 127.0.0.1 and a client certificate, both signed by it, in
/// `dir` (scripts/test-tls-certs.sh).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TlsFiles {
    /// The command-line arguments of the fetcher and the gateway for these files: the CA and the
    /// client certificate.
    pub fn client_args(&self) -> Vec<String> {
        let s = |p: &PathBuf| p.to_str().expect("UTF-8 path").to_string();
        vec!["--tls-ca-cert".into(), s(&self.ca_cert), "--tls-cert".into(), s(&self.client_cert), "--tls-key".into(), s(&self.client_key)]
    }
}

pub fn tls_files(dir: &Path) -> TlsFiles {
    let script = workspace_dir().join("scripts/test-tls-certs.sh");
    let out = Command::new("bash").arg(&script).arg(dir).output().expect("bash scripts/test-tls-certs.sh");
    assert!(out.status.success(), "scripts/test-tls-certs.sh: {}", String::from_utf8_lossy(&out.stderr));
    TlsFiles {
        ca_cert: dir.join("ca.crt"),
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
        client_cert: dir.join("client.crt"),
        client_key: dir.join("client.key"),
    }
}

impl ServerBuilder {
    /// Also listens with TLS on `tls_port` (the plain port stays for the tests' own connections).
    /// Clients must present a certificate signed by the test CA, as with Valkey's default
    /// `tls-auth-clients yes`.
    pub fn tls(self, files: &TlsFiles, tls_port: u16) -> Self {
        self.arg("--tls-port", &tls_port.to_string())
            .arg("--tls-cert-file", files.cert.to_str().expect("UTF-8 path"))
            .arg("--tls-key-file", files.key.to_str().expect("UTF-8 path"))
            .arg("--tls-ca-cert-file", files.ca_cert.to_str().expect("UTF-8 path"))
            .arg("--tls-auth-clients", "yes")
    }
}
