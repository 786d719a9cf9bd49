//! soak: the whole stack under steady, changing load for a long time (issue 13 point 3): the
//! fetcher's synthetic articles at a steady rate through the in-server pipeline (AOF everysec, a
//! replica), users created and deleted, subscriptions changing, feeds read over Valkey, over the
//! gateway's HTTP API and by WebSocket clients, a sidecar and a Python agent reading feeds.
//!
//!     cargo run --release -p agentic-bench --bin soak -- [--seconds S] [--interval S] [--rate R]
//!         [--users N] [--model DIR] [--seed N]
//!
//! Retention is scaled down (doc-ttl 60 s, seen-ttl 120 s, topic-maxlen 200, news_raw a minute of
//! articles, fetcher dedup keys 60 s) so the steady state arrives within minutes instead of a day. Every interval it prints the
//! RSS of every process, the servers' used_memory and the interval's PING p99. It fails on growth
//! that does not level off (the least-squares trend over the last half of the run adds more than
//! 4 MB of RSS or 2 MB of used_memory, and more than 3%), on any error, on a process that exits,
//! or on PING p99 above 1 ms over the run.

use std::process::exit;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use agentic_bench::stack::{catch_interrupts, connect, http_ok, interrupted, random_interests, rss_bytes, Sockets, Stack};
use agentic_bench::{cpu_model, Rng, TOPICS};
use agentic_tests::{info_field, make_kept_dir, workspace_dir};

const PING_P99_LIMIT_US: u64 = 1000;
const SOCKET_USERS: usize = 5;
/// Growth over the last half of the run that still counts as level (also at most 3% of the mean).
const RSS_ALLOWANCE: u64 = 4 << 20;
const USED_MEMORY_ALLOWANCE: u64 = 2 << 20;

/// Unwinds (instead of exiting) so that every process started so far is stopped on the way out.
fn fail(msg: &str) -> ! {
    panic!("soak: {msg}")
}

