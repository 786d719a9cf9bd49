//! Per-topic subscriber index, derived from the user keys of database 0.
//!
//! The keyspace is the source of truth. The index only has to be a superset of it: an entry whose
//! key vanished, changed type or stopped following the topic is dropped when a fan-out meets it
//! (counted as a stale subscriber). Additions come from AGENT.SUBSCRIBE, from a rebuild when
//! loading ends, and from keyspace events that bring a user key into place (RESTORE, COPY,
//! RENAME, MOVE). Main-thread only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use xxhash_rust::xxh3::Xxh3Builder;

use crate::ffi::{KeyName, Target};

struct TopicSubscribers {
    users: Vec<Arc<KeyName>>,
    /// xxh3 instead of SipHash (replicas look up every user of every replicated delivery here),
    /// with a per-process random seed so clients cannot choose colliding key names.
    position: HashMap<Box<[u8]>, usize, Xxh3Builder>,
    /// Changes whenever the membership changes, so a fan-out can tell that its snapshot is still
    /// exactly the set of subscribers.
    generation: u64,
}

impl Default for TopicSubscribers {
    fn default() -> Self {
        TopicSubscribers { users: Vec::new(), position: HashMap::with_hasher(seeded_hasher()), generation: 0 }
    }
}

fn seeded_hasher() -> Xxh3Builder {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        use std::hash::BuildHasher;
        std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64)
    });
    Xxh3Builder::new().with_seed(seed)
}

