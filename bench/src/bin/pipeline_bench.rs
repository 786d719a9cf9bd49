//! pipeline_bench: the whole ingest path on one server. 10,000 users with 2-4 interests; the
//! fetcher replays AG News items into news_raw at 1,000 articles/s for 60 s; the in-server
//! pipeline classifies (the module's default tier: the cascade), stores, appends to topic streams
//! and fans out. Prints ingest-to-feed latency (p50/p99, seen by blocked AGENT.FEED readers), the
//! pipeline's own XADD-to-ack lag, backlog over time, deliveries/s (followers reached: topics with
//! 1,000 followers or more go through shared timelines unless `--module-arg
//! fanout-shared-min-subscribers 0` asks for per-user feeds), which tier classified, PING
//! latency throughout, server CPU and used_memory, and lost / duplicated counts.
//!
//!     cargo run --release -p agentic-bench --bin pipeline_bench -- [--users N] [--rate R]
//!         [--seconds S] [--model DIR] [--readers N] [--reader-policy idle|batch|normal]
//!         [--module-arg NAME VALUE ...] [--server-arg NAME VALUE ...]
//!
//! The readers (20 by default, each a user following every topic, blocked in AGENT.FEED, a thread
//! each) stand in for clients on other machines: they run under Linux SCHED_IDLE, so a woken
//! reader never takes a core the server or the pinger wants, and each reply's arrival is the
//! kernel's receive timestamp, so their own wait for a core is not in the ingest-to-feed figure.
//! `--reader-policy normal` (or `batch`) has them compete with the server as co-located clients:
//! PING's figure with and without shows what that costs.
//!
//! Uses the real model when `make model` has built it, else the tiny test model (said in the
//! output). Needs target/release/agentic-fetcher (cargo build --release -p agentic-fetcher) and
//! ../shared/data/ag_news (skips without it).

use std::collections::HashSet;
use std::process::exit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use agentic_bench::stamped::StampedConnection;
use agentic_bench::{
    ag_news_dir, agent_stat, ingest_and_drain, latency_summary, server_cpu_s, spawn_pinger, start_fetcher, used_memory, wait_model_ready,
    Workload, TOPICS,
};
use agentic_tests::{parse_info_field, workspace_dir, Server};
use redis::{Connection, Value};

const TARGET_P99_MS: f64 = 50.0;
/// Topics with this many followers or more are delivered through shared timelines (feeds
/// assembled at read time), the setting the README recommends for audiences of thousands; with
/// `--module-arg fanout-shared-min-subscribers 0` every article goes to every follower's feed.
const SHARED_MIN_SUBSCRIBERS: &str = "1000";

fn fail(msg: &str) -> ! {
    eprintln!("pipeline_bench: {msg}");
    exit(2)
}

/// `fail` once the server runs: a panic unwinds and its drop stops the server, where `exit`
/// would leave it running.
fn abort_run(msg: &str) -> ! {
    panic!("pipeline_bench: {msg}")
}

fn stat(c: &mut Connection, name: &str) -> i64 {
    let v = agent_stat(c, name);
    if v.is_nan() {
        0
    } else {
        v as i64
    }
}

/// Puts the calling thread under Linux scheduling `policy` (SCHED_BATCH or SCHED_IDLE); None
/// leaves it as it is.
fn set_policy(policy: Option<libc::c_int>) {
    let Some(policy) = policy else { return };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sets the calling thread's own policy; the struct outlives the call.
    if unsafe { libc::sched_setscheduler(0, policy, &param) } != 0 {
        abort_run("sched_setscheduler refused the reader policy");
    }
}

