//! One pipeline for the whole cluster.
//!
//! The primary that serves `news_raw`'s slot (the ingest node) reads, classifies and orders
//! articles as on a single server. Instead of writing everything itself it sends each article, in
//! news_raw order, over the cluster bus to every primary (itself included, without the bus):
//!
//! - the node serving the document key's slot stores the document (`SET ... PXAT`, an absolute
//!   expiry the sender computed), the node serving the topic stream's slot appends it with the
//!   news_raw entry id as its stream id (so a second append is recognised), and every primary
//!   delivers it to the subscribers it serves, with the delivery parameters in the message;
//! - each primary applies a session's articles strictly in sequence (a gap gets a NACK naming the
//!   next sequence it can take; the sender goes back to it) and acknowledges an article when its
//!   fan-out finished and its replicas have the effects (or `cluster-ack-wait-ms` passed, counted),
//!   naming the slots it served;
//! - the ingest node XACKs the news_raw entry only when every one of the 16,384 slots is covered
//!   and the document and the stream entry are written. Whatever is not covered after
//!   `cluster-resend-ms` is sent again to the node serving it now (a lost message, a dropped link,
//!   a failover, a moved slot). A receiver that already applied an article applies it again: the
//!   stored document and stream entry are recognised, and every subscriber's seen-filter turns the
//!   repeated delivery into a counted duplicate, so nobody gets it twice.
//!
//! A receiver without state for a session (restarted, or a replica just promoted) starts at the
//! sender's window start, the oldest article not yet acknowledged everywhere. A new ingest node
//! (failover) starts a new session and re-reads the pending entries of news_raw first.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use valkey_module::{CallOptionsBuilder, CallReply, CallResult, Context};

use crate::cluster;
use crate::cluster_msg::{self, Ack, Article, Nack};
use crate::feed::DocRef;
use crate::seen::{DocHash, SeenParams};
use crate::topic_stream;
use crate::user::DeliverySpec;
use crate::{configs, fanout, ffi, index, metrics};

/// How old this node's view of its own slots may be when it acknowledges.
const MY_SLOTS_AGE: Duration = Duration::from_millis(100);

fn me() -> Vec<u8> {
    ffi::my_cluster_id().map(String::into_bytes).unwrap_or_default()
}

struct Received {
    sender: Vec<u8>,
    kind: u8,
    bytes: Vec<u8>,
}

static INBOX: Mutex<Vec<Received>> = Mutex::new(Vec::new());

/// A bus message arrived (called from the bus handler; handled on the next pipeline tick).
pub fn received(sender: Vec<u8>, kind: u8, bytes: Vec<u8>) {
    INBOX.lock().unwrap_or_else(|p| p.into_inner()).push(Received { sender, kind, bytes });
}

fn lock<T>(m: &'static Mutex<T>) -> std::sync::MutexGuard<'static, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

mod receive;
mod send;

use receive::*;
pub use receive::{forget_sessions, user_arrived};
use send::*;
pub use send::{outstanding, send_article, stop_sending, Outgoing};

/// Sends one bus message to one node (`to`), or to every node (`to` empty), counted.
pub(crate) fn send(ctx: &Context, to: &[u8], kind: u8, bytes: &[u8]) {
    let sent =
        if to.is_empty() { ffi::broadcast_cluster_message(ctx, kind, bytes) } else { ffi::send_cluster_message(ctx, to, kind, bytes) };
    if sent {
        metrics::CLUSTER_BUS_MESSAGES.incr();
        metrics::CLUSTER_BUS_BYTES.add(bytes.len() as u64);
    } else {
        metrics::CLUSTER_BUS_SEND_FAILURES.incr();
    }
}

// ---------------------------------------------------------------------------------------------

/// One tick on a primary: handles received messages, acknowledges finished fan-outs and, on the
/// ingest node, sends overdue articles again. Returns true while anything is in flight.
pub fn tick(ctx: &Context) -> bool {
    acknowledge_completed(ctx);
    release_held_acks(ctx);
    catch_up_arrivals(ctx);
    let inbox: Vec<Received> = std::mem::take(&mut *lock(&INBOX));
    for m in inbox {
        let outcome = match m.kind {
            cluster_msg::ARTICLE => Article::decode(&m.bytes).map(|a| handle_article(ctx, &m.sender, a)),
            cluster_msg::ACK => Ack::decode(&m.bytes).map(|a| handle_ack(ctx, &m.sender, a)),
            cluster_msg::NACK => Nack::decode(&m.bytes).map(|n| handle_nack(ctx, &m.sender, n)),
            other => Err(format!("unknown message type {other}")),
        };
        if let Err(why) = outcome {
            metrics::CLUSTER_MESSAGES_MALFORMED.incr();
            ffi::log_warning(&format!("agentic: ignored a cluster message from {}: {why}", String::from_utf8_lossy(&m.sender)));
        }
    }
    if outstanding() > 0 {
        resend_overdue(ctx);
    }
    publish_waiting_gauges();
    receiving() || outstanding() > 0
}
