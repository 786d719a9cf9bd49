//! Turns a topic catalog into one vector per topic and scores texts against them. Pure math on
//! embeddings; the pool supplies the embeddings (cached per text, see `vectors`).

use super::catalog::Catalog;

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
    let s = s.trim().trim_end_matches(['.', ';']).trim_end();
    if s.chars().any(|c| c.is_alphanumeric()) {
        out.push(s);
    }
}

/// Every text whose embedding a catalog needs.
pub fn texts_of(catalog: &Catalog) -> Vec<&str> {
    catalog.topics.iter().flat_map(|t| facets(&t.description).into_iter().chain(t.examples.iter().map(String::as_str))).collect()
}

/// Few-shot: the description counts as this many examples in a topic's mean.
pub const DESCRIPTION_AS_EXAMPLES: f64 = 8.0;
/// Few-shot: weight of the isotropic part when shrinking the pooled covariance.
pub const SHRINKAGE: f64 = 0.9;
/// The same for a self-trained head (thousands of labelled vectors); chosen on the development
/// split (0.1-0.3 within 0.1 point of each other, 0.9 a point lower).
pub const LEARNED_SHRINKAGE: f64 = 0.2;

/// Scores texts against topics with one linear function per topic.
///
/// - Zero-shot (no topic has examples): the topic vector is the normalised mean of its
///   description's sentence embeddings and the score is the cosine similarity.
/// - Few-shot (any topic has examples): linear discriminant analysis. A topic's mean counts its
///   description as `DESCRIPTION_AS_EXAMPLES` examples; the examples' pooled within-topic
///   covariance, shrunk towards a multiple of the identity, whitens the space, so the directions
///   in which topics differ count more than those in which all news varies. Score:
///   x.w_k + b_k with w_k = inv(cov).mu_k and b_k = -mu_k.w_k / 2 (higher is better; not a cosine).
///
/// Recipe and constants were chosen on a development split of AG News' training rows, never on
/// its test set (bench/RESULTS.md).
pub struct Scorer {
    pub catalog_id: u64,
    pub fingerprint: u64,
    pub slugs: Vec<String>,
    dim: usize,
    /// Row-major, one weight vector per topic.
    weights: Vec<f32>,
    bias: Vec<f32>,
}

impl Scorer {
    /// `embedding(text)` must return the unit embedding of each text in `texts_of(catalog)`.
    pub fn build(catalog: &Catalog, fingerprint: u64, dim: usize, embedding: impl Fn(&str) -> Option<Vec<f32>>) -> Result<Scorer, String> {
        Self::build_with(catalog, fingerprint, dim, embedding, &[])
    }

