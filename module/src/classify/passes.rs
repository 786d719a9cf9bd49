//! What a worker does with a batch of texts: the static tier's pass (scores, and the cascade's
//! choice of texts for the encoder), the encoder's pass, and the ranking of topics from a vector
//! and the self-trained heads. The queue and the workers that call these: pool.rs.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::cascade::{self, Learning, Route};
use super::catalog::Catalog;
use super::encoder::Encoder;
use super::pool::schedule_fits;
use super::scorer::Scorer;
use super::static_tier::StaticTable;
use super::topic_vectors::{scorer_for, Embedder};
use super::word_head::{self, WordHead};
use super::{learner, model, Classification, Tier};
use crate::configs::ClassifyTier;
use crate::{configs, metrics};

/// A text the static tier sends on to the encoder.
pub struct Escalation {
    /// The static tier's answer, given if the encoder fails.
    pub answer: Classification,
    /// The text's static vector when it is a teaching sample for the heads.
    pub teach: Option<Vec<f32>>,
    /// The static tier's token ids of the text (the word head reads them).
    pub words: Vec<u32>,
}

/// Classifies texts, each against its own catalog and topic subset, sharing forward passes. Used by
/// the workers and, for MULTI and Lua, inline on the main thread.
pub fn classify_texts(texts: &[&str], choices: Vec<(Arc<Catalog>, Option<Vec<String>>)>) -> Vec<Result<Classification, String>> {
    let mut out: Vec<Option<Result<Classification, String>>> = texts.iter().map(|_| None).collect();
    classify_each(texts, &choices, |i, r| out[i] = Some(r));
    out.into_iter().map(|r| r.unwrap_or_else(|| Err("no result".into()))).collect()
}

/// Hands each text's result to `done(index, result)` as soon as it is known, every index once.
/// With the static tier in use it scores every text first; in the cascade the encoder then runs
/// (here, inline) only for the texts `cascade::choose` escalates.
pub fn classify_each(
    texts: &[&str],
    choices: &[(Arc<Catalog>, Option<Vec<String>>)],
    mut done: impl FnMut(usize, Result<Classification, String>),
) {
    let mut answered = vec![false; texts.len()];
    let mut answer = |i: usize, r: Result<Classification, String>| {
        if !answered[i] {
            answered[i] = true;
            done(i, r);
        }
    };
    let encoder = match model::encoder() {
        Ok(e) => e,
        Err(e) => {
            (0..texts.len()).for_each(|i| answer(i, Err(e.clone())));
            return;
        }
    };
    match static_tier_in_use() {
        Some(table) => {
            let escalated = static_pass(&encoder, &table, texts, choices, &mut answer);
            let indices = escalated.into_iter().map(|(i, e)| (i, Some(e))).collect();
            model_pass(&encoder, texts, choices, indices, &mut answer);
        }
        None => model_pass(&encoder, texts, choices, (0..texts.len()).map(|i| (i, None)).collect(), &mut answer),
    }
}

/// The static table when `classify-tier` lets it answer (and a sidecar is not taking the texts).
pub(super) fn static_tier_in_use() -> Option<Arc<StaticTable>> {
    if configs::classify_tier() == ClassifyTier::Model {
        return None;
    }
    model::static_table()
}

/// The static tier's scorer for a catalog and the word head to add to it.
type StaticScorers = (Arc<Scorer>, Option<Arc<WordHead>>);

