//! Every setting of the module: default, bounds and accessor. Registered in lib.rs; settable as
//! `--loadmodule libagentic.so <name> <value>`, `--agentic.<name> <value>` or
//! `CONFIG SET agentic.<name> <value>`; out-of-range values are refused by the server.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Mutex;

use crate::seen::SeenParams;

/// An enum setting: its values with their names (CONFIG GET/SET, load arguments), and the error
/// for anything else.
macro_rules! config_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $num:literal => $text:literal),+ $(,)? }, $err:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {
            $($variant = $num),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl TryFrom<i32> for $name {
            type Error = valkey_module::ValkeyError;
            fn try_from(v: i32) -> Result<Self, Self::Error> {
                match v {
                    $($num => Ok($name::$variant),)+
                    _ => Err(valkey_module::ValkeyError::Str($err)),
                }
            }
        }

        impl From<$name> for i32 {
            fn from(v: $name) -> i32 {
                v as i32
            }
        }

        impl valkey_module::configuration::EnumConfigurationValue for $name {
            fn get_options(&self) -> (Vec<String>, Vec<i32>) {
                let all = [$($name::$variant),+];
                (all.iter().map(|v| v.as_str().to_string()).collect(), all.iter().map(|&v| v as i32).collect())
            }
        }
    };
}

pub const FEED_LEN_DEFAULT: i64 = 100;
pub const FEED_LEN_MIN: i64 = 1;
pub const FEED_LEN_MAX: i64 = 100_000;
pub static FEED_LEN: AtomicI64 = AtomicI64::new(FEED_LEN_DEFAULT);

/// Seconds during which a user never gets the same document twice.
pub const SEEN_TTL_DEFAULT: i64 = 86_400;
pub const SEEN_TTL_MIN: i64 = 1;
pub const SEEN_TTL_MAX: i64 = 365 * 86_400;
pub static SEEN_TTL: AtomicI64 = AtomicI64::new(SEEN_TTL_DEFAULT);

/// Bound on the rate of new documents wrongly skipped as seen, in parts per million.
pub const SEEN_FP_PPM_DEFAULT: i64 = 1_000;
pub const SEEN_FP_PPM_MIN: i64 = 1;
pub const SEEN_FP_PPM_MAX: i64 = 100_000;
pub static SEEN_FP_PPM: AtomicI64 = AtomicI64::new(SEEN_FP_PPM_DEFAULT);

/// Documents a seen-filter slice holds before it grows a new layer.
pub const SEEN_CAPACITY_DEFAULT: i64 = 128;
pub const SEEN_CAPACITY_MIN: i64 = 8;
pub const SEEN_CAPACITY_MAX: i64 = 1 << 24;
pub static SEEN_CAPACITY: AtomicI64 = AtomicI64::new(SEEN_CAPACITY_DEFAULT);

/// Seconds a stored document lives; 0 keeps it forever.
pub const DOC_TTL_DEFAULT: i64 = 86_400;
pub const DOC_TTL_MIN: i64 = 0;
pub const DOC_TTL_MAX: i64 = 365 * 86_400;
pub static DOC_TTL: AtomicI64 = AtomicI64::new(DOC_TTL_DEFAULT);

pub const MAX_DOC_BYTES_DEFAULT: i64 = 1 << 20;
pub const MAX_DOC_BYTES_MIN: i64 = 1;
pub const MAX_DOC_BYTES_MAX: i64 = 512 << 20;
pub static MAX_DOC_BYTES: AtomicI64 = AtomicI64::new(MAX_DOC_BYTES_DEFAULT);

/// Length a topic stream is trimmed to, as far as consumer groups allow.
pub const TOPIC_MAXLEN_DEFAULT: i64 = 10_000;
pub const TOPIC_MAXLEN_MIN: i64 = 1;
pub const TOPIC_MAXLEN_MAX: i64 = i64::MAX;
pub static TOPIC_MAXLEN: AtomicI64 = AtomicI64::new(TOPIC_MAXLEN_DEFAULT);

