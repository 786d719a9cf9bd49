//! Every `unsafe` call into the server and every `extern "C"` callback lives here. Callbacks
//! catch panics (a panic crossing FFI aborts the server) and delegate to safe code.

use std::ffi::{c_char, c_int, c_longlong, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use valkey_module::native_types::ValkeyType;
use valkey_module::{raw, Context, ValkeyString};

use crate::classify::catalog::{self, Catalog};
use crate::metrics;
use crate::user::{self, UserState};

pub const USER_TYPE_NAME: &str = "agentuser";
pub const USER_TYPE_ENCVER: i32 = 1;

pub static USER_TYPE: ValkeyType = ValkeyType::new(
    USER_TYPE_NAME,
    USER_TYPE_ENCVER,
    raw::RedisModuleTypeMethods {
        version: raw::REDISMODULE_TYPE_METHOD_VERSION as u64,
        rdb_load: Some(user_rdb_load),
        rdb_save: Some(user_rdb_save),
        aof_rewrite: Some(user_aof_rewrite),
        mem_usage: Some(user_mem_usage),
        digest: Some(user_digest),
        free: Some(user_free),
        aux_load: None,
        aux_save: None,
        aux_save_triggers: 0,
        free_effort: None,
        unlink: None,
        copy: Some(user_copy),
        defrag: None,
        mem_usage2: None,
        free_effort2: None,
        unlink2: None,
        copy2: None,
        aux_save2: None,
    },
);

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

// ---------------------------------------------------------------------------------------------
// The user type.

/// Registers a freshly created or loaded value in the memory gauges; values are boxed for the
/// server, which hands them back to `user_free`.
pub fn account_new(u: &UserState) {
    metrics::USER_KEYS.add(1);
    metrics::USER_BYTES.add(u.heap_bytes() as i64);
}

unsafe extern "C" fn user_rdb_load(rdb: *mut raw::RedisModuleIO, encver: c_int) -> *mut c_void {
    guard("rdb_load", ptr::null_mut(), || {
        if encver != USER_TYPE_ENCVER {
            metrics::LOAD_ERRORS.incr();
            return ptr::null_mut();
        }
        let Ok(buf) = raw::load_string_buffer(rdb) else {
            metrics::LOAD_ERRORS.incr();
            return ptr::null_mut();
        };
        match user::decode(buf.as_ref()) {
            Ok(u) => {
                account_new(&u);
                Box::into_raw(Box::new(u)).cast()
            }
            Err(e) => {
                metrics::LOAD_ERRORS.incr();
                valkey_module::logging::log_warning(format!("agentic: refusing corrupt user value: {e}"));
                ptr::null_mut()
            }
        }
    })
}

unsafe extern "C" fn user_rdb_save(rdb: *mut raw::RedisModuleIO, value: *mut c_void) {
    guard("rdb_save", (), || {
        let u = &*(value as *const UserState);
        raw::save_slice(rdb, &user::encode(u));
    })
}

unsafe extern "C" fn user_aof_rewrite(aof: *mut raw::RedisModuleIO, key: *mut raw::RedisModuleString, value: *mut c_void) {
    guard("aof_rewrite", (), || {
        let u = &*(value as *const UserState);
        let blob = user::encode(u);
        if let Some(emit) = raw::RedisModule_EmitAOF {
            emit(aof, c"AGENT.LOADUSER".as_ptr(), c"sb".as_ptr(), key, blob.as_ptr() as *const c_char, blob.len());
        }
    })
}

unsafe extern "C" fn user_mem_usage(value: *const c_void) -> usize {
    guard("mem_usage", 0, || (*(value as *const UserState)).heap_bytes())
}

unsafe extern "C" fn user_digest(md: *mut raw::RedisModuleDigest, value: *mut c_void) {
    guard("digest", (), || {
        let blob = user::encode(&*(value as *const UserState));
        if let (Some(add), Some(end)) = (raw::RedisModule_DigestAddStringBuffer, raw::RedisModule_DigestEndSequence) {
            add(md, blob.as_ptr() as *const c_char, blob.len());
            end(md);
        }
    })
}

/// May run on a background thread (FLUSHALL ASYNC): touches only atomics.
unsafe extern "C" fn user_free(value: *mut c_void) {
    guard("free", (), || {
        let u = Box::from_raw(value as *mut UserState);
        invalidate_remembered_values();
        metrics::USER_KEYS.add(-1);
        metrics::USER_BYTES.add(-(u.heap_bytes() as i64));
    })
}

unsafe extern "C" fn user_copy(_from: *mut raw::RedisModuleString, _to: *mut raw::RedisModuleString, value: *const c_void) -> *mut c_void {
    guard("copy", ptr::null_mut(), || {
        let u = (*(value as *const UserState)).clone();
        account_new(&u);
        Box::into_raw(Box::new(u)).cast()
    })
}

// ---------------------------------------------------------------------------------------------
// The topic catalog type: the value under `agentic:topics`, an `Arc<Catalog>` so pool threads can
// hold the catalog a request was made against while the key changes.

pub const CATALOG_TYPE_NAME: &str = "agentopic";
pub const CATALOG_TYPE_ENCVER: i32 = 1;

pub static CATALOG_TYPE: ValkeyType = ValkeyType::new(
    CATALOG_TYPE_NAME,
    CATALOG_TYPE_ENCVER,
    raw::RedisModuleTypeMethods {
        version: raw::REDISMODULE_TYPE_METHOD_VERSION as u64,
        rdb_load: Some(catalog_rdb_load),
        rdb_save: Some(catalog_rdb_save),
        aof_rewrite: Some(catalog_aof_rewrite),
        mem_usage: Some(catalog_mem_usage),
        digest: Some(catalog_digest),
        free: Some(catalog_free),
        aux_load: None,
        aux_save: None,
        aux_save_triggers: 0,
        free_effort: None,
        unlink: None,
        copy: Some(catalog_copy),
        defrag: None,
        mem_usage2: None,
        free_effort2: None,
        unlink2: None,
        copy2: None,
        aux_save2: None,
    },
);

unsafe extern "C" fn catalog_rdb_load(rdb: *mut raw::RedisModuleIO, encver: c_int) -> *mut c_void {
    guard("rdb_load", ptr::null_mut(), || {
        let decoded = match (encver == CATALOG_TYPE_ENCVER).then(|| raw::load_string_buffer(rdb)) {
            Some(Ok(buf)) => catalog::decode(buf.as_ref()),
            _ => Err("unreadable".to_string()),
        };
        match decoded {
            Ok(c) => {
                let c = Arc::new(c);
                crate::classify::pool::prepare(c.clone());
                Box::into_raw(Box::new(c)).cast()
            }
            Err(e) => {
                metrics::LOAD_ERRORS.incr();
                valkey_module::logging::log_warning(format!("agentic: refusing corrupt topic catalog: {e}"));
                ptr::null_mut()
            }
        }
    })
}

unsafe extern "C" fn catalog_rdb_save(rdb: *mut raw::RedisModuleIO, value: *mut c_void) {
    guard("rdb_save", (), || raw::save_slice(rdb, &catalog::encode(&*(value as *const Arc<Catalog>))))
}

unsafe extern "C" fn catalog_aof_rewrite(aof: *mut raw::RedisModuleIO, key: *mut raw::RedisModuleString, value: *mut c_void) {
    guard("aof_rewrite", (), || {
        let blob = catalog::encode(&*(value as *const Arc<Catalog>));
        if let Some(emit) = raw::RedisModule_EmitAOF {
            emit(aof, c"AGENT.LOADTOPICS".as_ptr(), c"sb".as_ptr(), key, blob.as_ptr() as *const c_char, blob.len());
        }
    })
}

unsafe extern "C" fn catalog_mem_usage(value: *const c_void) -> usize {
    guard("mem_usage", 0, || (*(value as *const Arc<Catalog>)).heap_bytes())
}

unsafe extern "C" fn catalog_digest(md: *mut raw::RedisModuleDigest, value: *mut c_void) {
    guard("digest", (), || {
        let blob = catalog::encode(&*(value as *const Arc<Catalog>));
        if let (Some(add), Some(end)) = (raw::RedisModule_DigestAddStringBuffer, raw::RedisModule_DigestEndSequence) {
            add(md, blob.as_ptr() as *const c_char, blob.len());
            end(md);
        }
    })
}

unsafe extern "C" fn catalog_free(value: *mut c_void) {
    guard("free", (), || drop(Box::from_raw(value as *mut Arc<Catalog>)))
}

unsafe extern "C" fn catalog_copy(
    _from: *mut raw::RedisModuleString,
    _to: *mut raw::RedisModuleString,
    value: *const c_void,
) -> *mut c_void {
    guard("copy", ptr::null_mut(), || Box::into_raw(Box::new((*(value as *const Arc<Catalog>)).clone())).cast())
}

// ---------------------------------------------------------------------------------------------
// Keys opened by raw name, for the fan-out hot path.

/// A retained key-name string, plus (for subscriber-index entries) the address of the user value
/// last found under it. Only created, used and dropped on the main thread.
pub struct KeyName {
    name: *mut raw::RedisModuleString,
    cached: std::cell::Cell<(*mut UserState, u64)>,
}

// SAFETY: KeyName is only touched on the server's main thread; the statics holding it need Sync.
unsafe impl Send for KeyName {}
unsafe impl Sync for KeyName {}

/// Bumped whenever a remembered value address may have gone stale: a user value freed (on any
/// thread), a user key deleted, renamed, moved, overwritten or given a TTL, a flush, a load, a
/// database swap. Every event that can free a value on a background thread (FLUSHALL ASYNC, a
/// replica's full sync) first fires a flush event on the main thread, which bumps it, so a
/// remembered address is never used after its value could have been freed.
static USER_EPOCH: AtomicU64 = AtomicU64::new(1);

pub fn invalidate_remembered_values() {
    USER_EPOCH.fetch_add(1, Ordering::SeqCst);
}

impl KeyName {
    pub fn new(name: &[u8]) -> KeyName {
        let name = unsafe { raw::RedisModule_CreateString.unwrap()(ptr::null_mut(), name.as_ptr() as *const c_char, name.len()) };
        KeyName { name, cached: std::cell::Cell::new((ptr::null_mut(), 0)) }
    }

    /// The user value remembered for this key, if nothing that could invalidate it happened
    /// since. Skips the keyspace lookup, which is about half the cost of a delivery.
    /// This key as a fan-out target, with the value address remembered now.
    pub fn target(&self) -> Target {
        let (value, epoch) = self.cached.get();
        Target { key: self, name: self.name, value, epoch }
    }

    fn remember(&self, value: *mut UserState) {
        self.cached.set((value, USER_EPOCH.load(Ordering::SeqCst)));
    }

    pub fn as_bytes(&self) -> &[u8] {
        let mut len = 0usize;
        unsafe {
            let p = raw::RedisModule_StringPtrLen.unwrap()(self.name, &mut len);
            std::slice::from_raw_parts(p as *const u8, len)
        }
    }

    pub fn raw(&self) -> *mut raw::RedisModuleString {
        self.name
    }
}

impl Drop for KeyName {
    fn drop(&mut self) {
        unsafe { raw::RedisModule_FreeString.unwrap()(ptr::null_mut(), self.name) }
    }
}

/// One fan-out target as copied into a job's snapshot: the index entry, its key string and the
/// user value's address remembered in the epoch it was valid in. Copying these in one tight
/// loop (plain loads, no reference counting) overlaps their cache misses; the fast path then
/// never reads the index entry. The entry itself stays alive while any job runs (see
/// `index::retire`).
#[derive(Clone, Copy)]
pub struct Target {
    key: *const KeyName,
    name: *mut raw::RedisModuleString,
    value: *mut UserState,
    epoch: u64,
}

// SAFETY: only used on the main thread; fan-out jobs that hold it sit in a static queue.
unsafe impl Send for Target {}

impl Target {
    /// The index entry (or explicit key) this target names.
    pub fn key(&self) -> &KeyName {
        // SAFETY: a job keeps every KeyName it targets alive: explicit ones are owned by the job,
        // index entries removed while a job is active are retired, not freed, until all jobs end.
        unsafe { &*self.key }
    }

    pub fn name(&self) -> *mut raw::RedisModuleString {
        self.name
    }

    /// Asks for the value's struct and the key string (read when the slice is replicated).
    pub fn prefetch(&self) {
        if !self.value.is_null() && self.epoch == USER_EPOCH.load(Ordering::Relaxed) {
            crate::ffi::prefetch(self.value);
            crate::ffi::prefetch((self.value as *const u8).wrapping_add(64));
        }
        crate::ffi::prefetch(self.name);
    }

    /// Runs `f` on the value if nothing that could invalidate the address happened since.
    pub fn with<R>(self, f: impl FnOnce(&mut UserState) -> R) -> Option<R> {
        if self.value.is_null() || self.epoch != USER_EPOCH.load(Ordering::SeqCst) {
            return None;
        }
        // SAFETY: the epoch is unchanged, so the value has not been freed, replaced or moved
        // (see USER_EPOCH); only the main thread mutates user values, and the borrow ends with `f`.
        unsafe { self.value.as_mut() }.map(f)
    }
}

pub enum UserSlot<'a> {
    Missing,
    WrongType,
    Found(&'a mut UserState),
}

/// A user key opened for reading; the value is updated in place and `mark_modified` makes the
/// close signal WATCH and client tracking, so a duplicate skip does not look like a write.
pub struct OpenUser {
    ctx: *mut raw::RedisModuleCtx,
    name: *mut raw::RedisModuleString,
    key: *mut raw::RedisModuleKey,
    modified: bool,
}

impl OpenUser {
    pub fn open(ctx: &Context, name: &KeyName) -> OpenUser {
        let key = unsafe { raw::RedisModule_OpenKey.unwrap()(ctx.ctx, name.raw(), raw::REDISMODULE_READ as c_int) };
        OpenUser { ctx: ctx.ctx, name: name.raw(), key, modified: false }
    }

    pub fn slot(&mut self) -> UserSlot<'_> {
        unsafe {
            match raw::RedisModule_KeyType.unwrap()(self.key) as isize {
                raw::REDISMODULE_KEYTYPE_EMPTY => UserSlot::Missing,
                raw::REDISMODULE_KEYTYPE_MODULE
                    if raw::RedisModule_ModuleTypeGetType.unwrap()(self.key) == *USER_TYPE.raw_type.borrow() =>
                {
                    let v = raw::RedisModule_ModuleTypeGetValue.unwrap()(self.key) as *mut UserState;
                    match v.as_mut() {
                        Some(u) => UserSlot::Found(u),
                        None => UserSlot::Missing,
                    }
                }
                _ => UserSlot::WrongType,
            }
        }
    }

    /// Remembers the value's address in `name` for later fan-outs, unless the key has a TTL:
    /// an expired key must be seen through the keyspace, which removes it.
    pub fn remember_in(&self, name: &KeyName) {
        if self.key.is_null() {
            return; // read-only open of a missing key
        }
        unsafe {
            if raw::RedisModule_GetExpire.unwrap()(self.key) != raw::REDISMODULE_NO_EXPIRE as i64 {
                return;
            }
            if raw::RedisModule_KeyType.unwrap()(self.key) as isize == raw::REDISMODULE_KEYTYPE_MODULE
                && raw::RedisModule_ModuleTypeGetType.unwrap()(self.key) == *USER_TYPE.raw_type.borrow()
            {
                name.remember(raw::RedisModule_ModuleTypeGetValue.unwrap()(self.key) as *mut UserState);
            }
        }
    }

    pub fn mark_modified(&mut self) {
        self.modified = true;
    }

    /// Stores a new value in the (empty) key. Returns false if the key is no longer empty or the
    /// server refused.
    pub fn create(&mut self, u: UserState) -> bool {
        unsafe {
            raw::RedisModule_CloseKey.unwrap()(self.key);
            let mode = (raw::REDISMODULE_READ | raw::REDISMODULE_WRITE) as c_int;
            self.key = raw::RedisModule_OpenKey.unwrap()(self.ctx, self.name, mode);
            if raw::RedisModule_KeyType.unwrap()(self.key) as isize != raw::REDISMODULE_KEYTYPE_EMPTY {
                return false;
            }
        }
        account_new(&u);
        let boxed = Box::into_raw(Box::new(u));
        let ok = unsafe { raw::RedisModule_ModuleTypeSetValue.unwrap()(self.key, *USER_TYPE.raw_type.borrow(), boxed.cast()) };
        if ok != raw::REDISMODULE_OK as c_int {
            unsafe { user_free(boxed.cast()) };
            return false;
        }
        true
    }
}

