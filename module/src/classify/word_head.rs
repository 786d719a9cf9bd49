//! The word head: a self-trained head that reads which words and word pairs a text uses, beside
//! the two heads that read its vectors (learner.rs). A vector averages a text's meaning; the
//! words that decide a topic in this stream ("quarterly", "striker", "Senate") get lost in it.
//! Fitted to the same teaching samples and labels as the other heads, so it also learns the
//! vocabulary of the news the node actually classifies, not only of the descriptions.
//!
//! Complement naive Bayes over tf-idf weighted tokens and adjacent token pairs of the static
//! tier's tokenisation: a closed-form fit (counts, no iterations) on a pool worker. Its
//! log-probabilities, times `classify-word-weight` / 100, are added to the scores of the static
//! or the encoder head. Recipe, smoothing and weight were chosen on AG News' development split
//! (bench/RESULTS.md), never on its test set.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Additive smoothing of the complement counts.
pub const ALPHA: f64 = 0.1;
/// A word or pair must occur in at least this many samples to get a weight.
pub const MIN_SAMPLES: u32 = 3;
/// At most this many words and pairs (the most frequent), about 2 MB with ten topics.
pub const MAX_FEATURES: usize = 1 << 16;
/// Pair keys have this bit set; a word's key is its token id.
const PAIR: u64 = 1 << 63;

#[derive(Debug, PartialEq)]
pub struct WordHead {
    topics: usize,
    /// Ascending.
    keys: Vec<u64>,
    idf: Vec<f32>,
    /// One weight per topic for each key, key-major.
    weights: Vec<f32>,
    index: KeyIndex,
}

/// Keys are token ids and pairs of them: a multiply-xorshift spreads them well enough, at a
/// fraction of the default hasher's cost (the lookups run for every text the static tier scores).
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        let x = self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^ (x >> 29)
    }

    fn write(&mut self, bytes: &[u8]) {
        bytes.iter().for_each(|&b| self.0 = (self.0 << 8 | b as u64).wrapping_mul(0x100_0000_01B3));
    }

    fn write_u64(&mut self, x: u64) {
        self.0 ^= x;
    }
}

type KeyIndex = HashMap<u64, u32, BuildHasherDefault<KeyHasher>>;

/// A text's words and pairs with their counts, ascending by key.
fn terms(ids: &[u32]) -> Vec<(u64, u32)> {
    let mut keys: Vec<u64> = ids.iter().map(|&id| id as u64).collect();
    keys.extend(ids.windows(2).map(|w| PAIR | (w[0] as u64) << 31 | w[1] as u64));
    keys.sort_unstable();
    let mut out: Vec<(u64, u32)> = Vec::with_capacity(keys.len());
    for k in keys {
        match out.last_mut() {
            Some((last, n)) if *last == k => *n += 1,
            _ => out.push((k, 1)),
        }
    }
    out
}

/// Sublinear tf times idf, L2-normalised over the known keys: (index, value) pairs.
fn weigh(terms: &[(u64, u32)], index: &KeyIndex, idf: &[f32]) -> Vec<(usize, f64)> {
    let mut x: Vec<(usize, f64)> = terms
        .iter()
        .filter_map(|(k, tf)| index.get(k).map(|&i| (i as usize, (1.0 + (*tf as f64).ln()) * idf[i as usize] as f64)))
        .collect();
    let norm = x.iter().map(|(_, v)| v * v).sum::<f64>().sqrt();
    if norm > 0.0 {
        x.iter_mut().for_each(|(_, v)| *v /= norm);
    }
    x
}

fn index_of(keys: &[u64]) -> KeyIndex {
    keys.iter().enumerate().map(|(i, &k)| (k, i as u32)).collect()
}

