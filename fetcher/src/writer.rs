//! The single writer: paces articles, applies backpressure from the consumer group's lag and
//! writes each article with one idempotent script, reconnecting and retrying until Valkey answers.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use log::{debug, error, info, warn};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ErrorKind, RedisError, RedisResult, ServerErrorKind, Value};
use tokio::sync::mpsc;

use crate::article::Article;
use crate::metrics::Metrics;

/// The write script: dedup marker and stream entry in one atomic step.
/// KEYS[1] stream, KEYS[2] `fetcher:seen:{<stream's hash tag>}:<id>`; ARGV id, JSON, dedup TTL.
/// Returns the new entry id, or nil when the id was already seen.
pub const WRITE_SCRIPT: &str = "if redis.call('SET', KEYS[2], 1, 'NX', 'EX', ARGV[3]) then return redis.call('XADD', KEYS[1], '*', 'id', ARGV[1], 'data', ARGV[2]) else return false end";

/// Prefix of the per-article dedup key.
pub const SEEN_PREFIX: &str = "fetcher:seen:";

/// The dedup key of article `id`: it carries the stream's hash tag, so on Valkey Cluster both keys
/// of the write script are in the stream's slot (a key hashes by its `{tag}` when it has one, by
/// its whole name otherwise).
pub fn seen_key(stream: &str, id: &str) -> String {
    let tag = stream
        .find('{')
        .and_then(|open| stream[open + 1..].find('}').filter(|&len| len > 0).map(|len| &stream[open + 1..open + 1 + len]))
        .unwrap_or(stream);
    format!("{SEEN_PREFIX}{{{tag}}}:{id}")
}

/// How long a backlog reading is reused before it is read again.
const BACKLOG_CACHE: Duration = Duration::from_millis(100);
/// Poll period while paused by backpressure.
const PAUSE_POLL: Duration = Duration::from_millis(50);
/// Resume when the backlog drops below this fraction of `max_backlog`.
const RESUME_FRACTION: f64 = 0.9;
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// A cluster command's bound including the client's own redirections and reconnections.
const OVERALL_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub valkey: String,
    /// Certificates for `rediss://` URLs (see [`tls_certificates`]); None = the system's roots
    /// and no client certificate.
    pub tls: Option<redis::TlsCertificates>,
    pub stream: String,
    pub group: String,
    /// 0 disables backpressure.
    pub max_backlog: u64,
    pub dedup_ttl: u64,
    /// Articles per second; `None` = as fast as Valkey answers.
    pub rate: Option<f64>,
    /// `valkey` names cluster nodes (comma-separated seeds): a cluster client routes every key.
    pub cluster: bool,
}

/// What the writer did, for the final summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct WriterStats {
    pub written: u64,
    pub duplicates: u64,
}

/// Steady pacer: one slot every `period`, never bursting to catch up after a stall longer than
/// `max(period, 20 ms)`.
pub struct Pacer {
    period: Duration,
    next: Option<Instant>,
}

impl Pacer {
    pub fn new(rate: f64) -> Pacer {
        Pacer { period: Duration::from_secs_f64(1.0 / rate), next: None }
    }

    pub async fn wait(&mut self) {
        let now = Instant::now();
        let slack = self.period.max(Duration::from_millis(20));
        let due = match self.next {
            None => now,
            Some(n) if n > now => {
                tokio::time::sleep_until(n.into()).await;
                n
            }
            Some(n) if now.duration_since(n) > slack => now,
            Some(n) => n,
        };
        self.next = Some(due + self.period);
    }
}

/// `url` with its password masked (`redis://user:***@host:port`), for logs.
pub fn redacted(url: &str) -> String {
    let (Some(scheme_end), Some(at)) = (url.find("://"), url.rfind('@')) else { return url.to_string() };
    match url.get(scheme_end + 3..at).and_then(|auth| auth.split_once(':')) {
        Some((user, _)) if at > scheme_end => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
        _ => url.to_string(),
    }
}

enum Retry {
    /// Drop the connection, back off, reconnect.
    Reconnect,
    /// Keep the connection, back off, try again (server loading, busy, OOM ...).
    Wait,
    /// Give up: a configuration problem that retrying cannot fix.
    Fatal,
}

