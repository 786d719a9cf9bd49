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
        emit_load_command(aof, c"AGENT.LOADTOPICS", key, &catalog::encode(&*(value as *const Arc<Catalog>)));
    })
}

unsafe extern "C" fn catalog_mem_usage(value: *const c_void) -> usize {
    guard("mem_usage", 0, || (*(value as *const Arc<Catalog>)).heap_bytes())
}

unsafe extern "C" fn catalog_digest(md: *mut raw::RedisModuleDigest, value: *mut c_void) {
    guard("digest", (), || {
        digest_blob(md, &catalog::encode(&*(value as *const Arc<Catalog>)));
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
// The shared timelines type: the value under `agentic:timelines` (timeline.rs).

pub const TIMELINES_TYPE_NAME: &str = "agentline";
pub const TIMELINES_TYPE_ENCVER: i32 = 1;

pub static TIMELINES_TYPE: ValkeyType = ValkeyType::new(
    TIMELINES_TYPE_NAME,
    TIMELINES_TYPE_ENCVER,
    raw::RedisModuleTypeMethods {
        version: raw::REDISMODULE_TYPE_METHOD_VERSION as u64,
        rdb_load: Some(timelines_rdb_load),
        rdb_save: Some(timelines_rdb_save),
        aof_rewrite: Some(timelines_aof_rewrite),
        mem_usage: Some(timelines_mem_usage),
        digest: Some(timelines_digest),
        free: Some(timelines_free),
        aux_load: None,
        aux_save: None,
        aux_save_triggers: 0,
        free_effort: None,
        unlink: None,
        copy: Some(timelines_copy),
        defrag: None,
        mem_usage2: None,
        free_effort2: None,
        unlink2: None,
        copy2: None,
        aux_save2: None,
    },
);

unsafe extern "C" fn timelines_rdb_load(rdb: *mut raw::RedisModuleIO, encver: c_int) -> *mut c_void {
    guard("rdb_load", ptr::null_mut(), || {
        let decoded = match (encver == TIMELINES_TYPE_ENCVER).then(|| raw::load_string_buffer(rdb)) {
            Some(Ok(buf)) => timeline::decode(buf.as_ref()),
            _ => Err("unreadable".to_string()),
        };
        match decoded {
            Ok(t) => {
                metrics::TIMELINE_ENTRIES.set(t.entries() as i64);
                Box::into_raw(Box::new(t)).cast()
            }
            Err(e) => {
                metrics::LOAD_ERRORS.incr();
                valkey_module::logging::log_warning(format!("agentic: refusing corrupt shared timelines: {e}"));
                ptr::null_mut()
            }
        }
    })
}

unsafe extern "C" fn timelines_rdb_save(rdb: *mut raw::RedisModuleIO, value: *mut c_void) {
    guard("rdb_save", (), || raw::save_slice(rdb, &timeline::encode(&*(value as *const Timelines))))
}

unsafe extern "C" fn timelines_aof_rewrite(aof: *mut raw::RedisModuleIO, key: *mut raw::RedisModuleString, value: *mut c_void) {
    guard("aof_rewrite", (), || {
        emit_load_command(aof, c"AGENT.TIMELINE.LOAD", key, &timeline::encode(&*(value as *const Timelines)));
    })
}

unsafe extern "C" fn timelines_mem_usage(value: *const c_void) -> usize {
    guard("mem_usage", 0, || (*(value as *const Timelines)).heap_bytes())
}

unsafe extern "C" fn timelines_digest(md: *mut raw::RedisModuleDigest, value: *mut c_void) {
    guard("digest", (), || digest_blob(md, &timeline::encode(&*(value as *const Timelines))))
}

unsafe extern "C" fn timelines_free(value: *mut c_void) {
    guard("free", (), || {
        drop(Box::from_raw(value as *mut Timelines));
        metrics::TIMELINE_ENTRIES.set(0);
    })
}

unsafe extern "C" fn timelines_copy(
    _from: *mut raw::RedisModuleString,
    _to: *mut raw::RedisModuleString,
    value: *const c_void,
) -> *mut c_void {
    guard("copy", ptr::null_mut(), || Box::into_raw(Box::new((*(value as *const Timelines)).clone())).cast())
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