/// A user following every topic, blocked on its feed, on a thread of its own under `policy`.
/// Arrivals are timed by the kernel's receive timestamp, so a reader that waits for a core does
/// not add that wait to the figure. Returns its latencies (ns) and how many replies lacked a
/// timestamp.
fn spawn_reader(
    port: u16,
    user: String,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
    policy: Option<libc::c_int>,
) -> thread::JoinHandle<(Vec<u64>, u64)> {
    thread::spawn(move || {
        set_policy(policy);
        let mut c = StampedConnection::connect(port).unwrap_or_else(|e| abort_run(&format!("reader connection: {e}")));
        let (mut lat, mut unstamped, mut after) = (Vec::new(), 0, "$".to_string());
        while !stop.load(Ordering::Relaxed) {
            let cmd = redis::cmd("AGENT.FEED").arg(&user).arg("COUNT").arg(1000).arg("AFTER").arg(&after).arg("BLOCK").arg(200).clone();
            let got = c.query(&cmd).unwrap_or_else(|e| abort_run(&format!("reader {user}: {e}")));
            unstamped += u64::from(!got.stamped);
            let arrived_ms = got.arrived_ns / 1_000_000;
            let Value::Array(entries) = got.reply else { continue };
            for e in entries {
                let Value::Array(f) = e else { continue };
                if let (Some(Value::BulkString(id)), Some(Value::BulkString(doc)), Some(Value::BulkString(payload))) =
                    (f.first(), f.get(2), f.get(3))
                {
                    after = String::from_utf8_lossy(id).into_owned();
                    seen.lock().unwrap().push(String::from_utf8_lossy(doc).into_owned());
                    if let Some(ingest) = ingest_ms(payload) {
                        lat.push(arrived_ms.saturating_sub(ingest) * 1_000_000);
                    }
                }
            }
        }
        (lat, unstamped)
    })
}