#[derive(Default)]
struct Counters {
    ops: AtomicU64,
    users_created: AtomicU64,
    users_deleted: AtomicU64,
    subscription_changes: AtomicU64,
    feed_reads: AtomicU64,
    http_reads: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Counters {
    fn error(&self, what: String) {
        let mut e = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if e.len() < 20 {
            e.push(what);
        }
    }
}

/// Users come and go, interests change: one operation every 20 ms.
fn churn(port: u16, base_users: usize, seed: u64, stop: Arc<AtomicBool>, n: Arc<Counters>) {
    let Some(mut c) = connect(port) else {
        n.error("churn: cannot connect".into());
        return;
    };
    let mut rng = Rng::new(seed);
    let mut live: std::collections::VecDeque<u64> = Default::default();
    let mut next = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let r: redis::RedisResult<()> = match rng.below(4) {
            // The population stays at ~300 churned users and each user's interest count stays
            // the same: a drifting workload (more users, or more deliveries per user as interests
            // pile up) grows the data set and would read as a leak.
            0 | 1 if live.len() < 300 => {
                next += 1;
                live.push_back(next);
                n.users_created.fetch_add(1, Ordering::Relaxed);
                redis::cmd("AGENT.SUBSCRIBE").arg(format!("user:{{churn-{next}}}")).arg(random_interests(&mut rng)).query(&mut c)
            }
            0 | 1 => {
                let id = live.pop_front().unwrap_or(0);
                n.users_deleted.fetch_add(1, Ordering::Relaxed);
                redis::cmd("DEL").arg(format!("user:{{churn-{id}}}")).query(&mut c)
            }
            2 => {
                let u = format!("user:{{{}}}", rng.below(base_users));
                n.subscription_changes.fetch_add(1, Ordering::Relaxed);
                redis::cmd("AGENT.INTERESTS").arg(&u).query::<Vec<String>>(&mut c).and_then(|held| {
                    let free: Vec<&str> = TOPICS.iter().copied().filter(|t| !held.iter().any(|h| h == t)).collect();
                    if held.is_empty() || free.is_empty() {
                        return Ok(());
                    }
                    redis::pipe()
                        .cmd("AGENT.UNSUBSCRIBE")
                        .arg(&u)
                        .arg(&held[rng.below(held.len())])
                        .ignore()
                        .cmd("AGENT.SUBSCRIBE")
                        .arg(&u)
                        .arg(free[rng.below(free.len())])
                        .ignore()
                        .query(&mut c)
                })
            }
            _ => {
                n.feed_reads.fetch_add(1, Ordering::Relaxed);
                redis::cmd("AGENT.FEED")
                    .arg(format!("user:{{{}}}", rng.below(base_users)))
                    .arg("COUNT")
                    .arg(20)
                    .query::<redis::Value>(&mut c)
                    .map(|_| ())
            }
        };
        n.ops.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = r {
            n.error(format!("churn: {e}"));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Reads users' feeds through the gateway's HTTP API, ten a second.
fn http_reader(port: u16, base_users: usize, seed: u64, stop: Arc<AtomicBool>, n: Arc<Counters>) {
    let mut rng = Rng::new(seed);
    while !stop.load(Ordering::Relaxed) {
        let path = format!("/api/users/{}/feed", rng.below(base_users));
        if !http_ok(port, &path) {
            n.error(format!("GET {path} did not answer 200"));
        }
        n.http_reads.fetch_add(1, Ordering::Relaxed);
        thread::sleep(Duration::from_millis(100));
    }
}

/// PING every 10 ms, alternately to the stack's primary and to a plain valkey-server without the
/// module (the baseline: what this machine gives an idle server woken every 10 ms); the samples
/// of the current interval in microseconds, (primary, baseline).
fn pinger(port: u16, baseline_port: u16, stop: Arc<AtomicBool>, samples: Arc<Mutex<(Vec<u64>, Vec<u64>)>>, n: Arc<Counters>) {
    let (Some(mut c), Some(mut b)) = (connect(port), connect(baseline_port)) else {
        n.error("pinger: cannot connect".into());
        return;
    };
    let mut to_baseline = false;
    while !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        if let Err(e) = redis::cmd("PING").query::<String>(if to_baseline { &mut b } else { &mut c }) {
            n.error(format!("PING: {e}"));
        }
        let us = t0.elapsed().as_micros() as u64;
        let mut s = samples.lock().unwrap_or_else(|p| p.into_inner());
        if to_baseline {
            s.1.push(us)
        } else {
            s.0.push(us)
        }
        drop(s);
        to_baseline = !to_baseline;
        thread::sleep(Duration::from_millis(5));
    }
}

fn p99(mut v: Vec<u64>) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

/// A series that keeps growing: over the last half of the run its least-squares trend adds more
/// than `allowance` and more than 3% of its mean. A series that levels off has a flat last half,
/// whatever it did while the stack warmed up.
fn keeps_growing(series: &[u64], allowance: u64) -> Option<String> {
    let half = &series[series.len() / 2..];
    if half.len() < 3 {
        return None;
    }
    let n = half.len() as f64;
    let mean_x = (n - 1.0) / 2.0;
    let mean_y = half.iter().map(|&v| v as f64).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, &v) in half.iter().enumerate() {
        sxy += (i as f64 - mean_x) * (v as f64 - mean_y);
        sxx += (i as f64 - mean_x).powi(2);
    }
    let growth = sxy / sxx * (n - 1.0);
    (growth > allowance as f64 && growth > 0.03 * mean_y)
        .then(|| format!("+{:.1} MB over the last half (mean {:.1} MB)", growth / 1e6, mean_y / 1e6))
}

fn main() {
    let mut seconds = 600u64;
    let mut interval = 0u64;
    let mut rate = 20u64;
    let mut users = 1000usize;
    let mut seed = 1u64;
    let mut model = workspace_dir().join("model/out/tiny");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || args.next().unwrap_or_else(|| fail(&format!("{a} needs a value")));
        match a.as_str() {
            "--seconds" => seconds = v().parse().unwrap_or_else(|_| fail("--seconds: a number")),
            "--interval" => interval = v().parse().unwrap_or_else(|_| fail("--interval: a number")),
            "--rate" => rate = v().parse().unwrap_or_else(|_| fail("--rate: a number")),
            "--users" => users = v().parse().unwrap_or_else(|_| fail("--users: a number")),
            "--seed" => seed = v().parse().unwrap_or_else(|_| fail("--seed: a number")),
            "--model" => model = v().into(),
            other => fail(&format!("unknown argument {other}")),
        }
    }
    if interval == 0 {
        interval = (seconds / 20).clamp(5, 300);
    }
    if !model.join("model.onnx").is_file() {
        fail(&format!("no model in {} (make tiny-model)", model.display()));
    }
    let with_sidecar = workspace_dir().join("sidecar/.venv/bin/agentic-sidecar").is_file();
    let with_agent = workspace_dir().join("agents-py-compat/.venv/bin/agentic-user-reader").is_file();
    let (va, vb, vc) = agentic_tests::server_version();
    println!(
        "soak: {} | valkey-server {va}.{vb}.{vc} | {seconds} s, a row every {interval} s | {rate} articles/s | {users} users plus churn",
        cpu_model()
    );
    if !with_sidecar || !with_agent {
        println!(
            "soak: without {} (make python-venvs installs them)",
            [(!with_sidecar).then_some("the sidecar"), (!with_agent).then_some("the Python agent")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" and ")
        );
    }

