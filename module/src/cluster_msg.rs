//! The messages of the cluster-wide pipeline, sent over the cluster bus between primaries: an
//! article to deliver, its acknowledgement, and a request to send again from some point. Binary,
//! versioned, every field explicit (a receiver never fills in a value from its own config or
//! clock), and decoded defensively: a message from another node is still input.

pub const ARTICLE: u8 = 1;
pub const ACK: u8 = 2;
pub const NACK: u8 = 3;

const VERSION: u8 = 1;
/// Larger messages are refused (a document is at most 512 MB by config, a bus message far less).
const MAX_FIELD: usize = 64 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Article {
    /// The sending pipeline's session: a new one each time a node starts acting as the ingest node.
    pub session: u64,
    /// Position in the session, from 1; receivers apply articles strictly in this order.
    pub seq: u64,
    /// The oldest article the sender still waits for: where a receiver without state starts.
    pub window_start: u64,
    /// The news_raw entry id; also the id the article gets in its topic stream.
    pub entry_id: Vec<u8>,
    pub topic: Vec<u8>,
    pub doc_key: Vec<u8>,
    pub stream_key: Vec<u8>,
    pub ts_ms: u64,
    pub feed_len: u64,
    pub seen_ttl_ms: u64,
    pub seen_fp_ppm: u32,
    pub seen_capacity: u32,
    /// Absolute expiry of the stored document in ms since the epoch; 0 = none.
    pub doc_expire_at_ms: u64,
    /// The document, for the nodes that serve its key's or its stream's slot.
    pub payload: Option<Vec<u8>>,
    /// Only store the document and the stream entry (sent again to every primary when the node
    /// serving them is not known): no delivery, no place in the session's sequence.
    pub store_only: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub session: u64,
    pub seq: u64,
    pub doc_stored: bool,
    pub stream_appended: bool,
    /// Feed entries this node wrote for the article.
    pub delivered: u64,
    /// The slots whose subscribers on this node have the article (the node's slots when it did).
    pub ranges: Vec<(u16, u16)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nack {
    pub session: u64,
    /// The next sequence number this node can apply; 0 when it has no state for the session.
    pub expected: u64,
}

struct Writer(Vec<u8>);

impl Writer {
    fn new() -> Self {
        Writer(vec![VERSION])
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
        self
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Result<Self, String> {
        match b.split_first() {
            Some((&VERSION, rest)) => Ok(Reader(rest)),
            Some((v, _)) => Err(format!("unknown message version {v}")),
            None => Err("empty message".into()),
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("truncated message".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| "truncated message")?))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| "truncated message")?))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, String> {
        let n = self.u32()? as usize;
        if n > MAX_FIELD {
            return Err(format!("field of {n} bytes"));
        }
        Ok(self.take(n)?.to_vec())
    }
    fn end(self) -> Result<(), String> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(format!("{} trailing bytes", self.0.len()))
        }
    }
}

impl Article {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u64(self.session).u64(self.seq).u64(self.window_start);
        w.bytes(&self.entry_id).bytes(&self.topic).bytes(&self.doc_key).bytes(&self.stream_key);
        w.u64(self.ts_ms).u64(self.feed_len).u64(self.seen_ttl_ms).u32(self.seen_fp_ppm).u32(self.seen_capacity);
        w.u64(self.doc_expire_at_ms);
        match &self.payload {
            Some(p) => w.u32(1).bytes(p),
            None => w.u32(0),
        };
        w.u32(self.store_only as u32);
        w.0
    }

    pub fn decode(b: &[u8]) -> Result<Article, String> {
        let mut r = Reader::new(b)?;
        let a = Article {
            session: r.u64()?,
            seq: r.u64()?,
            window_start: r.u64()?,
            entry_id: r.bytes()?,
            topic: r.bytes()?,
            doc_key: r.bytes()?,
            stream_key: r.bytes()?,
            ts_ms: r.u64()?,
            feed_len: r.u64()?,
            seen_ttl_ms: r.u64()?,
            seen_fp_ppm: r.u32()?,
            seen_capacity: r.u32()?,
            doc_expire_at_ms: r.u64()?,
            payload: match r.u32()? {
                0 => None,
                1 => Some(r.bytes()?),
                f => return Err(format!("bad payload flag {f}")),
            },
            store_only: match r.u32()? {
                0 => false,
                1 => true,
                f => return Err(format!("bad store-only flag {f}")),
            },
        };
        if a.store_only && a.payload.is_none() {
            return Err("a store-only article without its document".into());
        }
        r.end()?;
        if a.seq == 0 || a.window_start == 0 || a.window_start > a.seq {
            return Err(format!("bad sequence numbers {} (window from {})", a.seq, a.window_start));
        }
        if a.topic.is_empty() || a.doc_key.is_empty() || a.stream_key.is_empty() || a.entry_id.is_empty() {
            return Err("empty topic, document key, stream key or entry id".into());
        }
        Ok(a)
    }

    /// The same article without its document (for nodes that only deliver).
    pub fn without_payload(&self) -> Article {
        Article { payload: None, ..self.clone() }
    }
}

