//! AGENT.DEBUG PANIC: proves that a panic inside a command is caught at the command boundary.
//! Refused unless `agentic.debug-commands` is on.

use valkey_module::{Context, ValkeyError, ValkeyResult, ValkeyString};
use valkey_module_macros::command;

use crate::{configs, validate};

#[command({
    name: "agent.debug",
    flags: [Admin, DenyScript],
    arity: 2,
    summary: "Fault injection for tests (needs agentic.debug-commands yes)",
    complexity: "O(1)",
    since: "0.1.0",
    key_spec: []
})]
fn agent_debug(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    super::run(ctx, args, debug)
}

fn debug(_ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    if !configs::debug_commands() {
        return Err(ValkeyError::Str("ERR AGENT.DEBUG is disabled; set agentic.debug-commands yes"));
    }
    match validate::keyword(&args[1]).as_str() {
        "PANIC" => panic!("deliberate panic requested by AGENT.DEBUG PANIC"),
        _ => Err(ValkeyError::Str("ERR unknown AGENT.DEBUG subcommand; try PANIC")),
    }
}
