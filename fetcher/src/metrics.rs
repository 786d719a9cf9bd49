//! Counters, gauges and the write-latency histogram, kept and rendered in the Prometheus text
//! format (0.0.4) by the `prometheus` crate, and served on `/metrics` by a minimal hyper server.
//! The names, types, labels and help texts are what ops/prometheus alerts, the Grafana dashboard
//! and ops/tests read; the crate writes them exactly as registered. (prometheus-client would not:
//! it writes OpenMetrics, where a counter family is named without `_total` in HELP and TYPE.)

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus::core::Collector;
use prometheus::{Counter, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use tokio::net::TcpListener;

/// Upper bounds (seconds) of the write-latency histogram buckets.
const LATENCY_BUCKETS: [f64; 15] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// A counter family with one label.
pub struct LabeledCounter(IntCounterVec);

impl LabeledCounter {
    pub fn inc(&self, label: &str) {
        self.add(label, 1);
    }

    pub fn add(&self, label: &str, n: u64) {
        self.0.with_label_values(&[label]).inc_by(n);
    }

    pub fn total(&self) -> u64 {
        self.0.collect().iter().flat_map(|f| f.get_metric()).map(|m| m.get_counter().get_value() as u64).sum()
    }
}

/// Every metric of the process, registered in its own registry (tests build several).
pub struct Metrics {
    registry: Registry,
    pub written: LabeledCounter,
    pub duplicates: IntCounter,
    pub process_dedup_skipped: IntCounter,
    pub malformed: LabeledCounter,
    pub feed_errors: LabeledCounter,
    pub feed_polls: LabeledCounter,
    pub not_modified: IntCounter,
    pub reconnects: IntCounter,
    pub valkey_errors: LabeledCounter,
    pub pauses: IntCounter,
    paused_seconds: Counter,
    pub paused: IntGauge,
    pub backlog: IntGauge,
    pub source_done: IntGauge,
    latency: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Registers `metric` and hands it back. The names and help texts are constants of this file, so
/// a failure is a programming error that the unit test below finds.
fn registered<M: Collector + Clone + 'static>(registry: &Registry, metric: prometheus::Result<M>) -> M {
    let metric = metric.expect("metric names and help texts are valid constants");
    registry.register(Box::new(metric.clone())).expect("each metric name is registered once");
    metric
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let counter = |name: &str, help: &str| registered(&r, IntCounter::new(name, help));
        let gauge = |name: &str, help: &str| registered(&r, IntGauge::new(name, help));
        let labeled =
            |name: &str, help: &str, label: &str| LabeledCounter(registered(&r, IntCounterVec::new(Opts::new(name, help), &[label])));

        registered(&r, IntGauge::new("fetcher_up", "1 while the fetcher runs.")).set(1);
        let start_time = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        registered(&r, Gauge::new("fetcher_start_time_seconds", "Start time of the process since the Unix epoch.")).set(start_time);
        Metrics {
            written: labeled("fetcher_articles_written_total", "Articles appended to the stream, by source.", "source"),
            duplicates: counter(
                "fetcher_duplicates_total",
                "Articles the write script refused because their id was already seen in Valkey.",
            ),
            process_dedup_skipped: counter(
                "fetcher_process_dedup_skipped_total",
                "Feed items skipped before writing because this process already handled their id.",
            ),
            malformed: labeled("fetcher_malformed_total", "Items, lines or documents skipped as malformed, by reason.", "reason"),
            feed_errors: labeled("fetcher_feed_errors_total", "Failed feed fetches (network errors, HTTP errors), by feed.", "feed"),
            feed_polls: labeled("fetcher_feed_polls_total", "Feed fetch attempts, by feed.", "feed"),
            not_modified: counter("fetcher_http_not_modified_total", "Feed polls answered 304 Not Modified."),
            reconnects: counter("fetcher_valkey_reconnects_total", "Connections to Valkey re-established after a failure."),
            valkey_errors: labeled("fetcher_valkey_errors_total", "Valkey command or connection errors, by kind.", "kind"),
            pauses: counter("fetcher_backpressure_pauses_total", "Times writing paused because the pipeline backlog was too long."),
            paused_seconds: registered(&r, Counter::new("fetcher_backpressure_paused_seconds_total", "Time spent paused by backpressure.")),
            paused: gauge("fetcher_backpressure_paused", "1 while writing is paused by backpressure."),
            backlog: gauge("fetcher_backlog", "Last pipeline backlog read (consumer group lag, or stream length without the group)."),
            source_done: gauge("fetcher_source_done", "1 once the source has delivered everything (replay/generate end, rss --once)."),
            latency: registered(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new("fetcher_write_latency_seconds", "Latency of the write script (successful calls).")
                        .buckets(LATENCY_BUCKETS.to_vec()),
                ),
            ),
            registry: r,
        }
    }

    pub fn add_paused(&self, d: Duration) {
        self.paused_seconds.inc_by(d.as_secs_f64());
    }

    pub fn paused_seconds(&self) -> f64 {
        self.paused_seconds.get()
    }

    pub fn observe_write(&self, d: Duration) {
        self.latency.observe(d.as_secs_f64());
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        TextEncoder::new().encode_to_string(&self.registry.gather()).unwrap_or_else(|e| {
            log::error!("metrics: encoding failed: {e}");
            String::new()
        })
    }
}

