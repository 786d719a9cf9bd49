//! One file per command family; each handler validates everything before its first write.

pub mod classify;
pub mod debug;
pub mod deliver;
pub mod fanout;
pub mod feed;
pub mod loaduser;
pub mod sidecar;
pub mod stats;
pub mod subscribe;
pub mod timeline;
pub mod topic;

use valkey_module::{Context, ValkeyError, ValkeyResult, ValkeyString};

use crate::{ffi, validate};

/// Command boundary: catches panics and keeps user data in database 0, where the subscriber
/// index lives (and the only database Valkey Cluster has).
pub fn run(ctx: &Context, args: Vec<ValkeyString>, handler: fn(&Context, Vec<ValkeyString>) -> ValkeyResult) -> ValkeyResult {
    let name = args.first().map(|a| a.to_string_lossy()).unwrap_or_default();
    ffi::guard(
        &name,
        Err(ValkeyError::Str("ERR internal error in the agentic module (caught, logged and counted in panics_caught)")),
        || {
            if ffi::selected_db(ctx) != 0 {
                return Err(ValkeyError::Str("ERR agentic keys live in database 0; SELECT 0 first"));
            }
            match handler(ctx, args) {
                Err(ValkeyError::String(msg)) if !msg.is_ascii() => Err(ValkeyError::String(validate::printable(msg.as_bytes()))),
                other => other,
            }
        },
    )
}
