//! The classification pool: `classify-threads` workers take requests from one queue, run the
//! model and answer their blocked clients. A worker takes every request waiting (up to
//! `classify-batch`) at once: texts are tokenised, sorted by length and run in padded batches, so
//! concurrent callers share forward passes without paying for much padding. With the static tier
//! a worker scores its texts there first and, in the cascade, queues the ones it escalates for the
//! encoder on their own queue, taken only when nothing else waits (cascade.rs decides which).
//! What a worker does with its texts (the static and encoder passes, ranking): passes.rs. Topic
//! vectors and scorers per tier: topic_vectors.rs.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::cascade::Learning;
use super::catalog::Catalog;
use super::passes::{answer_encoded, model_pass, static_pass, static_tier_in_use, word_scores, Encoded, Escalation};
use super::scorer::Scorer;
use super::topic_vectors::{build_scorer, scorer_for, Embedder};
use super::word_head;
use super::{cascade, learner, model, sidecar, Classification};
use crate::configs::ClassifyTier;
use crate::ffi::{Blocked, BlockedAnswer};
use crate::{configs, metrics};

pub struct Request<A: BlockedAnswer> {
    pub text: String,
    /// Topics to choose among; None = every topic of the catalog.
    pub topics: Option<Vec<String>>,
    pub catalog: Arc<Catalog>,
    pub deadline: Option<Instant>,
    pub enqueued: Instant,
    pub client: Blocked<A>,
}

/// One text to classify; type-erased so the queue holds requests of any kind (blocked clients,
/// the pipeline).
pub trait Job: Send {
    fn text(&self) -> &str;
    fn expired(&self, now: Instant) -> bool;
    fn catalog(&self) -> &Arc<Catalog>;
    fn finish(self: Box<Self>, result: Result<Classification, String>);
    fn topics(&self) -> Option<&[String]>;
}

/// Builds the answer a blocked client gets.
pub trait FromOutcome: BlockedAnswer {
    fn from_outcome(result: Result<Classification, String>) -> Self;
}

impl<A: FromOutcome> Job for Request<A> {
    fn text(&self) -> &str {
        &self.text
    }
    fn expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }
    fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }
    fn topics(&self) -> Option<&[String]> {
        self.topics.as_deref()
    }
    fn finish(self: Box<Self>, result: Result<Classification, String>) {
        metrics::CLASSIFY_LATENCY_US.record(self.enqueued.elapsed().as_micros() as u64);
        if result.is_err() {
            metrics::CLASSIFY_FAILURES.incr();
        }
        self.client.answer(A::from_outcome(result));
    }
}

enum Work {
    Classify(Box<dyn Job>),
    /// Embed a catalog's texts ahead of the first request that needs them.
    Prepare(Arc<Catalog>),
    /// Texts a sidecar embedded: only scoring is left.
    Score(Vec<(Box<dyn Job>, Vec<f32>)>),
    /// A batch a sidecar did not answer in time (or failed): the CPU runs it, sidecars or not.
    FallBack(Vec<Box<dyn Job>>),
    /// Fit the self-trained heads of a catalog (learner.rs).
    Learn(Arc<Catalog>),
}

struct Queue {
    work: VecDeque<Work>,
    classify_waiting: usize,
    /// Texts the cascade sends to the encoder, each with the static tier's answer (kept in case
    /// the encoder fails). Taken one at a time and only when no other work waits, so cheap static
    /// work never queues behind the encoder.
    escalated: VecDeque<(Box<dyn Job>, Escalation)>,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue { work: VecDeque::new(), classify_waiting: 0, escalated: VecDeque::new() });

/// With the static tier a worker takes this many times `classify-batch` texts at once: they cost
/// microseconds each.
const STATIC_BATCH_FACTOR: usize = 16;
static WORK_READY: Condvar = Condvar::new();
static SPAWNED: AtomicUsize = AtomicUsize::new(0);

fn queue() -> MutexGuard<'static, Queue> {
    QUEUE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Queues a request (a blocked client's or the pipeline's); false when the queue is full, in
