//! Live delivery announcements for gateways. After each fan-out slice (on a primary, and on a
//! replica applying AGENT.DELIVER) one PUBLISH on the `delivery-channel` names the document and
//! every (user key, feed entry id) the slice delivered to. A gateway serving thousands of browsers
//! then follows every feed from one subscriber connection, with no read per user.
//!
//! Message: netstrings (`<decimal length>:<bytes>,`), first the format tag
//! `agentic-deliveries/1`, then the topic, the document key, then pairs of user key and entry
//! id. A change of a user's interests is announced as `agentic-interests/1`, the user key and
//! every topic the user follows now. Netstrings, because keys may hold any byte but NUL, and
//! every language parses them in a few lines. Pub/Sub is at-most-once: a subscriber that
//! reconnects re-reads feeds with `AGENT.FEED ... AFTER id`.
//!
//! On a cluster each primary announces on its own shard channel instead (see `shard_channel`).

use valkey_module::{Context, ContextFlags};

use crate::feed::EntryId;
use crate::{cluster, configs, ffi, metrics};

pub const FORMAT_TAG: &[u8] = b"agentic-deliveries/1";
/// A user's interests changed (AGENT.SUBSCRIBE, AGENT.UNSUBSCRIBE, AGENT.LOADUSER): the tag, the
/// user key, then every topic the user follows now. A gateway routes shared timeline appends by
/// topic to the sockets of their followers, so it must know when they change.
pub const INTERESTS_TAG: &[u8] = b"agentic-interests/1";

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

pub fn encode_interests<'a>(user: &[u8], topics: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + user.len());
    netstring(&mut out, INTERESTS_TAG);
    netstring(&mut out, user);
    for t in topics {
        netstring(&mut out, t);
    }
    out
}

/// The shard channel a cluster primary announces on: `<channel>{<tag>}`, the tag naming the
/// smallest slot the primary serves (cluster::slot_tag), so SSUBSCRIBE reaches exactly this
/// shard. None while the node serves no slot (it has no users then).
pub fn shard_channel(ctx: &Context, channel: &str) -> Option<String> {
    let slots = cluster::my_slots(ctx, SHARD_CHANNEL_MAX_AGE);
    let &(first, _) = slots.ranges().first()?;
    Some(format!("{channel}{{{}}}", cluster::slot_tag(first)))
}

/// How stale the slot ownership behind the shard channel may be: a gateway re-reads the
/// topology (and resyncs its sockets) when slots move, so a moment of the old name is harmless.
const SHARD_CHANNEL_MAX_AGE: std::time::Duration = std::time::Duration::from_millis(500);

/// Publishes one slice's deliveries, unless the channel is disabled (empty) or the server is
/// loading its data (nobody can be subscribed yet, and replayed AOF deliveries are not news).
///
/// On a cluster the primary publishes once on its shard channel (SPUBLISH semantics: the message
/// reaches this shard's nodes only, replicas included, instead of every node of the cluster), and
/// replicas applying AGENT.DELIVER stay silent, since their primary's message already reached them.
pub fn publish(ctx: &Context, topic: &[u8], doc_key: &[u8], deliveries: &[(&[u8], EntryId)]) {
    if deliveries.is_empty() {
        return;
    }
    send(ctx, || encode(topic, doc_key, deliveries));
}

/// Announces a user's interests after a change, on the same channel and with the same rules as
/// deliveries.
pub fn publish_interests<'a>(ctx: &Context, user: &[u8], topics: impl Iterator<Item = &'a [u8]>) {
    send(ctx, || {
        metrics::DELIVERY_INTEREST_MESSAGES.incr();
        encode_interests(user, topics)
    });
}

fn send(ctx: &Context, message: impl FnOnce() -> Vec<u8>) {
    let flags = ctx.get_flags();
    if flags.contains(ContextFlags::LOADING) {
        return;
    }
    let Some(channel) = configs::delivery_channel() else { return };
    if cluster::enabled() {
        if flags.contains(ContextFlags::SLAVE) {
            return;
        }
        let Some(shard) = shard_channel(ctx, &channel) else {
            metrics::DELIVERY_MESSAGES_UNROUTED.incr();
            return;
        };
        let message = message();
        metrics::DELIVERY_MESSAGES.incr();
        metrics::DELIVERY_MESSAGE_BYTES.add(message.len() as u64);
        ffi::publish_shard(ctx, shard.as_bytes(), &message);
        return;
    }
    let message = message();
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
        let topics: [&[u8]; 2] = [b"sports", b"world"];
        assert_eq!(encode_interests(user, topics.into_iter()), b"19:agentic-interests/1,13:user:{a,b:1}\n,6:sports,5:world,");
        assert_eq!(encode_interests(b"u", std::iter::empty()), b"19:agentic-interests/1,1:u,");
    }
}
