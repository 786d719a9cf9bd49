//! Fuzz targets for every decoder in the module that reads bytes a client, a file or another node
//! can shape (issue 13): user values (RDB, DUMP/RESTORE, AGENT.LOADUSER), catalogs (RDB,
//! AGENT.LOADTOPICS), self-trained heads (`agentic:heads`), cluster bus messages, the static
//! tier's table, sidecar result blobs, entry ids and the article lead cut. Each run is bounded in
//! time (agentic_tests::fuzz); `make fuzz` runs them for longer.
//!
//! Besides "never panics", every accepted value must survive a round trip: what a decoder
//! accepts, its encoder writes back to bytes that decode to the same value.

use std::sync::Arc;

use agentic_tests::fuzz::{fuzz, fuzz_text};

use crate::classify::catalog::{self, Catalog, TopicDef};
use crate::classify::learner::{self, Heads};
use crate::classify::scorer::Scorer;
use crate::classify::static_tier::StaticTable;
use crate::classify::word_head::WordHead;
use crate::classify::{lead, sidecar};
use crate::cluster_msg::{Ack, Article, Nack};
use crate::feed::{DocRef, EntryId};
use crate::ffi::StreamId;
use crate::seen::{DocHash, SeenParams};
use crate::user::{self, DeliverySpec, UserState};

fn users() -> Vec<Vec<u8>> {
    let spec = |topic: &str, key: String, ts: u64, capacity: u32| DeliverySpec {
        doc: Arc::new(DocRef { topic: topic.as_bytes().to_vec().into(), key: key.as_bytes().to_vec().into() }),
        hash: DocHash::of(key.as_bytes()),
        ts_ms: ts,
        feed_len: 5,
        seen: SeenParams { ttl_ms: 50, fp_ppm: 1000, capacity },
    };
    let mut empty = UserState::new(b"user:{a}");
    empty.add_topic(b"sports");
    let mut busy = UserState::new(b"user:{b}");
    for t in ["sports", "politics", "science"] {
        busy.add_topic(t.as_bytes());
    }
    // Enough deliveries over time to rotate the seen filter's layers and trim the feed.
    for i in 0..40u64 {
        busy.deliver(&spec(["sports", "politics"][i as usize % 2], format!("doc:{i}"), i * 10, 8));
    }
    vec![user::encode(&empty), user::encode(&busy), user::encode(&UserState::new(b"user:{c}"))]
}

#[test]
fn user_values() {
    fuzz("module: user value (RDB, RESTORE, AGENT.LOADUSER)", &users(), |b| {
        let Ok(u) = user::decode(b) else { return false };
        let again = user::encode(&u);
        assert_eq!(user::decode(&again).as_ref(), Ok(&u), "a decoded user re-encodes to itself");
        let _ = u.heap_bytes();
        true
    });
}

fn timelines() -> Vec<Vec<u8>> {
    let mut t = crate::timeline::Timelines::default();
    for i in 0..30u64 {
        let topic = ["sports", "politics", "science"][i as usize % 3];
        let spec = DeliverySpec {
            doc: Arc::new(DocRef { topic: topic.as_bytes().into(), key: format!("doc:{i}").into_bytes().into() }),
            hash: DocHash::of(format!("doc:{i}").as_bytes()),
            ts_ms: i * 10,
            feed_len: 4,
            seen: SeenParams { ttl_ms: 50, fp_ppm: 1000, capacity: 8 },
        };
        let id = t.next_id(spec.ts_ms, EntryId::default());
        t.append(&spec, id);
    }
    vec![crate::timeline::encode(&t), crate::timeline::encode(&Default::default())]
}

#[test]
fn shared_timelines() {
    fuzz("module: shared timelines (RDB, AGENT.TIMELINE.LOAD)", &timelines(), |b| {
        let Ok(t) = crate::timeline::decode(b) else { return false };
        let again = crate::timeline::encode(&t);
        assert_eq!(crate::timeline::decode(&again).as_ref(), Ok(&t), "decoded timelines re-encode to themselves");
        // What AGENT.FEED does with them.
        let mut reader = UserState::new(b"user:{r}");
        t.topics.keys().for_each(|topic| {
            reader.add_topic(topic);
        });
        let _ = crate::timeline::assemble(&reader, Some(&t), crate::timeline::Page::Before(EntryId::MAX), 50, 0, 50);
        let _ = t.heap_bytes();
        true
    });
}

