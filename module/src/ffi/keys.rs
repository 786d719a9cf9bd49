//! Keys opened by raw name, for the fan-out hot path: retained key names, remembered user
//! values, and the open-for-update handle.

use std::ffi::{c_char, c_int};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};

use valkey_module::{raw, Context};

use crate::user::UserState;

use super::*;

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
