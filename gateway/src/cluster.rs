//! Valkey Cluster from the gateway's side: which primary serves which slots, and the shard
//! channel each primary announces its deliveries on (`<delivery-channel>{<tag>}`, the tag naming
//! the primary's smallest slot: the module's rule, see module/src/delivery_channel.rs).

use std::collections::BTreeMap;

use redis::Value;

pub const SLOTS: usize = 16384;

/// The hash slot of a key: CRC16/XMODEM of its hash tag (the part between the first `{` and the
/// next `}`, when that part is not empty) or else of the whole key, modulo the slot count. The
/// same rule as the module's (module/src/cluster.rs) and the cluster client's, which no longer
/// exports it (redis 1.x).
pub fn key_slot(key: &[u8]) -> u16 {
    let tag = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter().position(|&b| b == b'}').filter(|&len| len > 0).map(|len| &rest[..len])
        })
        .unwrap_or(key);
    let crc = tag.iter().fold(0u16, |crc, &byte| {
        (0..8).fold(crc ^ (u16::from(byte) << 8), |c, _| if c & 0x8000 != 0 { (c << 1) ^ 0x1021 } else { c << 1 })
    });
    // SLOTS is a power of two, so the mask is the modulo.
    crc & (SLOTS as u16 - 1)
}

/// The smallest decimal number whose text hashes to `slot`.
pub fn slot_tag(slot: u16) -> u32 {
    static TAGS: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        let mut tags = vec![u32::MAX; SLOTS];
        let mut missing = SLOTS;
        let mut n: u32 = 0;
        while missing > 0 {
            let s = key_slot(n.to_string().as_bytes()) as usize;
            if tags[s] == u32::MAX {
                tags[s] = n;
                missing -= 1;
            }
            n += 1;
        }
        tags
    });
    tags[slot as usize % SLOTS]
}

/// Who serves what: per slot the address (`host:port`) of its primary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    owner: Vec<Option<u16>>,
    primaries: Vec<String>,
}

impl Topology {
    /// From a CLUSTER SLOTS reply: `[start, end, [host, port, id, ...], replicas...]` per range.
    pub fn from_cluster_slots(reply: &Value) -> Option<Topology> {
        let Value::Array(ranges) = reply else { return None };
        let mut primaries: Vec<String> = Vec::new();
        let mut owner = vec![None; SLOTS];
        for r in ranges {
            let Value::Array(f) = r else { return None };
            let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(node))) = (f.first(), f.get(1), f.get(2)) else {
                return None;
            };
            let host = match node.first() {
                Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(Value::SimpleString(s)) => s.clone(),
                _ => return None,
            };
            let Some(Value::Int(port)) = node.get(1) else { return None };
            let addr = format!("{host}:{port}");
            let index = match primaries.iter().position(|p| *p == addr) {
                Some(i) => i,
                None => {
                    primaries.push(addr);
                    primaries.len() - 1
                }
            };
            for slot in (*start).max(0)..=(*end).min(SLOTS as i64 - 1) {
                owner[slot as usize] = Some(index as u16);
            }
        }
        Some(Topology { owner, primaries })
    }

    /// Each primary's address and shard channel, by address.
    pub fn shard_channels(&self, channel: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (slot, o) in self.owner.iter().enumerate() {
            if let Some(i) = o {
                let addr = &self.primaries[*i as usize];
                if !out.contains_key(addr) {
                    out.insert(addr.clone(), format!("{channel}{{{}}}", slot_tag(slot as u16)));
                }
            }
        }
        out
    }

    /// The primaries' addresses (`host:port`).
    pub fn primaries(&self) -> &[String] {
        &self.primaries
    }

    pub fn owner_of(&self, slot: u16) -> Option<&str> {
        self.owner.get(slot as usize).copied().flatten().map(|i| self.primaries[i as usize].as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_and_tags_agree_with_the_cluster_spec() {
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"user:{42}"), key_slot(b"42"));
        assert_eq!(key_slot(b""), 0);
        assert_eq!(key_slot(b"123456789"), 0x31C3 & 16383); // the CRC16/XMODEM check value
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"hello"), 866);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"{user1000}.followers"));
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        // An empty tag or an unclosed brace hashes the whole key.
        assert_eq!(key_slot(b"foo{}{bar}"), 8363);
        assert_ne!(key_slot(b"{}bar"), key_slot(b"bar"));
        assert_ne!(key_slot(b"{foo"), key_slot(b"foo"));
        // Only the first `{` opens a tag.
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        for slot in [0u16, 1, 5460, 5461, 10922, 16383] {
            assert_eq!(key_slot(slot_tag(slot).to_string().as_bytes()), slot);
        }
    }

    fn node(port: i64) -> Value {
        Value::Array(vec![Value::BulkString(b"127.0.0.1".to_vec()), Value::Int(port), Value::BulkString(b"id".to_vec())])
    }

    #[test]
    fn reads_cluster_slots() {
        let reply = Value::Array(vec![
            Value::Array(vec![Value::Int(100), Value::Int(16383), node(7001)]),
            Value::Array(vec![Value::Int(0), Value::Int(99), node(7000), node(7003)]),
        ]);
        let t = Topology::from_cluster_slots(&reply).unwrap();
        assert_eq!(t.owner_of(0), Some("127.0.0.1:7000"));
        assert_eq!(t.owner_of(100), Some("127.0.0.1:7001"));
        let ch = t.shard_channels("d");
        assert_eq!(ch["127.0.0.1:7000"], format!("d{{{}}}", slot_tag(0)));
        assert_eq!(ch["127.0.0.1:7001"], format!("d{{{}}}", slot_tag(100)));
    }
}