/// Above this length a topic stream is trimmed to `topic-maxlen` even if consumer groups have not
/// processed the entries (each one counted as a forced drop). 0 never drops unprocessed entries.
pub const TOPIC_HARD_MAXLEN_DEFAULT: i64 = 0;
pub const TOPIC_HARD_MAXLEN_MIN: i64 = 0;
pub const TOPIC_HARD_MAXLEN_MAX: i64 = i64::MAX;
pub static TOPIC_HARD_MAXLEN: AtomicI64 = AtomicI64::new(TOPIC_HARD_MAXLEN_DEFAULT);

/// User keys whose blocked AGENT.FEED readers are woken per event-loop iteration at most; the
/// rest in the next ones, after the other clients (feed_wakeups.rs).
pub const FEED_WAKE_BATCH_DEFAULT: i64 = 16;
pub const FEED_WAKE_BATCH_MIN: i64 = 1;
pub const FEED_WAKE_BATCH_MAX: i64 = 1_000_000;
pub static FEED_WAKE_BATCH: AtomicI64 = AtomicI64::new(FEED_WAKE_BATCH_DEFAULT);

/// Microseconds of fan-out work per event-loop slice.
pub const FANOUT_SLICE_US_DEFAULT: i64 = 100;
pub const FANOUT_SLICE_US_MIN: i64 = 10;
pub const FANOUT_SLICE_US_MAX: i64 = 1_000_000;
pub static FANOUT_SLICE_US: AtomicI64 = AtomicI64::new(FANOUT_SLICE_US_DEFAULT);

/// A topic with at least this many followers gets the pipeline's articles appended once to its
/// shared timeline (timeline.rs) instead of to every follower's feed; AGENT.FEED assembles feeds
/// at read time. 0 = always to every follower (as before). Ignored on cluster nodes.
pub const FANOUT_SHARED_MIN_SUBSCRIBERS_DEFAULT: i64 = 0;
pub const FANOUT_SHARED_MIN_SUBSCRIBERS_MIN: i64 = 0;
pub const FANOUT_SHARED_MIN_SUBSCRIBERS_MAX: i64 = 1_000_000_000;
pub static FANOUT_SHARED_MIN_SUBSCRIBERS: AtomicI64 = AtomicI64::new(FANOUT_SHARED_MIN_SUBSCRIBERS_DEFAULT);

/// Folder holding `model.onnx` and `tokenizer.json` for AGENT.CLASSIFY; empty = no model. Loaded
/// in the background whenever it changes.
pub static MODEL_DIR: Mutex<String> = Mutex::new(String::new());

/// Pub/Sub channel announcing each fan-out slice's deliveries to gateways; empty = off.
pub static DELIVERY_CHANNEL: Mutex<String> = Mutex::new(String::new());
pub const DELIVERY_CHANNEL_DEFAULT: &str = "agentic:deliveries";

/// Pool threads running the model. Can change at runtime.
pub const CLASSIFY_THREADS_DEFAULT: i64 = 2;
pub const CLASSIFY_THREADS_MIN: i64 = 1;
pub const CLASSIFY_THREADS_MAX: i64 = 64;
pub static CLASSIFY_THREADS: AtomicI64 = AtomicI64::new(CLASSIFY_THREADS_DEFAULT);

/// Most requests one worker takes at once (micro-batching); also the largest padded batch.
pub const CLASSIFY_BATCH_DEFAULT: i64 = 16;
pub const CLASSIFY_BATCH_MIN: i64 = 1;
pub const CLASSIFY_BATCH_MAX: i64 = 256;
pub static CLASSIFY_BATCH: AtomicI64 = AtomicI64::new(CLASSIFY_BATCH_DEFAULT);

/// Requests allowed to wait for a worker; beyond it AGENT.CLASSIFY refuses (counted).
pub const CLASSIFY_QUEUE_MAX_DEFAULT: i64 = 10_000;
pub const CLASSIFY_QUEUE_MAX_MIN: i64 = 1;
pub const CLASSIFY_QUEUE_MAX_MAX: i64 = 10_000_000;
pub static CLASSIFY_QUEUE_MAX: AtomicI64 = AtomicI64::new(CLASSIFY_QUEUE_MAX_DEFAULT);

