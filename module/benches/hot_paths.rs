//! In-process hot paths of a delivery, without the server:
//! `cargo bench -p agentic --features enable-system-alloc --bench hot_paths`

use std::sync::Arc;

use agentic::feed::DocRef;
use agentic::seen::{DocHash, SeenParams};
use agentic::user::{DeliverySpec, UserState};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};

const PARAMS: SeenParams = SeenParams { ttl_ms: 86_400_000, fp_ppm: 1000, capacity: 128 };

fn spec(i: u64) -> DeliverySpec {
    let key = format!("doc:{{{i}}}");
    DeliverySpec {
        hash: DocHash::of(key.as_bytes()),
        doc: Arc::new(DocRef { topic: b"technology".to_vec().into(), key: key.into_bytes().into() }),
        ts_ms: 1_700_000_000_000 + i,
        feed_len: 100,
        seen: PARAMS,
    }
}

/// A user who already received `n` documents: a full feed and a multi-layer seen-filter.
fn warm_user(n: u64) -> UserState {
    let mut u = UserState::new(b"user:{42}");
    u.add_topic(b"technology");
    for i in 0..n {
        u.deliver(&spec(i));
    }
    u
}

fn deliveries(c: &mut Criterion) {
    let fresh: Vec<DeliverySpec> = (1_000_000..1_001_000).map(spec).collect();
    c.bench_function("deliver new document to warm user (600 seen)", |b| {
        b.iter_batched_ref(
            || warm_user(600),
            |u| {
                for s in fresh.iter().take(64) {
                    black_box(u.deliver(s));
                }
            },
            BatchSize::LargeInput,
        )
    });
    let seen: Vec<DeliverySpec> = (0..64).map(spec).collect();
    let user = warm_user(600);
    c.bench_function("duplicate check on warm user (64 documents)", |b| {
        b.iter(|| seen.iter().filter(|s| user.seen.contains(s.hash, user.salt, s.ts_ms, PARAMS.ttl_ms)).count())
    });
    c.bench_function("encode + decode a warm user", |b| b.iter(|| agentic::user::decode(&agentic::user::encode(black_box(&user)))));
}

criterion_group!(benches, deliveries);
criterion_main!(benches);