/// Serves `/metrics` on an already bound listener until the process ends.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                log::warn!("metrics: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let metrics = metrics.clone();
                async move { Ok::<_, Infallible>(respond(&req, &metrics)) }
            });
            if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await {
                log::debug!("metrics: connection error: {e}");
            }
        });
    }
}

/// The crate's text format (0.0.4) with the charset its output is in.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn respond(req: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, ctype, body) = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => (StatusCode::OK, METRICS_CONTENT_TYPE, metrics.render()),
        (&Method::GET | &Method::HEAD, "/") => {
            (StatusCode::OK, "text/plain; charset=utf-8", "agentic-fetcher: metrics at /metrics\n".to_string())
        }
        _ => (StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "not found\n".to_string()),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_has_families_and_escapes_labels() {
        let m = Metrics::new();
        m.written.inc("http://x/\"feed\"");
        m.malformed.add("invalid_json", 2);
        m.observe_write(Duration::from_micros(300));
        let text = m.render();
        assert!(text.contains("fetcher_up 1\n"));
        assert!(text.contains("fetcher_articles_written_total{source=\"http://x/\\\"feed\\\"\"} 1\n"));
        assert!(text.contains("fetcher_malformed_total{reason=\"invalid_json\"} 2\n"));
        assert!(text.contains("fetcher_write_latency_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(text.contains("fetcher_write_latency_seconds_bucket{le=\"0.00025\"} 0\n"));
        assert!(text.contains("fetcher_write_latency_seconds_count 1\n"));
        assert!(text.contains("# TYPE fetcher_backlog gauge\n"));
    }

    /// The families as the hand-written renderer wrote them before the crate (ops/ and the
    /// dashboard read these names): HELP and TYPE lines unchanged, label names unchanged.
    #[test]
    fn families_keep_their_names_types_and_help() {
        let m = Metrics::new();
        for (c, label) in [(&m.written, "s"), (&m.malformed, "r"), (&m.feed_errors, "f"), (&m.feed_polls, "f"), (&m.valkey_errors, "k")] {
            c.inc(label);
        }
        let text = m.render();
        let families = [
            ("fetcher_up", "gauge", "1 while the fetcher runs."),
            ("fetcher_start_time_seconds", "gauge", "Start time of the process since the Unix epoch."),
            ("fetcher_articles_written_total", "counter", "Articles appended to the stream, by source."),
            ("fetcher_duplicates_total", "counter", "Articles the write script refused because their id was already seen in Valkey."),
            (
                "fetcher_process_dedup_skipped_total",
                "counter",
                "Feed items skipped before writing because this process already handled their id.",
            ),
            ("fetcher_malformed_total", "counter", "Items, lines or documents skipped as malformed, by reason."),
            ("fetcher_feed_errors_total", "counter", "Failed feed fetches (network errors, HTTP errors), by feed."),
            ("fetcher_feed_polls_total", "counter", "Feed fetch attempts, by feed."),
            ("fetcher_http_not_modified_total", "counter", "Feed polls answered 304 Not Modified."),
            ("fetcher_valkey_reconnects_total", "counter", "Connections to Valkey re-established after a failure."),
            ("fetcher_valkey_errors_total", "counter", "Valkey command or connection errors, by kind."),
            ("fetcher_backpressure_pauses_total", "counter", "Times writing paused because the pipeline backlog was too long."),
            ("fetcher_backpressure_paused_seconds_total", "counter", "Time spent paused by backpressure."),
            ("fetcher_backpressure_paused", "gauge", "1 while writing is paused by backpressure."),
            ("fetcher_backlog", "gauge", "Last pipeline backlog read (consumer group lag, or stream length without the group)."),
            ("fetcher_source_done", "gauge", "1 once the source has delivered everything (replay/generate end, rss --once)."),
            ("fetcher_write_latency_seconds", "histogram", "Latency of the write script (successful calls)."),
        ];
        for (name, kind, help) in families {
            assert!(text.contains(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n")), "{name}:\n{text}");
        }
        assert_eq!(text.matches("# TYPE ").count(), families.len(), "no other family:\n{text}");
        for sample in
            ["fetcher_articles_written_total{source=\"s\"} 1\n", "fetcher_valkey_errors_total{kind=\"k\"} 1\n", "fetcher_source_done 0\n"]
        {
            assert!(text.contains(sample), "{sample}:\n{text}");
        }
        m.add_paused(Duration::from_millis(1500));
        assert!(m.render().contains("fetcher_backpressure_paused_seconds_total 1.5\n"));
        assert!(METRICS_CONTENT_TYPE.starts_with(prometheus::TEXT_FORMAT), "the crate's format is the one announced");
    }
}