impl WordHead {
    /// Fits on (topic index, token ids) samples; `topics` is the catalog's topic count.
    pub fn fit(samples: &[(usize, &[u32])], topics: usize) -> Result<WordHead, String> {
        if topics == 0 || samples.iter().any(|(t, _)| *t >= topics) {
            return Err("word head: a sample's topic is outside the catalog".into());
        }
        let per_sample: Vec<Vec<(u64, u32)>> = samples.iter().map(|(_, ids)| terms(ids)).collect();
        let mut df: KeyIndex = KeyIndex::default();
        for t in &per_sample {
            t.iter().for_each(|(k, _)| *df.entry(*k).or_default() += 1);
        }
        let mut kept: Vec<(u64, u32)> = df.into_iter().filter(|(_, n)| *n >= MIN_SAMPLES).collect();
        // Most frequent first, ties by key, so the same samples always keep the same keys.
        kept.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        kept.truncate(MAX_FEATURES);
        kept.sort_unstable_by_key(|(k, _)| *k);
        let n = samples.len() as f64;
        let keys: Vec<u64> = kept.iter().map(|(k, _)| *k).collect();
        let idf: Vec<f32> = kept.iter().map(|(_, d)| (((1.0 + n) / (1.0 + *d as f64)).ln() + 1.0) as f32).collect();
        let index = index_of(&keys);
        let mut counts = vec![0f64; keys.len() * topics];
        for ((topic, _), t) in samples.iter().zip(&per_sample) {
            for (i, v) in weigh(t, &index, &idf) {
                counts[i * topics + topic] += v;
            }
        }
        // Complement counts: how much every other topic uses the key.
        let mut weights = vec![0f32; counts.len()];
        for c in 0..topics {
            let complement = |i: usize| (0..topics).filter(|&o| o != c).map(|o| counts[i * topics + o]).sum::<f64>() + ALPHA;
            let total: f64 = (0..keys.len()).map(complement).sum();
            for i in 0..keys.len() {
                weights[i * topics + c] = -(complement(i) / total).ln() as f32;
            }
        }
        Ok(WordHead { topics, keys, idf, weights, index })
    }

    /// Log-probability of each topic for a text's token ids (all equal when it has no known word).
    pub fn log_probs(&self, ids: &[u32]) -> Vec<f32> {
        let mut jll = vec![0f64; self.topics];
        for (i, v) in weigh(&terms(ids), &self.index, &self.idf) {
            let row = &self.weights[i * self.topics..(i + 1) * self.topics];
            jll.iter_mut().zip(row).for_each(|(j, &w)| *j += v * w as f64);
        }
        let top = jll.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let log_sum = top + jll.iter().map(|j| (j - top).exp()).sum::<f64>().ln();
        jll.iter().map(|j| (j - log_sum) as f32).collect()
    }

    pub fn topics(&self) -> usize {
        self.topics
    }

    pub fn features(&self) -> usize {
        self.keys.len()
    }

    pub fn parts(&self) -> (&[u64], &[f32], &[f32]) {
        (&self.keys, &self.idf, &self.weights)
    }

    /// Rebuilds a head from `parts` (agentic:heads), refusing anything a fit cannot produce.
    pub fn from_parts(topics: usize, keys: Vec<u64>, idf: Vec<f32>, weights: Vec<f32>) -> Result<WordHead, String> {
        if topics == 0
            || topics > crate::classify::catalog::MAX_TOPICS
            || keys.len() > MAX_FEATURES
            || idf.len() != keys.len()
            || Some(weights.len()) != keys.len().checked_mul(topics)
        {
            return Err("word head: sizes do not fit".into());
        }
        if keys.windows(2).any(|w| w[0] >= w[1]) {
            return Err("word head: keys are not ascending".into());
        }
        if idf.iter().chain(&weights).any(|x| !x.is_finite()) {
            return Err("word head: a weight is not a finite number".into());
        }
        let index = index_of(&keys);
        Ok(WordHead { topics, keys, idf, weights, index })
    }
}

