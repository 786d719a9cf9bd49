//! The value behind a user key: interests, feed and seen-filter in one place, so one delivery
//! (seen + feed) is a single all-or-nothing update of one key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use crate::codec::{Reader, Writer};
use crate::feed::{DocRef, EntryId, Feed, FeedEntry};
use crate::seen::{DocHash, Layer, SeenFilter, SeenParams};
use crate::topic_set::TopicSet;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserState {
    pub topics: TopicSet,
    pub feed: Feed,
    pub seen: SeenFilter,
    /// Per-user hash salt so users with identical histories do not share false positives.
    pub salt: u64,
}

pub enum Delivery {
    /// `grew`: change of the value's heap footprint, for the memory gauge.
    Delivered {
        id: EntryId,
        evicted: usize,
        fp_probability: f64,
        grew: i64,
    },
    Duplicate,
}

/// Everything a delivery needs, resolved once per fan-out.
#[derive(Clone)]
pub struct DeliverySpec {
    pub doc: Arc<DocRef>,
    pub hash: DocHash,
    pub ts_ms: u64,
    pub feed_len: usize,
    pub seen: SeenParams,
}

impl UserState {
    pub fn new(user_key: &[u8]) -> Self {
        UserState { salt: crate::seen::salt_for(user_key), ..Default::default() }
    }

    pub fn has_topic(&self, topic: &[u8]) -> bool {
        self.topics.contains(topic)
    }

    pub fn add_topic(&mut self, topic: &[u8]) -> bool {
        self.topics.insert(topic)
    }

    pub fn remove_topic(&mut self, topic: &[u8]) -> bool {
        self.topics.remove(topic)
    }

    pub fn deliver(&mut self, spec: &DeliverySpec) -> Delivery {
        self.deliver_as(spec, None)
    }

    /// A delivery to the own feed with an id above `floor` as well as the feed's last one.
    pub fn deliver_above(&mut self, spec: &DeliverySpec, floor: EntryId) -> Delivery {
        self.deliver_with(spec, None, floor)
    }

    /// A delivery whose entry id the caller chose (a shared timeline's, above `feed.last_id`),
    /// or, with None, the feed's next own id.
    pub fn deliver_as(&mut self, spec: &DeliverySpec, id: Option<EntryId>) -> Delivery {
        self.deliver_with(spec, id, EntryId::default())
    }

    fn deliver_with(&mut self, spec: &DeliverySpec, id: Option<EntryId>, floor: EntryId) -> Delivery {
        if self.seen.contains(spec.hash, self.salt, spec.ts_ms, spec.seen.ttl_ms) {
            return Delivery::Duplicate;
        }
        let fp_probability = self.seen.false_positive_probability(spec.hash, self.salt, spec.ts_ms, spec.seen.ttl_ms);
        let seen_grew = self.seen.insert(spec.hash, self.salt, spec.ts_ms, spec.seen);
        let capacity = self.feed.entries.capacity();
        let (id, evicted) = match id {
            Some(id) => (id, self.feed.push_with_id(spec.doc.clone(), id, spec.feed_len)),
            None => self.feed.push_above(spec.doc.clone(), spec.ts_ms, spec.feed_len, floor),
        };
        let feed_grew = (self.feed.entries.capacity() as i64 - capacity as i64) * std::mem::size_of::<FeedEntry>() as i64;
        Delivery::Delivered { id, evicted, fp_probability, grew: seen_grew + feed_grew }
    }

    /// Asks for what a delivery reads after this struct: topics, the seen-filter's layer table
    /// and the feed slot the next entry reuses.
    pub fn prefetch_parts(&self) {
        crate::ffi::prefetch(self.topics.as_ptr());
        crate::ffi::prefetch(self.seen.layers.as_ptr());
        if let Some(front) = self.feed.entries.front() {
            crate::ffi::prefetch(front);
        }
    }

    /// Approximate heap footprint, for MEMORY USAGE and the module's memory gauge. Shared
    /// document references are counted once per fan-out elsewhere, not here.
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.topics.heap_bytes() + self.feed.heap_bytes() + self.seen.heap_bytes()
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding: one self-describing byte string, used for RDB, AOF rewrite (AGENT.LOADUSER), DUMP and
// DEBUG DIGEST. Deterministic: equal states encode to equal bytes.

/// 2 added each Bloom layer's probe scheme; version 1 values decode with scheme 1 layers.
pub const ENCODING_VERSION: u8 = 2;

pub fn encode(u: &UserState) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(64 + u.feed.entries.len() * 40 + u.seen.heap_bytes()));
    w.u8(ENCODING_VERSION);
    w.u64(u.salt);
    w.u32(u.topics.len() as u32);
    for t in u.topics.iter() {
        w.bytes(t);
    }
    w.u64(u.feed.last_id.ms);
    w.u64(u.feed.last_id.seq);
    w.u32(u.feed.entries.len() as u32);
    for e in &u.feed.entries {
        w.u64(e.id.ms);
        w.u64(e.id.seq);
        w.bytes(&e.doc.topic);
        w.bytes(&e.doc.key);
    }
    w.u32(u.seen.layers.len() as u32);
    for l in &u.seen.layers {
        w.u64(l.start_ms);
        w.u64(l.end_ms);
        w.u32(l.offset);
        w.u32(l.words);
        w.u32(l.k);
        w.u32(l.capacity);
        w.u32(l.count);
        w.u32(l.probes);
    }
    w.u32(u.seen.bits.len() as u32);
    for word in &u.seen.bits {
        w.u64(*word);
    }
    w.0
}

