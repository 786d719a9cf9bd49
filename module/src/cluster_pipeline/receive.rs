//! Receiving side, on every primary: articles applied in sequence, their documents and stream
//! entries written where this node serves them, acknowledgements once the replicas have the
//! effects, and the catch-up of users that arrive from other nodes.

use super::*;

struct Session {
    /// Next sequence this node applies; 0 until the first article of the session.
    expected: u64,
    /// Articles applied (or being applied), kept while the sender may still ask for them.
    applied: BTreeMap<u64, bool>,
    last_article: Instant,
}

/// A session nothing arrived from for this long is over (its sender stopped being the ingest
/// node); its state is dropped.
const SESSION_IDLE: Duration = Duration::from_secs(600);

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
    sessions.retain(|&id, s| id == a.session || s.last_article.elapsed() < SESSION_IDLE);
    let s = sessions.entry(a.session).or_insert_with(|| Session { expected: 0, applied: BTreeMap::new(), last_article: Instant::now() });
    s.last_article = Instant::now();
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

pub(super) fn handle_article(ctx: &Context, sender: &[u8], a: Article) {
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
pub(super) fn acknowledge_completed(ctx: &Context) {
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

pub(super) fn release_held_acks(ctx: &Context) {
    if lock(&HELD_ACKS).is_empty() {
        return;
    }
    let wait = Duration::from_millis(configs::cluster_ack_wait_ms());
    // A primary restarted from disk believes, until the cluster tells it otherwise, that it still
    // serves its slots, also when its replica has taken over meanwhile; whatever it applies then is
    // wiped when it resyncs as a replica. So such a node acknowledges nothing during its first
    // `cluster-ack-wait-ms`, and a node that is no longer a primary drops what it held.
    if crate::cluster::settling(wait) {
        return;
    }
    if !ctx.get_flags().contains(valkey_module::ContextFlags::MASTER) {
        let dropped = std::mem::take(&mut *lock(&HELD_ACKS));
        metrics::CLUSTER_ACKS_DROPPED_DEMOTED.add(dropped.len() as u64);
        return;
    }
    let (_, replicas_at) = ffi::replication_offsets(ctx);
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

/// Delivers to users that arrived here the logged articles they follow, in order, as fan-out
/// jobs queued before any article applied later; their seen-filters skip what they already had
/// (delivered on the node they came from).
pub(super) fn catch_up_arrivals(ctx: &Context) {
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

/// Acknowledgements still to send or fan-outs still to acknowledge.
pub(super) fn receiving() -> bool {
    !lock(&HELD_ACKS).is_empty() || !lock(&COMPLETED).is_empty()
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
