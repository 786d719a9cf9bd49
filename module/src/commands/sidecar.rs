//! AGENT.SIDECAR.NEXT / RESULT / LIST: the protocol of classification sidecars (see
//! classify/sidecar.rs). A sidecar loops: NEXT (blocks until texts are queued, replies
//! `[batch-id, max-tokens, [text, ...]]` or nil when BLOCK passes), embeds the texts with the same
//! model, then RESULT with the vectors (or ERROR, and the CPU pool takes the batch).

use std::time::Duration;

use valkey_module::{Context, ContextFlags, ValkeyError, ValkeyResult, ValkeyString, ValkeyValue};
use valkey_module_macros::command;

use crate::classify::{model, sidecar};
use crate::{ffi, validate};

const BATCH_DEFAULT: i64 = 64;
const BATCH_MAX: i64 = 4096;
const BLOCK_DEFAULT_MS: i64 = 1000;
const BLOCK_MAX_MS: i64 = 60_000;

#[command({
    name: "agent.sidecar.next",
    flags: [ReadOnly, Blocking],
    arity: -6,
    summary: "A classification sidecar's request for work: registers it as live and blocks until texts are queued",
    complexity: "O(N) for a batch of N texts",
    since: "0.1.0",
    key_spec: []
})]
fn agent_sidecar_next(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    super::run(ctx, args, next)
}

#[command({
    name: "agent.sidecar.result",
    flags: [ReadOnly],
    arity: -5,
    summary: "A classification sidecar's vectors (or failure) for a batch it took with AGENT.SIDECAR.NEXT",
    complexity: "O(N) for a batch of N texts",
    since: "0.1.0",
    key_spec: []
})]
fn agent_sidecar_result(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    super::run(ctx, args, result)
}

#[command({
    name: "agent.sidecar.list",
    flags: [ReadOnly],
    arity: 1,
    summary: "The sidecars this node knows: id, device, live, waiting, batches in flight",
    complexity: "O(S) for S sidecars",
    since: "0.1.0",
    key_spec: []
})]
fn agent_sidecar_list(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    super::run(ctx, args, list)
}

fn name(arg: &ValkeyString, what: &str, max: usize) -> Result<String, ValkeyError> {
    let b = arg.as_slice();
    if b.is_empty() || b.len() > max || !b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.:@".contains(c)) {
        return Err(validate::err(format!("ERR invalid {what}: use 1-{max} characters of A-Z a-z 0-9 - _ . : @")));
    }
    Ok(String::from_utf8_lossy(b).into_owned())
}

/// AGENT.SIDECAR.NEXT id DEVICE device MODEL fingerprint [BATCH n] [BLOCK ms]
fn next(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    let id = name(&args[1], "sidecar id", 128)?;
    let (mut device, mut fingerprint, mut batch, mut block) = (None, None, BATCH_DEFAULT, BLOCK_DEFAULT_MS);
    let mut i = 2;
    while i < args.len() {
        let value =
            args.get(i + 1).ok_or_else(|| validate::err(format!("ERR {} needs a value", validate::printable(args[i].as_slice()))))?;
        match validate::keyword(&args[i]).as_str() {
            "DEVICE" => device = Some(name(value, "device", 64)?),
            "MODEL" => fingerprint = Some(value.to_string_lossy()),
            "BATCH" => batch = validate::integer(value, "BATCH", 1, BATCH_MAX)?,
            "BLOCK" => block = validate::integer(value, "BLOCK (ms)", 0, BLOCK_MAX_MS)?,
            _ => {
                return Err(validate::err(format!(
                    "ERR unexpected argument '{}': expected DEVICE, MODEL, BATCH or BLOCK",
                    validate::printable(args[i].as_slice())
                )))
            }
        }
        i += 2;
    }
    let device = device.ok_or(ValkeyError::Str("ERR DEVICE is required (e.g. cuda:0 or cpu)"))?;
    let fingerprint = fingerprint.ok_or(ValkeyError::Str("ERR MODEL is required: the fingerprint of the sidecar's model files"))?;
    // Vectors are only comparable under one model; scoring needs the module's own copy (topic vectors).
    let encoder = model::encoder().map_err(|e| {
        validate::err(format!("ERR the server cannot score sidecar results: {}", validate::printable_message(e.as_bytes())))
    })?;
    let ours = format!("{:016x}", encoder.fingerprint);
    if !fingerprint.eq_ignore_ascii_case(&ours) {
        return Err(validate::err(format!(
            "ERR the sidecar's model ({}) is not the server's model-dir ({ours}): point both at the same files",
            validate::printable(fingerprint.as_bytes())
        )));
    }
    if ctx.get_flags().contains(ContextFlags::DENY_BLOCKING) {
        return Err(ValkeyError::Str("ERR AGENT.SIDECAR.NEXT cannot run inside MULTI or Lua"));
    }
    // No server-side timeout: the wait is ended by our own timer, which knows which wait it ends.
    let client = ffi::block_client::<sidecar::NextAnswer>(ctx, 0).ok_or(ValkeyError::Str("ERR the server refused to block this client"))?;
    if let Some(wait_id) = sidecar::next(&id, &device, batch as usize, client) {
        ctx.create_timer(
            Duration::from_millis(block as u64),
            move |_ctx, (id, wait_id): (String, u64)| sidecar::wait_over(&id, wait_id),
            (id, wait_id),
        );
    }
    Ok(ValkeyValue::NoReply)
}

