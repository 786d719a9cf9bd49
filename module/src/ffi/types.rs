//! The module's data types, `agentuser` (one per user), `agentopic` (the topic catalog) and
//! `agentline` (the shared topic timelines): the server's callbacks for RDB, AOF rewrite, digest,
//! memory, free and copy.

use std::ffi::{c_char, c_int, c_void};
use std::ptr;
use std::sync::Arc;

use valkey_module::native_types::ValkeyType;
use valkey_module::raw;

use crate::classify::catalog::{self, Catalog};
use crate::metrics;
use crate::timeline::{self, Timelines};
use crate::user::{self, UserState};

use super::*;

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

// ---------------------------------------------------------------------------------------------
// The user type.

/// Registers a freshly created or loaded value in the memory gauges (and its feed's last id, see
/// feed::note_own_id); values are boxed for the server, which hands them back to `user_free`.
pub fn account_new(u: &UserState) {
    crate::feed::note_own_id(u.feed.last_id);
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
        emit_load_command(aof, c"AGENT.LOADUSER", key, &user::encode(&*(value as *const UserState)));
    })
}

unsafe extern "C" fn user_mem_usage(value: *const c_void) -> usize {
    guard("mem_usage", 0, || (*(value as *const UserState)).heap_bytes())
}

unsafe extern "C" fn user_digest(md: *mut raw::RedisModuleDigest, value: *mut c_void) {
    guard("digest", (), || {
        digest_blob(md, &user::encode(&*(value as *const UserState)));
    })
}