fn classify(e: &RedisError) -> Retry {
    match e.kind() {
        ErrorKind::Io | ErrorKind::Parse | ErrorKind::Client => Retry::Reconnect,
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::TryAgain
            | ServerErrorKind::MasterDown
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::ReadOnly,
        ) => Retry::Wait,
        _ => match server_code(e).as_deref() {
            Some("BUSY" | "OOM" | "LOADING" | "MASTERDOWN" | "TRYAGAIN" | "READONLY" | "UNBLOCKED") => Retry::Wait,
            _ if e.is_unrecoverable_error() => Retry::Reconnect,
            _ => Retry::Fatal,
        },
    }
}

/// The code of the server's refusal in `e`. For a pipeline or transaction that is the first
/// failed command's code, as redis 0.27 reported it: since 1.0 the error of an aborted
/// transaction has kind EXECABORT and hides the OOM or NOPERM that caused it.
fn server_code(e: &RedisError) -> Option<String> {
    let first = e.clone().into_server_errors().and_then(|errs| errs.first().map(|(_, s)| s.code().to_string()));
    first.or_else(|| e.code().map(str::to_string))
}

/// The `kind` label of `fetcher_valkey_errors_total`. Dashboards and alerts match its values, so
/// they stay what they were with redis 0.27, whose `ErrorKind` names (lower-cased) they were:
/// redis 1.x renamed several kinds (`ParseError` is `Parse`, `TypeError` is
/// `UnexpectedReturnType` ...).
fn error_kind_label(e: &RedisError) -> String {
    if e.is_timeout() {
        return "timeout".into();
    }
    if e.is_connection_refusal() {
        return "refused".into();
    }
    if e.is_connection_dropped() || e.kind() == ErrorKind::Io {
        return "io".into();
    }
    if let Some(code) = server_code(e) {
        return code.to_ascii_lowercase();
    }
    let name = match e.kind() {
        ErrorKind::Parse => "parseerror",
        ErrorKind::AuthenticationFailed => "authenticationfailed",
        ErrorKind::UnexpectedReturnType => "typeerror",
        ErrorKind::InvalidClientConfig => "invalidclientconfig",
        ErrorKind::Client => "clienterror",
        ErrorKind::Extension => "extensionerror",
        ErrorKind::MasterNameNotFoundBySentinel => "masternamenotfoundbysentinel",
        ErrorKind::NoValidReplicasFoundBySentinel => "novalidreplicasfoundbysentinel",
        ErrorKind::EmptySentinelList => "emptysentinellist",
        ErrorKind::ClusterConnectionNotFound => "clusterconnectionnotfound",
        ErrorKind::RESP3NotSupported => "resp3notsupported",
        // Kinds added after 0.27 have no old name to keep.
        other => return format!("{other:?}").to_ascii_lowercase(),
    };
    name.into()
}

