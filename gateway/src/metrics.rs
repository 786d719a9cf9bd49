//! Every counter and gauge the gateway keeps, rendered as Prometheus text at /metrics and as
//! JSON in /api/stats.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Self {
        Counter(AtomicU64::new(0))
    }
    pub fn incr(&self) {
        self.add(1)
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

pub struct Gauge(AtomicI64);

impl Gauge {
    pub const fn new() -> Self {
        Gauge(AtomicI64::new(0))
    }
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

pub static USER_SOCKETS: Gauge = Gauge::new();
pub static TOPIC_SOCKETS: Gauge = Gauge::new();
pub static SOCKETS_OPENED: Counter = Counter::new();
pub static SOCKETS_REFUSED: Counter = Counter::new();
pub static AUTH_FAILURES: Counter = Counter::new();
pub static FRAMES_SENT: Counter = Counter::new();
pub static ENTRIES_SENT_BACKLOG: Counter = Counter::new();
pub static ENTRIES_SENT_RESUME: Counter = Counter::new();
pub static ENTRIES_SENT_LIVE: Counter = Counter::new();
pub static ENTRIES_SENT_RESYNC: Counter = Counter::new();
/// Live entries already sent by a backlog, resume or resync read (not sent twice).
pub static ENTRIES_SKIPPED_DUPLICATE: Counter = Counter::new();
/// Live entries dropped from a full socket queue; the socket then resyncs from Valkey.
pub static ENTRIES_DROPPED: Counter = Counter::new();
pub static RESYNCS_SLOW: Counter = Counter::new();
pub static RESYNCS_RECONNECT: Counter = Counter::new();
pub static SOCKETS_TIMED_OUT: Counter = Counter::new();
pub static DELIVERY_MESSAGES: Counter = Counter::new();
pub static DELIVERY_MALFORMED: Counter = Counter::new();
pub static DELIVERY_ENTRIES: Counter = Counter::new();
pub static DELIVERY_ENTRIES_ROUTED: Counter = Counter::new();
pub static PUBSUB_CONNECTS: Counter = Counter::new();
pub static PUBSUB_ERRORS: Counter = Counter::new();
/// Re-reads of a document that was not there yet when its delivery was announced (on a
/// cluster the document's node may store it after the user's node delivered).
pub static DOC_WAITS: Counter = Counter::new();
/// Sockets held (no live sending) while the shard channel their entries come from was being
/// subscribed again (cluster); each ends with a resync.
pub static HOLDS: Counter = Counter::new();
/// Cluster slot-map changes seen (each resyncs the sockets of the users whose slot moved).
pub static CLUSTER_TOPOLOGY_CHANGES: Counter = Counter::new();
pub static TOPIC_READS: Counter = Counter::new();
pub static TOPIC_READ_ERRORS: Counter = Counter::new();
pub static DOC_FETCHES: Counter = Counter::new();
pub static DOC_CACHE_HITS: Counter = Counter::new();
pub static DOCS_MISSING: Counter = Counter::new();
pub static VALKEY_ERRORS: Counter = Counter::new();
pub static HTTP_REQUESTS: Counter = Counter::new();
pub static HTTP_ERRORS: Counter = Counter::new();

/// Ingest (`ingest_ms` of the article) to the moment the gateway wrote a live entry to a socket.
pub static DELIVERY_LATENCY: Latency = Latency::new();

/// Latency in ms: cumulative buckets for Prometheus, plus per-second buckets of the last
/// `WINDOW` seconds for the dashboard's "now" percentiles.
pub struct Latency {
    cumulative: [AtomicU64; BOUNDS.len() + 1],
    sum_ms: AtomicU64,
    window: [Slot; WINDOW],
}

struct Slot {
    second: AtomicU64,
    counts: [AtomicU64; FINE.len() + 1],
}

const BOUNDS: [u64; 14] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000];
const FINE: [u64; 24] = [1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 150, 200, 300, 500, 1000, 5000];
const WINDOW: usize = 10;

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Latency {
    pub const fn new() -> Self {
        Latency {
            cumulative: [const { AtomicU64::new(0) }; BOUNDS.len() + 1],
            sum_ms: AtomicU64::new(0),
            window: [const { Slot { second: AtomicU64::new(0), counts: [const { AtomicU64::new(0) }; FINE.len() + 1] } }; WINDOW],
        }
    }

    pub fn record(&self, ms: u64) {
        let b = BOUNDS.iter().position(|&x| ms <= x).unwrap_or(BOUNDS.len());
        self.cumulative[b].fetch_add(1, Ordering::Relaxed);
        self.sum_ms.fetch_add(ms, Ordering::Relaxed);
        let sec = now_s();
        let slot = &self.window[sec as usize % WINDOW];
        if slot.second.swap(sec, Ordering::AcqRel) != sec {
            // A new second reuses the slot: forget what it held. A record racing with this reset
            // may be lost; the dashboard percentile tolerates that, the cumulative counts do not
            // depend on it.
            slot.counts.iter().for_each(|c| c.store(0, Ordering::Relaxed));
        }
        let f = FINE.iter().position(|&x| ms <= x).unwrap_or(FINE.len());
        slot.counts[f].fetch_add(1, Ordering::Relaxed);
    }

    /// Percentile (0-100) over the last WINDOW seconds, as the upper bound of its bucket (never
    /// under-reports); None when nothing was recorded.
    pub fn recent_percentile(&self, p: f64) -> Option<u64> {
        let sec = now_s();
        let mut counts = [0u64; FINE.len() + 1];
        for slot in &self.window {
            let s = slot.second.load(Ordering::Acquire);
            if s + (WINDOW as u64) > sec && s <= sec {
                for (c, v) in counts.iter_mut().zip(&slot.counts) {
                    *c += v.load(Ordering::Relaxed);
                }
            }
        }
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(FINE.get(i).copied().unwrap_or(u64::MAX));
            }
        }
        None
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut acc = 0;
        for (i, c) in self.cumulative.iter().enumerate() {
            acc += c.load(Ordering::Relaxed);
            match BOUNDS.get(i) {
                Some(b) => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {acc}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {acc}");
                }
            }
        }
        let _ = writeln!(out, "{name}_sum {}\n{name}_count {acc}", self.sum_ms.load(Ordering::Relaxed));
    }
}

