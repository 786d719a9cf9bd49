//! A user's topics, sorted and packed into one small buffer (`len, bytes, len, bytes, ...`): the
//! membership check of every delivery then touches one cache line instead of one per topic.

use crate::validate::MAX_TOPIC_BYTES;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicSet {
    packed: Vec<u8>,
    count: usize,
}

impl TopicSet {
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = &self.packed[..];
        std::iter::from_fn(move || {
            let (&len, tail) = rest.split_first()?;
            let (topic, next) = tail.split_at(usize::from(len).min(tail.len()));
            rest = next;
            Some(topic)
        })
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn contains(&self, topic: &[u8]) -> bool {
        self.iter().any(|t| t == topic)
    }

    /// Byte offset where `topic` is or would be inserted in sorted order, and whether it is there.
    fn find(&self, topic: &[u8]) -> (usize, bool) {
        let mut at = 0;
        for t in self.iter() {
            match t.cmp(topic) {
                std::cmp::Ordering::Less => at += 1 + t.len(),
                std::cmp::Ordering::Equal => return (at, true),
                std::cmp::Ordering::Greater => break,
            }
        }
        (at, false)
    }

    /// Adds `topic` (at most 255 bytes; callers validate slugs). Returns true if it was new.
    pub fn insert(&mut self, topic: &[u8]) -> bool {
        debug_assert!(topic.len() <= MAX_TOPIC_BYTES);
        let Ok(len) = u8::try_from(topic.len()) else { return false };
        let (at, present) = self.find(topic);
        if present {
            return false;
        }
        self.packed.splice(at..at, std::iter::once(len).chain(topic.iter().copied()));
        self.count += 1;
        true
    }

    pub fn remove(&mut self, topic: &[u8]) -> bool {
        let (at, present) = self.find(topic);
        if !present {
            return false;
        }
        self.packed.drain(at..at + 1 + topic.len());
        self.count -= 1;
        true
    }

    pub fn as_ptr(&self) -> *const u8 {
        self.packed.as_ptr()
    }

    pub fn heap_bytes(&self) -> usize {
        self.packed.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_unique_and_removable() {
        let mut s = TopicSet::default();
        assert!(s.insert(b"sports"));
        assert!(s.insert(b"health"));
        assert!(s.insert(b"zoo"));
        assert!(!s.insert(b"health"));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![&b"health"[..], b"sports", b"zoo"]);
        assert!(s.contains(b"sports") && !s.contains(b"sport"));
        assert!(s.remove(b"sports") && !s.remove(b"sports"));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![&b"health"[..], b"zoo"]);
        assert_eq!(s.len(), 2);
    }
}