pub fn decode(buf: &[u8]) -> Result<UserState, String> {
    let mut r = Reader(buf);
    let version = r.u8()?;
    if version != 1 && version != ENCODING_VERSION {
        return Err(format!("unknown user value encoding {version}"));
    }
    let salt = r.u64()?;
    let mut topics = TopicSet::default();
    for _ in 0..r.count(4)? {
        let t = r.bytes()?;
        // The rule AGENT.SUBSCRIBE applies: a value that follows a topic no command could name
        // (found by the command fuzzer through AGENT.LOADUSER) is corrupt.
        if !crate::validate::is_topic(t) || !topics.insert(t) {
            return Err("corrupt user value: bad topic".into());
        }
    }
    let last_id = EntryId { ms: r.u64()?, seq: r.u64()? };
    if !last_id.in_range() {
        return Err("corrupt user value: feed id out of range".into());
    }
    let mut feed = Feed { entries: Default::default(), last_id };
    for _ in 0..r.count(24)? {
        let id = EntryId { ms: r.u64()?, seq: r.u64()? };
        let topic = r.bytes()?;
        let key = r.bytes()?;
        // Paging and new ids rely on strictly increasing ids, none above the last one handed out.
        if id > last_id || feed.entries.back().is_some_and(|prev| prev.id >= id) {
            return Err("corrupt user value: feed ids out of order".into());
        }
        feed.entries.push_back(FeedEntry { id, doc: intern(topic, key) });
    }
    let mut seen = SeenFilter::default();
    for _ in 0..r.count(36)? {
        let layer = Layer {
            start_ms: r.u64()?,
            end_ms: r.u64()?,
            offset: r.u32()?,
            words: r.u32()?,
            k: r.u32()?,
            capacity: r.u32()?,
            count: r.u32()?,
            probes: if version == 1 { crate::seen::PROBES_V1 } else { r.u32()? },
        };
        if !(crate::seen::PROBES_V1..=crate::seen::PROBES_CURRENT).contains(&layer.probes) {
            return Err("corrupt user value: unknown Bloom probe scheme".into());
        }
        let out_of_order = layer.start_ms >= layer.end_ms || seen.layers.last().is_some_and(|prev| prev.start_ms > layer.start_ms);
        if out_of_order || layer.k == 0 || layer.k > 64 || layer.words == 0 || !layer.words.is_multiple_of(8) {
            return Err("corrupt user value: bad Bloom layer".into());
        }
        seen.layers.push(layer);
    }
    let words = r.count(8)?;
    seen.bits.reserve_exact(words);
    for _ in 0..words {
        seen.bits.push(r.u64()?);
    }
    let mut expected_offset = 0u64;
    for l in &seen.layers {
        if l.offset as u64 != expected_offset {
            return Err("corrupt user value: Bloom layers out of place".into());
        }
        expected_offset += l.words as u64;
    }
    if expected_offset != words as u64 {
        return Err("corrupt user value: Bloom bits do not match layers".into());
    }
    if !r.0.is_empty() {
        return Err("corrupt user value: trailing bytes".into());
    }
    Ok(UserState { topics, feed, seen, salt })
}

// ---------------------------------------------------------------------------------------------
// While loading, the same document appears in thousands of feeds; interning keeps it one
// allocation, as it was before the save. Only while loading: a value decoded at any other time
// (RESTORE, AGENT.LOADUSER from a client) would otherwise leave its entries in the map for good,
// since nothing clears it until the next load ends.

/// (topic, document key) -> the shared reference, while it is alive.
type Interned = HashMap<(Box<[u8]>, Box<[u8]>), Weak<DocRef>>;