/// A connection to one server, or to a cluster (following MOVED/ASK and failovers).
#[derive(Clone)]
pub enum Conn {
    Single(MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(&'a mut self, cmd: &'a redis::Pipeline, offset: usize, count: usize) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

// One per process: the size of the cluster variant does not matter.
#[allow(clippy::large_enum_variant)]
enum Client {
    Single(redis::Client),
    Cluster(redis::cluster::ClusterClient),
}

/// The certificates for `rediss://`: the CA that signed the server's certificate (`ca_cert`), and
/// the client certificate and key that a server with `tls-auth-clients yes` (Valkey's default)
/// asks for. Files are read now, so a missing one is an error before the first connection.
pub fn tls_certificates(ca_cert: Option<&Path>, cert: Option<&Path>, key: Option<&Path>) -> Result<Option<redis::TlsCertificates>, String> {
    let read = |path: &Path, flag: &str| std::fs::read(path).map_err(|e| format!("cannot read {flag} {}: {e}", path.display()));
    let root_cert = ca_cert.map(|p| read(p, "--tls-ca-cert")).transpose()?;
    let client_tls = match (cert, key) {
        (Some(cert), Some(key)) => {
            Some(redis::ClientTlsConfig { client_cert: read(cert, "--tls-cert")?, client_key: read(key, "--tls-key")? })
        }
        (None, None) => None,
        (Some(_), None) => return Err("--tls-cert needs --tls-key (the client certificate's private key)".into()),
        (None, Some(_)) => return Err("--tls-key needs --tls-cert (the client certificate)".into()),
    };
    Ok((root_cert.is_some() || client_tls.is_some()).then_some(redis::TlsCertificates { client_tls, root_cert }))
}

pub struct Writer {
    cfg: WriterConfig,
    client: Client,
    conn: Option<Conn>,
    connected_once: bool,
    sha: String,
    metrics: Arc<Metrics>,
    backoff: Duration,
    cached_backlog: Option<(u64, Instant)>,
    /// Whether the last backlog read found the consumer group.
    group_found: bool,
    progress: Option<ProgressBar>,
}

impl Writer {
    pub fn new(cfg: WriterConfig, metrics: Arc<Metrics>, progress: Option<ProgressBar>) -> RedisResult<Writer> {
        let certs = cfg.tls.clone();
        let client = if cfg.cluster {
            let seeds: Vec<&str> = cfg.valkey.split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
            // redis 1.x also bounds a command's retries inside the cluster client (MOVED, failover)
            // by the response timeout; 0.27 bounded each attempt only. The overall bound is kept,
            // but well above one attempt's, so a failover's retries fit in it: the cluster client
            // was seen (in the gateway) to stop answering for good after a slot refresh it began
            // during a reshard never ended, and only an error lets the writer's loop reconnect
            // (the write script is idempotent, so the retry writes nothing twice).
            let mut builder = redis::cluster::ClusterClientBuilder::new(seeds)
                .connection_timeout(CONNECT_TIMEOUT)
                .response_timeout(RESPONSE_TIMEOUT)
                .overall_response_timeout(Some(OVERALL_RESPONSE_TIMEOUT));
            if let Some(certs) = certs {
                builder = builder.certs(certs);
            }
            Client::Cluster(builder.build()?)
        } else {
            match certs {
                Some(certs) => Client::Single(redis::Client::build_with_tls(cfg.valkey.as_str(), certs)?),
                None => Client::Single(redis::Client::open(cfg.valkey.as_str())?),
            }
        };
        let sha = redis::Script::new(WRITE_SCRIPT).get_hash().to_string();
        Ok(Writer {
            cfg,
            client,
            conn: None,
            connected_once: false,
            sha,
            metrics,
            backoff: BACKOFF_MIN,
            cached_backlog: None,
            group_found: false,
            progress,
        })
    }

    /// Writes every article received until the channel closes. Errors only on a fatal Valkey
    /// error (wrong type, permissions, script errors): transient ones are retried forever.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Article>) -> RedisResult<WriterStats> {
        let mut stats = WriterStats::default();
        let mut pacer = self.cfg.rate.filter(|r| *r > 0.0).map(Pacer::new);
        while let Some(article) = rx.recv().await {
            if let Some(p) = pacer.as_mut() {
                p.wait().await;
            }
            self.wait_for_capacity().await?;
            match self.write(&article).await? {
                Some(entry) => {
                    stats.written += 1;
                    self.metrics.written.inc(&article.source);
                    if let Some((n, _)) = self.cached_backlog.as_mut() {
                        // our own entry adds one to the lag until a consumer reads it
                        *n += 1;
                        self.metrics.backlog.set(*n as i64);
                    }
                    debug!("wrote {} as {entry}", article.id);
                }
                None => {
                    stats.duplicates += 1;
                    self.metrics.duplicates.inc();
                    debug!("duplicate {}", article.id);
                }
            }
            if let Some(pb) = &self.progress {
                pb.inc(1);
            }
        }
        Ok(stats)
    }

    /// A live connection, connecting (with backoff, forever) when there is none.
    async fn connection(&mut self) -> Conn {
        if let Some(c) = &self.conn {
            return c.clone();
        }
        let config =
            AsyncConnectionConfig::new().set_connection_timeout(Some(CONNECT_TIMEOUT)).set_response_timeout(Some(RESPONSE_TIMEOUT));
        let started = Instant::now();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let attempt = match &self.client {
                Client::Single(c) => c.get_multiplexed_async_connection_with_config(&config).await.map(Conn::Single),
                Client::Cluster(c) => c.get_async_connection().await.map(Conn::Cluster),
            };
            match attempt {
                Ok(c) => {
                    if self.connected_once {
                        self.metrics.reconnects.inc();
                        info!(
                            "valkey: reconnected to {} after {attempts} attempt(s), {:.1}s",
                            self.cfg.valkey,
                            started.elapsed().as_secs_f64()
                        );
                    } else {
                        info!("valkey: connected to {}", redacted(&self.cfg.valkey));
                    }
                    self.connected_once = true;
                    self.conn = Some(c.clone());
                    return c;
                }
                Err(e) => {
                    self.metrics.valkey_errors.inc(&error_kind_label(&e));
                    if attempts == 1 {
                        warn!("valkey: cannot connect to {}: {e}; retrying with backoff", redacted(&self.cfg.valkey));
                    } else {
                        debug!("valkey: connect attempt {attempts} failed: {e}");
                    }
                    self.sleep_backoff().await;
                }
            }
        }
    }

