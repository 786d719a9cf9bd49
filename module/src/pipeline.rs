//! The in-server pipeline: when `pipeline` is on, the primary consumes `news_raw` with the consumer
//! group `agentic`, classifies each article on the classify pool, stores it once, appends it to
//! `topic:<slug>` (field `data` holds the JSON document), fans it out to the topic's subscribers and
//! acknowledges it. Everything runs from a timer on the main thread except the model, which runs
//! on the pool; results come back through a queue the next tick drains.
//!
//! Restart safety: an entry is acknowledged only after its fan-out finished. After a crash the
//! consumer's pending entries are read again first (XREADGROUP from id 0) and redone; the stored
//! document and the feeds' seen-filters make the redo idempotent, so nothing is lost and nobody
//! gets an article twice.
//!
//! The classifier is not a pure function of the text (the cascade's escalations depend on load,
//! the self-trained heads on what this node has seen), so a redo must not classify again: each
//! article's topic is recorded in `ROUTED` (replicated, written before any effect) and a redo,
//! here or on a promoted replica, reuses it. The record goes with the acknowledgement.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use valkey_module::{CallOptions, CallOptionsBuilder, CallReply, CallResult, Context, ContextFlags};

use crate::classify::catalog::Catalog;
use crate::classify::pool::{self, Job};
use crate::classify::Classification;
use crate::fanout;
use crate::feed::DocRef;
use crate::seen::DocHash;
use crate::topic_stream::{self, reply_bytes};
use crate::user::DeliverySpec;
use crate::{cluster, cluster_pipeline, configs, ffi, index, metrics};

pub const STREAM: &str = "news_raw";
pub const GROUP: &str = "agentic";
pub const CONSUMER: &str = "agentic-pipeline";
/// Hash of entry id -> "<topic> <score>" for articles classified and not yet acknowledged; its
/// hash tag puts it in news_raw's slot on a cluster.
pub const ROUTED: &str = "agentic:routed:{news_raw}";
/// Bytes of an article's text kept for classification (title and the start of its body); each
/// tier reads at most its own token budget of it (classify/lead.rs).
const MAX_ARTICLE_TEXT: usize = 8_192;

/// An article whose classification came back from the pool.
struct Classified {
    entry_id: String,
    article_id: String,
    doc: serde_json::Map<String, serde_json::Value>,
    result: Result<Classification, String>,
    /// The topic came from `ROUTED` (a redo), not from the classifier.
    recorded: bool,
}

struct State {
    group_ready: bool,
    /// After a start or a failure: re-read this consumer's pending entries (from this id) before new ones.
    pending_from: Option<String>,
    /// Entry ids read and not yet acknowledged (classifying or fanning out).
    inflight: BTreeSet<String>,
    /// Cluster mode: articles in news_raw order, filled in as they are classified and sent from
    /// the front, so every node applies them in the order they were ingested.
    order: BTreeMap<(u64, u64), Option<cluster_pipeline::Outgoing>>,
}

static STATE: Mutex<State> =
    Mutex::new(State { group_ready: false, pending_from: Some(String::new()), inflight: BTreeSet::new(), order: BTreeMap::new() });
static CLASSIFIED: Mutex<Vec<Classified>> = Mutex::new(Vec::new());
static TICKING: AtomicBool = AtomicBool::new(false);

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

fn write_opts() -> CallOptions {
    CallOptionsBuilder::new().replicate().errors_as_replies().build()
}

fn read_opts() -> CallOptions {
    CallOptionsBuilder::new().errors_as_replies().build()
}

/// Starts the pipeline's timer (once); it keeps running, idle while `pipeline` is off.
pub fn start_ticking(ctx: &Context) {
    if !TICKING.swap(true, Ordering::Relaxed) {
        ffi::schedule_pipeline_tick(ctx, 10);
    }
}

/// An XADD to news_raw wakes the pipeline at once instead of at its next idle tick (only a timer
/// is created here: writing from a keyspace notification would break replication order).
pub fn on_stream_event(ctx: &Context, _kind: valkey_module::NotifyEvent, event: &str, key: &[u8]) {
    if event == "xadd" && key == STREAM.as_bytes() && configs::pipeline_enabled() {
        ffi::guard("pipeline wake-up", (), || ffi::schedule_pipeline_tick(ctx, 0));
    }
}

