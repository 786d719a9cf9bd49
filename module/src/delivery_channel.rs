//! Live delivery announcements for gateways. After each fan-out slice (on a primary, and on a
//! replica applying AGENT.DELIVER) one PUBLISH on the `delivery-channel` names the document and
//! every (user key, feed entry id) the slice delivered to. A gateway serving thousands of browsers
//! then follows every feed from one subscriber connection, with no read per user.
//!
//! Message: netstrings (`<decimal length>:<bytes>,`), first the format tag
//! `agentic-deliveries/1`, then the topic, the document key, then pairs of user key and entry
//! id. Netstrings, because keys may hold any byte but NUL, and every language parses them in a
//! few lines. Pub/Sub is at-most-once: a subscriber that reconnects re-reads feeds with
//! `AGENT.FEED ... AFTER id`.

use valkey_module::{Context, ContextFlags};

use crate::feed::EntryId;
use crate::{configs, ffi, metrics};

pub const FORMAT_TAG: &[u8] = b"agentic-deliveries/1";

/// Decimal digits of `v`, without allocating (this runs once per delivery on the event loop).
fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn digits(v: u64) -> usize {
    v.checked_ilog10().map_or(1, |d| d as usize + 1)
}

fn netstring(out: &mut Vec<u8>, bytes: &[u8]) {
    push_u64(out, bytes.len() as u64);
    out.push(b':');
    out.extend_from_slice(bytes);
    out.push(b',');
}

pub fn encode(topic: &[u8], doc_key: &[u8], deliveries: &[(&[u8], EntryId)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + topic.len() + doc_key.len() + deliveries.len() * 40);
    netstring(&mut out, FORMAT_TAG);
    netstring(&mut out, topic);
    netstring(&mut out, doc_key);
    for (user, entry) in deliveries {
        netstring(&mut out, user);
        // The entry id `<ms>-<seq>` as a netstring, written in place.
        push_u64(&mut out, (digits(entry.ms) + 1 + digits(entry.seq)) as u64);
        out.push(b':');
        push_u64(&mut out, entry.ms);
        out.push(b'-');
        push_u64(&mut out, entry.seq);
        out.push(b',');
    }
    out
}

/// Publishes one slice's deliveries, unless the channel is disabled (empty) or the server is
/// loading its data (nobody can be subscribed yet, and replayed AOF deliveries are not news).
pub fn publish(ctx: &Context, topic: &[u8], doc_key: &[u8], deliveries: &[(&[u8], EntryId)]) {
    if deliveries.is_empty() || ctx.get_flags().contains(ContextFlags::LOADING) {
        return;
    }
    let Some(channel) = configs::delivery_channel() else { return };
    let message = encode(topic, doc_key, deliveries);
    metrics::DELIVERY_MESSAGES.incr();
    metrics::DELIVERY_MESSAGE_BYTES.add(message.len() as u64);
    ffi::publish(ctx, channel.as_bytes(), &message);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netstrings_carry_any_bytes() {
        let user: &[u8] = b"user:{a,b:1}\n";
        let msg = encode(b"sports", b"doc:{7}", &[(user, EntryId { ms: 1700, seq: 2 }), (b"u2", EntryId { ms: 1700, seq: 0 })]);
        let expected: &[u8] = b"20:agentic-deliveries/1,6:sports,7:doc:{7},13:user:{a,b:1}\n,6:1700-2,2:u2,6:1700-0,";
        assert_eq!(msg, expected);
        let edge = encode(b"t", b"d", &[(b"u", EntryId { ms: 0, seq: 10 }), (b"u", EntryId { ms: u64::MAX, seq: 9 })]);
        assert_eq!(edge, format!("20:agentic-deliveries/1,1:t,1:d,1:u,4:0-10,1:u,22:{}-9,", u64::MAX).into_bytes());
    }
}
