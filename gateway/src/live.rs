//! The live path of user feeds: one subscription to the module's delivery channel (one per
//! primary on a cluster, see shards.rs). Each
//! announcement names a document and the (user key, entry id) pairs it was delivered to; the
//! router reads the document once (cached), and queues an item to every open socket of those
//! users. No read per user, however many sockets are open.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::entry::{DocBody, Item};
use crate::hub::{Outbox, Registry};
use crate::ids::EntryId;
use crate::metrics;
use crate::valkey::Valkey;

const FORMAT_TAG: &[u8] = b"agentic-deliveries/1";
/// The module's announcement that a user's interests changed (user key, then every topic).
const INTERESTS_TAG: &[u8] = b"agentic-interests/1";
/// Documents kept for announcements of the same document (one per fan-out slice).
const DOC_CACHE: usize = 4096;
/// Announcements whose documents are read concurrently; routing stays in arrival order.
const IN_FLIGHT: usize = 64;
/// The longest single pause while waiting for a document on a cluster (about 1.3 s in all).
const DOC_WAIT_MAX: Duration = Duration::from_millis(640);

#[derive(Debug, PartialEq)]
pub struct Announcement {
    pub topic: Vec<u8>,
    pub doc_key: Vec<u8>,
    pub deliveries: Vec<(Vec<u8>, EntryId)>,
}

fn netstring<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let colon = input.iter().position(|&b| b == b':')?;
    let len: usize = std::str::from_utf8(&input[..colon]).ok()?.parse().ok()?;
    let rest = &input[colon + 1..];
    // `len` comes from the message: compare without adding to it (a length of usize::MAX wrapped).
    if rest.len() <= len || rest[len] != b',' {
        return None;
    }
    let (field, after) = (&rest[..len], &rest[len + 1..]);
    *input = after;
    Some(field)
}

/// Parses the module's `agentic-deliveries/1` message (netstrings: tag, topic, document key,
/// then user key / entry id pairs).
pub fn parse(mut msg: &[u8]) -> Option<Announcement> {
    if netstring(&mut msg)? != FORMAT_TAG {
        return None;
    }
    let topic = netstring(&mut msg)?.to_vec();
    let doc_key = netstring(&mut msg)?.to_vec();
    let mut deliveries = Vec::new();
    while !msg.is_empty() {
        let user = netstring(&mut msg)?.to_vec();
        let id = EntryId::parse(std::str::from_utf8(netstring(&mut msg)?).ok()?)?;
        deliveries.push((user, id));
    }
    Some(Announcement { topic, doc_key, deliveries })
}

/// Parses the module's `agentic-interests/1` message: the user key and the topics it follows now.
pub fn parse_interests(mut msg: &[u8]) -> Option<(Vec<u8>, Vec<String>)> {
    if netstring(&mut msg)? != INTERESTS_TAG {
        return None;
    }
    let user = netstring(&mut msg)?.to_vec();
    let mut topics = Vec::new();
    while !msg.is_empty() {
        topics.push(String::from_utf8(netstring(&mut msg)?.to_vec()).ok()?);
    }
    Some((user, topics))
}

#[derive(Default)]
struct DocCache {
    map: HashMap<(Vec<u8>, Vec<u8>), Arc<DocBody>>,
    order: VecDeque<(Vec<u8>, Vec<u8>)>,
}

impl DocCache {
    fn get(&self, key: &(Vec<u8>, Vec<u8>)) -> Option<Arc<DocBody>> {
        self.map.get(key).cloned()
    }

