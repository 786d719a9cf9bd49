//! Feed items as the browser receives them. The JSON of a document (topic, key, article) is
//! built once and shared by every socket it goes to; per socket only the entry id is written.

use std::sync::Arc;

use serde_json::Value;

use crate::ids::EntryId;

/// Everything about a delivered document except the feed entry id: the JSON text that follows
/// `{"id":"..."` in an entry, and when the article entered `news_raw` (for latency).
#[derive(Debug)]
pub struct DocBody {
    tail: String,
    pub ingest_ms: Option<u64>,
}

impl DocBody {
    /// `payload`: the stored document (None when it expired). A JSON object is passed through;
    /// anything else becomes `{"text": "<body>"}`.
    pub fn new(topic: &str, doc_key: &str, payload: Option<&[u8]>) -> DocBody {
        let (article, ingest_ms) = match payload {
            None => (Value::Null, None),
            Some(bytes) => match serde_json::from_slice::<Value>(bytes) {
                Ok(Value::Object(map)) => {
                    let ingest_ms = map.get("ingest_ms").and_then(Value::as_u64);
                    (Value::Object(map), ingest_ms)
                }
                _ => (serde_json::json!({ "text": String::from_utf8_lossy(bytes) }), None),
            },
        };
        let mut tail = String::with_capacity(64 + payload.map_or(0, |p| p.len()));
        tail.push_str(",\"topic\":");
        tail.push_str(&Value::from(topic).to_string());
        tail.push_str(",\"doc\":");
        tail.push_str(&Value::from(doc_key).to_string());
        tail.push_str(",\"article\":");
        tail.push_str(&article.to_string());
        tail.push('}');
        DocBody { tail, ingest_ms }
    }
}

/// One feed entry: an id in one feed, pointing at a shared document body.
#[derive(Clone, Debug)]
pub struct Item {
    pub id: EntryId,
    pub body: Arc<DocBody>,
}

/// Which path produced a frame, for the client and the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Backlog,
    Resume,
    Live,
    Resync,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Backlog => "backlog",
            Mode::Resume => "resume",
            Mode::Live => "live",
            Mode::Resync => "resync",
        }
    }
}

/// `{"type":"entries","mode":...,"truncated":...,"entries":[...]}` with entries in the given order.
pub fn frame<'a>(mode: Mode, truncated: bool, items: impl IntoIterator<Item = &'a Item>) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("{\"type\":\"entries\",\"mode\":\"");
    out.push_str(mode.as_str());
    out.push_str("\",\"truncated\":");
    out.push_str(if truncated { "true" } else { "false" });
    out.push_str(",\"entries\":[");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        entry_json(&mut out, item);
    }
    out.push_str("]}");
    out
}

pub fn entry_json(out: &mut String, item: &Item) {
    use std::fmt::Write;
    let _ = write!(out, "{{\"id\":\"{}\"", item.id);
    out.push_str(&item.body.tail);
}

pub fn error_frame(message: &str) -> String {
    serde_json::json!({ "type": "error", "message": message }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, payload: Option<&[u8]>) -> Item {
        Item { id: EntryId::parse(id).unwrap(), body: Arc::new(DocBody::new("sports", "doc:{\"1\"}", payload)) }
    }

    #[test]
    fn frames_are_valid_json() {
        let a = item("5-0", Some(br#"{"title":"t","ingest_ms":42}"#));
        let b = item("6-1", Some(b"plain \"text\""));
        let c = item("7-0", None);
        assert_eq!(a.body.ingest_ms, Some(42));
        let v: Value = serde_json::from_str(&frame(Mode::Live, false, [&a, &b, &c])).unwrap();
        assert_eq!(v["mode"], "live");
        assert_eq!(v["entries"][0]["id"], "5-0");
        assert_eq!(v["entries"][0]["doc"], "doc:{\"1\"}");
        assert_eq!(v["entries"][0]["article"]["title"], "t");
        assert_eq!(v["entries"][1]["article"]["text"], "plain \"text\"");
        assert!(v["entries"][2]["article"].is_null());
    }
}
