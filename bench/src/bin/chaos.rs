//! chaos: the whole stack under steady ingest while processes are killed with SIGKILL and
//! restarted in random order (issue 13 point 2). One phase per AOF fsync policy, each on a fresh
//! stack: a primary with the module, the tiny model and the in-server pipeline (AOF, `appendfsync`
//! always or everysec), a replica, agentic-fetcher generating articles, agentic-gateway with
//! browser-like WebSocket clients (they reconnect and resume with `after=<last id>`, as the UI
//! does), a classification sidecar on the CPU and a Python agent (agentic-user-reader).
//!
//!     cargo run --release -p agentic-bench --bin chaos -- [--seconds S] [--fsync always|everysec|both]
//!         [--rate R] [--seed N] [--users N] [--model DIR]
//!
//! Faults: kill -9 of the primary (restarted on its AOF), of the replica, of the fetcher (a new
//! one takes over with a new seed), of the gateway, of the sidecar and of the agent, and a full
//! resync of the replica (killed and restarted without its data). After each it measures the time
//! to recover from the kill: the primary, a new article in the all-topics feed and the replica
//! linked again; the replica, linked and caught up; the fetcher, its first article written; the
//! gateway, every socket reconnected; the sidecar, live again; the agent, serving metrics again.
//!
//! At the end (the fetcher stopped, the pipeline drained) it counts: articles ingested (the
//! fetcher's dedup keys left on the primary), articles acknowledged to the fetcher but missing
//! afterwards (a gap in one fetcher's numbering: the primary lost its last writes), articles
//! ingested but never delivered to a user who follows every topic, duplicates in feeds and on
//! sockets, entries a socket missed, and whether the replica's data equals the primary's
//! (DEBUG DIGEST). It exits non-zero when a fault did not recover, anything was duplicated, a
//! socket missed an entry, the digests differ, or, with appendfsync always, anything was lost.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::exit;
use std::thread;
use std::time::{Duration, Instant};

use agentic_bench::stack::{
    catch_interrupts, connect, http_ok, interrupted, random_interests, read_feed, replica_caught_up, replica_linked, sidecar_listed,
    wait_until, Sockets, Stack,
};
use agentic_bench::{agent_stat, cpu_model, Rng, TOPICS};
use agentic_tests::{make_kept_dir, workspace_dir};
use redis::{Connection, Value};

const RECOVERY_LIMIT: Duration = Duration::from_secs(90);
const CHECK_USER: &str = "chaos-all";
const SOCKET_USERS: usize = 4;

/// Unwinds (instead of exiting) so that every process started so far is stopped on the way out.
fn fail(msg: &str) -> ! {
    panic!("chaos: {msg}")
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    Primary,
    Replica,
    ReplicaFullResync,
    Fetcher,
    Gateway,
    Sidecar,
    Agent,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Primary => "kill -9 primary",
            Fault::Replica => "kill -9 replica",
            Fault::ReplicaFullResync => "replica full resync",
            Fault::Fetcher => "kill -9 fetcher",
            Fault::Gateway => "kill -9 gateway",
            Fault::Sidecar => "kill -9 sidecar",
            Fault::Agent => "kill -9 agent",
        }
    }
}

struct Options {
    seconds: u64,
    rate: u64,
    seed: u64,
    users: usize,
    model: PathBuf,
}

/// The newest entry id of a feed ("0-0" when empty).
fn newest_entry(c: &mut Connection, user: &str) -> Option<String> {
    let v: Value = redis::cmd("AGENT.FEED").arg(format!("user:{{{user}}}")).arg("COUNT").arg(1).query(c).ok()?;
    let Value::Array(entries) = v else { return Some("0-0".into()) };
    match entries.first() {
        Some(Value::Array(f)) => match f.first() {
            Some(Value::BulkString(id)) => Some(String::from_utf8_lossy(id).into_owned()),
            _ => Some("0-0".into()),
        },
        _ => Some("0-0".into()),
    }
}

fn seen_keys(c: &mut Connection) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor = "0".to_string();
    loop {
        let (next, keys): (String, Vec<String>) =
            match redis::cmd("SCAN").arg(&cursor).arg("MATCH").arg("fetcher:seen:{news_raw}:*").arg("COUNT").arg(1000).query(c) {
                Ok(v) => v,
                Err(e) => fail(&format!("SCAN: {e}")),
            };
        out.extend(keys.into_iter().filter_map(|k| k.strip_prefix("fetcher:seen:{news_raw}:").map(str::to_string)));
        if next == "0" {
            return out;
        }
        cursor = next;
    }
}

