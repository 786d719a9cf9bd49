//! Keeps the subscriber index in step with the keyspace: cleared on flush, rebuilt when loading
//! ends or databases are swapped, and extended when a user key appears under a new name.

use valkey_module::server_events::{EventLoopSubevent, FlushSubevent, LoadingSubevent};
use valkey_module::{Context, NotifyEvent, ValkeyString};
use valkey_module_macros::{event_loop_event_handler, flush_event_handler, loading_event_handler, swapdb_event_handler};

use crate::user::UserState;
use crate::{fanout, ffi, index, user};

#[flush_event_handler]
fn on_flush(_ctx: &Context, event: FlushSubevent) {
    if let FlushSubevent::Started = event {
        ffi::invalidate_remembered_values();
        crate::feed_wakeups::clear_queue();
        ffi::guard("flush event", (), || index::with(|ix| ix.clear()));
    }
}

#[loading_event_handler]
fn on_loading(ctx: &Context, event: LoadingSubevent) {
    ffi::invalidate_remembered_values();
    ffi::guard("loading event", (), || match event {
        LoadingSubevent::RdbStarted | LoadingSubevent::AofStarted | LoadingSubevent::ReplStarted => {
            user::start_interning();
            index::with(|ix| ix.clear())
        }
        LoadingSubevent::Ended | LoadingSubevent::Failed => {
            crate::heads_sync::mark_dirty();
            user::clear_interner();
            rebuild(ctx);
        }
    });
}

#[event_loop_event_handler]
fn on_event_loop(ctx: &Context, event: EventLoopSubevent) {
    if let EventLoopSubevent::BeforeSleep = event {
        ffi::guard("before-sleep", (), || {
            fanout::before_sleep(ctx);
            crate::feed_wakeups::before_sleep(ctx);
        });
    }
}

#[swapdb_event_handler]
fn on_swapdb(ctx: &Context, _db: u64) {
    ffi::guard("swapdb event", (), || rebuild(ctx));
}

/// Re-derives the whole index from the user keys of database 0.
pub fn rebuild(ctx: &Context) {
    ffi::invalidate_remembered_values();
    let previous = ffi::selected_db(ctx);
    ffi::select_db(ctx, 0);
    index::with(|ix| ix.clear());
    let cursor = valkey_module::KeysCursor::new();
    let visit = |_ctx: &Context, name: ValkeyString, key: Option<&valkey_module::key::ValkeyKey>| {
        if let Some(Ok(Some(u))) = key.map(|k| k.get_value::<UserState>(&ffi::USER_TYPE)) {
            index::with(|ix| u.topics.iter().for_each(|t| ix.add(t, name.as_slice())));
        }
    };
    while cursor.scan(ctx, &visit) {}
    ffi::select_db(ctx, previous);
}

/// Valkey 8.1 runs module keyspace callbacks on the executing client and selects the event's
/// database on it without selecting the client's own back (fixed upstream in valkey-io/valkey
/// #4024): after `MOVE key n` the client would stay in database n and its next commands would go
/// there. MOVE fires `move_from` in the client's database, then `move_to` in the target one, so
/// the first tells which database to select again after the second. (Where callbacks run on a
/// temporary client, as in 8.0, this selects on that client and changes nothing.)
fn restore_client_db_after_move(ctx: &Context, event: &str) {
    static MOVE_SOURCE_DB: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);
    match event {
        "move_from" => MOVE_SOURCE_DB.store(ffi::selected_db(ctx), std::sync::atomic::Ordering::Relaxed),
        "move_to" => {
            let source = MOVE_SOURCE_DB.swap(-1, std::sync::atomic::Ordering::Relaxed);
            if source >= 0 {
                ffi::select_db(ctx, source);
            }
        }
        _ => {}
    }
}

/// Keyspace events that move a user value in or out of place. Without them a replica, which
/// never runs the fan-outs that repair the index lazily, would keep deleted users forever.
pub fn on_keyspace_event(ctx: &Context, kind: NotifyEvent, event: &str, key: &[u8]) {
    if key == crate::heads_sync::HEADS_KEY.as_bytes() {
        crate::heads_sync::mark_dirty();
    }
    track_index(ctx, kind, event, key);
    restore_client_db_after_move(ctx, event);
}

fn track_index(ctx: &Context, _kind: NotifyEvent, event: &str, key: &[u8]) {
    let arrived = matches!(event, "restore" | "copy_to" | "rename_to" | "move_to" | "set");
    let left = matches!(event, "del" | "expired" | "evicted" | "rename_from" | "move_from");
    let ttl_set = event == "expire";
    if !(arrived || left || ttl_set) || ffi::selected_db(ctx) != 0 {
        return;
    }
    ffi::guard("keyspace event", (), || {
        // Only events about indexed user keys invalidate remembered values: documents expire
        // all the time and must not cost the fan-out its fast path.
        let was_indexed = index::with(|ix| ix.contains_key(key));
        if was_indexed {
            ffi::invalidate_remembered_values();
        }
        if ttl_set {
            return;
        }
        index::with(|ix| ix.remove_everywhere(key));
        let mut is_user = false;
        if arrived {
            let name = ValkeyString::create_from_slice(std::ptr::null_mut(), key);
            let k = ctx.open_key(&name);
            if let Ok(Some(u)) = k.get_value::<UserState>(&ffi::USER_TYPE) {
                is_user = true;
                index::with(|ix| u.topics.iter().for_each(|t| ix.add(t, key)));
                if event == "restore" && crate::cluster::enabled() {
                    // MIGRATE during resharding: the user catches up with what this node applied.
                    crate::cluster_pipeline::user_arrived(key);
                }
            }
        }
        // A user who went away follows nothing: gateways with its sockets open stop sending it
        // shared timeline appends. Not on a cluster node, where users leave with their slots
        // while living on elsewhere, and feeds do not read shared timelines anyway.
        if was_indexed && !is_user && !crate::cluster::enabled() {
            crate::delivery_channel::publish_interests(ctx, key, std::iter::empty());
        }
    });
}
