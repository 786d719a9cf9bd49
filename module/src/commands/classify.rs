//! AGENT.CLASSIFY text [TIMEOUT ms] [TOPICS slug ...]: the best topic for a text, every
//! candidate's score and the tier that answered (`static` or `model`, see classify/cascade.rs). Runs on the classify pool and blocks only the caller; inside MULTI or Lua,
//! where a client cannot block, it computes inline (or refuses, with `classify-inline no`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use valkey_module::{Context, ContextFlags, ValkeyError, ValkeyResult, ValkeyString, ValkeyValue};
use valkey_module_macros::command;

use crate::classify::catalog::Catalog;
use crate::classify::pool::{self, FromOutcome, Request};
use crate::classify::{model, Classification};
use crate::ffi::{self, BlockedAnswer};
use crate::{configs, metrics, validate};

#[command({
    name: "agent.classify",
    flags: [ReadOnly, Blocking],
    arity: -2,
    summary: "Classifies a text into the best-matching topic with a sentence-embedding model, off the event loop",
    complexity: "O(N + T) for a text of N tokens and T topics, computed on a worker thread",
    since: "0.1.0",
    key_spec: []
})]
fn agent_classify(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    super::run(ctx, args, classify)
}

pub struct Answer(Result<Classification, String>);

impl FromOutcome for Answer {
    fn from_outcome(result: Result<Classification, String>) -> Self {
        Answer(result)
    }
}

impl BlockedAnswer for Answer {
    fn reply(self, _ctx: &Context) -> ValkeyResult {
        render(self.0)
    }
    fn timed_out(_ctx: &Context) -> ValkeyResult {
        metrics::CLASSIFY_TIMEOUTS.incr();
        Err(ValkeyError::String(format!(
            "ERR AGENT.CLASSIFY timed out waiting for the classify pool ({} requests queued); raise TIMEOUT or agentic.classify-threads",
            pool::queue_depth()
        )))
    }
    fn lost(_ctx: &Context) -> ValkeyResult {
        metrics::CLASSIFY_FAILURES.incr();
        Err(ValkeyError::Str("ERR AGENT.CLASSIFY failed: the worker stopped without an answer (see the server log)"))
    }
}

fn render(result: Result<Classification, String>) -> ValkeyResult {
    let c = result.map_err(|e| ValkeyError::String(format!("ERR {}", validate::printable(e.as_bytes()))))?;
    let scores =
        c.scores.iter().flat_map(|(slug, s)| [ValkeyValue::BulkString(slug.clone()), ValkeyValue::BulkString(format!("{s:.4}"))]).collect();
    Ok(ValkeyValue::Array(vec![
        ValkeyValue::BulkString(c.best),
        ValkeyValue::Array(scores),
        ValkeyValue::BulkString(c.tier.as_str().into()),
    ]))
}

fn classify(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    metrics::CLASSIFY_CALLS.incr();
    let text = crate::classify::catalog::check_text(args[1].as_slice(), "text", configs::max_doc_bytes())
        .map_err(|e| validate::err(format!("ERR {e}")))?;
    let mut timeout_ms = configs::classify_timeout_ms();
    let mut topics: Option<Vec<String>> = None;
    let mut i = 2;
    while i < args.len() {
        match validate::keyword(&args[i]).as_str() {
            "TIMEOUT" => {
                let v = args.get(i + 1).ok_or(ValkeyError::Str("ERR TIMEOUT needs a value in milliseconds"))?;
                timeout_ms = validate::integer(v, "TIMEOUT (ms)", 0, configs::CLASSIFY_TIMEOUT_MS_MAX)?;
                i += 2;
            }
            "TOPICS" => {
                let slugs: Vec<String> = args[i + 1..]
                    .iter()
                    .map(|a| validate::topic(a).map(|b| String::from_utf8_lossy(b).into_owned()))
                    .collect::<Result<_, _>>()?;
                if slugs.is_empty() {
                    return Err(ValkeyError::Str("ERR TOPICS needs at least one topic"));
                }
                topics = Some(slugs);
                i = args.len();
            }
            _ => {
                return Err(validate::err(format!(
                    "ERR unexpected argument '{}': expected TIMEOUT ms or TOPICS slug ...",
                    validate::printable(args[i].as_slice())
                )))
            }
        }
    }
    let catalog: Arc<Catalog> = super::topic::current_catalog(ctx)?;
    if catalog.topics.is_empty() {
        return Err(ValkeyError::Str(
            "ERR no topics are defined: add one with AGENT.TOPIC.SET or restore the defaults with AGENT.TOPIC.RESET",
        ));
    }
    if let Some(t) = &topics {
        if let Some(missing) = t.iter().find(|s| catalog.get(s).is_none()) {
            return Err(validate::err(format!("ERR no topic '{missing}' (see AGENT.TOPIC.LIST)")));
        }
    }
    if let Err(e) = model::encoder() {
        metrics::CLASSIFY_FAILURES.incr();
        return Err(validate::err(format!("ERR {}", validate::printable_message(e.as_bytes()))));
    }

    if ctx.get_flags().contains(ContextFlags::DENY_BLOCKING) {
        if !configs::classify_inline() {
            return Err(ValkeyError::Str("ERR AGENT.CLASSIFY cannot block inside MULTI or Lua and agentic.classify-inline is no"));
        }
        metrics::CLASSIFY_INLINE_CALLS.incr();
        let started = Instant::now();
        let result =
            crate::classify::passes::classify_texts(&[&text], vec![(catalog, topics)]).pop().unwrap_or_else(|| Err("no result".into()));
        metrics::CLASSIFY_LATENCY_US.record(started.elapsed().as_micros() as u64);
        if result.is_err() {
            metrics::CLASSIFY_FAILURES.incr();
        }
        return render(result);
    }

    let waiting = pool::queue_depth();
    if waiting >= configs::classify_queue_max() {
        metrics::CLASSIFY_REJECTED.incr();
        return Err(validate::err(format!(
            "ERR classify queue is full ({waiting} requests waiting, agentic.classify-queue-max); retry later"
        )));
    }
    let client = ffi::block_client::<Answer>(ctx, timeout_ms).ok_or(ValkeyError::Str("ERR the server refused to block this client"))?;
    let now = Instant::now();
    let deadline = (timeout_ms > 0).then(|| now + Duration::from_millis(timeout_ms as u64));
    if !pool::submit(Box::new(Request { text, topics, catalog, deadline, enqueued: now, client })) {
        // Only the main thread submits and it checked the depth just above; the dropped request
        // still answers its client.
        metrics::CLASSIFY_REJECTED.incr();
    }
    Ok(ValkeyValue::NoReply)
}
