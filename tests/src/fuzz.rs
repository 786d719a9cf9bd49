//! A small mutation fuzzer for decoders of untrusted bytes, run as ordinary tests.
//!
//! Each target gets a corpus of valid inputs (what the encoder writes, real-world samples) and a
//! time budget. Every execution takes a corpus entry (or an input that an earlier execution found
//! the decoder accepting) and applies a few random mutations: bit flips, byte changes, boundary
//! integers written over the input, truncation, duplicated or deleted ranges, splices with other
//! corpus entries. Random bytes alone almost never get past a decoder's first length check;
//! mutated valid encodings reach the deep paths. There is no coverage feedback (that needs a
//! nightly compiler for cargo-fuzz), so budgets are in seconds rather than iterations.
//!
//! The target decides what must hold (besides "does not panic"): decoders of this project also
//! re-encode what they accepted and check that it decodes to the same thing.
//!
//! Settings (environment):
//! - `AGENTIC_FUZZ_SECONDS`: budget per target (default 1; `make fuzz` uses 60).
//! - `AGENTIC_FUZZ_SEED`: a fixed seed to replay a run (default: from the clock, printed).
//! - `AGENTIC_FUZZ_REPORT`: a file each target appends its line to (`make fuzz` prints it).
//!
//! A panic fails the test with the seed, the execution number and the input in hex.

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// Inputs that decoded successfully are kept as further starting points, up to this many.
const MAX_FOUND: usize = 256;
/// Mutated inputs are capped so that duplications cannot grow them without bound.
const MAX_LEN: usize = 1 << 20;

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Integers at the edges where length checks and arithmetic go wrong.
const BOUNDARY: [u64; 12] = [0, 1, 2, 0x7f, 0x80, 0xff, 0xffff, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, u64::MAX / 2, u64::MAX];

/// The same edges written as decimal text, plus values just past them.
const DECIMAL: [&str; 10] = [
    "0",
    "-1",
    "255",
    "65536",
    "2147483648",
    "4294967295",
    "4294967296",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
];

/// One random change to `input`; `other` is another corpus entry for splicing.
pub fn mutate_once(rng: &mut Rng, input: &mut Vec<u8>, other: &[u8]) {
    let len = input.len();
    match rng.below(10) {
        0 if len > 0 => {
            let i = rng.below(len);
            input[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            input[i] = rng.next_u64() as u8;
        }
        2 if len > 0 => {
            // A boundary integer, little- or big-endian, 1/2/4/8 bytes wide.
            let width = *rng.pick(&[1usize, 2, 4, 8]);
            let v = *rng.pick(&BOUNDARY);
            let bytes = if rng.chance(2) { v.to_le_bytes() } else { v.to_be_bytes() };
            let at = rng.below(len);
            for (k, b) in bytes[..width].iter().enumerate() {
                if let Some(slot) = input.get_mut(at + k) {
                    *slot = *b;
                }
            }
        }
        3 => input.truncate(rng.below(len + 1)),
        4 if len > 0 => {
            let from = rng.below(len);
            let to = (from + 1 + rng.below(len - from)).min(len);
            input.drain(from..to);
        }
        5 if len > 0 && len < MAX_LEN => {
            let from = rng.below(len);
            let to = (from + 1 + rng.below(64)).min(len);
            let chunk: Vec<u8> = input[from..to].to_vec();
            let at = rng.below(len + 1);
            input.splice(at..at, chunk);
        }
        6 if !other.is_empty() => {
            // Splice: a prefix of this input and a suffix of the other.
            let cut = rng.below(len + 1);
            let from = rng.below(other.len());
            input.truncate(cut);
            input.extend_from_slice(&other[from..]);
        }
        8 if len > 0 => {
            // A number written as text (lengths, counts, ids) replaced by a boundary one.
            let at = rng.below(len);
            if let Some(start) = input[at..].iter().position(u8::is_ascii_digit).map(|p| p + at) {
                let end = input[start..].iter().position(|c| !c.is_ascii_digit()).map_or(len, |p| p + start);
                let decimal = rng.pick(&DECIMAL).as_bytes().to_vec();
                input.splice(start..end, decimal);
            }
        }
        7 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            input.splice(at..at, bytes);
        }
        _ => {
            // Characters that parsers of text formats treat specially.
            let special: &[&[u8]] = &[
                b"<",
                b">",
                b"&",
                b"&#",
                b";",
                b"\"",
                b"'",
                b"\\",
                b"\0",
                b"\n",
                b"\r\n",
                b",",
                b":",
                b"{",
                b"}",
                b"]]>",
                b"\xff",
                b"\xc3",
                b"\xe2\x80",
            ];
            let at = rng.below(len + 1);
            let s = rng.pick(special).to_vec();
            input.splice(at..at, s);
        }
    }
    input.truncate(MAX_LEN);
}