/// What a step leaves behind, which decides when the next one runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Next {
    /// Nothing in flight: the next idle tick (or an XADD to news_raw) wakes the pipeline.
    Idle,
    /// Articles are with the classifier or fanning out.
    Busy,
    /// The slice's time ran out with work in hand: go on in the next event-loop iteration.
    Yielded,
}

/// One pipeline step of at most `pipeline-slice-us`; re-arms itself: in the next event-loop
/// iteration when it stopped with work left, 1 ms while work is in flight, 20 ms when idle.
pub fn tick(ctx: &Context) {
    if ffi::writes_paused() {
        // Everything the pipeline does writes (reads from the group, stores, delivers, acks).
        ffi::schedule_pipeline_tick(ctx, 10);
        return;
    }
    let deadline = Instant::now() + std::time::Duration::from_micros(configs::pipeline_slice_us());
    ffi::guard("self-trained heads", (), || crate::heads_sync::tick(ctx));
    let next = ffi::guard("pipeline", Next::Busy, || step(ctx, deadline));
    if next == Next::Yielded {
        metrics::PIPELINE_SLICE_YIELDS.incr();
    }
    ffi::schedule_pipeline_tick(
        ctx,
        match next {
            Next::Yielded => 0,
            Next::Busy => 1,
            Next::Idle => 20,
        },
    );
}

fn step(ctx: &Context, deadline: Instant) -> Next {
    let flags = ctx.get_flags();
    let primary = flags.contains(ContextFlags::MASTER) && !flags.contains(ContextFlags::LOADING);
    if cluster::enabled() && !flags.contains(ContextFlags::LOADING) {
        cluster::note_loaded(ctx);
        crate::catalog_sync::tick(ctx);
    }
    // On a cluster every primary applies the articles the ingest node sends, pipeline or not.
    let cluster_busy = cluster::enabled() && primary && cluster_pipeline::tick(ctx);
    let ingest = configs::pipeline_enabled() && primary && (!cluster::enabled() || serves_news_raw(ctx));
    if !ingest {
        let mut s = state();
        s.group_ready = false;
        s.pending_from = Some(String::new());
        if cluster::enabled() {
            // A new ingest node (or this one later) starts a new session from news_raw's pending entries.
            s.inflight.clear();
            s.order.clear();
        }
        drop(s);
        cluster_pipeline::stop_sending();
        if !primary {
            cluster_pipeline::forget_sessions();
        }
        return if cluster_busy { Next::Busy } else { Next::Idle };
    }
    if ffi::selected_db(ctx) != 0 {
        ffi::select_db(ctx, 0);
    }
    let finished_all = finish_classified(ctx, deadline);
    if !ensure_group(ctx) {
        return if cluster_busy { Next::Busy } else { Next::Idle };
    }
    // New articles are read only when the classified ones are all out, so the event loop does
    // not run longer than the slice to take in more work.
    let yielded = !finished_all || Instant::now() >= deadline;
    if !yielded {
        read_more(ctx);
    }
    update_backlog(ctx);
    let s = state();
    metrics::PIPELINE_INFLIGHT.set(s.inflight.len() as i64);
    metrics::CLUSTER_OUTSTANDING.set(cluster_pipeline::outstanding() as i64);
    if yielded {
        Next::Yielded
    } else if cluster_busy || !s.inflight.is_empty() || s.pending_from.is_some() {
        Next::Busy
    } else {
        Next::Idle
    }
}

/// On a cluster the ingest node is the primary serving news_raw's slot.
fn serves_news_raw(ctx: &Context) -> bool {
    cluster::my_slots(ctx, std::time::Duration::from_millis(200)).serves(cluster::key_slot(STREAM.as_bytes()))
}

