//! fanout_bench: the reference fan-out workload, run once against the server-side Lua baseline
//! (`lua/fanout_reference.lua`, no module) and once against `AGENT.FANOUT`, each on a fresh
//! valkey-server started by the test harness.
//!
//!     cargo run --release -p agentic-bench --bin fanout_bench -- [--users N] [--articles N]
//!         [--only lua|module] [--seed N] [--dup-percent P] [--module-arg NAME VALUE ...]
//!
//! The module is `$AGENTIC_MODULE` or `target/release/libagentic.so` (see agentic-tests).

use std::process::exit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use agentic_bench::{latency_summary, server_cpu_s, spawn_pinger, used_memory, Latency, Workload, TOPICS};
use agentic_tests::{workspace_dir, Server};
use redis::{Connection, Value};

const FEED_LEN: u64 = 100;
const SEEN_TTL_S: u64 = 86_400;
const TOPIC_MAXLEN: u64 = 10_000;
const PING_PERIOD: Duration = Duration::from_micros(200);

// Targets for the full default workload.
const TARGET_SPEEDUP: f64 = 30.0;
const TARGET_DELIVERIES_PER_S: f64 = 2_000_000.0;
const TARGET_PING_P99_US: f64 = 1000.0;
const TARGET_MEMORY_RATIO: f64 = 20.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum System {
    Lua,
    Module,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Lua => "lua",
            System::Module => "module",
        }
    }
}

#[derive(Debug)]
struct Opts {
    users: usize,
    articles: usize,
    dup_percent: usize,
    seed: u64,
    only: Option<System>,
    module_args: Vec<String>,
}

const USAGE: &str = "usage: fanout_bench [--users N] [--articles N] [--only lua|module] [--seed N] \
[--dup-percent P] [--module-arg NAME VALUE]...
defaults: 10000 users, 2000 articles, 10% resent, seed 42, both systems";

fn parse_opts() -> Opts {
    let mut o = Opts { users: 10_000, articles: 2_000, dup_percent: 10, seed: 42, only: None, module_args: Vec::new() };
    let mut args = std::env::args().skip(1);
    fn value(args: &mut impl Iterator<Item = String>, flag: &str) -> String {
        args.next().unwrap_or_else(|| {
            eprintln!("{flag} needs a value\n{USAGE}");
            exit(2)
        })
    }
    fn num<T: std::str::FromStr>(s: &str, flag: &str) -> T {
        s.parse().unwrap_or_else(|_| {
            eprintln!("{flag}: not a number: {s}\n{USAGE}");
            exit(2)
        })
    }
    while let Some(a) = args.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let val = |args: &mut std::iter::Skip<std::env::Args>| inline.clone().unwrap_or_else(|| value(args, &flag));
        match flag.as_str() {
            "--users" => o.users = num(&val(&mut args), &flag),
            "--articles" => o.articles = num(&val(&mut args), &flag),
            "--dup-percent" => o.dup_percent = num(&val(&mut args), &flag),
            "--seed" => o.seed = num(&val(&mut args), &flag),
            "--only" => {
                o.only = match val(&mut args).as_str() {
                    "lua" => Some(System::Lua),
                    "module" => Some(System::Module),
                    other => {
                        eprintln!("--only lua|module, not {other}\n{USAGE}");
                        exit(2)
                    }
                }
            }
            "--module-arg" => {
                let name = val(&mut args);
                let v = value(&mut args, &flag);
                o.module_args.push(name);
                o.module_args.push(v);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                exit(0)
            }
            other => {
                eprintln!("unknown argument {other}\n{USAGE}");
                exit(2)
            }
        }
    }
    if o.users == 0 || o.articles == 0 || o.dup_percent > 100 {
        eprintln!("--users and --articles must be > 0, --dup-percent <= 100\n{USAGE}");
        exit(2)
    }
    o
}

#[derive(Debug)]
struct RunResult {
    system: System,
    sends: usize,
    delivered: u64,
    duplicates: u64,
    wall: Duration,
    max_call: Duration,
    cpu_s: f64,
    mem_empty: u64,
    mem_after: u64,
    ping: Latency,
    sample_feed_len: String,
}

impl RunResult {
    fn deliveries_per_s(&self) -> f64 {
        self.delivered as f64 / self.wall.as_secs_f64().max(1e-9)
    }
    fn cpu_us_per_delivery(&self) -> f64 {
        if self.delivered == 0 {
            return f64::NAN;
        }
        self.cpu_s * 1e6 / self.delivered as f64
    }
}

