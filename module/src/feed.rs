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

    /// The id a new entry gets at time `ts_ms` after `last`: like XADD, never going backwards.
    pub fn next_after(last: EntryId, ts_ms: u64) -> EntryId {
        if ts_ms > last.ms {
            EntryId { ms: ts_ms, seq: 0 }
        } else {
            EntryId { ms: last.ms, seq: last.seq.saturating_add(1) }
        }
    }
}

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
        let max_len = max_len.max(1);
        let id = EntryId::next_after(self.last_id, ts_ms);
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
        (id, evicted)
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
        assert_eq!(c.to_string(), "100-2");
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
