//! AGENT.DEBUG: fault injection for tests, refused unless `agentic.debug-commands` is on.
//! - PANIC: a panic inside a command is caught at the command boundary.
//! - CLASSIFY-DELAY ms: every classify batch first sleeps (a saturated or slow pool, on demand).
//! - CLASSIFY-PANIC: the next classify batch panics on its worker thread.

use valkey_module::{Context, ValkeyError, ValkeyResult, ValkeyString, ValkeyValue};
use valkey_module_macros::command;

use crate::classify::pool;
use crate::{configs, validate};

#[command({
    name: "agent.debug",
    flags: [Admin, DenyScript],
    arity: -2,
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
        "CLASSIFY-DELAY" => {
            let ms = args.get(2).ok_or(ValkeyError::Str("ERR CLASSIFY-DELAY needs milliseconds"))?;
            pool::debug_set_delay_ms(validate::integer(ms, "delay (ms)", 0, 60_000)? as u64);
            Ok(ValkeyValue::SimpleStringStatic("OK"))
        }
        "CLASSIFY-PANIC" => {
            pool::debug_panic_next_batch();
            Ok(ValkeyValue::SimpleStringStatic("OK"))
        }
        _ => Err(ValkeyError::Str("ERR unknown AGENT.DEBUG subcommand; try PANIC, CLASSIFY-DELAY ms or CLASSIFY-PANIC")),
    }
}
