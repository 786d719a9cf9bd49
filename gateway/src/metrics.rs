//! Every counter and gauge the gateway keeps, rendered as Prometheus text at /metrics by the
//! `prometheus` crate and as JSON in /api/stats. The names, types, labels and help texts are what
//! ops/prometheus alerts, the Grafana dashboard and ops/tests read; the crate writes them exactly as
//! registered. (prometheus-client would not: it writes OpenMetrics, where a counter family is named
//! without `_total` in HELP and TYPE.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

pub type Gauge = IntGauge;

/// Unwraps the crate's answer for a metric built from this file's constants: a failure is a
/// programming error (an invalid or twice-registered name), which the unit tests find.
fn valid<T>(r: prometheus::Result<T>) -> T {
    r.expect("metric names, labels and help texts are valid constants, each registered once")
}

/// Plain counters: `static NAME: family name, help`. Registered by [`registry`].
macro_rules! counters {
    ($($(#[$doc:meta])* $static:ident: $name:literal, $help:literal;)*) => {
        $(
            $(#[$doc])*
            pub static $static: LazyLock<IntCounter> = LazyLock::new(|| valid(IntCounter::new($name, $help)));
        )*
        fn register_counters(r: &Registry) {
            $( valid(r.register(Box::new(IntCounter::clone(&$static)))); )*
        }
    };
}

counters! {
    SOCKETS_OPENED: "gateway_sockets_opened_total", "WebSockets accepted.";
    SOCKETS_REFUSED: "gateway_sockets_refused_total", "WebSocket upgrades refused (bad id, origin or token).";
    SOCKETS_TIMED_OUT: "gateway_sockets_timed_out_total", "WebSockets closed because a write did not finish in time.";
    AUTH_FAILURES: "gateway_auth_failures_total", "Requests refused for a missing or wrong token.";
    FRAMES_SENT: "gateway_frames_sent_total", "WebSocket frames of entries sent.";
    /// Live entries already sent by a backlog, resume or resync read (not sent twice).
    ENTRIES_SKIPPED_DUPLICATE: "gateway_entries_skipped_duplicate_total", "Live entries not sent because a read had already sent them.";
    /// Live entries dropped from a full socket queue; the socket then resyncs from Valkey.
    ENTRIES_DROPPED: "gateway_entries_dropped_total", "Live entries dropped from full socket queues (recovered by a resync).";
    DELIVERY_MESSAGES: "gateway_delivery_messages_total", "Delivery announcements received from the module.";
    DELIVERY_MALFORMED: "gateway_delivery_malformed_total", "Delivery announcements that could not be parsed.";
    DELIVERY_ENTRIES: "gateway_delivery_entries_total", "Deliveries announced (all users).";
    DELIVERY_ENTRIES_ROUTED: "gateway_delivery_entries_routed_total", "Announced deliveries queued to an open socket.";
    /// Articles appended to a shared topic timeline, routed to the open sockets of the topic's followers.
    DELIVERY_SHARED: "gateway_delivery_shared_total", "Shared timeline appends announced (routed by topic to followers' sockets).";
    /// Interests of a user could not be read when its socket opened: shared entries reach it at its next resync.
    INTERESTS_UNREAD: "gateway_interests_unread_total", "Sockets opened without their user's interests (shared entries come at the next resync).";
    /// Interest changes the module announced (made by any client) for users with an open socket.
    INTERESTS_UPDATES: "gateway_interests_updates_total", "Interest changes announced by the module and applied for users with an open socket.";
    PUBSUB_CONNECTS: "gateway_pubsub_connects_total", "Subscriptions to the delivery channel.";
    PUBSUB_ERRORS: "gateway_pubsub_errors_total", "Delivery-channel connection failures.";
    /// Re-reads of a document that was not there yet when its delivery was announced (on a
    /// cluster the document's node may store it after the user's node delivered).
    DOC_WAITS: "gateway_doc_waits_total", "Re-reads of a document not yet stored when its delivery was announced (cluster).";
    /// Sockets held (no live sending) while the shard channel their entries come from was being
    /// subscribed again (cluster); each ends with a resync.
    HOLDS: "gateway_holds_total", "Sockets held while their shard channel was subscribed again (cluster); each ends with a resync.";
    /// Cluster slot-map changes seen (each resyncs the sockets of the users whose slot moved).
    CLUSTER_TOPOLOGY_CHANGES: "gateway_cluster_topology_changes_total", "Cluster slot-map changes seen; the sockets of users whose slot moved resync.";
    TOPIC_READS: "gateway_topic_reads_total", "Blocking topic-stream reads.";
    TOPIC_READ_ERRORS: "gateway_topic_read_errors_total", "Failed topic-stream reads.";
    DOC_FETCHES: "gateway_doc_fetches_total", "Documents read for live deliveries.";
    DOC_CACHE_HITS: "gateway_doc_cache_hits_total", "Live deliveries whose document was already cached.";
    DOCS_MISSING: "gateway_docs_missing_total", "Entries whose document had expired.";
    VALKEY_ERRORS: "gateway_valkey_errors_total", "Valkey connection or protocol errors.";
    /// A cluster connection whose reply deadline passed is replaced by a new one (the redis
    /// crate's cluster client has been seen to stall every request while slots moved).
    CLUSTER_CONNECTIONS_REPLACED: "gateway_cluster_connections_replaced_total", "Cluster connections replaced after a reply deadline passed.";
    HTTP_REQUESTS: "gateway_http_requests_total", "HTTP API requests.";
    HTTP_ERRORS: "gateway_http_errors_total", "HTTP API requests answered with an error.";
}

static SOCKETS: LazyLock<IntGaugeVec> =
    LazyLock::new(|| valid(IntGaugeVec::new(Opts::new("gateway_sockets", "Open WebSockets by feed kind."), &["kind"])));
pub static USER_SOCKETS: LazyLock<IntGauge> = LazyLock::new(|| SOCKETS.with_label_values(&["user"]));
pub static TOPIC_SOCKETS: LazyLock<IntGauge> = LazyLock::new(|| SOCKETS.with_label_values(&["topic"]));

static ENTRIES_SENT: LazyLock<IntCounterVec> = LazyLock::new(|| {
    valid(IntCounterVec::new(Opts::new("gateway_entries_sent_total", "Feed entries written to sockets, by how they were read."), &["mode"]))
});
pub static ENTRIES_SENT_BACKLOG: LazyLock<IntCounter> = LazyLock::new(|| ENTRIES_SENT.with_label_values(&["backlog"]));
pub static ENTRIES_SENT_RESUME: LazyLock<IntCounter> = LazyLock::new(|| ENTRIES_SENT.with_label_values(&["resume"]));
pub static ENTRIES_SENT_LIVE: LazyLock<IntCounter> = LazyLock::new(|| ENTRIES_SENT.with_label_values(&["live"]));
pub static ENTRIES_SENT_RESYNC: LazyLock<IntCounter> = LazyLock::new(|| ENTRIES_SENT.with_label_values(&["resync"]));

static RESYNCS: LazyLock<IntCounterVec> =
    LazyLock::new(|| valid(IntCounterVec::new(Opts::new("gateway_resyncs_total", "Sockets re-read from Valkey."), &["reason"])));
pub static RESYNCS_SLOW: LazyLock<IntCounter> = LazyLock::new(|| RESYNCS.with_label_values(&["slow_client"]));
pub static RESYNCS_RECONNECT: LazyLock<IntCounter> = LazyLock::new(|| RESYNCS.with_label_values(&["reconnect"]));

/// Every metric, registered once. The labelled series are created here so that they are exposed
/// at 0 before their first event, as dashboards and `rate()` expect.
static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let r = Registry::new();
    register_counters(&r);
    for series in [&USER_SOCKETS, &TOPIC_SOCKETS] {
        LazyLock::force(series);
    }
    for series in [&ENTRIES_SENT_BACKLOG, &ENTRIES_SENT_RESUME, &ENTRIES_SENT_LIVE, &ENTRIES_SENT_RESYNC, &RESYNCS_SLOW, &RESYNCS_RECONNECT]
    {
        LazyLock::force(series);
    }
    valid(r.register(Box::new(SOCKETS.clone())));
    valid(r.register(Box::new(ENTRIES_SENT.clone())));
    valid(r.register(Box::new(RESYNCS.clone())));
    valid(r.register(Box::new(DELIVERY_LATENCY.histogram.clone())));
    r
});

/// Ingest (`ingest_ms` of the article) to the moment the gateway wrote a live entry to a socket.
pub static DELIVERY_LATENCY: LazyLock<Latency> =
    LazyLock::new(|| Latency::new("gateway_delivery_latency_ms", "Ingest to socket write of live entries, ms."));

/// Latency in ms: a Prometheus histogram, plus per-second buckets of the last `WINDOW` seconds
/// for the dashboard's "now" percentiles.
pub struct Latency {
    histogram: Histogram,
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
    fn new(name: &str, help: &str) -> Self {
        Latency {
            histogram: valid(Histogram::with_opts(HistogramOpts::new(name, help).buckets(BOUNDS.iter().map(|&b| b as f64).collect()))),
            window: [const { Slot { second: AtomicU64::new(0), counts: [const { AtomicU64::new(0) }; FINE.len() + 1] } }; WINDOW],
        }
    }

    pub fn record(&self, ms: u64) {
        self.histogram.observe(ms as f64);
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
}

pub fn entries_sent() -> u64 {
    ENTRIES_SENT_BACKLOG.get() + ENTRIES_SENT_RESUME.get() + ENTRIES_SENT_LIVE.get() + ENTRIES_SENT_RESYNC.get()
}

/// What [`render`] writes: the text format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// The Prometheus text exposition (format 0.0.4).
pub fn render() -> String {
    TextEncoder::new().encode_to_string(&REGISTRY.gather()).unwrap_or_else(|e| {
        log::error!("metrics: encoding failed: {e}");
        String::new()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::core::Collector;

    #[test]
    fn recent_percentiles_never_under_report() {
        let l = Latency::new("x", "h");
        assert_eq!(l.recent_percentile(50.0), None);
        for ms in [1, 2, 3, 7, 9, 9, 9, 9, 9, 95] {
            l.record(ms);
        }
        assert_eq!(l.recent_percentile(50.0), Some(10));
        assert_eq!(l.recent_percentile(99.0), Some(100));
        let out = valid(TextEncoder::new().encode_to_string(&l.histogram.collect()));
        assert!(out.contains("x_bucket{le=\"10\"} 9\n") && out.contains("x_count 10\n") && out.contains("x_sum 153\n"), "{out}");
    }

    /// The families as the hand-written renderer wrote them before the crate (ops/ and the
    /// dashboard read these names): HELP and TYPE lines unchanged, every series there from the
    /// start, label names and values unchanged.
    #[test]
    fn families_keep_their_names_types_and_help() {
        let text = render();
        let families = [
            ("gateway_sockets", "gauge", "Open WebSockets by feed kind."),
            ("gateway_sockets_opened_total", "counter", "WebSockets accepted."),
            ("gateway_sockets_refused_total", "counter", "WebSocket upgrades refused (bad id, origin or token)."),
            ("gateway_sockets_timed_out_total", "counter", "WebSockets closed because a write did not finish in time."),
            ("gateway_auth_failures_total", "counter", "Requests refused for a missing or wrong token."),
            ("gateway_frames_sent_total", "counter", "WebSocket frames of entries sent."),
            ("gateway_entries_sent_total", "counter", "Feed entries written to sockets, by how they were read."),
            ("gateway_entries_skipped_duplicate_total", "counter", "Live entries not sent because a read had already sent them."),
            ("gateway_entries_dropped_total", "counter", "Live entries dropped from full socket queues (recovered by a resync)."),
            ("gateway_resyncs_total", "counter", "Sockets re-read from Valkey."),
            ("gateway_delivery_messages_total", "counter", "Delivery announcements received from the module."),
            ("gateway_delivery_malformed_total", "counter", "Delivery announcements that could not be parsed."),
            ("gateway_delivery_entries_total", "counter", "Deliveries announced (all users)."),
            ("gateway_delivery_entries_routed_total", "counter", "Announced deliveries queued to an open socket."),
            ("gateway_delivery_shared_total", "counter", "Shared timeline appends announced (routed by topic to followers' sockets)."),
            (
                "gateway_interests_unread_total",
                "counter",
                "Sockets opened without their user's interests (shared entries come at the next resync).",
            ),
            (
                "gateway_interests_updates_total",
                "counter",
                "Interest changes announced by the module and applied for users with an open socket.",
            ),
            ("gateway_pubsub_connects_total", "counter", "Subscriptions to the delivery channel."),
            ("gateway_pubsub_errors_total", "counter", "Delivery-channel connection failures."),
            ("gateway_doc_waits_total", "counter", "Re-reads of a document not yet stored when its delivery was announced (cluster)."),
            (
                "gateway_holds_total",
                "counter",
                "Sockets held while their shard channel was subscribed again (cluster); each ends with a resync.",
            ),
            (
                "gateway_cluster_topology_changes_total",
                "counter",
                "Cluster slot-map changes seen; the sockets of users whose slot moved resync.",
            ),
            ("gateway_topic_reads_total", "counter", "Blocking topic-stream reads."),
            ("gateway_topic_read_errors_total", "counter", "Failed topic-stream reads."),
            ("gateway_doc_fetches_total", "counter", "Documents read for live deliveries."),
            ("gateway_doc_cache_hits_total", "counter", "Live deliveries whose document was already cached."),
            ("gateway_docs_missing_total", "counter", "Entries whose document had expired."),
            ("gateway_valkey_errors_total", "counter", "Valkey connection or protocol errors."),
            ("gateway_cluster_connections_replaced_total", "counter", "Cluster connections replaced after a reply deadline passed."),
            ("gateway_http_requests_total", "counter", "HTTP API requests."),
            ("gateway_http_errors_total", "counter", "HTTP API requests answered with an error."),
            ("gateway_delivery_latency_ms", "histogram", "Ingest to socket write of live entries, ms."),
        ];
        for (name, kind, help) in families {
            assert!(text.contains(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n")), "{name}:\n{text}");
        }
        assert_eq!(text.matches("# TYPE ").count(), families.len(), "no other family:\n{text}");
        for series in [
            "gateway_sockets{kind=\"user\"} ",
            "gateway_sockets{kind=\"topic\"} ",
            "gateway_entries_sent_total{mode=\"backlog\"} ",
            "gateway_entries_sent_total{mode=\"resume\"} ",
            "gateway_entries_sent_total{mode=\"live\"} ",
            "gateway_entries_sent_total{mode=\"resync\"} ",
            "gateway_resyncs_total{reason=\"slow_client\"} ",
            "gateway_resyncs_total{reason=\"reconnect\"} ",
            "gateway_delivery_latency_ms_bucket{le=\"30000\"} ",
            "gateway_delivery_latency_ms_bucket{le=\"+Inf\"} ",
        ] {
            assert!(text.contains(series), "{series}:\n{text}");
        }
    }
}