static NEXT_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_generation() -> u64 {
    NEXT_GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[derive(Default)]
pub struct Index {
    topics: HashMap<Box<[u8]>, TopicSubscribers>,
}

static INDEX: Mutex<Option<Index>> = Mutex::new(None);

/// Fan-out jobs point at index entries without owning them (no reference counting in the
/// hot path). An entry removed while jobs are alive is retired instead of freed, and freed once
/// every job that could have taken it into a snapshot has ended.
#[derive(Default)]
struct Jobs {
    next: u64,
    active: std::collections::BTreeSet<u64>,
    /// (first job number that cannot hold it, entry), in retirement order.
    retired: std::collections::VecDeque<(u64, Arc<KeyName>)>,
}

static JOBS: Mutex<Option<Jobs>> = Mutex::new(None);

fn with_jobs<R>(f: impl FnOnce(&mut Jobs) -> R) -> R {
    let mut g = JOBS.lock().unwrap_or_else(|p| p.into_inner());
    f(g.get_or_insert_with(Jobs::default))
}

fn retire(entry: Arc<KeyName>) {
    with_jobs(|j| {
        if !j.active.is_empty() {
            j.retired.push_back((j.next, entry));
        }
    });
}

/// Registers a job; returns its number for `job_ended`.
pub fn job_started() -> u64 {
    with_jobs(|j| {
        let n = j.next;
        j.next += 1;
        j.active.insert(n);
        n
    })
}

pub fn job_ended(n: u64) {
    let freed: Vec<Arc<KeyName>> = with_jobs(|j| {
        j.active.remove(&n);
        let oldest = j.active.first().copied().unwrap_or(u64::MAX);
        let mut freed = Vec::new();
        while j.retired.front().is_some_and(|(after, _)| *after <= oldest) {
            if let Some((_, entry)) = j.retired.pop_front() {
                freed.push(entry);
            }
        }
        freed
    });
    drop(freed);
}

pub fn retired_entries() -> usize {
    with_jobs(|j| j.retired.len())
}

pub fn with<R>(f: impl FnOnce(&mut Index) -> R) -> R {
    let mut guard: MutexGuard<'_, Option<Index>> = INDEX.lock().unwrap_or_else(|p| p.into_inner());
    f(guard.get_or_insert_with(Index::default))
}

impl Index {
    pub fn add(&mut self, topic: &[u8], user_key: &[u8]) {
        let subs = self.topics.entry(topic.into()).or_default();
        if subs.position.contains_key(user_key) {
            return;
        }
        subs.position.insert(user_key.into(), subs.users.len());
        subs.users.push(Arc::new(KeyName::new(user_key)));
        subs.generation = next_generation();
    }

    pub fn remove(&mut self, topic: &[u8], user_key: &[u8]) {
        let Some(subs) = self.topics.get_mut(topic) else { return };
        let Some(at) = subs.position.remove(user_key) else { return };
        retire(subs.users.swap_remove(at));
        subs.generation = next_generation();
        if let Some(moved) = subs.users.get(at) {
            subs.position.insert(moved.as_bytes().into(), at);
        }
        if subs.users.is_empty() {
            self.topics.remove(topic);
        }
    }

    pub fn contains_key(&self, user_key: &[u8]) -> bool {
        self.topics.values().any(|s| s.position.contains_key(user_key))
    }

    /// Forgets `user_key` under every topic (the key was deleted, renamed away or overwritten).
    pub fn remove_everywhere(&mut self, user_key: &[u8]) {
        for subs in self.topics.values_mut() {
            if let Some(at) = subs.position.remove(user_key) {
                retire(subs.users.swap_remove(at));
                subs.generation = next_generation();
                if let Some(moved) = subs.users.get(at) {
                    subs.position.insert(moved.as_bytes().into(), at);
                }
            }
        }
        self.topics.retain(|_, s| !s.users.is_empty());
    }

    /// Every indexed user key for which `f` holds, once each.
    pub fn keys_matching(&self, f: impl Fn(&[u8]) -> bool) -> Vec<Box<[u8]>> {
        let mut found = std::collections::HashSet::new();
        for subs in self.topics.values() {
            for k in subs.position.keys() {
                if f(k) {
                    found.insert(k.clone());
                }
            }
        }
        found.into_iter().collect()
    }

    /// The subscribers of `topic` as they are now, and the membership generation; a fan-out
    /// works through this copy.
    pub fn snapshot(&self, topic: &[u8]) -> (Vec<Target>, u64) {
        self.topics.get(topic).map(|s| (s.users.iter().map(|k| k.target()).collect(), s.generation)).unwrap_or_default()
    }

    /// The index entry of `user_key` under `topic`, as a fan-out target (with its remembered value).
    pub fn target_of(&self, topic: &[u8], user_key: &[u8]) -> Option<Target> {
        let subs = self.topics.get(topic)?;
        subs.position.get(user_key).and_then(|&i| subs.users.get(i)).map(|k| k.target())
    }

    pub fn follows(&self, topic: &[u8], user_key: &[u8]) -> bool {
        self.topics.get(topic).is_some_and(|s| s.position.contains_key(user_key))
    }

    /// The key names of `topic`'s followers, in no particular order.
    pub fn followers_of<'a>(&'a self, topic: &[u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.topics.get(topic).into_iter().flat_map(|s| s.position.keys().map(|k| &**k))
    }

    /// How many users follow `topic`.
    pub fn followers(&self, topic: &[u8]) -> usize {
        self.topics.get(topic).map_or(0, |s| s.users.len())
    }

    pub fn generation(&self, topic: &[u8]) -> Option<u64> {
        self.topics.get(topic).map(|s| s.generation)
    }

    pub fn clear(&mut self) {
        for (_, subs) in self.topics.drain() {
            subs.users.into_iter().for_each(retire);
        }
    }

    /// (topic, subscribers), sorted by topic.
    pub fn counts(&self) -> Vec<(String, usize)> {
        let mut v: Vec<_> = self.topics.iter().map(|(t, s)| (String::from_utf8_lossy(t).into_owned(), s.users.len())).collect();
        v.sort();
        v
    }

    pub fn heap_bytes(&self) -> usize {
        self.topics
            .iter()
            .map(|(t, s)| {
                t.len()
                    + 64
                    + s.users.capacity() * 8
                    + s.position.capacity() * 40
                    + s.users.iter().map(|u| u.as_bytes().len() * 2 + 48).sum::<usize>()
            })
            .sum()
    }
}
