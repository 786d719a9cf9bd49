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

// ---------------------------------------------------------------------------------------------
// Receiving side: every primary.

struct Session {
    /// Next sequence this node applies; 0 until the first article of the session.
    expected: u64,
    /// Articles applied (or being applied), kept while the sender may still ask for them.
    applied: BTreeMap<u64, bool>,
}

static SESSIONS: Mutex<BTreeMap<u64, Session>> = Mutex::new(BTreeMap::new());

/// Fan-outs that finished: (sender, session, seq, doc stored, stream appended, delivered).
struct Completion {
    sender: Vec<u8>,
    session: u64,
    seq: u64,
    doc_stored: bool,
    stream_appended: bool,
    delivered: u64,
}

static COMPLETED: Mutex<Vec<Completion>> = Mutex::new(Vec::new());

/// Articles this node applied that a sender may still send again (from its window start on): when
/// a user key arrives from another node (resharding) or an imported slot becomes this node's, its
/// users get the ones they follow and have not seen, in order, before anything newer.
struct Logged {
    session: u64,
    seq: u64,
    topic: Vec<u8>,
    spec: DeliverySpec,
}

static LOG: Mutex<VecDeque<Logged>> = Mutex::new(VecDeque::new());
/// Bound on the log; an entry pushed out while its sender still waits is counted.
const LOG_MAX: usize = 100_000;

/// User keys that arrived here (RESTORE from another node, or a completed import), waiting for
/// their catch-up on the next tick.
static ARRIVED: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// A user key arrived on this node; it catches up on the next tick, before newer articles.
pub fn user_arrived(key: &[u8]) {
    lock(&ARRIVED).push(key.to_vec());
}

/// Acknowledgements waiting for this node's replicas: (replication offset, since, target, ack).
static HELD_ACKS: Mutex<VecDeque<(i64, Instant, Vec<u8>, Ack)>> = Mutex::new(VecDeque::new());

enum Decision {
    Apply { again: bool },
    Nack(u64),
    Ignore,
}

fn decide(a: &Article) -> Decision {
    let mut sessions = lock(&SESSIONS);
    let s = sessions.entry(a.session).or_insert_with(|| Session { expected: 0, applied: BTreeMap::new() });
    if s.expected == 0 {
        if a.seq != a.window_start {
            return Decision::Nack(0);
        }
        s.expected = a.seq;
    }
    // What the sender no longer waits for is forgotten.
    while s.applied.first_key_value().is_some_and(|(&k, _)| k < a.window_start) {
        s.applied.pop_first();
    }
    lock(&LOG).retain(|l| l.session != a.session || l.seq >= a.window_start);
    if a.seq > s.expected {
        return Decision::Nack(s.expected);
    }
    if a.seq < s.expected {
        return match s.applied.get(&a.seq) {
            Some(false) => Decision::Ignore, // still fanning out: its ack comes when it ends
            _ => {
                s.applied.insert(a.seq, false);
                Decision::Apply { again: true }
            }
        };
    }
    s.expected += 1;
    s.applied.insert(a.seq, false);
    Decision::Apply { again: false }
}

fn handle_article(ctx: &Context, sender: &[u8], a: Article) {
    if a.store_only {
        // Writes only (idempotent); the acknowledgement claims no slots.
        let payload = a.payload.clone().unwrap_or_default();
        let ack = Ack {
            session: a.session,
            seq: a.seq,
            doc_stored: store_document(ctx, &a, &payload),
            stream_appended: append_to_stream(ctx, &a, &payload),
            delivered: 0,
            ranges: Vec::new(),
        };
        if sender == me() {
            handle_ack(ctx, sender, ack);
        } else {
            metrics::CLUSTER_ACKS_SENT.incr();
            send(ctx, sender, cluster_msg::ACK, &ack.encode());
        }
        return;
    }
    match decide(&a) {
        Decision::Nack(expected) => {
            metrics::CLUSTER_NACKS_SENT.incr();
            send(ctx, sender, cluster_msg::NACK, &Nack { session: a.session, expected }.encode());
        }
        Decision::Ignore => {}
        Decision::Apply { again } => {
            if again {
                metrics::CLUSTER_ARTICLES_REAPPLIED.incr();
            }
            apply(ctx, sender, a, !again)
        }
    }
}

