//! Sidecars: processes that run the same model on their own device (a GPU) and take
//! classification batches from the module. A sidecar calls AGENT.SIDECAR.NEXT, which blocks
//! until texts are queued, gets a batch, embeds it and returns the vectors with
//! AGENT.SIDECAR.RESULT; a pool worker then scores them against the topics and answers the
//! waiting clients.
//!
//! While a sidecar is live (it called within `sidecar-ttl-ms`, or is waiting in NEXT) the CPU
//! workers leave classification to it. A batch not answered within `sidecar-timeout-ms`, answered
//! with an error, or held by a sidecar that stopped calling goes back to the CPU pool, as do all
//! texts once no sidecar is live. Nothing here is persisted or replicated: every node has its own
//! sidecars.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use valkey_module::{Context, ValkeyValue};

use super::pool::{self, Job};
use crate::ffi::{Blocked, BlockedAnswer};
use crate::{configs, metrics};

/// What a waiting AGENT.SIDECAR.NEXT gets: a batch, or nothing (its wait ended).
pub enum NextAnswer {
    Batch { job_id: u64, max_tokens: usize, texts: Vec<String> },
    Idle,
}

impl BlockedAnswer for NextAnswer {
    fn reply(self, _ctx: &Context) -> valkey_module::ValkeyResult {
        Ok(match self {
            NextAnswer::Batch { job_id, max_tokens, texts } => ValkeyValue::Array(vec![
                ValkeyValue::Integer(job_id as i64),
                ValkeyValue::Integer(max_tokens as i64),
                ValkeyValue::Array(texts.into_iter().map(ValkeyValue::BulkString).collect()),
            ]),
            NextAnswer::Idle => ValkeyValue::Null,
        })
    }
    fn timed_out(_ctx: &Context) -> valkey_module::ValkeyResult {
        Ok(ValkeyValue::Null)
    }
    fn lost(_ctx: &Context) -> valkey_module::ValkeyResult {
        Ok(ValkeyValue::Null)
    }
}

struct Waiting {
    wait_id: u64,
    client: Blocked<NextAnswer>,
    batch_max: usize,
}

struct Sidecar {
    device: String,
    last_seen: Instant,
    waiting: Option<Waiting>,
}

struct Inflight {
    sidecar: String,
    jobs: Vec<Box<dyn Job>>,
    deadline: Instant,
}

#[derive(Default)]
struct Registry {
    sidecars: HashMap<String, Sidecar>,
    inflight: HashMap<u64, Inflight>,
    next_id: u64,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);

/// Until when (ms since the registry's epoch) some sidecar counts as live. Read lock-free by the
/// CPU workers, which must not take the registry lock while they hold the queue's.
static LIVE_UNTIL_MS: AtomicU64 = AtomicU64::new(0);
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

fn ms_since_epoch(t: Instant) -> u64 {
    t.saturating_duration_since(*EPOCH).as_millis() as u64
}

fn ttl() -> Duration {
    Duration::from_millis(configs::sidecar_ttl_ms())
}

fn is_live(s: &Sidecar, now: Instant) -> bool {
    s.waiting.is_some() || now.saturating_duration_since(s.last_seen) < ttl()
}

/// Whether classification goes to sidecars (the CPU workers then only score, prepare topics and
/// take batches handed back).
pub fn routing_to_sidecars() -> bool {
    ms_since_epoch(Instant::now()) < LIVE_UNTIL_MS.load(Ordering::Acquire)
}

fn refresh_liveness(reg: &Registry, now: Instant) {
    let until = reg
        .sidecars
        .values()
        .filter(|s| is_live(s, now))
        .map(|s| if s.waiting.is_some() { u64::MAX } else { ms_since_epoch(s.last_seen + ttl()) })
        .max()
        .unwrap_or(0);
    LIVE_UNTIL_MS.store(until, Ordering::Release);
    metrics::SIDECARS_LIVE.set(reg.sidecars.values().filter(|s| is_live(s, now)).count() as i64);
}

