//! Every Valkey command the gateway sends, over a few shared multiplexed connections. Replies
//! are parsed here, so the rest of the gateway sees feed items and plain values.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::{RedisError, RedisResult, Value};

use crate::entry::{DocBody, Item};
use crate::ids::{EntryId, Slug, UserId};
use crate::metrics;

/// Largest page read from a feed at once; longer catch-ups read several pages.
pub const PAGE: usize = 1000;

#[derive(Clone)]
pub struct Valkey {
    client: redis::Client,
    conns: Arc<Vec<ConnectionManager>>,
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

fn unexpected(what: &str) -> RedisError {
    RedisError::from((redis::ErrorKind::TypeError, "unexpected reply", what.to_string()))
}

/// `[id, topic, doc-key, payload-or-nil]` entries of AGENT.FEED.
fn feed_items(reply: Value) -> RedisResult<Vec<Item>> {
    let Value::Array(entries) = reply else { return Err(unexpected("AGENT.FEED did not reply with an array")) };
    let mut items = Vec::with_capacity(entries.len());
    for e in entries {
        let Value::Array(f) = e else { return Err(unexpected("AGENT.FEED entry is not an array")) };
        let id = f.first().and_then(bytes).and_then(|b| std::str::from_utf8(b).ok()).and_then(EntryId::parse);
        let (Some(id), Some(topic), Some(doc)) = (id, f.get(1).and_then(bytes), f.get(2).and_then(bytes)) else {
            return Err(unexpected("AGENT.FEED entry lacks id, topic or document"));
        };
        let payload = f.get(3).and_then(bytes);
        if payload.is_none() {
            metrics::DOCS_MISSING.incr();
        }
        let body = DocBody::new(&String::from_utf8_lossy(topic), &String::from_utf8_lossy(doc), payload);
        items.push(Item { id, body: Arc::new(body) });
    }
    Ok(items)
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
    pub async fn connect(url: &str, connections: usize) -> RedisResult<Valkey> {
        let client = redis::Client::open(url)?;
        let mut conns = Vec::with_capacity(connections.max(1));
        for _ in 0..connections.max(1) {
            conns.push(ConnectionManager::new(client.clone()).await?);
        }
        Ok(Valkey { client, conns: Arc::new(conns), next: Arc::new(AtomicUsize::new(0)) })
    }

    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    fn conn(&self) -> ConnectionManager {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        self.conns[i].clone()
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> RedisResult<T> {
        self.retrying(|mut conn| async move { cmd.query_async(&mut conn).await }).await
    }

    /// Runs a read (or an idempotent write) on a shared connection. A connection that broke (a
    /// Valkey restart) fails its next command and reconnects in the background, so a few retries
    /// with a short pause turn a restart into a delay instead of an error.
    async fn retrying<T, F, Fut>(&self, run: F) -> RedisResult<T>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = RedisResult<T>>,
    {
        let mut pause = std::time::Duration::from_millis(50);
        let mut attempt = 0;
        loop {
            match run(self.conn()).await {
                Err(e) if !matches!(e.kind(), redis::ErrorKind::ResponseError | redis::ErrorKind::ExtensionError) => {
                    metrics::VALKEY_ERRORS.incr();
                    attempt += 1;
                    if attempt >= 5 || !(e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal()) {
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
    pub async fn dedicated(&self) -> RedisResult<MultiplexedConnection> {
        self.client.get_multiplexed_async_connection().await
    }

    /// Up to `count` newest entries (older than `before` when given), newest first.
    pub async fn feed_newest(&self, user: &UserId, count: usize, before: Option<EntryId>) -> RedisResult<Vec<Item>> {
        let mut cmd = redis::cmd("AGENT.FEED");
        cmd.arg(user.key()).arg("COUNT").arg(count.clamp(1, 10_000));
        if let Some(b) = before {
            cmd.arg("BEFORE").arg(b.to_string());
        }
        feed_items(self.query(&cmd).await?)
    }

    /// Every entry newer than `after`, oldest first, and whether entries after `after` may have
    /// been trimmed away (the feed no longer holds `after` or anything older).
    pub async fn feed_after(&self, user: &UserId, after: EntryId) -> RedisResult<(Vec<Item>, bool)> {
        let all = pages_after(after, |from| async move {
            let cmd = redis::cmd("AGENT.FEED").arg(user.key()).arg("COUNT").arg(PAGE).arg("AFTER").arg(from.to_string()).clone();
            feed_items(self.query(&cmd).await?)
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

    /// AGENT.STATS as numbers.
    pub async fn module_stats(&self) -> RedisResult<BTreeMap<String, f64>> {
        let reply: Value = self.query(&redis::cmd("AGENT.STATS")).await?;
        let Value::Array(flat) = reply else { return Err(unexpected("AGENT.STATS did not reply with an array")) };
        Ok(flat.chunks(2).filter_map(|kv| Some((text(kv.first()?), text(kv.get(1)?).parse().ok()?))).collect())
    }

    /// `INFO <sections>` as field -> value (the `agentic_` prefix of module fields removed).
    pub async fn info(&self, sections: &[&str]) -> RedisResult<BTreeMap<String, String>> {
        let reply: String = self.query(redis::cmd("INFO").arg(sections)).await?;
        Ok(reply
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.strip_prefix("agentic_").unwrap_or(k).to_string(), v.trim().to_string()))
            .collect())
    }

    /// Whether Valkey answers and has the module loaded (the stack's guardrail).
    pub async fn module_loaded(&self) -> RedisResult<bool> {
        let reply: Value = self.query(redis::cmd("MODULE").arg("LIST")).await?;
        let Value::Array(mods) = reply else { return Ok(false) };
        Ok(mods.iter().any(|m| match m {
            Value::Array(f) => {
                f.chunks(2).any(|kv| kv.first().and_then(bytes) == Some(b"name") && kv.get(1).and_then(bytes) == Some(b"agentic"))
            }
            Value::Map(f) => f.iter().any(|(k, v)| bytes(k) == Some(b"name") && bytes(v) == Some(b"agentic")),
            _ => false,
        }))
    }
}