/// Stores the document and the stream entry if this node serves their slots (the server's own
/// check on calls from a module decides: other nodes' keys are refused), then delivers to the
/// subscribers this node serves; the completion is acknowledged later.
fn apply(ctx: &Context, sender: &[u8], a: Article, first_time: bool) {
    metrics::CLUSTER_ARTICLES_APPLIED.incr();
    let (mut doc_stored, mut stream_appended) = (false, false);
    if let Some(payload) = &a.payload {
        doc_stored = store_document(ctx, &a, payload);
        stream_appended = append_to_stream(ctx, &a, payload);
    }
    let spec = DeliverySpec {
        doc: Arc::new(DocRef { topic: a.topic.clone().into(), key: a.doc_key.clone().into() }),
        hash: DocHash::of(&a.doc_key),
        ts_ms: a.ts_ms,
        feed_len: a.feed_len.clamp(configs::FEED_LEN_MIN as u64, configs::FEED_LEN_MAX as u64) as usize,
        seen: SeenParams { ttl_ms: a.seen_ttl_ms, fp_ppm: a.seen_fp_ppm, capacity: a.seen_capacity },
    };
    if first_time {
        let mut log = lock(&LOG);
        if log.len() >= LOG_MAX {
            log.pop_front();
            metrics::CLUSTER_CATCHUP_LOG_OVERFLOW.incr();
        }
        log.push_back(Logged { session: a.session, seq: a.seq, topic: a.topic.clone(), spec: spec.clone() });
    }
    let (subscribers, generation) = index::with(|ix| ix.snapshot(&a.topic));
    let job = fanout::Job::subscribers(spec, subscribers, generation);
    let (sender, session, seq) = (sender.to_vec(), a.session, a.seq);
    fanout::start_internal(
        ctx,
        job,
        Box::new(move |_ctx: &Context, delivered: u64, _duplicates: u64| {
            lock(&COMPLETED).push(Completion { sender, session, seq, doc_stored, stream_appended, delivered });
        }),
    );
}

fn write_opts() -> valkey_module::CallOptions {
    CallOptionsBuilder::new().replicate().errors_as_replies().build()
}

fn store_document(ctx: &Context, a: &Article, payload: &[u8]) -> bool {
    let at = a.doc_expire_at_ms.to_string();
    let args: Vec<&[u8]> =
        if a.doc_expire_at_ms > 0 { vec![&a.doc_key, payload, b"PXAT", at.as_bytes()] } else { vec![&a.doc_key, payload] };
    match ctx.call_ext::<_, CallResult>("SET", &write_opts(), &args[..]) {
        Ok(_) => true,
        Err(e) => {
            not_here_or_logged(&e.to_string(), "storing", &a.doc_key);
            false
        }
    }
}

/// Whether an XRANGE entry `[id, [field, value, ...]]` has `doc` = `doc_key`.
fn entry_names_doc(item: &CallReply, doc_key: &[u8]) -> bool {
    let CallReply::Array(entry) = item else { return false };
    let Some(Ok(CallReply::Array(fields))) = entry.get(1) else { return false };
    let flat: Vec<Vec<u8>> = fields.iter().flatten().map(|f| crate::topic_stream::reply_bytes(&f)).collect();
    flat.chunks(2).any(|kv| kv.len() == 2 && kv[0] == b"doc" && kv[1] == doc_key)
}

/// A key of a slot this node does not serve is the normal case; anything else is a failure.
fn not_here_or_logged(error: &str, what: &str, key: &[u8]) {
    if !error.contains("non local key") {
        metrics::PIPELINE_FAILURES.incr();
        ffi::log_warning(&format!("agentic: {what} {} failed: {error}", String::from_utf8_lossy(key)));
    }
}