/// Live sidecars per device, e.g. `cuda:2,cpu:1` (INFO agentic_classify), and how many run on a
/// GPU (the reference's `enrich_gpu`).
pub fn devices() -> (String, usize) {
    let reg = registry();
    let now = Instant::now();
    let mut counts: Vec<(String, usize)> = Vec::new();
    for s in reg.sidecars.values().filter(|s| is_live(s, now)) {
        match counts.iter_mut().find(|(d, _)| *d == s.device) {
            Some((_, n)) => *n += 1,
            None => counts.push((s.device.clone(), 1)),
        }
    }
    counts.sort();
    let gpu = counts.iter().filter(|(d, _)| d.starts_with("cuda")).map(|(_, n)| n).sum();
    (counts.iter().map(|(d, n)| format!("{d}:{n}")).collect::<Vec<_>>().join(","), gpu)
}

fn hand_out(reg: &mut Registry, sidecar: &str, jobs: Vec<Box<dyn Job>>, client: Blocked<NextAnswer>) {
    reg.next_id += 1;
    let job_id = reg.next_id;
    let texts: Vec<String> = jobs.iter().map(|j| j.text().to_string()).collect();
    metrics::SIDECAR_BATCHES.incr();
    metrics::SIDECAR_TEXTS.add(texts.len() as u64);
    let deadline = Instant::now() + Duration::from_millis(configs::sidecar_timeout_ms());
    reg.inflight.insert(job_id, Inflight { sidecar: sidecar.to_string(), jobs, deadline });
    // If the sidecar disconnected meanwhile the answer is dropped; the batch then times out back
    // to the CPU pool.
    client.answer(NextAnswer::Batch { job_id, max_tokens: configs::classify_max_tokens(), texts });
}

/// AGENT.SIDECAR.NEXT: the sidecar is live; it gets queued texts now, or waits. Returns the wait's
/// id when it waits (the caller ends the wait after BLOCK ms with `wait_over`).
pub fn next(id: &str, device: &str, batch_max: usize, client: Blocked<NextAnswer>) -> Option<u64> {
    sweep();
    let now = Instant::now();
    let mut reg = registry();
    reg.next_id += 1;
    let wait_id = reg.next_id;
    let s = reg.sidecars.entry(id.to_string()).or_insert_with(|| Sidecar { device: device.to_string(), last_seen: now, waiting: None });
    s.device = device.to_string();
    s.last_seen = now;
    if let Some(old) = s.waiting.take() {
        // The same sidecar asks again while a wait is open (a retried call): end the old wait.
        old.client.answer(NextAnswer::Idle);
    }
    let jobs = pool::take_for_sidecar(batch_max);
    let waits = if jobs.is_empty() {
        if let Some(s) = reg.sidecars.get_mut(id) {
            s.waiting = Some(Waiting { wait_id, client, batch_max });
        }
        Some(wait_id)
    } else {
        hand_out(&mut reg, id, jobs, client);
        None
    };
    refresh_liveness(&reg, now);
    waits
}

/// The wait of NEXT call `wait_id` is over with nothing to do (its BLOCK time passed).
pub fn wait_over(id: &str, wait_id: u64) {
    let now = Instant::now();
    let mut reg = registry();
    if let Some(s) = reg.sidecars.get_mut(id) {
        if s.waiting.as_ref().is_some_and(|w| w.wait_id == wait_id) {
            if let Some(w) = s.waiting.take() {
                w.client.answer(NextAnswer::Idle);
            }
            s.last_seen = now;
        }
    }
    refresh_liveness(&reg, now);
}

/// New texts were queued: give them to waiting sidecars.
pub fn dispatch() {
    let mut reg = registry();
    let waiting: Vec<String> = reg.sidecars.iter().filter(|(_, s)| s.waiting.is_some()).map(|(id, _)| id.clone()).collect();
    for id in waiting {
        let Some(batch_max) = reg.sidecars.get(&id).and_then(|s| s.waiting.as_ref()).map(|w| w.batch_max) else { continue };
        let jobs = pool::take_for_sidecar(batch_max);
        if jobs.is_empty() {
            break;
        }
        let Some(w) = reg.sidecars.get_mut(&id).and_then(|s| s.waiting.take()) else { continue };
        hand_out(&mut reg, &id, jobs, w.client);
    }
    refresh_liveness(&reg, Instant::now());
}

/// The sidecar's answer to a batch: one unit vector per text, in order.
/// The vectors of a sidecar's result blob: `dim` little-endian float32 values per text, all finite.
pub fn vectors_of(blob: &[u8], dim: usize) -> Result<Vec<Vec<f32>>, String> {
    let width = dim.checked_mul(4).filter(|w| *w > 0).ok_or(format!("dim {dim} is out of range"))?;
    if blob.is_empty() || !blob.len().is_multiple_of(width) {
        return Err(format!("the blob holds {} bytes, not a whole number of {dim}-float vectors", blob.len()));
    }
    let floats: Vec<f32> = blob.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    if floats.iter().any(|f| !f.is_finite()) {
        return Err("the vectors hold NaN or infinite values".into());
    }
    Ok(floats.chunks_exact(dim).map(<[f32]>::to_vec).collect())
}