fn counter(out: &mut String, name: &str, help: &str, labels: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (label, v) in labels {
        if label.is_empty() {
            let _ = writeln!(out, "{name} {v}");
        } else {
            let _ = writeln!(out, "{name}{{{label}}} {v}");
        }
    }
}

fn gauge(out: &mut String, name: &str, help: &str, labels: &[(&str, i64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (label, v) in labels {
        if label.is_empty() {
            let _ = writeln!(out, "{name} {v}");
        } else {
            let _ = writeln!(out, "{name}{{{label}}} {v}");
        }
    }
}

pub fn entries_sent() -> u64 {
    ENTRIES_SENT_BACKLOG.get() + ENTRIES_SENT_RESUME.get() + ENTRIES_SENT_LIVE.get() + ENTRIES_SENT_RESYNC.get()
}

pub fn render() -> String {
    let mut o = String::with_capacity(4096);
    gauge(
        &mut o,
        "gateway_sockets",
        "Open WebSockets by feed kind.",
        &[("kind=\"user\"", USER_SOCKETS.get()), ("kind=\"topic\"", TOPIC_SOCKETS.get())],
    );
    counter(&mut o, "gateway_sockets_opened_total", "WebSockets accepted.", &[("", SOCKETS_OPENED.get())]);
    counter(
        &mut o,
        "gateway_sockets_refused_total",
        "WebSocket upgrades refused (bad id, origin or token).",
        &[("", SOCKETS_REFUSED.get())],
    );
    counter(
        &mut o,
        "gateway_sockets_timed_out_total",
        "WebSockets closed because a write did not finish in time.",
        &[("", SOCKETS_TIMED_OUT.get())],
    );
    counter(&mut o, "gateway_auth_failures_total", "Requests refused for a missing or wrong token.", &[("", AUTH_FAILURES.get())]);
    counter(&mut o, "gateway_frames_sent_total", "WebSocket frames of entries sent.", &[("", FRAMES_SENT.get())]);
    counter(
        &mut o,
        "gateway_entries_sent_total",
        "Feed entries written to sockets, by how they were read.",
        &[
            ("mode=\"backlog\"", ENTRIES_SENT_BACKLOG.get()),
            ("mode=\"resume\"", ENTRIES_SENT_RESUME.get()),
            ("mode=\"live\"", ENTRIES_SENT_LIVE.get()),
            ("mode=\"resync\"", ENTRIES_SENT_RESYNC.get()),
        ],
    );
    counter(
        &mut o,
        "gateway_entries_skipped_duplicate_total",
        "Live entries not sent because a read had already sent them.",
        &[("", ENTRIES_SKIPPED_DUPLICATE.get())],
    );
    counter(
        &mut o,
        "gateway_entries_dropped_total",
        "Live entries dropped from full socket queues (recovered by a resync).",
        &[("", ENTRIES_DROPPED.get())],
    );
    counter(
        &mut o,
        "gateway_resyncs_total",
        "Sockets re-read from Valkey.",
        &[("reason=\"slow_client\"", RESYNCS_SLOW.get()), ("reason=\"reconnect\"", RESYNCS_RECONNECT.get())],
    );
    counter(
        &mut o,
        "gateway_delivery_messages_total",
        "Delivery announcements received from the module.",
        &[("", DELIVERY_MESSAGES.get())],
    );
    counter(
        &mut o,
        "gateway_delivery_malformed_total",
        "Delivery announcements that could not be parsed.",
        &[("", DELIVERY_MALFORMED.get())],
    );
    counter(&mut o, "gateway_delivery_entries_total", "Deliveries announced (all users).", &[("", DELIVERY_ENTRIES.get())]);
    counter(
        &mut o,
        "gateway_delivery_entries_routed_total",
        "Announced deliveries queued to an open socket.",
        &[("", DELIVERY_ENTRIES_ROUTED.get())],
    );
    counter(&mut o, "gateway_pubsub_connects_total", "Subscriptions to the delivery channel.", &[("", PUBSUB_CONNECTS.get())]);
    counter(&mut o, "gateway_pubsub_errors_total", "Delivery-channel connection failures.", &[("", PUBSUB_ERRORS.get())]);
    counter(
        &mut o,
        "gateway_doc_waits_total",
        "Re-reads of a document not yet stored when its delivery was announced (cluster).",
        &[("", DOC_WAITS.get())],
    );
    counter(
        &mut o,
        "gateway_holds_total",
        "Sockets held while their shard channel was subscribed again (cluster); each ends with a resync.",
        &[("", HOLDS.get())],
    );
    counter(
        &mut o,
        "gateway_cluster_topology_changes_total",
        "Cluster slot-map changes seen; the sockets of users whose slot moved resync.",
        &[("", CLUSTER_TOPOLOGY_CHANGES.get())],
    );
    counter(&mut o, "gateway_topic_reads_total", "Blocking topic-stream reads.", &[("", TOPIC_READS.get())]);
    counter(&mut o, "gateway_topic_read_errors_total", "Failed topic-stream reads.", &[("", TOPIC_READ_ERRORS.get())]);
    counter(&mut o, "gateway_doc_fetches_total", "Documents read for live deliveries.", &[("", DOC_FETCHES.get())]);
    counter(&mut o, "gateway_doc_cache_hits_total", "Live deliveries whose document was already cached.", &[("", DOC_CACHE_HITS.get())]);
    counter(&mut o, "gateway_docs_missing_total", "Entries whose document had expired.", &[("", DOCS_MISSING.get())]);
    counter(&mut o, "gateway_valkey_errors_total", "Valkey connection or protocol errors.", &[("", VALKEY_ERRORS.get())]);
    counter(&mut o, "gateway_http_requests_total", "HTTP API requests.", &[("", HTTP_REQUESTS.get())]);
    counter(&mut o, "gateway_http_errors_total", "HTTP API requests answered with an error.", &[("", HTTP_ERRORS.get())]);
    DELIVERY_LATENCY.render(&mut o, "gateway_delivery_latency_ms", "Ingest to socket write of live entries, ms.");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_percentiles_never_under_report() {
        let l = Latency::new();
        assert_eq!(l.recent_percentile(50.0), None);
        for ms in [1, 2, 3, 7, 9, 9, 9, 9, 9, 95] {
            l.record(ms);
        }
        assert_eq!(l.recent_percentile(50.0), Some(10));
        assert_eq!(l.recent_percentile(99.0), Some(100));
        let mut out = String::new();
        l.render(&mut out, "x", "h");
        assert!(out.contains("x_bucket{le=\"10\"} 9") && out.contains("x_count 10") && out.contains("x_sum 153"));
    }
}