/// (ms, seq) of a stream entry id, for ordering.
fn id_order(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

fn ensure_group(ctx: &Context) -> bool {
    if state().group_ready {
        return true;
    }
    // From id 0, so articles written before the pipeline started are processed too.
    match ctx.call_ext::<_, CallResult>("XGROUP", &write_opts(), &[&b"CREATE"[..], STREAM.as_bytes(), GROUP.as_bytes(), b"0", b"MKSTREAM"])
    {
        Ok(_) => {}
        Err(e) if e.to_string().contains("BUSYGROUP") => {}
        Err(e) => {
            metrics::PIPELINE_FAILURES.incr();
            ffi::log_warning(&format!("agentic: pipeline cannot create its consumer group on {STREAM}: {e}"));
            return false;
        }
    }
    state().group_ready = true;
    true
}

/// Reads up to `pipeline-batch` entries (pending ones first) and hands them to the pool.
fn read_more(ctx: &Context) {
    let max_inflight = configs::pipeline_max_inflight();
    let (room, from) = {
        let s = state();
        (max_inflight.saturating_sub(s.inflight.len()), s.pending_from.clone())
    };
    if room == 0 {
        return;
    }
    if crate::classify::model::encoder().is_err() {
        return; // nothing can be classified yet; entries wait in the stream
    }
    let Some(catalog) = catalog(ctx) else { return };
    let count = room.min(configs::pipeline_batch()).to_string();
    let id = match &from {
        Some(f) if f.is_empty() => "0".to_string(),
        Some(f) => f.clone(),
        None => ">".to_string(),
    };
    let args: [&[u8]; 8] =
        [b"GROUP", GROUP.as_bytes(), CONSUMER.as_bytes(), b"COUNT", count.as_bytes(), b"STREAMS", STREAM.as_bytes(), id.as_bytes()];
    let entries = match ctx.call_ext::<_, CallResult>("XREADGROUP", &write_opts(), &args[..]) {
        Ok(reply) => entries_of(&reply),
        Err(e) => {
            metrics::PIPELINE_FAILURES.incr();
            ffi::log_warning(&format!("agentic: pipeline XREADGROUP failed: {e}"));
            state().group_ready = false;
            return;
        }
    };
    if from.is_some() {
        let mut s = state();
        // Pending entries come back in id order; an empty page means they are all in hand.
        s.pending_from = entries.last().map(|(id, _)| id.clone());
    }
    for (entry_id, fields) in entries {
        if state().inflight.contains(&entry_id) {
            continue;
        }
        metrics::PIPELINE_READ.incr();
        let Some(fields) = fields else {
            // Trimmed away while pending: nothing left to do but acknowledge it.
            metrics::PIPELINE_MALFORMED.incr();
            ack(ctx, &entry_id);
            continue;
        };
        match parse_article(&fields) {
            Ok((article_id, doc, text)) => {
                {
                    let mut s = state();
                    s.inflight.insert(entry_id.clone());
                    if cluster::enabled() {
                        s.order.insert(id_order(&entry_id), None);
                    }
                }
                if let Some(recorded) = recorded_route(ctx, &entry_id) {
                    metrics::PIPELINE_ROUTES_REUSED.incr();
                    CLASSIFIED.lock().unwrap_or_else(|p| p.into_inner()).push(Classified {
                        entry_id,
                        article_id,
                        doc,
                        result: Ok(recorded),
                        recorded: true,
                    });
                    continue;
                }
                let job = PipelineJob { entry_id: entry_id.clone(), article_id, doc: Some(doc), text, catalog: catalog.clone() };
                if !pool::submit(Box::new(job)) {
                    // Queue full: leave it pending, it is re-read later.
                    let mut s = state();
                    s.inflight.remove(&entry_id);
                    s.order.remove(&id_order(&entry_id));
                    if s.pending_from.is_none() {
                        s.pending_from = Some(String::new());
                    }
                    metrics::PIPELINE_RETRIES.incr();
                }
            }
            Err(why) => {
                metrics::PIPELINE_MALFORMED.incr();
                ffi::log_warning(&format!("agentic: pipeline skipped {STREAM} entry {entry_id}: {why}"));
                ack(ctx, &entry_id);
            }
        }
    }
}

static CATALOG_WARNED: AtomicBool = AtomicBool::new(false);

/// The topic catalog to classify against; None (logged once, counted) while the catalog key
/// holds something else, so articles wait in the stream instead of being classified wrongly.
fn catalog(ctx: &Context) -> Option<Arc<Catalog>> {
    match crate::commands::topic::current_catalog(ctx) {
        Ok(c) => {
            CATALOG_WARNED.store(false, Ordering::Relaxed);
            Some(c)
        }
        Err(e) => {
            metrics::PIPELINE_FAILURES.incr();
            if !CATALOG_WARNED.swap(true, Ordering::Relaxed) {
                ffi::log_warning(&format!("agentic: pipeline paused: {e:?}"));
            }
            None
        }
    }
}

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// `[[stream, [[id, [field, value, ...] | nil], ...]]]` -> entries.
fn entries_of(reply: &CallReply) -> Vec<(String, Option<Fields>)> {
    let mut out = Vec::new();
    let CallReply::Array(streams) = reply else { return out };
    for s in streams.iter().flatten() {
        let CallReply::Array(pair) = s else { continue };
        let Some(Ok(CallReply::Array(items))) = pair.get(1) else { continue };
        for item in items.iter().flatten() {
            let CallReply::Array(entry) = item else { continue };
            let Some(Ok(id)) = entry.get(0) else { continue };
            let id = String::from_utf8_lossy(&reply_bytes(&id)).into_owned();
            let fields = match entry.get(1) {
                Some(Ok(CallReply::Array(f))) => {
                    let flat: Vec<Vec<u8>> = f.iter().flatten().map(|x| reply_bytes(&x)).collect();
                    Some(flat.chunks(2).filter(|c| c.len() == 2).map(|c| (c[0].clone(), c[1].clone())).collect())
                }
                _ => None,
            };
            out.push((id, fields));
        }
    }
    out
}

/// (article id, JSON document, text to classify) of an entry `id <article-id> data <json>`.
fn parse_article(fields: &Fields) -> Result<(String, serde_json::Map<String, serde_json::Value>, String), String> {
    let field = |name: &[u8]| fields.iter().find(|(k, _)| k.as_slice() == name).map(|(_, v)| v.as_slice());
    let data = field(b"data").ok_or("no data field")?;
    let doc: serde_json::Value = serde_json::from_slice(data).map_err(|e| format!("data is not JSON: {e}"))?;
    let serde_json::Value::Object(doc) = doc else { return Err("data is not a JSON object".into()) };
    let text_of = |k: &str| doc.get(k).and_then(|v| v.as_str()).unwrap_or("").trim().to_string();
    let title = text_of("title");
    let body = [text_of("text"), text_of("summary"), text_of("description")].into_iter().find(|t| !t.is_empty()).unwrap_or_default();
    if title.is_empty() && body.is_empty() {
        return Err("no title and no text".into());
    }
    let id = field(b"id")
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .or_else(|| doc.get("id").and_then(|v| v.as_str()).map(str::to_string));
    let id = id.filter(|i| valid_id(i)).ok_or("no usable id (1-200 printable ASCII characters without spaces or braces)")?;
    let body = crate::classify::lead::lead(&body, MAX_ARTICLE_TEXT);
    let text = match (title.is_empty(), body.is_empty()) {
        (false, false) => format!("{title}. {body}"),
        (false, true) => title,
        _ => body.to_string(),
    };
    Ok((id, doc, text))
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 200 && id.bytes().all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}')
}

