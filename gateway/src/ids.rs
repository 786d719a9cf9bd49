//! What the gateway accepts from the outside world: user ids, topic slugs, feed entry ids.

use std::cmp::Ordering;
use std::fmt;

/// A user id as it appears in URLs: 1-64 bytes of `A-Z a-z 0-9 _ - .`. Its Valkey key is
/// `user:{<id>}` (the hash tag keeps a user's keys on one cluster slot).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UserId(String);

impl UserId {
    pub fn parse(s: &str) -> Result<UserId, String> {
        let ok = !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if ok {
            Ok(UserId(s.to_string()))
        } else {
            Err("invalid user id: use 1-64 characters of A-Z a-z 0-9 _ - .".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn key(&self) -> String {
        format!("user:{{{}}}", self.0)
    }
}

/// A topic slug, by the module's rule: 1-64 bytes of `a-z 0-9 - _`, starting with a letter or digit.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slug(String);

impl Slug {
    pub fn parse(s: &str) -> Result<Slug, String> {
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 64
            && b[0].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'_'));
        if ok {
            Ok(Slug(s.to_string()))
        } else {
            Err(format!("invalid topic {s:?}: use 1-64 characters of a-z 0-9 - _, starting with a letter or digit"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn stream_key(&self) -> String {
        format!("topic:{}", self.0)
    }
}

/// A feed or stream entry id, `<ms>-<seq>`, ordered as numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct EntryId {
    pub ms: u64,
    pub seq: u64,
}

impl EntryId {
    pub const ZERO: EntryId = EntryId { ms: 0, seq: 0 };

    pub fn parse(s: &str) -> Option<EntryId> {
        let (ms, seq) = s.split_once('-')?;
        Some(EntryId { ms: ms.parse().ok()?, seq: seq.parse().ok()? })
    }

    pub fn next(self) -> EntryId {
        if self.seq == u64::MAX {
            EntryId { ms: self.ms.saturating_add(1), seq: 0 }
        } else {
            EntryId { ms: self.ms, seq: self.seq + 1 }
        }
    }
}

impl Ord for EntryId {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.ms, self.seq).cmp(&(other.ms, other.seq))
    }
}

impl PartialOrd for EntryId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids() {
        assert_eq!(UserId::parse("alice.b-1_2").unwrap().key(), "user:{alice.b-1_2}");
        for bad in ["", "a b", "a}", "ü", &"x".repeat(65)] {
            assert!(UserId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn slugs() {
        assert_eq!(Slug::parse("sci-tech_2").unwrap().stream_key(), "topic:sci-tech_2");
        for bad in ["", "-a", "Sports", "a b", "a:b", &"x".repeat(65)] {
            assert!(Slug::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn entry_ids_order_as_numbers() {
        let a = EntryId::parse("999-5").unwrap();
        let b = EntryId::parse("1000-0").unwrap();
        assert!(a < b);
        assert_eq!(a.next().to_string(), "999-6");
        assert!(EntryId::parse("12").is_none() && EntryId::parse("1-x").is_none());
    }
}