/// which case the dropped job answers for itself.
pub fn submit(job: Box<dyn Job>) -> bool {
    ensure_workers();
    {
        let mut q = queue();
        if q.classify_waiting >= configs::classify_queue_max() {
            return false;
        }
        q.work.push_back(Work::Classify(job));
        q.classify_waiting += 1;
        metrics::CLASSIFY_QUEUE_DEPTH.set(q.classify_waiting as i64);
    }
    if sidecar::routing_to_sidecars() {
        sidecar::dispatch();
    } else {
        WORK_READY.notify_one();
    }
    true
}

/// Up to `max` queued texts for a sidecar, oldest first.
pub fn take_for_sidecar(max: usize) -> Vec<Box<dyn Job>> {
    let mut q = queue();
    let mut jobs = Vec::new();
    let mut i = 0;
    while jobs.len() < max && i < q.work.len() {
        if matches!(q.work[i], Work::Classify(_)) {
            if let Some(Work::Classify(j)) = q.work.remove(i) {
                jobs.push(j);
            }
        } else {
            i += 1;
        }
    }
    q.classify_waiting -= jobs.len();
    metrics::CLASSIFY_QUEUE_DEPTH.set(q.classify_waiting as i64);
    jobs
}

/// Vectors from a sidecar, to be scored and answered by a worker.
pub fn score(pairs: Vec<(Box<dyn Job>, Vec<f32>)>) {
    ensure_workers();
    queue().work.push_front(Work::Score(pairs));
    WORK_READY.notify_one();
}

/// A sidecar's batch comes back to the CPU.
pub fn fall_back(jobs: Vec<Box<dyn Job>>) {
    if jobs.is_empty() {
        return;
    }
    ensure_workers();
    queue().work.push_front(Work::FallBack(jobs));
    WORK_READY.notify_one();
}

/// Computes a catalog's topic vectors in the background (after a topic change or model load).
pub fn prepare(catalog: Arc<Catalog>) {
    remember_catalog(&catalog);
    if model::encoder().is_err() {
        return;
    }
    ensure_workers();
    queue().work.push_back(Work::Prepare(catalog));
    WORK_READY.notify_one();
}

pub fn model_ready() {
    let latest = LATEST_CATALOG.lock().unwrap_or_else(|p| p.into_inner()).clone();
    prepare(latest.unwrap_or_else(Catalog::defaults));
}

static LATEST_CATALOG: Mutex<Option<Arc<Catalog>>> = Mutex::new(None);

pub(super) fn remember_catalog(c: &Arc<Catalog>) {
    let mut latest = LATEST_CATALOG.lock().unwrap_or_else(|p| p.into_inner());
    if latest.as_ref().is_none_or(|l| l.id != c.id) {
        *latest = Some(c.clone());
    }
}

/// Starts workers up to `classify-threads`. Workers above a lowered setting idle, so the setting
/// can change at runtime.
fn ensure_workers() {
    let want = configs::classify_threads();
    let generation = GENERATION.load(Ordering::Acquire);
    while SPAWNED.load(Ordering::Acquire) < want {
        let index = SPAWNED.fetch_add(1, Ordering::AcqRel);
        if index >= want {
            SPAWNED.fetch_sub(1, Ordering::AcqRel);
            break;
        }
        let spawned = std::thread::Builder::new().name(format!("agentic-classify-{index}")).spawn(move || worker(index, generation));
        if let Err(e) = spawned {
            SPAWNED.fetch_sub(1, Ordering::AcqRel);
            crate::ffi::log_warning(&format!("agentic: cannot start classify worker: {e}"));
            break;
        }
    }
    metrics::CLASSIFY_THREADS.set(SPAWNED.load(Ordering::Acquire).min(want) as i64);
}

/// Workers of older generations finish what they hold and exit.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// `classify-worker-priority` changed: new workers take over (started from the main thread, so
/// they begin at the server's own priority and lower themselves), the old ones exit after their
/// current piece of work. Called on the main thread.
pub fn restart_workers() {
    GENERATION.fetch_add(1, Ordering::AcqRel);
    if SPAWNED.swap(0, Ordering::AcqRel) > 0 {
        WORK_READY.notify_all();
        ensure_workers();
    }
}

