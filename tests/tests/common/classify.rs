//! Starting servers with a model and reading AGENT.CLASSIFY replies (classify*.rs).

use std::path::{Path, PathBuf};
use std::time::Duration;

use agentic_tests::{info_field, wait_for, workspace_dir, Server, ServerBuilder};
use redis::{Connection, Value};

use super::{as_string, run};

pub fn tiny_model() -> PathBuf {
    let dir = workspace_dir().join("model/out/tiny");
    assert!(dir.join("model.onnx").is_file(), "the tiny test model is missing: run `make tiny-model` (make test does)");
    dir
}

pub fn real_model() -> Option<PathBuf> {
    let dir = workspace_dir().join("model/out/real");
    if dir.join("model.onnx").is_file() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: the real model is not built (run `make model`)");
        None
    }
}

pub fn with_model(dir: &Path, extra: &[&str]) -> ServerBuilder {
    let mut args = vec!["model-dir", dir.to_str().expect("UTF-8 path")];
    args.extend_from_slice(extra);
    Server::builder().module_args(&args)
}

pub fn model_status(c: &mut Connection) -> String {
    info_field(c, "agentic_classify", "agentic_model_status").unwrap_or_default()
}

pub fn wait_ready(c: &mut Connection) {
    assert!(
        wait_for(|| model_status(c) == "ready", Duration::from_secs(30)),
        "model not ready: {:?}",
        info_field(c, "agentic_classify", "agentic_model_error")
    );
}

pub fn start_tiny(extra: &[&str]) -> (Server, Connection) {
    let server = with_model(&tiny_model(), extra).start();
    let mut c = server.conn();
    wait_ready(&mut c);
    (server, c)
}

/// (best, [(slug, score)], tier) of an AGENT.CLASSIFY reply.
pub fn parse_classification_tier(v: &Value) -> (String, Vec<(String, f64)>, String) {
    let Value::Array(items) = v else { panic!("AGENT.CLASSIFY reply {v:?}") };
    assert_eq!(items.len(), 3, "{v:?}");
    let Value::Array(flat) = &items[1] else { panic!("scores {v:?}") };
    let scores = flat.chunks(2).map(|p| (as_string(&p[0]), as_string(&p[1]).parse::<f64>().expect("score is a number"))).collect();
    let tier = as_string(&items[2]);
    assert!(tier == "static" || tier == "model", "tier {tier}");
    (as_string(&items[0]), scores, tier)
}

/// (best, [(slug, score)]) of an AGENT.CLASSIFY reply.
pub fn parse_classification(v: &Value) -> (String, Vec<(String, f64)>) {
    let (best, scores, _) = parse_classification_tier(v);
    (best, scores)
}

pub fn classify(c: &mut Connection, args: &[&str]) -> (String, Vec<(String, f64)>) {
    let mut all = vec!["AGENT.CLASSIFY"];
    all.extend_from_slice(args);
    parse_classification(&run(c, &all))
}

/// (best, tier) of AGENT.CLASSIFY.
pub fn classify_tier(c: &mut Connection, args: &[&str]) -> (String, String) {
    let mut all = vec!["AGENT.CLASSIFY"];
    all.extend_from_slice(args);
    let (best, _, tier) = parse_classification_tier(&run(c, &all));
    (best, tier)
}