/// Appends with the news_raw entry id, so an article sent again is recognised by its id; an id
/// below the stream's last one (another writer went first) gets a new id, counted.
fn append_to_stream(ctx: &Context, a: &Article, payload: &[u8]) -> bool {
    let fields: [&[u8]; 6] = [&a.stream_key, &a.entry_id, b"doc", &a.doc_key, b"data", payload];
    match ctx.call_ext::<_, CallResult>("XADD", &write_opts(), &fields[..]) {
        Ok(_) => metrics::STREAM_APPENDS.incr(),
        Err(e) if e.to_string().contains("equal or smaller") => {
            let read = CallOptionsBuilder::new().errors_as_replies().build();
            // Appended before under its own id, or under a new one by an earlier pass through
            // here (its id is then above this one): either way an entry naming this document.
            let exists = match ctx.call_ext::<_, CallResult>("XRANGE", &read, &[&a.stream_key[..], &a.entry_id, b"+", b"COUNT", b"10000"]) {
                Ok(CallReply::Array(items)) => items.iter().flatten().any(|item| entry_names_doc(&item, &a.doc_key)),
                _ => false,
            };
            if !exists {
                let any: [&[u8]; 6] = [&a.stream_key, b"*", b"doc", &a.doc_key, b"data", payload];
                if ctx.call_ext::<_, CallResult>("XADD", &write_opts(), &any[..]).is_err() {
                    return false;
                }
                metrics::STREAM_APPENDS.incr();
                metrics::CLUSTER_STREAM_REORDERED.incr();
            }
        }
        Err(e) => {
            not_here_or_logged(&e.to_string(), "appending to", &a.stream_key);
            return false;
        }
    }
    if let Err(e) = topic_stream::trim(ctx, &a.stream_key, configs::topic_maxlen(), configs::topic_hard_maxlen()) {
        ffi::log_warning(&format!("agentic: trimming {} failed: {e:?}", String::from_utf8_lossy(&a.stream_key)));
    }
    true
}

/// Turns finished fan-outs into acknowledgements: at once to this node's own sender, after this
/// node's replicas caught up for others.
fn acknowledge_completed(ctx: &Context) {
    let done: Vec<Completion> = std::mem::take(&mut *lock(&COMPLETED));
    if done.is_empty() {
        return;
    }
    let ranges = cluster::my_slots(ctx, MY_SLOTS_AGE).ranges().to_vec();
    let me = me();
    // Read in a later tick than the fan-out ran in, so the offset covers its replicated effects;
    // only for acknowledgements that go to another node (INFO is not free).
    let offset = if done.iter().any(|c| c.sender != me) { ffi::replication_offsets(ctx).0 } else { 0 };
    for c in done {
        if let Some(s) = lock(&SESSIONS).get_mut(&c.session) {
            s.applied.insert(c.seq, true);
        }
        let ack = Ack {
            session: c.session,
            seq: c.seq,
            doc_stored: c.doc_stored,
            stream_appended: c.stream_appended,
            delivered: c.delivered,
            ranges: ranges.clone(),
        };
        if c.sender == me {
            handle_ack(ctx, &me, ack);
        } else {
            lock(&HELD_ACKS).push_back((offset, Instant::now(), c.sender, ack));
        }
    }
}

fn release_held_acks(ctx: &Context) {
    if lock(&HELD_ACKS).is_empty() {
        return;
    }
    let (_, replicas_at) = ffi::replication_offsets(ctx);
    let wait = Duration::from_millis(configs::cluster_ack_wait_ms());
    loop {
        let next = {
            let mut held = lock(&HELD_ACKS);
            match held.front() {
                Some((offset, since, _, _)) if replicas_at.is_none_or(|r| r >= *offset) || since.elapsed() >= wait => {
                    let confirmed = replicas_at.is_none_or(|r| r >= *offset);
                    held.pop_front().map(|(_, _, to, ack)| (to, ack, confirmed))
                }
                _ => None,
            }
        };
        let Some((to, ack, confirmed)) = next else { break };
        if !confirmed {
            metrics::CLUSTER_ACKS_UNCONFIRMED.incr();
        }
        metrics::CLUSTER_ACKS_SENT.incr();
        send(ctx, &to, cluster_msg::ACK, &ack.encode());
    }
}

fn send(ctx: &Context, to: &[u8], kind: u8, bytes: &[u8]) {
    if ffi::send_cluster_message(ctx, to, kind, bytes) {
        metrics::CLUSTER_BUS_MESSAGES.incr();
        metrics::CLUSTER_BUS_BYTES.add(bytes.len() as u64);
    } else {
        metrics::CLUSTER_BUS_SEND_FAILURES.incr();
    }
}

// ---------------------------------------------------------------------------------------------
// Sending side: the ingest node.

struct Outstanding {
    entry_id: String,
    ingest_ms: u64,
    article: Article,
    covered: Vec<u64>,
    covered_slots: u32,
    doc_stored: bool,
    stream_appended: bool,
    delivered: u64,
    sent_at: Instant,
    /// Nodes that acknowledged it: not sent it again in the first re-sends where a missing
    /// slot's node is unknown (later ones go to everyone: slots may have moved to them since).
    acked_by: Vec<Arc<[u8]>>,
    resends: u32,
}

