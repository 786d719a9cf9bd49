//! Live deliveries on a cluster. Each primary announces its deliveries on its own shard channel
//! (SPUBLISH semantics: the message stays within its shard), so the gateway holds one subscription
//! per primary, on a RESP3 connection of its own, instead of every node receiving every
//! announcement. The slot map is re-read every second: a primary that appears, fails over or
//! changes its smallest slot gets a new subscription, and the sockets of users whose slot changed
//! owner, or whose primary's subscription was (re)made, re-read their feeds, because announcements
//! made while nobody listened are gone.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::cluster::{key_slot, Topology};
use crate::hub::Registry;
use crate::metrics;
use crate::valkey::Valkey;

const TOPOLOGY_EVERY: Duration = Duration::from_secs(1);

enum Event {
    /// The subscription on this node is in place: its users resync.
    Subscribed(String),
    /// The subscription ended (connection lost, or the server dropped it because the channel's
    /// slot moved away): made again at the next topology read.
    Lost(String),
}

struct Follower {
    channel: String,
    task: JoinHandle<()>,
}

pub async fn run(valkey: Valkey, users: Arc<Registry>, channel: String, tx: mpsc::Sender<Vec<u8>>) {
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut followers: HashMap<String, Follower> = HashMap::new();
    let mut subscribed: HashSet<String> = HashSet::new();
    let mut current: Option<Topology> = None;
    let mut tick = tokio::time::interval(TOPOLOGY_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let topology = match valkey.topology().await {
                    Ok(t) => t,
                    Err(e) => {
                        metrics::PUBSUB_ERRORS.incr();
                        log::warn!("cannot read the cluster's slot map: {e}");
                        continue;
                    }
                };
                let want = topology.shard_channels(&channel);
                followers.retain(|addr, f| {
                    let keep = want.get(addr) == Some(&f.channel) && !f.task.is_finished();
                    if !keep {
                        f.task.abort();
                        subscribed.remove(addr);
                    }
                    keep
                });
                for (addr, ch) in &want {
                    if !followers.contains_key(addr) {
                        let task = tokio::spawn(follow(valkey.clone(), addr.clone(), ch.clone(), tx.clone(), events_tx.clone()));
                        followers.insert(addr.clone(), Follower { channel: ch.clone(), task });
                    }
                }
                if let Some(old) = &current {
                    if *old != topology {
                        metrics::CLUSTER_TOPOLOGY_CHANGES.incr();
                        resync_where(&users, |slot| old.owner_of(slot) != topology.owner_of(slot));
                    }
                }
                current = Some(topology);
            }
            Some(event) = events.recv() => match event {
                Event::Subscribed(addr) => {
                    metrics::PUBSUB_CONNECTS.incr();
                    log::info!("subscribed to shard channel {} on {addr}", followers.get(&addr).map_or("?", |f| f.channel.as_str()));
                    if let Some(t) = &current {
                        resync_where(&users, |slot| t.owner_of(slot) == Some(addr.as_str()));
                    }
                    subscribed.insert(addr);
                    if subscribed.len() == followers.len() {
                        log::info!("following deliveries on {} shard channels", subscribed.len());
                    }
                }
                // The follower's task has ended: the next slot-map read makes it again.
                Event::Lost(addr) => {
                    metrics::PUBSUB_ERRORS.incr();
                    subscribed.remove(&addr);
                    log::warn!("shard channel subscription on {addr} ended; making it again");
                }
            },
        }
    }
}

/// Resyncs the sockets of users whose key's slot matches.
fn resync_where(users: &Registry, matches: impl Fn(u16) -> bool) {
    users.with(|m| {
        for (key, outboxes) in m {
            if matches(key_slot(key)) {
                outboxes.iter().for_each(|o| o.request_resync());
            }
        }
    });
}

/// One primary's subscription: forwards its announcements until the connection or the
/// subscription ends, then reports it lost.
async fn follow(valkey: Valkey, addr: String, channel: String, tx: mpsc::Sender<Vec<u8>>, events: mpsc::UnboundedSender<Event>) {
    let (push_tx, mut pushes) = mpsc::unbounded_channel::<PushInfo>();
    let subscribed = async {
        let client = valkey.node_client(&addr)?;
        let config = redis::AsyncConnectionConfig::new().set_push_sender(push_tx);
        let mut conn = client.get_multiplexed_async_connection_with_config(&config).await?;
        let _: Value = redis::cmd("SSUBSCRIBE").arg(&channel).query_async(&mut conn).await?;
        Ok::<_, redis::RedisError>(conn)
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
                    metrics::DELIVERY_MALFORMED.incr();
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