impl Drop for OpenUser {
    fn drop(&mut self) {
        unsafe {
            if !self.key.is_null() {
                raw::RedisModule_CloseKey.unwrap()(self.key);
            }
            if self.modified {
                raw::RedisModule_SignalModifiedKey.unwrap()(self.ctx, self.name);
            }
        }
    }
}

pub fn key_type_of(ctx: &Context, name: &[u8]) -> KeyKind {
    let key = KeyName::new(name);
    let k = unsafe { raw::RedisModule_OpenKey.unwrap()(ctx.ctx, key.raw(), raw::REDISMODULE_READ as c_int) };
    if k.is_null() {
        return KeyKind::Missing;
    }
    let kind = unsafe {
        match raw::RedisModule_KeyType.unwrap()(k) as isize {
            raw::REDISMODULE_KEYTYPE_EMPTY => KeyKind::Missing,
            raw::REDISMODULE_KEYTYPE_STRING => KeyKind::String,
            raw::REDISMODULE_KEYTYPE_STREAM => KeyKind::Stream,
            raw::REDISMODULE_KEYTYPE_MODULE if raw::RedisModule_ModuleTypeGetType.unwrap()(k) == *USER_TYPE.raw_type.borrow() => {
                KeyKind::User
            }
            _ => KeyKind::Other,
        }
    };
    unsafe { raw::RedisModule_CloseKey.unwrap()(k) };
    kind
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Missing,
    String,
    Stream,
    User,
    Other,
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

/// Raises the calling thread's nice value (Linux schedules threads individually).
pub fn lower_thread_priority(nice: i32) {
    // SAFETY: plain syscalls on the calling thread; failure only leaves the priority unchanged.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        if libc::setpriority(libc::PRIO_PROCESS, tid, nice) != 0 {
            log_warning("agentic: could not lower the classify worker's priority");
        }
    }
}

