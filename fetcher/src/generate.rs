//! Synthetic news for offline demos: per topic a few stories (title, lead and body written to go
//! together) filled from word lists, one story per article, deterministic for a
//! seed (article `n` of seed `s` is always the same document, with id `syn-<s>-<n>`).

mod stories;

use crate::article::Article;
use stories::{list, TOPICS};

/// SplitMix64: tiny, fast, and stable across platforms and crate versions.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Replaces every `{key}` with a word from `list(key)`; a key already bound in this article keeps
/// its word, so a story names the same company, person or city throughout.
fn fill(template: &str, rng: &mut Rng, bound: &mut Vec<(String, &'static str)>) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                let key = &after[..end];
                let word = match bound.iter().find(|(k, _)| k == key) {
                    Some((_, w)) => *w,
                    None => {
                        let w = rng.pick(list(key));
                        bound.push((key.to_string(), w));
                        w
                    }
                };
                out.push_str(word);
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn capitalize(s: String) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) if f.is_lowercase() => f.to_uppercase().chain(c).collect(),
        _ => s,
    }
}

/// Article `n` of generator `seed`, and its topic: one story's title, its lead, then two or more
/// of its body sentences in order.
pub fn article(seed: u64, n: u64) -> (Article, &'static str) {
    let mut rng = Rng::new(seed ^ n.wrapping_add(1).wrapping_mul(0xd6e8_feb8_6659_fd93));
    rng.next_u64();
    let topic = &TOPICS[rng.below(TOPICS.len())];
    let story = &topic.stories[rng.below(topic.stories.len())];
    let mut bound = Vec::new();
    let title = capitalize(fill(story.title, &mut rng, &mut bound));
    let keep = (2 + rng.below(story.body.len() - 1)).min(story.body.len());
    let mut sentences = vec![capitalize(fill(story.lead, &mut rng, &mut bound))];
    sentences.extend(story.body[..keep].iter().map(|t| capitalize(fill(t, &mut rng, &mut bound))));
    let id = format!("syn-{seed}-{n}");
    (Article::build(&[Some(&id)], &title, &sentences.join(" "), None, "synthetic", None), topic.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_varied() {
        let a = article(7, 3).0;
        assert_eq!(a, article(7, 3).0);
        assert_eq!(a.id, "syn-7-3");
        assert_ne!(a.title, article(8, 3).0.title);
        let mut topics = std::collections::HashSet::new();
        let mut titles = std::collections::HashSet::new();
        for n in 0..500 {
            let (a, t) = article(1, n);
            assert!(!a.title.is_empty() && a.text.len() > 120, "{a:?}");
            assert!(!a.title.contains('{') && !a.text.contains('{'), "{a:?}");
            assert!(!a.text.contains("something"), "a placeholder without a list: {a:?}");
            topics.insert(t);
            titles.insert(a.title);
        }
        assert_eq!(topics.len(), TOPICS.len());
        assert!(titles.len() > 400, "{}", titles.len());
    }

    /// One story per article: never two companies, people, teams, films... in one article (the
    /// old generator mixed sentences of different stories: a probe's images next to a fossil).
    #[test]
    fn each_article_tells_one_story() {
        let kinds = ["company", "techco", "team", "team2", "athlete", "film", "artist", "agency", "person", "institution", "centralbank"];
        for n in 0..2000 {
            let (a, _) = article(3, n);
            let all = format!("{} {}", a.title, a.text);
            for kind in kinds {
                let named: Vec<&str> = list(kind).iter().copied().filter(|v| all.contains(v)).collect();
                assert!(named.len() <= 1, "{kind}: {named:?} in one article: {all}");
            }
        }
    }

    /// What a story names in its title it names again in its lead: the lead is the same news.
    #[test]
    fn the_lead_repeats_what_the_title_names() {
        for topic in TOPICS {
            for story in topic.stories {
                let keys = |t: &str| t.split('{').skip(1).filter_map(|p| p.split_once('}').map(|(k, _)| k.to_string())).collect::<Vec<_>>();
                let lead = keys(story.lead);
                for k in keys(story.title) {
                    assert!(lead.contains(&k), "{}: the lead does not repeat {{{k}}} of {:?}", topic.name, story.title);
                }
                assert!(story.body.len() >= 3, "{}: {:?} needs at least three body sentences", topic.name, story.title);
            }
        }
    }
}