fn worker(index: usize, generation: u64) {
    crate::ffi::mark_classify_worker();
    // Below the main thread's priority (`classify-worker-priority`): when the pool saturates every
    // core the event loop still gets one as soon as a client needs it.
    if let Err(e) = crate::ffi::set_worker_priority(configs::classify_worker_priority()) {
        metrics::CLASSIFY_PRIORITY_REFUSED.incr();
        crate::ffi::log_warning(&format!("agentic: classify worker keeps its priority: {e}"));
    }
    loop {
        let work = loop {
            if GENERATION.load(Ordering::Acquire) != generation {
                return;
            }
            // Late sidecar batches come back here. Lock order: the sidecar registry, then the
            // queue; never the registry while the queue is held.
            if index == 0 {
                sidecar::sweep();
            }
            // Asked before the queue is locked: AGENT.SIDECAR.NEXT holds the registry while it
            // takes from the queue, so asking with the queue held deadlocked the server.
            let wait = if index == 0 && sidecar::has_inflight() { 50 } else { 500 };
            let mut q = queue();
            if index < configs::classify_threads() {
                if let Some(w) = take_work(&mut q, !sidecar::routing_to_sidecars()) {
                    break w;
                }
            }
            drop(WORK_READY.wait_timeout(q, Duration::from_millis(wait)));
        };
        // A panic must not kill the worker nor leave a client hanging: requests answer when dropped.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match work {
            Taken::Batch(jobs) => run_batch(jobs),
            Taken::Score(pairs) => run_scoring(pairs),
            Taken::Escalated(job, escalation) => run_escalated(job, escalation),
            Taken::Learn(c) => fit_heads(&c),
            Taken::Prepare(c) => {
                // A newer catalog replaced this one while it waited: prepare that one instead.
                let latest = LATEST_CATALOG.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let c = latest.filter(|l| l.id > c.id).unwrap_or(c);
                if let Ok(enc) = model::encoder() {
                    let table = model::static_table();
                    let tiers = [Some(Embedder::Model(&enc)), table.as_deref().map(|t| Embedder::Static(&enc, t))];
                    for tier in tiers.into_iter().flatten() {
                        if let Err(e) = scorer_for(&c, tier) {
                            crate::ffi::log_warning(&format!("agentic: preparing topic vectors failed: {e}"));
                        }
                    }
                }
            }
        }))
        .map_err(|p| {
            metrics::PANICS_CAUGHT.incr();
            crate::ffi::log_warning(&format!("agentic: caught panic in classify worker: {}", crate::ffi::panic_message(&p)));
        });
    }
}

enum Taken {
    Batch(Vec<Box<dyn Job>>),
    Prepare(Arc<Catalog>),
    Score(Vec<(Box<dyn Job>, Vec<f32>)>),
    Escalated(Box<dyn Job>, Escalation),
    Learn(Arc<Catalog>),
}

/// The next piece of work for a CPU worker. With `classify` false (a sidecar is live) queued texts
/// are left for the sidecar; everything else is taken.
fn take_work(q: &mut Queue, classify: bool) -> Option<Taken> {
    let Some(at) = q.work.iter().position(|w| classify || !matches!(w, Work::Classify(_))) else {
        let (job, c) = q.escalated.pop_front()?;
        metrics::CLASSIFY_ESCALATIONS_WAITING.set(q.escalated.len() as i64);
        return Some(Taken::Escalated(job, c));
    };
    let first = q.work.remove(at)?;
    let taken = match first {
        Work::Prepare(c) => Taken::Prepare(c),
        Work::Score(pairs) => Taken::Score(pairs),
        Work::FallBack(jobs) => Taken::Batch(jobs),
        Work::Learn(c) => Taken::Learn(c),
        Work::Classify(job) => {
            let mut jobs = vec![job];
            let static_tier = configs::classify_tier() != ClassifyTier::Model && model::static_table().is_some();
            let max = configs::classify_batch() * if static_tier { STATIC_BATCH_FACTOR } else { 1 };
            while jobs.len() < max {
                match q.work.front() {
                    Some(Work::Classify(_)) => {
                        if let Some(Work::Classify(j)) = q.work.pop_front() {
                            jobs.push(j);
                        }
                    }
                    _ => break,
                }
            }
            q.classify_waiting -= jobs.len();
            metrics::CLASSIFY_QUEUE_DEPTH.set(q.classify_waiting as i64);
            Taken::Batch(jobs)
        }
    };
    Some(taken)
}

