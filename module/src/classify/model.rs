//! The loaded encoder, shared by the pool. Loading runs on its own thread so the event loop never
//! waits for it; until it finishes (or if it fails) AGENT.CLASSIFY answers with the reason.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::encoder::Encoder;
use super::static_tier::StaticTable;
use crate::metrics;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// No `model-dir` configured.
    Absent,
    Loading,
    Ready,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Absent => "absent",
            Status::Loading => "loading",
            Status::Ready => "ready",
            Status::Failed => "failed",
        }
    }
}

struct Slot {
    dir: String,
    status: Status,
    encoder: Option<Arc<Encoder>>,
    error: String,
    /// The static tier's table, when the folder has a usable `static.bin`.
    static_table: Option<Arc<StaticTable>>,
    /// Why the folder's `static.bin` was not used (empty when absent or loaded).
    static_error: String,
    /// Bumped on every (re)configuration; a load that finishes after a newer one started is dropped.
    generation: u64,
}

static SLOT: Mutex<Slot> = Mutex::new(Slot {
    dir: String::new(),
    status: Status::Absent,
    encoder: None,
    error: String::new(),
    static_table: None,
    static_error: String::new(),
    generation: 0,
});

fn slot() -> std::sync::MutexGuard<'static, Slot> {
    SLOT.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Points the module at a model directory; loads it in the background unless it is already the
/// one loaded or loading. An empty dir unloads.
pub fn configure(dir: &str) {
    let generation = {
        let mut s = slot();
        if s.dir == dir && s.status != Status::Failed {
            return;
        }
        s.dir = dir.to_string();
        s.generation += 1;
        s.encoder = None;
        s.error.clear();
        s.static_table = None;
        s.static_error.clear();
        if dir.is_empty() {
            s.status = Status::Absent;
            return;
        }
        s.status = Status::Loading;
        s.generation
    };
    let dir = dir.to_string();
    let spawned = std::thread::Builder::new().name("agentic-model-load".into()).spawn(move || {
        let started = Instant::now();
        let result = std::panic::catch_unwind(|| load(&PathBuf::from(&dir)))
            .unwrap_or_else(|p| Err(format!("loader panicked: {}", crate::ffi::panic_message(&p))));
        finish(generation, result, started.elapsed().as_millis() as u64);
        let current = || slot().generation == generation;
        let encoder = { slot().encoder.clone() };
        if let Some(encoder) = encoder.filter(|_| current()) {
            let (max_tokens, max_plans) = (crate::configs::classify_max_tokens(), crate::configs::classify_length_plans());
            encoder.prebuild_length_plans(max_tokens, max_plans, current);
            // The cascade's default escalation budget follows the encoder's cost per text and has
            // no limit until it knows it: measured now, so a burst of articles right after start-up
            // cannot queue more escalations than the pool runs.
            if let Some(ms) = encoder.cost_of_one_text(max_tokens, max_plans).filter(|_| current()) {
                super::cascade::model_ran(1, ms);
            }
        }
    });
    if let Err(e) = spawned {
        finish(generation, Err(format!("cannot start the loader thread: {e}")), 0);
    }
}

/// The encoder, and the static table beside it (a damaged table leaves the encoder usable alone).
fn load(dir: &std::path::Path) -> Result<(Encoder, Result<Option<StaticTable>, String>), String> {
    let encoder = Encoder::load(dir)?;
    let table = StaticTable::load(dir, encoder.vocab_size());
    Ok((encoder, table))
}

fn finish(generation: u64, result: Result<(Encoder, Result<Option<StaticTable>, String>), String>, elapsed_ms: u64) {
    let ready = {
        let mut s = slot();
        if s.generation != generation {
            return;
        }
        match result {
            Ok((encoder, table)) => {
                metrics::MODEL_LOAD_MS.set(elapsed_ms as i64);
                metrics::MODEL_LOADS.incr();
                metrics::MODEL_LENGTH_PLANS.set(0);
                s.status = Status::Ready;
                s.encoder = Some(Arc::new(encoder));
                match table {
                    Ok(t) => s.static_table = t.map(Arc::new),
                    Err(e) => {
                        metrics::MODEL_LOAD_FAILURES.incr();
                        s.static_error = crate::validate::printable_message(e.as_bytes());
                        crate::ffi::log_warning(&format!(
                            "agentic: static tier not loaded, the encoder classifies every text: {}",
                            s.static_error
                        ));
                    }
                }
                true
            }
            Err(e) => {
                metrics::MODEL_LOAD_FAILURES.incr();
                s.status = Status::Failed;
                s.error = crate::validate::printable_message(e.as_bytes());
                crate::ffi::log_warning(&format!("agentic: model in '{}' not loaded: {}", s.dir, s.error));
                false
            }
        }
    };
    if ready {
        crate::ffi::log_notice(&format!("agentic: model loaded in {elapsed_ms} ms"));
        super::pool::model_ready();
    }
}

/// Follows `model-dir` when it was set without the change callback running (a module argument).
fn sync_with_config() {
    let configured = crate::configs::model_dir();
    let differs = slot().dir != configured;
    if differs {
        configure(&configured);
    }
}

/// The encoder, or the error a client should see.
pub fn encoder() -> Result<Arc<Encoder>, String> {
    sync_with_config();
    let s = slot();
    match (&s.encoder, s.status) {
        (Some(e), Status::Ready) => Ok(e.clone()),
        (_, Status::Absent) => {
            Err("no model configured: set agentic.model-dir to a folder with model.onnx and tokenizer.json (make model builds one)".into())
        }
        (_, Status::Loading) => Err(format!("the model in '{}' is still loading; retry shortly", s.dir)),
        _ => Err(format!("the model in '{}' failed to load: {}", s.dir, s.error)),
    }
}

/// The static tier's table, when the loaded model has one.
pub fn static_table() -> Option<Arc<StaticTable>> {
    let s = slot();
    if s.status == Status::Ready {
        s.static_table.clone()
    } else {
        None
    }
}

/// Where the model runs.
pub const BACKEND: &str = "tract-onnx-cpu";

pub struct ModelInfo {
    pub status: Status,
    pub dir: String,
    pub error: String,
    pub dim: usize,
    pub fingerprint: u64,
    /// "ready", "absent" (no static.bin; also while the model is not loaded) or "failed".
    pub static_status: &'static str,
    pub static_error: String,
    pub static_dim: usize,
}

pub fn info() -> ModelInfo {
    sync_with_config();
    let s = slot();
    ModelInfo {
        status: s.status,
        dir: s.dir.clone(),
        error: s.error.clone(),
        dim: s.encoder.as_ref().map_or(0, |e| e.dim),
        fingerprint: s.encoder.as_ref().map_or(0, |e| e.fingerprint),
        static_status: match (&s.static_table, s.static_error.is_empty()) {
            (Some(_), _) => "ready",
            (None, true) => "absent",
            (None, false) => "failed",
        },
        static_error: s.static_error.clone(),
        static_dim: s.static_table.as_ref().map_or(0, |t| t.dim),
    }
}
