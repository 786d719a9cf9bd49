//! Topics as data: a slug, a natural-language description and optional example texts. The whole
//! catalog is one value under `agentic:topics`, so a change is one atomic, replicated write; while
//! that key does not exist the built-in default topics apply.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::codec::{Reader, Writer};

pub const CATALOG_KEY: &str = "agentic:topics";
pub const MAX_TOPICS: usize = 1024;
pub const MAX_EXAMPLES_PER_TOPIC: usize = 1024;
pub const MAX_DESCRIPTION_BYTES: usize = 4096;
pub const MAX_EXAMPLE_BYTES: usize = 16 * 1024;
/// Bounds the few-shot covariance work (examples x 384 x 384) when topic vectors are rebuilt.
pub const MAX_TOTAL_EXAMPLES: usize = 20_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicDef {
    pub slug: String,
    pub description: String,
    pub examples: Vec<String>,
}

#[derive(Debug)]
pub struct Catalog {
    /// Sorted by slug, unique.
    pub topics: Vec<TopicDef>,
    /// Identity of this exact content in this process (not persisted): derived vectors are cached
    /// per id.
    pub id: u64,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Catalog {
    pub fn new(mut topics: Vec<TopicDef>) -> Catalog {
        topics.sort_by(|a, b| a.slug.cmp(&b.slug));
        topics.dedup_by(|a, b| a.slug == b.slug);
        Catalog { topics, id: NEXT_ID.fetch_add(1, Ordering::Relaxed) }
    }

    pub fn defaults() -> Arc<Catalog> {
        static DEFAULTS: OnceLock<Arc<Catalog>> = OnceLock::new();
        DEFAULTS
            .get_or_init(|| {
                Arc::new(Catalog::new(
                    super::defaults::TOPICS
                        .iter()
                        .map(|(slug, description)| TopicDef {
                            slug: slug.to_string(),
                            description: description.to_string(),
                            examples: vec![],
                        })
                        .collect(),
                ))
            })
            .clone()
    }

    pub fn get(&self, slug: &str) -> Option<&TopicDef> {
        self.topics.binary_search_by(|t| t.slug.as_str().cmp(slug)).ok().map(|i| &self.topics[i])
    }

    /// Creates or replaces a topic's description; `examples` replaces its examples when given.
    pub fn with_topic(&self, slug: &str, description: &str, examples: Option<Vec<String>>) -> Result<Catalog, String> {
        let mut topics = self.topics.clone();
        match topics.binary_search_by(|t| t.slug.as_str().cmp(slug)) {
            Ok(i) => {
                topics[i].description = description.to_string();
                if let Some(ex) = examples {
                    topics[i].examples = ex;
                }
            }
            Err(i) => {
                if topics.len() >= MAX_TOPICS {
                    return Err(format!("there are already {MAX_TOPICS} topics"));
                }
                topics.insert(
                    i,
                    TopicDef { slug: slug.to_string(), description: description.to_string(), examples: examples.unwrap_or_default() },
                );
            }
        }
        let t = &topics[topics.binary_search_by(|t| t.slug.as_str().cmp(slug)).map_err(|_| "topic vanished")?];
        if t.examples.len() > MAX_EXAMPLES_PER_TOPIC {
            return Err(format!("a topic holds at most {MAX_EXAMPLES_PER_TOPIC} examples"));
        }
        check_total(&topics)?;
        Ok(Catalog::new(topics))
    }

    pub fn with_examples(&self, slug: &str, examples: Vec<String>) -> Result<Catalog, String> {
        let mut topics = self.topics.clone();
        let i = topics
            .binary_search_by(|t| t.slug.as_str().cmp(slug))
            .map_err(|_| format!("no topic '{slug}'; define it with AGENT.TOPIC.SET first"))?;
        if topics[i].examples.len() + examples.len() > MAX_EXAMPLES_PER_TOPIC {
            return Err(format!("a topic holds at most {MAX_EXAMPLES_PER_TOPIC} examples ('{slug}' has {})", topics[i].examples.len()));
        }
        topics[i].examples.extend(examples);
        check_total(&topics)?;
        Ok(Catalog::new(topics))
    }

    /// None when none of the slugs is defined.
    pub fn without(&self, slugs: &[String]) -> Option<Catalog> {
        let topics: Vec<TopicDef> = self.topics.iter().filter(|t| !slugs.contains(&t.slug)).cloned().collect();
        (topics.len() != self.topics.len()).then(|| Catalog::new(topics))
    }

    pub fn heap_bytes(&self) -> usize {
        self.topics.iter().map(|t| 64 + t.slug.len() + t.description.len() + t.examples.iter().map(|e| 24 + e.len()).sum::<usize>()).sum()
    }
}

fn check_total(topics: &[TopicDef]) -> Result<(), String> {
    let total: usize = topics.iter().map(|t| t.examples.len()).sum();
    if total > MAX_TOTAL_EXAMPLES {
        return Err(format!("the catalog holds at most {MAX_TOTAL_EXAMPLES} examples in all"));
    }
    Ok(())
}

/// Example or description text: non-empty, bounded, UTF-8 without NUL.
pub fn check_text(b: &[u8], what: &str, max: usize) -> Result<String, String> {
    if b.is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    if b.len() > max {
        return Err(format!("{what} is longer than {max} bytes"));
    }
    if b.contains(&0) {
        return Err(format!("{what} must not contain NUL bytes"));
    }
    String::from_utf8(b.to_vec()).map_err(|_| format!("{what} must be valid UTF-8"))
}

pub fn check_slug(b: &[u8]) -> bool {
    !b.is_empty()
        && b.len() <= crate::validate::MAX_TOPIC_BYTES
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
}

// Encoding: used for RDB, AOF rewrite and replication (AGENT.LOADTOPICS), DUMP and DEBUG DIGEST.

pub const ENCODING_VERSION: u8 = 1;

pub fn encode(c: &Catalog) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(16 + c.heap_bytes()));
    w.u8(ENCODING_VERSION);
    w.u32(c.topics.len() as u32);
    for t in &c.topics {
        w.bytes(t.slug.as_bytes());
        w.bytes(t.description.as_bytes());
        w.u32(t.examples.len() as u32);
        for e in &t.examples {
            w.bytes(e.as_bytes());
        }
    }
    w.0
}