/// Scores every text with the static tier (its self-trained head when one is fitted) and answers
/// those it keeps; returns the texts the cascade sends on to the encoder.
pub(super) fn static_pass(
    encoder: &Encoder,
    table: &StaticTable,
    texts: &[&str],
    choices: &[(Arc<Catalog>, Option<Vec<String>>)],
    answer: &mut dyn FnMut(usize, Result<Classification, String>),
) -> Vec<(usize, Escalation)> {
    let tier = Embedder::Static(encoder, table);
    let fingerprints = (encoder.fingerprint, tier.fingerprint());
    let max_tokens = configs::classify_static_max_tokens();
    let mut scorers: HashMap<u64, Result<StaticScorers, String>> = HashMap::new();
    // (text index, answer, static vector, token ids)
    let mut ranked: Vec<(usize, Classification, Vec<f32>, Vec<u32>)> = Vec::with_capacity(texts.len());
    let mut scorer_key = (0, 0);
    for (i, t) in texts.iter().enumerate() {
        let tokens = match encoder.tokenize(t, max_tokens) {
            Ok(tok) => tok,
            Err(e) => {
                answer(i, Err(e));
                continue;
            }
        };
        metrics::CLASSIFY_TOKENS.add(tokens.len() as u64);
        let (catalog, topics) = &choices[i];
        let scorer = scorers.entry(catalog.id).or_insert_with(|| match learner::heads(catalog.id, fingerprints) {
            Some(h) => Ok((h.static_head.clone(), h.word_head.clone())),
            None => scorer_for(catalog, tier).map(|s| (s, None)),
        });
        match scorer {
            Ok((s, word_head)) => {
                scorer_key = (s.catalog_id, s.fingerprint);
                let vector = table.embed(&tokens.ids);
                let words = word_head::ids_of(&tokens.ids);
                let extra = word_scores(word_head.as_deref(), &words);
                ranked.push((i, rank(s, &vector, extra.as_deref(), topics.as_deref(), Tier::Static), vector, words));
            }
            Err(e) => answer(i, Err(e.clone())),
        }
    }
    let routes = if configs::classify_tier() == ClassifyTier::Cascade {
        let learnable: Vec<bool> = ranked.iter().map(|(i, _, _, _)| choices[*i].1.is_none()).collect();
        let first = ranked.first().is_some_and(|(i, _, _, _)| learner::hungry(choices[*i].0.id));
        let learning = Learning { learnable: &learnable, percent: configs::classify_learn_percent(), first };
        cascade::choose(scorer_key, &ranked.iter().map(|(_, c, _, _)| c.margin).collect::<Vec<_>>(), &learning)
    } else {
        vec![Route::Static; ranked.len()]
    };
    let mut escalated = Vec::new();
    for ((i, c, vector, words), route) in ranked.into_iter().zip(routes) {
        match route {
            Route::Static => {
                metrics::CLASSIFY_TEXTS.incr();
                metrics::CLASSIFY_TIER_STATIC.incr();
                answer(i, Ok(c));
            }
            Route::Escalate => escalated.push((i, Escalation { answer: c, teach: None, words })),
            Route::Teach => escalated.push((i, Escalation { answer: c, teach: Some(vector), words })),
        }
    }
    metrics::CLASSIFY_ESCALATIONS.add(escalated.len() as u64);
    escalated
}

/// Runs the encoder on `indices` and answers them with its self-trained head when one is fitted
/// (else the base scorer). An escalated text whose encoder run fails gets its static answer; a
/// teaching sample goes to the learner with the base scorer's label over all topics.
pub(super) fn model_pass(
    encoder: &Encoder,
    texts: &[&str],
    choices: &[(Arc<Catalog>, Option<Vec<String>>)],
    indices: Vec<(usize, Option<Escalation>)>,
    answer: &mut dyn FnMut(usize, Result<Classification, String>),
) {
    let max_tokens = configs::classify_max_tokens();
    let mut tokens = Vec::with_capacity(indices.len());
    let mut index = Vec::with_capacity(indices.len());
    let mut escalations: HashMap<usize, Escalation> = HashMap::new();
    for (i, escalation) in indices {
        match encoder.tokenize(texts[i], max_tokens) {
            Ok(tok) => {
                metrics::CLASSIFY_TOKENS.add(tok.len() as u64);
                tokens.push(tok);
                index.push(i);
                if let Some(e) = escalation {
                    escalations.insert(i, e);
                }
            }
            Err(e) => answer(i, Err(e)),
        }
    }
    if tokens.is_empty() {
        return;
    }
    let table = model::static_table();
    let fingerprints = table.as_deref().map(|t| (encoder.fingerprint, Embedder::Static(encoder, t).fingerprint()));
    // Topic vectors first, so the time measured below is the texts' alone.
    let mut scorers: HashMap<u64, Result<Arc<Scorer>, String>> = HashMap::new();
    for &i in &index {
        let catalog = &choices[i].0;
        scorers.entry(catalog.id).or_insert_with(|| scorer_for(catalog, Embedder::Model(encoder)));
    }
    let heads: HashMap<u64, Arc<learner::Heads>> =
        index.iter().filter_map(|&i| fingerprints.and_then(|f| learner::heads(choices[i].0.id, f)).map(|h| (choices[i].0.id, h))).collect();
    let mut fits: Vec<Arc<Catalog>> = Vec::new();
    let started = Instant::now();
    let plans_before = encoder.plans_built.load(Ordering::Relaxed);
    let ran = tokens.len();
    let outcome = encoder.embed_each(tokens, configs::classify_batch(), configs::classify_length_plans(), |k, vector| {
        let i = index[k];
        let (catalog, topics) = &choices[i];
        let base = scorers.get(&catalog.id).cloned().unwrap_or_else(|| Err("no scorer".into()));
        let (teach, words) = escalations.remove(&i).map_or((None, None), |e| (e.teach, Some(e.words)));
        let head = heads.get(&catalog.id);
        let word_head = head.and_then(|h| h.word_head.as_deref()).filter(|_| configs::classify_word_weight() > 0.0);
        // An escalated text brings the static tier's tokens; a text the encoder alone answers
        // (`classify-tier model`) is tokenised the static tier's way only when a word head is in use.
        let extra = word_head.and_then(|w| match &words {
            Some(words) => word_scores(Some(w), words),
            None => {
                let tokens = encoder.tokenize(texts[i], configs::classify_static_max_tokens()).ok()?;
                word_scores(Some(w), &word_head::ids_of(&tokens.ids))
            }
        });
        let teach = teach.zip(words);
        let (result, fit) = answer_encoded(Encoded { catalog, topics: topics.as_deref(), vector, extra, teach }, base, head, fingerprints);
        if fit {
            fits.push(catalog.clone());
        }
        answer(i, result);
    });
    schedule_fits(fits);
    match outcome {
        Ok(()) => {
            if encoder.plans_built.load(Ordering::Relaxed) == plans_before {
                cascade::model_ran(ran, started.elapsed().as_secs_f64() * 1000.0);
            }
        }
        Err(e) => {
            crate::ffi::log_warning(&format!("agentic: the encoder failed on {ran} texts: {e}"));
            for (i, e) in escalations {
                metrics::CLASSIFY_TEXTS.incr();
                metrics::CLASSIFY_TIER_STATIC.incr();
                answer(i, Ok(e.answer));
            }
            index.iter().for_each(|&i| answer(i, Err(format!("the encoder failed: {e}"))));
        }
    }
}

