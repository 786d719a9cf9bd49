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

/// Sends a module message over the cluster bus to one node (fire-and-forget: lost if the link to
/// that node is down; the pipeline's acknowledgements and re-sends cover that).
pub fn send_cluster_message(ctx: &Context, target_id: &[u8], msg_type: u8, payload: &[u8]) -> bool {
    let Some(send) = (unsafe { raw::RedisModule_SendClusterMessage }) else { return false };
    let Ok(len) = u32::try_from(payload.len()) else { return false };
    // The server reads exactly CLUSTER_NAMELEN (40) bytes of the id.
    if target_id.len() != 40 {
        return false;
    }
    let id = std::ffi::CString::new(target_id).unwrap_or_default();
    unsafe { send(ctx.ctx, id.as_ptr(), msg_type, payload.as_ptr() as *const c_char, len) == raw::REDISMODULE_OK as c_int }
}

/// Sends to every node of the cluster.
pub fn broadcast_cluster_message(ctx: &Context, msg_type: u8, payload: &[u8]) -> bool {
    let Some(send) = (unsafe { raw::RedisModule_SendClusterMessage }) else { return false };
    let Ok(len) = u32::try_from(payload.len()) else { return false };
    unsafe { send(ctx.ctx, std::ptr::null(), msg_type, payload.as_ptr() as *const c_char, len) == raw::REDISMODULE_OK as c_int }
}

/// Receives the pipeline's bus messages: queued, and handled on the pipeline's next tick (writes
/// from inside the bus handler would be propagated outside any command's order).
pub fn register_cluster_receivers(ctx: &Context, types: &[u8]) {
    let Some(register) = (unsafe { raw::RedisModule_RegisterClusterMessageReceiver }) else { return };
    for &t in types {
        unsafe { register(ctx.ctx, t, Some(on_cluster_message)) };
    }
}

unsafe extern "C" fn on_cluster_message(ctx: *mut raw::RedisModuleCtx, sender: *const c_char, msg_type: u8, payload: *const u8, len: u32) {
    let ctx = Context::new(ctx);
    guard("cluster message", (), || {
        if sender.is_null() || (payload.is_null() && len > 0) {
            return;
        }
        // SAFETY: the server passes a 40-byte node id and `len` bytes, valid during the call.
        let sender = unsafe { std::slice::from_raw_parts(sender as *const u8, 40) }.to_vec();
        let bytes = if len == 0 { Vec::new() } else { unsafe { std::slice::from_raw_parts(payload, len as usize) }.to_vec() };
        match msg_type {
            crate::catalog_sync::HASH | crate::catalog_sync::REQUEST | crate::catalog_sync::FULL => {
                crate::catalog_sync::received(sender, msg_type, bytes)
            }
            _ => crate::cluster_pipeline::received(sender, msg_type, bytes),
        }
        schedule_pipeline_tick(&ctx, 0);
    });
}

/// This primary's replication offset and the lowest offset its online replicas acknowledged
/// (None without online replicas), from INFO replication.
pub fn replication_offsets(ctx: &Context) -> (i64, Option<i64>) {
    let info = ctx.server_info("replication");
    let master = info.field_signed("master_repl_offset").unwrap_or(0);
    let replicas = info.field_signed("connected_slaves").unwrap_or(0);
    let mut lowest: Option<i64> = None;
    for i in 0..replicas {
        let Some(line) = info.field_c(&format!("slave{i}")) else { continue };
        let online = line.split(',').any(|kv| kv == "state=online");
        let offset = line.split(',').find_map(|kv| kv.strip_prefix("offset=")).and_then(|v| v.parse::<i64>().ok());
        if let (true, Some(o)) = (online, offset) {
            lowest = Some(lowest.map_or(o, |l: i64| l.min(o)));
        }
    }
    (master, lowest)
}

/// Ids of the primaries the cluster knows, not marked failed, or of every node where the server
/// does not tell roles (module API: safe from timers, where
/// CLUSTER SLOTS / NODES through RM_Call would crash 8.0, which reads the calling client's address).
pub fn cluster_primaries(ctx: &Context) -> Vec<Vec<u8>> {
    let (Some(list), Some(free), Some(info)) =
        (unsafe { (raw::RedisModule_GetClusterNodesList, raw::RedisModule_FreeClusterNodesList, raw::RedisModule_GetClusterNodeInfo) })
    else {
        return Vec::new();
    };
    let mut n = 0usize;
    let ids = unsafe { list(ctx.ctx, &mut n) };
    if ids.is_null() {
        return Vec::new();
    }
    let mut primaries = Vec::new();
    for i in 0..n {
        // SAFETY: the list holds `n` pointers to 40-byte ids, valid until freed below.
        let id = unsafe { *ids.add(i) };
        if id.is_null() {
            continue;
        }
        let mut flags: c_int = 0;
        let (mut ip, mut primary_id, mut port) = ([0 as c_char; 64], [0 as c_char; 48], 0 as c_int);
        let found = unsafe { info(ctx.ctx, id, ip.as_mut_ptr(), primary_id.as_mut_ptr(), &mut port, &mut flags) };
        let flags = flags as u32;
        // Valkey 9.1 answers ERR here from a timer (no client to take the address family from):
        // such nodes are kept, and replicas ignore the pipeline's messages.
        let primary_or_unknown =
            found != raw::REDISMODULE_OK as c_int || (flags & raw::REDISMODULE_NODE_MASTER != 0 && flags & raw::REDISMODULE_NODE_FAIL == 0);
        if primary_or_unknown {
            primaries.push(unsafe { std::slice::from_raw_parts(id as *const u8, 40) }.to_vec());
        }
    }
    unsafe { free(ids) };
    primaries
}
