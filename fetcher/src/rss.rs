//! RSS / Atom polling over HTTP(S) with conditional GET and in-process dedup.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use log::{debug, info, warn};
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use reqwest::StatusCode;
use tokio::sync::mpsc;

use crate::article::Article;
use crate::feed::parse_feed;
use crate::metrics::Metrics;

/// How many article ids the process remembers (oldest forgotten first).
pub const SEEN_CAPACITY: usize = 100_000;

/// A set that forgets its oldest members beyond `capacity`.
pub struct CappedSet {
    set: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
}

impl CappedSet {
    pub fn new(capacity: usize) -> CappedSet {
        CappedSet { set: HashSet::new(), order: VecDeque::new(), capacity: capacity.max(1) }
    }

    /// Inserts `id`; false when it was already there.
    pub fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() >= self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.set.insert(id.to_string());
        self.order.push_back(id.to_string());
        true
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.order.len()
    }
}

#[derive(Debug, Clone)]
pub struct RssConfig {
    pub urls: Vec<String>,
    pub interval: Duration,
    pub once: bool,
    pub timeout: Duration,
}

/// Validators of the last 200 response of a feed.
#[derive(Default)]
struct Validators {
    etag: Option<String>,
    last_modified: Option<String>,
}

/// Polls every feed (one task each) and sends new articles to the writer. Returns when `once`
/// is set and every feed was polled, or when the writer is gone.
pub async fn run(cfg: RssConfig, tx: mpsc::Sender<Article>, metrics: Arc<Metrics>) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .user_agent(concat!("agentic-fetcher/", env!("CARGO_PKG_VERSION")))
        .timeout(cfg.timeout)
        .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let seen = Arc::new(Mutex::new(CappedSet::new(SEEN_CAPACITY)));
    let mut tasks = Vec::new();
    for url in cfg.urls.iter().cloned() {
        let (client, tx, metrics, seen, cfg) = (client.clone(), tx.clone(), metrics.clone(), seen.clone(), cfg.clone());
        tasks.push(tokio::spawn(async move { poll_feed(url, cfg, client, tx, metrics, seen).await }));
    }
    drop(tx);
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

async fn poll_feed(
    url: String,
    cfg: RssConfig,
    client: reqwest::Client,
    tx: mpsc::Sender<Article>,
    metrics: Arc<Metrics>,
    seen: Arc<Mutex<CappedSet>>,
) {
    let mut validators = Validators::default();
    loop {
        if !poll_once(&url, &client, &mut validators, &tx, &metrics, &seen).await {
            return; // the writer is gone
        }
        if cfg.once {
            return;
        }
        tokio::time::sleep(cfg.interval).await;
    }
}

/// One conditional GET and its items. False when the writer channel is closed.
async fn poll_once(
    url: &str,
    client: &reqwest::Client,
    validators: &mut Validators,
    tx: &mpsc::Sender<Article>,
    metrics: &Metrics,
    seen: &Mutex<CappedSet>,
) -> bool {
    metrics.feed_polls.inc(url);
    let mut req = client.get(url);
    if let Some(etag) = &validators.etag {
        req = req.header(IF_NONE_MATCH, etag);
    }
    if let Some(lm) = &validators.last_modified {
        req = req.header(IF_MODIFIED_SINCE, lm);
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            metrics.feed_errors.inc(url);
            warn!("feed {url}: fetch failed: {}; retrying next interval", error_chain(&e));
            return true;
        }
    };
    let status = resp.status();
    if status == StatusCode::NOT_MODIFIED {
        metrics.not_modified.inc();
        debug!("feed {url}: 304 not modified");
        return true;
    }
    if !status.is_success() {
        metrics.feed_errors.inc(url);
        warn!("feed {url}: HTTP {status}; retrying next interval");
        return true;
    }
    let header = |name| resp.headers().get(name).and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok()).map(str::to_string);
    let etag = header(ETAG);
    let last_modified = header(LAST_MODIFIED);
    let body = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => {
            metrics.feed_errors.inc(url);
            warn!("feed {url}: reading the body failed: {}; retrying next interval", error_chain(&e));
            return true;
        }
    };
    *validators = Validators { etag, last_modified };

    let parsed = parse_feed(&body, url);
    for s in &parsed.skipped {
        metrics.malformed.inc(s.reason.label());
        warn!("feed {url}: skipped ({}): {}", s.reason.label(), s.detail);
    }
    let mut new = 0usize;
    let total = parsed.articles.len();
    for article in parsed.articles {
        let fresh = seen.lock().unwrap_or_else(|e| e.into_inner()).insert(&article.id);
        if !fresh {
            metrics.process_dedup_skipped.inc();
            continue;
        }
        new += 1;
        if tx.send(article).await.is_err() {
            return false;
        }
    }
    info!("feed {url}: {total} item(s), {new} new");
    true
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_set_forgets_oldest() {
        let mut s = CappedSet::new(2);
        assert!(s.insert("a"));
        assert!(!s.insert("a"));
        assert!(s.insert("b"));
        assert!(s.insert("c"));
        assert_eq!(s.len(), 2);
        assert!(s.insert("a"), "a was evicted");
        assert!(!s.insert("c"));
    }
}
