//! A user's feed: a bounded, id-ordered ring of references to stored documents.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

/// Entry ids look like stream ids (`<ms>-<seq>`) and strictly increase within one feed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId {
    pub ms: u64,
    pub seq: u64,
}

impl EntryId {
    pub const MAX: EntryId = EntryId { ms: u64::MAX, seq: u64::MAX };

    pub fn parse(s: &[u8]) -> Option<EntryId> {
        let s = std::str::from_utf8(s).ok()?;
        let (ms, seq) = match s.split_once('-') {
            Some((a, b)) => (a, b),
            None => (s, "0"),
        };
        let ok = |t: &str| !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit());
        if !ok(ms) || !ok(seq) {
            return None;
        }
        Some(EntryId { ms: ms.parse().ok()?, seq: seq.parse().ok()? })
    }

    /// False for ids with a part above ID_PART_MAX, which no write accepts.
    pub fn in_range(self) -> bool {
        self.ms <= ID_PART_MAX && self.seq <= ID_PART_MAX
    }

    /// The id a new entry of a user's own feed gets at time `ts_ms` after `last`: like XADD,
    /// never going backwards, with an even sequence number. Shared timelines (timeline.rs) hand
    /// out the odd ones, so no entry of a user's own feed can share an id with a shared entry in
    /// the feed AGENT.FEED assembles.
    pub fn next_after(last: EntryId, ts_ms: u64) -> EntryId {
        if ts_ms > last.ms {
            EntryId { ms: ts_ms, seq: 0 }
        } else {
            EntryId { ms: last.ms, seq: (last.seq | 1).saturating_add(1) }
        }
    }

    /// The id a shared timeline entry gets at time `ts_ms` after `last`: the odd counterpart.
    pub fn next_odd_after(last: EntryId, ts_ms: u64) -> EntryId {
        if ts_ms > last.ms {
            EntryId { ms: ts_ms, seq: 1 }
        } else {
            EntryId { ms: last.ms, seq: if last.seq % 2 == 1 { last.seq.saturating_add(2) } else { last.seq | 1 } }
        }
    }
}

/// The highest own-feed id this node has handed out or loaded (not data: it only keeps the next
/// shared timeline id above every own entry a reader may have seen, and shared ids are
/// replicated explicitly).
static OWN_IDS_MAX: std::sync::Mutex<EntryId> = std::sync::Mutex::new(EntryId { ms: 0, seq: 0 });

pub fn note_own_id(id: EntryId) {
    let mut max = OWN_IDS_MAX.lock().unwrap_or_else(|p| p.into_inner());
    if id > *max {
        *max = id;
    }
}

pub fn own_ids_max() -> EntryId {
    *OWN_IDS_MAX.lock().unwrap_or_else(|p| p.into_inner())
}

