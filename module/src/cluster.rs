//! Valkey Cluster: hash slots, what this node serves, and slots arriving by atomic slot migration.
//!
//! On a cluster node a command may only touch keys of the slots its key specs name (the server
//! routed it by them, and while it runs the server looks every key up in the calling command's
//! slot). So the module:
//! - never opens a subscriber's key from inside a command: subscriber fan-outs run from the timer,
//!   where every key is looked up in its own slot;
//! - declares every key of AGENT.FANOUT to the server's routing (getkeys-api), so mixed slots get
//!   CROSSSLOT, and migrating ones ASK / TRYAGAIN, before anything is written;
//! - replicates deliveries one slot at a time, which atomic slot migration (Valkey 9) needs to
//!   forward them to a slot's new owner;
//! - leaves users of slots that are being imported by atomic slot migration to their source node
//!   until the import completes, and forgets the users of slots exported or aborted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use valkey_module::{CallOptionsBuilder, CallReply, CallResult, Context, ContextFlags};

use crate::topic_stream::reply_bytes;
use crate::{ffi, index, metrics};

pub const SLOTS: u16 = 16384;

static CLUSTER_MODE: AtomicBool = AtomicBool::new(false);

/// When this node, restarted with slots already assigned in its cluster config, finished loading
/// (None for a node that started without slots: a new node is never stale).
static SETTLING_SINCE: std::sync::OnceLock<Option<std::time::Instant>> = std::sync::OnceLock::new();

/// Called on every timer tick once the data is loaded; the first call decides.
pub fn note_loaded(ctx: &Context) {
    SETTLING_SINCE.get_or_init(|| (!my_slots(ctx, std::time::Duration::ZERO).ranges().is_empty()).then(std::time::Instant::now));
}

/// Whether this node restarted with slots less than `period` ago (or has not finished loading).
/// Until the cluster tells it otherwise such a node believes it still serves its slots, also when
/// its replica took over meanwhile.
pub fn settling(period: std::time::Duration) -> bool {
    match SETTLING_SINCE.get() {
        None => true,
        Some(None) => false,
        Some(Some(since)) => since.elapsed() < period,
    }
}

/// Called once at load: whether this server runs with `cluster-enabled yes`.
pub fn init(ctx: &Context) {
    CLUSTER_MODE.store(ctx.get_flags().contains(ContextFlags::CLUSTER), Ordering::Relaxed);
}

pub fn enabled() -> bool {
    CLUSTER_MODE.load(Ordering::Relaxed)
}

/// CRC16/XMODEM, the checksum Valkey Cluster hashes keys with.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// The hash slot of a key: of the part between the first `{` and the next `}` when that part is
/// not empty, else of the whole key.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(hashed) & (SLOTS - 1)
}

/// The hash tag naming a slot: the smallest decimal number whose text hashes to it. A shard's
/// delivery channel is `<delivery-channel>{<tag of its smallest slot>}` (see delivery_channel.rs);
/// clients compute the same rule from CLUSTER SLOTS.
pub fn slot_tag(slot: u16) -> u32 {
    static TAGS: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        let mut tags = vec![u32::MAX; SLOTS as usize];
        let mut missing = SLOTS as usize;
        let mut n: u32 = 0;
        // Every slot is reached below 200,000 (checked by a unit test), after ~10 ms once.
        while missing > 0 {
            let s = key_slot(n.to_string().as_bytes()) as usize;
            if tags[s] == u32::MAX {
                tags[s] = n;
                missing -= 1;
            }
            n += 1;
        }
        tags
    });
    tags[(slot & (SLOTS - 1)) as usize]
}

// ---------------------------------------------------------------------------------------------
// Atomic slot migration (Valkey 9): slots this node is importing are served by their source node
// until the import completes; their users are skipped by fan-outs here meanwhile (the source's
// deliveries reach them through the migration's replication stream).

static IMPORTING: Mutex<Vec<(u16, u16)>> = Mutex::new(Vec::new());
static ANY_IMPORTING: AtomicBool = AtomicBool::new(false);

pub fn importing(slot: u16) -> bool {
    ANY_IMPORTING.load(Ordering::Relaxed)
        && IMPORTING.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|&(a, b)| a <= slot && slot <= b)
}

