//! Who is listening: every open socket has an outbox, registered under its user key or topic.
//! The delivery router and the topic readers push live items into outboxes; each socket's task
//! drains its own. An outbox is bounded: when a browser cannot keep up, its queue is dropped and
//! the socket re-reads its feed from Valkey instead (a resync), so memory never grows with a
//! slow reader and nothing is lost.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::Notify;

use crate::entry::Item;
use crate::metrics;

/// Most entries in one frame: bounds the memory a socket holds while a write waits on a slow
/// browser, and the work one frame costs the page.
pub const MAX_FRAME_ENTRIES: usize = 100;

pub struct Outbox {
    state: Mutex<OutboxState>,
    wake: Notify,
    capacity: usize,
}

#[derive(Default)]
struct OutboxState {
    items: VecDeque<Item>,
    resync: bool,
    /// Live announcements for this feed may have been lost and the source is not back yet: the
    /// socket sends nothing until released, then resyncs (a live entry sent meanwhile could be
    /// newer than a lost one, and a resync after it would never send the lost one).
    held: bool,
}

/// What a socket does next.
pub enum Work {
    Send(Vec<Item>),
    /// Items were dropped or missed: re-read the feed after the last id sent.
    Resync,
}

impl Outbox {
    pub fn new(capacity: usize) -> Arc<Outbox> {
        Arc::new(Outbox { state: Mutex::new(OutboxState::default()), wake: Notify::new(), capacity: capacity.max(1) })
    }

    pub fn push(&self, item: Item) {
        let Ok(mut s) = self.state.lock() else { return };
        // Only the first item after a drain wakes the socket: the task takes everything queued
        // when it runs, so further wake-ups would be wasted work for the router.
        let wake = s.items.is_empty() && !s.resync;
        if s.resync {
            // Already behind: the resync read will include this item.
            metrics::ENTRIES_DROPPED.inc();
        } else if s.items.len() >= self.capacity {
            metrics::ENTRIES_DROPPED.inc_by(s.items.len() as u64 + 1);
            metrics::RESYNCS_SLOW.inc();
            s.items = VecDeque::new();
            s.resync = true;
        } else {
            s.items.push_back(item);
        }
        drop(s);
        if wake {
            self.wake.notify_one();
        }
    }

    /// After the live source lost messages (a reconnect): re-read, keep nothing queued.
    pub fn request_resync(&self) {
        if let Ok(mut s) = self.state.lock() {
            if !s.resync {
                metrics::RESYNCS_RECONNECT.inc();
            }
            s.items = VecDeque::new();
            s.resync = true;
        }
        self.wake.notify_one();
    }

    /// Stops live sending until `release`; nothing queued is kept (the resync will read it).
    pub fn hold(&self) {
        if let Ok(mut s) = self.state.lock() {
            if !s.held {
                metrics::HOLDS.inc();
            }
            s.items = VecDeque::new();
            s.resync = true;
            s.held = true;
        }
    }

    /// Ends a hold with a resync.
    pub fn release(&self) {
        if let Ok(mut s) = self.state.lock() {
            if !s.held {
                return;
            }
            s.held = false;
        }
        self.wake.notify_one();
    }

    /// Waits for work: every queued item at once (one frame), or a resync.
    pub async fn next(&self) -> Work {
        loop {
            if let Ok(mut s) = self.state.lock() {
                if s.held {
                    // Released by `release`, which wakes this.
                } else if s.resync {
                    s.resync = false;
                    return Work::Resync;
                } else if !s.items.is_empty() {
                    let n = s.items.len().min(MAX_FRAME_ENTRIES);
                    let batch = s.items.drain(..n).collect();
                    if s.items.is_empty() && s.items.capacity() > 64 {
                        // A burst grew the queue; a quiet socket should not keep that memory.
                        s.items.shrink_to(16);
                    }
                    return Work::Send(batch);
                }
            }
            self.wake.notified().await;
        }
    }
}

/// Outboxes by key (a user key, or a topic slug). Keys are bytes so the router can look up the
/// key names straight from a delivery announcement. For user keys it also keeps their interests,
/// so an article appended to a shared topic timeline (announced once, not per user) reaches the
/// open sockets of every user following the topic.
#[derive(Default)]
pub struct Registry {
    map: RwLock<HashMap<Box<[u8]>, Vec<Arc<Outbox>>>>,
    follows: RwLock<Follows>,
}

#[derive(Default)]
struct Follows {
    /// topic -> user keys with an open socket that follow it
    followers: HashMap<Box<[u8]>, HashSet<Box<[u8]>>>,
    /// user key -> its topics
    interests: HashMap<Box<[u8]>, Vec<Box<[u8]>>>,
}

impl Follows {
    fn forget(&mut self, key: &[u8]) {
        for topic in self.interests.remove(key).unwrap_or_default() {
            if let Some(users) = self.followers.get_mut(&topic) {
                users.remove(key);
                if users.is_empty() {
                    self.followers.remove(&topic);
                }
            }
        }
    }
}

impl Registry {
    pub fn add(&self, key: &[u8], outbox: &Arc<Outbox>) {
        if let Ok(mut m) = self.map.write() {
            m.entry(key.into()).or_default().push(outbox.clone());
        }
    }

    /// Returns whether the key has no listener left.
    pub fn remove(&self, key: &[u8], outbox: &Arc<Outbox>) -> bool {
        let Ok(mut m) = self.map.write() else { return false };
        let Some(list) = m.get_mut(key) else { return true };
        list.retain(|o| !Arc::ptr_eq(o, outbox));
        if list.is_empty() {
            m.remove(key);
            drop(m);
            if let Ok(mut f) = self.follows.write() {
                f.forget(key);
            }
            return true;
        }
        false
    }