    /// Like `build`, with `learned` (topic index, unit vector) pairs counted as examples: the
    /// self-trained head (learner.rs), fitted to the encoder's labels of recent texts. With them
    /// the covariance is shrunk by `LEARNED_SHRINKAGE` only (thousands of vectors estimate it well).
    pub fn build_with(
        catalog: &Catalog,
        fingerprint: u64,
        dim: usize,
        embedding: impl Fn(&str) -> Option<Vec<f32>>,
        learned: &[(usize, &[f32])],
    ) -> Result<Scorer, String> {
        let slugs = catalog.topics.iter().map(|t| t.slug.clone()).collect();
        let mut descriptions: Vec<Vec<f64>> = Vec::with_capacity(catalog.topics.len());
        for t in &catalog.topics {
            let mut d = vec![0f64; dim];
            for f in facets(&t.description) {
                add(&mut d, &embedding(f).ok_or("missing description embedding")?, 1.0);
            }
            normalize64(&mut d);
            descriptions.push(d);
        }
        let few_shot = !learned.is_empty() || catalog.topics.iter().any(|t| !t.examples.is_empty());
        if !few_shot {
            let weights = descriptions.iter().flatten().map(|&x| x as f32).collect();
            return Ok(Scorer { catalog_id: catalog.id, fingerprint, slugs, dim, weights, bias: vec![0.0; catalog.topics.len()] });
        }

        // Means and pooled within-topic scatter of the examples.
        let mut means: Vec<Vec<f64>> = Vec::with_capacity(catalog.topics.len());
        let mut scatter = vec![0f64; dim * dim];
        let (mut n_total, mut topics_with_examples) = (0usize, 0usize);
        for (k, (t, desc)) in catalog.topics.iter().zip(&descriptions).enumerate() {
            let mut examples: Vec<Vec<f32>> =
                t.examples.iter().map(|e| embedding(e).ok_or("missing example embedding")).collect::<Result<_, _>>()?;
            examples.extend(learned.iter().filter(|(topic, v)| *topic == k && v.len() == dim).map(|(_, v)| v.to_vec()));
            let n = examples.len() as f64;
            let mut m = vec![0f64; dim];
            for e in &examples {
                add(&mut m, e, 1.0);
            }
            if !examples.is_empty() {
                m.iter_mut().for_each(|x| *x /= n);
                n_total += examples.len();
                topics_with_examples += 1;
                for e in &examples {
                    let c: Vec<f64> = e.iter().zip(&m).map(|(&x, &mu)| x as f64 - mu).collect();
                    for i in 0..dim {
                        let ci = c[i];
                        let row = &mut scatter[i * dim..(i + 1) * dim];
                        row.iter_mut().zip(&c).for_each(|(s, &cj)| *s += ci * cj);
                    }
                }
            }
            let w = DESCRIPTION_AS_EXAMPLES;
            means.push(m.iter().zip(desc).map(|(&mi, &di)| (n * mi + w * di) / (n + w)).collect());
        }
        let dof = n_total.saturating_sub(topics_with_examples);
        let trace: f64 = if dof > 0 { (0..dim).map(|i| scatter[i * dim + i]).sum::<f64>() / dof as f64 } else { 0.0 };
        let shrinkage = if learned.is_empty() { SHRINKAGE } else { LEARNED_SHRINKAGE };
        let mut cov = vec![0f64; dim * dim];
        if trace > 0.0 {
            let iso = shrinkage * trace / dim as f64;
            for i in 0..dim {
                for j in 0..dim {
                    cov[i * dim + j] = (1.0 - shrinkage) * scatter[i * dim + j] / dof as f64;
                }
                cov[i * dim + i] += iso;
            }
        } else {
            (0..dim).for_each(|i| cov[i * dim + i] = 1.0);
        }
        let chol = cholesky(&cov, dim).ok_or("the examples' covariance is not positive definite")?;
        let mut weights = Vec::with_capacity(catalog.topics.len() * dim);
        let mut bias = Vec::with_capacity(catalog.topics.len());
        for mu in &means {
            let w = cholesky_solve(&chol, dim, mu);
            bias.push((-0.5 * w.iter().zip(mu).map(|(a, b)| a * b).sum::<f64>()) as f32);
            weights.extend(w.iter().map(|&x| x as f32));
        }
        Ok(Scorer { catalog_id: catalog.id, fingerprint, slugs, dim, weights, bias })
    }

    /// A scorer from its parts (a head read back from `agentic:heads`, see learner.rs).
    pub fn from_parts(catalog: &Catalog, fingerprint: u64, dim: usize, weights: Vec<f32>, bias: Vec<f32>) -> Result<Scorer, String> {
        let n = catalog.topics.len();
        if dim == 0 || weights.len() != n * dim || bias.len() != n {
            return Err(format!("{} weights and {} biases do not fit {n} topics of {dim} values", weights.len(), bias.len()));
        }
        if weights.iter().chain(&bias).any(|x| !x.is_finite()) {
            return Err("a weight is not finite".into());
        }
        let slugs = catalog.topics.iter().map(|t| t.slug.clone()).collect();
        Ok(Scorer { catalog_id: catalog.id, fingerprint, slugs, dim, weights, bias })
    }

    /// (dim, row-major weights, biases), as `from_parts` takes them.
    pub fn parts(&self) -> (usize, &[f32], &[f32]) {
        (self.dim, &self.weights, &self.bias)
    }

    /// Every topic's score for a unit text vector, in catalog order.
    pub fn scores(&self, text: &[f32]) -> Vec<f32> {
        self.weights.chunks_exact(self.dim).zip(&self.bias).map(|(w, b)| w.iter().zip(text).map(|(a, x)| a * x).sum::<f32>() + b).collect()
    }
}