    fn put(&mut self, key: (Vec<u8>, Vec<u8>), body: Arc<DocBody>) {
        if self.map.insert(key.clone(), body).is_none() {
            self.order.push_back(key);
            if self.order.len() > DOC_CACHE {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }
}

/// The outboxes an announcement concerns, found when it arrives.
type Targets = Vec<(Arc<Outbox>, EntryId)>;

/// The key a shared timeline append is announced under, instead of one entry per follower.
const SHARED_TIMELINES: &[u8] = b"agentic:timelines";

fn targets_of(users: &Registry, a: &Announcement) -> Targets {
    let mut t = users
        .with(|m| {
            let mut t = Vec::new();
            for (user, id) in &a.deliveries {
                if let Some(list) = m.get(user.as_slice()) {
                    t.extend(list.iter().map(|o| (o.clone(), *id)));
                }
            }
            t
        })
        .unwrap_or_default();
    for (_, id) in a.deliveries.iter().filter(|(user, _)| user == SHARED_TIMELINES) {
        metrics::DELIVERY_SHARED.inc();
        t.extend(users.following(&a.topic).into_iter().map(|o| (o, *id)));
    }
    t
}

async fn body_for(valkey: &Valkey, cache: &Mutex<DocCache>, topic: Vec<u8>, doc_key: Vec<u8>) -> Option<Arc<DocBody>> {
    let key = (topic, doc_key);
    if let Some(b) = cache.lock().ok().and_then(|c| c.get(&key)) {
        metrics::DOC_CACHE_HITS.inc();
        return Some(b);
    }
    metrics::DOC_FETCHES.inc();
    let mut payload = valkey.get_doc(&key.1).await.ok()?;
    // On a cluster the document is stored by its own node while the user's node delivers, so
    // an announcement can arrive first: wait for the document a little before giving up.
    let mut pause = Duration::from_millis(10);
    while payload.is_none() && valkey.is_cluster() && pause <= DOC_WAIT_MAX {
        metrics::DOC_WAITS.inc();
        tokio::time::sleep(pause).await;
        pause *= 2;
        payload = valkey.get_doc(&key.1).await.ok()?;
    }
    let body = Arc::new(DocBody::new(&String::from_utf8_lossy(&key.0), &String::from_utf8_lossy(&key.1), payload.as_deref()));
    match payload {
        Some(_) => {
            if let Ok(mut c) = cache.lock() {
                c.put(key, body.clone());
            }
        }
        None => metrics::DOCS_MISSING.inc(),
    }
    Some(body)
}

/// Routes announcements, in arrival order, to the open sockets they concern; the document of each
/// is read once (cached) while later announcements are already being matched.
async fn route(valkey: Valkey, users: Arc<Registry>, announcements: mpsc::Receiver<Vec<u8>>) {
    let cache = Mutex::new(DocCache::default());
    let incoming = futures_util::stream::unfold(announcements, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let routed = incoming
        .map(|payload| {
            metrics::DELIVERY_MESSAGES.inc();
            let parsed = parse(&payload);
            let targets = match &parsed {
                Some(a) => {
                    metrics::DELIVERY_ENTRIES.inc_by(a.deliveries.len() as u64);
                    targets_of(&users, a)
                }
                None => {
                    // Applied here, in arrival order with the deliveries around it.
                    match parse_interests(&payload) {
                        Some((user, topics)) => {
                            if users.update_interests(&user, &topics) {
                                metrics::INTERESTS_UPDATES.inc();
                            }
                        }
                        None => metrics::DELIVERY_MALFORMED.inc(),
                    }
                    Vec::new()
                }
            };
            let (valkey, cache) = (&valkey, &cache);
            async move {
                let a = parsed.filter(|_| !targets.is_empty())?;
                let body = body_for(valkey, cache, a.topic, a.doc_key).await;
                Some((targets, body))
            }
        })
        .buffered(IN_FLIGHT);
    let mut routed = std::pin::pin!(routed);
    while let Some(next) = routed.next().await {
        let Some((targets, body)) = next else { continue };
        match body {
            Some(body) => {
                metrics::DELIVERY_ENTRIES_ROUTED.inc_by(targets.len() as u64);
                for (outbox, id) in targets {
                    outbox.push(Item { id, body: body.clone() });
                }
            }
            // The document could not be read: those sockets re-read their feeds.
            None => targets.iter().for_each(|(o, _)| o.request_resync()),
        }
    }
}

/// Announcements waiting for the router; a full queue holds up the subscriber connections
/// (Valkey buffers for them) rather than growing without bound.
const QUEUE: usize = 65_536;

/// Follows live deliveries forever: on a single server its delivery channel, on a cluster every
/// primary's shard channel (see `cluster_run`).
pub async fn run(valkey: Valkey, users: Arc<Registry>, channel: String) {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(route(valkey.clone(), users.clone(), rx));
    match valkey.server_client() {
        Some(client) => server_run(client.clone(), users, channel, tx).await,
        None => crate::shards::run(valkey, users, channel, tx).await,
    }
}

/// One server: one subscription, reconnecting with backoff. After every (re)connect all user
/// sockets resync: announcements published while nobody listened are gone.
async fn server_run(client: redis::Client, users: Arc<Registry>, channel: String, tx: mpsc::Sender<Vec<u8>>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    metrics::PUBSUB_CONNECTS.inc();
                    backoff = Duration::from_millis(100);
                    log::info!("following deliveries on channel {channel}");
                    users.for_each(|o| o.request_resync());
                    let mut messages = pubsub.into_on_message();
                    while let Some(msg) = messages.next().await {
                        if tx.send(msg.get_payload_bytes().to_vec()).await.is_err() {
                            return;
                        }
                    }
                    log::warn!("delivery channel connection lost; reconnecting");
                    metrics::PUBSUB_ERRORS.inc();
                }
                Err(e) => {
                    metrics::PUBSUB_ERRORS.inc();
                    log::warn!("cannot subscribe to {channel}: {e}");
                }
            },
            Err(e) => {
                metrics::PUBSUB_ERRORS.inc();
                log::warn!("cannot connect for the delivery channel: {e}");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_interest_changes() {
        let msg = b"19:agentic-interests/1,13:user:{a,b:1}\n,6:sports,5:world,";
        assert_eq!(parse_interests(msg), Some((b"user:{a,b:1}\n".to_vec(), vec!["sports".to_string(), "world".to_string()])));
        assert_eq!(parse_interests(b"19:agentic-interests/1,1:u,"), Some((b"u".to_vec(), vec![])), "follows nothing now");
        assert_eq!(parse(msg), None, "not a delivery");
        for bad in [
            &b"19:agentic-interests/2,1:u,"[..],
            b"19:agentic-interests/1,",
            b"19:agentic-interests/1,1:u,2:\xff\xfe,",
            b"19:agentic-interests/1,1:u,9:x,",
        ] {
            assert_eq!(parse_interests(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn parses_the_module_format() {
        let msg = b"20:agentic-deliveries/1,6:sports,7:doc:{7},13:user:{a,b:1}\n,6:1700-2,2:u2,6:1700-0,";
        let a = parse(msg).unwrap();
        assert_eq!(a.topic, b"sports");
        assert_eq!(a.doc_key, b"doc:{7}");
        assert_eq!(
            a.deliveries,
            vec![(b"user:{a,b:1}\n".to_vec(), EntryId { ms: 1700, seq: 2 }), (b"u2".to_vec(), EntryId { ms: 1700, seq: 0 })]
        );
    }

    #[test]
    fn rejects_damaged_messages() {
        for bad in [
            &b"19:agentic-deliveries/2,1:a,1:b,"[..],
            b"20:agentic-deliveries/1,6:sports,",
            b"20:agentic-deliveries/1,1:a,1:b,2:u1,1:x,",
            b"20:agentic-deliveries/1,1:a,1:b,9:u1,",
            // Found by the fuzzer: a length of usize::MAX wrapped to 0 and indexed past the end.
            b"20:agentic-deliveries/1,18446744073709551615:sports,",
        ] {
            assert!(parse(bad).is_none(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