pub fn log_notice(msg: &str) {
    valkey_module::logging::log(valkey_module::logging::ValkeyLogLevel::Notice, msg);
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
// Timers: fan-out slices continue on the next event-loop iteration.

pub fn schedule_next_slice(ctx: &Context) {
    unsafe {
        raw::RedisModule_CreateTimer.unwrap()(ctx.ctx, 0, Some(on_slice_timer), ptr::null_mut());
    }
}

/// The pipeline's one pending timer: re-arming replaces it, so there is never more than one.
static PIPELINE_TIMER: std::sync::Mutex<Option<raw::RedisModuleTimerID>> = std::sync::Mutex::new(None);

pub fn schedule_pipeline_tick(ctx: &Context, ms: i64) {
    let mut pending = PIPELINE_TIMER.lock().unwrap_or_else(|p| p.into_inner());
    unsafe {
        if let Some(id) = pending.take() {
            raw::RedisModule_StopTimer.unwrap()(ctx.ctx, id, ptr::null_mut());
        }
        *pending = Some(raw::RedisModule_CreateTimer.unwrap()(ctx.ctx, ms as raw::mstime_t, Some(on_pipeline_timer), ptr::null_mut()));
    }
}

unsafe extern "C" fn on_pipeline_timer(ctx: *mut raw::RedisModuleCtx, _data: *mut c_void) {
    *PIPELINE_TIMER.lock().unwrap_or_else(|p| p.into_inner()) = None;
    let ctx = Context::new(ctx);
    guard("pipeline tick", (), || crate::pipeline::tick(&ctx));
}

unsafe extern "C" fn on_slice_timer(ctx: *mut raw::RedisModuleCtx, _data: *mut c_void) {
    let ctx = Context::new(ctx);
    guard("fanout slice", (), || crate::fanout::run_slice(&ctx));
}

// ---------------------------------------------------------------------------------------------
// Blocking feed reads: clients block on their user key and wake when a delivery signals it.

pub fn block_on_user_key<T: 'static>(
    ctx: &Context,
    key: &ValkeyString,
    timeout_ms: i64,
    data: T,
    on_ready: fn(&Context, &T) -> Option<valkey_module::ValkeyResult>,
    on_timeout: fn(&Context, &T) -> valkey_module::ValkeyResult,
    on_free: fn(T),
) {
    let waiter = Box::new(Waiter { data, on_ready, on_timeout, on_free });
    let mut keys = [key.inner];
    unsafe {
        raw::RedisModule_BlockClientOnKeys.unwrap()(
            ctx.ctx,
            Some(waiter_ready::<T>),
            Some(waiter_timeout::<T>),
            Some(waiter_free::<T>),
            timeout_ms as c_longlong,
            keys.as_mut_ptr(),
            1,
            Box::into_raw(waiter).cast(),
        );
    }
}