    catch_interrupts();
    let logs = make_kept_dir("agentic-soak");
    let mut stack = Stack::new("everysec", &model, logs.clone(), rate, seed);
    let news_raw_len = (rate * 60).max(100).to_string();
    stack.module_extra = ["doc-ttl", "60", "seen-ttl", "120", "topic-maxlen", "200", "pipeline-stream-maxlen", &news_raw_len]
        .iter()
        .map(|s| s.to_string())
        .collect();
    stack.fetcher_extra = vec!["--dedup-ttl".into(), "60".into()];
    stack.start_servers().unwrap_or_else(|e| fail(&e));
    let mut c = stack.conn().unwrap_or_else(|| fail("cannot connect to the primary"));
    let mut rng = Rng::new(seed);
    let mut pipe = redis::pipe();
    for u in 0..users {
        pipe.cmd("AGENT.SUBSCRIBE").arg(format!("user:{{{u}}}")).arg(random_interests(&mut rng)).ignore();
    }
    let _: () = pipe.query(&mut c).unwrap_or_else(|e| fail(&format!("AGENT.SUBSCRIBE: {e}")));
    stack.start_gateway_ready().unwrap_or_else(|e| fail(&e));
    let socket_users: Vec<String> = (0..SOCKET_USERS.min(users)).map(|u| u.to_string()).collect();
    let mut sockets = Sockets::start(stack.gateway_port, &socket_users);
    if with_sidecar {
        stack.start_sidecar_ready().unwrap_or_else(|e| fail(&e));
    }
    if with_agent {
        stack.start_agent();
    }
    stack.start_fetcher();

    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let samples = Arc::new(Mutex::new((Vec::new(), Vec::new())));
    let baseline = agentic_tests::Server::builder().no_module().start();
    let mut workers = Vec::new();
    {
        let (p, st, n) = (stack.primary_port, stop.clone(), counters.clone());
        workers.push(thread::spawn(move || churn(p, users, seed, st, n)));
        let (g, st, n) = (stack.gateway_port, stop.clone(), counters.clone());
        workers.push(thread::spawn(move || http_reader(g, users, seed + 1, st, n)));
        let (p, bp, st, s, n) = (stack.primary_port, baseline.port, stop.clone(), samples.clone(), counters.clone());
        workers.push(thread::spawn(move || pinger(p, bp, st, s, n)));
    }