/// A text's encoder vector, computed here or by a sidecar, and what goes with it.
pub(super) struct Encoded<'a> {
    pub(super) catalog: &'a Arc<Catalog>,
    pub(super) topics: Option<&'a [String]>,
    pub(super) vector: Vec<f32>,
    /// The word head's part of each topic's score.
    pub(super) extra: Option<Vec<f32>>,
    /// The static tier's vector and token ids, when the text is a teaching sample.
    pub(super) teach: Option<(Vec<f32>, Vec<u32>)>,
}

/// The encoder tier's answer. A teaching sample goes to the learner first, labelled by the base
/// scorer over every topic (never by a head, so the heads cannot teach themselves their own
/// mistakes); the answer comes from the self-trained encoder head when one is fitted, else the
/// base scorer. The flag says a fit is due.
pub(super) fn answer_encoded(
    e: Encoded,
    base: Result<Arc<Scorer>, String>,
    head: Option<&Arc<learner::Heads>>,
    fingerprints: Option<(u64, u64)>,
) -> (Result<Classification, String>, bool) {
    let mut fit = false;
    if let (Ok(base), Some((static_vector, words)), Some(fingerprints)) = (&base, e.teach, fingerprints) {
        let label = rank(base, &e.vector, None, None, Tier::Model).best;
        if let Some(topic) = e.catalog.topics.iter().position(|t| t.slug == label) {
            let sample = learner::Sample { static_vector, model_vector: e.vector.clone(), words, topic };
            fit = learner::record(e.catalog, fingerprints, sample);
        }
    }
    let scorer = match head {
        Some(h) => Ok(h.model_head.clone()),
        None => base,
    };
    metrics::CLASSIFY_TEXTS.incr();
    metrics::CLASSIFY_TIER_MODEL.incr();
    (scorer.map(|s| rank(&s, &e.vector, e.extra.as_deref(), e.topics, Tier::Model)), fit)
}

/// The word head's part of each topic's score: its log-probabilities times `classify-word-weight`.
pub(super) fn word_scores(word_head: Option<&WordHead>, words: &[u32]) -> Option<Vec<f32>> {
    let weight = configs::classify_word_weight();
    let w = word_head.filter(|_| weight > 0.0)?;
    Some(w.log_probs(words).into_iter().map(|lp| lp * weight).collect())
}

/// Ranks the topics by the scorer's scores plus `extra` (one per topic in the scorer's order).
pub(super) fn rank(scorer: &Scorer, vector: &[f32], extra: Option<&[f32]>, topics: Option<&[String]>, tier: Tier) -> Classification {
    let mut base = scorer.scores(vector);
    if let Some(extra) = extra.filter(|e| e.len() == base.len()) {
        base.iter_mut().zip(extra).for_each(|(s, e)| *s += e);
    }
    let mut scores: Vec<(String, f32)> = scorer
        .slugs
        .iter()
        .zip(base)
        .filter(|(slug, _)| topics.is_none_or(|t| t.contains(slug)))
        .map(|(slug, s)| (slug.clone(), s))
        .collect();
    scores.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let margin = match scores.as_slice() {
        [first, second, ..] => first.1 - second.1,
        _ => f32::INFINITY,
    };
    Classification { best: scores.first().map(|s| s.0.clone()).unwrap_or_default(), scores, tier, margin }
}