/// Tokens of a text the model sees (its start; the cost grows with it). News title + lead averages
/// ~54 tokens; on AG News 64 loses no accuracy against 256 (bench/RESULTS.md).
pub const CLASSIFY_MAX_TOKENS_DEFAULT: i64 = 64;
pub const CLASSIFY_MAX_TOKENS_MIN: i64 = 8;
pub const CLASSIFY_MAX_TOKENS_MAX: i64 = 512;
pub static CLASSIFY_MAX_TOKENS: AtomicI64 = AtomicI64::new(CLASSIFY_MAX_TOKENS_DEFAULT);

/// Fixed-length model plans kept (texts are padded to a multiple of 8 tokens): faster than the
/// general plan (measured 1.45x at 54 tokens) but each holds its own copy of the packed weights
/// (~44 MB for all-MiniLM-L6-v2). Lengths beyond the first N seen use the general plan.
pub const CLASSIFY_LENGTH_PLANS_DEFAULT: i64 = 8;
pub const CLASSIFY_LENGTH_PLANS_MIN: i64 = 0;
pub const CLASSIFY_LENGTH_PLANS_MAX: i64 = 64;
pub static CLASSIFY_LENGTH_PLANS: AtomicI64 = AtomicI64::new(CLASSIFY_LENGTH_PLANS_DEFAULT);

config_enum!(
    /// Which tier classifies: the cascade (static tier first, the encoder for the texts it is unsure
    /// about), the encoder alone, or the static tier alone. Without a `static.bin` next to the model
    /// every mode uses the encoder.
    ClassifyTier { Cascade = 0 => "cascade", Model = 1 => "model", Static = 2 => "static" },
    "classify-tier must be cascade, model or static"
);

pub static CLASSIFY_TIER: Mutex<ClassifyTier> = Mutex::new(ClassifyTier::Cascade);

config_enum!(
    /// How the classify workers are scheduled next to the server's main thread: `low` (nice 10,
    /// the default) and `normal` (nice 0) give them a share of a busy machine; `idle` (Linux
    /// SCHED_IDLE) runs them only on CPU time nothing else wants. With nice 10 a worker was seen
    /// keeping a core for a whole scheduler tick (4 ms) while the main thread waited to run, which
    /// `idle` avoids (bench/RESULTS.md, "Classify workers in SCHED_IDLE"); but with `idle`, other
    /// programs that keep every core busy leave the model no time at all (a classification timed
    /// out after 10 s next to a build), so it is for machines that run Valkey alone. A change
    /// restarts the workers: a thread cannot leave SCHED_IDLE without CAP_SYS_NICE, a new one can.
    WorkerPriority { Idle = 0 => "idle", Low = 1 => "low", Normal = 2 => "normal" },
    "classify-worker-priority must be idle, low or normal"
);

pub static CLASSIFY_WORKER_PRIORITY: Mutex<WorkerPriority> = Mutex::new(WorkerPriority::Low);

/// Cascade: the share of texts (those with the smallest top-2 margins) sent to the encoder.
pub const CLASSIFY_ESCALATE_PERCENT_DEFAULT: i64 = 10;
pub const CLASSIFY_ESCALATE_PERCENT_MIN: i64 = 0;
pub const CLASSIFY_ESCALATE_PERCENT_MAX: i64 = 100;
pub static CLASSIFY_ESCALATE_PERCENT: AtomicI64 = AtomicI64::new(CLASSIFY_ESCALATE_PERCENT_DEFAULT);

/// Cascade: most texts per second sent to the encoder; 0 = as many as the pool's threads run in
/// 60% of their time at the encoder's measured cost (classify/cascade.rs).
pub const CLASSIFY_ESCALATE_MAX_PER_SEC_DEFAULT: i64 = 0;
pub const CLASSIFY_ESCALATE_MAX_PER_SEC_MIN: i64 = 0;
pub const CLASSIFY_ESCALATE_MAX_PER_SEC_MAX: i64 = 1_000_000;
pub static CLASSIFY_ESCALATE_MAX_PER_SEC: AtomicI64 = AtomicI64::new(CLASSIFY_ESCALATE_MAX_PER_SEC_DEFAULT);