struct PipelineJob {
    entry_id: String,
    article_id: String,
    doc: Option<serde_json::Map<String, serde_json::Value>>,
    text: String,
    catalog: Arc<Catalog>,
}

impl Job for PipelineJob {
    fn text(&self) -> &str {
        &self.text
    }
    fn expired(&self, _now: Instant) -> bool {
        false
    }
    fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }
    fn topics(&self) -> Option<&[String]> {
        None
    }
    fn finish(mut self: Box<Self>, result: Result<Classification, String>) {
        let done = Classified {
            entry_id: std::mem::take(&mut self.entry_id),
            article_id: std::mem::take(&mut self.article_id),
            doc: self.doc.take().unwrap_or_default(),
            result,
            recorded: false,
        };
        CLASSIFIED.lock().unwrap_or_else(|p| p.into_inner()).push(done);
    }
}

impl Drop for PipelineJob {
    /// A job dropped without finishing (a failed worker) goes back to the stream's pending list.
    fn drop(&mut self) {
        if self.doc.is_some() {
            CLASSIFIED.lock().unwrap_or_else(|p| p.into_inner()).push(Classified {
                entry_id: std::mem::take(&mut self.entry_id),
                article_id: std::mem::take(&mut self.article_id),
                doc: self.doc.take().unwrap_or_default(),
                result: Err("the classify worker failed".into()),
                recorded: false,
            });
        }
    }
}

