//! Every `unsafe` call into the server and every `extern "C"` callback lives here. Callbacks
//! catch panics (a panic crossing FFI aborts the server) and delegate to safe code.
//! `types`: the data types' callbacks; `keys`: keys opened by raw name; `blocking`: blocked
//! clients; `timers`; `streams`: stream ids. This file: panic guard, notifications, replication,
//! logging and the check that the server offers every API used.

use std::ffi::{c_char, c_longlong};
use std::panic::{catch_unwind, AssertUnwindSafe};

use valkey_module::{raw, Context};

use crate::metrics;

mod blocking;
mod cluster;
mod keys;
mod streams;
mod timers;
mod types;

pub use blocking::*;
pub use cluster::*;
pub use keys::*;
pub use streams::*;
pub use timers::*;
pub use types::*;

/// Runs `f`, turning a panic into `fallback` and a counted, logged event.
pub fn guard<T>(what: &str, fallback: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(payload) => {
            metrics::PANICS_CAUGHT.incr();
            let msg = panic_message(&payload);
            valkey_module::logging::log_warning(format!("agentic: caught panic in {what}: {msg}"));
            fallback
        }
    }
}

pub fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Module-class keyspace event (`notify-keyspace-events` flag `d`) for a user-key change.
pub fn notify(ctx: &Context, event: &std::ffi::CStr, name: &KeyName) {
    notify_raw(ctx, event, name.raw());
}

pub fn notify_raw(ctx: &Context, event: &std::ffi::CStr, name: *mut raw::RedisModuleString) {
    unsafe {
        raw::RedisModule_NotifyKeyspaceEvent.unwrap()(ctx.ctx, raw::NotifyEvent::MODULE.bits(), event.as_ptr(), name);
    }
}

/// PUBLISH from the module: reaches this node's subscribers (and, in a cluster, the other
/// nodes'), never the replication stream or the AOF.
pub fn publish(ctx: &Context, channel: &[u8], message: &[u8]) {
    unsafe {
        let create = raw::RedisModule_CreateString.unwrap();
        let free = raw::RedisModule_FreeString.unwrap();
        let c = create(ctx.ctx, channel.as_ptr() as *const std::os::raw::c_char, channel.len());
        let m = create(ctx.ctx, message.as_ptr() as *const std::os::raw::c_char, message.len());
        raw::RedisModule_PublishMessage.unwrap()(ctx.ctx, c, m);
        free(ctx.ctx, c);
        free(ctx.ctx, m);
    }
}

/// SPUBLISH from the module: reaches the subscribers of this shard channel on this node and on
/// the other nodes of its shard. The server does not check that the channel's slot is ours.
pub fn publish_shard(ctx: &Context, channel: &[u8], message: &[u8]) {
    unsafe {
        let create = raw::RedisModule_CreateString.unwrap();
        let free = raw::RedisModule_FreeString.unwrap();
        let c = create(ctx.ctx, channel.as_ptr() as *const std::os::raw::c_char, channel.len());
        let m = create(ctx.ctx, message.as_ptr() as *const std::os::raw::c_char, message.len());
        raw::RedisModule_PublishMessageShard.unwrap()(ctx.ctx, c, m);
        free(ctx.ctx, c);
        free(ctx.ctx, m);
    }
}

/// What closing a written key does: WATCH and client tracking learn about the change.
pub fn signal_modified(ctx: &Context, name: *mut raw::RedisModuleString) {
    unsafe { raw::RedisModule_SignalModifiedKey.unwrap()(ctx.ctx, name) };
}

pub fn signal_key_ready(ctx: &Context, name: &KeyName) {
    unsafe { raw::RedisModule_SignalKeyAsReady.unwrap()(ctx.ctx, name.raw()) }
}

pub fn log_warning(msg: &str) {
    valkey_module::logging::log_warning(msg);
}

thread_local!(static CLASSIFY_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });

/// Marks the calling thread as a classify worker: `yield_core_every` yields only on those (never
/// on the main thread, which classifies inline inside MULTI or Lua, nor on the model loader).
pub fn mark_classify_worker() {
    CLASSIFY_WORKER.with(|w| w.set(true));
}

