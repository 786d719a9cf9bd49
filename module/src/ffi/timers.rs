//! Timers: fan-out slices and the pipeline continue on later event-loop iterations.

use std::ffi::c_void;
use std::ptr;
use std::time::{Duration, Instant};

use valkey_module::{raw, Context};

use super::*;

/// The next fan-out slice, as soon as the event loop has polled its clients once.
///
/// The server sleeps until its earliest module timer only when a new timer sorts first among
/// the pending ones; otherwise it keeps the wake-up it had, and a timer handler that leaves a
/// timer pending re-arms itself at least 1 ms ahead. So a slice created while the pipeline's
/// tick is already due (it is, often: the tick re-arms 1 ms ahead and slices run for longer)
/// would wait up to 1 ms in epoll with the tick. The pipeline's timer is taken out first and put
/// back behind the slice, with the time it had left, so the slice is first and runs at once.
pub fn schedule_next_slice(ctx: &Context) {
    let mut pending = PIPELINE_TIMER.lock().unwrap_or_else(|p| p.into_inner());
    let tick = pending.take();
    unsafe {
        if let Some((id, _)) = tick {
            raw::RedisModule_StopTimer.unwrap()(ctx.ctx, id, ptr::null_mut());
        }
        raw::RedisModule_CreateTimer.unwrap()(ctx.ctx, 0, Some(on_slice_timer), ptr::null_mut());
        if let Some((_, due)) = tick {
            let ms = due.saturating_duration_since(Instant::now()).as_millis() as raw::mstime_t;
            *pending = Some((raw::RedisModule_CreateTimer.unwrap()(ctx.ctx, ms, Some(on_pipeline_timer), ptr::null_mut()), due));
        }
    }
}

pub fn schedule_slice_in(ctx: &Context, ms: i64) {
    unsafe {
        raw::RedisModule_CreateTimer.unwrap()(ctx.ctx, ms as raw::mstime_t, Some(on_slice_timer), ptr::null_mut());
    }
}

/// The pipeline's one pending timer and when it is due: re-arming replaces it, so there is never
/// more than one.
static PIPELINE_TIMER: std::sync::Mutex<Option<(raw::RedisModuleTimerID, Instant)>> = std::sync::Mutex::new(None);

pub fn schedule_pipeline_tick(ctx: &Context, ms: i64) {
    let mut pending = PIPELINE_TIMER.lock().unwrap_or_else(|p| p.into_inner());
    let due = Instant::now() + Duration::from_millis(ms.max(0) as u64);
    unsafe {
        if let Some((id, _)) = pending.take() {
            raw::RedisModule_StopTimer.unwrap()(ctx.ctx, id, ptr::null_mut());
        }
        *pending =
            Some((raw::RedisModule_CreateTimer.unwrap()(ctx.ctx, ms as raw::mstime_t, Some(on_pipeline_timer), ptr::null_mut()), due));
    }
}

unsafe extern "C" fn on_pipeline_timer(ctx: *mut raw::RedisModuleCtx, _data: *mut c_void) {
    *PIPELINE_TIMER.lock().unwrap_or_else(|p| p.into_inner()) = None;
    let ctx = Context::new(ctx);
    let started = Instant::now();
    guard("pipeline tick", (), || crate::pipeline::tick(&ctx));
    crate::metrics::PIPELINE_TICK_US.record(started.elapsed().as_micros() as u64);
    report_latency(c"agentic-pipeline-tick", started);
}

/// Blocked feed readers left over by `feed-wake-batch` become ready again in the next event-loop
/// iteration: a timer due now also keeps the server from sleeping in between.
pub fn schedule_feed_rewake(ctx: &Context) {
    unsafe {
        raw::RedisModule_CreateTimer.unwrap()(ctx.ctx, 0, Some(on_feed_rewake_timer), ptr::null_mut());
    }
}

unsafe extern "C" fn on_feed_rewake_timer(ctx: *mut raw::RedisModuleCtx, _data: *mut c_void) {
    let ctx = Context::new(ctx);
    guard("feed rewake", (), || crate::feed_wakeups::rewake(&ctx));
}

unsafe extern "C" fn on_slice_timer(ctx: *mut raw::RedisModuleCtx, _data: *mut c_void) {
    let ctx = Context::new(ctx);
    let started = Instant::now();
    guard("fanout slice", (), || crate::fanout::run_slice(&ctx));
    report_latency(c"agentic-fanout-slice", started);
}

/// A timer callback is not a command, so Valkey's latency monitor (LATENCY LATEST, HISTORY,
/// DOCTOR; on when `latency-monitor-threshold` is set) would not see a long one: it would show
/// only as unexplained delay of every client. The server keeps the sample only at or above the
/// threshold.
fn report_latency(event: &std::ffi::CStr, started: Instant) {
    let ms = started.elapsed().as_millis() as raw::mstime_t;
    if ms == 0 {
        return;
    }
    // SAFETY: called on the main thread from a timer callback; the server copies the event name.
    unsafe {
        if let Some(add) = raw::RedisModule_LatencyAddSample {
            add(event.as_ptr(), ms);
        }
    }
}