/// True while some slot is being imported here (a fan-out then checks each user's slot).
pub fn any_importing() -> bool {
    ANY_IMPORTING.load(Ordering::Relaxed)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Migration {
    ImportStarted,
    ImportCompleted,
    ImportAborted,
    ExportCompleted,
    Other,
}

/// A server event of atomic slot migration, with the slot ranges it concerns.
pub fn on_migration(event: Migration, ranges: &[(u16, u16)]) {
    let mut importing = IMPORTING.lock().unwrap_or_else(|p| p.into_inner());
    match event {
        Migration::ImportStarted => importing.extend_from_slice(ranges),
        Migration::ImportCompleted | Migration::ImportAborted => importing.retain(|r| !ranges.contains(r)),
        Migration::ExportCompleted | Migration::Other => {}
    }
    ANY_IMPORTING.store(!importing.is_empty(), Ordering::Relaxed);
    drop(importing);
    if event == Migration::ImportCompleted {
        // Their source delivered to them until now; what this node applied meanwhile they get now.
        let in_ranges = |key: &[u8]| {
            let s = key_slot(key);
            ranges.iter().any(|&(a, b)| a <= s && s <= b)
        };
        index::with(|ix| ix.keys_matching(in_ranges)).iter().for_each(|k| crate::cluster_pipeline::user_arrived(k));
    }
    if matches!(event, Migration::ImportAborted | Migration::ExportCompleted) {
        // The server drops these slots' keys; their users must not stay in the index.
        let forgotten = forget_slots(ranges);
        metrics::CLUSTER_SLOT_USERS_FORGOTTEN.add(forgotten as u64);
    }
    metrics::CLUSTER_MIGRATION_EVENTS.incr();
    ffi::log_notice(&format!("agentic: atomic slot migration {event:?} for slots {ranges:?}"));
}

/// Removes every index entry of a user in these slots; returns how many users.
fn forget_slots(ranges: &[(u16, u16)]) -> usize {
    ffi::invalidate_remembered_values();
    let in_ranges = |key: &[u8]| {
        let s = key_slot(key);
        ranges.iter().any(|&(a, b)| a <= s && s <= b)
    };
    index::with(|ix| {
        let keys = ix.keys_matching(in_ranges);
        keys.iter().for_each(|k| ix.remove_everywhere(k));
        keys.len()
    })
}

// ---------------------------------------------------------------------------------------------
// The slots this node's shard serves, from CLUSTER SLOT-STATS (which, unlike CLUSTER SLOTS and
// NODES, can be called from a timer: those read the calling client's address, and 8.0 crashes
// on the module's client there). Cached briefly: the pipeline asks every tick.

pub struct MySlots {
    bits: Vec<u64>,
    ranges: Vec<(u16, u16)>,
}

impl MySlots {
    pub fn serves(&self, slot: u16) -> bool {
        self.bits[slot as usize / 64] & (1u64 << (slot % 64)) != 0
    }

    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.ranges
    }
}

static MY_SLOTS: Mutex<Option<(std::time::Instant, std::sync::Arc<MySlots>)>> = Mutex::new(None);

pub fn my_slots(ctx: &Context, max_age: std::time::Duration) -> std::sync::Arc<MySlots> {
    if let Some((at, slots)) = MY_SLOTS.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        if at.elapsed() < max_age {
            return slots.clone();
        }
    }
    let slots = std::sync::Arc::new(read_my_slots(ctx));
    *MY_SLOTS.lock().unwrap_or_else(|p| p.into_inner()) = Some((std::time::Instant::now(), slots.clone()));
    slots
}

fn read_my_slots(ctx: &Context) -> MySlots {
    let mut bits = vec![0u64; SLOTS as usize / 64];
    let opts = CallOptionsBuilder::new().errors_as_replies().build();
    let reply = ctx.call_ext::<_, CallResult>("CLUSTER", &opts, &[&b"SLOT-STATS"[..], b"SLOTSRANGE", b"0", b"16383"]);
    if let Ok(CallReply::Array(entries)) = reply {
        for entry in entries.iter().flatten() {
            let CallReply::Array(e) = entry else { continue };
            let slot = match e.get(0) {
                Some(Ok(CallReply::I64(slot))) => slot.to_i64(),
                _ => continue,
            };
            if (0..SLOTS as i64).contains(&slot) {
                bits[slot as usize / 64] |= 1u64 << (slot % 64);
            }
        }
    }
    let mut ranges: Vec<(u16, u16)> = Vec::new();
    for slot in 0..SLOTS {
        if bits[slot as usize / 64] & (1u64 << (slot % 64)) == 0 {
            continue;
        }
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == slot => *end = slot,
            _ => ranges.push((slot, slot)),
        }
    }
    MySlots { bits, ranges }
}

// ---------------------------------------------------------------------------------------------
// Which node serves a slot, from CLUSTER SLOTS: for commands only (see above).

#[derive(Clone, Debug)]
pub struct NodeAddr {
    pub id: Vec<u8>,
    pub host: String,
    pub port: i64,
}

struct SlotMap {
    me: Vec<u8>,
    nodes: Vec<NodeAddr>,
    /// Index into `nodes` per slot; u16::MAX where no node serves it.
    owner: Vec<u16>,
}

