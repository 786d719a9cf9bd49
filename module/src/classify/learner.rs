//! Self-training: both tiers learn from the encoder's own labels of recent texts, no human labels.
//!
//! The cascade sends a random share of texts (`classify-learn-percent`) to the encoder as
//! teaching samples. Each one keeps its static vector, its encoder vector and the topic the
//! encoder's base scorer (descriptions and examples) gave it. Every `REFIT_EVERY` new samples a
//! worker fits one linear head per tier: the scorer's discriminant analysis, with the samples as
//! extra examples (scorer.rs `build_with`). Measured on AG News' development split, 4,000 such
//! samples lift the static tier from 79.5% to 83.6% and the encoder from 82.0% to 84.4%: the head
//! averages out the encoder's scattered mistakes. The samples' labels always come from the base
//! scorer, never from a head, so a head never learns from its own output.
//!
//! A third head, the word head (word_head.rs), is fitted to the same samples from the words
//! each text uses; its log-probabilities are added to either vector head's scores.
//!
//! Heads belong to one catalog (a topic change drops them and the samples) and carry a version,
//! bumped at every fit. A primary writes each new version to `agentic:heads` (heads_sync.rs), so
//! replicas, the AOF and RDB get them as data; a node installs the heads it finds there when they
//! match its catalog and model.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::catalog::Catalog;
use super::scorer::Scorer;
use super::word_head::WordHead;
use crate::metrics;

/// Samples kept (the newest); about 11 MB with all-MiniLM-L6-v2, a 256-dim static table and
/// up to 256 token ids each.
pub const MAX_SAMPLES: usize = 4_096;
/// A first head is fitted after this many samples, and refitted after as many new ones.
pub const REFIT_EVERY: usize = 1_000;

#[derive(Clone)]
pub struct Sample {
    pub static_vector: Vec<f32>,
    pub model_vector: Vec<f32>,
    /// The static tier's token ids of the text (word_head.rs).
    pub words: Vec<u32>,
    /// Index of the topic in the catalog.
    pub topic: usize,
}

/// One fitted pair of heads.
pub struct Heads {
    pub catalog_id: u64,
    pub version: u64,
    pub samples: usize,
    pub static_head: Arc<Scorer>,
    pub model_head: Arc<Scorer>,
    /// None in heads written before there was one (agentic:heads format 1).
    pub word_head: Option<Arc<WordHead>>,
}

struct State {
    /// The version last written to (or read from) `agentic:heads`.
    published: u64,
    catalog_id: u64,
    /// Fingerprints of the encoder and the static table the samples were computed with.
    fingerprints: (u64, u64),
    samples: VecDeque<Sample>,
    new_since_fit: usize,
    fitting: bool,
    version: u64,
    heads: Option<Arc<Heads>>,
}

