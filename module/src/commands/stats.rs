//! AGENT.STATS and the INFO sections: the same metrics, two renderings.

use valkey_module::{Context, InfoContext, ValkeyResult, ValkeyString, ValkeyValue};
use valkey_module_macros::command;

use crate::{index, metrics};

#[command({
    name: "agent.stats",
    flags: [ReadOnly, Fast],
    arity: 1,
    summary: "Returns every module metric as flat name/value bulk strings (for redis_exporter -script)",
    complexity: "O(T) for T topics",
    since: "0.1.0",
    key_spec: []
})]
fn agent_stats(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    super::run(ctx, args, stats)
}

fn all_metrics() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = metrics::snapshot()
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                metrics::Value::Int(i) => i.to_string(),
                metrics::Value::Float(f) => format!("{f:.6}"),
            };
            (k, v)
        })
        .collect();
    let (counts, index_bytes) = index::with(|ix| (ix.counts(), ix.heap_bytes()));
    let model = crate::classify::model::info();
    out.push(("model_ready".into(), ((model.status == crate::classify::model::Status::Ready) as i64).to_string()));
    out.push(("model_dim".into(), model.dim.to_string()));
    out.push(("static_ready".into(), ((model.static_status == "ready") as i64).to_string()));
    out.push(("index_bytes".into(), index_bytes.to_string()));
    out.push(("index_retired_entries".into(), index::retired_entries().to_string()));
    out.push(("topics".into(), counts.len().to_string()));
    for (topic, n) in counts {
        out.push((format!("topic_subscribers:{topic}"), n.to_string()));
    }
    out
}

fn stats(_ctx: &Context, _args: Vec<ValkeyString>) -> ValkeyResult {
    Ok(ValkeyValue::Array(all_metrics().into_iter().flat_map(|(k, v)| [ValkeyValue::BulkString(k), ValkeyValue::BulkString(v)]).collect()))
}

/// `INFO agentic` (and `INFO modules` / `INFO everything`): section `agentic_stats` with every
/// metric, and `agentic_topics` with subscribers per topic.
pub fn info(ctx: &InfoContext, _for_crash_report: bool) {
    crate::ffi::guard("INFO", (), || {
        let _ = build_info(ctx);
    });
}

fn build_info(ctx: &InfoContext) -> ValkeyResult<()> {
    let mut section = ctx.builder().add_section("stats");
    for (k, v) in all_metrics() {
        if !k.starts_with("topic_subscribers:") {
            section = section.field(&k, v)?;
        }
    }
    let mut topics = section.build_section()?.add_section("topics");
    for (topic, n) in index::with(|ix| ix.counts()) {
        topics = topics.field(&format!("subscribers_{}", topic.replace('-', "_")), n as i64)?;
    }
    let model = crate::classify::model::info();
    let (sidecar_devices, sidecars_gpu) = crate::classify::sidecar::devices();
    topics
        .build_section()?
        .add_section("classify")
        .field("model_status", model.status.as_str())?
        .field("model_error", model.error.as_str())?
        .field("model_dir", validate_printable(&model.dir))?
        .field("model_dim", model.dim as i64)?
        .field("model_fingerprint", format!("{:016x}", model.fingerprint))?
        .field("backend", crate::classify::model::BACKEND)?
        .field("tier_mode", crate::configs::classify_tier().as_str())?
        .field("static_status", model.static_status)?
        .field("static_error", model.static_error.as_str())?
        .field("static_dim", model.static_dim as i64)?
        .field("threads", crate::configs::classify_threads() as i64)?
        .field("queue_depth", crate::classify::pool::queue_depth() as i64)?
        .field("sidecars_live", crate::metrics::SIDECARS_LIVE.get())?
        .field("sidecars_gpu", sidecars_gpu as i64)?
        .field("sidecar_devices", sidecar_devices)?
        .build_section()?
        .build_info()?;
    Ok(())
}

fn validate_printable(s: &str) -> String {
    crate::validate::printable_message(s.as_bytes())
}
