//! Live deliveries on a cluster. Each primary announces its deliveries on its own shard channel
//! (SPUBLISH semantics: the message stays within its shard), so the gateway holds one subscription
//! per primary, on a RESP3 connection of its own, instead of every node receiving every
//! announcement. The slot map is re-read every second: a primary that appears, fails over or
//! changes its smallest slot gets a new subscription.
//!
//! Announcements made while a primary's subscription is down are gone, and the users they named
//! may meanwhile move to another primary whose newer entries do arrive. A socket that sent such a
//! newer entry could never resync the lost older ones (a feed is sent in id order). So when a
//! subscription ends, the slots its primary served become doubtful: their users' sockets are held
//! (nothing live is sent) until the primary is subscribed again, or is no longer a primary, and
//! each slot's current primary is subscribed; then they resync from Valkey.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::cluster::{key_slot, Topology, SLOTS};
use crate::hub::Registry;
use crate::metrics;
use crate::valkey::Valkey;

const TOPOLOGY_EVERY: Duration = Duration::from_secs(1);
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(5);

enum Event {
    /// The subscription on this node is in place.
    Subscribed(String),
    /// The subscription ended (connection lost, or the server dropped it because the channel's
    /// slot moved away): made again at the next topology read.
    Lost(String),
}

struct Follower {
    channel: String,
    task: JoinHandle<()>,
}

struct Shards {
    users: Arc<Registry>,
    channel: String,
    followers: HashMap<String, Follower>,
    subscribed: HashSet<String>,
    current: Option<Topology>,
    /// Slot -> the primary whose lost subscription makes it doubtful.
    doubt: HashMap<u16, String>,
}

impl Shards {
    /// A primary's subscription ended or is being replaced: its slots become doubtful.
    fn lost(&mut self, addr: &str) {
        self.subscribed.remove(addr);
        let Some(t) = &self.current else { return };
        for slot in 0..SLOTS as u16 {
            if t.owner_of(slot) == Some(addr) {
                self.doubt.entry(slot).or_insert_with(|| addr.to_string());
            }
        }
        self.hold_doubtful();
    }

    /// Holds the sockets of users in doubtful slots (also sockets opened since the doubt began).
    fn hold_doubtful(&self) {
        if self.doubt.is_empty() {
            return;
        }
        self.users.with(|m| {
            for (key, outboxes) in m {
                if self.doubt.contains_key(&key_slot(key)) {
                    outboxes.iter().for_each(|o| o.hold());
                }
            }
        });
    }

    /// Releases (with a resync) the users of doubtful slots whose doubt is over.
    fn release_settled(&mut self) {
        if self.doubt.is_empty() {
            return;
        }
        let Some(t) = &self.current else { return };
        let want = t.shard_channels(&self.channel);
        let settled: HashSet<u16> = self
            .doubt
            .iter()
            .filter(|(slot, doubted)| {
                let doubted_back = self.subscribed.contains(*doubted) || !want.contains_key(*doubted);
                let owner_followed = t.owner_of(**slot).is_some_and(|o| self.subscribed.contains(o));
                doubted_back && owner_followed
            })
            .map(|(slot, _)| *slot)
            .collect();
        if settled.is_empty() {
            return;
        }
        self.doubt.retain(|slot, _| !settled.contains(slot));
        self.users.with(|m| {
            for (key, outboxes) in m {
                if settled.contains(&key_slot(key)) {
                    outboxes.iter().for_each(|o| o.release());
                }
            }
        });
    }

    fn resync_where(&self, matches: impl Fn(u16) -> bool) {
        self.users.with(|m| {
            for (key, outboxes) in m {
                if matches(key_slot(key)) {
                    outboxes.iter().for_each(|o| o.request_resync());
                }
            }
        });
    }
}