impl Ack {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u64(self.session).u64(self.seq).u32(self.doc_stored as u32).u32(self.stream_appended as u32).u64(self.delivered);
        w.u32(self.ranges.len() as u32);
        for &(a, b) in &self.ranges {
            w.u32(a as u32).u32(b as u32);
        }
        w.0
    }

    pub fn decode(b: &[u8]) -> Result<Ack, String> {
        let mut r = Reader::new(b)?;
        let (session, seq, doc_stored, stream_appended, delivered) = (r.u64()?, r.u64()?, r.u32()? == 1, r.u32()? == 1, r.u64()?);
        let n = r.u32()? as usize;
        if n > crate::cluster::SLOTS as usize {
            return Err(format!("{n} slot ranges"));
        }
        let mut ranges = Vec::with_capacity(n);
        for _ in 0..n {
            let (a, b) = (r.u32()?, r.u32()?);
            if a > b || b >= crate::cluster::SLOTS as u32 {
                return Err(format!("bad slot range {a}-{b}"));
            }
            ranges.push((a as u16, b as u16));
        }
        r.end()?;
        Ok(Ack { session, seq, doc_stored, stream_appended, delivered, ranges })
    }
}

impl Nack {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u64(self.session).u64(self.expected);
        w.0
    }

    pub fn decode(b: &[u8]) -> Result<Nack, String> {
        let mut r = Reader::new(b)?;
        let n = Nack { session: r.u64()?, expected: r.u64()? };
        r.end()?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn article() -> Article {
        Article {
            session: 7,
            seq: 12,
            window_start: 10,
            entry_id: b"1700000000000-3".to_vec(),
            topic: b"sports".to_vec(),
            doc_key: b"doc:{a1}".to_vec(),
            stream_key: b"topic:sports".to_vec(),
            ts_ms: 1_700_000_000_123,
            feed_len: 100,
            seen_ttl_ms: 86_400_000,
            seen_fp_ppm: 1000,
            seen_capacity: 128,
            doc_expire_at_ms: 1_700_086_400_123,
            payload: Some(b"{\"title\":\"Cup final\"}".to_vec()),
            store_only: false,
        }
    }

    #[test]
    fn messages_round_trip() {
        let a = article();
        assert_eq!(Article::decode(&a.encode()).unwrap(), a);
        assert_eq!(Article::decode(&a.without_payload().encode()).unwrap().payload, None);
        let ack =
            Ack { session: 7, seq: 12, doc_stored: true, stream_appended: false, delivered: 42, ranges: vec![(0, 5460), (16000, 16383)] };
        assert_eq!(Ack::decode(&ack.encode()).unwrap(), ack);
        let nack = Nack { session: 7, expected: 0 };
        assert_eq!(Nack::decode(&nack.encode()).unwrap(), nack);
    }

    #[test]
    fn damaged_messages_are_refused() {
        let bytes = article().encode();
        for cut in 0..bytes.len() {
            assert!(Article::decode(&bytes[..cut]).is_err(), "truncated at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(Article::decode(&extra).is_err());
        let mut version = bytes.clone();
        version[0] = 9;
        assert!(Article::decode(&version).is_err());
        let mut seq0 = article();
        seq0.seq = 0;
        assert!(Article::decode(&seq0.encode()).is_err());
        let bad_range = Ack { session: 1, seq: 1, doc_stored: false, stream_appended: false, delivered: 0, ranges: vec![(5, 3)] };
        assert!(Ack::decode(&bad_range.encode()).is_err());
        let huge = Ack { session: 1, seq: 1, doc_stored: false, stream_appended: false, delivered: 0, ranges: vec![(0, 16384)] };
        assert!(Ack::decode(&huge.encode()).is_err());
    }
}
