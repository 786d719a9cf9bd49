//! Shared topic timelines (timeline.rs): the pipeline's append for a topic with many followers,
//! and its replicated form.
//!
//! AGENT.TIMELINE.APPEND agentic:timelines topic doc-key id ts-ms feed-len seen-ttl-ms seen-fp-ppm seen-capacity
//!   appends a stored document to a topic's shared timeline under an explicit id. What the
//!   primary replicates and writes to the AOF for each shared append: every parameter explicit,
//!   so replicas and a restarted server reach the same timelines with the same ids.
//! AGENT.TIMELINE.LOAD agentic:timelines blob
//!   replaces the timelines with an encoded value (written by AOF rewrite).

use valkey_module::{Context, ValkeyError, ValkeyResult, ValkeyString, ValkeyValue};
use valkey_module_macros::command;

use crate::feed::EntryId;
use crate::ffi::{self, KeyName, TIMELINES_TYPE};
use crate::seen::SeenParams;
use crate::timeline::{self, Timelines};
use crate::user::{Delivery, DeliverySpec};
use crate::{cluster, configs, delivery_channel, index, metrics, validate};

#[command({
    name: "agent.timeline.append",
    flags: [Write, DenyOOM],
    arity: 10,
    summary: "Appends a stored document to a topic's shared timeline under an explicit id (the replicated form of a shared append)",
    complexity: "O(log T) for T topics with timelines",
    since: "0.2.0",
    key_spec: [{ notes: "the shared timelines key", flags: [ReadWrite, Update], begin_search: Index({ index: 1 }), find_keys: Range({ last_key: 0, steps: 1, limit: 0 }) }]
})]
fn agent_timeline_append(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    super::run(ctx, args, append)
}

#[command({
    name: "agent.timeline.load",
    flags: [Write, DenyOOM],
    arity: 3,
    summary: "Replaces the shared timelines with an encoded value (written by AOF rewrite)",
    complexity: "O(S) for an encoding of S bytes",
    since: "0.2.0",
    key_spec: [{ notes: "the shared timelines key", flags: [Overwrite, Update], begin_search: Index({ index: 1 }), find_keys: Range({ last_key: 0, steps: 1, limit: 0 }) }]
})]
fn agent_timeline_load(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    super::run(ctx, args, load)
}

fn timelines_key(arg: &ValkeyString) -> ValkeyResult<()> {
    if arg.as_slice() != timeline::KEY {
        return Err(validate::err(format!("ERR the shared timelines live at {}", String::from_utf8_lossy(timeline::KEY))));
    }
    Ok(())
}

fn append(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    timelines_key(&args[1])?;
    let topic = validate::topic(&args[2])?;
    let doc_key = validate::key(&args[3], "document key")?;
    let id = EntryId::parse(args[4].as_slice()).ok_or(ValkeyError::Str("ERR invalid entry id: use <ms>-<seq>"))?;
    if id.seq % 2 == 0 {
        return Err(ValkeyError::Str("ERR shared timeline ids have odd sequence numbers"));
    }
    if !id.in_range() {
        return Err(ValkeyError::Str("ERR entry id out of range: each part at most 2^48"));
    }
    let spec = super::deliver::explicit_spec(topic, doc_key, &args[5..10])?;
    let appended = apply(ctx, &spec, Some(id))?;
    if appended.is_some() {
        ctx.replicate_verbatim();
    }
    Ok(ValkeyValue::Integer(appended.is_some() as i64))
}

/// The false-positive bound of a shared timeline's seen-filter, in parts per million: a false
/// positive there would keep an article from every follower, not from one user.
const TIMELINE_SEEN_FP_PPM: u32 = 1;

/// For a fan-out to a topic's followers (the pipeline's, or AGENT.FANOUT without USERS): how many
/// follow it when its articles go to its shared timeline (`fanout-shared-min-subscribers`, not on
/// a cluster node); None = to every follower's feed. A key of another type at `agentic:timelines`
/// also means None, counted in `timeline_fallbacks`.
pub fn shared_audience(ctx: &Context, topic: &[u8]) -> Option<usize> {
    let min = configs::fanout_shared_min_subscribers().filter(|_| !cluster::enabled())?;
    let followers = index::with(|ix| ix.followers(topic));
    if followers < min {
        return None;
    }
    let key = ctx.open_key(&ValkeyString::create_from_slice(std::ptr::null_mut(), timeline::KEY));
    if key.get_value::<Timelines>(&TIMELINES_TYPE).is_err() {
        metrics::TIMELINE_FALLBACKS.incr();
        return None;
    }
    Some(followers)
}

/// The shared timelines' last id, the floor of new own-feed ids (timeline.rs); none on a cluster
/// node (no shared timelines there) or when the key is missing or of another type. Read from the
/// keyspace, so a replica replaying AGENT.DELIVER gets the same floor as the primary had.
pub fn clock(ctx: &Context) -> EntryId {
    if cluster::enabled() {
        return EntryId::default();
    }
    let key = ctx.open_key(&ValkeyString::create_from_slice(std::ptr::null_mut(), timeline::KEY));
    match key.get_value::<Timelines>(&TIMELINES_TYPE) {
        Ok(Some(t)) => t.clock,
        _ => EntryId::default(),
    }
}

