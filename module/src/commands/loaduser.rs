//! AGENT.LOADUSER user-key blob: recreates a user value from its encoding. This is what an AOF
//! rewrite writes for each user key (the RDB preamble carries the same bytes).

use valkey_module::{Context, ValkeyError, ValkeyResult, ValkeyString, ValkeyValue};
use valkey_module_macros::command;

use crate::ffi::{self, KeyName, OpenUser, UserSlot};
use crate::{delivery_channel, index, metrics, user, validate};

#[command({
    name: "agent.loaduser",
    flags: [Write, DenyOOM],
    arity: 3,
    summary: "Replaces a user key with an encoded user value (written by AOF rewrite)",
    complexity: "O(S) for an encoding of S bytes",
    since: "0.1.0",
    key_spec: [{ notes: "user key", flags: [Overwrite, Update], begin_search: Index({ index: 1 }), find_keys: Range({ last_key: 0, steps: 1, limit: 0 }) }]
})]
fn agent_loaduser(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    super::run(ctx, args, loaduser)
}

fn loaduser(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    let user_key = validate::key(&args[1], "user key")?;
    let value = user::decode(args[2].as_slice()).map_err(|e| {
        metrics::LOAD_ERRORS.incr();
        validate::err(format!("ERR invalid user encoding: {e}"))
    })?;
    let name = KeyName::new(user_key);
    let mut open = OpenUser::open(ctx, &name);
    let old_topics = match open.slot() {
        UserSlot::WrongType => return Err(ValkeyError::WrongType),
        UserSlot::Missing => Default::default(),
        UserSlot::Found(u) => std::mem::take(&mut u.topics),
    };
    let new_topics = value.topics.clone();
    match open.slot() {
        UserSlot::Found(u) => {
            crate::feed::note_own_id(value.feed.last_id);
            metrics::USER_BYTES.add(value.heap_bytes() as i64 - u.heap_bytes() as i64);
            *u = value;
            open.mark_modified();
        }
        _ => {
            if !open.create(value) {
                return Err(ValkeyError::Str("ERR could not store the user key"));
            }
        }
    }
    drop(open);
    index::with(|ix| {
        old_topics.iter().for_each(|t| ix.remove(t, user_key));
        new_topics.iter().for_each(|t| ix.add(t, user_key));
    });
    ffi::notify(ctx, c"agent.loaduser", &name);
    ctx.replicate_verbatim();
    if old_topics != new_topics {
        delivery_channel::publish_interests(ctx, user_key, new_topics.iter());
    }
    Ok(ValkeyValue::SimpleStringStatic("OK"))
}
