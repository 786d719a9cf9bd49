//! The delivery engine: works through fan-out jobs in bounded event-loop slices.
//!
//! A job's first slice runs inside the command; if the audience is not done within
//! `fanout-slice-us`, the caller is blocked and the rest continues from a 0 ms timer, i.e. after
//! the event loop has served other clients. Jobs run strictly in arrival order, so feeds receive
//! documents in the order they were fanned out. Each slice replicates one fully specified
//! `AGENT.DELIVER` naming the users it delivered to, so replicas and the AOF replay exactly the
//! same state changes, interleaved with other commands exactly as they happened here.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use valkey_module::{raw, BlockedClient, Context, ThreadSafeContext, ValkeyValue};

use crate::feed::EntryId;
use crate::ffi::{self, KeyName, OpenUser, Target, UserSlot};
use crate::user::{Delivery, DeliverySpec, UserState};
use crate::{cluster, delivery_channel, index, metrics};

pub enum Targets {
    /// Subscribers from the index: only existing users still following the topic get it.
    /// `generation` is the topic's membership generation when the snapshot was taken.
    Subscribers { generation: u64 },
    /// Named users: created when missing (external drivers, replication).
    Explicit,
}

/// Called on the main thread with (delivered, duplicates) when an internal job finished.
pub type OnDone = Box<dyn FnOnce(&Context, u64, u64) + Send>;

pub struct Job {
    pub spec: DeliverySpec,
    targets: Vec<Target>,
    /// Explicit targets are owned here; subscriber targets are index entries (see index::retire).
    _owned: Vec<Arc<KeyName>>,
    number: u64,
    pub mode: Targets,
    pos: usize,
    delivered: u64,
    duplicates: u64,
    fp_expected: f64,
    client: Option<BlockedClient>,
    /// Called on the main thread when the job finished (internal callers such as the pipeline).
    on_done: Option<OnDone>,
    started: Instant,
}

impl Job {
    /// A fan-out to a topic's subscribers, from an index snapshot taken with `generation`.
    pub fn subscribers(spec: DeliverySpec, targets: Vec<Target>, generation: u64) -> Job {
        Job::new(spec, targets, Vec::new(), Targets::Subscribers { generation })
    }

    /// A delivery to named users, created when missing. Users the index knows under the topic
    /// (on a replica: the subscribers a replicated AGENT.DELIVER names) reuse their index entry
    /// and its remembered value, so replicas skip the keyspace lookup too.
    pub fn explicit(spec: DeliverySpec, users: &[&[u8]]) -> Job {
        let mut owned = Vec::new();
        let targets = index::with(|ix| {
            users
                .iter()
                .map(|u| {
                    ix.target_of(&spec.doc.topic, u).unwrap_or_else(|| {
                        let k = Arc::new(KeyName::new(u));
                        let t = k.target();
                        owned.push(k);
                        t
                    })
                })
                .collect()
        });
        Job::new(spec, targets, owned, Targets::Explicit)
    }

    /// True when a target key holds something other than a user value; checked before the first
    /// write. Targets with a valid remembered value are user values without a lookup.
    pub fn has_wrong_type_target(&self, ctx: &Context) -> bool {
        self.targets
            .iter()
            .filter(|t| t.with(|_| ()).is_none())
            .any(|t| !matches!(ffi::key_type_of(ctx, t.key().as_bytes()), ffi::KeyKind::Missing | ffi::KeyKind::User))
    }

    fn new(spec: DeliverySpec, targets: Vec<Target>, owned: Vec<Arc<KeyName>>, mode: Targets) -> Job {
        for t in targets.iter().take(PREFETCH_FIRST) {
            t.prefetch();
        }
        Job {
            number: index::job_started(),
            spec,
            targets,
            _owned: owned,
            mode,
            pos: 0,
            delivered: 0,
            duplicates: 0,
            fp_expected: 0.0,
            client: None,
            on_done: None,
            started: Instant::now(),
        }
    }

    fn done(&self) -> bool {
        self.pos >= self.targets.len()
    }

    pub fn reply(&self) -> ValkeyValue {
        outcome_reply(self.delivered, self.duplicates)
    }

    fn finish(mut self, ctx: &Context) {
        metrics::SEEN_FP_EXPECTED_MICRO.add((self.fp_expected * 1e6).round() as u64);
        metrics::FANOUT_LATENCY_US.record(self.started.elapsed().as_micros() as u64);
        if let Some(mut bc) = self.client.take() {
            bc.measure_time_end();
            let tsc = ThreadSafeContext::with_blocked_client(bc);
            tsc.reply(Ok(self.reply()));
        }
        if let Some(done) = self.on_done.take() {
            done(ctx, self.delivered, self.duplicates);
        }
    }
}

