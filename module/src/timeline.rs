//! Shared topic timelines: feeds assembled at read time for topics with many followers
//! (docs/shared-timelines.md). A topic with at least `fanout-shared-min-subscribers` followers
//! gets each article appended once, to its timeline in the one value under `agentic:timelines`,
//! instead of to every follower's feed; AGENT.FEED merges a user's own entries with the
//! timelines of the topics they follow. Timeline ids come from one clock for all topics and have
//! odd sequence numbers (own feeds take even ones, feed.rs), so no two entries of an assembled
//! feed share an id and paging with BEFORE/AFTER visits each once. Each source's new ids are
//! above the other's newest (own ids above the clock, shared ids above every own id handed out),
//! so ids follow the order entries were added and a reader's AFTER cursor misses none.

use std::collections::{BTreeMap, HashSet};

use crate::codec::{Reader, Writer};
use crate::feed::{EntryId, Feed, FeedEntry};
use crate::metrics;
use crate::seen::DocHash;
use crate::user::{self, Delivery, DeliverySpec, UserState};

pub const KEY: &[u8] = b"agentic:timelines";

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timelines {
    /// The last id handed out, over every topic.
    pub clock: EntryId,
    /// Per topic, its entries and seen-filter (so an article sent again is not appended twice):
    /// a user value that follows nothing.
    pub topics: BTreeMap<Box<[u8]>, UserState>,
}

impl Timelines {
    /// The id the next append gets at time `ts_ms`: above the clock and above `own_floor`, the
    /// highest own-feed id handed out (feed::own_ids_max), so an entry appended after a reader
    /// saw an own entry sorts after it.
    pub fn next_id(&self, ts_ms: u64, own_floor: EntryId) -> EntryId {
        EntryId::next_odd_after(self.clock.max(own_floor), ts_ms)
    }

    /// Appends the document to its topic's timeline under `id`, which the caller checked is above
    /// the clock, unless the topic's seen-filter has it.
    pub fn append(&mut self, spec: &DeliverySpec, id: EntryId) -> Delivery {
        let topic = self.topics.entry(spec.doc.topic.clone()).or_insert_with(|| UserState::new(&spec.doc.topic));
        let delivery = topic.deliver_as(spec, Some(id));
        if matches!(delivery, Delivery::Delivered { .. }) {
            self.clock = id;
        }
        delivery
    }

    pub fn entries(&self) -> usize {
        self.topics.values().map(|t| t.feed.entries.len()).sum()
    }

    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.topics.iter().map(|(k, t)| k.len() + t.heap_bytes()).sum::<usize>()
    }
}

/// Which part of an assembled feed a read wants.
#[derive(Clone, Copy, Debug)]
pub enum Page {
    /// Newest first, ids below this one.
    Before(EntryId),
    /// Oldest first, ids above this one.
    After(EntryId),
}