/// Cascade: the share of texts sent to the encoder as teaching samples for the self-trained heads
/// (classify/learner.rs) while they collect their first samples; a fifth of it afterwards. 0 turns
/// self-training off.
pub const CLASSIFY_LEARN_PERCENT_DEFAULT: i64 = 5;
pub const CLASSIFY_LEARN_PERCENT_MIN: i64 = 0;
pub const CLASSIFY_LEARN_PERCENT_MAX: i64 = 100;
pub static CLASSIFY_LEARN_PERCENT: AtomicI64 = AtomicI64::new(CLASSIFY_LEARN_PERCENT_DEFAULT);

/// Weight of the self-trained word head (classify/word_head.rs), in percent: its log-probabilities
/// times this / 100 are added to the static or the encoder head's scores. 0 leaves it out.
pub const CLASSIFY_WORD_WEIGHT_DEFAULT: i64 = 400;
pub const CLASSIFY_WORD_WEIGHT_MIN: i64 = 0;
pub const CLASSIFY_WORD_WEIGHT_MAX: i64 = 10_000;
pub static CLASSIFY_WORD_WEIGHT: AtomicI64 = AtomicI64::new(CLASSIFY_WORD_WEIGHT_DEFAULT);

/// Tokens of a text the static tier reads: it costs little, so it reads more of a long article
/// than the encoder.
pub const CLASSIFY_STATIC_MAX_TOKENS_DEFAULT: i64 = 256;
pub const CLASSIFY_STATIC_MAX_TOKENS_MIN: i64 = 8;
pub const CLASSIFY_STATIC_MAX_TOKENS_MAX: i64 = 4_096;
pub static CLASSIFY_STATIC_MAX_TOKENS: AtomicI64 = AtomicI64::new(CLASSIFY_STATIC_MAX_TOKENS_DEFAULT);

/// Default time a blocked AGENT.CLASSIFY waits for its answer; 0 waits forever.
pub const CLASSIFY_TIMEOUT_MS_DEFAULT: i64 = 10_000;
pub const CLASSIFY_TIMEOUT_MS_MIN: i64 = 0;
pub const CLASSIFY_TIMEOUT_MS_MAX: i64 = 3_600_000;
pub static CLASSIFY_TIMEOUT_MS: AtomicI64 = AtomicI64::new(CLASSIFY_TIMEOUT_MS_DEFAULT);

/// A sidecar's batch not answered within this many ms goes to the CPU pool instead.
pub const SIDECAR_TIMEOUT_MS_DEFAULT: i64 = 5_000;
pub const SIDECAR_TIMEOUT_MS_MIN: i64 = 10;
pub const SIDECAR_TIMEOUT_MS_MAX: i64 = 600_000;
pub static SIDECAR_TIMEOUT_MS: AtomicI64 = AtomicI64::new(SIDECAR_TIMEOUT_MS_DEFAULT);

/// A sidecar that has not called for this many ms (and is not waiting) is no longer live.
pub const SIDECAR_TTL_MS_DEFAULT: i64 = 3_000;
pub const SIDECAR_TTL_MS_MIN: i64 = 100;
pub const SIDECAR_TTL_MS_MAX: i64 = 600_000;
pub static SIDECAR_TTL_MS: AtomicI64 = AtomicI64::new(SIDECAR_TTL_MS_DEFAULT);

/// Where blocking is impossible (MULTI, Lua): compute on the main thread (yes) or refuse (no).
pub static CLASSIFY_INLINE: AtomicBool = AtomicBool::new(true);

/// Runs the in-server pipeline (news_raw -> classify -> store -> topic stream -> fan-out -> ack) on
/// the primary.
pub static PIPELINE: AtomicBool = AtomicBool::new(false);

/// Entries the pipeline reads from news_raw at a time.
pub const PIPELINE_BATCH_DEFAULT: i64 = 64;
pub const PIPELINE_BATCH_MIN: i64 = 1;
pub const PIPELINE_BATCH_MAX: i64 = 10_000;
pub static PIPELINE_BATCH: AtomicI64 = AtomicI64::new(PIPELINE_BATCH_DEFAULT);