/// What a fan-out replies: `[delivered, N, duplicates, M]`.
pub fn outcome_reply(delivered: u64, duplicates: u64) -> ValkeyValue {
    ValkeyValue::Array(vec![
        ValkeyValue::SimpleStringStatic("delivered"),
        ValkeyValue::Integer(delivered as i64),
        ValkeyValue::SimpleStringStatic("duplicates"),
        ValkeyValue::Integer(duplicates as i64),
    ])
}

impl Drop for Job {
    fn drop(&mut self) {
        index::job_ended(self.number);
    }
}

/// Jobs waiting for the next slice; main thread only.
static QUEUE: Mutex<VecDeque<Job>> = Mutex::new(VecDeque::new());
static TIMER_ARMED: AtomicBool = AtomicBool::new(false);
/// Set when work is queued for the next slice. The timer is created from the before-sleep hook,
/// never directly: one created inside the server's timer handler (a slice, the pipeline's tick)
/// sorts after the timer that is running, so the server's timer event is not moved forward and the
/// slice waits at least 1 ms; the stray timer then also keeps later ones from moving it forward.
/// Measured on the pipeline bench: the event loop idled in 1 ms waits with fan-outs queued and the
/// slices ran ~40% of the time.
static REARM_BEFORE_SLEEP: AtomicBool = AtomicBool::new(false);
static LAST_SLICE_END: Mutex<Option<Instant>> = Mutex::new(None);

fn slice_budget() -> Duration {
    Duration::from_micros(crate::configs::fanout_slice_us())
}

/// Starts a fan-out from a command. Returns the reply when it finished within the first slice
/// (or must run inline because the caller cannot block); otherwise the caller is blocked and
/// `None` is returned.
pub fn start(ctx: &Context, mut job: Job, can_block: bool) -> Option<ValkeyValue> {
    metrics::FANOUT_CALLS.incr();
    let mut queue = QUEUE.lock().unwrap_or_else(|p| p.into_inner());
    if !can_block && cluster::enabled() {
        // Inside a command on a cluster node every key is looked up in the command's slot, so
        // queued subscriber jobs cannot be finished here; this job (named users of the command's
        // own slot, checked by the server's routing) runs alone.
        drop(queue);
        work(ctx, &mut job, None);
        let reply = job.reply();
        job.finish(ctx);
        return Some(reply);
    }
    if !can_block {
        // MULTI, Lua, replicas: everything now. Unbounded, but the caller asked for atomicity.
        // Jobs already queued finish first, so feeds keep the fan-out order.
        while let Some(mut queued) = queue.pop_front() {
            work(ctx, &mut queued, None);
            queued.finish(ctx);
        }
        metrics::FANOUT_JOBS_PENDING.set(0);
        work(ctx, &mut job, None);
        let reply = job.reply();
        job.finish(ctx);
        return Some(reply);
    }
    // On a cluster node a subscriber's key can only be found from the timer (see cluster.rs).
    let inline_allowed = !(cluster::enabled() && matches!(job.mode, Targets::Subscribers { .. }));
    if queue.is_empty() && inline_allowed {
        work(ctx, &mut job, Some(Instant::now() + slice_budget()));
        if job.done() {
            let reply = job.reply();
            job.finish(ctx);
            return Some(reply);
        }
    }
    job.client = Some(ctx.block_client());
    metrics::FANOUT_BLOCKED_CALLS.incr();
    queue.push_back(job);
    metrics::FANOUT_JOBS_PENDING.set(queue.len() as i64);
    drop(queue);
    arm_timer();
    None
}

/// Starts a fan-out for an internal caller (no client): `on_done(ctx, delivered, duplicates)` runs
/// on the main thread once every target is served, in fan-out order with every other job.
pub fn start_internal(ctx: &Context, mut job: Job, on_done: OnDone) {
    metrics::FANOUT_CALLS.incr();
    job.on_done = Some(on_done);
    let mut queue = QUEUE.lock().unwrap_or_else(|p| p.into_inner());
    if queue.is_empty() {
        work(ctx, &mut job, Some(Instant::now() + slice_budget()));
        if job.done() {
            drop(queue);
            job.finish(ctx);
            return;
        }
    }
    queue.push_back(job);
    metrics::FANOUT_JOBS_PENDING.set(queue.len() as i64);
    drop(queue);
    arm_timer();
}

fn arm_timer() {
    *LAST_SLICE_END.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    if !TIMER_ARMED.load(Ordering::Relaxed) {
        REARM_BEFORE_SLEEP.store(true, Ordering::Relaxed);
    }
}

