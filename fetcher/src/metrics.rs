//! Counters, gauges and the write-latency histogram, rendered in the Prometheus text format
//! (0.0.4) and served on `/metrics` by a minimal hyper server.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Upper bounds (seconds) of the write-latency histogram buckets.
const LATENCY_BUCKETS: [f64; 15] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// A counter family with one label.
#[derive(Default)]
pub struct LabeledCounter(Mutex<BTreeMap<String, u64>>);

impl LabeledCounter {
    pub fn inc(&self, label: &str) {
        self.add(label, 1);
    }

    pub fn add(&self, label: &str, n: u64) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(label.to_string()).or_insert(0) += n;
    }

    pub fn total(&self) -> u64 {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).values().sum()
    }

    fn snapshot(&self) -> Vec<(String, u64)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

#[derive(Default)]
struct Histogram {
    counts: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Every metric of the process.
pub struct Metrics {
    pub written: LabeledCounter,
    pub duplicates: AtomicU64,
    pub process_dedup_skipped: AtomicU64,
    pub malformed: LabeledCounter,
    pub feed_errors: LabeledCounter,
    pub feed_polls: LabeledCounter,
    pub not_modified: AtomicU64,
    pub reconnects: AtomicU64,
    pub valkey_errors: LabeledCounter,
    pub pauses: AtomicU64,
    paused_micros: AtomicU64,
    pub paused: AtomicI64,
    pub backlog: AtomicI64,
    pub source_done: AtomicI64,
    latency: Mutex<Histogram>,
    start_time: f64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let start_time = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        Metrics {
            written: LabeledCounter::default(),
            duplicates: AtomicU64::new(0),
            process_dedup_skipped: AtomicU64::new(0),
            malformed: LabeledCounter::default(),
            feed_errors: LabeledCounter::default(),
            feed_polls: LabeledCounter::default(),
            not_modified: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            valkey_errors: LabeledCounter::default(),
            pauses: AtomicU64::new(0),
            paused_micros: AtomicU64::new(0),
            paused: AtomicI64::new(0),
            backlog: AtomicI64::new(0),
            source_done: AtomicI64::new(0),
            latency: Mutex::new(Histogram::default()),
            start_time,
        }
    }

    pub fn add_paused(&self, d: Duration) {
        self.paused_micros.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn paused_seconds(&self) -> f64 {
        self.paused_micros.load(Ordering::Relaxed) as f64 / 1e6
    }

    pub fn observe_write(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let mut h = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let gi = |a: &AtomicI64| a.load(Ordering::Relaxed);

        header(&mut out, "fetcher_up", "gauge", "1 while the fetcher runs.");
        out.push_str("fetcher_up 1\n");
        header(&mut out, "fetcher_start_time_seconds", "gauge", "Start time of the process since the Unix epoch.");
        let _ = writeln!(out, "fetcher_start_time_seconds {}", self.start_time);
        labeled(&mut out, "fetcher_articles_written_total", "Articles appended to the stream, by source.", "source", &self.written);
        header(
            &mut out,
            "fetcher_duplicates_total",
            "counter",
            "Articles the write script refused because their id was already seen in Valkey.",
        );
        let _ = writeln!(out, "fetcher_duplicates_total {}", ld(&self.duplicates));
        header(
            &mut out,
            "fetcher_process_dedup_skipped_total",
            "counter",
            "Feed items skipped before writing because this process already handled their id.",
        );
        let _ = writeln!(out, "fetcher_process_dedup_skipped_total {}", ld(&self.process_dedup_skipped));
        labeled(
            &mut out,
            "fetcher_malformed_total",
            "Items, lines or documents skipped as malformed, by reason.",
            "reason",
            &self.malformed,
        );
        labeled(
            &mut out,
            "fetcher_feed_errors_total",
            "Failed feed fetches (network errors, HTTP errors), by feed.",
            "feed",
            &self.feed_errors,
        );
        labeled(&mut out, "fetcher_feed_polls_total", "Feed fetch attempts, by feed.", "feed", &self.feed_polls);
        header(&mut out, "fetcher_http_not_modified_total", "counter", "Feed polls answered 304 Not Modified.");
        let _ = writeln!(out, "fetcher_http_not_modified_total {}", ld(&self.not_modified));
        header(&mut out, "fetcher_valkey_reconnects_total", "counter", "Connections to Valkey re-established after a failure.");
        let _ = writeln!(out, "fetcher_valkey_reconnects_total {}", ld(&self.reconnects));
        labeled(&mut out, "fetcher_valkey_errors_total", "Valkey command or connection errors, by kind.", "kind", &self.valkey_errors);
        header(&mut out, "fetcher_backpressure_pauses_total", "counter", "Times writing paused because the pipeline backlog was too long.");
        let _ = writeln!(out, "fetcher_backpressure_pauses_total {}", ld(&self.pauses));
        header(&mut out, "fetcher_backpressure_paused_seconds_total", "counter", "Time spent paused by backpressure.");
        let _ = writeln!(out, "fetcher_backpressure_paused_seconds_total {}", self.paused_seconds());
        header(&mut out, "fetcher_backpressure_paused", "gauge", "1 while writing is paused by backpressure.");
        let _ = writeln!(out, "fetcher_backpressure_paused {}", gi(&self.paused));
        header(
            &mut out,
            "fetcher_backlog",
            "gauge",
            "Last pipeline backlog read (consumer group lag, or stream length without the group).",
        );
        let _ = writeln!(out, "fetcher_backlog {}", gi(&self.backlog));
        header(&mut out, "fetcher_source_done", "gauge", "1 once the source has delivered everything (replay/generate end, rss --once).");
        let _ = writeln!(out, "fetcher_source_done {}", gi(&self.source_done));

        header(&mut out, "fetcher_write_latency_seconds", "histogram", "Latency of the write script (successful calls).");
        let h = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "fetcher_write_latency_seconds_bucket{{le=\"{bound}\"}} {}", h.counts[i]);
        }
        let _ = writeln!(out, "fetcher_write_latency_seconds_bucket{{le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(out, "fetcher_write_latency_seconds_sum {}", h.sum);
        let _ = writeln!(out, "fetcher_write_latency_seconds_count {}", h.count);
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn labeled(out: &mut String, name: &str, help: &str, label: &str, counter: &LabeledCounter) {
    header(out, name, "counter", help);
    for (value, n) in counter.snapshot() {
        let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {n}", escape_label(&value));
    }
}

/// Escapes a label value: backslash, double quote and newline.
pub fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
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

fn respond(req: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, ctype, body) = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => (StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", metrics.render()),
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
}
