//! gateway_bench: 10,000 concurrent WebSocket clients on one agentic-gateway over loopback while
//! the fetcher feeds the in-server pipeline at 250 articles/s. Every client is one user's browser
//! (users with 2-4 of the 10 topics, as in pipeline_bench). Prints ingest-to-browser latency
//! (p50/p99/max, from `ingest_ms` to the moment the client parsed the frame), the gateway's RSS
//! and CPU, resyncs and dropped queue entries, and the gap check: every delivery the module made
//! during the run must reach its browser exactly once.
//!
//!     cargo run --release -p agentic-bench --bin gateway_bench -- [--clients N] [--rate R]
//!         [--seconds S] [--model DIR] [--one-topic] [--gateway-arg ARG ...]
//!
//! Uses the tiny test model unless --model is given (the real model's ~200 articles/s on this
//! machine cannot carry 250/s; see pipeline_bench). Needs target/release/agentic-gateway and
//! agentic-fetcher. Replays AG News when ../shared/data/ag_news is present, else the fetcher's
//! synthetic generator.

use std::collections::HashSet;
use std::process::{exit, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentic_bench::{
    ag_news_dir, agent_stat, ingest_and_drain, latency_summary, now_ms, server_cpu_s, start_fetcher, wait_model_ready, ChildGuard,
    Workload, TOPICS,
};
use agentic_tests::{free_port, workspace_dir, Server};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio_tungstenite::tungstenite::Message;

const TARGET_P99_MS: f64 = 100.0;
const TARGET_RSS_MB: f64 = 500.0;

fn fail(msg: &str) -> ! {
    eprintln!("gateway_bench: {msg}");
    exit(2)
}

/// (user+system CPU seconds, RSS MB, peak RSS MB) of a process, from /proc.
fn proc_usage(pid: u32) -> (f64, f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu = (f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0))
        / ticks;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |field: &str| {
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (cpu, kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0)
}

fn own_cpu_s() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn raise_fd_limit() {
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Only what the benchmark checks; other fields are skipped, strings borrowed (no escapes in them).
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(default)]
    mode: &'a str,
    #[serde(default, borrow)]
    entries: Vec<Entry<'a>>,
}

#[derive(Deserialize)]
struct Entry<'a> {
    id: &'a str,
    article: Option<Article>,
}

#[derive(Deserialize)]
struct Article {
    ingest_ms: Option<u64>,
}

fn parse_id(s: &str) -> (u64, u64) {
    s.split_once('-').and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?))).unwrap_or((0, 0))
}

#[derive(Default)]
struct ClientResult {
    ids: Vec<(u64, u64)>,
    latencies_ns: Vec<u64>,
    resync_frames: u64,
    errors: u64,
}

struct Shared {
    connected: AtomicUsize,
    failed: AtomicUsize,
    received: AtomicU64,
    stop: AtomicBool,
}

async fn client(url: String, shared: Arc<Shared>) -> ClientResult {
    let mut r = ClientResult::default();
    let mut ws = None;
    for attempt in 0..20 {
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((s, _)) => {
                ws = Some(s);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await,
        }
    }
    let Some(mut ws) = ws else {
        shared.failed.fetch_add(1, Ordering::Relaxed);
        r.errors += 1;
        return r;
    };
    let mut first = true;
    while !shared.stop.load(Ordering::Relaxed) {
        let msg = match tokio::time::timeout(Duration::from_millis(500), ws.next()).await {
            Err(_) => continue,
            Ok(None) | Ok(Some(Err(_))) => {
                r.errors += 1;
                break;
            }
            Ok(Some(Ok(m))) => m,
        };
        let Message::Text(text) = msg else { continue };
        let now = now_ms();
        let Ok(frame) = serde_json::from_str::<Frame>(&text) else {
            r.errors += 1;
            continue;
        };
        if frame.kind != "entries" {
            r.errors += 1;
            continue;
        }
        if first {
            // The backlog: the feeds are empty before the run starts.
            first = false;
            shared.connected.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if frame.mode == "resync" {
            r.resync_frames += 1;
        }
        shared.received.fetch_add(frame.entries.len() as u64, Ordering::Relaxed);
        for e in frame.entries {
            r.ids.push(parse_id(e.id));
            if let Some(t) = e.article.and_then(|a| a.ingest_ms) {
                r.latencies_ns.push(now.saturating_sub(t) * 1_000_000);
            }
        }
    }
    r
}

fn gateway_metric(port: u16, name: &str) -> f64 {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return f64::NAN };
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(f64::NAN)
}