struct FaultRecord {
    fault: Fault,
    recovered: Option<Duration>,
}

struct PhaseResult {
    fsync: &'static str,
    faults: Vec<FaultRecord>,
    ingested: usize,
    acked_then_lost: usize,
    undelivered: usize,
    feed_duplicates: usize,
    socket_duplicates: u64,
    socket_missed: usize,
    socket_truncated: u64,
    socket_reconnects: u64,
    socket_error_frames: u64,
    digests_equal: bool,
    full_syncs: i64,
    unexpected: Vec<String>,
    seconds: f64,
}

/// Injects one fault and waits for the stack to recover; returns the time from the kill.
fn inject(stack: &mut Stack, fault: Fault, sockets: &Sockets, rng: &mut Rng) -> Option<Duration> {
    let down = Duration::from_millis(rng.below(1000) as u64);
    let started;
    match fault {
        Fault::Primary => {
            let before = stack.conn().and_then(|mut c| newest_entry(&mut c, CHECK_USER)).unwrap_or_else(|| "0-0".into());
            started = Instant::now();
            if let Some(p) = stack.primary.take() {
                p.kill9();
            }
            thread::sleep(down);
            stack.primary = Some(stack.primary_builder().start());
            let delivered = wait_until(RECOVERY_LIMIT, || {
                stack.conn().and_then(|mut c| newest_entry(&mut c, CHECK_USER)).is_some_and(|n| n != before && n != "0-0")
            });
            let linked = delivered && wait_until(RECOVERY_LIMIT, || replica_linked(stack.replica_port));
            let recovered = (delivered && linked).then(|| started.elapsed());
            stack.full_syncs += stack.sync_full();
            recovered
        }
        Fault::Replica | Fault::ReplicaFullResync => {
            let syncs_before = stack.sync_full();
            started = Instant::now();
            if let Some(r) = stack.replica.take() {
                r.kill9();
            }
            if fault == Fault::ReplicaFullResync {
                // Without its data the replica cannot continue where it was: the primary sends everything.
                if let Ok(entries) = std::fs::read_dir(&stack.replica_dir) {
                    for e in entries.flatten() {
                        let name = e.file_name();
                        if !name.to_string_lossy().ends_with(".log") {
                            let p = e.path();
                            let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
                        }
                    }
                }
            }
            thread::sleep(down);
            stack.replica = Some(stack.replica_builder().start());
            let ok = wait_until(RECOVERY_LIMIT, || replica_caught_up(stack.primary_port, stack.replica_port));
            let recovered = ok.then(|| started.elapsed());
            stack.full_syncs += stack.sync_full() - syncs_before;
            recovered
        }
        Fault::Fetcher => {
            started = Instant::now();
            if let Some(mut f) = stack.fetcher.take() {
                f.kill9();
            }
            thread::sleep(down);
            stack.start_fetcher();
            let first = format!("fetcher:seen:{{news_raw}}:syn-{}-0", stack.fetcher_seeds.last().copied().unwrap_or(0));
            let ok = wait_until(RECOVERY_LIMIT, || {
                stack.conn().is_some_and(|mut c| redis::cmd("EXISTS").arg(&first).query::<i64>(&mut c).unwrap_or(0) == 1)
            });
            ok.then(|| started.elapsed())
        }
        Fault::Gateway => {
            let before = sockets.connects();
            started = Instant::now();
            if let Some(mut g) = stack.gateway.take() {
                g.kill9();
            }
            thread::sleep(down);
            stack.start_gateway();
            let ok = wait_until(RECOVERY_LIMIT, || sockets.connects().iter().zip(&before).all(|(now, then)| now > then));
            ok.then(|| started.elapsed())
        }
        Fault::Sidecar => {
            started = Instant::now();
            if let Some(mut s) = stack.sidecar.take() {
                s.kill9();
            }
            // The module notices the dead sidecar after sidecar-ttl-ms; the new one registers anew.
            thread::sleep(down);
            stack.start_sidecar();
            let (port, id) = (stack.primary_port, stack.sidecar_id());
            let ok = wait_until(RECOVERY_LIMIT, || sidecar_listed(port, &id));
            ok.then(|| started.elapsed())
        }
        Fault::Agent => {
            started = Instant::now();
            if let Some(mut a) = stack.agent.take() {
                a.kill9();
            }
            thread::sleep(down);
            stack.start_agent();
            let port = stack.agent_port;
            let ok = wait_until(RECOVERY_LIMIT, || http_ok(port, "/metrics"));
            ok.then(|| started.elapsed())
        }
    }
}

