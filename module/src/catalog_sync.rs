//! The topic catalog on every cluster node. The catalog is one key, `agentic:topics`, in one
//! slot; AGENT.CLASSIFY and the pipeline run on other nodes too (the ingest node is whichever
//! primary serves news_raw). So the primary serving the catalog announces a hash of it over the
//! cluster bus every second (and right after a change); a node whose copy differs asks that
//! primary for the catalog and keeps what it receives in memory (never as a key: the key lives in
//! its own slot only), with its topic vectors prepared by its own pool.
//!
//! A node that serves the catalog's slot (its primary and that primary's replicas) reads the key
//! itself. Any other node answers from its copy; until the first copy arrives (a second or so after
//! start) classification there waits: the pipeline pauses, AGENT.CLASSIFY answers TRYAGAIN.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use valkey_module::{Context, ContextFlags};

use crate::classify::catalog::{self, Catalog, CATALOG_KEY};
use crate::classify::pool;
use crate::cluster_pipeline::send;
use crate::{cluster, ffi, metrics};

pub const HASH: u8 = 4;
pub const REQUEST: u8 = 5;
pub const FULL: u8 = 6;

/// How often the catalog's primary announces its hash.
const ANNOUNCE_EVERY: Duration = Duration::from_secs(1);
/// How fresh this node's view of its slots must be to decide whether it serves the catalog.
const SLOTS_AGE: Duration = Duration::from_millis(500);

struct Copy {
    hash: u64,
    catalog: Arc<Catalog>,
}

struct Message {
    sender: Vec<u8>,
    kind: u8,
    bytes: Vec<u8>,
}

struct State {
    copy: Option<Copy>,
    inbox: Vec<Message>,
    announced: Option<(Instant, u64)>,
    requested: Option<(Instant, u64)>,
}

static STATE: Mutex<State> = Mutex::new(State { copy: None, inbox: Vec::new(), announced: None, requested: None });

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

fn hash_of(encoded: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(encoded)
}

/// A catalog message arrived (from the bus handler); handled on the next tick.
pub fn received(sender: Vec<u8>, kind: u8, bytes: Vec<u8>) {
    state().inbox.push(Message { sender, kind, bytes });
}

/// Whether this node holds the catalog key's slot (as its primary or a replica of it).
pub fn serves_catalog(ctx: &Context) -> bool {
    cluster::my_slots(ctx, SLOTS_AGE).serves(cluster::key_slot(CATALOG_KEY.as_bytes()))
}

/// The catalog to classify against on a node that does not serve the catalog's slot: the copy
/// received from the catalog's primary. None before the first copy arrived.
pub fn copy() -> Option<Arc<Catalog>> {
    state().copy.as_ref().map(|c| c.catalog.clone())
}

/// The catalog changed on this node (a topic command): announce it now instead of within a second.
pub fn changed() {
    state().announced = None;
}

/// Runs on every pipeline timer tick of a cluster node (primaries and replicas).
pub fn tick(ctx: &Context) {
    let (inbox, announce_due) = {
        let mut s = state();
        let due = s.announced.is_none_or(|(at, _)| at.elapsed() >= ANNOUNCE_EVERY);
        (std::mem::take(&mut s.inbox), due)
    };
    if inbox.is_empty() && !announce_due {
        return;
    }
    let primary = ctx.get_flags().contains(ContextFlags::MASTER);
    let serving = serves_catalog(ctx);
    for m in inbox {
        if let Err(why) = handle(ctx, m.kind, &m.sender, &m.bytes, primary && serving) {
            metrics::CLUSTER_MESSAGES_MALFORMED.incr();
            ffi::log_warning(&format!("agentic: ignored a catalog message from {}: {why}", String::from_utf8_lossy(&m.sender)));
        }
    }
    if announce_due && primary && serving {
        if let Ok(current) = crate::commands::topic::current_catalog(ctx) {
            let hash = cached_hash(&current);
            state().announced = Some((Instant::now(), hash));
            send(ctx, &[], HASH, &hash.to_le_bytes());
        }
    }
}

/// The hash of a catalog, computed once per catalog value (a catalog with many examples takes a
/// while to encode, and it is announced every second).
fn cached_hash(c: &Catalog) -> u64 {
    static HASHED: Mutex<Option<(u64, u64)>> = Mutex::new(None);
    let mut h = HASHED.lock().unwrap_or_else(|p| p.into_inner());
    match *h {
        Some((id, hash)) if id == c.id => hash,
        _ => {
            let hash = hash_of(&catalog::encode(c));
            *h = Some((c.id, hash));
            hash
        }
    }
}

fn handle(ctx: &Context, kind: u8, sender: &[u8], bytes: &[u8], authoritative: bool) -> Result<(), String> {
    match kind {
        HASH => {
            let hash = u64::from_le_bytes(bytes.try_into().map_err(|_| "a catalog hash of the wrong length")?);
            if authoritative {
                return Ok(());
            }
            let mut s = state();
            let have = s.copy.as_ref().map(|c| c.hash);
            let asked_recently = s.requested.is_some_and(|(at, h)| h == hash && at.elapsed() < ANNOUNCE_EVERY * 2);
            if have != Some(hash) && !asked_recently {
                s.requested = Some((Instant::now(), hash));
                drop(s);
                send(ctx, sender, REQUEST, &[]);
            }
            Ok(())
        }
        REQUEST => {
            if authoritative {
                if let Ok(current) = crate::commands::topic::current_catalog(ctx) {
                    send(ctx, sender, FULL, &catalog::encode(&current));
                }
            }
            Ok(())
        }
        FULL => {
            let decoded = catalog::decode(bytes)?;
            let hash = hash_of(bytes);
            let arc = Arc::new(decoded);
            state().copy = Some(Copy { hash, catalog: arc.clone() });
            metrics::CATALOG_COPIES_RECEIVED.incr();
            pool::prepare(arc);
            Ok(())
        }
        other => Err(format!("unknown catalog message type {other}")),
    }
}