/// How often a classify worker running the encoder offers its core to a thread waiting for it
/// (`sched_yield` between the graph's operations), in microseconds; 0 = never. Lower keeps
/// the main thread's waits for a core short; higher (or 0) gives the encoder's own calls lower
/// latency when the pool saturates.
pub const CLASSIFY_YIELD_US_DEFAULT: i64 = 100;
pub const CLASSIFY_YIELD_US_MIN: i64 = 0;
pub const CLASSIFY_YIELD_US_MAX: i64 = 1_000_000;
pub static CLASSIFY_YIELD_US: AtomicI64 = AtomicI64::new(CLASSIFY_YIELD_US_DEFAULT);

/// Microseconds of pipeline work (storing, streaming, appending, acknowledging classified articles,
/// reading new ones) per event-loop iteration; what is left continues in the next iteration,
/// after the clients that are waiting have been served.
pub const PIPELINE_SLICE_US_DEFAULT: i64 = 200;
pub const PIPELINE_SLICE_US_MIN: i64 = 10;
pub const PIPELINE_SLICE_US_MAX: i64 = 1_000_000;
pub static PIPELINE_SLICE_US: AtomicI64 = AtomicI64::new(PIPELINE_SLICE_US_DEFAULT);

/// Articles read and not yet acknowledged, at most; the rest wait in news_raw (the backlog).
pub const PIPELINE_MAX_INFLIGHT_DEFAULT: i64 = 256;
pub const PIPELINE_MAX_INFLIGHT_MIN: i64 = 1;
pub const PIPELINE_MAX_INFLIGHT_MAX: i64 = 100_000;
pub static PIPELINE_MAX_INFLIGHT: AtomicI64 = AtomicI64::new(PIPELINE_MAX_INFLIGHT_DEFAULT);

/// Length news_raw is trimmed to after acknowledgements, never past what a group has not processed.
pub const PIPELINE_STREAM_MAXLEN_DEFAULT: i64 = 100_000;
pub const PIPELINE_STREAM_MAXLEN_MIN: i64 = 1;
pub const PIPELINE_STREAM_MAXLEN_MAX: i64 = i64::MAX;
pub static PIPELINE_STREAM_MAXLEN: AtomicI64 = AtomicI64::new(PIPELINE_STREAM_MAXLEN_DEFAULT);

/// Cluster pipeline: an article not acknowledged for every slot after this many ms is sent again
/// to the nodes serving the missing slots.
pub const CLUSTER_RESEND_MS_DEFAULT: i64 = 1_000;
pub const CLUSTER_RESEND_MS_MIN: i64 = 10;
pub const CLUSTER_RESEND_MS_MAX: i64 = 600_000;
pub static CLUSTER_RESEND_MS: AtomicI64 = AtomicI64::new(CLUSTER_RESEND_MS_DEFAULT);

/// Cluster pipeline: a node acknowledges an article once its replicas have the effects, or after
/// this many ms without them (counted in `cluster_acks_unconfirmed`).
pub const CLUSTER_ACK_WAIT_MS_DEFAULT: i64 = 5_000;
pub const CLUSTER_ACK_WAIT_MS_MIN: i64 = 0;
pub const CLUSTER_ACK_WAIT_MS_MAX: i64 = 600_000;
pub static CLUSTER_ACK_WAIT_MS: AtomicI64 = AtomicI64::new(CLUSTER_ACK_WAIT_MS_DEFAULT);

/// Enables AGENT.DEBUG (fault injection for tests), like Valkey's enable-debug-command.
pub static DEBUG_COMMANDS: AtomicBool = AtomicBool::new(false);

