//! Sending side, on the ingest node: the window of articles sent and not yet acknowledged for
//! every slot, what acknowledgements teach about which node serves which slot, and re-sends.

use super::*;

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

pub(super) fn handle_ack(ctx: &Context, from: &[u8], ack: Ack) {
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

pub(super) fn handle_nack(ctx: &Context, from: &[u8], nack: Nack) {
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
pub(super) fn resend_overdue(ctx: &Context) {
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

/// What the articles in the window still wait for, as gauges.
pub(super) fn publish_waiting_gauges() {
    if let Some(s) = lock(&SENDER).as_ref() {
        let w = s.window.values();
        metrics::CLUSTER_WAITING_SLOTS.set(w.clone().filter(|o| o.covered_slots < cluster::SLOTS as u32).count() as i64);
        metrics::CLUSTER_WAITING_DOCUMENT.set(w.clone().filter(|o| !o.doc_stored).count() as i64);
        metrics::CLUSTER_WAITING_STREAM.set(w.filter(|o| !o.stream_appended).count() as i64);
    }
}
