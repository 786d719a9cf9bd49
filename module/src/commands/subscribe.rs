//! AGENT.SUBSCRIBE, AGENT.UNSUBSCRIBE, AGENT.INTERESTS: a user's topics, mirrored in the index.

use valkey_module::{Context, ValkeyError, ValkeyResult, ValkeyString, ValkeyValue};
use valkey_module_macros::command;

use crate::ffi::{self, KeyName, OpenUser, UserSlot};
use crate::topic_set::TopicSet;
use crate::user::UserState;
use crate::validate::{self, MAX_TOPICS_PER_USER};
use crate::{delivery_channel, index, metrics};

const WRONGTYPE: ValkeyError = ValkeyError::Str("WRONGTYPE Operation against a key holding the wrong kind of value");

fn topics_of(args: &[ValkeyString]) -> Result<Vec<&[u8]>, ValkeyError> {
    args.iter().map(validate::topic).collect()
}

#[command({
    name: "agent.subscribe",
    flags: [Write, DenyOOM, Fast],
    arity: -3,
    summary: "Adds topics to a user's interests",
    complexity: "O(T log T) for T topics",
    since: "0.1.0",
    key_spec: [{ notes: "user key", flags: [ReadWrite, Insert], begin_search: Index({ index: 1 }), find_keys: Range({ last_key: 0, steps: 1, limit: 0 }) }]
})]
fn agent_subscribe(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    super::run(ctx, args, subscribe)
}

fn subscribe(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    let user_key = validate::key(&args[1], "user key")?;
    let topics = topics_of(&args[2..])?;
    let name = KeyName::new(user_key);
    let mut open = OpenUser::open(ctx, &name);
    let mut added = Vec::new();
    let now: TopicSet = match open.slot() {
        UserSlot::WrongType => return Err(WRONGTYPE),
        UserSlot::Found(u) => {
            let before = u.heap_bytes() as i64;
            let fresh: Vec<&[u8]> = topics.iter().copied().filter(|t| !u.has_topic(t)).collect();
            if u.topics.len() + fresh.len() > MAX_TOPICS_PER_USER {
                return Err(validate::err(format!("ERR a user follows at most {MAX_TOPICS_PER_USER} topics")));
            }
            for t in fresh {
                if u.add_topic(t) {
                    added.push(t);
                }
            }
            metrics::USER_BYTES.add(u.heap_bytes() as i64 - before);
            let now = u.topics.clone();
            if !added.is_empty() {
                open.mark_modified();
            }
            now
        }
        UserSlot::Missing => {
            let mut u = UserState::new(user_key);
            for t in &topics {
                if u.add_topic(t) {
                    added.push(*t);
                }
            }
            if u.topics.len() > MAX_TOPICS_PER_USER {
                return Err(validate::err(format!("ERR a user follows at most {MAX_TOPICS_PER_USER} topics")));
            }
            let now = u.topics.clone();
            if !open.create(u) {
                return Err(ValkeyError::Str("ERR could not store the user key"));
            }
            now
        }
    };
    drop(open);
    metrics::SUBSCRIBE_CALLS.incr();
    if !added.is_empty() {
        index::with(|ix| added.iter().for_each(|t| ix.add(t, user_key)));
        ffi::notify(ctx, c"agent.subscribe", &name);
        ctx.replicate_verbatim();
        delivery_channel::publish_interests(ctx, user_key, now.iter());
    }
    Ok(ValkeyValue::Integer(added.len() as i64))
}

#[command({
    name: "agent.unsubscribe",
    flags: [Write, Fast],
    arity: -3,
    summary: "Removes topics from a user's interests",
    complexity: "O(T log T) for T topics",
    since: "0.1.0",
    key_spec: [{ notes: "user key", flags: [ReadWrite, Delete], begin_search: Index({ index: 1 }), find_keys: Range({ last_key: 0, steps: 1, limit: 0 }) }]
})]
fn agent_unsubscribe(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    super::run(ctx, args, unsubscribe)
}

fn unsubscribe(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    let user_key = validate::key(&args[1], "user key")?;
    let topics = topics_of(&args[2..])?;
    let name = KeyName::new(user_key);
    let mut open = OpenUser::open(ctx, &name);
    let mut removed = Vec::new();
    let now: TopicSet = match open.slot() {
        UserSlot::WrongType => return Err(WRONGTYPE),
        UserSlot::Missing => TopicSet::default(),
        UserSlot::Found(u) => {
            let before = u.heap_bytes() as i64;
            for t in &topics {
                if u.remove_topic(t) {
                    removed.push(*t);
                }
            }
            metrics::USER_BYTES.add(u.heap_bytes() as i64 - before);
            let now = u.topics.clone();
            if !removed.is_empty() {
                open.mark_modified();
            }
            now
        }
    };
    drop(open);
    metrics::UNSUBSCRIBE_CALLS.incr();
    if !removed.is_empty() {
        index::with(|ix| removed.iter().for_each(|t| ix.remove(t, user_key)));
        ffi::notify(ctx, c"agent.unsubscribe", &name);
        ctx.replicate_verbatim();
        delivery_channel::publish_interests(ctx, user_key, now.iter());
    }
    Ok(ValkeyValue::Integer(removed.len() as i64))
}

#[command({
    name: "agent.interests",
    flags: [ReadOnly, Fast],
    arity: 2,
    summary: "Lists the topics a user follows",
    complexity: "O(T) for T topics",
    since: "0.1.0",
    key_spec: [{ notes: "user key", flags: [ReadOnly, Access], begin_search: Index({ index: 1 }), find_keys: Range({ last_key: 0, steps: 1, limit: 0 }) }]
})]
fn agent_interests(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    super::run(ctx, args, interests)
}

fn interests(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    validate::key(&args[1], "user key")?;
    let key = ctx.open_key(&args[1]);
    match key.get_value::<UserState>(&ffi::USER_TYPE) {
        Err(_) => Err(WRONGTYPE),
        Ok(None) => Ok(ValkeyValue::Array(vec![])),
        Ok(Some(u)) => Ok(ValkeyValue::Array(u.topics.iter().map(|t| ValkeyValue::StringBuffer(t.to_vec())).collect())),
    }
}
