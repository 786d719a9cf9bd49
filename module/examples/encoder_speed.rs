//! Raw encoder throughput, without Valkey: texts (one JSON string per line) embedded by N threads
//! sharing one `Encoder`, each text on its own, as the classify pool does.
//!
//!     cargo run --release -p agentic --features enable-system-alloc --example encoder_speed -- \
//!         model/out/real TEXTS.jsonl [threads] [max-tokens] [length-plans]
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use agentic::classify::encoder::Encoder;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).cloned().unwrap_or("model/out/real".into());
    let file = args.get(2).expect("texts file: one JSON string per line");
    let threads: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(2);
    let max_tokens: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(64);
    let plans: usize = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(8);
    let texts: Vec<String> = std::fs::read_to_string(file)
        .expect("read texts")
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.trim_matches('"').replace("\\\"", "\""))
        .collect();
    let encoder = Arc::new(Encoder::load(std::path::Path::new(&dir)).expect("load"));
    encoder.embed_texts(&texts.iter().take(200).map(String::as_str).collect::<Vec<_>>(), max_tokens, 1, plans).expect("warm-up");
    let texts = Arc::new(texts);
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (encoder, texts, next) = (encoder.clone(), texts.clone(), next.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(t) = texts.get(i) else { break };
                encoder.embed_texts(&[t.as_str()], max_tokens, 1, plans).expect("embed");
            })
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().expect("thread"));
    let s = t0.elapsed().as_secs_f64();
    println!(
        "{} texts, {threads} threads, max {max_tokens} tokens, {plans} length plans: {:.1} texts/s",
        texts.len(),
        texts.len() as f64 / s
    );
}