fn catalogs() -> Vec<Vec<u8>> {
    let defaults = Catalog::defaults();
    let examples = defaults.with_examples("sports", vec!["The striker scored twice".into(), "A late winner".into()]).expect("examples");
    let one = Catalog::new(vec![TopicDef { slug: "a".into(), description: "d".into(), examples: vec![] }]);
    vec![catalog::encode(&defaults), catalog::encode(&examples), catalog::encode(&one)]
}

#[test]
fn catalogs_and_loadtopics_blobs() {
    fuzz("module: catalog (RDB, AGENT.LOADTOPICS)", &catalogs(), |b| {
        let Ok(c) = catalog::decode(b) else { return false };
        let again = catalog::decode(&catalog::encode(&c)).expect("a decoded catalog re-encodes");
        assert_eq!(again.topics, c.topics);
        true
    });
}

fn heads_blobs() -> Vec<Vec<u8>> {
    let c =
        Catalog::new(["a", "b", "c"].iter().map(|s| TopicDef { slug: s.to_string(), description: "d".into(), examples: vec![] }).collect());
    let st = Scorer::from_parts(&c, 1, 2, vec![1.0, 0.0, 0.0, 1.0, 0.5, 0.5], vec![0.5, -0.5, 0.0]).expect("static head");
    let m = Scorer::from_parts(&c, 2, 3, vec![0.1; 9], vec![0.0, 0.25, 1.0]).expect("model head");
    let words: Vec<(usize, Vec<u32>)> = (0..9u32).map(|i| ((i % 3) as usize, vec![1, 2 + i % 3, 7, 8])).collect();
    let refs: Vec<(usize, &[u32])> = words.iter().map(|(t, w)| (*t, w.as_slice())).collect();
    let word_head = WordHead::fit(&refs, 3).expect("word head");
    let mut heads =
        Heads { catalog_id: c.id, version: 3, samples: 1000, static_head: Arc::new(st), model_head: Arc::new(m), word_head: None };
    let v1 = learner::encode(&heads, 7, (1, 2));
    heads.word_head = Some(Arc::new(word_head));
    vec![v1, learner::encode(&heads, 7, (1, 2))]
}

#[test]
fn self_trained_heads() {
    let c =
        Catalog::new(["a", "b", "c"].iter().map(|s| TopicDef { slug: s.to_string(), description: "d".into(), examples: vec![] }).collect());
    fuzz("module: self-trained heads (agentic:heads)", &heads_blobs(), |b| {
        let Ok(e) = learner::decode(b) else { return false };
        // What a node does with them: build scorers, which refuse sizes that do not fit.
        for (dim, w, bias) in e.tiers.iter().cloned() {
            let _ = Scorer::from_parts(&c, 1, dim, w, bias);
        }
        if let Some((topics, keys, idf, weights)) = e.words {
            if let Ok(h) = WordHead::from_parts(topics, keys, idf, weights) {
                let _ = h.log_probs(&[1, 2, 3, 7, 8, u32::MAX]);
            }
        }
        true
    });
}