/// The token ids a word head reads: the static tier's (`Tokens::ids`, never negative).
pub fn ids_of(tokens: &[i64]) -> Vec<u32> {
    tokens.iter().map(|&t| t.clamp(0, u32::MAX as i64) as u32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<(usize, Vec<u32>)> {
        // Topic 0 uses words 10-14, topic 1 words 20-24; both use 1-3 (stop words).
        (0..40u32)
            .map(|i| {
                let topic = (i % 2) as usize;
                let base = if topic == 0 { 10 } else { 20 };
                (topic, vec![1, base + i % 5, 2, base + (i + 1) % 5, 3])
            })
            .collect()
    }

    fn fitted() -> WordHead {
        let s = samples();
        let refs: Vec<(usize, &[u32])> = s.iter().map(|(t, ids)| (*t, ids.as_slice())).collect();
        WordHead::fit(&refs, 2).unwrap()
    }

    #[test]
    fn a_texts_words_pick_its_topic() {
        let h = fitted();
        let lp = h.log_probs(&[1, 12, 2]);
        assert!(lp[0] > lp[1], "{lp:?}");
        let lp = h.log_probs(&[3, 23]);
        assert!(lp[1] > lp[0], "{lp:?}");
        let total: f32 = lp.iter().map(|x| x.exp()).sum();
        assert!((total - 1.0).abs() < 1e-5, "probabilities sum to 1: {total}");
        let unknown = h.log_probs(&[999, 998]);
        assert!((unknown[0] - unknown[1]).abs() < 1e-6, "no known word: no preference {unknown:?}");
    }

    /// Found by the decoder fuzzer: a blob with no words and a huge topic count passed the size
    /// check (0 weights = 0 words x any topics) and scoring then asked for gigabytes.
    #[test]
    fn a_head_for_more_topics_than_a_catalog_holds_is_refused() {
        let max = crate::classify::catalog::MAX_TOPICS;
        assert!(WordHead::from_parts(max + 1, vec![], vec![], vec![]).is_err());
        assert!(WordHead::from_parts(3_204_448_256, vec![], vec![], vec![]).is_err());
        assert!(WordHead::from_parts(max, vec![], vec![], vec![]).is_ok());
    }

    #[test]
    fn rare_words_are_dropped_and_pairs_are_kept() {
        let h = fitted();
        let (keys, _, _) = h.parts();
        assert!(keys.contains(&1) && keys.contains(&12));
        assert!(keys.contains(&(PAIR | 1 << 31 | 10)), "the pair (1, 10) occurs 4 times");
        let s = [(0usize, vec![5u32, 6]), (1, vec![7, 8])];
        let refs: Vec<(usize, &[u32])> = s.iter().map(|(t, ids)| (*t, ids.as_slice())).collect();
        assert_eq!(WordHead::fit(&refs, 2).unwrap().features(), 0, "each word in one sample only");
    }

    #[test]
    fn the_fit_is_deterministic_and_round_trips_through_parts() {
        let (a, b) = (fitted(), fitted());
        assert_eq!(a.parts(), b.parts());
        let (keys, idf, weights) = a.parts();
        let again = WordHead::from_parts(2, keys.to_vec(), idf.to_vec(), weights.to_vec()).unwrap();
        assert_eq!(again, a);
    }

    #[test]
    fn damaged_parts_and_bad_samples_are_refused() {
        let a = fitted();
        let (keys, idf, weights) = a.parts();
        assert!(WordHead::from_parts(3, keys.to_vec(), idf.to_vec(), weights.to_vec()).is_err());
        let mut k = keys.to_vec();
        k.swap(0, 1);
        assert!(WordHead::from_parts(2, k, idf.to_vec(), weights.to_vec()).is_err());
        let mut w = weights.to_vec();
        w[0] = f32::NAN;
        assert!(WordHead::from_parts(2, keys.to_vec(), idf.to_vec(), w).is_err());
        assert!(WordHead::fit(&[(2, &[1u32][..])], 2).is_err());
        assert_eq!(ids_of(&[5, -1]), [5, 0]);
    }
}