fn normalize64(v: &mut [f64]) {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Lower-triangular L with L.L^T = a (row-major, n x n); None unless a is positive definite.
fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            if i == j {
                let d = a[i * n + i] - s;
                if d <= 0.0 || !d.is_finite() {
                    return None;
                }
                l[i * n + i] = d.sqrt();
            } else {
                l[i * n + j] = (a[i * n + j] - s) / l[j * n + j];
            }
        }
    }
    Some(l)
}

fn cholesky_solve(l: &[f64], n: usize, b: &[f64]) -> Vec<f64> {
    let mut y = vec![0f64; n];
    for i in 0..n {
        let s: f64 = (0..i).map(|k| l[i * n + k] * y[k]).sum();
        y[i] = (b[i] - s) / l[i * n + i];
    }
    let mut x = vec![0f64; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| l[k * n + i] * x[k]).sum();
        x[i] = (y[i] - s) / l[i * n + i];
    }
    x
}

fn add(acc: &mut [f64], v: &[f32], w: f64) {
    acc.iter_mut().zip(v).for_each(|(a, &x)| *a += w * x as f64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::catalog::TopicDef;

    #[test]
    fn facets_are_sentences() {
        assert_eq!(facets("Sports news. Teams, players; scores!\nLeagues"), ["Sports news", "Teams, players", "scores!", "Leagues"]);
        assert_eq!(facets("v1.2 release notes."), ["v1.2 release notes"]);
        assert_eq!(facets("..."), ["..."]);
    }

    /// Deterministic fake embeddings for the math: a unit vector along the axis of the first
    /// letter, tilted along the second letter's axis.
    fn embed(text: &str) -> Option<Vec<f32>> {
        let b = text.as_bytes();
        let mut v = vec![0f32; 4];
        v[(b[0] - b'a') as usize % 4] = 1.0;
        if let Some(&c) = b.get(1).filter(|c| c.is_ascii_lowercase()) {
            v[(c - b'a') as usize % 4] += 0.3;
        }
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        Some(v.into_iter().map(|x| x / n).collect())
    }

    fn topic(slug: &str, description: &str, examples: &[&str]) -> TopicDef {
        TopicDef { slug: slug.into(), description: description.into(), examples: examples.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn zero_shot_scores_are_cosines_to_the_description() {
        let c = Catalog::new(vec![topic("x", "a thing. a other", &[]), topic("y", "b thing", &[])]);
        let s = Scorer::build(&c, 1, 4, embed).unwrap();
        let on_a = s.scores(&[1.0, 0.0, 0.0, 0.0]);
        assert!((on_a[0] - 1.0).abs() < 1e-6 && on_a[1].abs() < 1e-6, "{on_a:?}");
    }

    #[test]
    fn examples_pull_the_decision_towards_them() {
        // y's description points along b, but all its examples lie along c.
        let c = Catalog::new(vec![topic("x", "a thing", &["a", "a"]), topic("y", "b thing", &["c"; 40])]);
        let s = Scorer::build(&c, 1, 4, embed).unwrap();
        let on_c = s.scores(&[0.0, 0.0, 1.0, 0.0]);
        assert!(on_c[1] > on_c[0], "{on_c:?}");
        let on_a = s.scores(&[1.0, 0.0, 0.0, 0.0]);
        assert!(on_a[0] > on_a[1], "{on_a:?}");
    }

    #[test]
    fn cholesky_solves_a_known_system() {
        let a = [4.0, 2.0, 2.0, 3.0];
        let l = cholesky(&a, 2).unwrap();
        let x = cholesky_solve(&l, 2, &[2.0, 1.0]);
        assert!((4.0 * x[0] + 2.0 * x[1] - 2.0).abs() < 1e-12 && (2.0 * x[0] + 3.0 * x[1] - 1.0).abs() < 1e-12);
        assert!(cholesky(&[1.0, 2.0, 2.0, 1.0], 2).is_none(), "not positive definite");
    }
}