    /// The topics a user key follows (read when its first socket opens, and after the gateway
    /// changed them); replaces what was known.
    pub fn set_interests(&self, key: &[u8], topics: &[String]) {
        let Ok(mut f) = self.follows.write() else { return };
        f.forget(key);
        let topics: Vec<Box<[u8]>> = topics.iter().map(|t| t.as_bytes().into()).collect();
        for t in &topics {
            f.followers.entry(t.clone()).or_default().insert(key.into());
        }
        f.interests.insert(key.into(), topics);
    }

    /// New interests announced by the module (another client changed them): taken only for a
    /// user key with an open socket, the only ones whose interests are kept. Returns whether taken.
    pub fn update_interests(&self, key: &[u8], topics: &[String]) -> bool {
        if !self.with(|m| m.contains_key(key)).unwrap_or(false) {
            return false;
        }
        self.set_interests(key, topics);
        true
    }

    /// The outboxes of every user following `topic`.
    pub fn following(&self, topic: &[u8]) -> Vec<Arc<Outbox>> {
        let Ok(f) = self.follows.read() else { return Vec::new() };
        let Some(users) = f.followers.get(topic) else { return Vec::new() };
        self.with(|m| users.iter().filter_map(|u| m.get(u)).flatten().cloned().collect()).unwrap_or_default()
    }

    pub fn has(&self, key: &[u8]) -> bool {
        self.map.read().map(|m| m.contains_key(key)).unwrap_or(false)
    }

    /// Runs `f` with a read view, so a whole announcement is routed under one lock.
    pub fn with<R>(&self, f: impl FnOnce(&HashMap<Box<[u8]>, Vec<Arc<Outbox>>>) -> R) -> Option<R> {
        self.map.read().ok().map(|m| f(&m))
    }

    pub fn for_each(&self, f: impl Fn(&Arc<Outbox>)) {
        if let Ok(m) = self.map.read() {
            m.values().flatten().for_each(f);
        }
    }
}

/// Unregisters a socket's outbox when the socket ends, however it ends.
pub struct Registration {
    pub registry: Arc<Registry>,
    pub key: Box<[u8]>,
    pub outbox: Arc<Outbox>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.remove(&self.key, &self.outbox);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::DocBody;
    use crate::ids::EntryId;

    fn item(ms: u64) -> Item {
        Item { id: EntryId { ms, seq: 0 }, body: Arc::new(DocBody::new("t", "d", None)) }
    }

    #[tokio::test]
    async fn a_full_outbox_turns_into_a_resync() {
        let o = Outbox::new(2);
        o.push(item(1));
        o.push(item(2));
        match o.next().await {
            Work::Send(v) => assert_eq!(v.iter().map(|i| i.id.ms).collect::<Vec<_>>(), vec![1, 2]),
            Work::Resync => panic!("expected items"),
        }
        let dropped = metrics::ENTRIES_DROPPED.get();
        for ms in 3..=6 {
            o.push(item(ms));
        }
        assert!(matches!(o.next().await, Work::Resync));
        assert!(metrics::ENTRIES_DROPPED.get() >= dropped + 4);
        o.push(item(7));
        assert!(matches!(o.next().await, Work::Send(v) if v.len() == 1));
    }

    #[tokio::test]
    async fn frames_hold_at_most_max_frame_entries() {
        let o = Outbox::new(1000);
        for ms in 0..250 {
            o.push(item(ms));
        }
        let mut sizes = Vec::new();
        for _ in 0..3 {
            match o.next().await {
                Work::Send(v) => sizes.push(v.len()),
                Work::Resync => panic!("no overflow here"),
            }
        }
        assert_eq!(sizes, [MAX_FRAME_ENTRIES, MAX_FRAME_ENTRIES, 50]);
    }

    #[tokio::test]
    async fn a_held_outbox_sends_nothing_until_released_then_resyncs() {
        let o = Outbox::new(10);
        o.push(item(1));
        o.hold();
        o.push(item(2));
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), o.next()).await;
        assert!(waited.is_err(), "nothing while held");
        o.release();
        assert!(matches!(o.next().await, Work::Resync));
        o.push(item(3));
        assert!(matches!(o.next().await, Work::Send(v) if v.len() == 1 && v[0].id.ms == 3));
    }

    #[test]
    fn a_shared_topic_reaches_the_open_sockets_of_its_followers_only() {
        let r = Registry::default();
        let (a, b, c) = (Outbox::new(1), Outbox::new(1), Outbox::new(1));
        r.add(b"user:{a}", &a);
        r.add(b"user:{a}", &b);
        r.add(b"user:{c}", &c);
        r.set_interests(b"user:{a}", &["sports".into(), "world".into()]);
        r.set_interests(b"user:{c}", &["world".into()]);
        assert_eq!(r.following(b"sports").len(), 2, "both sockets of user:{{a}}");
        assert_eq!(r.following(b"world").len(), 3);
        assert!(r.following(b"science").is_empty());
        r.set_interests(b"user:{a}", &["science".into()]);
        assert!(r.following(b"sports").is_empty(), "changed interests replace the old ones");
        assert_eq!(r.following(b"science").len(), 2);
        r.remove(b"user:{c}", &c);
        assert!(r.following(b"world").is_empty(), "a user without sockets is forgotten");
    }

    #[test]
    fn registry_removes_empty_keys() {
        let r = Registry::default();
        let (a, b) = (Outbox::new(1), Outbox::new(1));
        r.add(b"k", &a);
        r.add(b"k", &b);
        assert!(!r.remove(b"k", &a));
        assert!(r.has(b"k"));
        assert!(r.remove(b"k", &b));
        assert!(!r.has(b"k"));
    }
}