fn run_phase(opts: &Options, fsync: &'static str, with_sidecar: bool, with_agent: bool) -> PhaseResult {
    let logs = make_kept_dir("agentic-chaos");
    let mut stack = Stack::new(fsync, &opts.model, logs.clone(), opts.rate, opts.seed);
    // Feeds long enough to hold the whole run, for the final count; seen-fp-ppm 1, since the seen
    // filter's false positives (skipped deliveries) would read as losses; every escalation allowed.
    stack.module_extra =
        ["feed-len", "100000", "seen-fp-ppm", "1", "classify-escalate-max-per-sec", "1000000"].iter().map(|s| s.to_string()).collect();
    println!("\n== phase appendfsync {fsync}: {} s of faults, {} articles/s, logs in {}", opts.seconds, opts.rate, logs.display());
    stack.start_servers().unwrap_or_else(|e| fail(&e));
    let mut c = stack.conn().unwrap_or_else(|| fail("cannot connect to the primary"));

    let mut rng = Rng::new(opts.seed ^ if fsync == "always" { 1 } else { 2 });
    let mut users: Vec<String> = (0..opts.users).map(|i| i.to_string()).collect();
    users.push(CHECK_USER.to_string());
    let mut pipe = redis::pipe();
    for u in &users {
        let mut cmd = redis::cmd("AGENT.SUBSCRIBE");
        cmd.arg(format!("user:{{{u}}}"));
        cmd.arg(if u == CHECK_USER { TOPICS.to_vec() } else { random_interests(&mut rng) });
        pipe.add_command(cmd).ignore();
    }
    let _: () = pipe.query(&mut c).unwrap_or_else(|e| fail(&format!("AGENT.SUBSCRIBE: {e}")));

    stack.start_gateway_ready().unwrap_or_else(|e| fail(&e));
    let mut socket_users: Vec<String> = vec![CHECK_USER.to_string()];
    socket_users.extend((0..SOCKET_USERS.min(opts.users)).map(|i| i.to_string()));
    let mut sockets = Sockets::start(stack.gateway_port, &socket_users);
    if with_sidecar {
        stack.start_sidecar_ready().unwrap_or_else(|e| fail(&e));
    }
    if with_agent {
        stack.start_agent();
    }
    if !wait_until(Duration::from_secs(30), || sockets.connects().iter().all(|&n| n >= 1)) {
        fail("the sockets did not connect");
    }
    stack.start_fetcher();
    drop(c);

    let mut faults: Vec<Fault> = vec![Fault::Primary, Fault::Replica, Fault::ReplicaFullResync, Fault::Fetcher, Fault::Gateway];
    if with_sidecar {
        faults.push(Fault::Sidecar);
    }
    if with_agent {
        faults.push(Fault::Agent);
    }
    let started = Instant::now();
    let mut records = Vec::new();
    let mut unexpected = Vec::new();
    let mut bag: Vec<Fault> = Vec::new();
    thread::sleep(Duration::from_secs(2));
    while started.elapsed() < Duration::from_secs(opts.seconds) && !interrupted() {
        if bag.is_empty() {
            bag = faults.clone();
            for i in (1..bag.len()).rev() {
                bag.swap(i, rng.below(i + 1));
            }
        }
        let fault = bag.pop().unwrap_or(Fault::Fetcher);
        let recovered = inject(&mut stack, fault, &sockets, &mut rng);
        match recovered {
            Some(d) => println!(
                "  {:>6.1} s  {:<22} recovered in {:>6.0} ms",
                started.elapsed().as_secs_f64(),
                fault.name(),
                d.as_secs_f64() * 1e3
            ),
            None => println!("  {:>6.1} s  {:<22} NOT RECOVERED within {RECOVERY_LIMIT:?}", started.elapsed().as_secs_f64(), fault.name()),
        }
        records.push(FaultRecord { fault, recovered });
        unexpected.extend(stack.unexpected_exits());
        thread::sleep(Duration::from_millis(1000 + rng.below(3000) as u64));
    }
    let seconds = started.elapsed().as_secs_f64();

    // Stop ingest, let the pipeline finish, let the sockets receive the last deliveries.
    if let Some(mut f) = stack.fetcher.take() {
        f.kill9();
    }
    let mut c = stack.conn().unwrap_or_else(|| fail("cannot connect to the primary at the end"));
    let drained = wait_until(Duration::from_secs(180), || {
        agent_stat(&mut c, "pipeline_backlog") == 0.0 && agent_stat(&mut c, "pipeline_inflight") == 0.0
    });
    if !drained {
        unexpected.push("the pipeline did not drain within 180 s".into());
    }
    let check_feed = read_feed(&mut c, CHECK_USER);
    let socket_log = sockets.logs[0].1.clone();
    wait_until(Duration::from_secs(30), || {
        let l = socket_log.lock().unwrap_or_else(|p| p.into_inner());
        check_feed.iter().all(|(_, a)| l.articles.contains_key(a))
    });
    sockets.finish();

    let ingested: Vec<String> = seen_keys(&mut c);
    let ingested_set: HashSet<&str> = ingested.iter().map(String::as_str).collect();
    // Per fetcher seed, the numbers written: a gap below the highest means an acknowledged write vanished.
    let mut by_seed: HashMap<u64, Vec<u64>> = HashMap::new();
    for id in &ingested {
        let mut parts = id.rsplitn(2, '-');
        if let (Some(n), Some(rest)) = (parts.next(), parts.next()) {
            if let (Ok(n), Some(Ok(seed))) = (n.parse::<u64>(), rest.strip_prefix("syn-").map(str::parse::<u64>)) {
                by_seed.entry(seed).or_default().push(n);
            }
        }
    }
    let acked_then_lost: usize = by_seed.values().map(|ns| (*ns.iter().max().unwrap_or(&0) as usize + 1).saturating_sub(ns.len())).sum();

    let mut feed_duplicates = 0;
    let mut feeds: HashMap<String, HashSet<String>> = HashMap::new();
    for u in &socket_users {
        let entries = if u == CHECK_USER { check_feed.clone() } else { read_feed(&mut c, u) };
        let mut set = HashSet::new();
        for (_, a) in entries {
            if !set.insert(a) {
                feed_duplicates += 1;
            }
        }
        feeds.insert(u.clone(), set);
    }
    let delivered = &feeds[CHECK_USER];
    let undelivered = ingested_set.iter().filter(|a| !delivered.contains(**a)).count();

    let mut socket_duplicates = 0;
    let mut socket_missed = 0;
    let mut socket_truncated = 0;
    let mut socket_reconnects = 0;
    let mut socket_error_frames = 0;
    for (u, log) in &sockets.logs {
        let l = log.lock().unwrap_or_else(|p| p.into_inner());
        socket_duplicates += l.articles.values().filter(|&&n| n > 1).map(|&n| (n - 1) as u64).sum::<u64>();
        socket_missed += feeds[u].iter().filter(|a| !l.articles.contains_key(*a)).count();
        socket_truncated += l.truncated;
        socket_reconnects += l.connects.saturating_sub(1);
        // While the primary restarts the gateway cannot read a feed: it says so and closes the
        // socket, and the client resumes from its last id (checked by the counts above).
        for e in &l.errors {
            if e.contains("cannot read the feed") {
                socket_error_frames += 1;
            } else {
                unexpected.push(format!("socket of {u}: error frame {e}"));
            }
        }
    }

    // The replica holds exactly the primary's data.
    let digests_equal = wait_until(Duration::from_secs(60), || {
        replica_caught_up(stack.primary_port, stack.replica_port) && {
            let (Some(mut p), Some(mut r)) = (connect(stack.primary_port), connect(stack.replica_port)) else { return false };
            let a: Option<String> = redis::cmd("DEBUG").arg("DIGEST").query(&mut p).ok();
            let b: Option<String> = redis::cmd("DEBUG").arg("DIGEST").query(&mut r).ok();
            a.is_some() && a == b
        }
    });
    let full_syncs = stack.full_syncs;
    unexpected.extend(stack.unexpected_exits());
    drop(c);
    drop(stack);
    let _ = std::fs::remove_dir_all(&logs);
    PhaseResult {
        fsync,
        faults: records,
        ingested: ingested.len(),
        acked_then_lost,
        undelivered,
        feed_duplicates,
        socket_duplicates,
        socket_missed,
        socket_truncated,
        socket_reconnects,
        socket_error_frames,
        digests_equal,
        full_syncs,
        unexpected,
        seconds,
    }
}

