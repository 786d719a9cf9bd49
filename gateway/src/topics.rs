//! The live path of topic feeds: one reader per watched topic, blocking on XREAD of its
//! `topic:<slug>` stream on a connection of its own, queueing each new entry to every open socket
//! of that topic. A reader starts with the first socket of its topic and ends with the last.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use redis::Value;

use crate::hub::{Outbox, Registration, Registry};
use crate::ids::{EntryId, Slug};
use crate::metrics;
use crate::valkey::{stream_items, Valkey};

pub struct TopicFeeds {
    valkey: Valkey,
    registry: Arc<Registry>,
    /// Topics with a running reader. Registration and a reader's exit both hold this lock, so a
    /// socket never registers with a reader that is about to stop.
    running: tokio::sync::Mutex<HashSet<Slug>>,
}

impl TopicFeeds {
    pub fn new(valkey: Valkey) -> Arc<TopicFeeds> {
        Arc::new(TopicFeeds { valkey, registry: Arc::default(), running: tokio::sync::Mutex::new(HashSet::new()) })
    }

    /// Registers a socket's outbox. The topic's reader, if it has to start, first learns where the
    /// stream ends, so everything after the caller's own backlog read reaches the outbox.
    pub async fn register(self: &Arc<Self>, slug: &Slug, outbox: &Arc<Outbox>) -> redis::RedisResult<Registration> {
        let mut running = self.running.lock().await;
        if !running.contains(slug) {
            let start = self.valkey.topic_last_id(slug).await?;
            running.insert(slug.clone());
            tokio::spawn(self.clone().read(slug.clone(), start));
        }
        self.registry.add(slug.as_str().as_bytes(), outbox);
        Ok(Registration { registry: self.registry.clone(), key: slug.as_str().as_bytes().into(), outbox: outbox.clone() })
    }

    async fn read(self: Arc<Self>, slug: Slug, mut last: EntryId) {
        let key = slug.as_str().as_bytes();
        let mut conn = None;
        loop {
            {
                let mut running = self.running.lock().await;
                if !self.registry.has(key) {
                    running.remove(&slug);
                    return;
                }
            }
            if conn.is_none() {
                match self.valkey.dedicated().await {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        metrics::TOPIC_READ_ERRORS.inc();
                        log::warn!("topic {}: cannot connect: {e}", slug.as_str());
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                }
            }
            let Some(c) = conn.as_mut() else { continue };
            metrics::TOPIC_READS.inc();
            let reply: redis::RedisResult<Value> = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(1000)
                .arg("BLOCK")
                .arg(1000)
                .arg("STREAMS")
                .arg(slug.stream_key())
                .arg(last.to_string())
                .query_async(c)
                .await;
            match reply {
                Ok(Value::Array(streams)) => {
                    for s in streams {
                        let Value::Array(pair) = s else { continue };
                        let Some(entries) = pair.get(1) else { continue };
                        let items = stream_items(slug.as_str(), entries);
                        if let Some(newest) = items.last() {
                            last = newest.id;
                        }
                        self.registry.with(|m| {
                            if let Some(list) = m.get(key) {
                                for item in &items {
                                    list.iter().for_each(|o| o.push(item.clone()));
                                }
                            }
                        });
                    }
                }
                Ok(_) => {} // timed out: nothing new
                Err(e) => {
                    metrics::TOPIC_READ_ERRORS.inc();
                    log::warn!("topic {}: read failed: {e}", slug.as_str());
                    // The stream keeps everything: the next read continues after `last`.
                    conn = None;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}
