//! wake_bench: many blocked AGENT.FEED readers, one write that makes them all ready. Readers
//! (3,000 by default, one per user, each on its own connection) wait with `AFTER $ BLOCK 0` on
//! users who follow one topic; each round an AGENT.FANOUT to that topic (through its shared
//! timeline unless `--per-user-feeds`) is followed at once by a PING on another connection. Prints
//! the PING's round trip (how long the event loop was busy with the readers) and the time until
//! every reader had its reply, for `feed-wake-batch` at its default and for each value given.
//!
//!     cargo run --release -p agentic-bench --bin wake_bench -- [--readers N] [--rounds R]
//!         [--per-user-feeds] [--batch N ...]
//!
//! The module is `$AGENTIC_MODULE` or `target/release/libagentic.so` (see agentic-tests): point
//! it at an older build to compare. Needs about N + 100 open files.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::exit;
use std::time::{Duration, Instant};

use agentic_bench::{cpu_model, latency_summary};
use agentic_tests::Server;

fn fail(msg: &str) -> ! {
    eprintln!("wake_bench: {msg}");
    exit(2)
}

fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

/// Reads from a blocked reader's connection until its reply names `doc`.
fn read_reply(s: &mut TcpStream, doc: &str) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(doc) {
        let n = s.read(&mut buf).unwrap_or_else(|e| fail(&format!("reader: {e}")));
        if n == 0 {
            fail("a reader's connection closed");
        }
        got.extend_from_slice(&buf[..n]);
    }
}

struct Round {
    ping_ns: u64,
    all_answered_ns: u64,
}

fn run(readers: usize, rounds: usize, shared: bool, batch: Option<&str>) -> (Vec<Round>, i64) {
    let shared_min = if shared { "1" } else { "0" };
    let mut margs = vec!["fanout-shared-min-subscribers", shared_min];
    if let Some(b) = batch {
        margs.extend(["feed-wake-batch", b]);
    }
    let server = Server::builder().module_args(&margs).arg("--maxclients", &(readers + 100).to_string()).start();
    let mut c = server.conn();
    let users: Vec<String> = (0..readers).map(|i| format!("user:{{r{i}}}")).collect();
    let mut pipe = redis::pipe();
    for u in &users {
        pipe.cmd("AGENT.SUBSCRIBE").arg(u).arg("news").ignore();
    }
    pipe.query::<()>(&mut c).unwrap_or_else(|e| fail(&format!("subscribing: {e}")));
    let addr = format!("127.0.0.1:{}", server.port);
    let mut sockets: Vec<TcpStream> =
        users.iter().map(|_| TcpStream::connect(&addr).unwrap_or_else(|e| fail(&format!("connect: {e} (open-file limit?)")))).collect();
    let mut pinger = BufReader::new(TcpStream::connect(&addr).unwrap_or_else(|e| fail(&format!("connect: {e}"))));
    let mut writer = TcpStream::connect(&addr).unwrap_or_else(|e| fail(&format!("connect: {e}")));
    let mut writer_in = BufReader::new(writer.try_clone().unwrap_or_else(|e| fail(&e.to_string())));
    let blocked = |c: &mut redis::Connection| -> usize {
        agentic_tests::info_field(c, "clients", "blocked_clients").and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    let mut out = Vec::new();
    for round in 0..rounds + 1 {
        for (s, u) in sockets.iter_mut().zip(&users) {
            s.write_all(&resp(&["AGENT.FEED", u, "AFTER", "$", "BLOCK", "0"])).unwrap_or_else(|e| fail(&e.to_string()));
        }
        let since = Instant::now();
        while blocked(&mut c) < readers {
            if since.elapsed() > Duration::from_secs(60) {
                fail("the readers did not all block");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        let doc = format!("doc:{{w{round}}}");
        let t0 = Instant::now();
        writer.write_all(&resp(&["AGENT.FANOUT", "news", &doc, "{\"title\":\"wake\"}"])).unwrap_or_else(|e| fail(&e.to_string()));
        pinger.get_mut().write_all(&resp(&["PING"])).unwrap_or_else(|e| fail(&e.to_string()));
        let mut line = String::new();
        pinger.read_line(&mut line).unwrap_or_else(|e| fail(&e.to_string()));
        let ping_ns = t0.elapsed().as_nanos() as u64;
        for s in sockets.iter_mut() {
            read_reply(s, &doc);
        }
        let all_answered_ns = t0.elapsed().as_nanos() as u64;
        // The fan-out's reply: an array of four (two bulk strings, two integers).
        let mut line = Vec::new();
        let mut next_line = |line: &mut Vec<u8>| {
            line.clear();
            writer_in.read_until(b'\n', line).unwrap_or_else(|e| fail(&e.to_string()));
        };
        next_line(&mut line);
        if !line.starts_with(b"*4") {
            fail(&format!("AGENT.FANOUT replied {}", String::from_utf8_lossy(&line)));
        }
        for _ in 0..4 {
            next_line(&mut line);
            if line.starts_with(b"$") {
                next_line(&mut line);
            }
        }
        if round > 0 {
            // Round 0 warms the connections and the server's allocations up.
            out.push(Round { ping_ns, all_answered_ns });
        }
    }
    let deferred = agentic_bench::agent_stat(&mut c, "feed_wakeups_deferred");
    (out, if deferred.is_nan() { -1 } else { deferred as i64 })
}

fn main() {
    let (mut readers, mut rounds, mut shared) = (3_000usize, 20usize, true);
    let mut batches: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || args.next().unwrap_or_else(|| fail(&format!("{a} needs a value")));
        match a.as_str() {
            "--readers" => readers = v().parse().unwrap_or_else(|_| fail("--readers")),
            "--rounds" => rounds = v().parse().unwrap_or_else(|_| fail("--rounds")),
            "--per-user-feeds" => shared = false,
            "--batch" => batches.push(v()),
            _ => fail(&format!("unknown option {a}")),
        }
    }
    println!(
        "wake_bench: {readers} blocked AGENT.FEED readers, {rounds} rounds, delivery {}; CPU {}",
        if shared { "through the topic's shared timeline" } else { "to each follower's feed" },
        cpu_model()
    );
    let mut settings: Vec<Option<String>> = vec![None];
    settings.extend(batches.into_iter().map(Some));
    for batch in settings {
        let (rounds, deferred) = run(readers, rounds, shared, batch.as_deref());
        let ping = latency_summary(rounds.iter().map(|r| r.ping_ns).collect());
        let all = latency_summary(rounds.iter().map(|r| r.all_answered_ns).collect());
        println!(
            "  feed-wake-batch {:>9}: PING sent with the write p50 {:>7.0} us  max {:>7.0} us; every reader answered p50 {:>6.1} ms  max {:>6.1} ms; \
             feed_wakeups_deferred {deferred}",
            batch.as_deref().unwrap_or("(default)"),
            ping.p50_us,
            ping.max_us,
            all.p50_us / 1e3,
            all.max_us / 1e3
        );
    }
}