/// On a classify worker: gives the core to a thread waiting for it (the server's main thread,
/// say) when this one has run for `every` since it last did; costs one syscall when nobody waits.
pub fn yield_core_every(every: std::time::Duration) {
    use std::cell::Cell;
    use std::time::Instant;
    thread_local!(static LAST: Cell<Option<Instant>> = const { Cell::new(None) });
    if !CLASSIFY_WORKER.with(Cell::get) {
        return;
    }
    let now = Instant::now();
    LAST.with(|last| match last.get() {
        Some(t) if now.duration_since(t) < every => {}
        _ => {
            // SAFETY: no arguments; only asks the scheduler to run another ready thread first.
            unsafe { libc::sched_yield() };
            last.set(Some(Instant::now()));
        }
    });
}

/// Schedules the calling thread as `classify-worker-priority` says (Linux schedules threads
/// individually): SCHED_IDLE, or normal scheduling at nice 10 or 0. A new thread starts with
/// its creator's policy, so every worker starts from the main thread's.
pub fn set_worker_priority(priority: crate::configs::WorkerPriority) -> Result<(), String> {
    use crate::configs::WorkerPriority;
    // SAFETY: plain syscalls on the calling thread; failure leaves its scheduling unchanged.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::pid_t;
        let param = libc::sched_param { sched_priority: 0 };
        let (policy, nice) = match priority {
            WorkerPriority::Idle => (libc::SCHED_IDLE, None),
            WorkerPriority::Low => (libc::SCHED_OTHER, Some(10)),
            WorkerPriority::Normal => (libc::SCHED_OTHER, Some(0)),
        };
        if libc::sched_setscheduler(tid, policy, &param) != 0 {
            return Err(format!("sched_setscheduler: {}", std::io::Error::last_os_error()));
        }
        if let Some(nice) = nice {
            if libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) != 0 {
                return Err(format!("setpriority: {}", std::io::Error::last_os_error()));
            }
        }
    }
    Ok(())
}

pub fn log_notice(msg: &str) {
    valkey_module::logging::log(valkey_module::logging::ValkeyLogLevel::Notice, msg);
}

/// True while the server has paused writes (CLIENT PAUSE WRITE, the handover of a manual
/// CLUSTER FAILOVER): nothing may be written or replicated then (the server asserts it), so the
/// module's timers wait.
pub fn writes_paused() -> bool {
    unsafe { raw::RedisModule_AvoidReplicaTraffic.unwrap()() != 0 }
}

pub fn now_ms() -> u64 {
    unsafe { raw::RedisModule_Milliseconds.unwrap()() as u64 }
}

pub fn selected_db(ctx: &Context) -> i32 {
    unsafe { raw::RedisModule_GetSelectedDb.unwrap()(ctx.ctx) }
}

pub fn select_db(ctx: &Context, db: i32) {
    unsafe { raw::RedisModule_SelectDb.unwrap()(ctx.ctx, db) };
}

