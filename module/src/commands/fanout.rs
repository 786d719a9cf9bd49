//! AGENT.FANOUT topic doc-key payload [STREAM stream-key] [USERS user-key ...]

use std::sync::Arc;

use valkey_module::{CallOptionsBuilder, CallResult, Context, ContextFlags, ValkeyError, ValkeyResult, ValkeyString, ValkeyValue};
use valkey_module_macros::command;

use crate::fanout::{self, Job};
use crate::feed::DocRef;
use crate::ffi::{self, KeyKind};
use crate::seen::DocHash;
use crate::user::DeliverySpec;
use crate::{cluster, configs, index, metrics, topic_stream, validate};

#[command({
    name: "agent.fanout",
    flags: [Write, DenyOOM, GetkeysApi],
    arity: -4,
    summary: "Stores a document once and delivers it to every subscriber of its topic (or to the listed users), with per-user dedup and bounded feeds",
    complexity: "O(N) for N subscribers, worked through in bounded event-loop slices",
    since: "0.1.0",
    key_spec: [
        { notes: "document key", flags: [ReadWrite, Update], begin_search: Index({ index: 2 }), find_keys: Range({ last_key: 0, steps: 1, limit: 0 }) },
        { notes: "topic stream", flags: [ReadWrite, Insert], begin_search: Keyword({ keyword: "STREAM", startfrom: 4 }), find_keys: Range({ last_key: 0, steps: 1, limit: 0 }) },
        { notes: "explicit user keys", flags: [ReadWrite, Update], begin_search: Keyword({ keyword: "USERS", startfrom: 4 }), find_keys: Range({ last_key: -1, steps: 1, limit: 0 }) }
    ]
})]
fn agent_fanout(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    if ctx.is_keys_position_request() {
        // The server's routing asks for every key (the STREAM and USERS key specs start at a
        // keyword, which the server's own key finder for module commands skips): Valkey Cluster
        // then answers CROSSSLOT, MOVED, ASK or TRYAGAIN for all of them before anything runs.
        key_positions(&args).into_iter().for_each(|pos| ctx.key_at_pos(pos as i32));
        return Ok(ValkeyValue::NoReply);
    }
    super::run(ctx, args, fanout_command)
}

/// Argument positions of the document key, the stream key and the user keys; never fails
/// (a malformed command is refused later, when it runs).
fn key_positions(args: &[ValkeyString]) -> Vec<usize> {
    let mut keys = Vec::new();
    if args.len() > 2 {
        keys.push(2);
    }
    let mut i = 4;
    while i < args.len() {
        match validate::keyword(&args[i]).as_str() {
            "STREAM" if i + 1 < args.len() => {
                keys.push(i + 1);
                i += 2;
            }
            "USERS" => {
                keys.extend(i + 1..args.len());
                break;
            }
            _ => break,
        }
    }
    keys
}

struct Request<'a> {
    topic: &'a [u8],
    doc_key: &'a [u8],
    payload: &'a [u8],
    stream: Option<&'a [u8]>,
    users: Option<Vec<&'a [u8]>>,
}

fn parse(args: &[ValkeyString]) -> Result<Request<'_>, ValkeyError> {
    let mut req = Request {
        topic: validate::topic(&args[1])?,
        doc_key: validate::key(&args[2], "document key")?,
        payload: validate::payload(&args[3])?,
        stream: None,
        users: None,
    };
    let mut i = 4;
    while i < args.len() {
        match validate::keyword(&args[i]).as_str() {
            "STREAM" if req.stream.is_none() => {
                let key = args.get(i + 1).ok_or(ValkeyError::Str("ERR STREAM needs a stream key"))?;
                req.stream = Some(validate::key(key, "stream key")?);
                i += 2;
            }
            "USERS" => {
                let users: Vec<&[u8]> = args[i + 1..].iter().map(|a| validate::key(a, "user key")).collect::<Result<_, _>>()?;
                if users.is_empty() {
                    return Err(ValkeyError::Str("ERR USERS needs at least one user key"));
                }
                req.users = Some(users);
                i = args.len();
            }
            _ => return Err(validate::err(format!("ERR syntax error near '{}'", validate::printable(args[i].as_slice())))),
        }
    }
    Ok(req)
}

