//! agentic-fetcher: writes raw news articles into the Valkey stream the in-server pipeline
//! consumes (`news_raw`), from RSS/Atom feeds, CSV/JSONL replays or a synthetic generator.

mod article;
mod feed;
#[cfg(test)]
mod feed_speed;
mod generate;
#[cfg(test)]
mod input_fuzz;
mod metrics;
mod replay;
mod rss;
mod writer;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use log::{error, info};
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::writer::{Writer, WriterConfig};

#[derive(Parser, Debug)]
#[command(
    name = "agentic-fetcher",
    version,
    about = "Writes raw news articles into a Valkey stream (default news_raw) for the in-server pipeline",
    long_about = "Writes raw news articles into a Valkey stream (default news_raw) for the in-server pipeline.\n\n\
Each article is written by one idempotent script: SET fetcher:seen:{<stream>}:<id> NX EX <dedup-ttl>, then \
XADD <stream> * id <id> data <json>. Connection errors are retried (with reconnect and backoff) \
until Valkey answers, so a restart neither loses nor duplicates articles. Writing pauses while the \
consumer group's lag is at --max-backlog and resumes below 90% of it.\n\n\
Logs go to stderr; set RUST_LOG (error, warn, info, debug) to change the level.",
    after_help = "Examples:\n  \
agentic-fetcher rss --url https://example.com/feed.xml --url https://example.org/atom --interval 120\n  \
agentic-fetcher replay --file ag_news_test.jsonl --rate 250 --loop\n  \
agentic-fetcher --max-backlog 500 generate --rate 50 --count 10000 --seed 7"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    source: Source,
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// Valkey URL: redis://[user:pass@]host:port[/db] or unix:///path/to/valkey.sock; with
    /// --cluster, one or more cluster nodes, comma-separated
    #[arg(long, global = true, default_value = "redis://127.0.0.1:6379", value_name = "URL")]
    valkey: String,
    /// With a `rediss://` URL: the CA certificate (PEM) that signed the server's certificate;
    /// without it the system's trusted roots are used.
    #[arg(long, global = true, env = "AGENTIC_TLS_CA_CERT", value_name = "FILE")]
    tls_ca_cert: Option<PathBuf>,
    /// With a `rediss://` URL: the client certificate (PEM) to present, for a server with
    /// `tls-auth-clients yes` (Valkey's default). Needs --tls-key.
    #[arg(long, global = true, env = "AGENTIC_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM). Needs --tls-cert.
    #[arg(long, global = true, env = "AGENTIC_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Valkey Cluster: route every key to the node serving it (MOVED/ASK, failovers)
    #[arg(long, global = true)]
    cluster: bool,
    /// Stream the articles are appended to
    #[arg(long, global = true, default_value = "news_raw", value_name = "KEY")]
    stream: String,
    /// Consumer group whose lag is the pipeline backlog
    #[arg(long, global = true, default_value = "agentic", value_name = "NAME")]
    group: String,
    /// Pause writing while the backlog is at this many entries (resume below 90%); 0 disables
    #[arg(long, global = true, default_value_t = 1000, value_name = "N")]
    max_backlog: u64,
    /// Lifetime of the per-article dedup key fetcher:seen:{<stream>}:<id>
    #[arg(long, global = true, default_value_t = 86400, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    dedup_ttl: u64,
    /// Address of the Prometheus /metrics endpoint; "" disables it
    #[arg(long, global = true, default_value = "127.0.0.1:9187", value_name = "HOST:PORT")]
    metrics_addr: String,
    /// After the source is done (replay/generate end, rss --once), keep serving /metrics this long before exiting
    #[arg(long, global = true, default_value_t = 0.0, value_name = "SECS")]
    linger: f64,
}