/// Stores, appends and fans out every classified article; acknowledges each when its fan-out ends.
/// False when the deadline came with classified articles still to handle.
fn finish_classified(ctx: &Context, deadline: Instant) -> bool {
    let finished_all = take_classified(ctx, deadline);
    if cluster::enabled() {
        send_in_order(ctx);
    }
    finished_all
}

/// Handles classified articles in the order they came back until the deadline (at least one per
/// call, so the pipeline always moves); the rest stay at the front of the queue for the next tick.
fn take_classified(ctx: &Context, deadline: Instant) -> bool {
    let mut done = std::mem::take(&mut *CLASSIFIED.lock().unwrap_or_else(|p| p.into_inner())).into_iter();
    let mut handled = 0usize;
    while let Some(c) = done.next() {
        if handled > 0 && Instant::now() >= deadline {
            let mut queue = CLASSIFIED.lock().unwrap_or_else(|p| p.into_inner());
            let arrived_since = std::mem::take(&mut *queue);
            queue.push(c);
            queue.extend(done);
            queue.extend(arrived_since);
            return false;
        }
        handled += 1;
        let Classified { entry_id, article_id, mut doc, result, recorded } = c;
        let classification = match result {
            Ok(cl) if !cl.best.is_empty() => cl,
            Ok(_) | Err(_) => {
                // Stays pending; re-read later (after the model is back, say).
                metrics::PIPELINE_RETRIES.incr();
                let mut s = state();
                s.inflight.remove(&entry_id);
                s.order.remove(&id_order(&entry_id));
                if s.pending_from.is_none() {
                    s.pending_from = Some(String::new());
                }
                continue;
            }
        };
        metrics::PIPELINE_CLASSIFIED.incr();
        let topic = classification.best.clone();
        let score = classification.scores.first().map(|s| s.1).unwrap_or(0.0);
        if !recorded {
            record_route(ctx, &entry_id, &topic, score);
        }
        let ingest_ms = entry_id.split('-').next().and_then(|ms| ms.parse::<u64>().ok()).unwrap_or(0);
        doc.insert("topic".into(), serde_json::Value::String(topic.clone()));
        doc.insert("score".into(), serde_json::json!((f64::from(score) * 10_000.0).round() / 10_000.0));
        doc.insert("ingest_ms".into(), serde_json::json!(ingest_ms));
        let payload = serde_json::Value::Object(doc).to_string();
        let doc_key = format!("doc:{{{article_id}}}");
        let stream_key = format!("topic:{topic}");
        if cluster::enabled() {
            let out = cluster_pipeline::Outgoing { entry_id: entry_id.clone(), ingest_ms, topic, doc_key, stream_key, payload };
            if let Some(slot) = state().order.get_mut(&id_order(&entry_id)) {
                *slot = Some(out);
            }
            continue;
        }
        if let Err(e) = deliver(ctx, &topic, &doc_key, &stream_key, &payload, entry_id.clone(), ingest_ms) {
            metrics::PIPELINE_FAILURES.incr();
            ffi::log_warning(&format!("agentic: pipeline could not deliver {entry_id}: {e}"));
            let mut s = state();
            s.inflight.remove(&entry_id);
            if s.pending_from.is_none() {
                s.pending_from = Some(String::new());
            }
        }
    }
    true
}

