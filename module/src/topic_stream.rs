//! Appending a document to its topic stream and trimming it to `topic-maxlen` without dropping
//! entries a consumer group has not processed (read and acknowledged), unless the operator set
//! `topic-hard-maxlen`; every forced drop is counted.
//!
//! All writes go through replicated calls with explicit arguments (the server propagates XADD
//! with the generated id), so replicas and the AOF see exactly what happened here.

use valkey_module::{CallOptions, CallOptionsBuilder, CallReply, CallResult, Context, ValkeyError};

use crate::ffi::{self, StreamId};
use crate::{configs, metrics};

fn write_opts() -> CallOptions {
    CallOptionsBuilder::new().replicate().errors_as_replies().build()
}

fn read_opts() -> CallOptions {
    CallOptionsBuilder::new().errors_as_replies().build()
}

fn call_error(what: &str, e: impl std::fmt::Display) -> ValkeyError {
    ValkeyError::String(format!("ERR {what} failed: {e}"))
}

fn integer(ctx: &Context, what: &str, args: &[&[u8]], opts: &CallOptions) -> Result<i64, ValkeyError> {
    match ctx.call_ext::<_, CallResult>(what, opts, args) {
        Ok(CallReply::I64(i)) => Ok(i.to_i64()),
        Ok(other) => Err(call_error(what, format!("unexpected reply {other}"))),
        Err(e) => Err(call_error(what, e.to_string())),
    }
}

pub fn append_and_trim(ctx: &Context, stream: &[u8], doc_key: &[u8], payload: &[u8]) -> Result<(), ValkeyError> {
    match ctx.call_ext::<_, CallResult>("XADD", &write_opts(), &[stream, b"*", b"doc", doc_key, b"data", payload]) {
        Ok(_) => metrics::STREAM_APPENDS.incr(),
        Err(e) => return Err(call_error("XADD", e.to_string())),
    }
    trim(ctx, stream, configs::topic_maxlen(), configs::topic_hard_maxlen())
}

/// Trims `stream` to `maxlen` as far as its consumer groups allow; above `hard` (0 = never) it
/// drops unprocessed entries too, counting each.
pub fn trim(ctx: &Context, stream: &[u8], maxlen: u64, hard: u64) -> Result<(), ValkeyError> {
    let len = integer(ctx, "XLEN", &[stream], &read_opts())? as u64;
    if len <= maxlen {
        return Ok(());
    }
    let excess = len - maxlen;
    let boundary = processed_boundary(ctx, stream)?;
    let (removable, last) = ffi::count_oldest_below(ctx, stream, excess, boundary);
    let maxlen_arg = maxlen.to_string();
    let mut remaining = len;
    if removable == excess {
        let n = integer(ctx, "XTRIM", &[stream, b"MAXLEN", b"=", maxlen_arg.as_bytes()], &write_opts())?;
        metrics::STREAM_TRIMMED.add(n as u64);
        remaining -= n as u64;
    } else {
        if let Some(last) = last {
            let min_id = last.successor().to_string();
            let n = integer(ctx, "XTRIM", &[stream, b"MINID", b"=", min_id.as_bytes()], &write_opts())?;
            metrics::STREAM_TRIMMED.add(n as u64);
            remaining -= n as u64;
        }
        metrics::STREAM_TRIM_DEFERRED.incr();
    }
    if hard > 0 && remaining > hard {
        let n = integer(ctx, "XTRIM", &[stream, b"MAXLEN", b"=", maxlen_arg.as_bytes()], &write_opts())?;
        metrics::STREAM_FORCED_DROPS.add(n as u64);
        ffi::log_warning(&format!(
            "agentic: dropped {n} entries of {} that a consumer group had not processed (over topic-hard-maxlen {hard})",
            String::from_utf8_lossy(stream)
        ));
    }
    Ok(())
}

/// The lowest id some consumer group has not processed yet: its oldest pending entry, or the
/// entry after its last-delivered id. `None` when no group exists (everything may go).
fn processed_boundary(ctx: &Context, stream: &[u8]) -> Result<Option<StreamId>, ValkeyError> {
    let groups = match ctx.call_ext::<_, CallResult>("XINFO", &read_opts(), &[&b"GROUPS"[..], stream]) {
        Ok(CallReply::Array(a)) => a,
        Ok(other) => return Err(call_error("XINFO GROUPS", format!("unexpected reply {other}"))),
        Err(e) => return Err(call_error("XINFO GROUPS", e.to_string())),
    };
    let mut boundary: Option<StreamId> = None;
    for group in groups.iter() {
        let Ok(CallReply::Array(fields)) = group else { continue };
        let mut name: Vec<u8> = Vec::new();
        let mut last_delivered = StreamId { ms: 0, seq: 0 };
        let mut pending = 0i64;
        let mut i = 0;
        while i + 1 < fields.len() {
            let (Some(Ok(k)), Some(Ok(v))) = (fields.get(i), fields.get(i + 1)) else { break };
            let key = reply_bytes(&k);
            match key.as_slice() {
                b"name" => name = reply_bytes(&v),
                b"last-delivered-id" => last_delivered = StreamId::parse(&reply_bytes(&v)).unwrap_or(last_delivered),
                b"pending" => {
                    if let CallReply::I64(n) = &v {
                        pending = n.to_i64()
                    }
                }
                _ => {}
            }
            i += 2;
        }
        let mut group_bound = last_delivered.successor();
        if pending > 0 {
            if let Ok(CallReply::Array(summary)) = ctx.call_ext::<_, CallResult>("XPENDING", &read_opts(), &[stream, name.as_slice()]) {
                if let Some(Ok(min)) = summary.get(1) {
                    if let Some(id) = StreamId::parse(&reply_bytes(&min)) {
                        group_bound = group_bound.min(id);
                    }
                }
            }
        }
        boundary = Some(boundary.map_or(group_bound, |b| b.min(group_bound)));
    }
    Ok(boundary)
}

/// The bytes of a string-like call reply (integers as their decimal text); empty otherwise.
pub fn reply_bytes(r: &CallReply) -> Vec<u8> {
    match r {
        CallReply::String(s) => s.as_bytes().to_vec(),
        CallReply::VerbatimString(s) => s.as_parts().map(|(_, d)| d.to_vec()).unwrap_or_default(),
        CallReply::I64(i) => i.to_i64().to_string().into_bytes(),
        _ => Vec::new(),
    }
}