#[derive(Subcommand, Debug)]
enum Source {
    /// Poll RSS 2.0 / RSS 1.0 / Atom feeds over HTTP(S) with conditional GET (ETag, Last-Modified)
    Rss {
        /// Feed URL (repeat for several feeds)
        #[arg(long = "url", required = true, value_name = "URL")]
        urls: Vec<String>,
        /// Seconds between polls of each feed (fractions allowed)
        #[arg(long, default_value_t = 300.0, value_name = "SECS")]
        interval: f64,
        /// Poll every feed once, then exit
        #[arg(long)]
        once: bool,
        /// HTTP timeout per request
        #[arg(long, default_value_t = 30.0, value_name = "SECS")]
        timeout: f64,
    },
    /// Replay a CSV (header row: title, text|description, [id, link, published]) or JSONL file at a steady rate
    Replay {
        /// The file (.csv is CSV; anything else is read as JSONL unless --format says otherwise)
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// File format
        #[arg(long, value_enum, default_value_t = replay::Format::Auto)]
        format: replay::Format,
        /// Articles per second (0 = as fast as Valkey answers)
        #[arg(long, default_value_t = 250.0, value_name = "N")]
        rate: f64,
        /// Start over at the end of the file, forever (ids of later passes get the suffix ~<pass>)
        #[arg(long = "loop")]
        looped: bool,
        /// Stop after sending this many articles
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
    },
    /// Generate realistic synthetic news articles (10 topics), deterministic for a seed
    Generate {
        /// Articles per second (0 = as fast as Valkey answers)
        #[arg(long, default_value_t = 50.0, value_name = "N")]
        rate: f64,
        /// Number of articles (default: unlimited)
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Seed; ids are syn-<seed>-<n> (default: the current Unix time)
        #[arg(long, value_name = "S")]
        seed: Option<u64>,
    },
}

/// The progress bar, when one is shown: log lines are printed "around" it.
static PROGRESS: OnceLock<ProgressBar> = OnceLock::new();

/// stderr writer that suspends the progress bar while a log line is written.
struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match PROGRESS.get() {
            Some(pb) if !pb.is_hidden() => pb.suspend(|| std::io::stderr().write_all(buf))?,
            _ => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

fn init_logging() {
    env_logger::Builder::new()
        .filter_level(log::LevelFilter::Info)
        .parse_default_env()
        .format_timestamp_millis()
        .format_target(false)
        .target(env_logger::Target::Pipe(Box::new(LogWriter)))
        .init();
}

fn positive(name: &str, v: f64) -> Result<f64, String> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("--{name} must be a number >= 0, got {v}"))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async_main(cli));
    // blocking reader threads may still wait on a closed channel: do not wait for them
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