static DEBUG_DELAY_MS: AtomicU64 = AtomicU64::new(0);
static DEBUG_PANIC: AtomicBool = AtomicBool::new(false);

pub fn debug_set_delay_ms(ms: u64) {
    DEBUG_DELAY_MS.store(ms, Ordering::Relaxed);
}

pub fn debug_panic_next_batch() {
    DEBUG_PANIC.store(true, Ordering::Relaxed);
}

fn run_batch(jobs: Vec<Box<dyn Job>>) {
    let delay = DEBUG_DELAY_MS.load(Ordering::Relaxed);
    if delay > 0 {
        std::thread::sleep(Duration::from_millis(delay));
    }
    if DEBUG_PANIC.swap(false, Ordering::Relaxed) {
        panic!("deliberate panic requested by AGENT.DEBUG CLASSIFY-PANIC");
    }
    let now = Instant::now();
    // Requests whose client already got its timeout reply are dropped unprocessed.
    let (expired, jobs): (Vec<_>, Vec<_>) = jobs.into_iter().partition(|j| j.expired(now));
    metrics::CLASSIFY_EXPIRED_IN_QUEUE.add(expired.len() as u64);
    drop(expired);
    if jobs.is_empty() {
        return;
    }
    metrics::CLASSIFY_BATCHES.incr();
    metrics::CLASSIFY_BATCH_SIZE.record(jobs.len() as u64);
    let encoder = match model::encoder() {
        Ok(e) => e,
        Err(e) => {
            jobs.into_iter().for_each(|j| j.finish(Err(e.clone())));
            return;
        }
    };
    let texts: Vec<String> = jobs.iter().map(|j| j.text().to_string()).collect();
    let text_refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let choices: Vec<(Arc<Catalog>, Option<Vec<String>>)> =
        jobs.iter().map(|j| (j.catalog().clone(), j.topics().map(<[String]>::to_vec))).collect();
    let started = Instant::now();
    let mut slots: Vec<Option<Box<dyn Job>>> = jobs.into_iter().map(Some).collect();
    // Each request is answered as soon as its own text is done.
    let mut answer = |i: usize, result| {
        if let Some(job) = slots[i].take() {
            job.finish(result);
        }
    };
    match static_tier_in_use() {
        Some(table) => {
            let escalated = static_pass(&encoder, &table, &text_refs, &choices, &mut answer);
            if !escalated.is_empty() {
                let mut q = queue();
                for (i, e) in escalated {
                    if let Some(job) = slots[i].take() {
                        q.escalated.push_back((job, e));
                    }
                }
                metrics::CLASSIFY_ESCALATIONS_WAITING.set(q.escalated.len() as i64);
                drop(q);
                WORK_READY.notify_one();
            }
        }
        None => model_pass(&encoder, &text_refs, &choices, (0..text_refs.len()).map(|i| (i, None)).collect(), &mut answer),
    }
    metrics::CLASSIFY_INFERENCE_US.record(started.elapsed().as_micros() as u64);
}

/// One escalated text on the encoder.
fn run_escalated(job: Box<dyn Job>, escalation: Escalation) {
    if job.expired(Instant::now()) {
        metrics::CLASSIFY_EXPIRED_IN_QUEUE.incr();
        return;
    }
    let encoder = match model::encoder() {
        Ok(e) => e,
        Err(_) => {
            metrics::CLASSIFY_TEXTS.incr();
            metrics::CLASSIFY_TIER_STATIC.incr();
            job.finish(Ok(escalation.answer));
            return;
        }
    };
    let text = job.text().to_string();
    let choices = [(job.catalog().clone(), job.topics().map(<[String]>::to_vec))];
    let mut job = Some(job);
    model_pass(&encoder, &[&text], &choices, vec![(0, Some(escalation))], &mut |_, result| {
        if let Some(j) = job.take() {
            j.finish(result);
        }
    });
}