/// Cluster mode: sends the classified articles at the front of news_raw order.
fn send_in_order(ctx: &Context) {
    loop {
        let next = {
            let mut s = state();
            match s.order.first_entry() {
                Some(e) if e.get().is_some() => e.remove(),
                _ => None,
            }
        };
        let Some(out) = next else { break };
        cluster_pipeline::send_article(ctx, out);
    }
}

/// Cluster mode: every slot has the article; acknowledge it in news_raw.
pub fn article_done(ctx: &Context, entry_id: &str, ingest_ms: u64, delivered: u64) {
    ack(ctx, entry_id);
    state().inflight.remove(entry_id);
    metrics::PIPELINE_DELIVERED.incr();
    metrics::PIPELINE_DELIVERIES.add(delivered);
    metrics::PIPELINE_LAG_MS.record(ffi::now_ms().saturating_sub(ingest_ms));
}

fn deliver(
    ctx: &Context,
    topic: &str,
    doc_key: &str,
    stream_key: &str,
    payload: &str,
    entry_id: String,
    ingest_ms: u64,
) -> Result<(), String> {
    crate::commands::fanout::store_document(ctx, doc_key.as_bytes(), payload.as_bytes()).map_err(|e| format!("{e:?}"))?;
    topic_stream::append_and_trim(ctx, stream_key.as_bytes(), doc_key.as_bytes(), payload.as_bytes()).map_err(|e| format!("{e:?}"))?;
    let spec = DeliverySpec {
        doc: Arc::new(DocRef { topic: topic.as_bytes().into(), key: doc_key.as_bytes().into() }),
        hash: DocHash::of(doc_key.as_bytes()),
        ts_ms: ffi::now_ms(),
        feed_len: configs::feed_len(),
        seen: configs::seen_params(),
    };
    if shared_append(ctx, &spec, &entry_id, ingest_ms) {
        return Ok(());
    }
    let (subscribers, generation) = index::with(|ix| ix.snapshot(topic.as_bytes()));
    let job = fanout::Job::subscribers(spec, subscribers, generation);
    fanout::start_internal(
        ctx,
        job,
        Box::new(move |ctx: &Context, delivered: u64, _duplicates: u64| {
            ack(ctx, &entry_id);
            state().inflight.remove(&entry_id);
            metrics::PIPELINE_DELIVERED.incr();
            metrics::PIPELINE_DELIVERIES.add(delivered);
            metrics::PIPELINE_LAG_MS.record(ffi::now_ms().saturating_sub(ingest_ms));
        }),
    );
    Ok(())
}

/// A topic with `fanout-shared-min-subscribers` followers or more gets the article once, in its
/// shared timeline, and its followers' feeds show it when read (timeline.rs). True when done so.
fn shared_append(ctx: &Context, spec: &DeliverySpec, entry_id: &str, ingest_ms: u64) -> bool {
    let Some(followers) = crate::commands::timeline::shared_audience(ctx, &spec.doc.topic) else { return false };
    match crate::commands::timeline::share_for(ctx, spec, followers) {
        Ok(appended) => {
            article_done(ctx, entry_id, ingest_ms, if appended { followers as u64 } else { 0 });
            true
        }
        Err(_) => {
            metrics::TIMELINE_FALLBACKS.incr();
            false
        }
    }
}

/// The topic an earlier attempt gave this entry, if it recorded one.
fn recorded_route(ctx: &Context, entry_id: &str) -> Option<Classification> {
    let reply = ctx.call_ext::<_, CallResult>("HGET", &read_opts(), &[ROUTED.as_bytes(), entry_id.as_bytes()]).ok()?;
    let value = String::from_utf8(reply_bytes(&reply)).ok()?;
    let (topic, score) = value.split_once(' ')?;
    if !crate::validate::is_topic(topic.as_bytes()) {
        return None;
    }
    let score: f32 = score.parse().ok()?;
    Some(Classification {
        best: topic.to_string(),
        scores: vec![(topic.to_string(), score)],
        tier: crate::classify::Tier::Model,
        margin: f32::INFINITY,
    })
}