struct Waiter<T> {
    data: T,
    on_ready: fn(&Context, &T) -> Option<valkey_module::ValkeyResult>,
    on_timeout: fn(&Context, &T) -> valkey_module::ValkeyResult,
    on_free: fn(T),
}

unsafe fn waiter_of<'a, T>(ctx: *mut raw::RedisModuleCtx) -> Option<&'a Waiter<T>> {
    (raw::RedisModule_GetBlockedClientPrivateData.unwrap()(ctx) as *const Waiter<T>).as_ref()
}

unsafe extern "C" fn waiter_ready<T>(ctx: *mut raw::RedisModuleCtx, _argv: *mut *mut raw::RedisModuleString, _argc: c_int) -> c_int {
    let err = raw::REDISMODULE_ERR as c_int;
    guard("feed wake-up", err, || {
        let context = Context::new(ctx);
        let Some(w) = waiter_of::<T>(ctx) else { return err };
        match (w.on_ready)(&context, &w.data) {
            Some(reply) => {
                context.reply(reply);
                raw::REDISMODULE_OK as c_int
            }
            None => err,
        }
    })
}

unsafe extern "C" fn waiter_timeout<T>(ctx: *mut raw::RedisModuleCtx, _argv: *mut *mut raw::RedisModuleString, _argc: c_int) -> c_int {
    guard("feed timeout", raw::REDISMODULE_OK as c_int, || {
        let context = Context::new(ctx);
        if let Some(w) = waiter_of::<T>(ctx) {
            context.reply((w.on_timeout)(&context, &w.data));
        }
        raw::REDISMODULE_OK as c_int
    })
}

