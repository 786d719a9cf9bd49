//! Blocked clients: feed reads blocked on a user key, and AGENT.CLASSIFY callers blocked while a
//! pool thread works for them.

use std::ffi::{c_int, c_longlong, c_void};
use std::ptr;

use valkey_module::{raw, Context, ValkeyString};

use super::*;

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
    // Only the user key: a shared timeline append wakes the readers following its topic through
    // that key, a batch per event-loop iteration (feed_wakeups.rs).
    let mut keys = [key.inner];
    let count = keys.len() as c_int;
    unsafe {
        raw::RedisModule_BlockClientOnKeys.unwrap()(
            ctx.ctx,
            Some(waiter_ready::<T>),
            Some(waiter_timeout::<T>),
            Some(waiter_free::<T>),
            timeout_ms as c_longlong,
            keys.as_mut_ptr(),
            count,
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