/// One event-loop slice: continues queued jobs until the budget is spent.
pub fn run_slice(ctx: &Context) {
    if ffi::writes_paused() {
        // Deliveries are writes: wait until the pause ends (checked every 10 ms).
        metrics::FANOUT_PAUSED_SLICES.incr();
        ffi::schedule_slice_in(ctx, 10);
        return;
    }
    TIMER_ARMED.store(false, Ordering::Relaxed);
    if let Some(end) = LAST_SLICE_END.lock().unwrap_or_else(|p| p.into_inner()).take() {
        metrics::FANOUT_SLICE_GAP_US.record(end.elapsed().as_micros() as u64);
    }
    let deadline = Instant::now() + slice_budget();
    let mut queue = QUEUE.lock().unwrap_or_else(|p| p.into_inner());
    while let Some(job) = queue.front_mut() {
        if let Some(bc) = job.client.as_mut() {
            bc.measure_time_start();
        }
        work(ctx, job, Some(deadline));
        if let Some(bc) = job.client.as_mut() {
            bc.measure_time_end();
        }
        if !job.done() {
            break;
        }
        if let Some(job) = queue.pop_front() {
            job.finish(ctx);
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    metrics::FANOUT_JOBS_PENDING.set(queue.len() as i64);
    let more = !queue.is_empty();
    drop(queue);
    if more {
        *LAST_SLICE_END.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        REARM_BEFORE_SLEEP.store(true, Ordering::Relaxed);
    }
}

/// Called before the event loop sleeps: continues pending fan-outs on the next iteration.
pub fn before_sleep(ctx: &Context) {
    if REARM_BEFORE_SLEEP.swap(false, Ordering::Relaxed) {
        TIMER_ARMED.store(true, Ordering::Relaxed);
        ffi::schedule_next_slice(ctx);
    }
}

/// Users whose values are requested when a job is created (the first slices' worth).
const PREFETCH_FIRST: usize = 1024;
/// Users prepared per batch inside a slice.
const BATCH: usize = 64;

/// Batch prefetch over memory latency: for the next users, first ask for the values (in case
/// they fell out of cache), then read each value and ask for its parts, then read the parts and
/// ask for the Bloom blocks of this document. Each pass issues independent loads, so their
/// misses overlap instead of queueing one after another.
fn prepare_batch(targets: &[Target], spec: &DeliverySpec) {
    for t in targets {
        t.prefetch();
    }
    for t in targets {
        t.with(|u| u.prefetch_parts());
    }
    for t in targets {
        t.with(|u| u.seen.prefetch_blocks(spec.hash, u.salt));
    }
}

/// Delivers to targets from `job.pos` until done or past `deadline`, then replicates the slice.
pub fn work(ctx: &Context, job: &mut Job, deadline: Option<Instant>) {
    let slice_start = Instant::now();
    let mut delivered_keys: Vec<*mut raw::RedisModuleString> = Vec::new();
    let mut delivered_ids: Vec<(Target, EntryId)> = Vec::new();
    let mut stale: Vec<Target> = Vec::new();
    let mut evicted = 0u64;
    let mut bytes_delta = 0i64;
    let mut wrongtype = 0u64;
    let mut n = 0u32;
    let duplicates_before = job.duplicates;
    let explicit = matches!(job.mode, Targets::Explicit);
    let topic = &job.spec.doc.topic;
    // Users of slots that atomic slot migration is importing are the source node's until the
    // import completes.
    let skip_importing = !explicit && cluster::enabled() && cluster::any_importing();
    let mut importing_skipped = 0u64;
    // Own ids go above the shared timelines' clock (timeline.rs), read once per slice.
    let floor = crate::commands::timeline::clock(ctx);
    let membership_exact = match job.mode {
        Targets::Subscribers { generation } => index::with(|ix| ix.generation(topic)) == Some(generation),
        Targets::Explicit => false,
    };
    while job.pos < job.targets.len() {
        if let Some(d) = deadline {
            if n > 0 && n.is_multiple_of(32) && Instant::now() >= d {
                break;
            }
        }
        n += 1;
        if job.pos.is_multiple_of(BATCH) || n == 1 {
            let end = (job.pos + BATCH - job.pos % BATCH).min(job.targets.len());
            prepare_batch(&job.targets[job.pos..end], &job.spec);
            // Ask for the values of the batch after this one, so they are on their way too.
            if let Some(next) = job.targets.get(end..(end + BATCH).min(job.targets.len())) {
                next.iter().for_each(|t| t.prefetch());
            }
        }
        let target = job.targets[job.pos];
        job.pos += 1;
        if skip_importing && cluster::importing(cluster::key_slot(target.key().as_bytes())) {
            importing_skipped += 1;
            continue;
        }
        let raw_name = target.name();
        // Fast path: the value this index entry pointed at, still valid; the topic check is
        // needed only if the topic's membership changed since the snapshot. A job created before
        // an earlier job found the value (a burst of fan-outs queued at once) finds it in the
        // index entry itself.
        let spec = &job.spec;
        let deliver = |t: Target| t.with(|u| (explicit || membership_exact || u.has_topic(topic)).then(|| u.deliver_above(spec, floor)));
        let fast = deliver(target).or_else(|| deliver(target.key().target()));
        let outcome = match fast {
            Some(d) => {
                if let Some(Delivery::Delivered { grew, .. }) = &d {
                    bytes_delta += *grew;
                    ffi::signal_modified(ctx, raw_name);
                }
                d
            }
            None => {
                let name = target.key();
                let mut open = OpenUser::open(ctx, name);
                open.remember_in(name);
                match open.slot() {
                    UserSlot::Found(u) if explicit || u.has_topic(topic) => {
                        let d = u.deliver_above(&job.spec, floor);
                        if let Delivery::Delivered { grew, .. } = &d {
                            bytes_delta += *grew;
                            open.mark_modified();
                        }
                        Some(d)
                    }
                    UserSlot::Missing if explicit => {
                        let mut u = UserState::new(name.as_bytes());
                        let d = u.deliver_above(&job.spec, floor);
                        if !open.create(u) {
                            wrongtype += 1;
                            continue;
                        }
                        Some(d)
                    }
                    UserSlot::WrongType if explicit => {
                        wrongtype += 1;
                        continue;
                    }
                    _ => None,
                }
            }
        };
        match outcome {
            None => stale.push(target),
            Some(Delivery::Duplicate) => job.duplicates += 1,
            Some(Delivery::Delivered { id, evicted: e, fp_probability, .. }) => {
                job.delivered += 1;
                evicted += e as u64;
                job.fp_expected += fp_probability;
                ffi::notify_raw(ctx, c"agent.deliver", raw_name);
                crate::feed_wakeups::wake(ctx, target.key().as_bytes());
                // The raw pointer stays valid: the job holds the Arc until it finishes.
                delivered_keys.push(raw_name);
                delivered_ids.push((target, id));
            }
        }
    }
    if let Some(newest) = delivered_ids.iter().map(|(_, id)| *id).max() {
        crate::feed::note_own_id(newest);
    }
    metrics::USER_BYTES.add(bytes_delta);
    metrics::FEED_EVICTIONS.add(evicted);
    metrics::FANOUT_DELIVERIES.add(delivered_keys.len() as u64);
    metrics::FANOUT_DUPLICATES.add(job.duplicates - duplicates_before);
    metrics::FANOUT_WRONGTYPE_SKIPPED.add(wrongtype);
    metrics::CLUSTER_IMPORTING_SKIPPED.add(importing_skipped);
    if !stale.is_empty() {
        metrics::FANOUT_STALE_SUBSCRIBERS.add(stale.len() as u64);
        let topic = job.spec.doc.topic.clone();
        index::with(|ix| stale.iter().for_each(|t| ix.remove(&topic, t.key().as_bytes())));
    }
    let s = &job.spec;
    if cluster::enabled() {
        replicate_per_slot(ctx, s, &delivered_ids);
    } else {
        ffi::replicate_deliver(ctx, &s.doc.topic, &s.doc.key, s.ts_ms, s.feed_len as u64, s.seen, &delivered_keys);
    }
    let announced: Vec<(&[u8], EntryId)> = delivered_ids.iter().map(|(t, id)| (t.key().as_bytes(), *id)).collect();
    delivery_channel::publish(ctx, &s.doc.topic, &s.doc.key, &announced);
    metrics::FANOUT_SLICES.incr();
    metrics::FANOUT_SLICE_US.record(slice_start.elapsed().as_micros() as u64);
}

/// One AGENT.DELIVER per hash slot: a replicated command must name keys of one slot for atomic
/// slot migration to forward it to the slot's new owner (multi-slot commands are dropped there).
fn replicate_per_slot(ctx: &Context, s: &DeliverySpec, delivered: &[(Target, EntryId)]) {
    let mut by_slot: Vec<(u16, *mut raw::RedisModuleString)> =
        delivered.iter().map(|(t, _)| (cluster::key_slot(t.key().as_bytes()), t.name())).collect();
    by_slot.sort_by_key(|(slot, _)| *slot);
    for group in by_slot.chunk_by(|a, b| a.0 == b.0) {
        let names: Vec<*mut raw::RedisModuleString> = group.iter().map(|(_, n)| *n).collect();
        ffi::replicate_deliver(ctx, &s.doc.topic, &s.doc.key, s.ts_ms, s.feed_len as u64, s.seen, &names);
    }
}