impl Outstanding {
    fn cover(&mut self, ranges: &[(u16, u16)]) {
        for &(a, b) in ranges {
            for slot in a..=b {
                let (w, bit) = (slot as usize / 64, 1u64 << (slot % 64));
                if self.covered[w] & bit == 0 {
                    self.covered[w] |= bit;
                    self.covered_slots += 1;
                }
            }
        }
    }
    fn is_covered(&self, slot: u16) -> bool {
        self.covered[slot as usize / 64] & (1u64 << (slot % 64)) != 0
    }
    fn complete(&self) -> bool {
        self.covered_slots == cluster::SLOTS as u32 && self.doc_stored && self.stream_appended
    }
}

struct Sender {
    session: u64,
    next_seq: u64,
    window: BTreeMap<u64, Outstanding>,
    /// The node each slot's acknowledgements came from last: where a document, a stream entry
    /// or a missing slot is sent (everyone, while unknown).
    owners: Vec<Option<Arc<[u8]>>>,
    /// The slot ranges each node named in its latest acknowledgement.
    node_ranges: Vec<(Arc<[u8]>, Vec<(u16, u16)>)>,
}

static SENDER: Mutex<Option<Sender>> = Mutex::new(None);
static SESSION_SALT: AtomicU64 = AtomicU64::new(0);

fn new_session() -> u64 {
    use std::hash::BuildHasher;
    let salt = SESSION_SALT.fetch_add(1, Ordering::Relaxed);
    std::collections::hash_map::RandomState::new().hash_one((salt, ffi::now_ms())) | 1
}

/// Forgets the sending state (this node stopped being the ingest primary); a later start opens
/// a new session, and the pending entries of news_raw are read again.
pub fn stop_sending() {
    *lock(&SENDER) = None;
}

/// Articles sent and not yet acknowledged everywhere.
pub fn outstanding() -> usize {
    lock(&SENDER).as_ref().map_or(0, |s| s.window.len())
}

pub struct Outgoing {
    pub entry_id: String,
    pub ingest_ms: u64,
    pub topic: String,
    pub doc_key: String,
    pub stream_key: String,
    pub payload: String,
}

/// Sends an article to every primary (the next in news_raw order).
pub fn send_article(ctx: &Context, o: Outgoing) {
    let seen = configs::seen_params();
    let doc_ttl = configs::doc_ttl_ms();
    let seq = {
        let mut guard = lock(&SENDER);
        let s = guard.get_or_insert_with(|| Sender {
            session: new_session(),
            next_seq: 1,
            window: BTreeMap::new(),
            owners: vec![None; cluster::SLOTS as usize],
            node_ranges: Vec::new(),
        });
        let seq = s.next_seq;
        s.next_seq += 1;
        let now = ffi::now_ms();
        let article = Article {
            session: s.session,
            seq,
            window_start: seq,
            entry_id: o.entry_id.clone().into_bytes(),
            topic: o.topic.into_bytes(),
            doc_key: o.doc_key.into_bytes(),
            stream_key: o.stream_key.into_bytes(),
            ts_ms: now,
            feed_len: configs::feed_len() as u64,
            seen_ttl_ms: seen.ttl_ms,
            seen_fp_ppm: seen.fp_ppm,
            seen_capacity: seen.capacity,
            doc_expire_at_ms: if doc_ttl > 0 { now + doc_ttl } else { 0 },
            payload: Some(o.payload.into_bytes()),
            store_only: false,
        };
        s.window.insert(
            seq,
            Outstanding {
                entry_id: o.entry_id,
                ingest_ms: o.ingest_ms,
                article,
                covered: vec![0; cluster::SLOTS as usize / 64],
                covered_slots: 0,
                doc_stored: false,
                stream_appended: false,
                delivered: 0,
                sent_at: Instant::now(),
                acked_by: Vec::new(),
                resends: 0,
            },
        );
        seq
    };
    metrics::CLUSTER_ARTICLES_SENT.incr();
    let everyone = ffi::cluster_primaries(ctx);
    dispatch(ctx, seq, &everyone);
}