/// Replicates `AGENT.DELIVER` with every parameter explicit, for the users of one slice.
pub fn replicate_deliver(
    ctx: &Context,
    topic: &[u8],
    doc_key: &[u8],
    ts_ms: u64,
    feed_len: u64,
    seen: crate::seen::SeenParams,
    users: &[*mut raw::RedisModuleString],
) {
    if users.is_empty() {
        return;
    }
    unsafe {
        raw::RedisModule_Replicate.unwrap()(
            ctx.ctx,
            c"AGENT.DELIVER".as_ptr(),
            c"bblllllv".as_ptr(),
            topic.as_ptr() as *const c_char,
            topic.len(),
            doc_key.as_ptr() as *const c_char,
            doc_key.len(),
            ts_ms as c_longlong,
            feed_len as c_longlong,
            seen.ttl_ms as c_longlong,
            seen.fp_ppm as c_longlong,
            seen.capacity as c_longlong,
            users.as_ptr(),
            users.len(),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The server fills these function pointers at load. The `.unwrap()`s on them in this module cannot fail
// once `missing_api` found none missing; init refuses to load otherwise.

pub fn missing_api() -> Option<&'static str> {
    let present: [(&str, bool); 37] = unsafe {
        [
            ("AvoidReplicaTraffic", { raw::RedisModule_AvoidReplicaTraffic }.is_some()),
            ("BlockClient", { raw::RedisModule_BlockClient }.is_some()),
            ("BlockClientOnKeys", { raw::RedisModule_BlockClientOnKeys }.is_some()),
            ("CloseKey", { raw::RedisModule_CloseKey }.is_some()),
            ("CreateString", { raw::RedisModule_CreateString }.is_some()),
            ("CreateTimer", { raw::RedisModule_CreateTimer }.is_some()),
            ("DigestAddStringBuffer", { raw::RedisModule_DigestAddStringBuffer }.is_some()),
            ("DigestEndSequence", { raw::RedisModule_DigestEndSequence }.is_some()),
            ("EmitAOF", { raw::RedisModule_EmitAOF }.is_some()),
            ("FreeString", { raw::RedisModule_FreeString }.is_some()),
            ("GetBlockedClientPrivateData", { raw::RedisModule_GetBlockedClientPrivateData }.is_some()),
            ("GetExpire", { raw::RedisModule_GetExpire }.is_some()),
            ("GetSelectedDb", { raw::RedisModule_GetSelectedDb }.is_some()),
            ("GetServerInfo", { raw::RedisModule_GetServerInfo }.is_some()),
            ("FreeServerInfo", { raw::RedisModule_FreeServerInfo }.is_some()),
            ("ServerInfoGetFieldSigned", { raw::RedisModule_ServerInfoGetFieldSigned }.is_some()),
            ("ServerInfoGetFieldC", { raw::RedisModule_ServerInfoGetFieldC }.is_some()),
            ("KeyType", { raw::RedisModule_KeyType }.is_some()),
            ("Milliseconds", { raw::RedisModule_Milliseconds }.is_some()),
            ("ModuleTypeGetType", { raw::RedisModule_ModuleTypeGetType }.is_some()),
            ("ModuleTypeGetValue", { raw::RedisModule_ModuleTypeGetValue }.is_some()),
            ("ModuleTypeSetValue", { raw::RedisModule_ModuleTypeSetValue }.is_some()),
            ("NotifyKeyspaceEvent", { raw::RedisModule_NotifyKeyspaceEvent }.is_some()),
            ("OpenKey", { raw::RedisModule_OpenKey }.is_some()),
            ("PublishMessage", { raw::RedisModule_PublishMessage }.is_some()),
            ("PublishMessageShard", { raw::RedisModule_PublishMessageShard }.is_some()),
            ("Replicate", { raw::RedisModule_Replicate }.is_some()),
            ("SelectDb", { raw::RedisModule_SelectDb }.is_some()),
            ("SignalKeyAsReady", { raw::RedisModule_SignalKeyAsReady }.is_some()),
            ("SignalModifiedKey", { raw::RedisModule_SignalModifiedKey }.is_some()),
            ("StopTimer", { raw::RedisModule_StopTimer }.is_some()),
            ("StreamIteratorNextField", { raw::RedisModule_StreamIteratorNextField }.is_some()),
            ("StreamIteratorNextID", { raw::RedisModule_StreamIteratorNextID }.is_some()),
            ("StreamIteratorStart", { raw::RedisModule_StreamIteratorStart }.is_some()),
            ("StreamIteratorStop", { raw::RedisModule_StreamIteratorStop }.is_some()),
            ("StringPtrLen", { raw::RedisModule_StringPtrLen }.is_some()),
            ("UnblockClient", { raw::RedisModule_UnblockClient }.is_some()),
        ]
    };
    present.iter().find(|(_, ok)| !ok).map(|(name, _)| *name)
}

// ---------------------------------------------------------------------------------------------
// CPU prefetch hints. A fan-out is bound by memory latency (10,000 users' data does not fit in
// cache); asking for a whole batch of users' data before serving them lets the memory system
// fetch it in parallel instead of one miss after another. Hints never change results.

#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