static INTERNER: Mutex<Option<Interned>> = Mutex::new(None);
static LOADING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn intern(topic: &[u8], key: &[u8]) -> Arc<DocRef> {
    let fresh = || Arc::new(DocRef { topic: topic.into(), key: key.into() });
    if !LOADING.load(std::sync::atomic::Ordering::Relaxed) {
        return fresh();
    }
    let Ok(mut guard) = INTERNER.lock() else { return fresh() };
    let map = guard.get_or_insert_with(HashMap::new);
    let k = (Box::<[u8]>::from(topic), Box::<[u8]>::from(key));
    if let Some(doc) = map.get(&k).and_then(Weak::upgrade) {
        return doc;
    }
    let doc = fresh();
    map.insert(k, Arc::downgrade(&doc));
    doc
}

/// A load (RDB, AOF or a replica's full sync) started: values decoded from now on share documents.
pub fn start_interning() {
    LOADING.store(true, std::sync::atomic::Ordering::Relaxed);
}

pub fn clear_interner() {
    LOADING.store(false, std::sync::atomic::Ordering::Relaxed);
    if let Ok(mut guard) = INTERNER.lock() {
        *guard = None;
    }
}

/// How many documents the interner holds (0 outside loading).
pub fn interned() -> usize {
    INTERNER.lock().map(|g| g.as_ref().map_or(0, |m| m.len())).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(key: &str, ts: u64) -> DeliverySpec {
        DeliverySpec {
            doc: Arc::new(DocRef { topic: b"sports".to_vec().into(), key: key.as_bytes().to_vec().into() }),
            hash: DocHash::of(key.as_bytes()),
            ts_ms: ts,
            feed_len: 3,
            seen: SeenParams { ttl_ms: 1000, fp_ppm: 1000, capacity: 16 },
        }
    }

    #[test]
    fn dedups_and_round_trips() {
        let mut u = UserState::new(b"user:{1}");
        u.add_topic(b"sports");
        u.add_topic(b"health");
        assert!(matches!(u.deliver(&spec("doc:1", 10)), Delivery::Delivered { .. }));
        assert!(matches!(u.deliver(&spec("doc:1", 20)), Delivery::Duplicate));
        for i in 2..6 {
            u.deliver(&spec(&format!("doc:{i}"), 30 + i));
        }
        assert_eq!(u.feed.entries.len(), 3);
        let bytes = encode(&u);
        let back = decode(&bytes).expect("decodes");
        assert_eq!(back, u);
        assert_eq!(encode(&back), bytes);
        assert_eq!(u.topics.iter().collect::<Vec<_>>(), vec![&b"health"[..], b"sports"]);
    }

    #[test]
    fn documents_are_shared_while_loading_and_never_remembered_outside_it() {
        let mut a = UserState::new(b"user:{a}");
        let mut b = UserState::new(b"user:{b}");
        for u in [&mut a, &mut b] {
            u.deliver(&spec("doc:{interned-1}", 10));
        }
        let (ea, eb) = (encode(&a), encode(&b));
        let doc = |u: &UserState| u.feed.entries[0].doc.clone();
        // A RESTORE or AGENT.LOADUSER from a client: nothing is remembered.
        let (ra, rb) = (decode(&ea).expect("decodes"), decode(&eb).expect("decodes"));
        assert!(!Arc::ptr_eq(&doc(&ra), &doc(&rb)));
        assert_eq!(interned(), 0);
        start_interning();
        let (la, lb) = (decode(&ea).expect("decodes"), decode(&eb).expect("decodes"));
        assert!(Arc::ptr_eq(&doc(&la), &doc(&lb)), "one allocation for a document in many feeds");
        assert!(interned() >= 1);
        clear_interner();
        assert_eq!(interned(), 0);
        assert_eq!((la, lb), (a, b));
    }

    #[test]
    fn redelivers_after_ttl() {
        let mut u = UserState::new(b"u");
        u.deliver(&spec("doc:1", 0));
        assert!(matches!(u.deliver(&spec("doc:1", 999)), Delivery::Duplicate));
        assert!(matches!(u.deliver(&spec("doc:1", 1000 + 250 + 1)), Delivery::Delivered { .. }));
    }

    #[test]
    fn corrupt_input_is_an_error_not_a_panic() {
        let good = encode(&UserState::new(b"u"));
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err());
        }
        let mut u = UserState::new(b"u");
        u.deliver(&spec("doc:1", 10));
        u.deliver(&spec("doc:2", 20));
        let mut swapped = u.clone();
        swapped.feed.entries.swap(0, 1);
        assert!(decode(&encode(&swapped)).is_err(), "out-of-order feed ids are refused");
        let mut huge = good.clone();
        huge[9..13].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&huge).is_err());
        assert!(decode(b"\x09").is_err());
        let mut odd = UserState::new(b"u");
        odd.add_topic(b"Not a topic\xff");
        assert!(decode(&encode(&odd)).is_err(), "topics follow AGENT.SUBSCRIBE's rule");
    }
}