/// The `ingest_ms` the pipeline wrote into an article's JSON. Found by its key instead of parsing
/// the whole document: the readers share the two cores with the server, and a full parse of every
/// article in 20 readers cost more CPU than anything else they do.
fn ingest_ms(payload: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"ingest_ms\":";
    let at = payload.windows(KEY.len()).rposition(|w| w == KEY)? + KEY.len();
    let digits: &[u8] = &payload[at..];
    let end = digits.iter().position(|b| !b.is_ascii_digit()).unwrap_or(digits.len());
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

fn main() {
    let (mut users, mut rate, mut seconds, mut readers) = (10_000usize, 1_000u64, 60u64, 20usize);
    // The readers stand in for clients on other machines: by default they take no core the
    // server or the pinger wants (SCHED_IDLE). `--reader-policy normal` measures them co-located.
    let mut policy = Some(libc::SCHED_IDLE);
    let mut reader_policy = "idle".to_string();
    let mut model = workspace_dir().join("model/out/real");
    let mut module_args: Vec<String> = Vec::new();
    let mut server_args: Vec<(String, String)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || args.next().unwrap_or_else(|| fail(&format!("{a} needs a value")));
        match a.as_str() {
            "--users" => users = v().parse().unwrap_or_else(|_| fail("--users")),
            "--rate" => rate = v().parse().unwrap_or_else(|_| fail("--rate")),
            "--seconds" => seconds = v().parse().unwrap_or_else(|_| fail("--seconds")),
            "--readers" => readers = v().parse().unwrap_or_else(|_| fail("--readers")),
            "--model" => model = v().into(),
            "--reader-policy" => {
                reader_policy = v();
                policy = match reader_policy.as_str() {
                    "batch" => Some(libc::SCHED_BATCH),
                    "idle" => Some(libc::SCHED_IDLE),
                    "normal" => None,
                    _ => fail("--reader-policy: normal, batch or idle"),
                };
            }
            "--module-arg" => {
                module_args.push(v());
                module_args.push(v());
            }
            "--server-arg" => {
                let (name, value) = (v(), v());
                server_args.push((name, value));
            }
            _ => fail(&format!("unknown option {a}")),
        }
    }
    let news = ag_news_dir().join("ag_news_test.jsonl");
    if !news.is_file() {
        println!("pipeline_bench: skipped: AG News is not available ({})", news.display());
        return;
    }
    let fetcher_bin = workspace_dir().join("target/release/agentic-fetcher");
    if !fetcher_bin.is_file() {
        fail("target/release/agentic-fetcher is missing: cargo build --release -p agentic-fetcher");
    }
    if !model.join("model.onnx").is_file() {
        model = workspace_dir().join("model/out/tiny");
        if !model.join("model.onnx").is_file() {
            fail("no model: make model (or make tiny-model)");
        }
        println!("pipeline_bench: the real model is not built (make model): using the tiny test model");
    }
    let is_real = std::fs::canonicalize(&model).ok() == std::fs::canonicalize(workspace_dir().join("model/out/real")).ok();
    let which = if is_real { "real all-MiniLM-L6-v2" } else { "TINY TEST MODEL (not the real one)" };
    let model_arg = std::fs::canonicalize(&model).unwrap_or(model.clone()).display().to_string();
    let mut margs: Vec<&str> = vec!["model-dir", &model_arg, "pipeline", "yes"];
    margs.extend(module_args.iter().map(String::as_str));
    if !module_args.chunks(2).any(|p| p[0] == "fanout-shared-min-subscribers") {
        margs.extend(["fanout-shared-min-subscribers", SHARED_MIN_SUBSCRIBERS]);
    }
    let mut builder = Server::builder().module_args(&margs);
    for (name, value) in &server_args {
        builder = builder.arg(name, value);
    }
    let server = builder.start();
    let mut c = server.conn();
    wait_model_ready(&mut c, Duration::from_secs(120)).unwrap_or_else(|e| abort_run(&e));
    // Names what held the event loop for 10 ms or more (commands, and the module's timers).
    let _: () = redis::cmd("CONFIG").arg("SET").arg("latency-monitor-threshold").arg(10).query(&mut c).expect("CONFIG SET");
    let shared_min: Vec<String> =
        redis::cmd("CONFIG").arg("GET").arg("agentic.fanout-shared-min-subscribers").query(&mut c).expect("CONFIG GET");
    let delivery = match shared_min.get(1).map(String::as_str) {
        Some("0") | None => "every article to every follower's feed".to_string(),
        Some(n) => format!("shared timelines for topics with >= {n} followers (feeds assembled at read time)"),
    };
    println!(
        "pipeline_bench: {users} users, fetcher replay at {rate} articles/s for {seconds} s, model: {which}; delivery: {delivery}; \
         {readers} blocked readers following every topic (policy {reader_policy}); CPU {}",
        agentic_bench::cpu_model()
    );

    // Users: 2-4 random interests each, plus `readers` users following everything.
    let w = Workload::generate(42, users, 0, 0);
    let mut pipe = redis::pipe();
    for u in &w.users {
        let mut cmd = redis::cmd("AGENT.SUBSCRIBE");
        cmd.arg(format!("user:{{{}}}", u.uid));
        for &t in &u.topics {
            cmd.arg(TOPICS[t]);
        }
        pipe.add_command(cmd).ignore();
    }
    let reader_keys: Vec<String> = (0..readers).map(|i| format!("reader:{{{i}}}")).collect();
    for r in &reader_keys {
        pipe.cmd("AGENT.SUBSCRIBE").arg(r).arg(&TOPICS[..]).ignore();
    }
    pipe.query::<()>(&mut c).expect("seeding users");
    // Warm the topic vectors before the clock starts.
    let _: Value = redis::cmd("AGENT.CLASSIFY").arg("warm-up").query(&mut c).expect("warm-up");

    let stop = Arc::new(AtomicBool::new(false));
    let seen: Vec<Arc<Mutex<Vec<String>>>> = reader_keys.iter().map(|_| Arc::new(Mutex::new(Vec::new()))).collect();
    let reader_threads: Vec<_> =
        reader_keys.iter().zip(&seen).map(|(k, s)| spawn_reader(server.port, k.clone(), stop.clone(), s.clone(), policy)).collect();
    thread::sleep(Duration::from_millis(300));
    let cpu0 = server_cpu_s(&mut c);
    let deliveries0 = stat(&mut c, "pipeline_deliveries");
    let tiers0 = (stat(&mut c, "classify_tier_static"), stat(&mut c, "classify_tier_model"));
    let ping_stop = Arc::new(AtomicBool::new(false));
    let ping_ready = Arc::new(std::sync::Barrier::new(2));
    let pinger = spawn_pinger(server.url(), Duration::from_millis(1), ping_stop.clone(), ping_ready.clone());
    ping_ready.wait();
    let fetcher = start_fetcher(&fetcher_bin, &server.url(), Some(&news), rate, seconds).unwrap_or_else(|e| abort_run(&e));
    let t0 = Instant::now();
    let mut backlog_series = Vec::new();
    let ingest_s = ingest_and_drain(&mut c, fetcher, seconds, |c| backlog_series.push(stat(c, "pipeline_backlog")));
    let total_s = t0.elapsed().as_secs_f64();
    ping_stop.store(true, Ordering::Relaxed);
    let ping = latency_summary(pinger.join().expect("pinger"));
    let tiers = (stat(&mut c, "classify_tier_static") - tiers0.0, stat(&mut c, "classify_tier_model") - tiers0.1);
    thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let (mut lat, mut unstamped) = (Vec::new(), 0);
    for t in reader_threads {
        let (l, u) = t.join().expect("reader");
        lat.extend(l);
        unstamped += u;
    }
    let latency = latency_summary(lat);
    let cpu = server_cpu_s(&mut c) - cpu0;
    let deliveries = stat(&mut c, "pipeline_deliveries") - deliveries0;
    let written: i64 = {
        let v: Value = redis::cmd("XINFO").arg("STREAM").arg("news_raw").query(&mut c).expect("XINFO STREAM");
        let Value::Array(f) = v else { abort_run("XINFO STREAM reply") };
        f.chunks(2)
            .find(|p| matches!(&p[0], Value::BulkString(b) if b == b"entries-added"))
            .and_then(|p| if let Value::Int(n) = p[1] { Some(n) } else { None })
            .unwrap_or(0)
    };
    let delivered = stat(&mut c, "pipeline_delivered");
    let malformed = stat(&mut c, "pipeline_malformed");
    let lost = written - delivered - malformed;
    let mut duplicated = 0usize;
    let mut reader_docs = 0usize;
    let mut reader_min = usize::MAX;
    for s in &seen {
        let docs = s.lock().unwrap();
        let unique: HashSet<&String> = docs.iter().collect();
        duplicated += docs.len() - unique.len();
        reader_docs = reader_docs.max(unique.len());
        reader_min = reader_min.min(unique.len());
    }
    // The readers follow every topic: each should have every article written (a seen-filter's
    // false positive, say, would show here and not in `lost`).
    let missing =
        if seen.is_empty() { 0 } else { (written - malformed).max(0) as usize - reader_min.min((written - malformed).max(0) as usize) };
    let lag = (stat(&mut c, "pipeline_lag_ms_p50"), stat(&mut c, "pipeline_lag_ms_p99"), stat(&mut c, "pipeline_lag_ms_max"));
    println!("\nResults ({which}):");
    println!(
        "  articles written {written} in {ingest_s:.1} s ({:.1}/s), processed {delivered}, malformed {malformed}",
        written as f64 / ingest_s
    );
    println!(
        "  ingest-to-feed latency (blocked AGENT.FEED readers, policy {reader_policy}; kernel receive time, {unstamped} replies without): p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms ({} arrivals)",
        latency.p50_us / 1e3,
        latency.p99_us / 1e3,
        latency.max_us / 1e3,
        latency.count
    );
    println!("  pipeline XADD-to-ack lag: p50 {} ms  p99 {} ms  max {} ms", lag.0, lag.1, lag.2);
    println!("  backlog every second: {:?}", backlog_series);
    println!(
        "  classified by the static tier {} and by the encoder {} ({:.1}% escalated); tier mode {}",
        tiers.0,
        tiers.1,
        100.0 * tiers.1 as f64 / (tiers.0 + tiers.1).max(1) as f64,
        agentic_tests::info_field(&mut c, "agentic_classify", "agentic_tier_mode").unwrap_or_default()
    );
    println!("  PING throughout: p50 {:.0} us  p99 {:.0} us  max {:.0} us ({} pings)", ping.p50_us, ping.p99_us, ping.max_us, ping.count);
    println!(
        "  main thread: fan-out slices p99 {} us max {} us; pipeline ticks p99 {} us max {} us ({} stopped at pipeline-slice-us); \
         reader wake-ups moved to a later iteration {}",
        stat(&mut c, "fanout_slice_us_p99"),
        stat(&mut c, "fanout_slice_us_max"),
        stat(&mut c, "pipeline_tick_us_p99"),
        stat(&mut c, "pipeline_tick_us_max"),
        stat(&mut c, "pipeline_slice_yields"),
        stat(&mut c, "feed_wakeups_deferred")
    );
    println!("  latency monitor (events of 10 ms or more): {}", latency_latest(&mut c));
    println!("  main-thread time per command (INFO commandstats, whole run): {}", command_costs(&mut c));
    println!(
        "  deliveries/s {:.0} ({deliveries} followers reached in {total_s:.1} s; {} articles appended to shared timelines)",
        deliveries as f64 / total_s,
        stat(&mut c, "timeline_appends")
    );
    println!(
        "  server CPU {:.1} s ({:.0}% of one core); used_memory {:.1} MB",
        cpu,
        100.0 * cpu / total_s,
        used_memory(&mut c) as f64 / 1e6
    );
    println!(
        "  lost {lost} (not processed); missing from a reader's feed {missing} (worst reader); duplicated {duplicated} (in {} readers' feeds, {reader_min}-{reader_docs} distinct articles each)",
        seen.len()
    );
    println!(
        "\nTargets: p99 ingest-to-feed < {TARGET_P99_MS} ms with the real model: {:.1} ms: {}; lost 0: {}; duplicated 0: {}",
        latency.p99_us / 1e3,
        if latency.p99_us / 1e3 < TARGET_P99_MS && which.starts_with("real") { "met" } else { "MISSED (or not the real model)" },
        if lost == 0 && missing == 0 { "met" } else { "MISSED" },
        if duplicated == 0 { "met" } else { "MISSED" }
    );
    println!(
        "         PING p99 < 1 ms: {:.0} us: {} (readers: policy {reader_policy})",
        ping.p99_us,
        if ping.p99_us < 1000.0 { "met" } else { "MISSED" }
    );
}

