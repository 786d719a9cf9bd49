//! AGENT.CLASSIFY: topic classification with a sentence-embedding model, off the event loop.
//! `model` loads the encoder in the background, `pool` runs it on worker threads, `catalog`
//! holds the topics (data, not code) and `scorer` turns them into vectors.

pub mod catalog;
mod defaults;
pub mod encoder;
pub mod model;
pub mod pool;
pub mod scorer;
pub mod sidecar;

/// The best topic and every candidate's score, best first.
#[derive(Clone, Debug)]
pub struct Classification {
    pub best: String,
    pub scores: Vec<(String, f32)>,
}