/// May run on a background thread (FLUSHALL ASYNC): touches only atomics.
pub(super) unsafe extern "C" fn user_free(value: *mut c_void) {
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
// The topic catalog (`agentic:topics`, an `Arc<Catalog>` so pool threads can hold the catalog a
// request was made against while the key changes) and the shared timelines (`agentic:timelines`,
// timeline.rs): one value each, persisted as one encoded blob, with the same callbacks.

/// A module value stored as one encoded blob.
trait Blob: Clone + Sized {
    /// What a log line calls it.
    const WHAT: &'static str;
    const ENCVER: i32;
    /// What AOF rewrite writes to recreate it: `<command> <key> <blob>`.
    const LOAD_COMMAND: &'static std::ffi::CStr;
    fn encode(&self) -> Vec<u8>;
    fn decode(blob: &[u8]) -> Result<Self, String>;
    fn heap_bytes(&self) -> usize;
    /// Runs when a value was loaded (RDB, DUMP/RESTORE).
    fn loaded(&self) {}
    /// Runs when a value was freed (possibly on a background thread: atomics only).
    fn freed(&self) {}
}

impl Blob for Arc<Catalog> {
    const WHAT: &'static str = "topic catalog";
    const ENCVER: i32 = CATALOG_TYPE_ENCVER;
    const LOAD_COMMAND: &'static std::ffi::CStr = c"AGENT.LOADTOPICS";
    fn encode(&self) -> Vec<u8> {
        catalog::encode(self)
    }
    fn decode(blob: &[u8]) -> Result<Self, String> {
        catalog::decode(blob).map(Arc::new)
    }
    fn heap_bytes(&self) -> usize {
        Catalog::heap_bytes(self)
    }
    fn loaded(&self) {
        crate::classify::pool::prepare(self.clone());
    }
}

impl Blob for Timelines {
    const WHAT: &'static str = "shared timelines";
    const ENCVER: i32 = TIMELINES_TYPE_ENCVER;
    const LOAD_COMMAND: &'static std::ffi::CStr = c"AGENT.TIMELINE.LOAD";
    fn encode(&self) -> Vec<u8> {
        timeline::encode(self)
    }
    fn decode(blob: &[u8]) -> Result<Self, String> {
        timeline::decode(blob)
    }
    fn heap_bytes(&self) -> usize {
        Timelines::heap_bytes(self)
    }
    fn loaded(&self) {
        metrics::TIMELINE_ENTRIES.set(self.entries() as i64);
    }
    fn freed(&self) {
        metrics::TIMELINE_ENTRIES.set(0);
    }
}

const fn blob_methods<T: Blob>() -> raw::RedisModuleTypeMethods {
    raw::RedisModuleTypeMethods {
        version: raw::REDISMODULE_TYPE_METHOD_VERSION as u64,
        rdb_load: Some(blob_rdb_load::<T>),
        rdb_save: Some(blob_rdb_save::<T>),
        aof_rewrite: Some(blob_aof_rewrite::<T>),
        mem_usage: Some(blob_mem_usage::<T>),
        digest: Some(blob_digest::<T>),
        free: Some(blob_free::<T>),
        aux_load: None,
        aux_save: None,
        aux_save_triggers: 0,
        free_effort: None,
        unlink: None,
        copy: Some(blob_copy::<T>),
        defrag: None,
        mem_usage2: None,
        free_effort2: None,
        unlink2: None,
        copy2: None,
        aux_save2: None,
    }
}

pub const CATALOG_TYPE_NAME: &str = "agentopic";
pub const CATALOG_TYPE_ENCVER: i32 = 1;
pub static CATALOG_TYPE: ValkeyType = ValkeyType::new(CATALOG_TYPE_NAME, CATALOG_TYPE_ENCVER, blob_methods::<Arc<Catalog>>());

pub const TIMELINES_TYPE_NAME: &str = "agentline";
pub const TIMELINES_TYPE_ENCVER: i32 = 1;
pub static TIMELINES_TYPE: ValkeyType = ValkeyType::new(TIMELINES_TYPE_NAME, TIMELINES_TYPE_ENCVER, blob_methods::<Timelines>());

unsafe extern "C" fn blob_rdb_load<T: Blob>(rdb: *mut raw::RedisModuleIO, encver: c_int) -> *mut c_void {
    guard("rdb_load", ptr::null_mut(), || {
        let decoded = match (encver == T::ENCVER).then(|| raw::load_string_buffer(rdb)) {
            Some(Ok(buf)) => T::decode(buf.as_ref()),
            _ => Err("unreadable".to_string()),
        };
        match decoded {
            Ok(v) => {
                v.loaded();
                Box::into_raw(Box::new(v)).cast()
            }
            Err(e) => {
                metrics::LOAD_ERRORS.incr();
                valkey_module::logging::log_warning(format!("agentic: refusing corrupt {}: {e}", T::WHAT));
                ptr::null_mut()
            }
        }
    })
}

unsafe extern "C" fn blob_rdb_save<T: Blob>(rdb: *mut raw::RedisModuleIO, value: *mut c_void) {
    guard("rdb_save", (), || raw::save_slice(rdb, &(*(value as *const T)).encode()))
}

unsafe extern "C" fn blob_aof_rewrite<T: Blob>(aof: *mut raw::RedisModuleIO, key: *mut raw::RedisModuleString, value: *mut c_void) {
    guard("aof_rewrite", (), || emit_load_command(aof, T::LOAD_COMMAND, key, &(*(value as *const T)).encode()))
}

unsafe extern "C" fn blob_mem_usage<T: Blob>(value: *const c_void) -> usize {
    guard("mem_usage", 0, || (*(value as *const T)).heap_bytes())
}

unsafe extern "C" fn blob_digest<T: Blob>(md: *mut raw::RedisModuleDigest, value: *mut c_void) {
    guard("digest", (), || digest_blob(md, &(*(value as *const T)).encode()))
}

unsafe extern "C" fn blob_free<T: Blob>(value: *mut c_void) {
    guard("free", (), || {
        let v = Box::from_raw(value as *mut T);
        v.freed();
    })
}

unsafe extern "C" fn blob_copy<T: Blob>(
    _from: *mut raw::RedisModuleString,
    _to: *mut raw::RedisModuleString,
    value: *const c_void,
) -> *mut c_void {
    guard("copy", ptr::null_mut(), || Box::into_raw(Box::new((*(value as *const T)).clone())).cast())
}

// Every type persists as one encoded blob: AOF rewrite emits `<load command> key blob` and the
// digest covers the same bytes.

unsafe fn emit_load_command(aof: *mut raw::RedisModuleIO, command: &std::ffi::CStr, key: *mut raw::RedisModuleString, blob: &[u8]) {
    if let Some(emit) = raw::RedisModule_EmitAOF {
        emit(aof, command.as_ptr(), c"sb".as_ptr(), key, blob.as_ptr() as *const c_char, blob.len());
    }
}

unsafe fn digest_blob(md: *mut raw::RedisModuleDigest, blob: &[u8]) {
    if let (Some(add), Some(end)) = (raw::RedisModule_DigestAddStringBuffer, raw::RedisModule_DigestEndSequence) {
        add(md, blob.as_ptr() as *const c_char, blob.len());
        end(md);
    }
}
