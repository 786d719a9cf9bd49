//! AGENT.DELIVER topic doc-key ts-ms feed-len seen-ttl-ms seen-fp-ppm seen-capacity user-key ...
//!
//! The fully specified form of a delivery: what AGENT.FANOUT replicates and writes to the AOF,
//! one command per event-loop slice. Every parameter is explicit, so it never depends on the
//! replica's configuration or clock. Runs inline.

use std::sync::Arc;

use valkey_module::{Context, ValkeyError, ValkeyResult, ValkeyString};
use valkey_module_macros::command;

use crate::fanout::{self, Job};
use crate::feed::DocRef;
use crate::seen::{DocHash, SeenParams};
use crate::user::DeliverySpec;
use crate::{configs, validate};

#[command({
    name: "agent.deliver",
    flags: [Write, DenyOOM],
    arity: -9,
    summary: "Delivers a stored document to the listed users with fully explicit parameters (the replicated form of AGENT.FANOUT)",
    complexity: "O(N) for N users",
    since: "0.1.0",
    key_spec: [
        { notes: "user keys", flags: [ReadWrite, Update], begin_search: Index({ index: 8 }), find_keys: Range({ last_key: -1, steps: 1, limit: 0 }) }
    ]
})]
fn agent_deliver(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    super::run(ctx, args, deliver)
}

fn deliver(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    let topic = validate::topic(&args[1])?;
    let doc_key = validate::key(&args[2], "document key")?;
    let ts_ms = validate::integer(&args[3], "timestamp", 0, i64::MAX)? as u64;
    let feed_len = validate::integer(&args[4], "feed length", configs::FEED_LEN_MIN, configs::FEED_LEN_MAX)? as usize;
    let ttl_ms = validate::integer(&args[5], "seen TTL (ms)", configs::SEEN_TTL_MIN * 1000, configs::SEEN_TTL_MAX * 1000)? as u64;
    let fp_ppm = validate::integer(&args[6], "seen false-positive ppm", configs::SEEN_FP_PPM_MIN, configs::SEEN_FP_PPM_MAX)? as u32;
    let capacity = validate::integer(&args[7], "seen capacity", configs::SEEN_CAPACITY_MIN, configs::SEEN_CAPACITY_MAX)? as u32;
    let users: Vec<&[u8]> = args[8..].iter().map(|a| validate::key(a, "user key")).collect::<Result<_, _>>()?;
    let spec = DeliverySpec {
        doc: Arc::new(DocRef { topic: topic.into(), key: doc_key.into() }),
        hash: DocHash::of(doc_key),
        ts_ms,
        feed_len,
        seen: SeenParams { ttl_ms, fp_ppm, capacity },
    };
    let job = Job::explicit(spec, &users);
    if job.has_wrong_type_target(ctx) {
        return Err(ValkeyError::Str("WRONGTYPE Operation against a key holding the wrong kind of value"));
    }
    Ok(fanout::start(ctx, job, false).unwrap_or(valkey_module::ValkeyValue::Null))
}
