//! AGENT.FEED user-key [COUNT n] [BEFORE id | AFTER id|$] [BLOCK ms]

use valkey_module::{Context, ContextFlags, ValkeyError, ValkeyResult, ValkeyString, ValkeyValue};
use valkey_module_macros::command;

use crate::feed::{EntryId, FeedEntry};
use crate::timeline::{self, Page, Timelines};
use crate::user::UserState;
use crate::{cluster, configs, ffi, metrics, validate};

const DEFAULT_COUNT: i64 = 20;
const MAX_COUNT: i64 = 10_000;

#[command({
    name: "agent.feed",
    flags: [ReadOnly, Blocking],
    arity: -2,
    summary: "Reads a user's feed with the stored documents: newest first, pages with BEFORE, tails with AFTER, optionally blocking",
    complexity: "O(log F + C) for a feed of F entries and C returned",
    since: "0.1.0",
    key_spec: [{ notes: "user key", flags: [ReadOnly, Access], begin_search: Index({ index: 1 }), find_keys: Range({ last_key: 0, steps: 1, limit: 0 }) }]
})]
fn agent_feed(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    super::run(ctx, args, feed)
}

enum Cursor {
    Newest,
    Before(EntryId),
    After(EntryId),
    AfterNow,
}

struct FeedWait {
    key: Vec<u8>,
    after: EntryId,
    count: usize,
}

fn feed(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    let user_key = validate::key(&args[1], "user key")?.to_vec();
    let mut count = DEFAULT_COUNT;
    let mut cursor = Cursor::Newest;
    let mut block: Option<i64> = None;
    let mut i = 2;
    while i < args.len() {
        let value =
            args.get(i + 1).ok_or_else(|| validate::err(format!("ERR {} needs a value", validate::printable(args[i].as_slice()))))?;
        match validate::keyword(&args[i]).as_str() {
            "COUNT" => count = validate::integer(value, "COUNT", 1, MAX_COUNT)?,
            "BLOCK" => block = Some(validate::integer(value, "BLOCK timeout (ms)", 0, i64::MAX / 2)?),
            kw @ ("BEFORE" | "AFTER") if matches!(cursor, Cursor::Newest) => {
                cursor = if kw == "AFTER" && value.as_slice() == b"$" {
                    Cursor::AfterNow
                } else {
                    let id = EntryId::parse(value.as_slice()).ok_or(ValkeyError::Str("ERR invalid entry id: use <ms>-<seq>"))?;
                    if kw == "AFTER" {
                        Cursor::After(id)
                    } else {
                        Cursor::Before(id)
                    }
                }
            }
            _ => return Err(validate::err(format!("ERR syntax error near '{}'", validate::printable(args[i].as_slice())))),
        }
        i += 2;
    }
    let count = count as usize;
    metrics::FEED_READS.incr();

    let key = ctx.open_key(&args[1]);
    let user = key.get_value::<UserState>(&ffi::USER_TYPE).map_err(|_| ValkeyError::WrongType)?;
    let timelines = shared_timelines(ctx);
    let shared = timelines.as_ref().and_then(|k| k.get_value::<Timelines>(&ffi::TIMELINES_TYPE).ok().flatten());
    let last_id = user.map(|u| u.feed.last_id).unwrap_or_default().max(shared.map(|t| t.clock).unwrap_or_default());
    let page = match cursor {
        Cursor::Newest => Some(Page::Before(EntryId::MAX)),
        Cursor::Before(id) => Some(Page::Before(id)),
        Cursor::After(id) => Some(Page::After(id)),
        Cursor::AfterNow => None,
    };
    let entries = match (user, page) {
        (Some(u), Some(page)) => render(ctx, &user_key, &assemble(u, shared, page, count)),
        _ => vec![],
    };
    let after = match cursor {
        Cursor::After(id) => id,
        _ => last_id,
    };
    drop(key);
    drop(timelines);
    let Some(timeout) = block else { return Ok(ValkeyValue::Array(entries)) };
    if !entries.is_empty() || ctx.get_flags().contains(ContextFlags::DENY_BLOCKING) {
        return Ok(ValkeyValue::Array(entries));
    }
    metrics::FEED_BLOCKED_READS.incr();
    crate::feed_wakeups::waiter_added(&user_key);
    ffi::block_on_user_key(ctx, &args[1], timeout, FeedWait { key: user_key, after, count }, on_ready, on_timeout, on_free);
    Ok(ValkeyValue::NoReply)
}