fn record_route(ctx: &Context, entry_id: &str, topic: &str, score: f32) {
    let value = format!("{topic} {score}");
    if let Err(e) = ctx.call_ext::<_, CallResult>("HSET", &write_opts(), &[ROUTED.as_bytes(), entry_id.as_bytes(), value.as_bytes()]) {
        metrics::PIPELINE_FAILURES.incr();
        ffi::log_warning(&format!("agentic: recording the topic of {entry_id} failed: {e}"));
    }
}

fn ack(ctx: &Context, entry_id: &str) {
    if let Err(e) = ctx.call_ext::<_, CallResult>("HDEL", &write_opts(), &[ROUTED.as_bytes(), entry_id.as_bytes()]) {
        ffi::log_warning(&format!("agentic: pipeline HDEL {entry_id} failed: {e}"));
    }
    match ctx.call_ext::<_, CallResult>("XACK", &write_opts(), &[STREAM.as_bytes(), GROUP.as_bytes(), entry_id.as_bytes()]) {
        Ok(_) => metrics::PIPELINE_ACKED.incr(),
        Err(e) => {
            metrics::PIPELINE_FAILURES.incr();
            ffi::log_warning(&format!("agentic: pipeline XACK {entry_id} failed: {e}"));
        }
    }
    if let Err(e) = topic_stream::trim(ctx, STREAM.as_bytes(), configs::pipeline_stream_maxlen(), 0) {
        ffi::log_warning(&format!("agentic: trimming {STREAM} failed: {e:?}"));
    }
}

/// Entries of `news_raw` the group has not finished: not yet read (the group's lag) plus read and
/// not yet acknowledged (pending).
fn update_backlog(ctx: &Context) {
    let Ok(CallReply::Array(groups)) = ctx.call_ext::<_, CallResult>("XINFO", &read_opts(), &[&b"GROUPS"[..], STREAM.as_bytes()]) else {
        return;
    };
    for g in groups.iter().flatten() {
        let CallReply::Array(fields) = g else { continue };
        let items: Vec<CallReply> = fields.iter().flatten().collect();
        let mut name = Vec::new();
        let (mut lag, mut pending) = (0i64, 0i64);
        for kv in items.chunks(2) {
            if kv.len() < 2 {
                continue;
            }
            match reply_bytes(&kv[0]).as_slice() {
                b"name" => name = reply_bytes(&kv[1]),
                b"lag" => lag = i64_of(&kv[1]),
                b"pending" => pending = i64_of(&kv[1]),
                _ => {}
            }
        }
        if name == GROUP.as_bytes() {
            metrics::PIPELINE_BACKLOG.set(lag + pending);
        }
    }
}

fn i64_of(r: &CallReply) -> i64 {
    match r {
        CallReply::I64(i) => i.to_i64(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn articles_parse_into_id_document_and_text() {
        let (id, doc, text) =
            parse_article(&fields(&[("id", "a1"), ("data", r#"{"title":"Cup final","text":"Home side wins."}"#)])).unwrap();
        assert_eq!((id.as_str(), text.as_str()), ("a1", "Cup final. Home side wins."));
        assert_eq!(doc["title"], "Cup final");
        let (id, _, text) = parse_article(&fields(&[("data", r#"{"id":"x-2","summary":"Only a summary"}"#)])).unwrap();
        assert_eq!((id.as_str(), text.as_str()), ("x-2", "Only a summary"));
        for bad in [
            fields(&[("id", "a")]),
            fields(&[("id", "a"), ("data", "not json")]),
            fields(&[("id", "a"), ("data", "[1]")]),
            fields(&[("id", "a"), ("data", r#"{"title":""}"#)]),
            fields(&[("id", "has space"), ("data", r#"{"title":"t"}"#)]),
            fields(&[("id", "a}b"), ("data", r#"{"title":"t"}"#)]),
            fields(&[("data", r#"{"title":"no id"}"#)]),
        ] {
            assert!(parse_article(&bad).is_err(), "{bad:?}");
        }
    }
}
