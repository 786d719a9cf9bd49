//! AGENT.CLASSIFY: topic classification with a sentence-embedding model, off the event loop.
//! `model` loads the encoder in the background, `pool` runs it on worker threads, `catalog`
//! holds the topics (data, not code) and `scorer` turns them into vectors. `static_tier` embeds a
//! text with a distilled token table in microseconds and `cascade` decides which texts it leaves to
//! the encoder; `learner` and `word_head` fit heads to the encoder's own labels.

pub mod cascade;
pub mod catalog;
mod defaults;
pub mod encoder;
pub mod lead;
pub mod learner;
pub mod model;
pub(crate) mod passes;
pub mod pool;
pub mod scorer;
pub mod sidecar;
pub mod static_tier;
pub mod topic_vectors;
pub mod word_head;

/// Which part answered a text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// The distilled token table (static_tier.rs).
    Static,
    /// The sentence encoder (on tract, or on a sidecar).
    Model,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Static => "static",
            Tier::Model => "model",
        }
    }
}

/// The best topic and every candidate's score, best first.
#[derive(Clone, Debug)]
pub struct Classification {
    pub best: String,
    pub scores: Vec<(String, f32)>,
    pub tier: Tier,
    /// Best score minus the runner-up's (infinite with one candidate).
    pub margin: f32,
}
