//! The static tier: a token-embedding table distilled from the encoder at `make model` time
//! (model/static_tier.py writes `static.bin` next to `model.onnx`). Embedding a text is a tokenise
//! plus a sum of table rows, so it costs microseconds where the encoder costs milliseconds; the
//! cascade (`cascade.rs`) sends only the texts it is unsure about to the encoder.

use std::path::Path;

/// `static.bin`: magic, u32 format version, u32 rows, u32 dim (little-endian), then rows x dim f32.
const MAGIC: &[u8; 8] = b"AGSTATIC";
const FORMAT_VERSION: u32 = 1;
const HEADER_BYTES: usize = 8 + 12;
pub const FILE_NAME: &str = "static.bin";
/// Rows of a distilled table stay near unit length (the real table's largest value is 0.63); this
/// bound keeps a sum over any number of tokens far from f32 overflow, which would make NaN scores.
const MAX_ABS_VALUE: f32 = 1_000.0;

pub struct StaticTable {
    rows: usize,
    pub dim: usize,
    /// Row-major; each row is already scaled by its token's weight (special tokens are zero).
    values: Vec<f32>,
    /// xxh3 of the file: vectors are only comparable under one fingerprint.
    pub fingerprint: u64,
}

impl StaticTable {
    /// Reads `dir/static.bin`; Ok(None) when the folder has none (the encoder then answers alone).
    pub fn load(dir: &Path, vocab_size: usize) -> Result<Option<StaticTable>, String> {
        let path = dir.join(FILE_NAME);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        Self::parse(&bytes, vocab_size).map(Some).map_err(|e| format!("{}: {e} (rebuild it with make model)", path.display()))
    }

    pub fn parse(bytes: &[u8], vocab_size: usize) -> Result<StaticTable, String> {
        if bytes.len() < HEADER_BYTES || &bytes[..8] != MAGIC {
            return Err("not a static token table".into());
        }
        let word = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        let (version, rows, dim) = (word(8) as u32, word(12), word(16));
        if version != FORMAT_VERSION {
            return Err(format!("format version {version}, this module reads {FORMAT_VERSION}"));
        }
        if dim == 0 || rows == 0 {
            return Err(format!("{rows} rows of {dim} values"));
        }
        if rows != vocab_size {
            return Err(format!("{rows} rows but the tokenizer has {vocab_size} tokens: built for another tokenizer"));
        }
        let expected = rows.checked_mul(dim).and_then(|n| n.checked_mul(4)).and_then(|n| n.checked_add(HEADER_BYTES));
        if expected != Some(bytes.len()) {
            return Err(format!("{} bytes, expected {} for {rows} x {dim}", bytes.len(), expected.unwrap_or(0)));
        }
        let values: Vec<f32> = bytes[HEADER_BYTES..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        if let Some(at) = values.iter().position(|x| !x.is_finite()) {
            return Err(format!("value {at} is not finite"));
        }
        if let Some(at) = values.iter().position(|x| x.abs() > MAX_ABS_VALUE) {
            return Err(format!("value {at} is {}, outside +-{MAX_ABS_VALUE}", values[at]));
        }
        Ok(StaticTable { rows, dim, values, fingerprint: xxhash_rust::xxh3::xxh3_64(bytes) })
    }

    /// The unit vector of a tokenised text: the sum of its tokens' rows, normalised. Ids outside
    /// the table are skipped; a text of special tokens only gets the zero vector.
    pub fn embed(&self, ids: &[i64]) -> Vec<f32> {
        let mut v = vec![0f32; self.dim];
        for &id in ids {
            if id >= 0 && (id as usize) < self.rows {
                let row = &self.values[id as usize * self.dim..(id as usize + 1) * self.dim];
                v.iter_mut().zip(row).for_each(|(a, x)| *a += x);
            }
        }
        super::encoder::normalize(&mut v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(rows: u32, dim: u32, values: &[f32]) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        for w in [FORMAT_VERSION, rows, dim] {
            b.extend(w.to_le_bytes());
        }
        values.iter().for_each(|v| b.extend(v.to_le_bytes()));
        b
    }

    fn refusal(bytes: &[u8], vocab: usize) -> String {
        StaticTable::parse(bytes, vocab).err().unwrap_or_default()
    }

    #[test]
    fn a_text_is_the_normalised_sum_of_its_rows() {
        let t = StaticTable::parse(&file(3, 2, &[0.0, 0.0, 3.0, 0.0, 0.0, 4.0]), 3).unwrap();
        let v = t.embed(&[0, 1, 2, 99, -1]);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6, "{v:?}");
        assert_eq!(t.embed(&[0]), vec![0.0, 0.0], "special tokens only: zero vector");
    }

    #[test]
    fn damaged_or_foreign_tables_are_refused() {
        let good = file(2, 2, &[1.0, 0.0, 0.0, 1.0]);
        assert!(StaticTable::parse(&good, 2).is_ok());
        assert!(refusal(&good, 3).contains("another tokenizer"));
        assert!(refusal(&good[..good.len() - 1], 2).contains("bytes, expected"));
        assert!(refusal(b"GARBAGE!0000000000000", 2).contains("not a static"));
        assert!(refusal(&file(2, 2, &[1.0, f32::NAN, 0.0, 1.0]), 2).contains("not finite"));
        // Finite but huge: two such rows summed overflow to infinity (found by the fuzzer).
        assert!(refusal(&file(2, 2, &[3e38, 0.0, 3e38, 1.0]), 2).contains("outside"));
        let mut newer = good.clone();
        newer[8] = 9;
        assert!(refusal(&newer, 2).contains("format version 9"));
    }
}