unsafe extern "C" fn waiter_free<T>(_ctx: *mut raw::RedisModuleCtx, privdata: *mut c_void) {
    guard("feed free", (), || {
        if !privdata.is_null() {
            let w = Box::from_raw(privdata as *mut Waiter<T>);
            (w.on_free)(w.data);
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Clients blocked while a pool thread works for them (AGENT.CLASSIFY). The worker hands its
// answer back with RM_UnblockClient; the server then calls `blocked_reply` on the main thread.
// A handle dropped without an answer (a worker that failed) still unblocks its client, with an
// error, so no client ever hangs.

/// What a worker sends back to its blocked client; rendered on the main thread.
pub trait BlockedAnswer: Send + 'static {
    fn reply(self, ctx: &Context) -> valkey_module::ValkeyResult;
    /// The reply when the timeout fires first (the late answer is then dropped).
    fn timed_out(ctx: &Context) -> valkey_module::ValkeyResult;
    /// The reply when the worker dropped the handle without answering.
    fn lost(ctx: &Context) -> valkey_module::ValkeyResult;
}

pub struct Blocked<T: BlockedAnswer> {
    bc: *mut raw::RedisModuleBlockedClient,
    _answer: std::marker::PhantomData<T>,
}

// SAFETY: RM_UnblockClient is the one call made through the handle and is thread-safe.
unsafe impl<T: BlockedAnswer> Send for Blocked<T> {}

/// Blocks the calling client for at most `timeout_ms` (0 = no timeout). None when the server
/// refuses (it then has already replied nothing; the caller replies an error).
pub fn block_client<T: BlockedAnswer>(ctx: &Context, timeout_ms: i64) -> Option<Blocked<T>> {
    let bc = unsafe {
        raw::RedisModule_BlockClient.unwrap()(
            ctx.ctx,
            Some(blocked_reply::<T>),
            Some(blocked_timeout::<T>),
            Some(blocked_free::<T>),
            timeout_ms as c_longlong,
        )
    };
    (!bc.is_null()).then_some(Blocked { bc, _answer: std::marker::PhantomData })
}

impl<T: BlockedAnswer> Blocked<T> {
    pub fn answer(mut self, value: T) {
        let bc = std::mem::replace(&mut self.bc, ptr::null_mut());
        unsafe { raw::RedisModule_UnblockClient.unwrap()(bc, Box::into_raw(Box::new(Some(value))).cast()) };
    }
}

impl<T: BlockedAnswer> Drop for Blocked<T> {
    fn drop(&mut self) {
        if !self.bc.is_null() {
            unsafe { raw::RedisModule_UnblockClient.unwrap()(self.bc, ptr::null_mut()) };
        }
    }
}

unsafe extern "C" fn blocked_reply<T: BlockedAnswer>(
    ctx: *mut raw::RedisModuleCtx,
    _argv: *mut *mut raw::RedisModuleString,
    _argc: c_int,
) -> c_int {
    guard("blocked reply", raw::REDISMODULE_OK as c_int, || {
        let context = Context::new(ctx);
        // The answer is boxed as Option<T>: taken here, the empty box freed by `blocked_free`.
        let data = raw::RedisModule_GetBlockedClientPrivateData.unwrap()(ctx) as *mut Option<T>;
        let reply = match data.as_mut().and_then(Option::take) {
            Some(answer) => answer.reply(&context),
            None => T::lost(&context),
        };
        context.reply(reply);
        raw::REDISMODULE_OK as c_int
    })
}

unsafe extern "C" fn blocked_timeout<T: BlockedAnswer>(
    ctx: *mut raw::RedisModuleCtx,
    _argv: *mut *mut raw::RedisModuleString,
    _argc: c_int,
) -> c_int {
    guard("blocked timeout", raw::REDISMODULE_OK as c_int, || {
        let context = Context::new(ctx);
        context.reply(T::timed_out(&context));
        raw::REDISMODULE_OK as c_int
    })
}

unsafe extern "C" fn blocked_free<T: BlockedAnswer>(_ctx: *mut raw::RedisModuleCtx, privdata: *mut c_void) {
    guard("blocked free", (), || {
        if !privdata.is_null() {
            drop(Box::from_raw(privdata as *mut Option<T>));
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Stream ids, read without touching entry fields.

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub fn parse(s: &[u8]) -> Option<StreamId> {
        let s = std::str::from_utf8(s).ok()?;
        let (a, b) = s.split_once('-')?;
        Some(StreamId { ms: a.parse().ok()?, seq: b.parse().ok()? })
    }

    pub fn successor(self) -> StreamId {
        if self.seq == u64::MAX {
            StreamId { ms: self.ms.saturating_add(1), seq: 0 }
        } else {
            StreamId { ms: self.ms, seq: self.seq + 1 }
        }
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Walks the oldest entries of a stream: how many of the first `limit` have an id below `bound`,
/// and the last such id. Reads ids only.
pub fn count_oldest_below(ctx: &Context, stream_key: &[u8], limit: u64, bound: Option<StreamId>) -> (u64, Option<StreamId>) {
    let name = KeyName::new(stream_key);
    let mut counted = 0u64;
    let mut last = None;
    unsafe {
        let key = raw::RedisModule_OpenKey.unwrap()(ctx.ctx, name.raw(), raw::REDISMODULE_READ as c_int);
        if key.is_null() {
            return (0, None);
        }
        if raw::RedisModule_KeyType.unwrap()(key) as isize == raw::REDISMODULE_KEYTYPE_STREAM
            && raw::RedisModule_StreamIteratorStart.unwrap()(key, 0, ptr::null_mut(), ptr::null_mut()) == raw::REDISMODULE_OK as c_int
        {
            let mut id = raw::RedisModuleStreamID { ms: 0, seq: 0 };
            let mut nfields: std::ffi::c_long = 0;
            while counted < limit
                && raw::RedisModule_StreamIteratorNextID.unwrap()(key, &mut id, &mut nfields) == raw::REDISMODULE_OK as c_int
            {
                let sid = StreamId { ms: id.ms, seq: id.seq };
                if bound.is_some_and(|b| sid >= b) {
                    break;
                }
                counted += 1;
                last = Some(sid);
                // The iterator asserts that an entry's fields were consumed before the next id.
                let (mut field, mut value) = (ptr::null_mut(), ptr::null_mut());
                for _ in 0..nfields {
                    raw::RedisModule_StreamIteratorNextField.unwrap()(key, &mut field, &mut value);
                }
            }
            raw::RedisModule_StreamIteratorStop.unwrap()(key);
        }
        raw::RedisModule_CloseKey.unwrap()(key);
    }
    (counted, last)
}

// ---------------------------------------------------------------------------------------------
// The server fills these function pointers at load. The `.unwrap()`s on them above cannot fail
// once `missing_api` found none missing; init refuses to load otherwise.

pub fn missing_api() -> Option<&'static str> {
    let present: [(&str, bool); 30] = unsafe {
        [
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
            ("KeyType", { raw::RedisModule_KeyType }.is_some()),
            ("Milliseconds", { raw::RedisModule_Milliseconds }.is_some()),
            ("ModuleTypeGetType", { raw::RedisModule_ModuleTypeGetType }.is_some()),
            ("ModuleTypeGetValue", { raw::RedisModule_ModuleTypeGetValue }.is_some()),
            ("ModuleTypeSetValue", { raw::RedisModule_ModuleTypeSetValue }.is_some()),
            ("NotifyKeyspaceEvent", { raw::RedisModule_NotifyKeyspaceEvent }.is_some()),
            ("OpenKey", { raw::RedisModule_OpenKey }.is_some()),
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