fn on_ready(ctx: &Context, w: &FeedWait) -> Option<ValkeyResult> {
    crate::feed_wakeups::checked(&w.key);
    read_after(ctx, w).map(|entries| Ok(ValkeyValue::Array(entries)))
}

/// The timeout can come before the wake-up of a key whose write is still queued (a batch per
/// iteration, and the server handles timeouts first): a reader whose feed has entries by then
/// gets them rather than nothing.
fn on_timeout(ctx: &Context, w: &FeedWait) -> ValkeyResult {
    match read_after(ctx, w) {
        Some(entries) => Ok(ValkeyValue::Array(entries)),
        None => {
            metrics::FEED_READ_TIMEOUTS.incr();
            Ok(ValkeyValue::Array(vec![]))
        }
    }
}

/// The entries after the reader's cursor, or None while there are none.
fn read_after(ctx: &Context, w: &FeedWait) -> Option<Vec<ValkeyValue>> {
    let name = ValkeyString::create_from_slice(std::ptr::null_mut(), &w.key);
    let key = ctx.open_key(&name);
    let user = key.get_value::<UserState>(&ffi::USER_TYPE).ok().flatten()?;
    let timelines = shared_timelines(ctx);
    let shared = timelines.as_ref().and_then(|k| k.get_value::<Timelines>(&ffi::TIMELINES_TYPE).ok().flatten());
    let found = assemble(user, shared, Page::After(w.after), w.count);
    (!found.is_empty()).then(|| render(ctx, &w.key, &found))
}

fn on_free(w: FeedWait) {
    crate::feed_wakeups::waiter_removed(&w.key);
}

/// The shared timelines, when this node keeps them (not on a cluster node: there a command may
/// read only keys of its own slot) and they exist.
fn shared_timelines(ctx: &Context) -> Option<valkey_module::key::ValkeyKey> {
    if cluster::enabled() {
        return None;
    }
    let key = ctx.open_key(&ValkeyString::create_from_slice(std::ptr::null_mut(), timeline::KEY));
    (!key.is_null()).then_some(key)
}

fn assemble(user: &UserState, shared: Option<&Timelines>, page: Page, count: usize) -> Vec<FeedEntry> {
    let seen = configs::seen_params();
    timeline::assemble(user, shared, page, count, ffi::now_ms(), seen.ttl_ms)
}

/// Entries with their document bodies. On a cluster node a command may read only keys of its own
/// slot (the user's): a document of another slot gets a nil body, and the client reads it from
/// the node serving it (`GET <doc-key>`).
fn render(ctx: &Context, user_key: &[u8], entries: &[FeedEntry]) -> Vec<ValkeyValue> {
    let user_slot = cluster::enabled().then(|| cluster::key_slot(user_key));
    entries
        .iter()
        .map(|e| {
            let body = if user_slot.is_some_and(|s| s != cluster::key_slot(&e.doc.key)) {
                metrics::FEED_DOCS_ELSEWHERE.incr();
                ValkeyValue::Null
            } else {
                let name = ValkeyString::create_from_slice(std::ptr::null_mut(), &e.doc.key);
                let doc = ctx.open_key(&name);
                match doc.read() {
                    Ok(Some(b)) => ValkeyValue::StringBuffer(b.to_vec()),
                    _ => {
                        metrics::FEED_MISSING_DOCS.incr();
                        ValkeyValue::Null
                    }
                }
            };
            ValkeyValue::Array(vec![
                ValkeyValue::BulkString(e.id.to_string()),
                ValkeyValue::StringBuffer(e.doc.topic.to_vec()),
                ValkeyValue::StringBuffer(e.doc.key.to_vec()),
                body,
            ])
        })
        .collect()
}
