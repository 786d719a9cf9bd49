//! valkey-agentic: fan-out, feeds and (later) classification inside Valkey.
//! This file only registers; each command lives in `commands/`, FFI callbacks in `ffi.rs`.

mod catalog_sync;
pub mod classify;
mod cluster;
mod cluster_msg;
mod cluster_pipeline;
mod codec;
mod commands;
mod configs;
#[cfg(test)]
mod decoder_fuzz;
mod delivery_channel;
mod events;
mod fanout;
pub mod feed;
mod feed_wakeups;
mod ffi;
mod heads_sync;
mod index;
mod metrics;
mod pipeline;
pub mod seen;
mod server_alloc;
mod timeline;
mod topic_set;
mod topic_stream;
pub mod user;
mod validate;

use std::ffi::CString;

use valkey_module::configuration::ConfigurationFlags;
use valkey_module::{valkey_module, Context, InfoContext, Status, ValkeyResult, ValkeyString};

use commands::stats::info as module_info_sections;
use configs::*;
use ffi::{CATALOG_TYPE, TIMELINES_TYPE, USER_TYPE};

pub const MODULE_NAME: &str = "agentic";
pub const MODULE_VERSION: i32 = 1;
pub const ACL_CATEGORY: &str = "agentic";

/// ACL categories per command, on top of what the command flags imply.
const COMMAND_CATEGORIES: [(&str, &str); 22] = [
    ("agent.subscribe", "write fast agentic"),
    ("agent.unsubscribe", "write fast agentic"),
    ("agent.interests", "read fast agentic"),
    ("agent.fanout", "write agentic"),
    ("agent.deliver", "write agentic"),
    ("agent.feed", "read blocking agentic"),
    ("agent.stats", "read fast agentic"),
    ("agent.loaduser", "write agentic"),
    ("agent.timeline.append", "write agentic"),
    ("agent.timeline.load", "write agentic"),
    ("agent.debug", "admin dangerous agentic"),
    ("agent.classify", "read blocking agentic"),
    ("agent.sidecar.next", "blocking agentic"),
    ("agent.sidecar.result", "agentic"),
    ("agent.sidecar.list", "agentic"),
    ("agent.topic.set", "write agentic"),
    ("agent.topic.addexamples", "write agentic"),
    ("agent.topic.del", "write agentic"),
    ("agent.topic.reset", "write agentic"),
    ("agent.topic.get", "read fast agentic"),
    ("agent.topic.list", "read agentic"),
    ("agent.loadtopics", "write agentic"),
];

fn on_worker_priority_changed(
    _ctx: &valkey_module::configuration::ConfigurationContext,
    _name: &str,
    _value: &'static std::sync::Mutex<configs::WorkerPriority>,
) {
    classify::pool::restart_workers();
}

fn on_model_dir_changed(_ctx: &valkey_module::configuration::ConfigurationContext, _name: &str, dir: &'static std::sync::Mutex<String>) {
    classify::model::configure(&dir.lock().map(|d| d.clone()).unwrap_or_default());
}

fn init(ctx: &Context, _args: &[ValkeyString]) -> Status {
    if let Some(api) = ffi::missing_api() {
        ctx.log_warning(&format!("agentic: refusing to load: this server lacks the module API RedisModule_{api}"));
        return Status::Err;
    }
    if let Some(problem) = configs::first_out_of_range() {
        ctx.log_warning(&format!("agentic: refusing to load: {problem}"));
        return Status::Err;
    }
    cluster::init(ctx);
    if cluster::enabled() {
        ffi::register_cluster_receivers(
            ctx,
            &[cluster_msg::ARTICLE, cluster_msg::ACK, cluster_msg::NACK, catalog_sync::HASH, catalog_sync::REQUEST, catalog_sync::FULL],
        );
    }
    if ffi::handle_atomic_slot_migration(ctx) {
        ctx.log_notice("agentic: following atomic slot migration (Valkey 9)");
    }
    pipeline::start_ticking(ctx);
    for (name, categories) in COMMAND_CATEGORIES {
        let (Ok(cname), Ok(ccat)) = (CString::new(name), CString::new(categories)) else { return Status::Err };
        if ctx.set_acl_category(cname.as_ptr(), ccat.as_ptr()) == valkey_module::raw::Status::Err {
            ctx.log_warning(&format!("agentic: could not set the ACL categories of {name}"));
            return Status::Err;
        }
    }
    Status::Ok
}