/// Sends article `seq` to these nodes: with the document to the nodes serving its key's or its
/// stream's slot (to all while that is not known yet), without it to the others; to this node
/// directly.
fn dispatch(ctx: &Context, seq: u64, targets: &[Vec<u8>]) {
    let (article, doc_owner, stream_owner) = {
        let mut guard = lock(&SENDER);
        let Some(s) = guard.as_mut() else { return };
        let window_start = s.window.first_key_value().map_or(seq, |(&k, _)| k);
        let doc_owner = s.window.get(&seq).and_then(|o| s.owners[cluster::key_slot(&o.article.doc_key) as usize].clone());
        let stream_owner = s.window.get(&seq).and_then(|o| s.owners[cluster::key_slot(&o.article.stream_key) as usize].clone());
        let Some(out) = s.window.get_mut(&seq) else { return };
        out.sent_at = Instant::now();
        out.article.window_start = window_start;
        (out.article.clone(), doc_owner, stream_owner)
    };
    let me = me();
    for target in targets {
        let wanted = |owner: &Option<Arc<[u8]>>| owner.as_ref().is_none_or(|o| **o == target[..]);
        let message = if wanted(&doc_owner) || wanted(&stream_owner) { article.clone() } else { article.without_payload() };
        if *target == me {
            handle_article(ctx, &me, message);
        } else {
            send(ctx, target, cluster_msg::ARTICLE, &message.encode());
        }
    }
}

fn handle_ack(ctx: &Context, from: &[u8], ack: Ack) {
    let finished = {
        let mut guard = lock(&SENDER);
        let Some(s) = guard.as_mut() else { return };
        if s.session != ack.session {
            return;
        }
        let known = s.node_ranges.iter().position(|(n, _)| n[..] == *from);
        let node: Arc<[u8]> = known.map_or_else(|| Arc::from(from), |i| s.node_ranges[i].0.clone());
        if !ack.ranges.is_empty() && known.is_none_or(|i| s.node_ranges[i].1 != ack.ranges) {
            // The slots this node served before and does not now moved away: unknown until
            // their new node answers.
            if let Some(i) = known {
                for &(a, b) in &s.node_ranges[i].1 {
                    for slot in a..=b {
                        if s.owners[slot as usize].as_ref().is_some_and(|o| o[..] == node[..]) {
                            s.owners[slot as usize] = None;
                        }
                    }
                }
                s.node_ranges[i].1 = ack.ranges.clone();
            } else {
                s.node_ranges.push((node.clone(), ack.ranges.clone()));
            }
            for &(a, b) in &ack.ranges {
                for slot in a..=b {
                    s.owners[slot as usize] = Some(node.clone());
                }
            }
        }
        let Some(out) = s.window.get_mut(&ack.seq) else { return };
        // A store-only acknowledgement (no slots) does not count as the node having applied it.
        if !ack.ranges.is_empty() && !out.acked_by.iter().any(|n| n[..] == node[..]) {
            out.acked_by.push(node.clone());
        }
        out.cover(&ack.ranges);
        out.doc_stored |= ack.doc_stored;
        out.stream_appended |= ack.stream_appended;
        out.delivered += ack.delivered;
        if !out.complete() {
            return;
        }
        s.window.remove(&ack.seq)
    };
    if let Some(out) = finished {
        crate::pipeline::article_done(ctx, &out.entry_id, out.ingest_ms, out.delivered);
    }
}

fn handle_nack(ctx: &Context, from: &[u8], nack: Nack) {
    let seqs: Vec<u64> = {
        let guard = lock(&SENDER);
        let Some(s) = guard.as_ref() else { return };
        if s.session != nack.session {
            return;
        }
        s.window.keys().copied().filter(|&k| k >= nack.expected).collect()
    };
    metrics::CLUSTER_RESENDS.add(seqs.len() as u64);
    let target = [from.to_vec()];
    for seq in seqs {
        dispatch(ctx, seq, &target);
    }
}