fn main() {
    let (mut clients, mut rate, mut seconds, mut one_topic) = (10_000usize, 250u64, 30u64, false);
    let mut model = workspace_dir().join("model/out/tiny");
    let mut gateway_args: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || args.next().unwrap_or_else(|| fail(&format!("{a} needs a value")));
        match a.as_str() {
            "--clients" => clients = v().parse().unwrap_or_else(|_| fail("--clients")),
            "--rate" => rate = v().parse().unwrap_or_else(|_| fail("--rate")),
            "--seconds" => seconds = v().parse().unwrap_or_else(|_| fail("--seconds")),
            "--model" => model = v().into(),
            "--one-topic" => one_topic = true,
            "--gateway-arg" => gateway_args.push(v()),
            _ => fail(&format!("unknown option {a}")),
        }
    }
    raise_fd_limit();
    let bin = |name: &str| {
        let p = workspace_dir().join("target/release").join(name);
        if !p.is_file() {
            fail(&format!("{} is missing: cargo build --release -p {name}", p.display()));
        }
        p
    };
    let (gateway_bin, fetcher_bin) = (bin("agentic-gateway"), bin("agentic-fetcher"));
    if !model.join("model.onnx").is_file() {
        fail(&format!("no model in {} (make tiny-model / make model)", model.display()));
    }
    let model_arg = std::fs::canonicalize(&model).unwrap_or(model.clone()).display().to_string();
    let is_real = std::fs::canonicalize(&model).ok() == std::fs::canonicalize(workspace_dir().join("model/out/real")).ok();
    let which = if is_real { "real all-MiniLM-L6-v2" } else { "tiny test model" };
    // seen-fp-ppm 1: exact delivery, so "every delivery reached its browser" is checkable exactly.
    let server = Server::builder().module_args(&["model-dir", &model_arg, "pipeline", "yes", "seen-fp-ppm", "1"]).start();
    let mut c = server.conn();
    wait_model_ready(&mut c, Duration::from_secs(120)).unwrap_or_else(|e| fail(&e));

    let w = Workload::generate(42, clients, 0, 0);
    let mut pipe = redis::pipe();
    for u in &w.users {
        let mut cmd = redis::cmd("AGENT.SUBSCRIBE");
        cmd.arg(format!("user:{{{}}}", u.uid));
        let topics = if one_topic { &u.topics[..1] } else { &u.topics[..] };
        for &t in topics {
            cmd.arg(TOPICS[t]);
        }
        pipe.add_command(cmd).ignore();
    }
    pipe.query::<()>(&mut c).expect("seeding users");
    let _: redis::Value = redis::cmd("AGENT.CLASSIFY").arg("warm-up").query(&mut c).expect("warm-up");

    let gport = free_port();
    let gateway = ChildGuard(
        Command::new(&gateway_bin)
            .args(["--valkey", &server.url(), "--listen", &format!("127.0.0.1:{gport}")])
            .args(&gateway_args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| fail(&format!("cannot start the gateway: {e}"))),
    );
    let gpid = gateway.0.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    while gateway_metric(gport, "gateway_pubsub_connects_total").is_nan() || gateway_metric(gport, "gateway_pubsub_connects_total") < 1.0 {
        if Instant::now() > deadline {
            fail("the gateway did not start");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let source = if ag_news_dir().join("ag_news_test.jsonl").is_file() { "AG News replay" } else { "synthetic generator" };
    println!(
        "gateway_bench: {clients} WebSocket clients ({} per user), pipeline fed at {rate} articles/s for {seconds} s ({source}), model: {which}, gateway args {gateway_args:?}",
        if one_topic { "1 topic" } else { "2-4 topics" }
    );

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let shared = Arc::new(Shared {
        connected: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        received: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let t_connect = Instant::now();
    let handles: Vec<_> = w
        .users
        .iter()
        .map(|u| {
            let url = format!("ws://127.0.0.1:{gport}/ws/users/{}", u.uid);
            runtime.spawn(client(url, shared.clone()))
        })
        .collect();
    while shared.connected.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed) < clients {
        if t_connect.elapsed() > Duration::from_secs(180) {
            fail(&format!("only {} of {clients} clients connected", shared.connected.load(Ordering::Relaxed)));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, rss_idle, _) = proc_usage(gpid);
    println!(
        "  connected {} clients in {:.1} s ({} failed); gateway RSS {rss_idle:.0} MB; Valkey clients: {}",
        shared.connected.load(Ordering::Relaxed),
        t_connect.elapsed().as_secs_f64(),
        shared.failed.load(Ordering::Relaxed),
        redis::cmd("INFO")
            .arg("clients")
            .query::<String>(&mut c)
            .ok()
            .and_then(|s| agentic_tests::parse_info_field(&s, "connected_clients"))
            .unwrap_or_default()
    );

    let deliveries0 = agent_stat(&mut c, "pipeline_deliveries");
    let (g_cpu0, _, _) = proc_usage(gpid);
    let (v_cpu0, client_cpu0) = (server_cpu_s(&mut c), own_cpu_s());
    let news = ag_news_dir().join("ag_news_test.jsonl");
    let fetcher =
        start_fetcher(&fetcher_bin, &server.url(), news.is_file().then_some(news.as_path()), rate, seconds).unwrap_or_else(|e| fail(&e));
    let t0 = Instant::now();
    let mut rss_peak: f64 = 0.0;
    let mut per_second = Vec::new();
    let mut last_received = 0;
    let ingest_s = ingest_and_drain(&mut c, fetcher, seconds, |_| {
        let (_, rss, _) = proc_usage(gpid);
        rss_peak = rss_peak.max(rss);
        let received = shared.received.load(Ordering::Relaxed);
        per_second.push(received - last_received);
        last_received = received;
    });
    let drain0 = Instant::now();
    // Let the last frames arrive: until nothing new for 2 s.
    let mut quiet_since = Instant::now();
    let mut seen = shared.received.load(Ordering::Relaxed);
    while quiet_since.elapsed() < Duration::from_secs(2) && drain0.elapsed() < Duration::from_secs(360) {
        std::thread::sleep(Duration::from_millis(200));
        let now = shared.received.load(Ordering::Relaxed);
        if now != seen {
            seen = now;
            quiet_since = Instant::now();
        }
    }
    let total_s = t0.elapsed().as_secs_f64();
    let (g_cpu1, rss_end, rss_hwm) = proc_usage(gpid);
    let (v_cpu1, client_cpu1) = (server_cpu_s(&mut c), own_cpu_s());
    let deliveries = (agent_stat(&mut c, "pipeline_deliveries") - deliveries0) as u64;
    let written = agent_stat(&mut c, "pipeline_delivered") as u64;
    shared.stop.store(true, Ordering::Relaxed);
    let results: Vec<ClientResult> =
        runtime.block_on(async { futures_util::future::join_all(handles).await.into_iter().map(|r| r.unwrap_or_default()).collect() });

    let mut unique_total = 0u64;
    let mut duplicates = 0u64;
    let mut out_of_order = 0u64;
    let mut resync_frames = 0u64;
    let mut errors = 0u64;
    let mut latencies = Vec::new();
    for r in &results {
        let set: HashSet<&(u64, u64)> = r.ids.iter().collect();
        unique_total += set.len() as u64;
        duplicates += (r.ids.len() - set.len()) as u64;
        out_of_order += r.ids.windows(2).filter(|p| p[0] >= p[1]).count() as u64;
        resync_frames += r.resync_frames;
        errors += r.errors;
        latencies.extend_from_slice(&r.latencies_ns);
    }
    // Exact check on a sample: the newest feed entries equal the newest entries each browser got.
    let mut sample_mismatch = 0;
    for (u, r) in w.users.iter().zip(&results).step_by((clients / 200).max(1)) {
        let feed: Vec<Vec<redis::Value>> =
            redis::cmd("AGENT.FEED").arg(format!("user:{{{}}}", u.uid)).arg("COUNT").arg(50).query(&mut c).expect("AGENT.FEED");
        let mut feed_ids: Vec<(u64, u64)> =
            feed.iter().filter_map(|e| redis::from_redis_value_ref::<String>(&e[0]).ok()).map(|s| parse_id(&s)).collect();
        feed_ids.reverse();
        let tail = &r.ids[r.ids.len().saturating_sub(feed_ids.len())..];
        if tail != feed_ids.as_slice() {
            sample_mismatch += 1;
        }
    }
    let gaps = deliveries.saturating_sub(unique_total);
    let lat = latency_summary(latencies);
    let resyncs = gateway_metric(gport, "gateway_resyncs_total{reason=\"slow_client\"}")
        + gateway_metric(gport, "gateway_resyncs_total{reason=\"reconnect\"}");
    let dropped = gateway_metric(gport, "gateway_entries_dropped_total");
    let g_cpu = g_cpu1 - g_cpu0;
    println!("\nResults ({which}, {clients} clients):");
    println!("  articles through the pipeline {written} in {ingest_s:.1} s ({:.1}/s)", written as f64 / ingest_s);
    println!(
        "  deliveries made by the module {deliveries} ({:.0}/s); received by browsers {unique_total} distinct",
        deliveries as f64 / total_s
    );
    println!("  entries received per second: {per_second:?}");
    println!(
        "  ingest-to-browser latency: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms ({} samples)",
        lat.p50_us / 1e3,
        lat.p99_us / 1e3,
        lat.max_us / 1e3,
        lat.count
    );
    println!(
        "  gateway: RSS peak {rss_peak:.0} MB (VmHWM {rss_hwm:.0} MB, end {rss_end:.0} MB); CPU {g_cpu:.1} s = {:.0}% of one core",
        100.0 * g_cpu / total_s
    );
    println!(
        "  Valkey CPU {:.1} s = {:.0}% of one core; load clients' CPU {:.1} s = {:.0}%",
        v_cpu1 - v_cpu0,
        100.0 * (v_cpu1 - v_cpu0) / total_s,
        client_cpu1 - client_cpu0,
        100.0 * (client_cpu1 - client_cpu0) / total_s
    );
    println!("  gaps {gaps}; duplicates {duplicates}; out of order {out_of_order}; resyncs {resyncs} ({resync_frames} resync frames); dropped from queues {dropped}; client errors {errors}; sampled feeds not matching {sample_mismatch}");
    println!(
        "\nTargets: p99 < {TARGET_P99_MS} ms: {:.1} ms {}; 0 gaps: {}; gateway RSS < {TARGET_RSS_MB} MB: {rss_peak:.0} MB {}",
        lat.p99_us / 1e3,
        if lat.p99_us / 1e3 < TARGET_P99_MS { "met" } else { "MISSED" },
        if gaps == 0 && duplicates == 0 && sample_mismatch == 0 { "met" } else { "MISSED" },
        if rss_peak.max(rss_hwm) < TARGET_RSS_MB { "met" } else { "MISSED" }
    );
    drop(gateway);
}
