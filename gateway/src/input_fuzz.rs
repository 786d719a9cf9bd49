//! Fuzz targets for what the gateway reads from outside (issue 13): delivery channel messages
//! (anyone allowed to PUBLISH can send one), stored documents, user ids, topic slugs, entry ids
//! and tokens from URLs. Bounded in time (agentic_tests::fuzz); `make fuzz` runs them longer.
//! The HTTP and WebSocket surface is fuzzed against a running gateway in tests/http_fuzz.rs.

use agentic_tests::fuzz::{fuzz, fuzz_text};

use crate::entry::{frame, DocBody, Item, Mode};
use crate::ids::{EntryId, Slug, UserId};
use crate::{auth, live};

fn netstrings(fields: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        out.extend(format!("{}:", f.len()).as_bytes());
        out.extend(*f);
        out.push(b',');
    }
    out
}

#[test]
fn delivery_channel_messages() {
    let corpus = vec![
        netstrings(&[b"agentic-deliveries/1", b"sports", b"doc:1", b"user:{a}", b"1700000000000-0", b"user:{b}", b"1700000000000-1"]),
        netstrings(&[b"agentic-deliveries/1", b"politics", b"doc:{x}2"]),
        netstrings(&[b"agentic-deliveries/1", b"t", b"d", b"u", b"0-0"]),
        netstrings(&[b"agentic-interests/1", b"user:{a}", b"sports", b"world"]),
    ];
    fuzz("gateway: delivery channel message", &corpus, |b| {
        if let Some((user, topics)) = live::parse_interests(b) {
            // What the router does with it next (no socket is open here, so nothing is kept).
            let users = crate::hub::Registry::default();
            assert!(!users.update_interests(&user, &topics));
            return true;
        }
        let Some(a) = live::parse(b) else { return false };
        // What the router does with it next: ids become JSON, users become keys.
        for (user, id) in &a.deliveries {
            let _ = (String::from_utf8_lossy(user), id.next());
        }
        true
    });
}

#[test]
fn stored_documents() {
    let corpus: Vec<Vec<u8>> = vec![
        br#"{"id":"a1","title":"Rain","text":"Heavy rain.","ingest_ms":1700000000000}"#.to_vec(),
        br#"{"title":"\u00e9t\u00e9","tags":[1,2.5,null,true,{"k":"v"}]}"#.to_vec(),
        b"plain text, not JSON".to_vec(),
        br#"[1,2,3]"#.to_vec(),
    ];
    fuzz("gateway: stored document to JSON", &corpus, |b| {
        let body = std::sync::Arc::new(DocBody::new("sports", "doc:1", Some(b)));
        let text = frame(Mode::Live, false, &[Item { id: EntryId { ms: 1, seq: 2 }, body }]);
        // Whatever the document held, the browser gets valid JSON.
        serde_json::from_str::<serde_json::Value>(&text).expect("a frame is JSON");
        true
    });
}

#[test]
fn ids_from_urls() {
    fuzz_text(
        "gateway: user ids, slugs and entry ids",
        &["alice", "user.name-1_2", "sports", "0-0", "1700000000000-5", "18446744073709551615-18446744073709551615"],
        |s| {
            let user = UserId::parse(s).ok();
            if let Some(u) = &user {
                assert!(u.key().starts_with("user:{") && !u.as_str().contains(['{', '}']), "a user id cannot escape its hash tag");
            }
            let slug = Slug::parse(s).ok();
            if let Some(t) = &slug {
                assert_eq!(t.stream_key(), format!("topic:{s}"));
            }
            let id = EntryId::parse(s);
            if let Some(id) = id {
                let _ = id.next();
            }
            user.is_some() || slug.is_some() || id.is_some()
        },
    );
}

#[test]
fn tokens() {
    let good = auth::mint(b"secret", "alice", 2_000_000_000);
    fuzz_text("gateway: user tokens", &[&good, "v1.1.AAAA.alice", "v1..."], |t| {
        let verdict = auth::verify(b"secret", t, "alice", 1_900_000_000);
        // Only the real token (or one with the same signature over the same fields) passes.
        if verdict.is_ok() {
            assert!(t.starts_with("v1.") && t.ends_with(".alice"), "accepted {t:?}");
        }
        verdict.is_ok()
    });
}
