//! Cluster APIs the crate has no safe wrapper for: this node's id, module options, and the atomic
//! slot migration server event (Valkey 9), whose id and data layout are not in the crate's header.

use std::ffi::{c_char, c_int, c_void, CStr};

use valkey_module::{raw, Context};

use crate::cluster::{self, Migration};

use super::*;

/// `VALKEYMODULE_OPTIONS_HANDLE_ATOMIC_SLOT_MIGRATION`: without it Valkey 9 refuses
/// `CLUSTER MIGRATESLOTS` while the module is loaded.
const OPTIONS_HANDLE_ATOMIC_SLOT_MIGRATION: c_int = 1 << 5;
const EVENT_ATOMIC_SLOT_MIGRATION: u64 = 19;

/// This node's cluster id (40 hex characters), if it runs in cluster mode.
pub fn my_cluster_id() -> Option<String> {
    let f = unsafe { raw::RedisModule_GetMyClusterID }?;
    let p = unsafe { f() };
    if p.is_null() {
        return None;
    }
    // SAFETY: a NUL-terminated id owned by the server, read at once.
    let id = unsafe { CStr::from_ptr(p) };
    Some(String::from_utf8_lossy(&id.to_bytes()[..id.to_bytes().len().min(40)]).into_owned())
}

/// On Valkey 9 and later: declare that the module follows atomic slot migration, and listen to it.
/// Returns false on older servers (nothing to do there).
pub fn handle_atomic_slot_migration(ctx: &Context) -> bool {
    let major = ctx.get_server_version().map(|v| v.major).unwrap_or(0);
    if major < 9 {
        return false;
    }
    unsafe {
        if let Some(set_options) = raw::RedisModule_SetModuleOptions {
            set_options(ctx.ctx, OPTIONS_HANDLE_ATOMIC_SLOT_MIGRATION);
        }
        if let Some(subscribe) = raw::RedisModule_SubscribeToServerEvent {
            let event = raw::RedisModuleEvent { id: EVENT_ATOMIC_SLOT_MIGRATION, dataver: 1 };
            if subscribe(ctx.ctx, event, Some(on_atomic_slot_migration)) != raw::REDISMODULE_OK as c_int {
                log_warning("agentic: could not subscribe to atomic slot migration events");
            }
        }
    }
    true
}

#[repr(C)]
#[derive(Clone, Copy)]
struct SlotRange {
    start: c_int,
    end: c_int,
}

/// `ValkeyModuleAtomicSlotMigrationInfo` version 1.
#[repr(C)]
struct MigrationInfo {
    version: u64,
    job_name: [c_char; 41],
    slot_ranges: *mut SlotRange,
    num_slot_ranges: u32,
}

unsafe extern "C" fn on_atomic_slot_migration(ctx: *mut raw::RedisModuleCtx, _eid: raw::RedisModuleEvent, sub: u64, data: *mut c_void) {
    let _ = ctx;
    guard("atomic slot migration event", (), || {
        let event = match sub {
            0 => Migration::ImportStarted,
            2 => Migration::ImportAborted,
            4 => Migration::ImportCompleted,
            5 => Migration::ExportCompleted,
            _ => Migration::Other,
        };
        let mut ranges = Vec::new();
        // SAFETY: for this event the server passes a MigrationInfo that lives during the call.
        if let Some(info) = unsafe { (data as *const MigrationInfo).as_ref() } {
            for i in 0..info.num_slot_ranges as usize {
                let r = unsafe { *info.slot_ranges.add(i) };
                if (0..cluster::SLOTS as c_int).contains(&r.start) && (r.start..cluster::SLOTS as c_int).contains(&r.end) {
                    ranges.push((r.start as u16, r.end as u16));
                }
            }
        }
        cluster::on_migration(event, &ranges);
    });
}