    // One series per process's RSS, plus used_memory of both servers.
    let mut names: Vec<String> = vec!["primary".into(), "replica".into(), "fetcher".into(), "gateway".into()];
    if with_sidecar {
        names.push("sidecar".into());
    }
    if with_agent {
        names.push("agent".into());
    }
    let rss_names = names.len();
    names.push("primary used_memory".into());
    names.push("replica used_memory".into());
    let mut series: Vec<Vec<u64>> = vec![Vec::new(); names.len()];
    let mut all_pings = Vec::new();
    let mut all_baseline = Vec::new();
    let mut ping_p99s = Vec::new();
    let mut unexpected = Vec::new();
    println!(
        "\n{:>6} | {} | ping p99 (plain server) | keys | users | articles | learner samples",
        "t (s)",
        names.iter().map(|n| format!("{n:>10}")).collect::<Vec<_>>().join(" ")
    );
    let started = Instant::now();
    let mut next_row = Duration::from_secs(interval);
    while started.elapsed() < Duration::from_secs(seconds) && !interrupted() {
        while started.elapsed() < next_row && !interrupted() {
            thread::sleep(Duration::from_millis(100).min(next_row.saturating_sub(started.elapsed())));
        }
        next_row += Duration::from_secs(interval);
        let mut pids = vec![
            stack.primary.as_ref().map(|s| s.pid),
            stack.replica.as_ref().map(|s| s.pid),
            stack.fetcher.as_ref().and_then(|p| p.pid()),
            stack.gateway.as_ref().and_then(|p| p.pid()),
        ];
        if with_sidecar {
            pids.push(stack.sidecar.as_ref().and_then(|p| p.pid()));
        }
        if with_agent {
            pids.push(stack.agent.as_ref().and_then(|p| p.pid()));
        }
        let mut row: Vec<u64> = pids.iter().map(|p| p.and_then(rss_bytes).unwrap_or(0)).collect();
        let used = |port: u16| {
            connect(port).and_then(|mut c| info_field(&mut c, "memory", "used_memory")).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        };
        row.push(used(stack.primary_port));
        row.push(used(stack.replica_port));
        let (pings, base) = std::mem::take(&mut *samples.lock().unwrap_or_else(|p| p.into_inner()));
        let interval_p99 = p99(pings.clone());
        let baseline_p99 = p99(base.clone());
        all_pings.extend(pings);
        all_baseline.extend(base);
        ping_p99s.push(interval_p99);
        let keys: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap_or(-1);
        let user_keys = agentic_bench::agent_stat(&mut c, "user_keys");
        let articles = agentic_bench::agent_stat(&mut c, "pipeline_acked");
        let samples_kept = agentic_bench::agent_stat(&mut c, "classify_learn_samples_kept");
        println!(
            "{:>6.0} | {} | {:>5} us ({baseline_p99} us) | {keys} | {user_keys} | {articles} | {samples_kept}",
            started.elapsed().as_secs_f64(),
            row.iter().map(|b| format!("{:>7.1} MB", *b as f64 / 1e6)).collect::<Vec<_>>().join(" "),
            interval_p99
        );
        for (s, v) in series.iter_mut().zip(&row) {
            s.push(*v);
        }
        unexpected.extend(stack.unexpected_exits());
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    sockets.finish();
    if interrupted() {
        // Ctrl-C reached the servers too (one process group): no summary, only the cleanup.
        println!("\nsoak: interrupted");
        drop(c);
        drop(stack);
        drop(baseline);
        let _ = std::fs::remove_dir_all(&logs);
        exit(130);
    }

    let mut ok = true;
    println!("\nsoak summary ({:.0} s):", started.elapsed().as_secs_f64());
    for (i, (name, s)) in names.iter().zip(&series).enumerate() {
        let allowance = if i < rss_names { RSS_ALLOWANCE } else { USED_MEMORY_ALLOWANCE };
        match keeps_growing(s, allowance) {
            Some(g) => {
                ok = false;
                println!("  {name:<20} KEEPS GROWING: {g}");
            }
            None => println!(
                "  {name:<20} levels off: first {:.1} MB, peak {:.1} MB, last {:.1} MB",
                *s.first().unwrap_or(&0) as f64 / 1e6,
                *s.iter().max().unwrap_or(&0) as f64 / 1e6,
                *s.last().unwrap_or(&0) as f64 / 1e6
            ),
        }
    }
    let ping = p99(all_pings);
    let worst = ping_p99s.iter().copied().max().unwrap_or(0);
    println!(
        "  PING p99 over the run {ping} us (limit {PING_P99_LIMIT_US} us); worst interval {worst} us; a plain valkey-server pinged alongside: p99 {} us",
        p99(all_baseline)
    );
    ok &= ping <= PING_P99_LIMIT_US;
    let n = &counters;
    println!(
        "  operations: {} churn ({} users created, {} deleted, {} subscription changes, {} feed reads), {} HTTP feed reads",
        n.ops.load(Ordering::Relaxed),
        n.users_created.load(Ordering::Relaxed),
        n.users_deleted.load(Ordering::Relaxed),
        n.subscription_changes.load(Ordering::Relaxed),
        n.feed_reads.load(Ordering::Relaxed),
        n.http_reads.load(Ordering::Relaxed)
    );
    let socket_entries: usize = sockets.logs.iter().map(|(_, l)| l.lock().unwrap_or_else(|p| p.into_inner()).articles.len()).sum();
    let socket_dups: u64 = sockets
        .logs
        .iter()
        .map(|(_, l)| l.lock().unwrap_or_else(|p| p.into_inner()).articles.values().filter(|&&k| k > 1).count() as u64)
        .sum();
    let socket_errors: Vec<String> =
        sockets.logs.iter().flat_map(|(_, l)| l.lock().unwrap_or_else(|p| p.into_inner()).errors.clone()).collect();
    println!("  WebSocket clients: {socket_entries} articles received, {socket_dups} duplicates, {} error frames", socket_errors.len());
    ok &= socket_dups == 0;
    let errors = n.errors.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for e in errors.iter().chain(&socket_errors).chain(&unexpected) {
        println!("  ERROR: {e}");
        ok = false;
    }
    drop(c);
    drop(stack);
    drop(baseline);
    let _ = std::fs::remove_dir_all(&logs);
    println!("\nsoak: {}", if ok { "PASSED" } else { "FAILED" });
    if !ok {
        exit(1);
    }
}