valkey_module! {
    name: MODULE_NAME,
    version: MODULE_VERSION,
    allocator: (server_alloc::ServerAlloc, server_alloc::ServerAlloc),
    data_types: [USER_TYPE, CATALOG_TYPE, TIMELINES_TYPE],
    init: init,
    info: module_info_sections,
    acl_categories: [ACL_CATEGORY]
    commands: [],
    event_handlers: [
        [@GENERIC @EXPIRED @EVICTED @STRING: events::on_keyspace_event],
        [@STREAM: pipeline::on_stream_event],
    ],
    configurations: [
        i64: [
            ["feed-len", &FEED_LEN, FEED_LEN_DEFAULT, FEED_LEN_MIN, FEED_LEN_MAX, ConfigurationFlags::DEFAULT, None],
            ["seen-ttl", &SEEN_TTL, SEEN_TTL_DEFAULT, SEEN_TTL_MIN, SEEN_TTL_MAX, ConfigurationFlags::DEFAULT, None],
            ["seen-fp-ppm", &SEEN_FP_PPM, SEEN_FP_PPM_DEFAULT, SEEN_FP_PPM_MIN, SEEN_FP_PPM_MAX, ConfigurationFlags::DEFAULT, None],
            ["seen-capacity", &SEEN_CAPACITY, SEEN_CAPACITY_DEFAULT, SEEN_CAPACITY_MIN, SEEN_CAPACITY_MAX, ConfigurationFlags::DEFAULT, None],
            ["doc-ttl", &DOC_TTL, DOC_TTL_DEFAULT, DOC_TTL_MIN, DOC_TTL_MAX, ConfigurationFlags::DEFAULT, None],
            ["max-doc-bytes", &MAX_DOC_BYTES, MAX_DOC_BYTES_DEFAULT, MAX_DOC_BYTES_MIN, MAX_DOC_BYTES_MAX, ConfigurationFlags::MEMORY, None],
            ["topic-maxlen", &TOPIC_MAXLEN, TOPIC_MAXLEN_DEFAULT, TOPIC_MAXLEN_MIN, TOPIC_MAXLEN_MAX, ConfigurationFlags::DEFAULT, None],
            ["topic-hard-maxlen", &TOPIC_HARD_MAXLEN, TOPIC_HARD_MAXLEN_DEFAULT, TOPIC_HARD_MAXLEN_MIN, TOPIC_HARD_MAXLEN_MAX, ConfigurationFlags::DEFAULT, None],
            ["feed-wake-batch", &FEED_WAKE_BATCH, FEED_WAKE_BATCH_DEFAULT, FEED_WAKE_BATCH_MIN, FEED_WAKE_BATCH_MAX, ConfigurationFlags::DEFAULT, None],
            ["fanout-slice-us", &FANOUT_SLICE_US, FANOUT_SLICE_US_DEFAULT, FANOUT_SLICE_US_MIN, FANOUT_SLICE_US_MAX, ConfigurationFlags::DEFAULT, None],
            ["fanout-shared-min-subscribers", &FANOUT_SHARED_MIN_SUBSCRIBERS, FANOUT_SHARED_MIN_SUBSCRIBERS_DEFAULT, FANOUT_SHARED_MIN_SUBSCRIBERS_MIN, FANOUT_SHARED_MIN_SUBSCRIBERS_MAX, ConfigurationFlags::DEFAULT, None],
            ["classify-threads", &CLASSIFY_THREADS, CLASSIFY_THREADS_DEFAULT, CLASSIFY_THREADS_MIN, CLASSIFY_THREADS_MAX, ConfigurationFlags::DEFAULT, None],
            ["classify-batch", &CLASSIFY_BATCH, CLASSIFY_BATCH_DEFAULT, CLASSIFY_BATCH_MIN, CLASSIFY_BATCH_MAX, ConfigurationFlags::DEFAULT, None],
            ["classify-queue-max", &CLASSIFY_QUEUE_MAX, CLASSIFY_QUEUE_MAX_DEFAULT, CLASSIFY_QUEUE_MAX_MIN, CLASSIFY_QUEUE_MAX_MAX, ConfigurationFlags::DEFAULT, None],
            ["classify-max-tokens", &CLASSIFY_MAX_TOKENS, CLASSIFY_MAX_TOKENS_DEFAULT, CLASSIFY_MAX_TOKENS_MIN, CLASSIFY_MAX_TOKENS_MAX, ConfigurationFlags::DEFAULT, None],
            ["classify-length-plans", &CLASSIFY_LENGTH_PLANS, CLASSIFY_LENGTH_PLANS_DEFAULT, CLASSIFY_LENGTH_PLANS_MIN, CLASSIFY_LENGTH_PLANS_MAX, ConfigurationFlags::MEMORY, None],
            ["classify-escalate-percent", &CLASSIFY_ESCALATE_PERCENT, CLASSIFY_ESCALATE_PERCENT_DEFAULT, CLASSIFY_ESCALATE_PERCENT_MIN, CLASSIFY_ESCALATE_PERCENT_MAX, ConfigurationFlags::DEFAULT, None],
            ["classify-escalate-max-per-sec", &CLASSIFY_ESCALATE_MAX_PER_SEC, CLASSIFY_ESCALATE_MAX_PER_SEC_DEFAULT, CLASSIFY_ESCALATE_MAX_PER_SEC_MIN, CLASSIFY_ESCALATE_MAX_PER_SEC_MAX, ConfigurationFlags::DEFAULT, None],
            ["classify-learn-percent", &CLASSIFY_LEARN_PERCENT, CLASSIFY_LEARN_PERCENT_DEFAULT, CLASSIFY_LEARN_PERCENT_MIN, CLASSIFY_LEARN_PERCENT_MAX, ConfigurationFlags::DEFAULT, None],
            ["classify-static-max-tokens", &CLASSIFY_STATIC_MAX_TOKENS, CLASSIFY_STATIC_MAX_TOKENS_DEFAULT, CLASSIFY_STATIC_MAX_TOKENS_MIN, CLASSIFY_STATIC_MAX_TOKENS_MAX, ConfigurationFlags::DEFAULT, None],
            ["classify-word-weight", &CLASSIFY_WORD_WEIGHT, CLASSIFY_WORD_WEIGHT_DEFAULT, CLASSIFY_WORD_WEIGHT_MIN, CLASSIFY_WORD_WEIGHT_MAX, ConfigurationFlags::DEFAULT, None],
            ["pipeline-batch", &PIPELINE_BATCH, PIPELINE_BATCH_DEFAULT, PIPELINE_BATCH_MIN, PIPELINE_BATCH_MAX, ConfigurationFlags::DEFAULT, None],
            ["pipeline-max-inflight", &PIPELINE_MAX_INFLIGHT, PIPELINE_MAX_INFLIGHT_DEFAULT, PIPELINE_MAX_INFLIGHT_MIN, PIPELINE_MAX_INFLIGHT_MAX, ConfigurationFlags::DEFAULT, None],
            ["pipeline-stream-maxlen", &PIPELINE_STREAM_MAXLEN, PIPELINE_STREAM_MAXLEN_DEFAULT, PIPELINE_STREAM_MAXLEN_MIN, PIPELINE_STREAM_MAXLEN_MAX, ConfigurationFlags::DEFAULT, None],
            ["classify-yield-us", &CLASSIFY_YIELD_US, CLASSIFY_YIELD_US_DEFAULT, CLASSIFY_YIELD_US_MIN, CLASSIFY_YIELD_US_MAX, ConfigurationFlags::DEFAULT, None],
            ["pipeline-slice-us", &PIPELINE_SLICE_US, PIPELINE_SLICE_US_DEFAULT, PIPELINE_SLICE_US_MIN, PIPELINE_SLICE_US_MAX, ConfigurationFlags::DEFAULT, None],
            ["classify-timeout-ms", &CLASSIFY_TIMEOUT_MS, CLASSIFY_TIMEOUT_MS_DEFAULT, CLASSIFY_TIMEOUT_MS_MIN, CLASSIFY_TIMEOUT_MS_MAX, ConfigurationFlags::DEFAULT, None],
            ["sidecar-timeout-ms", &SIDECAR_TIMEOUT_MS, SIDECAR_TIMEOUT_MS_DEFAULT, SIDECAR_TIMEOUT_MS_MIN, SIDECAR_TIMEOUT_MS_MAX, ConfigurationFlags::DEFAULT, None],
            ["sidecar-ttl-ms", &SIDECAR_TTL_MS, SIDECAR_TTL_MS_DEFAULT, SIDECAR_TTL_MS_MIN, SIDECAR_TTL_MS_MAX, ConfigurationFlags::DEFAULT, None],
            ["cluster-resend-ms", &CLUSTER_RESEND_MS, CLUSTER_RESEND_MS_DEFAULT, CLUSTER_RESEND_MS_MIN, CLUSTER_RESEND_MS_MAX, ConfigurationFlags::DEFAULT, None],
            ["cluster-ack-wait-ms", &CLUSTER_ACK_WAIT_MS, CLUSTER_ACK_WAIT_MS_DEFAULT, CLUSTER_ACK_WAIT_MS_MIN, CLUSTER_ACK_WAIT_MS_MAX, ConfigurationFlags::DEFAULT, None],
        ],
        string: [
            ["model-dir", &MODEL_DIR, "", ConfigurationFlags::DEFAULT, Some(Box::new(on_model_dir_changed))],
            ["delivery-channel", &DELIVERY_CHANNEL, DELIVERY_CHANNEL_DEFAULT, ConfigurationFlags::DEFAULT, None],
        ],
        bool: [
            ["debug-commands", &DEBUG_COMMANDS, false, ConfigurationFlags::IMMUTABLE, None],
            ["classify-inline", &CLASSIFY_INLINE, true, ConfigurationFlags::DEFAULT, None],
            ["pipeline", &PIPELINE, false, ConfigurationFlags::DEFAULT, None],
        ],
        enum: [
            ["classify-tier", &CLASSIFY_TIER, ClassifyTier::Cascade, ConfigurationFlags::DEFAULT, None],
            ["classify-worker-priority", &CLASSIFY_WORKER_PRIORITY, WorkerPriority::Low, ConfigurationFlags::DEFAULT, Some(Box::new(on_worker_priority_changed))],
        ],
        module_args_as_configuration: true,
    ]
}