/// A user's feed as AGENT.FEED shows it: up to `count` entries of the own feed and of the shared
/// timelines of the followed topics, merged by id. A shared entry is left out when the user's
/// seen-filter has its document (it reached the own feed too), and a document in two timelines
/// shows once per page.
pub fn assemble(user: &UserState, shared: Option<&Timelines>, page: Page, count: usize, now_ms: u64, ttl_ms: u64) -> Vec<FeedEntry> {
    let mut sources: Vec<(&Feed, bool)> = vec![(&user.feed, false)];
    if let Some(t) = shared {
        sources.extend(user.topics.iter().filter_map(|topic| t.topics.get(topic)).map(|t| (&t.feed, true)));
    }
    // Per source, the position of the next candidate in the page's direction.
    let mut next: Vec<Option<usize>> = sources
        .iter()
        .map(|(f, _)| match page {
            Page::Before(before) => f.entries.partition_point(|e| e.id < before).checked_sub(1),
            Page::After(after) => Some(f.entries.partition_point(|e| e.id <= after)).filter(|&i| i < f.entries.len()),
        })
        .collect();
    let mut out: Vec<FeedEntry> = Vec::with_capacity(count.min(256));
    let mut shown: HashSet<&[u8]> = HashSet::new();
    while out.len() < count {
        let pick = (0..sources.len()).filter_map(|s| next[s].map(|i| (s, sources[s].0.entries[i].id))).reduce(|a, b| match page {
            Page::Before(_) if b.1 > a.1 => b,
            Page::After(_) if b.1 < a.1 => b,
            _ => a,
        });
        let Some((s, _)) = pick else { break };
        let (feed, is_shared) = sources[s];
        let Some(i) = next[s] else { break };
        let entry = &feed.entries[i];
        next[s] = match page {
            Page::Before(_) => i.checked_sub(1),
            Page::After(_) => Some(i + 1).filter(|&j| j < feed.entries.len()),
        };
        if is_shared && user.seen.contains(DocHash::of(&entry.doc.key), user.salt, now_ms, ttl_ms) {
            metrics::FEED_SHARED_SKIPPED.incr();
            continue;
        }
        if sources.len() > 1 && !shown.insert(&entry.doc.key) {
            continue;
        }
        if is_shared {
            metrics::FEED_SHARED_ENTRIES.incr();
        }
        out.push(entry.clone());
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Encoding: RDB, AOF rewrite (AGENT.TIMELINE.LOAD), DUMP and DEBUG DIGEST. Deterministic.

const ENCODING_VERSION: u8 = 1;

pub fn encode(t: &Timelines) -> Vec<u8> {
    let mut w = Writer(Vec::new());
    w.u8(ENCODING_VERSION);
    w.u64(t.clock.ms);
    w.u64(t.clock.seq);
    w.u32(t.topics.len() as u32);
    for (topic, state) in &t.topics {
        w.bytes(topic);
        w.bytes(&user::encode(state));
    }
    w.0
}

pub fn decode(buf: &[u8]) -> Result<Timelines, String> {
    let mut r = Reader(buf);
    if r.u8()? != ENCODING_VERSION {
        return Err("unknown timelines encoding".into());
    }
    let clock = EntryId { ms: r.u64()?, seq: r.u64()? };
    if !clock.in_range() {
        return Err("corrupt timelines value: clock out of range".into());
    }
    let mut topics = BTreeMap::new();
    for _ in 0..r.count(8)? {
        let topic = r.bytes()?;
        let state = user::decode(r.bytes()?)?;
        if !crate::validate::is_topic(topic) || !state.topics.is_empty() || state.feed.last_id > clock {
            return Err("corrupt timelines value: bad topic timeline".into());
        }
        if state.feed.entries.iter().any(|e| *e.doc.topic != *topic) {
            return Err("corrupt timelines value: an entry of another topic".into());
        }
        if topics.insert(Box::<[u8]>::from(topic), state).is_some() {
            return Err("corrupt timelines value: a topic twice".into());
        }
    }
    if !r.0.is_empty() {
        return Err("corrupt timelines value: trailing bytes".into());
    }
    Ok(Timelines { clock, topics })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::feed::DocRef;
    use crate::seen::SeenParams;

    const SEEN: SeenParams = SeenParams { ttl_ms: 86_400_000, fp_ppm: 1, capacity: 64 };

    fn spec(topic: &str, key: &str, ts: u64) -> DeliverySpec {
        DeliverySpec {
            doc: Arc::new(DocRef { topic: topic.as_bytes().into(), key: key.as_bytes().into() }),
            hash: DocHash::of(key.as_bytes()),
            ts_ms: ts,
            feed_len: 5,
            seen: SEEN,
        }
    }

    fn share(t: &mut Timelines, topic: &str, key: &str, ts: u64) -> EntryId {
        let id = t.next_id(ts, EntryId::default());
        assert!(matches!(t.append(&spec(topic, key, ts), id), Delivery::Delivered { .. }));
        id
    }

    fn keys(entries: &[FeedEntry]) -> Vec<String> {
        entries.iter().map(|e| String::from_utf8_lossy(&e.doc.key).into_owned()).collect()
    }

    #[test]
    fn each_source_takes_ids_above_the_other_so_ids_follow_the_order_entries_were_added() {
        let mut t = Timelines::default();
        let mut u = UserState::new(b"user:{1}");
        u.add_topic(b"sports");
        let shared = share(&mut t, "sports", "s1", 100);
        // Added later, in the same millisecond: above the shared entry.
        let Delivery::Delivered { id: own, .. } = u.deliver_above(&spec("small", "o1", 100), t.clock) else { panic!() };
        assert!(own > shared && own.seq % 2 == 0, "{own} after {shared}");
        // An own entry ahead of the clock: the next shared id goes above it.
        let Delivery::Delivered { id: ahead, .. } = u.deliver_above(&spec("small", "o2", 500), t.clock) else { panic!() };
        let next = t.next_id(120, ahead);
        assert!(next > ahead && next.seq % 2 == 1, "{next} after {ahead}");
        assert!(matches!(t.append(&spec("sports", "s2", 120), next), Delivery::Delivered { .. }));
        let page = assemble(&u, Some(&t), Page::After(EntryId::default()), 10, 120, 86_400_000);
        assert_eq!(keys(&page), ["s1", "o1", "o2", "s2"]);
    }

    #[test]
    fn ids_are_unique_across_topics_and_an_article_sent_again_is_not_appended() {
        let mut t = Timelines::default();
        let a = share(&mut t, "sports", "d1", 100);
        let b = share(&mut t, "world", "d2", 100);
        let c = share(&mut t, "sports", "d3", 90);
        assert!(a < b && b < c && [a, b, c].iter().all(|id| id.seq % 2 == 1));
        let again = t.next_id(101, EntryId::default());
        assert!(matches!(t.append(&spec("sports", "d1", 101), again), Delivery::Duplicate));
        assert_eq!(t.clock, c, "a duplicate does not move the clock");
        assert_eq!(t.entries(), 3);
    }

    #[test]
    fn a_feed_merges_own_and_shared_entries_in_id_order_and_pages_each_once() {
        let mut t = Timelines::default();
        let mut u = UserState::new(b"user:{1}");
        u.add_topic(b"sports");
        u.add_topic(b"world");
        share(&mut t, "sports", "s1", 100);
        u.deliver(&spec("small", "own1", 100));
        share(&mut t, "world", "w1", 100);
        share(&mut t, "politics", "not-followed", 100);
        u.deliver(&spec("small", "own2", 101));
        share(&mut t, "sports", "s2", 101);
        let all = assemble(&u, Some(&t), Page::Before(EntryId::MAX), 100, 200, SEEN.ttl_ms);
        assert_eq!(keys(&all), ["s2", "own2", "w1", "s1", "own1"]);
        let ids: Vec<EntryId> = all.iter().map(|e| e.id).collect();
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "strictly decreasing: {ids:?}");
        // Two at a time, newest first, and tailing oldest first from an id: each entry once.
        let mut paged = Vec::new();
        let mut before = EntryId::MAX;
        loop {
            let page = assemble(&u, Some(&t), Page::Before(before), 2, 200, SEEN.ttl_ms);
            let Some(last) = page.last() else { break };
            before = last.id;
            paged.extend(keys(&page));
        }
        assert_eq!(paged, ["s2", "own2", "w1", "s1", "own1"]);
        let tail = assemble(&u, Some(&t), Page::After(ids[3]), 10, 200, SEEN.ttl_ms);
        assert_eq!(keys(&tail), ["w1", "own2", "s2"]);
        // Without shared timelines the own feed alone.
        assert_eq!(keys(&assemble(&u, None, Page::Before(EntryId::MAX), 10, 200, SEEN.ttl_ms)), ["own2", "own1"]);
    }

    #[test]
    fn a_document_shows_once_in_an_assembled_feed() {
        let mut t = Timelines::default();
        let mut u = UserState::new(b"user:{2}");
        u.add_topic(b"sports");
        u.add_topic(b"world");
        u.deliver(&spec("sports", "pushed-and-shared", 100));
        share(&mut t, "sports", "pushed-and-shared", 101);
        share(&mut t, "sports", "in-two-topics", 102);
        share(&mut t, "world", "in-two-topics", 103);
        let all = assemble(&u, Some(&t), Page::Before(EntryId::MAX), 10, 200, SEEN.ttl_ms);
        assert_eq!(keys(&all), ["in-two-topics", "pushed-and-shared"]);
        assert_eq!(all[1].id.seq % 2, 0, "the own feed's entry, not the shared copy");
        let tail = assemble(&u, Some(&t), Page::After(EntryId::default()), 10, 200, SEEN.ttl_ms);
        assert_eq!(keys(&tail), ["pushed-and-shared", "in-two-topics"]);
    }

    #[test]
    fn round_trips_and_refuses_corrupt_values() {
        let mut t = Timelines::default();
        share(&mut t, "sports", "d1", 100);
        share(&mut t, "world", "d2", 101);
        let bytes = encode(&t);
        assert_eq!(decode(&bytes).expect("decodes"), t);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err());
        }
        let mut behind = t.clone();
        behind.clock = EntryId { ms: 1, seq: 1 };
        assert!(decode(&encode(&behind)).is_err(), "a clock behind its entries would hand out their ids again");
        let mut odd = t.clone();
        odd.topics.insert(b"Bad Topic".to_vec().into(), UserState::new(b"x"));
        assert!(decode(&encode(&odd)).is_err());
        let mut mixed = t.clone();
        let world = mixed.topics.get(&b"world"[..]).cloned().expect("world");
        mixed.topics.insert(b"sports".to_vec().into(), world);
        assert!(decode(&encode(&mixed)).is_err(), "entries of another topic are refused");
    }
}
