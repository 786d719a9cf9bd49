//! Argument checks shared by the commands. Everything is validated before the first write.

use valkey_module::{ValkeyError, ValkeyString};

use crate::configs;

/// Longest key name (user, doc or stream key) the module accepts.
pub const MAX_KEY_BYTES: usize = 1024;
pub const MAX_TOPIC_BYTES: usize = 64;
pub const MAX_TOPICS_PER_USER: usize = 256;

pub fn err(msg: impl Into<String>) -> ValkeyError {
    ValkeyError::String(msg.into())
}

pub fn integer(arg: &ValkeyString, what: &str, min: i64, max: i64) -> Result<i64, ValkeyError> {
    let s = std::str::from_utf8(arg.as_slice()).map_err(|_| err(format!("ERR {what} must be an integer")))?;
    let v: i64 = s.parse().map_err(|_| err(format!("ERR {what} must be an integer")))?;
    if v < min || v > max {
        return Err(err(format!("ERR {what} must be between {min} and {max}")));
    }
    Ok(v)
}

pub fn is_topic(b: &[u8]) -> bool {
    !b.is_empty()
        && b.len() <= MAX_TOPIC_BYTES
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
}

/// Topic slugs: 1-64 bytes of `a-z 0-9 - _`, starting with a letter or digit.
pub fn topic(arg: &ValkeyString) -> Result<&[u8], ValkeyError> {
    let b = arg.as_slice();
    if !is_topic(b) {
        return Err(err(format!(
            "ERR invalid topic '{}': use 1-{MAX_TOPIC_BYTES} characters of a-z, 0-9, '-' and '_', starting with a letter or digit",
            printable(b)
        )));
    }
    Ok(b)
}

/// Key names: non-empty, bounded, valid UTF-8 without NUL bytes.
pub fn key<'a>(arg: &'a ValkeyString, what: &str) -> Result<&'a [u8], ValkeyError> {
    let b = arg.as_slice();
    if b.is_empty() {
        return Err(err(format!("ERR {what} must not be empty")));
    }
    if b.len() > MAX_KEY_BYTES {
        return Err(err(format!("ERR {what} is longer than {MAX_KEY_BYTES} bytes")));
    }
    text(b, what)?;
    Ok(b)
}

/// Document bodies: non-empty, at most `max-doc-bytes`, valid UTF-8 without NUL bytes.
pub fn payload(arg: &ValkeyString) -> Result<&[u8], ValkeyError> {
    let b = arg.as_slice();
    let max = configs::max_doc_bytes();
    if b.is_empty() {
        return Err(err("ERR payload must not be empty"));
    }
    if b.len() > max {
        return Err(err(format!("ERR payload is {} bytes, over agentic.max-doc-bytes ({max})", b.len())));
    }
    text(b, "payload")?;
    Ok(b)
}

fn text(b: &[u8], what: &str) -> Result<(), ValkeyError> {
    if b.contains(&0) {
        return Err(err(format!("ERR {what} must not contain NUL bytes")));
    }
    if std::str::from_utf8(b).is_err() {
        return Err(err(format!("ERR {what} must be valid UTF-8")));
    }
    Ok(())
}

/// Echo of user input inside an error: ASCII only (valkey-module turns every char of an error
/// into one byte, so a non-ASCII char could become a NUL and abort the server), 80 bytes at most.
pub fn printable(b: &[u8]) -> String {
    ascii_prefix(b, 80)
}

/// A message of the module's own (why a model failed to load, with its path) inside an error or
/// INFO: ASCII only like [`printable`], but long enough that the reason survives a long path.
pub fn printable_message(b: &[u8]) -> String {
    ascii_prefix(b, 1000)
}

fn ascii_prefix(b: &[u8], max: usize) -> String {
    b.iter().take(max).map(|&c| if c.is_ascii_graphic() || c == b' ' { c as char } else { '?' }).collect()
}

pub fn keyword(arg: &ValkeyString) -> String {
    String::from_utf8_lossy(arg.as_slice()).to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_are_short_and_messages_keep_their_reason() {
        let long_path = format!("the model in '/tmp/{}' failed to load: model.onnx is not a graph", "x".repeat(120));
        assert_eq!(printable(long_path.as_bytes()).len(), 80);
        assert!(printable_message(long_path.as_bytes()).ends_with("failed to load: model.onnx is not a graph"));
        assert_eq!(printable_message("caf\u{e9}\n".as_bytes()), "caf???");
    }
}