impl SlotMap {
    fn owner(&self, slot: u16) -> Option<&NodeAddr> {
        self.owner.get(slot as usize).and_then(|&i| self.nodes.get(i as usize))
    }

    pub fn is_me(&self, node: &NodeAddr) -> bool {
        node.id == self.me
    }
}

static SLOT_MAP: Mutex<Option<(std::time::Instant, std::sync::Arc<SlotMap>)>> = Mutex::new(None);

/// The slot map, re-read when older than `max_age`. None outside cluster mode or when the
/// server's answer cannot be read. Only from a command (see `my_slots`).
fn slot_map(ctx: &Context, max_age: std::time::Duration) -> Option<std::sync::Arc<SlotMap>> {
    if !enabled() {
        return None;
    }
    if let Some((at, map)) = SLOT_MAP.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        if at.elapsed() < max_age {
            return Some(map.clone());
        }
    }
    let map = std::sync::Arc::new(read_slot_map(ctx)?);
    *SLOT_MAP.lock().unwrap_or_else(|p| p.into_inner()) = Some((std::time::Instant::now(), map.clone()));
    Some(map)
}

fn read_slot_map(ctx: &Context) -> Option<SlotMap> {
    let me = ffi::my_cluster_id()?.into_bytes();
    let opts = CallOptionsBuilder::new().errors_as_replies().build();
    let Ok(CallReply::Array(ranges)) = ctx.call_ext::<_, CallResult>("CLUSTER", &opts, &[&b"SLOTS"[..]]) else {
        return None;
    };
    let mut map = SlotMap { me, nodes: Vec::new(), owner: vec![u16::MAX; SLOTS as usize] };
    for range in ranges.iter().flatten() {
        let CallReply::Array(r) = range else { continue };
        let (Some(Ok(CallReply::I64(a))), Some(Ok(CallReply::I64(b))), Some(Ok(CallReply::Array(node)))) = (r.get(0), r.get(1), r.get(2))
        else {
            continue;
        };
        let (a, b) = (a.to_i64(), b.to_i64());
        if !(0 <= a && a <= b && b < SLOTS as i64) {
            continue;
        }
        let host = node.get(0).and_then(|h| h.ok()).map(|h| String::from_utf8_lossy(&reply_bytes(&h)).into_owned()).unwrap_or_default();
        let port = match node.get(1) {
            Some(Ok(CallReply::I64(p))) => p.to_i64(),
            _ => 0,
        };
        let Some(id) = node.get(2).and_then(|h| h.ok()).map(|h| reply_bytes(&h)) else { continue };
        let index = match map.nodes.iter().position(|n| n.id == id) {
            Some(i) => i,
            None => {
                map.nodes.push(NodeAddr { id, host, port });
                map.nodes.len() - 1
            }
        };
        for slot in a..=b {
            map.owner[slot as usize] = index as u16;
        }
    }
    Some(map)
}

/// For commands that act on `key` without naming it: Ok on the node serving its slot (and
/// outside cluster mode), else the redirection the server itself would give for that key.
pub fn serve_here(ctx: &Context, key: &[u8]) -> Result<(), valkey_module::ValkeyError> {
    if !enabled() {
        return Ok(());
    }
    let slot = key_slot(key);
    let map = slot_map(ctx, std::time::Duration::ZERO);
    match map.as_ref().and_then(|m| m.owner(slot).map(|o| (m.is_me(o), o.clone()))) {
        Some((true, _)) => Ok(()),
        Some((false, o)) => Err(valkey_module::ValkeyError::String(format!("MOVED {slot} {}:{}", o.host, o.port))),
        None => Err(valkey_module::ValkeyError::String(format!("CLUSTERDOWN Hash slot {slot} not served"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_the_cluster_spec() {
        // Reference values from the Redis Cluster specification and CLUSTER KEYSLOT.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"news_raw"), key_slot(b"{news_raw}:dedup:1"));
        assert_eq!(key_slot(b"user:{42}"), key_slot(b"42"));
        assert_eq!(key_slot(b"user:{}"), crc16(b"user:{}") & 16383);
        assert_eq!(key_slot(b"a{b}{c}"), key_slot(b"b"));
        assert_eq!(key_slot(b"{"), crc16(b"{") & 16383);
    }

    #[test]
    fn every_slot_has_a_small_tag() {
        for slot in 0..SLOTS {
            let tag = slot_tag(slot);
            assert!(tag < 200_000, "slot {slot}: {tag}");
            assert_eq!(key_slot(tag.to_string().as_bytes()), slot);
        }
        assert_eq!(slot_tag(key_slot(b"0")), 0);
    }
}