/// Appends for all `followers` at once; false when the topic's timeline had the document within
/// the seen TTL. Counts the followers reached and the expected false positives.
pub fn share_for(ctx: &Context, spec: &DeliverySpec, followers: usize) -> ValkeyResult<bool> {
    let spec = DeliverySpec { seen: SeenParams { fp_ppm: TIMELINE_SEEN_FP_PPM, ..spec.seen }, ..spec.clone() };
    let Some((_, fp_probability)) = share(ctx, &spec)? else { return Ok(false) };
    metrics::SEEN_FP_EXPECTED_MICRO.add((fp_probability * followers as f64 * 1e6).round() as u64);
    metrics::TIMELINE_FOLLOWERS_REACHED.add(followers as u64);
    Ok(true)
}

/// Appends on the primary: the timelines' next id, replicated as
/// AGENT.TIMELINE.APPEND with every parameter. Returns the id and the chance that the topic's
/// seen-filter would have taken a new document for a seen one at that moment, or None when the
/// timeline had the document already (counted). An error leaves everything unchanged.
fn share(ctx: &Context, spec: &DeliverySpec) -> ValkeyResult<Option<(EntryId, f64)>> {
    let appended = apply(ctx, spec, None)?;
    if let Some((id, _)) = appended {
        let id_text = id.to_string();
        let numbers = [
            spec.ts_ms.to_string(),
            spec.feed_len.to_string(),
            spec.seen.ttl_ms.to_string(),
            spec.seen.fp_ppm.to_string(),
            spec.seen.capacity.to_string(),
        ];
        let mut args: Vec<&[u8]> = vec![timeline::KEY, &spec.doc.topic, &spec.doc.key, id_text.as_bytes()];
        args.extend(numbers.iter().map(|n| n.as_bytes()));
        ctx.replicate("AGENT.TIMELINE.APPEND", &args[..]);
    }
    Ok(appended)
}

/// The append itself, on any node: `id` given (replicated) must be above the clock; None takes
/// the next one. Tells blocked readers, keyspace listeners and gateways.
fn apply(ctx: &Context, spec: &DeliverySpec, id: Option<EntryId>) -> ValkeyResult<Option<(EntryId, f64)>> {
    let name = KeyName::new(timeline::KEY);
    let key_name = ValkeyString::create_from_slice(std::ptr::null_mut(), timeline::KEY);
    let key = ctx.open_key_writable(&key_name);
    let mut created = false;
    let timelines = match key.get_value::<Timelines>(&TIMELINES_TYPE) {
        Ok(Some(t)) => t,
        Ok(None) => {
            key.set_value(&TIMELINES_TYPE, Timelines::default())?;
            created = true;
            match key.get_value::<Timelines>(&TIMELINES_TYPE) {
                Ok(Some(t)) => t,
                _ => return Err(ValkeyError::Str("ERR could not create the shared timelines")),
            }
        }
        Err(_) => return Err(ValkeyError::WrongType),
    };
    let id = match id {
        Some(id) if id <= timelines.clock => {
            if created {
                let _ = key.delete();
            }
            return Err(ValkeyError::Str("ERR the id must be above the shared timelines' last id"));
        }
        Some(id) => id,
        None => timelines.next_id(spec.ts_ms, crate::feed::own_ids_max()),
    };
    match timelines.append(spec, id) {
        Delivery::Duplicate => {
            metrics::TIMELINE_DUPLICATES.incr();
            if created {
                let _ = key.delete();
            }
            Ok(None)
        }
        Delivery::Delivered { fp_probability, .. } => {
            metrics::TIMELINE_APPENDS.incr();
            metrics::TIMELINE_ENTRIES.set(timelines.entries() as i64);
            drop(key);
            ffi::signal_modified(ctx, key_name.inner);
            ffi::notify(ctx, c"agent.timeline", &name);
            crate::feed_wakeups::wake_followers(ctx, &spec.doc.topic);
            delivery_channel::publish(ctx, &spec.doc.topic, &spec.doc.key, &[(timeline::KEY, id)]);
            Ok(Some((id, fp_probability)))
        }
    }
}

fn load(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    timelines_key(&args[1])?;
    let value = timeline::decode(args[2].as_slice()).map_err(|e| {
        metrics::LOAD_ERRORS.incr();
        validate::err(format!("ERR invalid timelines encoding: {e}"))
    })?;
    let key = ctx.open_key_writable(&args[1]);
    if key.get_value::<Timelines>(&TIMELINES_TYPE).is_err() {
        return Err(ValkeyError::WrongType);
    }
    metrics::TIMELINE_ENTRIES.set(value.entries() as i64);
    key.set_value(&TIMELINES_TYPE, value)?;
    drop(key);
    ffi::notify(ctx, c"agent.timeline.load", &KeyName::new(timeline::KEY));
    ctx.replicate_verbatim();
    Ok(ValkeyValue::SimpleStringStatic("OK"))
}