fn summary(r: &PhaseResult) -> bool {
    println!("\n-- appendfsync {}: {:.0} s, {} faults injected", r.fsync, r.seconds, r.faults.len());
    let mut kinds: Vec<Fault> = r.faults.iter().map(|f| f.fault).collect();
    kinds.sort_by_key(|f| f.name());
    kinds.dedup();
    let mut ok = true;
    for k in kinds {
        let times: Vec<f64> = r.faults.iter().filter(|f| f.fault == k).filter_map(|f| f.recovered).map(|d| d.as_secs_f64() * 1e3).collect();
        let failed = r.faults.iter().filter(|f| f.fault == k && f.recovered.is_none()).count();
        let max = times.iter().copied().fold(0.0, f64::max);
        let mean = if times.is_empty() { 0.0 } else { times.iter().sum::<f64>() / times.len() as f64 };
        println!(
            "  {:<22} x{:<3} recovery mean {:>6.0} ms, max {:>6.0} ms{}",
            k.name(),
            times.len() + failed,
            mean,
            max,
            if failed > 0 { format!(", {failed} NOT RECOVERED") } else { String::new() }
        );
        ok &= failed == 0;
    }
    println!("  articles ingested (acknowledged and still on the primary): {}", r.ingested);
    println!("  acknowledged to the fetcher, then lost with the primary's last writes: {}", r.acked_then_lost);
    println!("  ingested but not delivered to the all-topics feed: {}", r.undelivered);
    println!("  duplicates in feeds: {}; duplicates on sockets: {}", r.feed_duplicates, r.socket_duplicates);
    println!(
        "  feed entries a socket never received: {} ({} reconnects, {} truncated catch-ups, {} closed with \"cannot read the feed\" while the primary was down)",
        r.socket_missed, r.socket_reconnects, r.socket_truncated, r.socket_error_frames
    );
    println!(
        "  full resyncs of the replica: {}; replica data equal to the primary's (DEBUG DIGEST): {}",
        r.full_syncs,
        if r.digests_equal { "yes" } else { "NO" }
    );
    for u in &r.unexpected {
        println!("  UNEXPECTED: {u}");
    }
    ok &= r.undelivered == 0
        && r.feed_duplicates == 0
        && r.socket_duplicates == 0
        && r.socket_missed == 0
        && r.digests_equal
        && r.unexpected.is_empty();
    if r.fsync == "always" {
        ok &= r.acked_then_lost == 0;
    }
    ok
}