/// Fits the self-trained heads of `catalog` from the learner's samples.
fn fit_heads(catalog: &Arc<Catalog>) {
    let (Ok(encoder), Some(table)) = (model::encoder(), model::static_table()) else { return };
    // The topics' examples teach the word head too (the vector heads have them through the scorer).
    let max_tokens = configs::classify_static_max_tokens();
    let examples: Vec<(usize, Vec<u32>)> = catalog
        .topics
        .iter()
        .enumerate()
        .flat_map(|(k, t)| t.examples.iter().map(move |e| (k, e)))
        .filter_map(|(k, e)| encoder.tokenize(e, max_tokens).ok().map(|t| (k, word_head::ids_of(&t.ids))))
        .collect();
    learner::fit(
        catalog,
        &examples,
        |pairs, version| build_scorer(catalog, Embedder::Static(&encoder, &table), pairs, learner::fingerprint_tag(version)),
        |pairs, version| build_scorer(catalog, Embedder::Model(&encoder), pairs, learner::fingerprint_tag(version)),
    );
}

/// Scores vectors a sidecar computed and answers their requests as the encoder tier does here:
/// with the self-trained heads when they are fitted, and, in the cascade, the same share of texts
/// teaching them (every text ran on the encoder already, so teaching costs only the static tier's
/// tokenising).
fn run_scoring(pairs: Vec<(Box<dyn Job>, Vec<f32>)>) {
    let encoder = match model::encoder() {
        Ok(e) => e,
        Err(e) => {
            pairs.into_iter().for_each(|(job, _)| job.finish(Err(e.clone())));
            return;
        }
    };
    let table = model::static_table();
    let fingerprints = table.as_deref().map(|t| (encoder.fingerprint, Embedder::Static(&encoder, t).fingerprint()));
    let teaching = match (&table, configs::classify_tier()) {
        (Some(_), ClassifyTier::Cascade) => {
            let learnable: Vec<bool> = pairs.iter().map(|(job, _)| job.topics().is_none()).collect();
            let first = pairs.first().is_some_and(|(job, _)| learner::hungry(job.catalog().id));
            cascade::teaching(&Learning { learnable: &learnable, percent: configs::classify_learn_percent(), first })
        }
        _ => vec![false; pairs.len()],
    };
    let mut scorers: HashMap<u64, Result<Arc<Scorer>, String>> = HashMap::new();
    let mut heads: HashMap<u64, Option<Arc<learner::Heads>>> = HashMap::new();
    let mut fits = Vec::new();
    for ((job, mut vector), teach) in pairs.into_iter().zip(teaching) {
        super::encoder::normalize(&mut vector);
        let catalog = job.catalog().clone();
        let base = scorers.entry(catalog.id).or_insert_with(|| scorer_for(&catalog, Embedder::Model(&encoder))).clone();
        let head = heads.entry(catalog.id).or_insert_with(|| fingerprints.and_then(|f| learner::heads(catalog.id, f))).clone();
        let word_head = head.as_ref().and_then(|h| h.word_head.as_deref()).filter(|_| configs::classify_word_weight() > 0.0);
        // The static tier's tokens, for the word head and for a teaching sample's static vector.
        let tokens =
            (teach || word_head.is_some()).then(|| encoder.tokenize(job.text(), configs::classify_static_max_tokens()).ok()).flatten();
        let words = tokens.as_ref().map(|t| word_head::ids_of(&t.ids));
        let extra = words.as_deref().and_then(|w| word_scores(word_head, w));
        let teach = match (teach, &table, &tokens, words) {
            (true, Some(table), Some(tokens), Some(words)) => Some((table.embed(&tokens.ids), words)),
            _ => None,
        };
        let topics = job.topics().map(<[String]>::to_vec);
        let encoded = Encoded { catalog: &catalog, topics: topics.as_deref(), vector, extra, teach };
        let (result, fit) = answer_encoded(encoded, base, head.as_ref(), fingerprints);
        if fit {
            fits.push(catalog.clone());
        }
        job.finish(result);
    }
    schedule_fits(fits);
}

/// Queues a refit of the heads for each catalog whose learner asked for one.
pub(super) fn schedule_fits(fits: Vec<Arc<Catalog>>) {
    if fits.is_empty() {
        return;
    }
    ensure_workers();
    let mut q = queue();
    fits.into_iter().for_each(|c| q.work.push_back(Work::Learn(c)));
    drop(q);
    WORK_READY.notify_one();
}

pub fn queue_depth() -> usize {
    queue().classify_waiting
}