/// Sends again what is not covered after `cluster-resend-ms`, oldest first, to the nodes that
/// served the missing slots, document or stream last (to every primary that has not acknowledged
/// it where none is known).
fn resend_overdue(ctx: &Context) {
    let after = Duration::from_millis(configs::cluster_resend_ms());
    let everyone = ffi::cluster_primaries(ctx);
    let overdue: Vec<(u64, Vec<Vec<u8>>)> = {
        let guard = lock(&SENDER);
        let Some(s) = guard.as_ref() else { return };
        s.window
            .iter()
            .filter(|(_, o)| o.sent_at.elapsed() >= after)
            .map(|(&seq, o)| {
                let mut targets: Vec<Vec<u8>> = Vec::new();
                let mut unknown = false;
                let mut want = |slot: u16| match &s.owners[slot as usize] {
                    Some(n) if everyone.iter().any(|p| p[..] == n[..]) => {
                        if !targets.iter().any(|t| t[..] == n[..]) {
                            targets.push(n.to_vec());
                        }
                    }
                    _ => unknown = true,
                };
                (0..cluster::SLOTS).filter(|&slot| !o.is_covered(slot)).for_each(&mut want);
                if !o.doc_stored {
                    want(cluster::key_slot(&o.article.doc_key));
                }
                if !o.stream_appended {
                    want(cluster::key_slot(&o.article.stream_key));
                }
                // Still missing after two rounds: the node named for a slot may have lost it (a
                // failover, a restart as a replica), so it is treated as unknown.
                if unknown || o.resends >= 2 {
                    // Where a missing slot's node is not known: first everyone who has not
                    // answered, then everyone (a node that answered may have gained the slot).
                    for p in &everyone {
                        let answered = o.acked_by.iter().any(|a| a[..] == p[..]);
                        if (o.resends >= 2 || !answered) && !targets.contains(p) {
                            targets.push(p.clone());
                        }
                    }
                }
                (seq, targets)
            })
            .collect()
    };
    for (seq, targets) in overdue {
        metrics::CLUSTER_RESENDS.incr();
        if let Some(o) = lock(&SENDER).as_mut().and_then(|s| s.window.get_mut(&seq)) {
            o.resends += 1;
        }
        dispatch(ctx, seq, &targets);
        resend_store_only(ctx, seq, &everyone);
    }
}

/// A document or stream entry still missing may be the work of a node the sender knows under an
/// old name (a failover moved its slots): every primary gets the writes alone, and only the one
/// serving the key can make them.
fn resend_store_only(ctx: &Context, seq: u64, everyone: &[Vec<u8>]) {
    let article = {
        let guard = lock(&SENDER);
        let Some(out) = guard.as_ref().and_then(|s| s.window.get(&seq)) else { return };
        if out.doc_stored && out.stream_appended {
            return;
        }
        Article { store_only: true, ..out.article.clone() }
    };
    let me = me();
    for target in everyone {
        if *target == me {
            handle_article(ctx, &me, article.clone());
        } else {
            send(ctx, target, cluster_msg::ARTICLE, &article.encode());
        }
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
    if let Some(s) = lock(&SENDER).as_ref() {
        let w = s.window.values();
        metrics::CLUSTER_WAITING_SLOTS.set(w.clone().filter(|o| o.covered_slots < cluster::SLOTS as u32).count() as i64);
        metrics::CLUSTER_WAITING_DOCUMENT.set(w.clone().filter(|o| !o.doc_stored).count() as i64);
        metrics::CLUSTER_WAITING_STREAM.set(w.filter(|o| !o.stream_appended).count() as i64);
    }
    !lock(&HELD_ACKS).is_empty() || outstanding() > 0 || !lock(&COMPLETED).is_empty()
}

/// Delivers to users that arrived here the logged articles they follow, in order, as fan-out
/// jobs queued before any article applied later; their seen-filters skip what they already had
/// (delivered on the node they came from).
fn catch_up_arrivals(ctx: &Context) {
    let arrived: Vec<Vec<u8>> = std::mem::take(&mut *lock(&ARRIVED));
    if arrived.is_empty() {
        return;
    }
    metrics::CLUSTER_CATCHUP_USERS.add(arrived.len() as u64);
    let log = lock(&LOG);
    for entry in log.iter() {
        let (targets, generation) = index::with(|ix| {
            let targets: Vec<_> = arrived.iter().filter_map(|u| ix.target_of(&entry.topic, u)).collect();
            (targets, ix.generation(&entry.topic).unwrap_or(0))
        });
        if targets.is_empty() {
            continue;
        }
        let job = fanout::Job::subscribers(entry.spec.clone(), targets, generation);
        fanout::start_internal(
            ctx,
            job,
            Box::new(|_ctx: &Context, delivered: u64, _duplicates: u64| metrics::CLUSTER_CATCHUP_DELIVERIES.add(delivered)),
        );
    }
}

/// Receiving state is per process: a replica promoted later starts from the sender's window.
/// Replicas drop the messages they get (their primary applies, and replicates the effects).
pub fn forget_sessions() {
    lock(&INBOX).clear();
    lock(&LOG).clear();
    lock(&ARRIVED).clear();
    lock(&SESSIONS).clear();
    lock(&HELD_ACKS).clear();
    lock(&COMPLETED).clear();
}
