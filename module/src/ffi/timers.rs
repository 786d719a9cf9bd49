//! Timers: fan-out slices and the pipeline continue on later event-loop iterations.

use std::ffi::c_void;
use std::ptr;

use valkey_module::{raw, Context};

use super::*;

pub fn schedule_next_slice(ctx: &Context) {
    schedule_slice_in(ctx, 0);
}

pub fn schedule_slice_in(ctx: &Context, ms: i64) {
    unsafe {
        raw::RedisModule_CreateTimer.unwrap()(ctx.ctx, ms as raw::mstime_t, Some(on_slice_timer), ptr::null_mut());
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