fn main() {
    let mut opts = Options { seconds: 90, rate: 20, seed: 1, users: 200, model: workspace_dir().join("model/out/tiny") };
    let mut fsyncs: Vec<&'static str> = vec!["always", "everysec"];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || args.next().unwrap_or_else(|| fail(&format!("{a} needs a value")));
        match a.as_str() {
            "--seconds" => opts.seconds = v().parse().unwrap_or_else(|_| fail("--seconds: a number")),
            "--rate" => opts.rate = v().parse().unwrap_or_else(|_| fail("--rate: a number")),
            "--seed" => opts.seed = v().parse().unwrap_or_else(|_| fail("--seed: a number")),
            "--users" => opts.users = v().parse().unwrap_or_else(|_| fail("--users: a number")),
            "--model" => opts.model = v().into(),
            "--fsync" => {
                fsyncs = match v().as_str() {
                    "always" => vec!["always"],
                    "everysec" => vec!["everysec"],
                    "both" => vec!["always", "everysec"],
                    other => fail(&format!("--fsync always|everysec|both, not {other}")),
                }
            }
            other => fail(&format!("unknown argument {other}")),
        }
    }
    if !opts.model.join("model.onnx").is_file() {
        fail(&format!("no model in {} (make tiny-model)", opts.model.display()));
    }
    for bin in ["agentic-fetcher", "agentic-gateway"] {
        if !workspace_dir().join("target/release").join(bin).is_file() {
            fail(&format!("target/release/{bin} is missing: cargo build --release -p {bin}"));
        }
    }
    let with_sidecar = Path::new(&workspace_dir().join("sidecar/.venv/bin/agentic-sidecar")).is_file();
    let with_agent = Path::new(&workspace_dir().join("agents-py-compat/.venv/bin/agentic-user-reader")).is_file();
    if !with_sidecar {
        println!("chaos: no sidecar (sidecar/.venv is missing: make test-sidecar creates it); its faults are skipped");
    }
    if !with_agent {
        println!("chaos: no Python agent (agents-py-compat/.venv is missing: make test-agents creates it); its faults are skipped");
    }
    let (a, b, c) = agentic_tests::server_version();
    println!("chaos: {} | valkey-server {a}.{b}.{c} | model {} | seed {}", cpu_model(), opts.model.display(), opts.seed);
    catch_interrupts();
    let results: Vec<PhaseResult> =
        fsyncs.iter().filter(|_| !interrupted()).map(|f| run_phase(&opts, f, with_sidecar, with_agent)).collect();
    let mut ok = !interrupted();
    for r in &results {
        ok &= summary(r);
    }
    println!("\nchaos: {}", if ok { "PASSED" } else { "FAILED" });
    if !ok {
        exit(1);
    }
}