/// Calls and microseconds per call of the commands this workload sends most, from INFO
/// commandstats: what each reader's round and each ingest costs the event loop.
fn command_costs(c: &mut redis::Connection) -> String {
    let Ok(info) = redis::cmd("INFO").arg("commandstats").query::<String>(c) else { return "unavailable".into() };
    let items: Vec<String> = ["agent.feed", "xadd", "xreadgroup", "xack", "ping"]
        .iter()
        .filter_map(|name| {
            let fields = parse_info_field(&info, &format!("cmdstat_{name}"))?;
            let field = |k: &str| fields.split(',').find_map(|f| f.strip_prefix(k)?.strip_prefix('=').map(str::to_string));
            Some(format!("{name} {} calls {} us/call", field("calls")?, field("usec_per_call")?))
        })
        .collect();
    if items.is_empty() {
        "none".into()
    } else {
        items.join("; ")
    }
}

/// LATENCY LATEST as `event: latest N ms, max M ms (at T)` items, or "none".
fn latency_latest(c: &mut redis::Connection) -> String {
    let Ok(Value::Array(rows)) = redis::cmd("LATENCY").arg("LATEST").query::<Value>(c) else { return "unavailable".into() };
    let items: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            let Value::Array(f) = r else { return None };
            let name = match f.first()? {
                Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                Value::SimpleString(s) => s.clone(),
                _ => return None,
            };
            let int = |i: usize| if let Some(Value::Int(n)) = f.get(i) { *n } else { 0 };
            Some(format!("{name}: latest {} ms, max {} ms", int(2), int(3)))
        })
        .collect();
    if items.is_empty() {
        "none".into()
    } else {
        items.join("; ")
    }
}