pub fn result(id: &str, job_id: u64, vectors: Vec<Vec<f32>>) -> Result<(), String> {
    let now = Instant::now();
    let mut reg = registry();
    let inflight = take_inflight(&mut reg, id, job_id)?;
    if let Some(s) = reg.sidecars.get_mut(id) {
        s.last_seen = now;
    }
    refresh_liveness(&reg, now);
    drop(reg);
    if vectors.len() != inflight.jobs.len() {
        let n = inflight.jobs.len();
        metrics::SIDECAR_FAILURES.incr();
        metrics::SIDECAR_FALLBACKS.add(n as u64);
        pool::fall_back(inflight.jobs);
        return Err(format!("the batch had {n} texts but {} vectors came back; it goes to the CPU pool", vectors.len()));
    }
    pool::score(inflight.jobs.into_iter().zip(vectors).collect());
    Ok(())
}

/// The sidecar could not embed a batch: the CPU pool does it.
pub fn failed(id: &str, job_id: u64) -> Result<(), String> {
    let mut reg = registry();
    let inflight = take_inflight(&mut reg, id, job_id)?;
    if let Some(s) = reg.sidecars.get_mut(id) {
        s.last_seen = Instant::now();
    }
    drop(reg);
    metrics::SIDECAR_FAILURES.incr();
    metrics::SIDECAR_FALLBACKS.add(inflight.jobs.len() as u64);
    pool::fall_back(inflight.jobs);
    Ok(())
}

fn take_inflight(reg: &mut Registry, id: &str, job_id: u64) -> Result<Inflight, String> {
    match reg.inflight.get(&job_id) {
        Some(i) if i.sidecar == id => reg.inflight.remove(&job_id).ok_or_else(|| "no such batch".into()),
        Some(_) => Err(format!("batch {job_id} was handed to another sidecar")),
        None => {
            metrics::SIDECAR_LATE_RESULTS.incr();
            Err(format!("no batch {job_id}: it timed out and went to the CPU pool, or was already answered"))
        }
    }
}

/// Hands batches back to the CPU pool when their sidecar is late or gone, and forgets sidecars
/// long gone. Cheap when nothing is in flight.
pub fn sweep() {
    let now = Instant::now();
    let mut reg = registry();
    if reg.inflight.is_empty() && reg.sidecars.is_empty() {
        return;
    }
    let Registry { sidecars, inflight, .. } = &mut *reg;
    let overdue: Vec<u64> = inflight
        .iter()
        .filter(|(_, b)| now >= b.deadline || !sidecars.get(&b.sidecar).is_some_and(|s| is_live(s, now)))
        .map(|(id, _)| *id)
        .collect();
    for id in overdue {
        if let Some(b) = inflight.remove(&id) {
            metrics::SIDECAR_TIMEOUTS.incr();
            metrics::SIDECAR_FALLBACKS.add(b.jobs.len() as u64);
            pool::fall_back(b.jobs);
        }
    }
    let forget_after = ttl() * 10;
    sidecars.retain(|_, s| s.waiting.is_some() || now.saturating_duration_since(s.last_seen) < forget_after);
    refresh_liveness(&reg, now);
}

pub fn has_inflight() -> bool {
    !registry().inflight.is_empty()
}

pub struct SidecarView {
    pub id: String,
    pub device: String,
    pub live: bool,
    pub waiting: bool,
    pub inflight: usize,
    pub idle_ms: u64,
}

/// AGENT.SIDECAR.LIST, sorted by id.
pub fn list() -> Vec<SidecarView> {
    let now = Instant::now();
    let reg = registry();
    let mut v: Vec<SidecarView> = reg
        .sidecars
        .iter()
        .map(|(id, s)| SidecarView {
            id: id.clone(),
            device: s.device.clone(),
            live: is_live(s, now),
            waiting: s.waiting.is_some(),
            inflight: reg.inflight.values().filter(|b| &b.sidecar == id).count(),
            idle_ms: now.saturating_duration_since(s.last_seen).as_millis() as u64,
        })
        .collect();
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}