fn die(server: &Server, what: &str, err: impl std::fmt::Display) -> ! {
    eprintln!("{what}: {err}\n--- server log tail ---\n{}", server.log_tail(30));
    exit(1)
}

/// `[delivered, N, duplicates, M]` (array or map, any string flavour) -> (N, M).
fn parse_fanout_reply(v: &Value) -> Result<(u64, u64), String> {
    let pairs: Vec<(&Value, &Value)> = match v {
        Value::Array(items) if items.len() % 2 == 0 => items.chunks(2).map(|c| (&c[0], &c[1])).collect(),
        Value::Map(kv) => kv.iter().map(|(k, v)| (k, v)).collect(),
        other => return Err(format!("unexpected AGENT.FANOUT reply {other:?}")),
    };
    let (mut d, mut m) = (None, None);
    for (k, val) in pairs {
        let key: String = redis::from_redis_value_ref(k).map_err(|e| format!("reply key: {e}"))?;
        let n: u64 = redis::from_redis_value_ref(val).map_err(|e| format!("reply value: {e}"))?;
        match key.as_str() {
            "delivered" => d = Some(n),
            "duplicates" => m = Some(n),
            _ => {}
        }
    }
    match (d, m) {
        (Some(d), Some(m)) => Ok((d, m)),
        _ => Err(format!("AGENT.FANOUT reply lacks delivered/duplicates: {v:?}")),
    }
}

fn seed_lua(server: &Server, conn: &mut Connection, w: &Workload) {
    let mut by_topic: Vec<Vec<usize>> = vec![Vec::new(); TOPICS.len()];
    for u in &w.users {
        for &t in &u.topics {
            by_topic[t].push(u.uid);
        }
    }
    let mut pipe = redis::pipe();
    for (t, uids) in by_topic.iter().enumerate() {
        for chunk in uids.chunks(1000) {
            pipe.cmd("SADD").arg(format!("subs:{}", TOPICS[t])).arg(chunk).ignore();
        }
    }
    if let Err(e) = pipe.query::<()>(conn) {
        die(server, "seeding subs:<topic> sets", e)
    }
}

fn seed_module(server: &Server, conn: &mut Connection, w: &Workload) {
    for chunk in w.users.chunks(1000) {
        let mut pipe = redis::pipe();
        for u in chunk {
            let topics: Vec<&str> = u.topics.iter().map(|&t| TOPICS[t]).collect();
            pipe.cmd("AGENT.SUBSCRIBE").arg(format!("user:{{{}}}", u.uid)).arg(topics);
        }
        match pipe.query::<Vec<i64>>(conn) {
            Ok(added) => {
                for (u, n) in chunk.iter().zip(added) {
                    if n as usize != u.topics.len() {
                        die(server, "AGENT.SUBSCRIBE", format!("user {} added {n}", u.uid))
                    }
                }
            }
            Err(e) => die(server, "AGENT.SUBSCRIBE", e),
        }
    }
}