    async fn sleep_backoff(&mut self) {
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// Runs `op` on a connection until it succeeds, reconnecting on connection errors.
    async fn retrying<T, F, Fut>(&mut self, what: &str, mut op: F) -> RedisResult<T>
    where
        F: FnMut(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        loop {
            let conn = self.connection().await;
            match op(conn).await {
                Ok(v) => {
                    self.backoff = BACKOFF_MIN;
                    return Ok(v);
                }
                Err(e) => {
                    self.metrics.valkey_errors.inc(&error_kind_label(&e));
                    match classify(&e) {
                        Retry::Reconnect => {
                            warn!("valkey: {what} failed: {e}; reconnecting");
                            self.conn = None;
                            self.sleep_backoff().await;
                        }
                        Retry::Wait => {
                            warn!("valkey: {what} failed: {e}; retrying");
                            self.sleep_backoff().await;
                        }
                        Retry::Fatal => {
                            error!("valkey: {what} failed: {e}");
                            return Err(e);
                        }
                    }
                }
            }
        }
    }

    /// Writes one article; `Some(entry id)` when appended, `None` when it was a duplicate.
    async fn write(&mut self, a: &Article) -> RedisResult<Option<String>> {
        let stream = self.cfg.stream.clone();
        let seen = seen_key(&stream, &a.id);
        let id = a.id.clone();
        let json = a.to_json();
        let ttl = self.cfg.dedup_ttl;
        let sha = self.sha.clone();
        let started = Instant::now();
        let metrics = self.metrics.clone();
        let res = self
            .retrying("write", |mut conn| {
                let (stream, seen, id, json, sha) = (stream.clone(), seen.clone(), id.clone(), json.clone(), sha.clone());
                let metrics = metrics.clone();
                async move {
                    let t = Instant::now();
                    // EVALSHA, or on first use / after a server restart EVAL (which caches it).
                    let script = |cmd: &str, body: &str| {
                        let mut c = redis::cmd(cmd);
                        c.arg(body).arg(2).arg(&stream).arg(&seen).arg(&id).arg(&json).arg(ttl);
                        c
                    };
                    let r: RedisResult<Option<String>> = script("EVALSHA", &sha).query_async(&mut conn).await;
                    let r = match r {
                        Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                            script("EVAL", WRITE_SCRIPT).query_async(&mut conn).await
                        }
                        r => r,
                    };
                    if r.is_ok() {
                        metrics.observe_write(t.elapsed());
                    }
                    r
                }
            })
            .await;
        let elapsed = started.elapsed();
        if elapsed > Duration::from_secs(1) {
            info!("valkey: article {} written after {:.1}s of retries", a.id, elapsed.as_secs_f64());
        }
        res
    }