pub fn decode(buf: &[u8]) -> Result<Catalog, String> {
    let mut r = Reader(buf);
    let version = r.u8()?;
    if version != ENCODING_VERSION {
        return Err(format!("unknown topic catalog encoding version {version}"));
    }
    let n = r.count(13)?;
    if n > MAX_TOPICS {
        return Err(format!("corrupt topic catalog: {n} topics"));
    }
    let mut topics: Vec<TopicDef> = Vec::with_capacity(n);
    for _ in 0..n {
        let slug = r.bytes()?;
        if !check_slug(slug) {
            return Err("corrupt topic catalog: invalid slug".into());
        }
        let slug = String::from_utf8(slug.to_vec()).map_err(|_| "corrupt topic catalog: slug")?;
        if topics.last().is_some_and(|t| t.slug >= slug) {
            return Err("corrupt topic catalog: slugs out of order".into());
        }
        let description =
            check_text(r.bytes()?, "description", MAX_DESCRIPTION_BYTES).map_err(|e| format!("corrupt topic catalog: {e}"))?;
        let m = r.count(4)?;
        if m > MAX_EXAMPLES_PER_TOPIC {
            return Err(format!("corrupt topic catalog: {m} examples"));
        }
        let mut examples = Vec::with_capacity(m);
        for _ in 0..m {
            examples.push(check_text(r.bytes()?, "example", MAX_EXAMPLE_BYTES).map_err(|e| format!("corrupt topic catalog: {e}"))?);
        }
        topics.push(TopicDef { slug, description, examples });
    }
    if !r.0.is_empty() {
        return Err("corrupt topic catalog: trailing bytes".into());
    }
    Ok(Catalog::new(topics))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_reference_ten_with_descriptions() {
        let d = Catalog::defaults();
        let slugs: Vec<&str> = d.topics.iter().map(|t| t.slug.as_str()).collect();
        assert_eq!(
            slugs,
            ["business", "climate", "education", "entertainment", "finance", "health", "politics", "science", "sports", "technology"]
        );
        assert!(d.topics.iter().all(|t| t.description.len() > 80 && check_slug(t.slug.as_bytes())));
    }

    #[test]
    fn edits_make_new_catalogs_and_leave_the_old_one() {
        let d = Catalog::defaults();
        let c = d.with_topic("world", "International news.", Some(vec!["Troops withdraw".into()])).unwrap();
        assert_eq!(c.topics.len(), 11);
        assert_ne!(c.id, d.id);
        let c = c.with_examples("world", vec!["Summit ends".into()]).unwrap();
        assert_eq!(c.get("world").unwrap().examples, ["Troops withdraw", "Summit ends"]);
        let c = c.with_topic("world", "World news.", None).unwrap();
        assert_eq!(c.get("world").unwrap().examples.len(), 2, "SET without EXAMPLES keeps them");
        assert!(c.with_examples("nope", vec!["x".into()]).is_err());
        let c = c.without(&["world".into(), "sports".into()]).unwrap();
        assert!(c.get("world").is_none() && c.get("sports").is_none());
        assert!(c.without(&["world".into()]).is_none());
        assert_eq!(d.topics.len(), 10);
    }

    #[test]
    fn encoding_round_trips_and_refuses_corruption() {
        let c = Catalog::defaults().with_topic("world", "World news.", Some(vec!["a".into(), "b c".into()])).unwrap();
        let blob = encode(&c);
        let back = decode(&blob).unwrap();
        assert_eq!(back.topics, c.topics);
        assert_eq!(encode(&back), blob);
        for cut in [0, 1, 5, blob.len() / 2, blob.len() - 1] {
            assert!(decode(&blob[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = blob.clone();
        extra.push(0);
        assert!(decode(&extra).is_err());
        let mut bad = blob.clone();
        bad[0] = 9;
        assert!(decode(&bad).is_err());
        // A huge example count with no data behind it is refused before allocating.
        let mut w = Writer(vec![]);
        w.u8(ENCODING_VERSION);
        w.u32(1);
        w.bytes(b"x");
        w.bytes(b"desc");
        w.u32(u32::MAX);
        assert!(decode(&w.0).is_err());
    }
}
