//! The classification pool: `classify-threads` workers take requests from one queue, run the
//! model and answer their blocked clients. A worker takes every request waiting (up to
//! `classify-batch`) at once: texts are tokenised, sorted by length and run in padded batches, so
//! concurrent callers share forward passes without paying for much padding.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::catalog::Catalog;
use super::encoder::Encoder;
use super::scorer::{self, Scorer};
use super::{model, sidecar, Classification};
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
}

struct Queue {
    work: VecDeque<Work>,
    classify_waiting: usize,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue { work: VecDeque::new(), classify_waiting: 0 });
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

fn remember_catalog(c: &Arc<Catalog>) {
    let mut latest = LATEST_CATALOG.lock().unwrap_or_else(|p| p.into_inner());
    if latest.as_ref().is_none_or(|l| l.id != c.id) {
        *latest = Some(c.clone());
    }
}

/// Starts workers up to `classify-threads`. Workers above a lowered setting idle, so the setting
/// can change at runtime.
fn ensure_workers() {
    let want = configs::classify_threads();
    while SPAWNED.load(Ordering::Acquire) < want {
        let index = SPAWNED.fetch_add(1, Ordering::AcqRel);
        if index >= want {
            SPAWNED.fetch_sub(1, Ordering::AcqRel);
            break;
        }
        let spawned = std::thread::Builder::new().name(format!("agentic-classify-{index}")).spawn(move || worker(index));
        if let Err(e) = spawned {
            SPAWNED.fetch_sub(1, Ordering::AcqRel);
            crate::ffi::log_warning(&format!("agentic: cannot start classify worker: {e}"));
            break;
        }
    }
    metrics::CLASSIFY_THREADS.set(SPAWNED.load(Ordering::Acquire).min(want) as i64);
}

/// Workers run below the main thread's priority: when the pool saturates every core, the event
/// loop still gets a core as soon as a client needs it (PING stays fast while classifying).
const WORKER_NICE: i32 = 10;