    /// The pipeline backlog: lag of the consumer group, or the stream length without the group.
    async fn read_backlog(&mut self) -> RedisResult<u64> {
        let stream = self.cfg.stream.clone();
        let group = self.cfg.group.clone();
        let cap = self.cfg.max_backlog.saturating_add(1);
        let backlog = self
            .retrying("backlog read", |mut conn| {
                let (stream, group) = (stream.clone(), group.clone());
                async move {
                    let groups: Value = match redis::cmd("XINFO").arg("GROUPS").arg(&stream).query_async(&mut conn).await {
                        Ok(v) => v,
                        Err(e) if e.to_string().to_ascii_lowercase().contains("no such key") => return Ok((0, false)),
                        Err(e) => return Err(e),
                    };
                    match find_group(&groups, &group) {
                        None => redis::cmd("XLEN").arg(&stream).query_async::<u64>(&mut conn).await.map(|n| (n, false)),
                        Some(GroupInfo { lag: Some(lag), .. }) => Ok((lag, true)),
                        Some(GroupInfo { lag: None, last_delivered }) => {
                            // lag unknown (entries deleted mid-stream): count what follows the
                            // group's last delivered id, up to the threshold
                            let start = format!("({}", last_delivered.unwrap_or_else(|| "0-0".into()));
                            let entries: Vec<Value> =
                                redis::cmd("XRANGE").arg(&stream).arg(&start).arg("+").arg("COUNT").arg(cap).query_async(&mut conn).await?;
                            Ok((entries.len() as u64, true))
                        }
                    }
                }
            })
            .await?;
        let (backlog, group_found) = backlog;
        self.group_found = group_found;
        self.metrics.backlog.set(backlog as i64);
        Ok(backlog)
    }

    /// Pauses while the backlog is at or above `max_backlog`, until it drops below 90% of it.
    async fn wait_for_capacity(&mut self) -> RedisResult<()> {
        let max = self.cfg.max_backlog;
        if max == 0 {
            return Ok(());
        }
        let backlog = match self.cached_backlog {
            Some((n, at)) if at.elapsed() < BACKLOG_CACHE => n,
            _ => {
                let n = self.read_backlog().await?;
                self.cached_backlog = Some((n, Instant::now()));
                n
            }
        };
        if backlog < max {
            return Ok(());
        }
        let resume_below = max as f64 * RESUME_FRACTION;
        self.metrics.pauses.inc();
        self.metrics.paused.set(1);
        let basis = if self.group_found {
            String::new()
        } else {
            format!(" (no consumer group {:?} on {:?} yet: the backlog is the stream length)", self.cfg.group, self.cfg.stream)
        };
        info!("backpressure: backlog {backlog} >= max-backlog {max}; pausing until it is below {resume_below}{basis}");
        let started = Instant::now();
        let mut last = started;
        let mut current;
        loop {
            tokio::time::sleep(PAUSE_POLL).await;
            current = self.read_backlog().await;
            let now = Instant::now();
            self.metrics.add_paused(now - last);
            last = now;
            match current {
                Ok(n) if (n as f64) < resume_below => break,
                Ok(_) => {}
                Err(e) => {
                    self.metrics.paused.set(0);
                    return Err(e);
                }
            }
        }
        let n = current.unwrap_or(0);
        self.cached_backlog = Some((n, Instant::now()));
        self.metrics.paused.set(0);
        info!("backpressure: backlog {n}; resuming after {:.2}s", started.elapsed().as_secs_f64());
        Ok(())
    }
}

struct GroupInfo {
    lag: Option<u64>,
    last_delivered: Option<String>,
}