const WRONGTYPE: ValkeyError = ValkeyError::Str("WRONGTYPE Operation against a key holding the wrong kind of value");

fn fanout_command(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    let req = parse(&args)?;
    // Every check before the first write.
    if !matches!(ffi::key_type_of(ctx, req.doc_key), KeyKind::Missing | KeyKind::String) {
        return Err(WRONGTYPE);
    }
    if req.stream == Some(req.doc_key) || req.users.as_ref().is_some_and(|u| u.iter().any(|k| *k == req.doc_key || Some(*k) == req.stream))
    {
        return Err(ValkeyError::Str("ERR the document key, the stream key and user keys must all differ"));
    }
    if let Some(stream) = req.stream {
        if !matches!(ffi::key_type_of(ctx, stream), KeyKind::Missing | KeyKind::Stream) {
            return Err(WRONGTYPE);
        }
    }
    let can_block = !ctx.get_flags().contains(ContextFlags::DENY_BLOCKING);
    if cluster::enabled() && req.users.is_none() && !can_block {
        return Err(ValkeyError::Str(
            "ERR on a cluster node a fan-out to subscribers cannot run inside MULTI or a script (its subscribers live in other slots); name the users with USERS, or send it on its own",
        ));
    }
    let spec = DeliverySpec {
        doc: Arc::new(DocRef { topic: req.topic.into(), key: req.doc_key.into() }),
        hash: DocHash::of(req.doc_key),
        ts_ms: ffi::now_ms(),
        feed_len: configs::feed_len(),
        seen: configs::seen_params(),
    };
    let job = match req.users {
        Some(users) => {
            let job = Job::explicit(spec, &users);
            if job.has_wrong_type_target(ctx) {
                return Err(WRONGTYPE);
            }
            job
        }
        None => {
            if let Some(followers) = super::timeline::shared_audience(ctx, req.topic) {
                // A large topic: stored and streamed as always, then appended once to its shared
                // timeline for every follower (README, "Shared timelines").
                store_document(ctx, req.doc_key, req.payload)?;
                if let Some(stream) = req.stream {
                    topic_stream::append_and_trim(ctx, stream, req.doc_key, req.payload)?;
                }
                metrics::FANOUT_CALLS.incr();
                let appended = super::timeline::share_for(ctx, &spec, followers)?;
                let (delivered, duplicates) = if appended { (followers, 0) } else { (0, followers) };
                return Ok(fanout::outcome_reply(delivered as u64, duplicates as u64));
            }
            let (subscribers, generation) = index::with(|ix| ix.snapshot(req.topic));
            Job::subscribers(spec, subscribers, generation)
        }
    };

    store_document(ctx, req.doc_key, req.payload)?;
    if let Some(stream) = req.stream {
        topic_stream::append_and_trim(ctx, stream, req.doc_key, req.payload)?;
    }

    Ok(fanout::start(ctx, job, can_block).unwrap_or(ValkeyValue::NoReply))
}

/// SET with an explicit TTL, replicated (the server propagates PX as an absolute PXAT).
pub fn store_document(ctx: &Context, doc_key: &[u8], payload: &[u8]) -> Result<(), ValkeyError> {
    let opts = CallOptionsBuilder::new().replicate().errors_as_replies().build();
    let ttl = configs::doc_ttl_ms().to_string();
    let result = if configs::doc_ttl_ms() > 0 {
        ctx.call_ext::<_, CallResult>("SET", &opts, &[doc_key, payload, b"PX", ttl.as_bytes()])
    } else {
        ctx.call_ext::<_, CallResult>("SET", &opts, &[doc_key, payload])
    };
    result.map(|_| ()).map_err(|e| validate::err(format!("ERR storing the document failed: {e}")))
}