fn run_system(system: System, w: &Workload, opts: &Opts) -> RunResult {
    let server = match system {
        System::Lua => Server::builder().no_module().start(),
        System::Module => {
            let args: Vec<&str> = opts.module_args.iter().map(String::as_str).collect();
            Server::builder().module_args(&args).start()
        }
    };
    let mut conn = server.conn();
    let mem_empty = used_memory(&mut conn);
    let t_seed = Instant::now();
    let sha = match system {
        System::Lua => {
            seed_lua(&server, &mut conn, w);
            let path = workspace_dir().join("lua/fanout_reference.lua");
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            let sha: String =
                redis::cmd("SCRIPT").arg("LOAD").arg(text).query(&mut conn).unwrap_or_else(|e| die(&server, "SCRIPT LOAD", e));
            sha
        }
        System::Module => {
            seed_module(&server, &mut conn, w);
            String::new()
        }
    };
    eprintln!(
        "[{}] server pid {} port {}: seeded {} users in {:.2?}; sending {} articles",
        system.name(),
        server.pid,
        server.port,
        w.users.len(),
        t_seed.elapsed(),
        w.sends.len()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(Barrier::new(2));
    let pinger = spawn_pinger(server.url(), PING_PERIOD, stop.clone(), ready.clone());
    ready.wait();

    let cpu0 = server_cpu_s(&mut conn);
    let (mut delivered, mut duplicates) = (0u64, 0u64);
    let mut max_call = Duration::ZERO;
    let progress_every = (w.sends.len() / 10).max(1);
    let start = Instant::now();
    for (i, &a) in w.sends.iter().enumerate() {
        let art = &w.articles[a];
        let t0 = Instant::now();
        let (d, m) = match system {
            System::Lua => {
                let r: redis::RedisResult<(u64, u64)> = redis::cmd("EVALSHA")
                    .arg(&sha)
                    .arg(0)
                    .arg(art.topic())
                    .arg(&art.id)
                    .arg(&art.payload)
                    .arg(FEED_LEN)
                    .arg(SEEN_TTL_S)
                    .arg(TOPIC_MAXLEN)
                    .query(&mut conn);
                r.unwrap_or_else(|e| die(&server, "EVALSHA fanout_reference", e))
            }
            System::Module => {
                let r: redis::RedisResult<Value> = redis::cmd("AGENT.FANOUT")
                    .arg(art.topic())
                    .arg(format!("doc:{{{}}}", art.id))
                    .arg(&art.payload)
                    .arg("STREAM")
                    .arg(format!("topic:{}", art.topic()))
                    .query(&mut conn);
                let v = r.unwrap_or_else(|e| die(&server, "AGENT.FANOUT", e));
                parse_fanout_reply(&v).unwrap_or_else(|e| die(&server, "AGENT.FANOUT", e))
            }
        };
        max_call = max_call.max(t0.elapsed());
        delivered += d;
        duplicates += m;
        if (i + 1) % progress_every == 0 {
            eprintln!("[{}] {}/{} articles, {delivered} delivered, {:.1?}", system.name(), i + 1, w.sends.len(), start.elapsed());
        }
    }
    let wall = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let cpu1 = server_cpu_s(&mut conn);
    let samples = pinger.join().expect("pinger thread panicked");
    let mem_after = used_memory(&mut conn);

    // Sanity check that feeds are bounded alike: length of user 0's feed.
    let sample_feed_len = match system {
        System::Lua => redis::cmd("LLEN").arg("feed:{0}").query::<usize>(&mut conn),
        System::Module => redis::cmd("AGENT.FEED").arg("user:{0}").arg("COUNT").arg(10_000).query::<Vec<Value>>(&mut conn).map(|v| v.len()),
    }
    .map(|n| n.to_string())
    .unwrap_or_else(|e| format!("error: {e}"));
    drop(conn);
    drop(server); // frees the memory before the next system starts

    RunResult {
        system,
        sends: w.sends.len(),
        delivered,
        duplicates,
        wall,
        max_call,
        cpu_s: cpu1 - cpu0,
        mem_empty,
        mem_after,
        ping: latency_summary(samples),
        sample_feed_len,
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

fn print_table(results: &[RunResult]) {
    let mut rows: Vec<(&str, Vec<String>)> = Vec::new();
    let col = |f: &dyn Fn(&RunResult) -> String| results.iter().map(f).collect::<Vec<_>>();
    rows.push(("articles sent", col(&|r| r.sends.to_string())));
    rows.push(("delivered", col(&|r| r.delivered.to_string())));
    rows.push(("duplicates", col(&|r| r.duplicates.to_string())));
    rows.push(("article loop wall (s)", col(&|r| format!("{:.3}", r.wall.as_secs_f64()))));
    rows.push(("deliveries/s", col(&|r| format!("{:.0}", r.deliveries_per_s()))));
    rows.push(("mean call (ms)", col(&|r| format!("{:.3}", r.wall.as_secs_f64() * 1e3 / r.sends.max(1) as f64))));
    rows.push(("max call (ms)", col(&|r| format!("{:.3}", r.max_call.as_secs_f64() * 1e3))));
    rows.push(("server CPU (s)", col(&|r| format!("{:.3}", r.cpu_s))));
    rows.push(("server CPU us/delivery", col(&|r| format!("{:.3}", r.cpu_us_per_delivery()))));
    rows.push(("used_memory after (MB)", col(&|r| mb(r.mem_after))));
    rows.push(("  growth over empty (MB)", col(&|r| mb(r.mem_after.saturating_sub(r.mem_empty)))));
    rows.push(("PING samples", col(&|r| r.ping.count.to_string())));
    rows.push(("PING p50 (us)", col(&|r| format!("{:.0}", r.ping.p50_us))));
    rows.push(("PING p99 (us)", col(&|r| format!("{:.0}", r.ping.p99_us))));
    rows.push(("PING max (us)", col(&|r| format!("{:.0}", r.ping.max_us))));
    rows.push(("feed length of user 0", col(&|r| r.sample_feed_len.clone())));

    print!("\n{:<26}", "metric");
    for r in results {
        print!("{:>16}", r.system.name());
    }
    println!();
    println!("{}", "-".repeat(26 + 16 * results.len()));
    for (name, vals) in rows {
        print!("{name:<26}");
        for v in vals {
            print!("{v:>16}");
        }
        println!();
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

fn main() {
    let opts = parse_opts();
    let w = Workload::generate(opts.seed, opts.users, opts.articles, opts.dup_percent);
    let (exp_d, exp_m) = w.expected_totals();
    let audience = w.audience();
    println!(
        "workload: {} users, {} articles (+{} resent, {}%), mean payload {} B, seed {}",
        w.users.len(),
        w.originals,
        w.sends.len() - w.originals,
        opts.dup_percent,
        w.mean_payload_len(),
        opts.seed
    );
    println!("audience per topic: {}", TOPICS.iter().zip(audience).map(|(t, a)| format!("{t}={a}")).collect::<Vec<_>>().join(" "));
    println!("exact totals: {exp_d} delivered, {exp_m} duplicates");
    println!(
        "lua: feed_len {FEED_LEN}, seen ttl {SEEN_TTL_S} s, topic maxlen {TOPIC_MAXLEN}; \
         module args: {:?}",
        opts.module_args
    );

    let systems: Vec<System> = match opts.only {
        Some(s) => vec![s],
        None => vec![System::Lua, System::Module],
    };
    let results: Vec<RunResult> = systems.iter().map(|&s| run_system(s, &w, &opts)).collect();
    print_table(&results);

    println!();
    for r in &results {
        if (r.delivered, r.duplicates) != (exp_d, exp_m) {
            let missed = exp_d as i64 - r.delivered as i64;
            println!(
                "WARNING: {} reported {} delivered / {} duplicates, exact is {exp_d} / {exp_m} \
                 ({missed} deliveries short = {:.4}% of new deliveries; a probabilistic seen \
                 filter accounts for at most its false-positive rate)",
                r.system.name(),
                r.delivered,
                r.duplicates,
                missed as f64 * 100.0 / exp_d.max(1) as f64
            );
        }
    }
    if let [a, b] = &results[..] {
        if (a.delivered, a.duplicates) != (b.delivered, b.duplicates) {
            println!(
                "WARNING: systems disagree: lua {}/{} vs module {}/{} (delivered/duplicates)",
                a.delivered, a.duplicates, b.delivered, b.duplicates
            );
        } else {
            println!("both systems agree on delivered and duplicate totals");
        }
    }

    let lua = results.iter().find(|r| r.system == System::Lua);
    let module = results.iter().find(|r| r.system == System::Module);
    println!("\ntargets (defined for the full default workload):");
    if let (Some(l), Some(m)) = (lua, module) {
        let speedup = m.deliveries_per_s() / l.deliveries_per_s().max(1e-9);
        let mem_ratio = l.mem_after as f64 / m.mem_after.max(1) as f64;
        let cpu_ratio = l.cpu_us_per_delivery() / m.cpu_us_per_delivery();
        println!("  deliveries/s module/lua = {speedup:.1}x (target >= {TARGET_SPEEDUP}x)   {}", verdict(speedup >= TARGET_SPEEDUP));
        println!(
            "  used_memory  lua/module = {mem_ratio:.1}x (target >= {TARGET_MEMORY_RATIO}x)   {}",
            verdict(mem_ratio >= TARGET_MEMORY_RATIO)
        );
        println!("  server CPU per delivery lua/module = {cpu_ratio:.1}x (no target)");
    }
    if let Some(m) = module {
        let dps = m.deliveries_per_s();
        println!("  module deliveries/s = {dps:.0} (target >= {TARGET_DELIVERIES_PER_S:.0})   {}", verdict(dps >= TARGET_DELIVERIES_PER_S));
        println!(
            "  module PING p99 = {:.0} us (target < {TARGET_PING_P99_US:.0} us)   {}",
            m.ping.p99_us,
            verdict(m.ping.p99_us < TARGET_PING_P99_US)
        );
    }
    if lua.is_none() || module.is_none() {
        println!("  (ratios need both systems; run without --only)");
    }
}