/// AGENT.SIDECAR.RESULT id batch-id VECTORS dim blob | AGENT.SIDECAR.RESULT id batch-id ERROR message
fn result(_ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    let id = name(&args[1], "sidecar id", 128)?;
    let batch = validate::integer(&args[2], "batch id", 1, i64::MAX)? as u64;
    match validate::keyword(&args[3]).as_str() {
        "VECTORS" => {
            if args.len() != 6 {
                return Err(ValkeyError::Str("ERR VECTORS takes two arguments: dim and the little-endian float32 blob"));
            }
            let encoder = model::encoder().map_err(|e| validate::err(format!("ERR {}", validate::printable_message(e.as_bytes()))))?;
            let dim = validate::integer(&args[4], "dim", 1, 65_536)? as usize;
            if dim != encoder.dim {
                return Err(validate::err(format!("ERR dim {dim} is not the model's {}", encoder.dim)));
            }
            let vectors = sidecar::vectors_of(args[5].as_slice(), dim).map_err(|e| validate::err(format!("ERR {e}")))?;
            sidecar::result(&id, batch, vectors).map_err(|e| validate::err(format!("ERR {e}")))?;
        }
        "ERROR" => {
            if args.len() != 5 {
                return Err(ValkeyError::Str("ERR ERROR takes one argument: the message"));
            }
            ffi::log_warning(&format!("agentic: sidecar {id} failed batch {batch}: {}", validate::printable(args[4].as_slice())));
            sidecar::failed(&id, batch).map_err(|e| validate::err(format!("ERR {e}")))?;
        }
        _ => return Err(ValkeyError::Str("ERR expected VECTORS dim blob or ERROR message")),
    }
    Ok(ValkeyValue::SimpleStringStatic("OK"))
}

fn list(_ctx: &Context, _args: Vec<ValkeyString>) -> ValkeyResult {
    Ok(ValkeyValue::Array(
        sidecar::list()
            .into_iter()
            .map(|s| {
                ValkeyValue::Array(vec![
                    ValkeyValue::BulkString("id".into()),
                    ValkeyValue::BulkString(s.id),
                    ValkeyValue::BulkString("device".into()),
                    ValkeyValue::BulkString(s.device),
                    ValkeyValue::BulkString("live".into()),
                    ValkeyValue::Integer(s.live as i64),
                    ValkeyValue::BulkString("waiting".into()),
                    ValkeyValue::Integer(s.waiting as i64),
                    ValkeyValue::BulkString("inflight".into()),
                    ValkeyValue::Integer(s.inflight as i64),
                    ValkeyValue::BulkString("idle_ms".into()),
                    ValkeyValue::Integer(s.idle_ms as i64),
                ])
            })
            .collect(),
    ))
}