/// Every numeric setting with its bounds. The server checks CONFIG SET against them, but a value
/// given as a module argument becomes the registered default unchecked, so init checks it here.
pub fn numeric() -> [(&'static str, &'static AtomicI64, i64, i64); 31] {
    [
        ("feed-len", &FEED_LEN, FEED_LEN_MIN, FEED_LEN_MAX),
        ("seen-ttl", &SEEN_TTL, SEEN_TTL_MIN, SEEN_TTL_MAX),
        ("seen-fp-ppm", &SEEN_FP_PPM, SEEN_FP_PPM_MIN, SEEN_FP_PPM_MAX),
        ("seen-capacity", &SEEN_CAPACITY, SEEN_CAPACITY_MIN, SEEN_CAPACITY_MAX),
        ("doc-ttl", &DOC_TTL, DOC_TTL_MIN, DOC_TTL_MAX),
        ("max-doc-bytes", &MAX_DOC_BYTES, MAX_DOC_BYTES_MIN, MAX_DOC_BYTES_MAX),
        ("topic-maxlen", &TOPIC_MAXLEN, TOPIC_MAXLEN_MIN, TOPIC_MAXLEN_MAX),
        ("topic-hard-maxlen", &TOPIC_HARD_MAXLEN, TOPIC_HARD_MAXLEN_MIN, TOPIC_HARD_MAXLEN_MAX),
        ("fanout-slice-us", &FANOUT_SLICE_US, FANOUT_SLICE_US_MIN, FANOUT_SLICE_US_MAX),
        ("feed-wake-batch", &FEED_WAKE_BATCH, FEED_WAKE_BATCH_MIN, FEED_WAKE_BATCH_MAX),
        (
            "fanout-shared-min-subscribers",
            &FANOUT_SHARED_MIN_SUBSCRIBERS,
            FANOUT_SHARED_MIN_SUBSCRIBERS_MIN,
            FANOUT_SHARED_MIN_SUBSCRIBERS_MAX,
        ),
        ("classify-threads", &CLASSIFY_THREADS, CLASSIFY_THREADS_MIN, CLASSIFY_THREADS_MAX),
        ("classify-batch", &CLASSIFY_BATCH, CLASSIFY_BATCH_MIN, CLASSIFY_BATCH_MAX),
        ("classify-queue-max", &CLASSIFY_QUEUE_MAX, CLASSIFY_QUEUE_MAX_MIN, CLASSIFY_QUEUE_MAX_MAX),
        ("classify-max-tokens", &CLASSIFY_MAX_TOKENS, CLASSIFY_MAX_TOKENS_MIN, CLASSIFY_MAX_TOKENS_MAX),
        ("classify-timeout-ms", &CLASSIFY_TIMEOUT_MS, CLASSIFY_TIMEOUT_MS_MIN, CLASSIFY_TIMEOUT_MS_MAX),
        ("classify-length-plans", &CLASSIFY_LENGTH_PLANS, CLASSIFY_LENGTH_PLANS_MIN, CLASSIFY_LENGTH_PLANS_MAX),
        ("classify-escalate-percent", &CLASSIFY_ESCALATE_PERCENT, CLASSIFY_ESCALATE_PERCENT_MIN, CLASSIFY_ESCALATE_PERCENT_MAX),
        (
            "classify-escalate-max-per-sec",
            &CLASSIFY_ESCALATE_MAX_PER_SEC,
            CLASSIFY_ESCALATE_MAX_PER_SEC_MIN,
            CLASSIFY_ESCALATE_MAX_PER_SEC_MAX,
        ),
        ("classify-learn-percent", &CLASSIFY_LEARN_PERCENT, CLASSIFY_LEARN_PERCENT_MIN, CLASSIFY_LEARN_PERCENT_MAX),
        ("classify-static-max-tokens", &CLASSIFY_STATIC_MAX_TOKENS, CLASSIFY_STATIC_MAX_TOKENS_MIN, CLASSIFY_STATIC_MAX_TOKENS_MAX),
        ("classify-word-weight", &CLASSIFY_WORD_WEIGHT, CLASSIFY_WORD_WEIGHT_MIN, CLASSIFY_WORD_WEIGHT_MAX),
        ("pipeline-batch", &PIPELINE_BATCH, PIPELINE_BATCH_MIN, PIPELINE_BATCH_MAX),
        ("pipeline-max-inflight", &PIPELINE_MAX_INFLIGHT, PIPELINE_MAX_INFLIGHT_MIN, PIPELINE_MAX_INFLIGHT_MAX),
        ("pipeline-stream-maxlen", &PIPELINE_STREAM_MAXLEN, PIPELINE_STREAM_MAXLEN_MIN, PIPELINE_STREAM_MAXLEN_MAX),
        ("pipeline-slice-us", &PIPELINE_SLICE_US, PIPELINE_SLICE_US_MIN, PIPELINE_SLICE_US_MAX),
        ("classify-yield-us", &CLASSIFY_YIELD_US, CLASSIFY_YIELD_US_MIN, CLASSIFY_YIELD_US_MAX),
        ("sidecar-timeout-ms", &SIDECAR_TIMEOUT_MS, SIDECAR_TIMEOUT_MS_MIN, SIDECAR_TIMEOUT_MS_MAX),
        ("sidecar-ttl-ms", &SIDECAR_TTL_MS, SIDECAR_TTL_MS_MIN, SIDECAR_TTL_MS_MAX),
        ("cluster-resend-ms", &CLUSTER_RESEND_MS, CLUSTER_RESEND_MS_MIN, CLUSTER_RESEND_MS_MAX),
        ("cluster-ack-wait-ms", &CLUSTER_ACK_WAIT_MS, CLUSTER_ACK_WAIT_MS_MIN, CLUSTER_ACK_WAIT_MS_MAX),
    ]
}

