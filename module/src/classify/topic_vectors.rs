//! Topic vectors per tier: the embedding of every description sentence and example, cached per
//! text and tier, and the scorers built from them, cached per catalog and tier. `Embedder` is what
//! a tier turns texts into vectors with.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::catalog::Catalog;
use super::encoder::Encoder;
use super::scorer::{self, Scorer};
use super::static_tier::StaticTable;
use super::{model, pool};
use crate::{configs, metrics};

/// What turns texts into the unit vectors a scorer is built for: the encoder, or the static
/// tier's table over the encoder's tokenizer. Vectors of different fingerprints never mix.
#[derive(Clone, Copy)]
pub enum Embedder<'a> {
    Model(&'a Encoder),
    Static(&'a Encoder, &'a StaticTable),
}

impl Embedder<'_> {
    pub fn fingerprint(&self) -> u64 {
        match self {
            Embedder::Model(e) => e.fingerprint,
            Embedder::Static(e, t) => t.fingerprint ^ e.fingerprint.rotate_left(17),
        }
    }

    fn dim(&self) -> usize {
        match self {
            Embedder::Model(e) => e.dim,
            Embedder::Static(_, t) => t.dim,
        }
    }

    fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        match self {
            Embedder::Model(e) => {
                e.embed_texts(texts, configs::classify_max_tokens(), configs::classify_batch(), configs::classify_length_plans())
            }
            Embedder::Static(e, t) => {
                let max_tokens = configs::classify_static_max_tokens();
                texts.iter().map(|text| e.tokenize(text, max_tokens).map(|tok| t.embed(&tok.ids))).collect()
            }
        }
    }
}

/// The most recently built scorers, newest first (a few per tier, so concurrent catalogs do not
/// evict each other while a change propagates).
static SCORERS: Mutex<Vec<Arc<Scorer>>> = Mutex::new(Vec::new());
const MAX_SCORERS: usize = 8;
static TEXT_VECTORS: Mutex<Option<HashMap<u64, Arc<Vec<f32>>>>> = Mutex::new(None);
const MAX_CACHED_TEXT_VECTORS: usize = 200_000;

fn text_key(fingerprint: u64, text: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(text.as_bytes(), fingerprint)
}

pub fn scorer_for(catalog: &Arc<Catalog>, tier: Embedder) -> Result<Arc<Scorer>, String> {
    if let Some(s) = cached_scorer(catalog.id, tier.fingerprint()) {
        return Ok(s);
    }
    let scorer = Arc::new(build_scorer(catalog, tier, &[], 0)?);
    {
        let mut scorers = SCORERS.lock().unwrap_or_else(|p| p.into_inner());
        scorers.retain(|s| (s.catalog_id, s.fingerprint) != (catalog.id, scorer.fingerprint));
        scorers.insert(0, scorer.clone());
        scorers.truncate(MAX_SCORERS);
    }
    pool::remember_catalog(catalog);
    Ok(scorer)
}

/// Embeds the catalog's description sentences and examples not embedded yet in this tier (they
/// are cached per text) and builds a scorer, with `learned` vectors for a self-trained head; its
/// fingerprint is the tier's xor `tag`.
pub(super) fn build_scorer(catalog: &Catalog, tier: Embedder, learned: &[(usize, &[f32])], tag: u64) -> Result<Scorer, String> {
    let fingerprint = tier.fingerprint();
    let texts = scorer::texts_of(catalog);
    let missing: Vec<&str> = {
        let cache = TEXT_VECTORS.lock().unwrap_or_else(|p| p.into_inner());
        let mut seen = std::collections::HashSet::new();
        texts
            .iter()
            .copied()
            .filter(|t| seen.insert(*t) && cache.as_ref().is_none_or(|c| !c.contains_key(&text_key(fingerprint, t))))
            .collect()
    };
    if !missing.is_empty() {
        let vectors = tier.embed_texts(&missing)?;
        metrics::TOPIC_TEXTS_EMBEDDED.add(missing.len() as u64);
        let mut cache = TEXT_VECTORS.lock().unwrap_or_else(|p| p.into_inner());
        let cache = cache.get_or_insert_with(HashMap::new);
        if cache.len() + missing.len() > MAX_CACHED_TEXT_VECTORS {
            cache.clear();
        }
        for (t, v) in missing.iter().zip(vectors) {
            cache.insert(text_key(fingerprint, t), Arc::new(v));
        }
    }
    let cache = TEXT_VECTORS.lock().unwrap_or_else(|p| p.into_inner());
    let lookup = |t: &str| cache.as_ref().and_then(|c| c.get(&text_key(fingerprint, t))).map(|v| v.as_ref().clone());
    Scorer::build_with(catalog, fingerprint ^ tag, tier.dim(), lookup, learned)
}

fn cached_scorer(catalog_id: u64, fingerprint: u64) -> Option<Arc<Scorer>> {
    SCORERS.lock().unwrap_or_else(|p| p.into_inner()).iter().find(|s| s.catalog_id == catalog_id && s.fingerprint == fingerprint).cloned()
}

/// Whether a catalog's topic vectors are computed (AGENT.TOPIC.LIST shows it).
pub fn is_prepared(catalog: &Catalog) -> bool {
    let Ok(enc) = model::encoder() else { return false };
    let static_ready = match model::static_table() {
        Some(t) => cached_scorer(catalog.id, Embedder::Static(&enc, &t).fingerprint()).is_some(),
        None => true,
    };
    static_ready && cached_scorer(catalog.id, enc.fingerprint).is_some()
}

/// (encoder, static tier) fingerprints once both are loaded: the identity self-trained heads
/// are fitted under.
pub fn tier_fingerprints() -> Option<(u64, u64)> {
    let encoder = model::encoder().ok()?;
    let table = model::static_table()?;
    Some((encoder.fingerprint, Embedder::Static(&encoder, &table).fingerprint()))
}