fn value_str(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

/// Finds `group` in an `XINFO GROUPS` reply (RESP2 flat field/value arrays or RESP3 maps).
fn find_group(reply: &Value, group: &str) -> Option<GroupInfo> {
    let Value::Array(groups) = reply else {
        return None;
    };
    for g in groups {
        let pairs: Vec<(&Value, &Value)> = match g {
            Value::Array(kv) => kv.chunks(2).filter(|c| c.len() == 2).map(|c| (&c[0], &c[1])).collect(),
            Value::Map(m) => m.iter().map(|(k, v)| (k, v)).collect(),
            _ => continue,
        };
        let field = |name: &str| pairs.iter().find(|(k, _)| value_str(k).as_deref() == Some(name)).map(|(_, v)| *v);
        if field("name").and_then(value_str).as_deref() != Some(group) {
            continue;
        }
        let lag = match field("lag") {
            Some(Value::Int(n)) => Some((*n).max(0) as u64),
            _ => None,
        };
        let last_delivered = field("last-delivered-id").and_then(value_str);
        return Some(GroupInfo { lag, last_delivered });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(reply: &str) -> RedisError {
        match redis::parse_redis_value(format!("-{reply}\r\n").as_bytes()).and_then(Value::extract_error) {
            Err(e) => e,
            Ok(v) => panic!("{reply} parsed as {v:?}"),
        }
    }

    #[test]
    fn error_labels_and_retries_are_those_of_redis_0_27() {
        let io = |kind| RedisError::from(std::io::Error::from(kind));
        for (e, label) in [
            (io(std::io::ErrorKind::TimedOut), "timeout"),
            (io(std::io::ErrorKind::ConnectionRefused), "refused"),
            (io(std::io::ErrorKind::ConnectionReset), "io"),
            (io(std::io::ErrorKind::Other), "io"),
            (server_error("OOM command not allowed"), "oom"),
            (server_error("LOADING loading the dataset"), "loading"),
            (server_error("NOPERM no permissions"), "noperm"),
            (server_error("NOSCRIPT no matching script"), "noscript"),
            (server_error("ERR unknown command"), "err"),
            (RedisError::from((ErrorKind::UnexpectedReturnType, "unexpected reply")), "typeerror"),
            (RedisError::from((ErrorKind::Client, "client")), "clienterror"),
            (RedisError::from((ErrorKind::InvalidClientConfig, "config")), "invalidclientconfig"),
        ] {
            assert_eq!(error_kind_label(&e), label, "{e}");
        }
        for reply in ["OOM x", "BUSY x", "LOADING x", "TRYAGAIN x", "MASTERDOWN x", "CLUSTERDOWN x", "READONLY x", "UNBLOCKED x"] {
            assert!(matches!(classify(&server_error(reply)), Retry::Wait), "{reply}");
        }
        for reply in ["ERR x", "NOPERM x", "WRONGTYPE x", "NOSCRIPT x"] {
            assert!(matches!(classify(&server_error(reply)), Retry::Fatal), "{reply}");
        }
        assert!(matches!(classify(&io(std::io::ErrorKind::ConnectionReset)), Retry::Reconnect));
        assert!(matches!(classify(&io(std::io::ErrorKind::TimedOut)), Retry::Reconnect));
    }

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn logged_urls_hide_the_password() {
        assert_eq!(redacted("redis://fetcher:s3cret@127.0.0.1:6379"), "redis://fetcher:***@127.0.0.1:6379");
        assert_eq!(redacted("rediss://:s3cret@h:1/0"), "rediss://:***@h:1/0");
        assert_eq!(redacted("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }

    #[test]
    fn dedup_keys_share_the_stream_slot() {
        assert_eq!(seen_key("news_raw", "a1"), "fetcher:seen:{news_raw}:a1");
        assert_eq!(seen_key("{feeds}:raw", "a1"), "fetcher:seen:{feeds}:a1");
        assert_eq!(seen_key("odd{}name", "a1"), "fetcher:seen:{odd{}name}:a1");
    }

    #[test]
    fn finds_group_lag() {
        let reply = Value::Array(vec![
            Value::Array(vec![bulk("name"), bulk("other"), bulk("lag"), Value::Int(5)]),
            Value::Array(vec![bulk("name"), bulk("agentic"), bulk("last-delivered-id"), bulk("1-0"), bulk("lag"), Value::Int(7)]),
        ]);
        let g = find_group(&reply, "agentic").expect("group");
        assert_eq!(g.lag, Some(7));
        assert_eq!(g.last_delivered.as_deref(), Some("1-0"));
        let g = Value::Array(vec![Value::Array(vec![bulk("name"), bulk("agentic"), bulk("lag"), Value::Nil])]);
        assert_eq!(find_group(&g, "agentic").map(|g| g.lag), Some(None));
        assert!(find_group(&reply, "missing").is_none());
    }

    #[tokio::test]
    async fn pacer_is_steady() {
        let mut p = Pacer::new(200.0);
        let start = Instant::now();
        for _ in 0..21 {
            p.wait().await;
        }
        let e = start.elapsed();
        assert!(e >= Duration::from_millis(95) && e < Duration::from_millis(400), "{e:?}");
    }
}