pub async fn run(valkey: Valkey, users: Arc<Registry>, channel: String, tx: mpsc::Sender<Vec<u8>>) {
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut sh = Shards {
        users,
        channel: channel.clone(),
        followers: HashMap::new(),
        subscribed: HashSet::new(),
        current: None,
        doubt: HashMap::new(),
    };
    let mut tick = tokio::time::interval(TOPOLOGY_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let known: Vec<String> = sh.current.as_ref().map(|t| t.primaries().to_vec()).unwrap_or_default();
                let topology = match valkey.topology(&known).await {
                    Ok(t) => t,
                    Err(e) => {
                        metrics::PUBSUB_ERRORS.inc();
                        log::warn!("cannot read the cluster's slot map: {e}");
                        continue;
                    }
                };
                let want = topology.shard_channels(&channel);
                let replaced: Vec<String> = sh
                    .followers
                    .iter()
                    .filter(|(addr, f)| want.get(*addr) != Some(&f.channel) || f.task.is_finished())
                    .map(|(addr, _)| addr.clone())
                    .collect();
                for addr in &replaced {
                    if let Some(f) = sh.followers.remove(addr) {
                        f.task.abort();
                    }
                    // Judged by the slot map its announcements were made under.
                    sh.lost(addr);
                }
                if let Some(old) = &sh.current {
                    if *old != topology {
                        metrics::CLUSTER_TOPOLOGY_CHANGES.inc();
                        sh.resync_where(|slot| old.owner_of(slot) != topology.owner_of(slot));
                    }
                }
                sh.current = Some(topology);
                for (addr, ch) in &want {
                    if !sh.followers.contains_key(addr) {
                        let task = tokio::spawn(follow(valkey.clone(), addr.clone(), ch.clone(), tx.clone(), events_tx.clone()));
                        sh.followers.insert(addr.clone(), Follower { channel: ch.clone(), task });
                    }
                }
                sh.hold_doubtful();
                sh.release_settled();
            }
            Some(event) = events.recv() => match event {
                Event::Subscribed(addr) => {
                    metrics::PUBSUB_CONNECTS.inc();
                    log::info!("subscribed to shard channel {} on {addr}", sh.followers.get(&addr).map_or("?", |f| f.channel.as_str()));
                    if let Some(t) = &sh.current {
                        sh.resync_where(|slot| t.owner_of(slot) == Some(addr.as_str()));
                    }
                    sh.subscribed.insert(addr);
                    sh.release_settled();
                    if sh.subscribed.len() == sh.followers.len() {
                        log::info!("following deliveries on {} shard channels", sh.subscribed.len());
                    }
                }
                // The follower's task has ended: the next slot-map read makes it again.
                Event::Lost(addr) => {
                    metrics::PUBSUB_ERRORS.inc();
                    log::warn!("shard channel subscription on {addr} ended; making it again");
                    sh.lost(&addr);
                }
            },
        }
    }
}

/// One primary's subscription: forwards its announcements until the connection or the
/// subscription ends, then reports it lost.
async fn follow(valkey: Valkey, addr: String, channel: String, tx: mpsc::Sender<Vec<u8>>, events: mpsc::UnboundedSender<Event>) {
    let (push_tx, mut pushes) = mpsc::unbounded_channel::<PushInfo>();
    let subscribed = async {
        let client = valkey.node_client(&addr)?;
        let config = crate::valkey::connection_config().set_push_sender(push_tx);
        let mut conn = client.get_multiplexed_async_connection_with_config(&config).await?;
        let _: Value = redis::cmd("SSUBSCRIBE").arg(&channel).query_async(&mut conn).await?;
        Ok::<_, redis::RedisError>(conn)
    };
    // A node that accepts the connection but never answers must not keep its slots held forever.
    let subscribed = async {
        match tokio::time::timeout(SUBSCRIBE_WAIT, subscribed).await {
            Ok(r) => r,
            Err(_) => Err(redis::RedisError::from((redis::ErrorKind::Io, "no answer to SSUBSCRIBE"))),
        }
    };
    let conn = match subscribed.await {
        Ok(c) => c,
        Err(e) => {
            log::warn!("cannot subscribe to {channel} on {addr}: {e}");
            tokio::time::sleep(Duration::from_millis(500)).await;
            let _ = events.send(Event::Lost(addr));
            return;
        }
    };
    let _ = events.send(Event::Subscribed(addr.clone()));
    while let Some(push) = pushes.recv().await {
        match push.kind {
            PushKind::SMessage => {
                let Some(Value::BulkString(payload)) = push.data.into_iter().nth(1) else {
                    metrics::DELIVERY_MALFORMED.inc();
                    continue;
                };
                if tx.send(payload).await.is_err() {
                    return;
                }
            }
            PushKind::SUnsubscribe | PushKind::Disconnection => break,
            _ => {}
        }
    }
    drop(conn);
    let _ = events.send(Event::Lost(addr));
}