fn worker(index: usize) {
    crate::ffi::lower_thread_priority(WORKER_NICE);
    loop {
        let work = loop {
            // Late sidecar batches come back here; the registry's lock is never taken while the
            // queue's is held.
            if index == 0 {
                sidecar::sweep();
            }
            let mut q = queue();
            if index < configs::classify_threads() {
                if let Some(w) = take_work(&mut q, !sidecar::routing_to_sidecars()) {
                    break w;
                }
            }
            let wait = if index == 0 && sidecar::has_inflight() { 50 } else { 500 };
            drop(WORK_READY.wait_timeout(q, Duration::from_millis(wait)));
        };
        // A panic must not kill the worker nor leave a client hanging: requests answer when dropped.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match work {
            Taken::Batch(jobs) => run_batch(jobs),
            Taken::Score(pairs) => run_scoring(pairs),
            Taken::Prepare(c) => {
                // A newer catalog replaced this one while it waited: prepare that one instead.
                let latest = LATEST_CATALOG.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let c = latest.filter(|l| l.id > c.id).unwrap_or(c);
                if let Ok(enc) = model::encoder() {
                    if let Err(e) = scorer_for(&c, &enc) {
                        crate::ffi::log_warning(&format!("agentic: preparing topic vectors failed: {e}"));
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
}

/// The next piece of work for a CPU worker. With `classify` false (a sidecar is live) queued texts
/// are left for the sidecar; everything else is taken.
fn take_work(q: &mut Queue, classify: bool) -> Option<Taken> {
    let at = q.work.iter().position(|w| classify || !matches!(w, Work::Classify(_)))?;
    let first = q.work.remove(at)?;
    let taken = match first {
        Work::Prepare(c) => Taken::Prepare(c),
        Work::Score(pairs) => Taken::Score(pairs),
        Work::FallBack(jobs) => Taken::Batch(jobs),
        Work::Classify(job) => {
            let mut jobs = vec![job];
            let max = configs::classify_batch();
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
    let texts: Vec<String> = jobs.iter().map(|j| j.text().to_string()).collect();
    let text_refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let choices: Vec<(Arc<Catalog>, Option<Vec<String>>)> =
        jobs.iter().map(|j| (j.catalog().clone(), j.topics().map(<[String]>::to_vec))).collect();
    let started = Instant::now();
    let mut slots: Vec<Option<Box<dyn Job>>> = jobs.into_iter().map(Some).collect();
    // Each request is answered as soon as its own text is done.
    classify_each(&text_refs, &choices, |i, result| {
        if let Some(job) = slots[i].take() {
            job.finish(result);
        }
    });
    metrics::CLASSIFY_INFERENCE_US.record(started.elapsed().as_micros() as u64);
}

/// Scores vectors a sidecar computed and answers their requests.
fn run_scoring(pairs: Vec<(Box<dyn Job>, Vec<f32>)>) {
    let encoder = match model::encoder() {
        Ok(e) => e,
        Err(e) => {
            pairs.into_iter().for_each(|(job, _)| job.finish(Err(e.clone())));
            return;
        }
    };
    let mut scorers: HashMap<u64, Result<Arc<Scorer>, String>> = HashMap::new();
    for (job, mut vector) in pairs {
        super::encoder::normalize(&mut vector);
        let scorer = scorers.entry(job.catalog().id).or_insert_with(|| scorer_for(job.catalog(), &encoder)).clone();
        metrics::CLASSIFY_TEXTS.incr();
        let topics = job.topics().map(<[String]>::to_vec);
        let result = scorer.map(|s| rank(&s, &vector, topics.as_deref()));
        job.finish(result);
    }
}

/// Classifies texts, each against its own catalog and topic subset, sharing forward passes. Used by
/// the workers and, for MULTI and Lua, inline on the main thread.
pub fn classify_texts(texts: &[&str], choices: Vec<(Arc<Catalog>, Option<Vec<String>>)>) -> Vec<Result<Classification, String>> {
    let mut out: Vec<Option<Result<Classification, String>>> = texts.iter().map(|_| None).collect();
    classify_each(texts, &choices, |i, r| out[i] = Some(r));
    out.into_iter().map(|r| r.unwrap_or_else(|| Err("no result".into()))).collect()
}

/// Hands each text's result to `done(index, result)` as soon as it is known, every index once.
pub fn classify_each(
    texts: &[&str],
    choices: &[(Arc<Catalog>, Option<Vec<String>>)],
    mut done: impl FnMut(usize, Result<Classification, String>),
) {
    let mut answered = vec![false; texts.len()];
    let mut answer = |i: usize, r: Result<Classification, String>, answered: &mut Vec<bool>| {
        if !answered[i] {
            answered[i] = true;
            done(i, r);
        }
    };
    let encoder = match model::encoder() {
        Ok(e) => e,
        Err(e) => {
            (0..texts.len()).for_each(|i| answer(i, Err(e.clone()), &mut answered));
            return;
        }
    };
    let max_tokens = configs::classify_max_tokens();
    let mut tokens = Vec::with_capacity(texts.len());
    let mut index = Vec::with_capacity(texts.len());
    for (i, t) in texts.iter().enumerate() {
        match encoder.tokenize(t, max_tokens) {
            Ok(tok) => {
                metrics::CLASSIFY_TOKENS.add(tok.len() as u64);
                tokens.push(tok);
                index.push(i);
            }
            Err(e) => answer(i, Err(e), &mut answered),
        }
    }
    let mut scorers: HashMap<u64, Result<Arc<Scorer>, String>> = HashMap::new();
    let outcome = encoder.embed_each(tokens, configs::classify_batch(), configs::classify_length_plans(), |k, vector| {
        let i = index[k];
        let (catalog, topics) = &choices[i];
        let scorer = scorers.entry(catalog.id).or_insert_with(|| scorer_for(catalog, &encoder)).clone();
        metrics::CLASSIFY_TEXTS.incr();
        answer(i, scorer.map(|s| rank(&s, &vector, topics.as_deref())), &mut answered);
    });
    let failure = outcome.err().unwrap_or_else(|| "no result".into());
    (0..texts.len()).for_each(|i| answer(i, Err(failure.clone()), &mut answered));
}

fn rank(scorer: &Scorer, vector: &[f32], topics: Option<&[String]>) -> Classification {
    let mut scores: Vec<(String, f32)> = scorer
        .slugs
        .iter()
        .zip(scorer.scores(vector))
        .filter(|(slug, _)| topics.is_none_or(|t| t.contains(slug)))
        .map(|(slug, s)| (slug.clone(), s))
        .collect();
    scores.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Classification { best: scores.first().map(|s| s.0.clone()).unwrap_or_default(), scores }
}

// Topic vectors: the embedding of every description sentence and example, cached per text and
// model, and the scorer built from them, cached per catalog.

/// The most recently built scorers, newest first (a few, so concurrent catalogs do not evict each
/// other while a change propagates).
static SCORERS: Mutex<Vec<Arc<Scorer>>> = Mutex::new(Vec::new());
const MAX_SCORERS: usize = 4;
static TEXT_VECTORS: Mutex<Option<HashMap<u64, Arc<Vec<f32>>>>> = Mutex::new(None);
const MAX_CACHED_TEXT_VECTORS: usize = 200_000;

fn text_key(fingerprint: u64, text: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(text.as_bytes(), fingerprint)
}

pub fn scorer_for(catalog: &Arc<Catalog>, encoder: &Encoder) -> Result<Arc<Scorer>, String> {
    if let Some(s) = cached_scorer(catalog.id, encoder.fingerprint) {
        return Ok(s);
    }
    let texts = scorer::texts_of(catalog);
    let missing: Vec<&str> = {
        let cache = TEXT_VECTORS.lock().unwrap_or_else(|p| p.into_inner());
        let mut seen = std::collections::HashSet::new();
        texts
            .iter()
            .copied()
            .filter(|t| seen.insert(*t) && cache.as_ref().is_none_or(|c| !c.contains_key(&text_key(encoder.fingerprint, t))))
            .collect()
    };
    if !missing.is_empty() {
        let vectors =
            encoder.embed_texts(&missing, configs::classify_max_tokens(), configs::classify_batch(), configs::classify_length_plans())?;
        metrics::TOPIC_TEXTS_EMBEDDED.add(missing.len() as u64);
        let mut cache = TEXT_VECTORS.lock().unwrap_or_else(|p| p.into_inner());
        let cache = cache.get_or_insert_with(HashMap::new);
        if cache.len() + missing.len() > MAX_CACHED_TEXT_VECTORS {
            cache.clear();
        }
        for (t, v) in missing.iter().zip(vectors) {
            cache.insert(text_key(encoder.fingerprint, t), Arc::new(v));
        }
    }
    let scorer = {
        let cache = TEXT_VECTORS.lock().unwrap_or_else(|p| p.into_inner());
        let lookup = |t: &str| cache.as_ref().and_then(|c| c.get(&text_key(encoder.fingerprint, t))).map(|v| v.as_ref().clone());
        Arc::new(Scorer::build(catalog, encoder.fingerprint, encoder.dim, lookup)?)
    };
    {
        let mut scorers = SCORERS.lock().unwrap_or_else(|p| p.into_inner());
        scorers.retain(|s| s.catalog_id != catalog.id);
        scorers.insert(0, scorer.clone());
        scorers.truncate(MAX_SCORERS);
    }
    remember_catalog(catalog);
    Ok(scorer)
}

fn cached_scorer(catalog_id: u64, fingerprint: u64) -> Option<Arc<Scorer>> {
    SCORERS.lock().unwrap_or_else(|p| p.into_inner()).iter().find(|s| s.catalog_id == catalog_id && s.fingerprint == fingerprint).cloned()
}

/// Whether a catalog's topic vectors are computed (AGENT.TOPIC.LIST shows it).
pub fn is_prepared(catalog: &Catalog) -> bool {
    let Ok(enc) = model::encoder() else { return false };
    cached_scorer(catalog.id, enc.fingerprint).is_some()
}

pub fn queue_depth() -> usize {
    queue().classify_waiting
}
