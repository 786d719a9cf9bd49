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
    let spec = explicit_spec(topic, doc_key, &args[3..8])?;
    let users: Vec<&[u8]> = args[8..].iter().map(|a| validate::key(a, "user key")).collect::<Result<_, _>>()?;
    let job = Job::explicit(spec, &users);
    if job.has_wrong_type_target(ctx) {
        return Err(ValkeyError::Str("WRONGTYPE Operation against a key holding the wrong kind of value"));
    }
    Ok(fanout::start(ctx, job, false).unwrap_or(valkey_module::ValkeyValue::Null))
}

/// The delivery that `ts-ms feed-len seen-ttl-ms seen-fp-ppm seen-capacity` specify for a document:
/// the explicit parameters of the replicated forms (AGENT.DELIVER, AGENT.TIMELINE.APPEND).
pub fn explicit_spec(topic: &[u8], doc_key: &[u8], params: &[ValkeyString]) -> ValkeyResult<DeliverySpec> {
    let [ts, feed_len, ttl, fp, capacity] = params else { return Err(ValkeyError::WrongArity) };
    Ok(DeliverySpec {
        doc: Arc::new(DocRef { topic: topic.into(), key: doc_key.into() }),
        hash: DocHash::of(doc_key),
        ts_ms: validate::integer(ts, "timestamp", 0, crate::feed::ID_PART_MAX as i64)? as u64,
        feed_len: validate::integer(feed_len, "feed length", configs::FEED_LEN_MIN, configs::FEED_LEN_MAX)? as usize,
        seen: SeenParams {
            ttl_ms: validate::integer(ttl, "seen TTL (ms)", configs::SEEN_TTL_MIN * 1000, configs::SEEN_TTL_MAX * 1000)? as u64,
            fp_ppm: validate::integer(fp, "seen false-positive ppm", configs::SEEN_FP_PPM_MIN, configs::SEEN_FP_PPM_MAX)? as u32,
            capacity: validate::integer(capacity, "seen capacity", configs::SEEN_CAPACITY_MIN, configs::SEEN_CAPACITY_MAX)? as u32,
        },
    })
}