static STATE: Mutex<State> = Mutex::new(State {
    published: 0,
    catalog_id: 0,
    fingerprints: (0, 0),
    samples: VecDeque::new(),
    new_since_fit: 0,
    fitting: false,
    version: 0,
    heads: None,
});

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether the learner still collects its first full set (teaching samples then take the budget
/// before margin escalations).
pub fn hungry(catalog_id: u64) -> bool {
    let s = state();
    s.catalog_id != catalog_id || s.samples.len() < MAX_SAMPLES
}

/// The heads fitted for this catalog under these fingerprints, if any.
pub fn heads(catalog_id: u64, fingerprints: (u64, u64)) -> Option<Arc<Heads>> {
    let s = state();
    s.heads.as_ref().filter(|h| h.catalog_id == catalog_id && s.fingerprints == fingerprints).cloned()
}

/// Keeps a teaching sample; true when a fit should be scheduled now.
pub fn record(catalog: &Catalog, fingerprints: (u64, u64), sample: Sample) -> bool {
    let mut s = state();
    if s.catalog_id != catalog.id || s.fingerprints != fingerprints {
        s.catalog_id = catalog.id;
        s.fingerprints = fingerprints;
        s.samples.clear();
        s.new_since_fit = 0;
        s.heads = None;
        metrics::CLASSIFY_HEAD_WORDS.set(0);
    }
    if s.samples.len() == MAX_SAMPLES {
        s.samples.pop_front();
    }
    s.samples.push_back(sample);
    s.new_since_fit += 1;
    metrics::CLASSIFY_LEARN_SAMPLES.incr();
    metrics::CLASSIFY_LEARN_SAMPLES_KEPT.set(s.samples.len() as i64);
    if s.new_since_fit >= REFIT_EVERY && !s.fitting {
        s.fitting = true;
        metrics::CLASSIFY_HEAD_FITTING.set(1);
        return true;
    }
    false
}

/// Fits the heads from the samples kept for `catalog` (on a pool worker: about a second).
/// `fit_static` and `fit_model` build a scorer from (topic, vector) pairs in their tier; the word
/// head also learns from `examples` (topic, token ids of a topic's example).
pub fn fit(
    catalog: &Catalog,
    examples: &[(usize, Vec<u32>)],
    fit_static: impl Fn(&[(usize, &[f32])], u64) -> Result<Scorer, String>,
    fit_model: impl Fn(&[(usize, &[f32])], u64) -> Result<Scorer, String>,
) {
    let started = std::time::Instant::now();
    let (samples, version, fingerprints) = {
        let mut s = state();
        if s.catalog_id != catalog.id {
            s.fitting = false;
            metrics::CLASSIFY_HEAD_FITTING.set(0);
            return;
        }
        s.new_since_fit = 0;
        let copied: Vec<Sample> = s.samples.iter().cloned().collect();
        (copied, s.version + 1, s.fingerprints)
    };
    let static_pairs: Vec<(usize, &[f32])> = samples.iter().map(|x| (x.topic, x.static_vector.as_slice())).collect();
    let model_pairs: Vec<(usize, &[f32])> = samples.iter().map(|x| (x.topic, x.model_vector.as_slice())).collect();
    let word_pairs: Vec<(usize, &[u32])> =
        samples.iter().map(|x| (x.topic, x.words.as_slice())).chain(examples.iter().map(|(t, w)| (*t, w.as_slice()))).collect();
    let fitted = fit_static(&static_pairs, version).and_then(|st| {
        let m = fit_model(&model_pairs, version)?;
        Ok((st, m, WordHead::fit(&word_pairs, catalog.topics.len())?))
    });
    let mut s = state();
    s.fitting = false;
    metrics::CLASSIFY_HEAD_FITTING.set(0);
    metrics::CLASSIFY_HEAD_FIT_MS.set(started.elapsed().as_millis() as i64);
    match fitted {
        Ok((static_head, model_head, word_head)) if s.catalog_id == catalog.id && s.fingerprints == fingerprints => {
            s.version = version;
            metrics::CLASSIFY_HEAD_WORDS.set(word_head.features() as i64);
            s.heads = Some(Arc::new(Heads {
                catalog_id: catalog.id,
                version,
                samples: samples.len(),
                static_head: Arc::new(static_head),
                model_head: Arc::new(model_head),
                word_head: Some(Arc::new(word_head)),
            }));
            metrics::CLASSIFY_HEAD_FITS.incr();
            metrics::CLASSIFY_HEAD_VERSION.set(version as i64);
            metrics::CLASSIFY_HEAD_SAMPLES.set(samples.len() as i64);
        }
        Ok(_) => {}
        Err(e) => {
            metrics::CLASSIFY_HEAD_FIT_FAILURES.incr();
            crate::ffi::log_warning(&format!("agentic: fitting the self-trained heads failed: {e}"));
        }
    }
}

/// Forgets samples and heads (the model changed).
pub fn reset() {
    let mut s = state();
    s.samples.clear();
    s.new_since_fit = 0;
    s.heads = None;
    metrics::CLASSIFY_LEARN_SAMPLES_KEPT.set(0);
    metrics::CLASSIFY_HEAD_WORDS.set(0);
}

/// Tells a head's scorer fingerprint from its tier's base one (cascade windows reset per version).
pub fn fingerprint_tag(version: u64) -> u64 {
    version.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Heads fitted here and not yet written to `agentic:heads`.
pub fn unpublished() -> Option<Arc<Heads>> {
    let s = state();
    s.heads.as_ref().filter(|h| h.version > s.published).cloned()
}

pub fn mark_published(version: u64) {
    let mut s = state();
    s.published = s.published.max(version);
}

/// Installs heads read from `agentic:heads` (same catalog content and model as this node's),
/// unless this node already has that version or a newer one.
pub fn install(heads: Heads, fingerprints: (u64, u64)) -> bool {
    let mut s = state();
    let same_catalog = s.catalog_id == heads.catalog_id && s.fingerprints == fingerprints;
    if same_catalog && s.heads.as_ref().is_some_and(|h| h.version >= heads.version) {
        s.published = s.published.max(heads.version);
        return false;
    }
    if !same_catalog {
        s.catalog_id = heads.catalog_id;
        s.fingerprints = fingerprints;
        s.samples.clear();
        s.new_since_fit = 0;
    }
    s.version = s.version.max(heads.version);
    s.published = s.published.max(heads.version);
    metrics::CLASSIFY_HEAD_VERSION.set(heads.version as i64);
    metrics::CLASSIFY_HEAD_SAMPLES.set(heads.samples as i64);
    metrics::CLASSIFY_HEAD_WORDS.set(heads.word_head.as_ref().map_or(0, |w| w.features() as i64));
    s.heads = Some(Arc::new(heads));
    true
}

/// Format 1 has the two vector heads; format 2 adds the word head.
const MAGIC_V1: &[u8; 8] = b"AGHEADS1";
const MAGIC: &[u8; 8] = b"AGHEADS2";

/// The word head as stored: topic count, keys, idf, weights (word_head.rs `parts`).
pub type EncodedWords = (usize, Vec<u64>, Vec<f32>, Vec<f32>);

/// What `agentic:heads` holds: the catalog's content hash, the model's and the static table's
/// fingerprints, the version, the sample count, then per tier (static, model) the dimension, the
/// topic count, the weights and the biases; in format 2 then the word head's topic count, key
/// count, keys, idf and weights; little-endian.
pub struct Encoded {
    pub catalog_hash: u64,
    pub fingerprints: (u64, u64),
    pub version: u64,
    pub samples: usize,
    /// (dim, weights, biases) of the static head, then the model head.
    pub tiers: [(usize, Vec<f32>, Vec<f32>); 2],
    pub words: Option<EncodedWords>,
}

pub fn encode(heads: &Heads, catalog_hash: u64, fingerprints: (u64, u64)) -> Vec<u8> {
    let mut out = if heads.word_head.is_some() { MAGIC } else { MAGIC_V1 }.to_vec();
    for v in [catalog_hash, fingerprints.0, fingerprints.1, heads.version] {
        out.extend(v.to_le_bytes());
    }
    out.extend((heads.samples as u32).to_le_bytes());
    for scorer in [&heads.static_head, &heads.model_head] {
        let (dim, weights, bias) = scorer.parts();
        out.extend((dim as u32).to_le_bytes());
        out.extend((bias.len() as u32).to_le_bytes());
        weights.iter().chain(bias).for_each(|x| out.extend(x.to_le_bytes()));
    }
    if let Some(w) = &heads.word_head {
        let (keys, idf, weights) = w.parts();
        out.extend((w.topics() as u32).to_le_bytes());
        out.extend((keys.len() as u32).to_le_bytes());
        keys.iter().for_each(|k| out.extend(k.to_le_bytes()));
        idf.iter().chain(weights).for_each(|x| out.extend(x.to_le_bytes()));
    }
    out
}

pub fn decode(b: &[u8]) -> Result<Encoded, String> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8], String> {
        let chunk = b.get(at..at + n).ok_or("agentic:heads is truncated")?;
        at += n;
        Ok(chunk)
    };
    let format = match take(8)? {
        m if m == MAGIC_V1 => 1,
        m if m == MAGIC => 2,
        _ => return Err("agentic:heads does not hold self-trained heads".into()),
    };
    let mut u64s = [0u64; 4];
    for v in &mut u64s {
        *v = u64::from_le_bytes(take(8)?.try_into().map_err(|_| "agentic:heads is truncated")?);
    }
    let u32_of = |c: &[u8]| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize;
    let floats = |c: &[u8]| -> Vec<f32> { c.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect() };
    let samples = u32_of(take(4)?);
    let mut tiers: Vec<(usize, Vec<f32>, Vec<f32>)> = Vec::with_capacity(2);
    for _ in 0..2 {
        let dim = u32_of(take(4)?);
        let topics = u32_of(take(4)?);
        let n = dim.checked_mul(topics).filter(|n| *n <= 1 << 24).ok_or("agentic:heads: sizes out of range")?;
        let values = floats(take((n + topics) * 4)?);
        let (weights, bias) = values.split_at(n);
        tiers.push((dim, weights.to_vec(), bias.to_vec()));
    }
    let words = if format == 2 {
        let topics = u32_of(take(4)?);
        let n = u32_of(take(4)?);
        let cells = n
            .checked_mul(topics)
            .filter(|c| n <= super::word_head::MAX_FEATURES && *c <= 1 << 24)
            .ok_or("agentic:heads: word head sizes out of range")?;
        let keys: Vec<u64> =
            take(n * 8)?.chunks_exact(8).map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect();
        let idf = floats(take(n * 4)?);
        let weights = floats(take(cells * 4)?);
        Some((topics, keys, idf, weights))
    } else {
        None
    };
    if at != b.len() {
        return Err("agentic:heads has trailing bytes".into());
    }
    let model = tiers.pop().ok_or("agentic:heads: no model head")?;
    let static_head = tiers.pop().ok_or("agentic:heads: no static head")?;
    Ok(Encoded { catalog_hash: u64s[0], fingerprints: (u64s[1], u64s[2]), version: u64s[3], samples, tiers: [static_head, model], words })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::catalog::{Catalog, TopicDef};

    fn catalog() -> Catalog {
        Catalog::new(["a", "b"].iter().map(|s| TopicDef { slug: s.to_string(), description: "d".into(), examples: vec![] }).collect())
    }

    #[test]
    fn heads_round_trip_and_damage_is_refused() {
        let c = catalog();
        let st = Scorer::from_parts(&c, 1, 2, vec![1.0, 0.0, 0.0, 1.0], vec![0.5, -0.5]).unwrap();
        let m = Scorer::from_parts(&c, 2, 3, vec![0.1; 6], vec![0.0, 0.25]).unwrap();
        let words: Vec<(usize, Vec<u32>)> = (0..6u32).map(|i| ((i % 2) as usize, vec![1, 2 + i % 2, 9])).collect();
        let refs: Vec<(usize, &[u32])> = words.iter().map(|(t, w)| (*t, w.as_slice())).collect();
        let word_head = WordHead::fit(&refs, 2).unwrap();
        assert!(word_head.features() > 0);
        let mut heads =
            Heads { catalog_id: c.id, version: 7, samples: 1234, static_head: Arc::new(st), model_head: Arc::new(m), word_head: None };
        let v1 = decode(&encode(&heads, 99, (11, 22))).unwrap();
        assert!(v1.words.is_none(), "format 1: no word head");
        heads.word_head = Some(Arc::new(word_head));
        let blob = encode(&heads, 99, (11, 22));
        let d = decode(&blob).unwrap();
        assert_eq!((d.catalog_hash, d.fingerprints, d.version, d.samples), (99, (11, 22), 7, 1234));
        assert_eq!(d.tiers[0], (2, vec![1.0, 0.0, 0.0, 1.0], vec![0.5, -0.5]));
        assert_eq!(d.tiers[1].0, 3);
        let (topics, keys, idf, weights) = d.words.clone().unwrap();
        assert_eq!(WordHead::from_parts(topics, keys, idf, weights).ok().as_ref(), heads.word_head.as_deref());
        assert!(decode(&blob[..blob.len() - 1]).is_err());
        assert!(decode(b"something else entirely").is_err());
        let mut longer = blob.clone();
        longer.push(0);
        assert!(decode(&longer).err().unwrap_or_default().contains("trailing"));
        assert!(Scorer::from_parts(&c, 1, 2, vec![f32::NAN; 4], vec![0.0; 2]).is_err());
        assert!(Scorer::from_parts(&c, 1, 2, vec![0.0; 3], vec![0.0; 2]).is_err());
    }
}
