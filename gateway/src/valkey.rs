//! Every Valkey command the gateway sends, over a few shared multiplexed connections (to one
//! server, or to a cluster: one connection per node, commands routed by key, MOVED and ASK
//! followed). Replies are parsed here, so the rest of the gateway sees feed items and plain values.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};
use redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, RedisResult, ServerError,
    ServerErrorKind, Value,
};

use crate::cluster::Topology;
use crate::entry::{DocBody, Item};
use crate::ids::{EntryId, Slug, UserId};
use crate::metrics;
use crate::tls::TlsFiles;

/// Largest page read from a feed at once; longer catch-ups read several pages.
pub const PAGE: usize = 1000;

/// One connection the gateway sends commands on.
#[derive(Clone)]
pub enum Conn {
    /// Shared, to one server; reconnects by itself.
    Server(ConnectionManager),
    /// A connection of its own to one server (blocking reads).
    Dedicated(MultiplexedConnection),
    /// To every node of a cluster.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Server(c) => c.req_packed_command(cmd),
            Conn::Dedicated(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(&'a mut self, cmd: &'a Pipeline, offset: usize, count: usize) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Server(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Dedicated(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Server(c) => c.get_db(),
            Conn::Dedicated(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

// One per process: the size of the cluster variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Target {
    Server(redis::Client),
    /// `tls`: the certificates for nodes reached over TLS (`rediss://`).
    Cluster {
        client: ClusterClient,
        seed: redis::ConnectionInfo,
        tls: TlsFiles,
    },
}

#[derive(Clone)]
pub struct Valkey {
    target: Target,
    /// Shared connections, used round-robin; a stalled cluster connection is swapped for a new one.
    conns: Arc<Vec<std::sync::RwLock<Conn>>>,
    /// Per connection: a replacement is being made.
    replacing: Arc<Vec<AtomicBool>>,
    next: Arc<AtomicUsize>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct TopicInfo {
    pub slug: String,
    pub description: String,
    pub examples: i64,
    pub default: bool,
    pub ready: bool,
}

fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Double(d) => d.to_string(),
        other => bytes(other).map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default(),
    }
}

/// The server's first refusal in `e`: the error itself, or for a pipeline or transaction the first
/// command that failed (what redis 0.27 returned; 1.x reports an aborted MULTI as EXECABORT with
/// the cause inside). None when the server did not refuse anything (I/O, protocol, client side).
pub fn first_server_error(e: &RedisError) -> Option<ServerError> {
    e.clone().into_server_errors().and_then(|errs| errs.first().map(|(_, s)| s.clone()))
}

/// Whether the server refused the command itself (`ERR ...`, a code redis does not know such as
/// OOM, WRONGTYPE, BUSY, or NOPERM): redis 0.27's `ResponseError` and `ExtensionError` kinds.
/// The other codes it knows (LOADING, MOVED, TRYAGAIN, NOSCRIPT, READONLY ...) say something about
/// the server or the cluster rather than the command.
pub fn is_refusal(s: &ServerError) -> bool {
    matches!(s.kind(), None | Some(ServerErrorKind::ResponseError | ServerErrorKind::NoPerm))
}

/// How long a slot-map read may take before another node is asked.
const TOPOLOGY_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
/// How many times a stalled cluster connection's replacement is tried (a second apart, each
/// bounded by CLUSTER_REPLY_WAIT) before the next stall asks again.
const REPLACE_ATTEMPTS: u32 = 30;
/// How long any reply on the cluster connections may take.
const CLUSTER_REPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The connection settings of redis 0.27, kept: no timeouts. 1.x waits 500 ms for a reply by
/// default, which would cut off the topic readers' XREAD BLOCK 1000 (topics.rs) and any slow
/// command, and 1 s for a connect, which main.rs already bounds its own way at startup.
pub fn connection_config() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new().set_response_timeout(None).set_connection_timeout(None)
}

fn invalid(what: &str) -> RedisError {
    RedisError::from((ErrorKind::InvalidClientConfig, "invalid Valkey setup", what.to_string()))
}

fn unexpected(what: &str) -> RedisError {
    RedisError::from((ErrorKind::UnexpectedReturnType, "unexpected reply", what.to_string()))
}

/// `[id, topic, doc-key, payload-or-nil]` entries of AGENT.FEED, and which of them came without a
/// body (index, topic, document key).
fn feed_items(reply: Value) -> RedisResult<(Vec<Item>, Vec<(usize, String, Vec<u8>)>)> {
    let Value::Array(entries) = reply else { return Err(unexpected("AGENT.FEED did not reply with an array")) };
    let mut items = Vec::with_capacity(entries.len());
    let mut missing = Vec::new();
    for e in entries {
        let Value::Array(f) = e else { return Err(unexpected("AGENT.FEED entry is not an array")) };
        let id = f.first().and_then(bytes).and_then(|b| std::str::from_utf8(b).ok()).and_then(EntryId::parse);
        let (Some(id), Some(topic), Some(doc)) = (id, f.get(1).and_then(bytes), f.get(2).and_then(bytes)) else {
            return Err(unexpected("AGENT.FEED entry lacks id, topic or document"));
        };
        let payload = f.get(3).and_then(bytes);
        let topic = String::from_utf8_lossy(topic);
        if payload.is_none() {
            missing.push((items.len(), topic.to_string(), doc.to_vec()));
        }
        let body = DocBody::new(&topic, &String::from_utf8_lossy(doc), payload);
        items.push(Item { id, body: Arc::new(body) });
    }
    Ok((items, missing))
}

/// XRANGE/XREVRANGE/XREAD entries of a topic stream: fields `doc <key> data <payload>`.
pub fn stream_items(slug: &str, reply: &Value) -> Vec<Item> {
    let Value::Array(entries) = reply else { return Vec::new() };
    let mut items = Vec::with_capacity(entries.len());
    for e in entries {
        let Value::Array(pair) = e else { continue };
        let id = pair.first().and_then(bytes).and_then(|b| std::str::from_utf8(b).ok()).and_then(EntryId::parse);
        let (Some(id), Some(Value::Array(fields))) = (id, pair.get(1)) else { continue };
        let mut doc = None;
        let mut data = None;
        for kv in fields.chunks(2) {
            match (kv.first().and_then(bytes), kv.get(1).and_then(bytes)) {
                (Some(b"doc"), Some(v)) => doc = Some(v),
                (Some(b"data"), Some(v)) => data = Some(v),
                _ => {}
            }
        }
        let doc = doc.map(|d| String::from_utf8_lossy(d).into_owned()).unwrap_or_default();
        items.push(Item { id, body: Arc::new(DocBody::new(slug, &doc, data)) });
    }
    items
}

/// Every entry after `after`, oldest first, read PAGE at a time by `read(from)`.
async fn pages_after<F, Fut>(after: EntryId, read: F) -> RedisResult<Vec<Item>>
where
    F: Fn(EntryId) -> Fut,
    Fut: std::future::Future<Output = RedisResult<Vec<Item>>>,
{
    let mut all = Vec::new();
    let mut from = after;
    loop {
        let page = read(from).await?;
        let full = page.len() >= PAGE;
        if let Some(last) = page.last() {
            from = last.id;
        }
        all.extend(page);
        if !full {
            return Ok(all);
        }
    }
}

impl Valkey {
    /// `urls`: one server, or with `cluster` any nodes of a cluster (the rest are discovered).
    pub async fn connect(urls: &[String], cluster: bool, tls: &TlsFiles, connections: usize) -> RedisResult<Valkey> {
        let n = connections.max(1);
        let mut conns = Vec::with_capacity(n);
        let target = if cluster {
            let seed = urls.first().map(String::as_str).unwrap_or("redis://127.0.0.1:6379").into_connection_info()?;
            // Unlike a single server's connections, the cluster client gets a reply deadline: it
            // has been seen to stall for minutes after a failover, and a stalled read would hold
            // a socket's resync forever. Well above the topic readers' XREAD BLOCK 1000.
            let mut builder = ClusterClient::builder(urls.to_vec()).response_timeout(CLUSTER_REPLY_WAIT);
            if let Some(certs) = tls.certificates() {
                builder = builder.certs(certs);
            }
            let client = builder.build()?;
            for _ in 0..n {
                conns.push(Conn::Cluster(client.get_async_connection().await?));
            }
            Target::Cluster { client, seed, tls: tls.clone() }
        } else {
            let [url] = urls else { return Err(invalid("give one Valkey URL, or several with --cluster")) };
            let client = match tls.certificates() {
                Some(certs) => redis::Client::build_with_tls(url.as_str(), certs)?,
                None => redis::Client::open(url.as_str())?,
            };
            // redis 0.27's reconnect pacing (backon's 1 s first delay, factor 100, 6 tries) and
            // its lack of timeouts, which 1.x changed to 100 ms, factor 2 and 500 ms / 1 s.
            let config = ConnectionManagerConfig::new()
                .set_min_delay(std::time::Duration::from_secs(1))
                .set_exponent_base(100.0)
                .set_number_of_retries(6)
                .set_response_timeout(None)
                .set_connection_timeout(None);
            for _ in 0..n {
                conns.push(Conn::Server(ConnectionManager::new_with_config(client.clone(), config.clone()).await?));
            }
            Target::Server(client)
        };
        let replacing = Arc::new(conns.iter().map(|_| AtomicBool::new(false)).collect());
        let conns = Arc::new(conns.into_iter().map(std::sync::RwLock::new).collect());
        Ok(Valkey { target, conns, replacing, next: Arc::new(AtomicUsize::new(0)) })
    }

    /// The client of the single server (None on a cluster).
    pub fn server_client(&self) -> Option<&redis::Client> {
        match &self.target {
            Target::Server(c) => Some(c),
            Target::Cluster { .. } => None,
        }
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster { .. })
    }

    /// A RESP3 client for one cluster node (`host:port`), with the seed's credentials and, when
    /// the cluster is reached over TLS, its certificates, for a connection of its own.
    pub fn node_client(&self, addr: &str) -> RedisResult<redis::Client> {
        let Target::Cluster { seed, tls, .. } = &self.target else { return Err(invalid("not a cluster")) };
        let (host, port) = addr.rsplit_once(':').ok_or_else(|| invalid("node address without a port"))?;
        let port: u16 = port.parse().map_err(|_| invalid("node address with a bad port"))?;
        let redis_info = seed.redis_settings().clone().set_protocol(redis::ProtocolVersion::RESP3).set_db(0);
        let host = host.to_string();
        match (seed.addr(), tls.certificates()) {
            (redis::ConnectionAddr::TcpTls { insecure, .. }, Some(certs)) => {
                let addr = redis::ConnectionAddr::TcpTls { host, port, insecure: *insecure, tls_params: None };
                redis::Client::build_with_tls(seed.clone().set_addr(addr).set_redis_settings(redis_info), certs)
            }
            (redis::ConnectionAddr::TcpTls { insecure, .. }, None) => {
                let addr = redis::ConnectionAddr::TcpTls { host, port, insecure: *insecure, tls_params: None };
                redis::Client::open(seed.clone().set_addr(addr).set_redis_settings(redis_info))
            }
            _ => redis::Client::open(seed.clone().set_addr(redis::ConnectionAddr::Tcp(host, port)).set_redis_settings(redis_info)),
        }
    }

    /// The next shared connection and its index.
    fn conn(&self) -> (usize, Conn) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        (i, self.conns[i].read().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// Replaces shared cluster connection `i` in the background after one of its requests got no
    /// reply in time. The redis crate's cluster connection has been seen to stop answering for
    /// good after a slot refresh that began during a resharding never ended (every request then
    /// times out); a new connection starts from a fresh slot map. Making it is itself bounded.
    fn replace_stalled(&self, i: usize) {
        let Target::Cluster { client, .. } = &self.target else { return };
        if self.replacing[i].swap(true, Ordering::AcqRel) {
            return;
        }
        let (client, conns, replacing) = (client.clone(), self.conns.clone(), self.replacing.clone());
        tokio::spawn(async move {
            // The nodes may still be busy (that may be why the deadline passed): keep trying.
            for attempt in 1..=REPLACE_ATTEMPTS {
                match tokio::time::timeout(CLUSTER_REPLY_WAIT, client.get_async_connection()).await {
                    Ok(Ok(fresh)) => {
                        *conns[i].write().unwrap_or_else(|p| p.into_inner()) = Conn::Cluster(fresh);
                        metrics::CLUSTER_CONNECTIONS_REPLACED.inc();
                        log::warn!("replaced cluster connection {i}, which stopped answering");
                        break;
                    }
                    Ok(Err(e)) => log::warn!("cannot replace cluster connection {i} yet (attempt {attempt}): {e}"),
                    Err(_) => log::warn!("cannot replace cluster connection {i} yet (attempt {attempt}): no connection in time"),
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            replacing[i].store(false, Ordering::Release);
        });
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> RedisResult<T> {
        self.retrying(|mut conn| async move { cmd.query_async(&mut conn).await }).await
    }

    /// Runs a read (or an idempotent write) on a shared connection. A connection that broke (a
    /// Valkey restart) fails its next command and reconnects in the background, so a few retries
    /// with a short pause turn a restart into a delay instead of an error.
    async fn retrying<T, F, Fut>(&self, run: F) -> RedisResult<T>
    where
        F: Fn(Conn) -> Fut,
        Fut: std::future::Future<Output = RedisResult<T>>,
    {
        let mut pause = std::time::Duration::from_millis(50);
        let mut attempt = 0;
        loop {
            let (i, conn) = self.conn();
            match run(conn).await {
                Err(e) if !first_server_error(&e).is_some_and(|s| is_refusal(&s)) => {
                    metrics::VALKEY_ERRORS.inc();
                    attempt += 1;
                    // Only the cluster client has a reply deadline (CLUSTER_REPLY_WAIT), which
                    // covers its own redirections and reconnections. A timeout is an I/O error,
                    // so it is retried (on the next connection) like the others.
                    if e.is_timeout() {
                        log::warn!("a Valkey request got no reply within {} s (attempt {attempt}): {e}", CLUSTER_REPLY_WAIT.as_secs());
                        self.replace_stalled(i);
                    }
                    let transient = e.is_io_error()
                        || e.is_connection_dropped()
                        || e.is_connection_refusal()
                        || matches!(
                            e.kind(),
                            ErrorKind::Server(ServerErrorKind::ClusterDown | ServerErrorKind::TryAgain | ServerErrorKind::MasterDown)
                        );
                    if attempt >= 5 || !transient {
                        return Err(e);
                    }
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                other => return other,
            }
        }
    }

    /// A connection of its own, for blocking reads that must not hold up the shared ones.
    pub async fn dedicated(&self) -> RedisResult<Conn> {
        match &self.target {
            Target::Server(c) => Ok(Conn::Dedicated(c.get_multiplexed_async_connection_with_config(&connection_config()).await?)),
            Target::Cluster { client, .. } => Ok(Conn::Cluster(client.get_async_connection().await?)),
        }
    }

    /// The reply of every primary to `cmd` (of the server on a single server).
    async fn on_every_primary(&self, cmd: &Cmd) -> RedisResult<Vec<Value>> {
        if !self.is_cluster() {
            return Ok(vec![self.query(cmd).await?]);
        }
        let reply = self
            .retrying(|conn| async move {
                let Conn::Cluster(mut c) = conn else { return Err(invalid("not a cluster")) };
                c.route_command(cmd.clone(), RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None))).await
            })
            .await?;
        match reply {
            Value::Map(pairs) => Ok(pairs.into_iter().map(|(_, v)| v).collect()),
            other => Ok(vec![other]),
        }
    }

    /// Which primary serves which slot: CLUSTER SLOTS through the cluster connection or, when that
    /// fails or does not answer within `TOPOLOGY_WAIT`, straight from one of `nodes` or the seed.
    /// redis-rs's cluster client can stall while it refreshes its own slot map (seen once after a
    /// CLUSTER FAILOVER during resharding: no reply for minutes), and the shard followers must not
    /// stall with it.
    pub async fn topology(&self, nodes: &[String]) -> RedisResult<Topology> {
        let through_cluster = self.retrying(|conn| async move {
            let Conn::Cluster(mut c) = conn else { return Err(invalid("not a cluster")) };
            let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
            c.route_command(redis::cmd("CLUSTER").arg("SLOTS").clone(), route).await
        });
        let first_error = match tokio::time::timeout(TOPOLOGY_WAIT, through_cluster).await {
            Ok(Ok(reply)) => return Topology::from_cluster_slots(&reply).ok_or_else(|| unexpected("CLUSTER SLOTS reply")),
            Ok(Err(e)) => e,
            Err(_) => RedisError::from((ErrorKind::Io, "CLUSTER SLOTS through the cluster connection timed out")),
        };
        metrics::VALKEY_ERRORS.inc();
        let Target::Cluster { seed, .. } = &self.target else { return Err(first_error) };
        let seed_addr = match seed.addr() {
            redis::ConnectionAddr::Tcp(host, port) | redis::ConnectionAddr::TcpTls { host, port, .. } => Some(format!("{host}:{port}")),
            _ => None,
        };
        for addr in nodes.iter().cloned().chain(seed_addr) {
            let config = AsyncConnectionConfig::new().set_connection_timeout(Some(TOPOLOGY_WAIT)).set_response_timeout(Some(TOPOLOGY_WAIT));
            let asked = async {
                let mut conn = self.node_client(&addr)?.get_multiplexed_async_connection_with_config(&config).await?;
                redis::cmd("CLUSTER").arg("SLOTS").query_async::<Value>(&mut conn).await
            };
            match asked.await {
                Ok(reply) => {
                    if let Some(t) = Topology::from_cluster_slots(&reply) {
                        log::warn!("read the slot map from {addr} directly: {first_error}");
                        return Ok(t);
                    }
                }
                Err(e) => {
                    metrics::VALKEY_ERRORS.inc();
                    log::debug!("cannot read the slot map from {addr}: {e}");
                }
            }
        }
        Err(first_error)
    }

    /// Fills in bodies AGENT.FEED left nil because, on a cluster, the document lives in another
    /// slot than the user: one GET per distinct document, from its own node.
    async fn fill_bodies(&self, items: &mut [Item], missing: Vec<(usize, String, Vec<u8>)>) -> RedisResult<()> {
        if missing.is_empty() {
            return Ok(());
        }
        if !self.is_cluster() {
            metrics::DOCS_MISSING.inc_by(missing.len() as u64);
            return Ok(());
        }
        let mut distinct: Vec<(String, Vec<u8>)> = missing.iter().map(|(_, t, d)| (t.clone(), d.clone())).collect();
        distinct.sort();
        distinct.dedup();
        let newest_ms = missing.iter().map(|(i, _, _)| items[*i].id.ms).max().unwrap_or(0);
        let mut payloads = futures_util::future::try_join_all(distinct.iter().map(|(_, doc)| self.get_doc(doc))).await?;
        metrics::DOC_FETCHES.inc_by(distinct.len() as u64);
        // A document delivered moments ago may not be stored on its own node yet (see live.rs);
        // older ones that are absent have expired.
        let mut pause = std::time::Duration::from_millis(10);
        while payloads.iter().any(Option::is_none) && metrics::now_ms().saturating_sub(newest_ms) < 5_000 && pause.as_millis() <= 320 {
            metrics::DOC_WAITS.inc();
            tokio::time::sleep(pause).await;
            pause *= 2;
            for (p, (_, doc)) in payloads.iter_mut().zip(&distinct) {
                if p.is_none() {
                    *p = self.get_doc(doc).await?;
                }
            }
        }
        let bodies: Vec<Arc<DocBody>> = distinct
            .iter()
            .zip(payloads)
            .map(|((topic, doc), payload)| {
                if payload.is_none() {
                    metrics::DOCS_MISSING.inc();
                }
                Arc::new(DocBody::new(topic, &String::from_utf8_lossy(doc), payload.as_deref()))
            })
            .collect();
        for (i, topic, doc) in missing {
            if let Ok(at) = distinct.binary_search(&(topic, doc)) {
                items[i].body = bodies[at].clone();
            }
        }
        Ok(())
    }

    async fn feed(&self, cmd: &Cmd) -> RedisResult<Vec<Item>> {
        let (mut items, missing) = feed_items(self.query(cmd).await?)?;
        self.fill_bodies(&mut items, missing).await?;
        Ok(items)
    }

    /// Up to `count` newest entries (older than `before` when given), newest first.
    pub async fn feed_newest(&self, user: &UserId, count: usize, before: Option<EntryId>) -> RedisResult<Vec<Item>> {
        let mut cmd = redis::cmd("AGENT.FEED");
        cmd.arg(user.key()).arg("COUNT").arg(count.clamp(1, 10_000));
        if let Some(b) = before {
            cmd.arg("BEFORE").arg(b.to_string());
        }
        self.feed(&cmd).await
    }

    /// Every entry newer than `after`, oldest first, and whether entries after `after` may have
    /// been trimmed away (the feed no longer holds `after` or anything older).
    pub async fn feed_after(&self, user: &UserId, after: EntryId) -> RedisResult<(Vec<Item>, bool)> {
        let all = pages_after(after, |from| async move {
            let cmd = redis::cmd("AGENT.FEED").arg(user.key()).arg("COUNT").arg(PAGE).arg("AFTER").arg(from.to_string()).clone();
            self.feed(&cmd).await
        })
        .await?;
        let truncated = if all.is_empty() || after == EntryId::ZERO {
            false
        } else {
            let older = self.feed_newest(user, 1, Some(after.next())).await?;
            older.is_empty()
        };
        Ok((all, truncated))
    }

    pub async fn topic_newest(&self, slug: &Slug, count: usize, before: Option<EntryId>) -> RedisResult<Vec<Item>> {
        // XREVRANGE's end is inclusive: start just below `before`.
        let end = match before {
            Some(EntryId { ms: 0, seq: 0 }) => return Ok(Vec::new()),
            Some(EntryId { ms, seq: 0 }) => format!("{}-{}", ms - 1, u64::MAX),
            Some(EntryId { ms, seq }) => format!("{ms}-{}", seq - 1),
            None => "+".to_string(),
        };
        let cmd = redis::cmd("XREVRANGE").arg(slug.stream_key()).arg(end).arg("-").arg("COUNT").arg(count.clamp(1, 10_000)).clone();
        let reply: Value = self.query(&cmd).await?;
        Ok(stream_items(slug.as_str(), &reply))
    }

    pub async fn topic_after(&self, slug: &Slug, after: EntryId) -> RedisResult<(Vec<Item>, bool)> {
        let all = pages_after(after, |from| async move {
            let cmd = redis::cmd("XRANGE").arg(slug.stream_key()).arg(format!("({from}")).arg("+").arg("COUNT").arg(PAGE).clone();
            let reply: Value = self.query(&cmd).await?;
            Ok(stream_items(slug.as_str(), &reply))
        })
        .await?;
        let truncated = if all.is_empty() || after == EntryId::ZERO {
            false
        } else {
            let cmd = redis::cmd("XRANGE").arg(slug.stream_key()).arg("-").arg(after.to_string()).arg("COUNT").arg(1).clone();
            let reply: Value = self.query(&cmd).await?;
            stream_items(slug.as_str(), &reply).is_empty()
        };
        Ok((all, truncated))
    }

    /// The newest id of a topic stream (0-0 when it is empty or absent).
    pub async fn topic_last_id(&self, slug: &Slug) -> RedisResult<EntryId> {
        Ok(self.topic_newest(slug, 1, None).await?.first().map_or(EntryId::ZERO, |i| i.id))
    }

    pub async fn get_doc(&self, key: &[u8]) -> RedisResult<Option<Vec<u8>>> {
        self.query(redis::cmd("GET").arg(key)).await
    }

    pub async fn interests(&self, user: &UserId) -> RedisResult<Vec<String>> {
        self.query(redis::cmd("AGENT.INTERESTS").arg(user.key())).await
    }

    /// Makes the user's interests exactly `want`, atomically (one MULTI), and returns them.
    pub async fn set_interests(&self, user: &UserId, want: &[Slug]) -> RedisResult<Vec<String>> {
        let have = self.interests(user).await?;
        let remove: Vec<&String> = have.iter().filter(|h| !want.iter().any(|w| w.as_str() == h.as_str())).collect();
        let add: Vec<&str> = want.iter().map(Slug::as_str).filter(|w| !have.iter().any(|h| h == w)).collect();
        let mut pipe = redis::pipe();
        pipe.atomic();
        if !remove.is_empty() {
            pipe.cmd("AGENT.UNSUBSCRIBE").arg(user.key()).arg(&remove).ignore();
        }
        if !add.is_empty() {
            pipe.cmd("AGENT.SUBSCRIBE").arg(user.key()).arg(&add).ignore();
        }
        pipe.cmd("AGENT.INTERESTS").arg(user.key());
        // Idempotent (it sets exactly `want`), so a retry after a broken connection is safe.
        let (now,): (Vec<String>,) = self
            .retrying(|mut conn| {
                let pipe = &pipe;
                async move { pipe.query_async(&mut conn).await }
            })
            .await?;
        Ok(now)
    }

    pub async fn topics(&self) -> RedisResult<Vec<TopicInfo>> {
        let reply: Value = self.query(&redis::cmd("AGENT.TOPIC.LIST")).await?;
        let Value::Array(rows) = reply else { return Err(unexpected("AGENT.TOPIC.LIST did not reply with an array")) };
        let mut topics = Vec::with_capacity(rows.len());
        for row in rows {
            let Value::Array(f) = row else { continue };
            let mut t = TopicInfo { slug: String::new(), description: String::new(), examples: 0, default: false, ready: false };
            for kv in f.chunks(2) {
                let (Some(k), Some(v)) = (kv.first().and_then(bytes), kv.get(1)) else { continue };
                match k {
                    b"slug" => t.slug = text(v),
                    b"description" => t.description = text(v),
                    b"examples" => t.examples = text(v).parse().unwrap_or(0),
                    b"default" => t.default = text(v) == "1",
                    b"ready" => t.ready = text(v) == "1",
                    _ => {}
                }
            }
            topics.push(t);
        }
        topics.sort_by(|a, b| a.slug.cmp(&b.slug));
        Ok(topics)
    }

    /// AGENT.STATS as numbers, summed over the primaries of a cluster (percentiles and maxima:
    /// the largest).
    pub async fn module_stats(&self) -> RedisResult<BTreeMap<String, f64>> {
        let mut sum = BTreeMap::new();
        for reply in self.on_every_primary(&redis::cmd("AGENT.STATS")).await? {
            let Value::Array(flat) = reply else { return Err(unexpected("AGENT.STATS did not reply with an array")) };
            for kv in flat.chunks(2) {
                let (Some(k), Some(v)) = (kv.first(), kv.get(1)) else { continue };
                if let Ok(v) = text(v).parse::<f64>() {
                    let name = text(k);
                    // A sum of percentiles or maxima means nothing: the largest node's is kept.
                    let largest = ["_p50", "_p90", "_p99", "_p999", "_max"].iter().any(|s| name.ends_with(s));
                    let e: &mut f64 = sum.entry(name).or_insert(0.0);
                    *e = if largest { e.max(v) } else { *e + v };
                }
            }
        }
        Ok(sum)
    }

    /// `INFO <sections>` as field -> value (the `agentic_` prefix of module fields removed). On a
    /// cluster numbers are summed over the primaries; other values are the first primary's.
    pub async fn info(&self, sections: &[&str]) -> RedisResult<BTreeMap<String, String>> {
        let mut out: BTreeMap<String, String> = BTreeMap::new();
        for reply in self.on_every_primary(redis::cmd("INFO").arg(sections)).await? {
            let text = text(&reply);
            for (k, v) in text.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split_once(':')) {
                let k = k.strip_prefix("agentic_").unwrap_or(k).to_string();
                let v = v.trim();
                match (out.get(&k).and_then(|o| o.parse::<f64>().ok()), v.parse::<f64>()) {
                    (Some(o), Ok(n)) => {
                        out.insert(k, (o + n).to_string());
                    }
                    (None, _) if !out.contains_key(&k) => {
                        out.insert(k, v.to_string());
                    }
                    _ => {}
                }
            }
        }
        Ok(out)
    }

    /// Whether Valkey answers and has the module loaded (on a cluster: every primary has it).
    pub async fn module_loaded(&self) -> RedisResult<bool> {
        let replies = self.on_every_primary(redis::cmd("MODULE").arg("LIST")).await?;
        Ok(!replies.is_empty() && replies.iter().all(has_agentic))
    }
}

fn has_agentic(reply: &Value) -> bool {
    let Value::Array(mods) = reply else { return false };
    mods.iter().any(|m| match m {
        Value::Array(f) => {
            f.chunks(2).any(|kv| kv.first().and_then(bytes) == Some(b"name") && kv.get(1).and_then(bytes) == Some(b"agentic"))
        }
        Value::Map(f) => f.iter().any(|(k, v)| bytes(k) == Some(b"name") && bytes(v) == Some(b"agentic")),
        _ => false,
    })
}