fn articles() -> Vec<Vec<u8>> {
    let a = Article {
        session: 9,
        seq: 3,
        window_start: 1,
        entry_id: b"1700000000000-0".to_vec(),
        topic: b"sports".to_vec(),
        doc_key: b"doc:{x}1".to_vec(),
        stream_key: b"topic:{sports}".to_vec(),
        ts_ms: 1_700_000_000_000,
        feed_len: 100,
        seen_ttl_ms: 86_400_000,
        seen_fp_ppm: 1000,
        seen_capacity: 4096,
        doc_expire_at_ms: 0,
        payload: Some(br#"{"title":"t"}"#.to_vec()),
        store_only: false,
    };
    let store_only = Article { store_only: true, seq: 0, ..a.clone() };
    vec![a.encode(), a.without_payload().encode(), store_only.encode()]
}

#[test]
fn cluster_bus_messages() {
    fuzz("module: cluster bus article", &articles(), |b| {
        let Ok(a) = Article::decode(b) else { return false };
        assert_eq!(Article::decode(&a.encode()), Ok(a));
        true
    });
    let acks = vec![
        Ack { session: 1, seq: 2, doc_stored: true, stream_appended: false, delivered: 40, ranges: vec![(0, 5460), (10923, 16383)] }
            .encode(),
        Ack { session: 1, seq: 3, doc_stored: false, stream_appended: true, delivered: 0, ranges: vec![] }.encode(),
    ];
    fuzz("module: cluster bus ack", &acks, |b| {
        let Ok(a) = Ack::decode(b) else { return false };
        assert_eq!(Ack::decode(&a.encode()), Ok(a));
        true
    });
    fuzz("module: cluster bus nack", &[Nack { session: 5, expected: 0 }.encode()], |b| {
        let Ok(n) = Nack::decode(b) else { return false };
        assert_eq!(Nack::decode(&n.encode()), Ok(n));
        true
    });
}

#[test]
fn static_tier_tables() {
    let table = |rows: u32, dim: u32| {
        let mut b = b"AGSTATIC".to_vec();
        for w in [1, rows, dim] {
            b.extend(u32::to_le_bytes(w));
        }
        (0..rows * dim).for_each(|i| b.extend((i as f32 * 0.25 - 1.0).to_le_bytes()));
        b
    };
    fuzz("module: static tier table (static.bin)", &[table(4, 3), table(1, 1), table(16, 2)], |b| {
        // The vocabulary size comes from the tokenizer; the table must match it exactly.
        let vocab = if b.len() >= 16 { u32::from_le_bytes([b[12], b[13], b[14], b[15]]) as usize } else { 4 };
        let Ok(t) = StaticTable::parse(b, vocab.min(1 << 20)) else { return false };
        let v = t.embed(&[0, 1, 2, 3, -1, i64::MAX, i64::MIN, 1 << 40]);
        assert!(v.iter().all(|x| x.is_finite()), "embeddings are finite: {v:?}");
        true
    });
}

#[test]
fn sidecar_result_blobs() {
    let blob = |n: usize, dim: usize| (0..n * dim).flat_map(|i| (i as f32 / 7.0).to_le_bytes()).collect::<Vec<u8>>();
    fuzz("module: sidecar result blob (AGENT.SIDECAR.RESULT)", &[blob(3, 4), blob(1, 4), blob(8, 4)], |b| {
        let Ok(vectors) = sidecar::vectors_of(b, 4) else { return false };
        assert!(vectors.iter().all(|v| v.len() == 4 && v.iter().all(|x| x.is_finite())));
        assert_eq!(vectors.len() * 16, b.len());
        true
    });
    assert!(sidecar::vectors_of(&[0; 8], 0).is_err());
    assert!(sidecar::vectors_of(&[0; 8], usize::MAX).is_err());
}

#[test]
fn entry_and_stream_ids() {
    fuzz_text("module: entry and stream ids", &["1700000000000-0", "5", "18446744073709551615-18446744073709551615", "0-1"], |s| {
        let e = EntryId::parse(s.as_bytes());
        if let Some(e) = e {
            assert_eq!(EntryId::parse(e.to_string().as_bytes()), Some(e));
        }
        let st = StreamId::parse(s.as_bytes());
        if let Some(st) = st {
            let _ = st.successor();
        }
        e.is_some() || st.is_some()
    });
}

#[test]
fn article_leads() {
    let long = "First sentence here. Second one follows! A third? ".repeat(40);
    fuzz_text(
        "module: article lead cut",
        &["Short title. Body text.", &long, "no sentence end at all just words", "Ünïcödé. Ελληνικά. 日本語。"],
        |s| {
            for max in [0, 1, 5, 64, 300] {
                let cut = lead::lead(s, max);
                assert!(s.starts_with(cut), "the lead is a prefix of the text");
                assert!(cut.len() <= max || s.len() <= max, "the lead keeps to its budget");
            }
            true
        },
    );
}