pub fn first_out_of_range() -> Option<String> {
    numeric().into_iter().find_map(|(name, v, min, max)| {
        let x = get(v);
        (x < min || x > max).then(|| format!("agentic.{name} = {x} is out of range [{min}, {max}]"))
    })
}

fn get(v: &AtomicI64) -> i64 {
    v.load(Ordering::Relaxed)
}

pub fn feed_len() -> usize {
    get(&FEED_LEN) as usize
}

pub fn seen_params() -> SeenParams {
    SeenParams { ttl_ms: get(&SEEN_TTL) as u64 * 1000, fp_ppm: get(&SEEN_FP_PPM) as u32, capacity: get(&SEEN_CAPACITY) as u32 }
}

pub fn doc_ttl_ms() -> u64 {
    get(&DOC_TTL) as u64 * 1000
}

pub fn max_doc_bytes() -> usize {
    get(&MAX_DOC_BYTES) as usize
}

pub fn topic_maxlen() -> u64 {
    get(&TOPIC_MAXLEN) as u64
}

pub fn topic_hard_maxlen() -> u64 {
    get(&TOPIC_HARD_MAXLEN) as u64
}

pub fn fanout_slice_us() -> u64 {
    get(&FANOUT_SLICE_US) as u64
}

pub fn feed_wake_batch() -> usize {
    get(&FEED_WAKE_BATCH).clamp(FEED_WAKE_BATCH_MIN, FEED_WAKE_BATCH_MAX) as usize
}

pub fn pipeline_slice_us() -> u64 {
    get(&PIPELINE_SLICE_US).clamp(PIPELINE_SLICE_US_MIN, PIPELINE_SLICE_US_MAX) as u64
}

/// The followers from which a topic's articles go to its shared timeline; None = never.
pub fn fanout_shared_min_subscribers() -> Option<usize> {
    Some(get(&FANOUT_SHARED_MIN_SUBSCRIBERS) as usize).filter(|&n| n > 0)
}

pub fn debug_commands() -> bool {
    DEBUG_COMMANDS.load(Ordering::Relaxed)
}

// Out-of-range values are clamped: workers read these without the server lock.
pub fn classify_threads() -> usize {
    get(&CLASSIFY_THREADS).clamp(CLASSIFY_THREADS_MIN, CLASSIFY_THREADS_MAX) as usize
}

pub fn classify_batch() -> usize {
    get(&CLASSIFY_BATCH).clamp(CLASSIFY_BATCH_MIN, CLASSIFY_BATCH_MAX) as usize
}

pub fn classify_queue_max() -> usize {
    get(&CLASSIFY_QUEUE_MAX).clamp(CLASSIFY_QUEUE_MAX_MIN, CLASSIFY_QUEUE_MAX_MAX) as usize
}

pub fn classify_max_tokens() -> usize {
    get(&CLASSIFY_MAX_TOKENS).clamp(CLASSIFY_MAX_TOKENS_MIN, CLASSIFY_MAX_TOKENS_MAX) as usize
}

pub fn classify_timeout_ms() -> i64 {
    get(&CLASSIFY_TIMEOUT_MS)
}

pub fn sidecar_timeout_ms() -> u64 {
    get(&SIDECAR_TIMEOUT_MS).clamp(SIDECAR_TIMEOUT_MS_MIN, SIDECAR_TIMEOUT_MS_MAX) as u64
}

pub fn sidecar_ttl_ms() -> u64 {
    get(&SIDECAR_TTL_MS).clamp(SIDECAR_TTL_MS_MIN, SIDECAR_TTL_MS_MAX) as u64
}