/// Entry ids, and the times new ones are made from, stay at or below this in both parts (in ms,
/// the year 10889): every id handed out is then a few steps above one that was accepted, far
/// from the end of u64, where the next id could not be larger.
pub const ID_PART_MAX: u64 = 1 << 48;

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// What a feed entry points at. One allocation per fanned-out document, shared by every feed
/// that received it.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DocRef {
    pub topic: Box<[u8]>,
    pub key: Box<[u8]>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedEntry {
    pub id: EntryId,
    pub doc: Arc<DocRef>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Feed {
    /// Oldest first.
    pub entries: VecDeque<FeedEntry>,
    pub last_id: EntryId,
}

impl Feed {
    /// Appends and trims to `max_len`; returns how many old entries were evicted.
    pub fn push(&mut self, doc: Arc<DocRef>, ts_ms: u64, max_len: usize) -> (EntryId, usize) {
        self.push_above(doc, ts_ms, max_len, EntryId::default())
    }

    /// Like `push`, with an id above `floor` too (the shared timelines' clock: an entry added to
    /// the own feed after a reader saw a shared one must sort after it).
    pub fn push_above(&mut self, doc: Arc<DocRef>, ts_ms: u64, max_len: usize, floor: EntryId) -> (EntryId, usize) {
        let id = EntryId::next_after(self.last_id.max(floor), ts_ms);
        (id, self.push_with_id(doc, id, max_len))
    }

    /// Appends with an id chosen by the caller, which must be above `last_id`; returns how many
    /// old entries were evicted.
    pub fn push_with_id(&mut self, doc: Arc<DocRef>, id: EntryId, max_len: usize) -> usize {
        let max_len = max_len.max(1);
        debug_assert!(id > self.last_id);
        self.last_id = id;
        // Evict before inserting: in a full ring the new entry then reuses the evicted slot,
        // one cache line instead of two, and the buffer never grows past `max_len`.
        let mut evicted = 0;
        while self.entries.len() >= max_len {
            self.entries.pop_front();
            evicted += 1;
        }
        if self.entries.capacity() < max_len && self.entries.len() == self.entries.capacity() {
            let want = (self.entries.capacity() * 2).max(4).min(max_len);
            self.entries.reserve_exact(want - self.entries.len());
        }
        self.entries.push_back(FeedEntry { id, doc });
        evicted
    }

    /// Up to `count` entries with id < `before`, newest first.
    pub fn newest_before(&self, before: EntryId, count: usize) -> Vec<&FeedEntry> {
        let end = self.entries.partition_point(|e| e.id < before);
        self.entries.range(..end).rev().take(count).collect()
    }

    /// Up to `count` entries with id > `after`, oldest first.
    pub fn oldest_after(&self, after: EntryId, count: usize) -> Vec<&FeedEntry> {
        let start = self.entries.partition_point(|e| e.id <= after);
        self.entries.range(start..).take(count).collect()
    }

    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<FeedEntry>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(k: &str) -> Arc<DocRef> {
        Arc::new(DocRef { topic: b"t".to_vec().into(), key: k.as_bytes().to_vec().into() })
    }

    #[test]
    fn ids_increase_even_when_time_stands_still_or_goes_back() {
        let mut f = Feed::default();
        let (a, _) = f.push(doc("a"), 100, 10);
        let (b, _) = f.push(doc("b"), 100, 10);
        let (c, _) = f.push(doc("c"), 50, 10);
        assert!(a < b && b < c);
        assert_eq!(c.to_string(), "100-4", "own feeds take even sequence numbers");
    }

    #[test]
    fn own_and_shared_ids_never_meet() {
        let (mut own, mut shared) = (EntryId::default(), EntryId::default());
        let mut seen = std::collections::HashSet::new();
        for ts in [5, 5, 5, 6, 6, 4, 7, 7, 7, 7] {
            own = EntryId::next_after(own, ts);
            shared = EntryId::next_odd_after(shared, ts);
            assert!(own.seq % 2 == 0 && shared.seq % 2 == 1);
            assert!(seen.insert(own) && seen.insert(shared));
        }
        // From an odd (pre-existing) id each rule still moves forward to its own parity.
        assert_eq!(EntryId::next_after(EntryId { ms: 9, seq: 3 }, 9), EntryId { ms: 9, seq: 4 });
        assert_eq!(EntryId::next_odd_after(EntryId { ms: 9, seq: 4 }, 9), EntryId { ms: 9, seq: 5 });
    }

    #[test]
    fn bounded_and_pages_both_ways() {
        let mut f = Feed::default();
        for i in 0..10u64 {
            f.push(doc(&format!("d{i}")), 1000 + i, 5);
        }
        assert_eq!(f.entries.len(), 5);
        let newest: Vec<_> = f.newest_before(EntryId::MAX, 2).iter().map(|e| e.id.ms).collect();
        assert_eq!(newest, vec![1009, 1008]);
        let older: Vec<_> = f.newest_before(EntryId { ms: 1008, seq: 0 }, 10).iter().map(|e| e.id.ms).collect();
        assert_eq!(older, vec![1007, 1006, 1005]);
        let after: Vec<_> = f.oldest_after(EntryId { ms: 1006, seq: 0 }, 2).iter().map(|e| e.id.ms).collect();
        assert_eq!(after, vec![1007, 1008]);
    }

    #[test]
    fn parses_ids() {
        assert_eq!(EntryId::parse(b"12-3"), Some(EntryId { ms: 12, seq: 3 }));
        assert_eq!(EntryId::parse(b"12"), Some(EntryId { ms: 12, seq: 0 }));
        for bad in [&b"-1"[..], b"a-1", b"1-", b"", b"1-2-3", b"\xff"] {
            assert_eq!(EntryId::parse(bad), None);
        }
    }
}