fn seconds() -> f64 {
    std::env::var("AGENTIC_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).filter(|s: &f64| *s > 0.0).unwrap_or(1.0)
}

fn seed() -> u64 {
    std::env::var("AGENTIC_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64))
}

fn hex(b: &[u8]) -> String {
    b.iter().take(4096).map(|x| format!("{x:02x}")).collect()
}

/// What one target's run did.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    pub executions: u64,
    pub accepted: u64,
}

/// Fuzzes `target` for the configured time. `target` returns whether it accepted the input
/// (accepted inputs become starting points too) and panics when a property fails. Panics inside
/// the target fail the test with everything needed to replay it.
pub fn fuzz(name: &str, corpus: &[Vec<u8>], target: impl Fn(&[u8]) -> bool) -> Report {
    fuzz_for(name, Duration::from_secs_f64(seconds()), corpus, target)
}

fn fuzz_for(name: &str, budget: Duration, corpus: &[Vec<u8>], target: impl Fn(&[u8]) -> bool) -> Report {
    assert!(!corpus.is_empty(), "fuzz {name}: an empty corpus");
    let seed = seed();
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let mut found: Vec<Vec<u8>> = Vec::new();
    let mut report = Report { executions: 0, accepted: 0 };
    // The corpus itself first: a decoder must accept what its encoder writes.
    let mut queue: Vec<Vec<u8>> = corpus.to_vec();
    queue.push(Vec::new());
    loop {
        let input = match queue.pop() {
            Some(i) => i,
            None => {
                if started.elapsed() >= budget {
                    break;
                }
                let mut input = if !found.is_empty() && rng.chance(3) { rng.pick(&found).clone() } else { rng.pick(corpus).clone() };
                let other = rng.pick(corpus).clone();
                for _ in 0..1 + rng.below(4) {
                    mutate_once(&mut rng, &mut input, &other);
                }
                input
            }
        };
        report.executions += 1;
        match catch_unwind(AssertUnwindSafe(|| target(&input))) {
            Ok(true) => {
                report.accepted += 1;
                if found.len() < MAX_FOUND {
                    found.push(input);
                } else if rng.chance(16) {
                    let i = rng.below(found.len());
                    found[i] = input;
                }
            }
            Ok(false) => {}
            Err(panic) => {
                let what = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
                panic!(
                    "fuzz {name}: crash at execution {} (AGENTIC_FUZZ_SEED={seed}): {}\ninput ({} bytes, hex): {}",
                    report.executions,
                    what.unwrap_or_default(),
                    input.len(),
                    hex(&input)
                );
            }
        }
    }
    let line = format!(
        "fuzz {name}: {} executions in {:.1} s, {} accepted, 0 crashes (seed {seed})",
        report.executions,
        started.elapsed().as_secs_f64(),
        report.accepted
    );
    println!("{line}");
    if let Ok(path) = std::env::var("AGENTIC_FUZZ_REPORT") {
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(f, "{line}");
        }
    }
    report
}

/// Text targets: the same mutations, then lossy UTF-8 (parsers of text formats take `&str`).
pub fn fuzz_text(name: &str, corpus: &[&str], target: impl Fn(&str) -> bool) -> Report {
    let corpus: Vec<Vec<u8>> = corpus.iter().map(|s| s.as_bytes().to_vec()).collect();
    fuzz(name, &corpus, |b| target(&String::from_utf8_lossy(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_is_reported_with_its_input() {
        let r = catch_unwind(|| {
            fuzz_for("demo", Duration::from_secs(2), &[b"abc".to_vec()], |b| {
                assert!(!b.starts_with(b"ab\0"));
                true
            })
        });
        let msg = r.err().and_then(|p| p.downcast_ref::<String>().cloned()).expect("the planted crash is found");
        assert!(msg.contains("fuzz demo: crash") && msg.contains("AGENTIC_FUZZ_SEED="), "{msg}");
    }

    #[test]
    fn accepted_inputs_are_counted_and_the_corpus_runs_first() {
        let seen = std::sync::Mutex::new(Vec::new());
        let r = fuzz_for("count", Duration::from_millis(50), &[b"x".to_vec()], |b| {
            seen.lock().unwrap().push(b.to_vec());
            b == b"x"
        });
        assert!(r.executions >= 2 && r.accepted >= 1, "{r:?}");
        assert_eq!(seen.lock().unwrap()[0], b"", "the empty input, then the corpus");
        assert_eq!(seen.lock().unwrap()[1], b"x");
    }
}