pub fn classify_inline() -> bool {
    CLASSIFY_INLINE.load(Ordering::Relaxed)
}

pub fn delivery_channel() -> Option<String> {
    DELIVERY_CHANNEL.lock().ok().map(|s| s.clone()).filter(|s| !s.is_empty())
}

pub fn model_dir() -> String {
    MODEL_DIR.lock().map(|s| s.clone()).unwrap_or_default()
}

pub fn classify_length_plans() -> usize {
    get(&CLASSIFY_LENGTH_PLANS).clamp(CLASSIFY_LENGTH_PLANS_MIN, CLASSIFY_LENGTH_PLANS_MAX) as usize
}

pub fn classify_worker_priority() -> WorkerPriority {
    CLASSIFY_WORKER_PRIORITY.lock().map(|p| *p).unwrap_or(WorkerPriority::Low)
}

pub fn classify_tier() -> ClassifyTier {
    CLASSIFY_TIER.lock().map(|t| *t).unwrap_or(ClassifyTier::Cascade)
}

pub fn classify_escalate_percent() -> u64 {
    get(&CLASSIFY_ESCALATE_PERCENT).clamp(CLASSIFY_ESCALATE_PERCENT_MIN, CLASSIFY_ESCALATE_PERCENT_MAX) as u64
}

pub fn classify_escalate_max_per_sec() -> u64 {
    get(&CLASSIFY_ESCALATE_MAX_PER_SEC).clamp(CLASSIFY_ESCALATE_MAX_PER_SEC_MIN, CLASSIFY_ESCALATE_MAX_PER_SEC_MAX) as u64
}

/// `classify-yield-us` as a period, None for never.
pub fn classify_yield_every() -> Option<std::time::Duration> {
    let us = get(&CLASSIFY_YIELD_US).clamp(CLASSIFY_YIELD_US_MIN, CLASSIFY_YIELD_US_MAX) as u64;
    (us > 0).then(|| std::time::Duration::from_micros(us))
}

pub fn classify_learn_percent() -> u64 {
    get(&CLASSIFY_LEARN_PERCENT).clamp(CLASSIFY_LEARN_PERCENT_MIN, CLASSIFY_LEARN_PERCENT_MAX) as u64
}

/// The word head's weight as a factor (classify-word-weight / 100).
pub fn classify_word_weight() -> f32 {
    get(&CLASSIFY_WORD_WEIGHT).clamp(CLASSIFY_WORD_WEIGHT_MIN, CLASSIFY_WORD_WEIGHT_MAX) as f32 / 100.0
}

pub fn classify_static_max_tokens() -> usize {
    get(&CLASSIFY_STATIC_MAX_TOKENS).clamp(CLASSIFY_STATIC_MAX_TOKENS_MIN, CLASSIFY_STATIC_MAX_TOKENS_MAX) as usize
}

pub fn pipeline_enabled() -> bool {
    PIPELINE.load(Ordering::Relaxed)
}

pub fn pipeline_batch() -> usize {
    get(&PIPELINE_BATCH).clamp(PIPELINE_BATCH_MIN, PIPELINE_BATCH_MAX) as usize
}

pub fn pipeline_max_inflight() -> usize {
    get(&PIPELINE_MAX_INFLIGHT).clamp(PIPELINE_MAX_INFLIGHT_MIN, PIPELINE_MAX_INFLIGHT_MAX) as usize
}

pub fn pipeline_stream_maxlen() -> u64 {
    get(&PIPELINE_STREAM_MAXLEN).clamp(PIPELINE_STREAM_MAXLEN_MIN, PIPELINE_STREAM_MAXLEN_MAX) as u64
}

pub fn cluster_resend_ms() -> u64 {
    get(&CLUSTER_RESEND_MS).clamp(CLUSTER_RESEND_MS_MIN, CLUSTER_RESEND_MS_MAX) as u64
}

pub fn cluster_ack_wait_ms() -> u64 {
    get(&CLUSTER_ACK_WAIT_MS).clamp(CLUSTER_ACK_WAIT_MS_MIN, CLUSTER_ACK_WAIT_MS_MAX) as u64
}
