//! Turns a topic catalog into one vector per topic and scores texts against them. Pure math on
//! embeddings; the pool supplies the embeddings (cached per text, see `vectors`).

use super::catalog::Catalog;
use super::encoder::normalize;

/// A description's facets: its sentences, each embedded on its own. A sentence embedding is
/// sharper than one vector for a whole paragraph that names many things.
pub fn facets(description: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let b = description.as_bytes();
    for i in 0..b.len() {
        let end_of_sentence = matches!(b[i], b'.' | b'!' | b'?' | b';' | b'\n') && (i + 1 == b.len() || b[i + 1].is_ascii_whitespace());
        if end_of_sentence || b[i] == b'\n' {
            push_facet(&mut out, &description[start..=i]);
            start = i + 1;
        }
    }
    push_facet(&mut out, &description[start..]);
    if out.is_empty() {
        out.push(description);
    }
    out
}

fn push_facet<'a>(out: &mut Vec<&'a str>, s: &'a str) {
    let s = s.trim();
    if s.chars().any(|c| c.is_alphanumeric()) {
        out.push(s);
    }
}

/// Every text whose embedding a catalog needs.
pub fn texts_of(catalog: &Catalog) -> Vec<&str> {
    catalog.topics.iter().flat_map(|t| facets(&t.description).into_iter().chain(t.examples.iter().map(String::as_str))).collect()
}

/// How much the description counts against the examples' centroid once a topic has examples,
/// expressed as a number of examples: with few examples the description dominates, with many
/// the examples do.
pub const DESCRIPTION_WEIGHT_IN_EXAMPLES: f32 = 4.0;

pub struct Scorer {
    pub catalog_id: u64,
    pub fingerprint: u64,
    pub slugs: Vec<String>,
    dim: usize,
    /// Row-major, one unit vector per topic.
    vectors: Vec<f32>,
}

impl Scorer {
    /// `embedding(text)` must return the unit embedding of each text in `texts_of(catalog)`.
    pub fn build(catalog: &Catalog, fingerprint: u64, dim: usize, embedding: impl Fn(&str) -> Option<Vec<f32>>) -> Result<Scorer, String> {
        let mut vectors = Vec::with_capacity(catalog.topics.len() * dim);
        for t in &catalog.topics {
            let mut desc = vec![0f32; dim];
            for f in facets(&t.description) {
                add(&mut desc, &embedding(f).ok_or("missing description embedding")?, 1.0);
            }
            normalize(&mut desc);
            let mut v = desc.clone();
            if !t.examples.is_empty() {
                let mut centroid = vec![0f32; dim];
                for e in &t.examples {
                    add(&mut centroid, &embedding(e).ok_or("missing example embedding")?, 1.0);
                }
                let n = t.examples.len() as f32;
                v = vec![0f32; dim];
                add(&mut v, &desc, DESCRIPTION_WEIGHT_IN_EXAMPLES / (DESCRIPTION_WEIGHT_IN_EXAMPLES + n));
                add(&mut v, &centroid, 1.0 / (DESCRIPTION_WEIGHT_IN_EXAMPLES + n));
                normalize(&mut v);
            }
            vectors.extend_from_slice(&v);
        }
        Ok(Scorer { catalog_id: catalog.id, fingerprint, slugs: catalog.topics.iter().map(|t| t.slug.clone()).collect(), dim, vectors })
    }

    /// Cosine similarity of a unit text vector to every topic, in catalog order.
    pub fn scores(&self, text: &[f32]) -> Vec<f32> {
        self.vectors.chunks_exact(self.dim).map(|t| t.iter().zip(text).map(|(a, b)| a * b).sum()).collect()
    }
}

fn add(acc: &mut [f32], v: &[f32], w: f32) {
    acc.iter_mut().zip(v).for_each(|(a, x)| *a += w * x);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::catalog::TopicDef;

    #[test]
    fn facets_are_sentences() {
        assert_eq!(facets("Sports news. Teams, players; scores!\nLeagues"), ["Sports news.", "Teams, players;", "scores!", "Leagues"]);
        assert_eq!(facets("v1.2 release notes"), ["v1.2 release notes"]);
        assert_eq!(facets("..."), ["..."]);
    }

    fn one_hot(text: &str) -> Option<Vec<f32>> {
        // Deterministic fake embedding for the math: axis by first letter.
        let mut v = vec![0f32; 4];
        v[(text.as_bytes()[0] - b'a') as usize % 4] = 1.0;
        Some(v)
    }

    #[test]
    fn examples_pull_the_topic_vector_towards_them() {
        let c = Catalog::new(vec![
            TopicDef { slug: "x".into(), description: "a thing.".into(), examples: vec![] },
            TopicDef { slug: "y".into(), description: "b thing.".into(), examples: vec!["c1".into(); 40] },
        ]);
        let s = Scorer::build(&c, 1, 4, one_hot).unwrap();
        assert_eq!(s.slugs, ["x", "y"]);
        let on_a = s.scores(&[1.0, 0.0, 0.0, 0.0]);
        assert!((on_a[0] - 1.0).abs() < 1e-6 && on_a[1].abs() < 1e-6);
        let on_c = s.scores(&[0.0, 0.0, 1.0, 0.0]);
        assert!(on_c[1] > 0.9, "40 examples outweigh the description: {on_c:?}");
    }
}
