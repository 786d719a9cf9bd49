//! Blocked AGENT.FEED readers, and how many of their user keys the event loop wakes per
//! iteration.
//!
//! An article appended to a shared timeline (or fanned out to many feeds) makes every reader
//! waiting on it ready at once, and the server would build and write all their replies in one go
//! while every other client waits behind them. So a write that makes readers ready queues their
//! user keys (readers are blocked on their user key only), and each event-loop iteration wakes at
//! most `feed-wake-batch` keys of the queue, in order; the server answers their readers before it
//! sleeps, and the other clients are served between batches whatever the number of readers.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use valkey_module::Context;

use crate::{configs, ffi, index, metrics};

#[derive(Default)]
struct Readers {
    /// Blocked readers per user key, and whether the key is in `queue`.
    waiting: HashMap<Box<[u8]>, Waiting>,
    /// User keys to wake, in order, with the event-loop iteration that queued them.
    queue: VecDeque<(Box<[u8]>, u64)>,
    iteration: u64,
    /// Keys woken in this iteration.
    woken: usize,
    timer_armed: bool,
}

#[derive(Default)]
struct Waiting {
    readers: usize,
    queued: bool,
    /// The key was signalled in this iteration and the server has not looked at its readers yet:
    /// they will read everything written so far when it does, so another write before then need
    /// not wake them again.
    signalled_in: Option<u64>,
}

// Main thread only (command handlers, blocked-client callbacks, event-loop hooks, timers).
static READERS: Mutex<Option<Readers>> = Mutex::new(None);
static BLOCKED: AtomicUsize = AtomicUsize::new(0);

fn with<R>(f: impl FnOnce(&mut Readers) -> R) -> R {
    let mut guard = READERS.lock().unwrap_or_else(|p| p.into_inner());
    f(guard.get_or_insert_with(Readers::default))
}

pub fn waiter_added(user_key: &[u8]) {
    with(|r| {
        let w = r.waiting.entry(user_key.into()).or_default();
        w.readers += 1;
        w.signalled_in = None;
    });
    BLOCKED.fetch_add(1, Ordering::Relaxed);
}

/// The server is looking at the readers of `user_key` (their wake-up callback runs): a later
/// write wakes them again.
pub fn checked(user_key: &[u8]) {
    with(|r| {
        if let Some(w) = r.waiting.get_mut(user_key) {
            w.signalled_in = None;
        }
    });
}

pub fn waiter_removed(user_key: &[u8]) {
    with(|r| {
        if let Some(w) = r.waiting.get_mut(user_key) {
            w.readers -= 1;
            if w.readers == 0 {
                // A queued key stays in the queue; waking a key nobody waits on costs nothing.
                r.waiting.remove(user_key);
            }
            BLOCKED.fetch_sub(1, Ordering::Relaxed);
        }
    });
}

/// A delivery to `user_key`'s own feed: its readers, if any wait, are woken in turn.
pub fn wake(ctx: &Context, user_key: &[u8]) {
    if BLOCKED.load(Ordering::Relaxed) == 0 {
        return;
    }
    let queued = with(|r| {
        let iteration = r.iteration;
        match r.waiting.get_mut(user_key) {
            Some(w) if !w.queued && w.signalled_in != Some(iteration) => {
                w.queued = true;
                r.queue.push_back((user_key.into(), iteration));
                true
            }
            _ => false,
        }
    });
    if queued {
        wake_next(ctx);
    }
}

/// A shared timeline of `topic` has a new entry: the blocked readers following it are woken in
/// turn.
pub fn wake_followers(ctx: &Context, topic: &[u8]) {
    if BLOCKED.load(Ordering::Relaxed) == 0 {
        return;
    }
    with(|r| {
        let iteration = r.iteration;
        let Readers { waiting, queue, .. } = r;
        let mut enqueue = |key: &[u8], w: &mut Waiting| {
            if !w.queued && w.signalled_in != Some(iteration) {
                w.queued = true;
                queue.push_back((key.into(), iteration));
            }
        };
        // Whichever side is smaller: the blocked readers, or the topic's followers.
        index::with(|ix| {
            if waiting.len() <= ix.followers(topic) {
                for (key, w) in waiting.iter_mut().filter(|(key, _)| ix.follows(topic, key)) {
                    enqueue(key, w);
                }
            } else {
                for key in ix.followers_of(topic) {
                    if let Some(w) = waiting.get_mut(key) {
                        enqueue(key, w);
                    }
                }
            }
        })
    });
    wake_next(ctx);
}

/// Signals the user keys at the front of the queue, up to this iteration's budget; the server
/// answers their readers before it sleeps next.
fn wake_next(ctx: &Context) {
    let keys: Vec<Box<[u8]>> = with(|r| {
        let n = configs::feed_wake_batch().saturating_sub(r.woken).min(r.queue.len());
        r.woken += n;
        let mut keys = Vec::with_capacity(n);
        for (key, queued_in) in r.queue.drain(..n) {
            if queued_in < r.iteration {
                metrics::FEED_WAKEUPS_DEFERRED.incr();
            }
            if let Some(w) = r.waiting.get_mut(&key) {
                w.queued = false;
                w.signalled_in = Some(r.iteration);
            }
            keys.push(key);
        }
        keys
    });
    for key in keys {
        ffi::signal_key_ready(ctx, &ffi::KeyName::new(&key));
    }
}

/// Before the event loop sleeps: a new iteration's budget, and while keys wait in the queue a
/// timer due at once, so the next iteration polls the clients and then wakes the next keys.
pub fn before_sleep(ctx: &Context) {
    let arm = with(|r| {
        r.iteration += 1;
        r.woken = 0;
        let arm = !r.queue.is_empty() && !r.timer_armed;
        r.timer_armed |= arm;
        arm
    });
    if arm {
        ffi::schedule_feed_rewake(ctx);
    }
}

/// From the timer armed before the last sleep: the next keys of the queue.
pub fn rewake(ctx: &Context) {
    with(|r| r.timer_armed = false);
    wake_next(ctx);
}

/// A flush: the keys queued are gone; readers still blocked wake with their next entry or their
/// timeout.
pub fn clear_queue() {
    with(|r| {
        r.queue.clear();
        r.waiting.values_mut().for_each(|w| w.queued = false);
    });
}