async fn async_main(cli: Cli) -> ExitCode {
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn make_progress(len: Option<u64>) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = match len {
        Some(n) => {
            let pb = ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr());
            pb.set_style(
                ProgressStyle::with_template("{bar:40.cyan/blue} {pos}/{len} articles  {per_sec}  eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            pb
        }
        None => {
            let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            pb.set_style(
                ProgressStyle::with_template("{spinner} {pos} articles  {per_sec}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            pb
        }
    };
    pb.enable_steady_tick(Duration::from_millis(200));
    let _ = PROGRESS.set(pb.clone());
    Some(pb)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let common = cli.common;
    let linger = positive("linger", common.linger)?;
    let metrics = Arc::new(Metrics::new());
    if !common.metrics_addr.is_empty() {
        let listener = tokio::net::TcpListener::bind(&common.metrics_addr)
            .await
            .map_err(|e| format!("cannot listen on --metrics-addr {}: {e}", common.metrics_addr))?;
        let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| common.metrics_addr.clone());
        info!("metrics on http://{addr}/metrics");
        tokio::spawn(metrics::serve(listener, metrics.clone()));
    }

    let mut wcfg = WriterConfig {
        valkey: common.valkey.clone(),
        tls: writer::tls_certificates(common.tls_ca_cert.as_deref(), common.tls_cert.as_deref(), common.tls_key.as_deref())?,
        cluster: common.cluster,
        stream: common.stream.clone(),
        group: common.group.clone(),
        max_backlog: common.max_backlog,
        dedup_ttl: common.dedup_ttl,
        rate: None,
    };
    let (tx, rx) = mpsc::channel::<article::Article>(256);
    let started = Instant::now();

    // The source: a future that ends when everything was sent (never for a polling rss).
    let (source, progress): (tokio::task::JoinHandle<Result<(), String>>, Option<ProgressBar>) = match cli.source {
        Source::Rss { urls, interval, once, timeout } => {
            let interval = positive("interval", interval)?;
            if interval < 0.01 && !once {
                return Err("--interval must be at least 0.01 seconds".into());
            }
            let timeout = positive("timeout", timeout)?.max(0.1);
            for u in &urls {
                reqwest::Url::parse(u).map_err(|e| format!("invalid --url {u}: {e}"))?;
            }
            info!("rss: {} feed(s), every {interval}s{}", urls.len(), if once { ", once" } else { "" });
            let cfg = rss::RssConfig { urls, interval: Duration::from_secs_f64(interval), once, timeout: Duration::from_secs_f64(timeout) };
            let m = metrics.clone();
            (tokio::spawn(async move { rss::run(cfg, tx, m).await }), None)
        }
        Source::Replay { file, format, rate, looped, limit } => {
            let rate = positive("rate", rate)?;
            wcfg.rate = (rate > 0.0).then_some(rate);
            if !file.is_file() {
                return Err(format!("--file {}: no such file", file.display()));
            }
            let cfg = replay::ReplayConfig { file, format, looped, limit };
            let fmt = replay::resolve_format(&cfg);
            let len = if looped { limit } else { replay::estimate_records(&cfg.file, fmt).map(|n| limit.map_or(n, |l| l.min(n))) };
            info!("replay: {} as {:?} at {}", cfg.file.display(), fmt, if rate > 0.0 { format!("{rate}/s") } else { "full speed".into() });
            let progress = make_progress(len);
            let (m, pb) = (metrics.clone(), progress.clone());
            let handle = tokio::task::spawn_blocking(move || replay::run(cfg, tx, m, pb).map(|n| info!("replay: sent {n} article(s)")));
            (handle, progress)
        }
        Source::Generate { rate, count, seed } => {
            let rate = positive("rate", rate)?;
            wcfg.rate = (rate > 0.0).then_some(rate);
            let seed = seed.unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0));
            info!(
                "generate: seed {seed}, {} article(s) at {}",
                count.map_or("unlimited".into(), |c| c.to_string()),
                if rate > 0.0 { format!("{rate}/s") } else { "full speed".into() }
            );
            let progress = make_progress(count);
            let handle = tokio::spawn(async move {
                let mut n = 0u64;
                while count.is_none_or(|c| n < c) {
                    let (a, _) = generate::article(seed, n);
                    if tx.send(a).await.is_err() {
                        break;
                    }
                    n += 1;
                }
                Ok(())
            });
            (handle, progress)
        }
    };

    let writer = Writer::new(wcfg, metrics.clone(), progress.clone())
        .map_err(|e| format!("invalid --valkey {}: {e}", writer::redacted(&common.valkey)))?;
    let mut writer = tokio::spawn(writer.run(rx));
    let mut source = source;

    let work = async {
        let flatten_writer =
            |r: Result<redis::RedisResult<writer::WriterStats>, tokio::task::JoinError>| -> Result<writer::WriterStats, String> {
                r.map_err(|e| format!("writer task failed: {e}"))?.map_err(|e| format!("fatal Valkey error: {e}"))
            };
        tokio::select! {
            // The writer only ends by itself on a fatal error, or once the source is done.
            w = &mut writer => {
                let stats = flatten_writer(w)?;
                source.await.map_err(|e| format!("source task failed: {e}"))??;
                Ok(stats)
            }
            s = &mut source => {
                let s = s.map_err(|e| format!("source task failed: {e}"));
                let stats = flatten_writer(writer.await)?;
                s??;
                Ok(stats)
            }
        }
    };
    let outcome: Option<Result<writer::WriterStats, String>> = tokio::select! {
        r = work => Some(r),
        _ = shutdown_signal() => None,
    };
    if let Some(pb) = &progress {
        pb.finish_and_clear();
    }
    let summary = |m: &Metrics| {
        format!(
            "written {}, duplicates {}, malformed {}, feed errors {}, backpressure pauses {} ({:.1}s), reconnects {}, {:.1}s",
            m.written.total(),
            m.duplicates.get(),
            m.malformed.total(),
            m.feed_errors.total(),
            m.pauses.get(),
            m.paused_seconds(),
            m.reconnects.get(),
            started.elapsed().as_secs_f64()
        )
    };
    match outcome {
        None => {
            info!("signal received, stopping: {}", summary(&metrics));
            Ok(())
        }
        Some(Err(e)) => Err(e),
        Some(Ok(_stats)) => {
            metrics.source_done.set(1);
            info!("done: {}", summary(&metrics));
            if linger > 0.0 && !common.metrics_addr.is_empty() {
                info!("serving /metrics for {linger}s more (--linger)");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs_f64(linger)) => {}
                    _ = shutdown_signal() => {}
                }
            }
            Ok(())
        }
    }
}
