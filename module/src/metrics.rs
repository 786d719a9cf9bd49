//! Every counter, gauge and histogram of the module. INFO and AGENT.STATS both render
//! [`snapshot`], so the two can never disagree.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Self {
        Counter(AtomicU64::new(0))
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn incr(&self) {
        self.add(1)
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

pub struct Gauge(AtomicI64);

impl Gauge {
    pub const fn new() -> Self {
        Gauge(AtomicI64::new(0))
    }
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn set(&self, n: i64) {
        self.0.store(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Log-linear histogram of microseconds: 8 sub-buckets per power of two (<= 12.5% error).
pub struct Histogram {
    buckets: [AtomicU64; Self::BUCKETS],
    count: AtomicU64,
    max: AtomicU64,
}

impl Histogram {
    const SUB: u32 = 8;
    const BUCKETS: usize = 62 * Self::SUB as usize;

    pub const fn new() -> Self {
        Histogram { buckets: [const { AtomicU64::new(0) }; Self::BUCKETS], count: AtomicU64::new(0), max: AtomicU64::new(0) }
    }

    fn index(v: u64) -> usize {
        if v < Self::SUB as u64 {
            return v as usize;
        }
        let exp = 63 - v.leading_zeros();
        let sub = (v >> (exp - 3)) & (Self::SUB as u64 - 1);
        ((exp - 2) * Self::SUB + sub as u32) as usize
    }

    /// Upper bound of a bucket, so percentiles never under-report.
    fn upper(i: usize) -> u64 {
        let sub = Self::SUB as usize;
        if i < sub {
            return i as u64;
        }
        let exp = (i / sub) as u32 + 2;
        let base = 1u128 << exp;
        let upper = base + ((i % sub) as u128 + 1) * (base / Self::SUB as u128) - 1;
        upper.min(u64::MAX as u128) as u64
    }

    pub fn record(&self, v: u64) {
        self.buckets[Self::index(v).min(Self::BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.max.fetch_max(v, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    pub fn percentile(&self, p: f64) -> u64 {
        let total = self.count();
        if total == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                return Self::upper(i).min(self.max());
            }
        }
        self.max()
    }
}

// Fan-out
pub static FANOUT_CALLS: Counter = Counter::new();
pub static FANOUT_DELIVERIES: Counter = Counter::new();
pub static FANOUT_DUPLICATES: Counter = Counter::new();
/// Users the subscriber index listed who no longer exist or no longer follow the topic; the index
/// is repaired as they are met.
pub static FANOUT_STALE_SUBSCRIBERS: Counter = Counter::new();
/// Explicit user keys holding another type: skipped, never overwritten.
pub static FANOUT_WRONGTYPE_SKIPPED: Counter = Counter::new();
pub static FANOUT_SLICES: Counter = Counter::new();
pub static FANOUT_BLOCKED_CALLS: Counter = Counter::new();
pub static FANOUT_JOBS_PENDING: Gauge = Gauge::new();
pub static FANOUT_LATENCY_US: Histogram = Histogram::new();
pub static FANOUT_SLICE_US: Histogram = Histogram::new();
/// Time a blocked fan-out waits between two of its slices while the event loop serves others.
pub static FANOUT_SLICE_GAP_US: Histogram = Histogram::new();
/// Main-thread time of each pipeline tick (reading news_raw, taking classified articles, starting
/// their fan-outs, acks); fan-out slices are `FANOUT_SLICE_US`.
pub static PIPELINE_TICK_US: Histogram = Histogram::new();
pub static FEED_EVICTIONS: Counter = Counter::new();
/// Fan-out slices put off because the server had paused writes (CLIENT PAUSE WRITE, failover).
pub static FANOUT_PAUSED_SLICES: Counter = Counter::new();
/// Expected number of new documents wrongly skipped by the Bloom seen-filters, in millionths
/// (sum of each delivery's false-positive probability at the time of its check).
pub static SEEN_FP_EXPECTED_MICRO: Counter = Counter::new();

// Topic streams
pub static STREAM_APPENDS: Counter = Counter::new();
pub static STREAM_TRIMMED: Counter = Counter::new();
/// Entries kept over topic-maxlen because a consumer group had not processed them yet.
pub static STREAM_TRIM_DEFERRED: Counter = Counter::new();
pub static STREAM_FORCED_DROPS: Counter = Counter::new();

// Subscriptions and feeds
pub static SUBSCRIBE_CALLS: Counter = Counter::new();
pub static UNSUBSCRIBE_CALLS: Counter = Counter::new();
pub static FEED_READS: Counter = Counter::new();
pub static FEED_BLOCKED_READS: Counter = Counter::new();
pub static FEED_READ_TIMEOUTS: Counter = Counter::new();
/// User keys whose blocked readers were woken in a later event-loop iteration than the write that
/// made them ready (`feed-wake-batch` keys per iteration).
pub static FEED_WAKEUPS_DEFERRED: Counter = Counter::new();
pub static FEED_MISSING_DOCS: Counter = Counter::new();
/// Cluster mode: feed entries whose document lives in another slot than the user's, answered
/// with a nil body (a command may only read keys of its own slot; clients fetch those documents
/// from their owners).
pub static FEED_DOCS_ELSEWHERE: Counter = Counter::new();

// Shared topic timelines (timeline.rs): articles appended once for all of a large topic's followers.
pub static TIMELINE_APPENDS: Counter = Counter::new();
/// Articles a topic's timeline already had within seen-ttl (sent again): not appended.
pub static TIMELINE_DUPLICATES: Counter = Counter::new();
/// Followers reached through shared appends (the deliveries they stand for).
pub static TIMELINE_FOLLOWERS_REACHED: Counter = Counter::new();
pub static TIMELINE_ENTRIES: Gauge = Gauge::new();
/// Shared appends that could not be made (agentic:timelines holds another type): the article
/// went to every follower's feed instead.
pub static TIMELINE_FALLBACKS: Counter = Counter::new();
/// Shared entries AGENT.FEED returned, and those it left out because the user's own feed has the document.
pub static FEED_SHARED_ENTRIES: Counter = Counter::new();
pub static FEED_SHARED_SKIPPED: Counter = Counter::new();

// Cluster
/// Users of slots being imported by atomic slot migration, left to the source node by fan-outs.
pub static CLUSTER_IMPORTING_SKIPPED: Counter = Counter::new();
/// Index entries dropped because their slot was exported or its import aborted.
pub static CLUSTER_SLOT_USERS_FORGOTTEN: Counter = Counter::new();
pub static CLUSTER_MIGRATION_EVENTS: Counter = Counter::new();
/// Cluster pipeline: articles the ingest node sent; articles this node applied, and applied again
/// (sent again after a lost message or acknowledgement, a failover or a moved slot); messages
/// sent over the bus and their bytes; sends the server refused (link down: re-sent later);
/// NACKs sent (an article arrived out of sequence); articles sent again; acknowledgements sent,
/// and sent without the replicas confirming within cluster-ack-wait-ms; messages that did not
/// decode; stream entries appended with a new id because the stream had moved past theirs.
pub static CLUSTER_ARTICLES_SENT: Counter = Counter::new();
pub static CLUSTER_ARTICLES_APPLIED: Counter = Counter::new();
pub static CLUSTER_ARTICLES_REAPPLIED: Counter = Counter::new();
pub static CLUSTER_BUS_MESSAGES: Counter = Counter::new();
pub static CLUSTER_BUS_BYTES: Counter = Counter::new();
pub static CLUSTER_BUS_SEND_FAILURES: Counter = Counter::new();
pub static CLUSTER_NACKS_SENT: Counter = Counter::new();
pub static CLUSTER_RESENDS: Counter = Counter::new();
pub static CLUSTER_ACKS_SENT: Counter = Counter::new();
pub static CLUSTER_ACKS_UNCONFIRMED: Counter = Counter::new();
/// Topic catalogs received from the catalog's primary by a node that does not serve its slot.
pub static CATALOG_COPIES_RECEIVED: Counter = Counter::new();
/// Acknowledgements not sent because this node was no longer a primary when they were due (a
/// primary restarted from disk and demoted when it learnt its replica had taken over): whatever
/// it applied is wiped by its resync, so the sender must re-send to the new primary.
pub static CLUSTER_ACKS_DROPPED_DEMOTED: Counter = Counter::new();
pub static CLUSTER_MESSAGES_MALFORMED: Counter = Counter::new();
pub static CLUSTER_STREAM_REORDERED: Counter = Counter::new();
pub static CLUSTER_OUTSTANDING: Gauge = Gauge::new();
/// Articles the ingest node waits for: some slots not acknowledged, the document or the stream
/// entry not written yet.
pub static CLUSTER_WAITING_SLOTS: Gauge = Gauge::new();
pub static CLUSTER_WAITING_DOCUMENT: Gauge = Gauge::new();
pub static CLUSTER_WAITING_STREAM: Gauge = Gauge::new();
/// Users that arrived from another node (resharding) or with a completed import, caught up with
/// the articles applied here meanwhile; feed entries written so; log entries dropped while a
/// sender could still need them (the log's bound was reached).
pub static CLUSTER_CATCHUP_USERS: Counter = Counter::new();
pub static CLUSTER_CATCHUP_DELIVERIES: Counter = Counter::new();
pub static CLUSTER_CATCHUP_LOG_OVERFLOW: Counter = Counter::new();

// Memory and health
/// Estimated bytes held by user values (feeds, seen filters, interests).
pub static USER_BYTES: Gauge = Gauge::new();
pub static USER_KEYS: Gauge = Gauge::new();
/// Sidecars: live now; batches and texts handed to them; batches that timed out (or whose
/// sidecar stopped calling) or that a sidecar reported failed; texts handed back to the CPU pool;
/// results for batches no longer waiting.
pub static SIDECARS_LIVE: Gauge = Gauge::new();
pub static SIDECAR_BATCHES: Counter = Counter::new();
pub static SIDECAR_TEXTS: Counter = Counter::new();
pub static SIDECAR_TIMEOUTS: Counter = Counter::new();
pub static SIDECAR_FAILURES: Counter = Counter::new();
pub static SIDECAR_FALLBACKS: Counter = Counter::new();
pub static SIDECAR_LATE_RESULTS: Counter = Counter::new();
/// Delivery announcements published on `delivery-channel` (one per fan-out slice) and their bytes.
pub static DELIVERY_MESSAGES: Counter = Counter::new();
pub static DELIVERY_MESSAGE_BYTES: Counter = Counter::new();
/// Announcements not published because this cluster primary served no slot to name its shard
/// channel by (a node that owns no slot has no subscribers to announce to).
pub static DELIVERY_MESSAGES_UNROUTED: Counter = Counter::new();
/// Of `DELIVERY_MESSAGES`, those announcing a user's new interests.
pub static DELIVERY_INTEREST_MESSAGES: Counter = Counter::new();
pub static PANICS_CAUGHT: Counter = Counter::new();
pub static LOAD_ERRORS: Counter = Counter::new();

// Classification
pub static CLASSIFY_CALLS: Counter = Counter::new();
/// Computed on the main thread because the caller could not block (MULTI, Lua).
pub static CLASSIFY_INLINE_CALLS: Counter = Counter::new();
pub static CLASSIFY_FAILURES: Counter = Counter::new();
pub static CLASSIFY_TIMEOUTS: Counter = Counter::new();
/// Refused because `classify-queue-max` requests were already waiting.
pub static CLASSIFY_REJECTED: Counter = Counter::new();
/// Timed-out requests a worker found in the queue and skipped.
pub static CLASSIFY_EXPIRED_IN_QUEUE: Counter = Counter::new();
pub static CLASSIFY_QUEUE_DEPTH: Gauge = Gauge::new();
pub static CLASSIFY_THREADS: Gauge = Gauge::new();
/// Classify workers the kernel did not let take `classify-worker-priority`.
pub static CLASSIFY_PRIORITY_REFUSED: Counter = Counter::new();
pub static CLASSIFY_BATCHES: Counter = Counter::new();
pub static CLASSIFY_TEXTS: Counter = Counter::new();
pub static CLASSIFY_TOKENS: Counter = Counter::new();
/// Requests per worker batch (a count, not microseconds).
pub static CLASSIFY_BATCH_SIZE: Histogram = Histogram::new();
/// From the call to the answer.
pub static CLASSIFY_LATENCY_US: Histogram = Histogram::new();
/// Model time per worker batch.
pub static CLASSIFY_INFERENCE_US: Histogram = Histogram::new();
/// Texts answered by each tier (see classify/cascade.rs).
pub static CLASSIFY_TIER_STATIC: Counter = Counter::new();
pub static CLASSIFY_TIER_MODEL: Counter = Counter::new();
/// Texts the cascade sent from the static tier to the encoder.
pub static CLASSIFY_ESCALATIONS: Counter = Counter::new();
/// Texts below the escalation threshold answered by the static tier because the budget was spent.
pub static CLASSIFY_ESCALATIONS_OVER_BUDGET: Counter = Counter::new();
/// Teaching samples the learner received, kept now, fits of the self-trained heads and the
/// version of the heads in use (learner.rs).
pub static CLASSIFY_LEARN_SAMPLES: Counter = Counter::new();
pub static CLASSIFY_LEARN_SAMPLES_KEPT: Gauge = Gauge::new();
pub static CLASSIFY_HEAD_FITS: Counter = Counter::new();
pub static CLASSIFY_HEAD_FIT_FAILURES: Counter = Counter::new();
pub static CLASSIFY_HEAD_VERSION: Gauge = Gauge::new();
/// Samples the heads in use were fitted on, how long the last fit took, and 1 while one runs.
pub static CLASSIFY_HEAD_SAMPLES: Gauge = Gauge::new();
pub static CLASSIFY_HEAD_FIT_MS: Gauge = Gauge::new();
pub static CLASSIFY_HEAD_FITTING: Gauge = Gauge::new();
/// Words and word pairs the word head in use weighs (classify/word_head.rs); 0 without one.
pub static CLASSIFY_HEAD_WORDS: Gauge = Gauge::new();
/// Heads written to agentic:heads, installed from it, found fitted for another catalog or model,
/// and refused as damaged (heads_sync.rs).
pub static CLASSIFY_HEADS_PUBLISHED: Counter = Counter::new();
pub static CLASSIFY_HEADS_LOADED: Counter = Counter::new();
pub static CLASSIFY_HEADS_STALE: Counter = Counter::new();
pub static CLASSIFY_HEADS_IGNORED: Counter = Counter::new();
/// Escalated texts waiting for the encoder.
pub static CLASSIFY_ESCALATIONS_WAITING: Gauge = Gauge::new();
/// The static tier's top-2 margins in the cascade, x 10,000 (a cosine difference of 0.01 is 100).
pub static CLASSIFY_STATIC_MARGIN_E4: Histogram = Histogram::new();
/// Current escalation threshold on that margin, x 10,000 (-1: every text or none).
pub static CLASSIFY_ESCALATION_THRESHOLD_E4: Gauge = Gauge::new();
/// Current escalation budget in texts per second (-1: not limited yet).
pub static CLASSIFY_ESCALATION_RATE_PER_SEC: Gauge = Gauge::new();
/// The encoder's running cost per text on one thread, in microseconds.
pub static CLASSIFY_MODEL_US_PER_TEXT: Gauge = Gauge::new();
/// Description sentences and examples embedded to build topic vectors.
pub static TOPIC_TEXTS_EMBEDDED: Counter = Counter::new();
pub static TOPIC_WRITES: Counter = Counter::new();
pub static MODEL_LOADS: Counter = Counter::new();
pub static MODEL_LOAD_FAILURES: Counter = Counter::new();
pub static MODEL_LOAD_MS: Gauge = Gauge::new();
/// Fixed-length plans built for the loaded model (see `classify-length-plans`).
pub static MODEL_LENGTH_PLANS: Gauge = Gauge::new();

// Pipeline (news_raw -> classify -> fan-out)
pub static PIPELINE_READ: Counter = Counter::new();
pub static PIPELINE_CLASSIFIED: Counter = Counter::new();
/// Articles fanned out and acknowledged.
pub static PIPELINE_DELIVERED: Counter = Counter::new();
/// Feed entries written by pipeline fan-outs.
pub static PIPELINE_DELIVERIES: Counter = Counter::new();
pub static PIPELINE_ACKED: Counter = Counter::new();
/// Entries without a usable id, title or text (acknowledged and skipped, logged with the reason).
pub static PIPELINE_MALFORMED: Counter = Counter::new();
/// Entries left pending to be redone (model not ready, queue full, worker failure).
pub static PIPELINE_RETRIES: Counter = Counter::new();
/// Pipeline ticks that used their `pipeline-slice-us` with work left, which went on in the next
/// event-loop iteration.
pub static PIPELINE_SLICE_YIELDS: Counter = Counter::new();
/// Redone entries (after a restart or failover) given the topic an earlier attempt recorded.
pub static PIPELINE_ROUTES_REUSED: Counter = Counter::new();
pub static PIPELINE_FAILURES: Counter = Counter::new();
pub static PIPELINE_INFLIGHT: Gauge = Gauge::new();
/// Entries of news_raw not yet finished by the group (unread + pending).
pub static PIPELINE_BACKLOG: Gauge = Gauge::new();
/// From the XADD into news_raw (its entry id) to the acknowledgement after fan-out, in ms.
pub static PIPELINE_LAG_MS: Histogram = Histogram::new();

pub enum Value {
    Int(i64),
    Float(f64),
}

/// Every metric as (name, value), in a stable order. Per-topic subscriber counts are appended by
/// the caller from the index.
/// Share of the cascade's texts (those the static tier scored) that went to the encoder, in 1/1000.
fn escalated_permille() -> i64 {
    let escalated = CLASSIFY_ESCALATIONS.get();
    let scored = CLASSIFY_TIER_STATIC.get() + escalated;
    (escalated * 1000).checked_div(scored).unwrap_or(0) as i64
}

pub fn snapshot() -> Vec<(String, Value)> {
    use Value::*;
    let c = |c: &Counter| Int(c.get() as i64);
    let mut v: Vec<(String, Value)> = vec![
        ("fanout_calls".into(), c(&FANOUT_CALLS)),
        ("fanout_deliveries".into(), c(&FANOUT_DELIVERIES)),
        ("fanout_duplicates_skipped".into(), c(&FANOUT_DUPLICATES)),
        ("fanout_stale_subscribers".into(), c(&FANOUT_STALE_SUBSCRIBERS)),
        ("fanout_wrongtype_skipped".into(), c(&FANOUT_WRONGTYPE_SKIPPED)),
        ("fanout_slices".into(), c(&FANOUT_SLICES)),
        ("fanout_blocked_calls".into(), c(&FANOUT_BLOCKED_CALLS)),
        ("fanout_jobs_pending".into(), Int(FANOUT_JOBS_PENDING.get())),
        ("feed_evictions".into(), c(&FEED_EVICTIONS)),
        ("fanout_paused_slices".into(), c(&FANOUT_PAUSED_SLICES)),
        ("seen_false_positive_expected".into(), Float(SEEN_FP_EXPECTED_MICRO.get() as f64 / 1e6)),
        ("stream_appends".into(), c(&STREAM_APPENDS)),
        ("stream_trimmed".into(), c(&STREAM_TRIMMED)),
        ("stream_trim_deferred".into(), c(&STREAM_TRIM_DEFERRED)),
        ("stream_forced_drops".into(), c(&STREAM_FORCED_DROPS)),
        ("subscribe_calls".into(), c(&SUBSCRIBE_CALLS)),
        ("unsubscribe_calls".into(), c(&UNSUBSCRIBE_CALLS)),
        ("feed_reads".into(), c(&FEED_READS)),
        ("feed_blocked_reads".into(), c(&FEED_BLOCKED_READS)),
        ("feed_read_timeouts".into(), c(&FEED_READ_TIMEOUTS)),
        ("feed_wakeups_deferred".into(), c(&FEED_WAKEUPS_DEFERRED)),
        ("feed_missing_docs".into(), c(&FEED_MISSING_DOCS)),
        ("feed_docs_elsewhere".into(), c(&FEED_DOCS_ELSEWHERE)),
        ("feed_shared_entries".into(), c(&FEED_SHARED_ENTRIES)),
        ("feed_shared_skipped".into(), c(&FEED_SHARED_SKIPPED)),
        ("timeline_appends".into(), c(&TIMELINE_APPENDS)),
        ("timeline_duplicates".into(), c(&TIMELINE_DUPLICATES)),
        ("timeline_followers_reached".into(), c(&TIMELINE_FOLLOWERS_REACHED)),
        ("timeline_entries".into(), Int(TIMELINE_ENTRIES.get())),
        ("timeline_fallbacks".into(), c(&TIMELINE_FALLBACKS)),
        ("cluster_importing_skipped".into(), c(&CLUSTER_IMPORTING_SKIPPED)),
        ("cluster_slot_users_forgotten".into(), c(&CLUSTER_SLOT_USERS_FORGOTTEN)),
        ("cluster_migration_events".into(), c(&CLUSTER_MIGRATION_EVENTS)),
        ("cluster_articles_sent".into(), c(&CLUSTER_ARTICLES_SENT)),
        ("cluster_articles_applied".into(), c(&CLUSTER_ARTICLES_APPLIED)),
        ("cluster_articles_reapplied".into(), c(&CLUSTER_ARTICLES_REAPPLIED)),
        ("cluster_bus_messages".into(), c(&CLUSTER_BUS_MESSAGES)),
        ("cluster_bus_bytes".into(), c(&CLUSTER_BUS_BYTES)),
        ("cluster_bus_send_failures".into(), c(&CLUSTER_BUS_SEND_FAILURES)),
        ("cluster_nacks_sent".into(), c(&CLUSTER_NACKS_SENT)),
        ("cluster_resends".into(), c(&CLUSTER_RESENDS)),
        ("cluster_acks_sent".into(), c(&CLUSTER_ACKS_SENT)),
        ("cluster_acks_unconfirmed".into(), c(&CLUSTER_ACKS_UNCONFIRMED)),
        ("catalog_copies_received".into(), c(&CATALOG_COPIES_RECEIVED)),
        ("cluster_acks_dropped_demoted".into(), c(&CLUSTER_ACKS_DROPPED_DEMOTED)),
        ("cluster_messages_malformed".into(), c(&CLUSTER_MESSAGES_MALFORMED)),
        ("cluster_stream_reordered".into(), c(&CLUSTER_STREAM_REORDERED)),
        ("cluster_outstanding".into(), Int(CLUSTER_OUTSTANDING.get())),
        ("cluster_waiting_slots".into(), Int(CLUSTER_WAITING_SLOTS.get())),
        ("cluster_waiting_document".into(), Int(CLUSTER_WAITING_DOCUMENT.get())),
        ("cluster_waiting_stream".into(), Int(CLUSTER_WAITING_STREAM.get())),
        ("cluster_catchup_users".into(), c(&CLUSTER_CATCHUP_USERS)),
        ("cluster_catchup_deliveries".into(), c(&CLUSTER_CATCHUP_DELIVERIES)),
        ("cluster_catchup_log_overflow".into(), c(&CLUSTER_CATCHUP_LOG_OVERFLOW)),
        ("user_keys".into(), Int(USER_KEYS.get())),
        ("user_bytes".into(), Int(USER_BYTES.get())),
        ("classify_calls".into(), c(&CLASSIFY_CALLS)),
        ("classify_inline_calls".into(), c(&CLASSIFY_INLINE_CALLS)),
        ("classify_failures".into(), c(&CLASSIFY_FAILURES)),
        ("classify_timeouts".into(), c(&CLASSIFY_TIMEOUTS)),
        ("classify_rejected".into(), c(&CLASSIFY_REJECTED)),
        ("classify_expired_in_queue".into(), c(&CLASSIFY_EXPIRED_IN_QUEUE)),
        ("classify_queue_depth".into(), Int(CLASSIFY_QUEUE_DEPTH.get())),
        ("classify_threads".into(), Int(CLASSIFY_THREADS.get())),
        ("classify_priority_refused".into(), c(&CLASSIFY_PRIORITY_REFUSED)),
        ("classify_batches".into(), c(&CLASSIFY_BATCHES)),
        ("classify_texts".into(), c(&CLASSIFY_TEXTS)),
        ("classify_tokens".into(), c(&CLASSIFY_TOKENS)),
        ("classify_tier_static".into(), c(&CLASSIFY_TIER_STATIC)),
        ("classify_tier_model".into(), c(&CLASSIFY_TIER_MODEL)),
        ("classify_escalations".into(), c(&CLASSIFY_ESCALATIONS)),
        ("classify_escalations_over_budget".into(), c(&CLASSIFY_ESCALATIONS_OVER_BUDGET)),
        ("classify_learn_samples".into(), c(&CLASSIFY_LEARN_SAMPLES)),
        ("classify_learn_samples_kept".into(), Int(CLASSIFY_LEARN_SAMPLES_KEPT.get())),
        ("classify_head_fits".into(), c(&CLASSIFY_HEAD_FITS)),
        ("classify_head_fit_failures".into(), c(&CLASSIFY_HEAD_FIT_FAILURES)),
        ("classify_head_version".into(), Int(CLASSIFY_HEAD_VERSION.get())),
        ("classify_head_samples".into(), Int(CLASSIFY_HEAD_SAMPLES.get())),
        ("classify_head_fit_ms".into(), Int(CLASSIFY_HEAD_FIT_MS.get())),
        ("classify_head_fitting".into(), Int(CLASSIFY_HEAD_FITTING.get())),
        ("classify_head_words".into(), Int(CLASSIFY_HEAD_WORDS.get())),
        ("classify_heads_published".into(), c(&CLASSIFY_HEADS_PUBLISHED)),
        ("classify_heads_loaded".into(), c(&CLASSIFY_HEADS_LOADED)),
        ("classify_heads_stale".into(), c(&CLASSIFY_HEADS_STALE)),
        ("classify_heads_ignored".into(), c(&CLASSIFY_HEADS_IGNORED)),
        ("classify_escalations_waiting".into(), Int(CLASSIFY_ESCALATIONS_WAITING.get())),
        ("classify_escalated_permille".into(), Int(escalated_permille())),
        ("classify_escalation_threshold_e4".into(), Int(CLASSIFY_ESCALATION_THRESHOLD_E4.get())),
        ("classify_escalation_rate_per_sec".into(), Int(CLASSIFY_ESCALATION_RATE_PER_SEC.get())),
        ("classify_model_us_per_text".into(), Int(CLASSIFY_MODEL_US_PER_TEXT.get())),
        ("topic_texts_embedded".into(), c(&TOPIC_TEXTS_EMBEDDED)),
        ("topic_writes".into(), c(&TOPIC_WRITES)),
        ("model_loads".into(), c(&MODEL_LOADS)),
        ("model_load_failures".into(), c(&MODEL_LOAD_FAILURES)),
        ("model_load_ms".into(), Int(MODEL_LOAD_MS.get())),
        ("model_length_plans".into(), Int(MODEL_LENGTH_PLANS.get())),
        ("pipeline_read".into(), c(&PIPELINE_READ)),
        ("pipeline_classified".into(), c(&PIPELINE_CLASSIFIED)),
        ("pipeline_delivered".into(), c(&PIPELINE_DELIVERED)),
        ("pipeline_deliveries".into(), c(&PIPELINE_DELIVERIES)),
        ("pipeline_acked".into(), c(&PIPELINE_ACKED)),
        ("pipeline_malformed".into(), c(&PIPELINE_MALFORMED)),
        ("pipeline_retries".into(), c(&PIPELINE_RETRIES)),
        ("pipeline_slice_yields".into(), c(&PIPELINE_SLICE_YIELDS)),
        ("pipeline_routes_reused".into(), c(&PIPELINE_ROUTES_REUSED)),
        ("pipeline_failures".into(), c(&PIPELINE_FAILURES)),
        ("pipeline_inflight".into(), Int(PIPELINE_INFLIGHT.get())),
        ("pipeline_backlog".into(), Int(PIPELINE_BACKLOG.get())),
        ("sidecars_live".into(), Int(SIDECARS_LIVE.get())),
        ("sidecar_batches".into(), c(&SIDECAR_BATCHES)),
        ("sidecar_texts".into(), c(&SIDECAR_TEXTS)),
        ("sidecar_timeouts".into(), c(&SIDECAR_TIMEOUTS)),
        ("sidecar_failures".into(), c(&SIDECAR_FAILURES)),
        ("sidecar_fallbacks".into(), c(&SIDECAR_FALLBACKS)),
        ("sidecar_late_results".into(), c(&SIDECAR_LATE_RESULTS)),
        ("delivery_messages".into(), c(&DELIVERY_MESSAGES)),
        ("delivery_message_bytes".into(), c(&DELIVERY_MESSAGE_BYTES)),
        ("delivery_messages_unrouted".into(), c(&DELIVERY_MESSAGES_UNROUTED)),
        ("delivery_interest_messages".into(), c(&DELIVERY_INTEREST_MESSAGES)),
        ("panics_caught".into(), c(&PANICS_CAUGHT)),
        ("load_errors".into(), c(&LOAD_ERRORS)),
    ];
    for (name, h) in [
        ("fanout_latency_us", &FANOUT_LATENCY_US),
        ("fanout_slice_us", &FANOUT_SLICE_US),
        ("fanout_slice_gap_us", &FANOUT_SLICE_GAP_US),
        ("classify_latency_us", &CLASSIFY_LATENCY_US),
        ("classify_inference_us", &CLASSIFY_INFERENCE_US),
        ("classify_batch_size", &CLASSIFY_BATCH_SIZE),
        ("classify_static_margin_e4", &CLASSIFY_STATIC_MARGIN_E4),
        ("pipeline_lag_ms", &PIPELINE_LAG_MS),
        ("pipeline_tick_us", &PIPELINE_TICK_US),
    ] {
        v.push((format!("{name}_count"), Int(h.count() as i64)));
        for (label, p) in [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9)] {
            v.push((format!("{name}_{label}"), Int(h.percentile(p) as i64)));
        }
        v.push((format!("{name}_max"), Int(h.max() as i64)));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_bound_the_true_value_within_an_eighth() {
        let h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        for (p, truth) in [(50.0, 5000u64), (99.0, 9900), (99.9, 9990)] {
            let got = h.percentile(p);
            assert!(got >= truth && got as f64 <= truth as f64 * 1.13, "p{p}: {got} vs {truth}");
        }
        assert_eq!(h.max(), 10_000);
        assert_eq!(Histogram::new().percentile(99.0), 0);
    }

    #[test]
    fn bucket_bounds_are_monotonic() {
        let mut last = 0;
        for i in 1..Histogram::BUCKETS {
            let u = Histogram::upper(i);
            assert!(u >= last, "bucket {i}");
            last = u;
        }
        for v in [0u64, 7, 8, 9, 100, 1 << 40, u64::MAX] {
            assert!(Histogram::upper(Histogram::index(v)) >= v);
        }
    }
}
