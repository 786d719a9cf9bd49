//! The reference fan-out workload (users, articles, resends), generated deterministically from a
//! seed so that every system under test gets exactly the same input, plus small statistics helpers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

pub mod ag_news;
pub mod stack;
pub mod stamped;

use agentic_tests::info_field;
use redis::Connection;

pub const TOPICS: [&str; 10] =
    ["politics", "business", "technology", "sports", "health", "climate", "science", "education", "entertainment", "finance"];

/// xorshift64* - tiny, fast, deterministic; good enough to draw a workload.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        // splitmix the seed once so that small seeds do not start in a low-entropy state
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is negligible for the small n used here).
    pub fn below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0);
        ((self.next_u64() >> 11) % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub uid: usize,
    /// 2-4 distinct indices into [`TOPICS`].
    pub topics: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct Article {
    pub id: String,
    /// index into [`TOPICS`]
    pub topic: usize,
    /// ~1.1 KB of JSON
    pub payload: String,
}

impl Article {
    pub fn topic(&self) -> &'static str {
        TOPICS[self.topic]
    }
}

#[derive(Debug, Clone)]
pub struct Workload {
    pub users: Vec<User>,
    pub articles: Vec<Article>,
    /// Indices into `articles`, in send order: every article once, then the resent duplicates.
    pub sends: Vec<usize>,
    pub originals: usize,
}

const WORDS: [&str; 48] = [
    "agents",
    "valkey",
    "market",
    "policy",
    "energy",
    "research",
    "players",
    "season",
    "council",
    "budget",
    "vaccine",
    "climate",
    "storm",
    "rates",
    "inflation",
    "students",
    "teachers",
    "startup",
    "launch",
    "report",
    "analysts",
    "record",
    "growth",
    "election",
    "minister",
    "festival",
    "premiere",
    "satellite",
    "discovery",
    "genome",
    "hospital",
    "league",
    "final",
    "emissions",
    "carbon",
    "currency",
    "shares",
    "earnings",
    "software",
    "network",
    "security",
    "court",
    "ruling",
    "summit",
    "trade",
    "study",
    "survey",
    "museum",
];

fn words(rng: &mut Rng, out: &mut String, target_len: usize) {
    let mut first = true;
    while out.len() < target_len {
        if !first {
            out.push(' ');
        }
        first = false;
        out.push_str(WORDS[rng.below(WORDS.len())]);
    }
}

fn make_article(rng: &mut Rng, n: usize, topic: usize) -> Article {
    let id = format!("art-{n:06}");
    let mut title = String::new();
    let title_len = 40 + rng.below(30);
    words(rng, &mut title, title_len);
    let slug = TOPICS[topic];
    let day = 1 + rng.below(28);
    let (h, m, s) = (rng.below(24), rng.below(60), rng.below(60));
    let head = format!("{{\"id\":\"{id}\",\"title\":\"{title}\",\"summary\":\"");
    let tail = format!(
        "\",\"topic\":\"{slug}\",\"url\":\"https://news.example.com/{slug}/{id}\",\
         \"published\":\"2025-03-{day:02}T{h:02}:{m:02}:{s:02}Z\"}}"
    );
    let total = 1050 + rng.below(101); // 1050..=1150 bytes
    let mut summary = String::new();
    words(rng, &mut summary, total.saturating_sub(head.len() + tail.len()));
    Article { id, topic, payload: format!("{head}{summary}{tail}") }
}

impl Workload {
    /// `users` users with 2-4 distinct random topics, `articles` articles with a uniform random
    /// topic, then `dup_percent`% of the articles (distinct, random) sent a second time.
    pub fn generate(seed: u64, users: usize, articles: usize, dup_percent: usize) -> Workload {
        let mut rng = Rng::new(seed);
        let users = (0..users)
            .map(|uid| {
                let k = rng.range(2, 4);
                let mut pool: Vec<usize> = (0..TOPICS.len()).collect();
                // partial Fisher-Yates: the first k entries are k distinct topics
                for i in 0..k {
                    let j = i + rng.below(pool.len() - i);
                    pool.swap(i, j);
                }
                pool.truncate(k);
                User { uid, topics: pool }
            })
            .collect();
        let list: Vec<Article> = (0..articles)
            .map(|n| {
                let topic = rng.below(TOPICS.len());
                make_article(&mut rng, n, topic)
            })
            .collect();
        let dups = articles * dup_percent / 100;
        let mut order: Vec<usize> = (0..articles).collect();
        for i in 0..dups {
            let j = i + rng.below(articles - i);
            order.swap(i, j);
        }
        let mut sends: Vec<usize> = (0..articles).collect();
        sends.extend_from_slice(&order[..dups]);
        Workload { users, articles: list, sends, originals: articles }
    }

    /// Subscribers per topic index.
    pub fn audience(&self) -> [usize; TOPICS.len()] {
        let mut a = [0usize; TOPICS.len()];
        for u in &self.users {
            for &t in &u.topics {
                a[t] += 1;
            }
        }
        a
    }

    /// (delivered, duplicates) an exact fan-out must report over all sends.
    pub fn expected_totals(&self) -> (u64, u64) {
        let audience = self.audience();
        let mut delivered = 0u64;
        let mut duplicates = 0u64;
        for (i, &a) in self.sends.iter().enumerate() {
            let n = audience[self.articles[a].topic] as u64;
            if i < self.originals {
                delivered += n;
            } else {
                duplicates += n;
            }
        }
        (delivered, duplicates)
    }

    pub fn mean_payload_len(&self) -> usize {
        if self.articles.is_empty() {
            return 0;
        }
        self.articles.iter().map(|a| a.payload.len()).sum::<usize>() / self.articles.len()
    }
}

/// Latency summary in microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    pub count: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

/// Nearest-rank percentiles of samples in nanoseconds.
pub fn latency_summary(mut samples_ns: Vec<u64>) -> Latency {
    if samples_ns.is_empty() {
        return Latency::default();
    }
    samples_ns.sort_unstable();
    let rank = |q: f64| {
        let r = (q * samples_ns.len() as f64).ceil() as usize;
        samples_ns[r.clamp(1, samples_ns.len()) - 1] as f64 / 1000.0
    };
    Latency { count: samples_ns.len(), p50_us: rank(0.50), p99_us: rank(0.99), max_us: samples_ns[samples_ns.len() - 1] as f64 / 1000.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_workload() {
        let a = Workload::generate(7, 500, 100, 10);
        let b = Workload::generate(7, 500, 100, 10);
        assert_eq!(a.sends, b.sends);
        for (x, y) in a.articles.iter().zip(&b.articles) {
            assert_eq!(x.payload, y.payload);
        }
        for (x, y) in a.users.iter().zip(&b.users) {
            assert_eq!(x.topics, y.topics);
        }
        let c = Workload::generate(8, 500, 100, 10);
        assert_ne!(a.sends, c.sends);
    }

    #[test]
    fn users_have_two_to_four_distinct_topics() {
        let w = Workload::generate(1, 2000, 10, 10);
        let mut sizes = [0usize; 5];
        for u in &w.users {
            let mut t = u.topics.clone();
            t.sort_unstable();
            t.dedup();
            assert_eq!(t.len(), u.topics.len(), "distinct topics");
            assert!((2..=4).contains(&t.len()));
            sizes[t.len()] += 1;
        }
        assert!(sizes[2] > 0 && sizes[3] > 0 && sizes[4] > 0, "{sizes:?}");
        assert!(w.audience().iter().all(|&a| a > 0));
    }

    #[test]
    fn articles_are_json_of_about_1_1_kb() {
        let w = Workload::generate(3, 10, 300, 10);
        for a in &w.articles {
            let len = a.payload.len();
            assert!((1050..=1160).contains(&len), "payload length {len}");
            assert!(a.payload.starts_with(&format!("{{\"id\":\"{}\"", a.id)));
            assert!(a.payload.contains(&format!("\"topic\":\"{}\"", a.topic())));
            assert!(a.payload.ends_with("Z\"}"));
        }
        let m = w.mean_payload_len();
        assert!((1080..=1120).contains(&m), "mean {m}");
    }

    #[test]
    fn ten_percent_distinct_resends_after_the_originals() {
        let w = Workload::generate(5, 10, 2000, 10);
        assert_eq!(w.sends.len(), 2200);
        assert_eq!(&w.sends[..2000], &(0..2000).collect::<Vec<_>>()[..]);
        let mut d = w.sends[2000..].to_vec();
        d.sort_unstable();
        d.dedup();
        assert_eq!(d.len(), 200);
    }

    #[test]
    fn percentiles() {
        let l = latency_summary((1..=100u64).map(|v| v * 1000).collect());
        assert_eq!(l.p50_us, 50.0);
        assert_eq!(l.p99_us, 99.0);
        assert_eq!(l.max_us, 100.0);
        assert_eq!(latency_summary(vec![]).count, 0);
    }
}

// ---------------------------------------------------------------------------------------------
// Server-side measurements shared by the benchmarks.

pub fn server_cpu_s(conn: &mut Connection) -> f64 {
    let f = |conn: &mut Connection, name: &str| {
        info_field(conn, "cpu", name).and_then(|v| v.parse::<f64>().ok()).unwrap_or_else(|| panic!("INFO cpu has no numeric {name}"))
    };
    f(conn, "used_cpu_sys") + f(conn, "used_cpu_user")
}

pub fn used_memory(conn: &mut Connection) -> u64 {
    info_field(conn, "memory", "used_memory").and_then(|v| v.parse().ok()).expect("INFO memory has used_memory")
}

/// A thread with its own connection that PINGs every ~200 us until `stop`; returns round trips
/// in nanoseconds.
pub fn spawn_pinger(url: String, period: Duration, stop: Arc<AtomicBool>, ready: Arc<Barrier>) -> thread::JoinHandle<Vec<u64>> {
    thread::spawn(move || {
        let mut conn = redis::Client::open(url).and_then(|c| c.get_connection()).expect("pinger connection");
        let mut samples = Vec::with_capacity(1 << 20);
        ready.wait();
        while !stop.load(Ordering::Relaxed) {
            let t0 = Instant::now();
            let _: String = redis::cmd("PING").query(&mut conn).expect("PING");
            let rtt = t0.elapsed();
            samples.push(rtt.as_nanos() as u64);
            if let Some(rest) = period.checked_sub(rtt) {
                thread::sleep(rest);
            }
        }
        samples
    })
}

// ---------------------------------------------------------------------------------------------
// AG News (research-only licence: read from ../shared, never copied into the project).

/// One labelled news item: `title. description`, as the reference enricher classifies it.
#[derive(Clone)]
pub struct NewsItem {
    pub text: String,
    pub label: String,
}

/// `<workspace>/../shared/data/ag_news`, or `$AG_NEWS_DIR`.
pub fn ag_news_dir() -> std::path::PathBuf {
    match std::env::var_os("AG_NEWS_DIR") {
        Some(d) if !d.is_empty() => std::path::PathBuf::from(d),
        _ => agentic_tests::workspace_dir().join("../shared/data/ag_news"),
    }
}

/// Reads `file` of the AG News folder; None (with the reason) when it is absent.
pub fn load_ag_news(file: &str) -> Result<Vec<NewsItem>, String> {
    let path = ag_news_dir().join(file);
    let body = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
            let field = |k: &str| {
                v.get(k).and_then(|x| x.as_str()).map(str::to_string).ok_or_else(|| format!("{}:{}: no {k}", path.display(), i + 1))
            };
            Ok(NewsItem { text: format!("{}. {}", field("title")?, field("text")?), label: field("label")? })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Driving AGENT.CLASSIFY from several connections at once.

/// The best topic of an AGENT.CLASSIFY reply.
pub fn best_topic(v: &redis::Value) -> Option<String> {
    match v {
        redis::Value::Array(items) => match items.first() {
            Some(redis::Value::BulkString(b)) => String::from_utf8(b.clone()).ok(),
            _ => None,
        },
        _ => None,
    }
}

/// Classifies every text with `clients` concurrent connections (each sends one request at a time)
/// and returns each text's best topic (or the error) in input order, with each call's latency in ns.
pub fn classify_all(url: &str, texts: &Arc<Vec<String>>, extra_args: &[String], clients: usize) -> Vec<(Result<String, String>, u64)> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..clients.max(1))
        .map(|_| {
            let (url, texts, next, extra) = (url.to_string(), texts.clone(), next.clone(), extra_args.to_vec());
            thread::spawn(move || {
                let mut conn = redis::Client::open(url).and_then(|c| c.get_connection()).expect("client connection");
                let mut out = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(t) = texts.get(i) else { break };
                    let t0 = Instant::now();
                    let r: redis::RedisResult<redis::Value> = redis::cmd("AGENT.CLASSIFY").arg(t).arg(&extra).query(&mut conn);
                    let ns = t0.elapsed().as_nanos() as u64;
                    let r = r.map_err(|e| e.to_string()).and_then(|v| best_topic(&v).ok_or_else(|| format!("unexpected reply {v:?}")));
                    out.push((i, r, ns));
                }
                out
            })
        })
        .collect();
    let mut all: Vec<(usize, Result<String, String>, u64)> = workers.into_iter().flat_map(|w| w.join().expect("client thread")).collect();
    all.sort_by_key(|x| x.0);
    all.into_iter().map(|(_, r, ns)| (r, ns)).collect()
}

/// `lscpu`'s model name: figures from different machines are only comparable as ratios.
pub fn cpu_model() -> String {
    let out = std::process::Command::new("lscpu").output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    out.lines().find_map(|l| l.strip_prefix("Model name:").map(|m| m.trim().to_string())).unwrap_or_else(|| "unknown CPU".into())
}

/// Waits until the server's model is loaded; Err with the reason when it failed or took too long.
pub fn wait_model_ready(conn: &mut Connection, within: Duration) -> Result<(), String> {
    let started = Instant::now();
    loop {
        match info_field(conn, "agentic_classify", "agentic_model_status").as_deref() {
            Some("ready") => return Ok(()),
            Some("failed") => {
                return Err(format!("model failed to load: {:?}", info_field(conn, "agentic_classify", "agentic_model_error")))
            }
            _ if started.elapsed() > within => return Err(format!("model did not load within {within:?}")),
            _ => thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// One metric of AGENT.STATS as a number (NaN when absent or when the server does not answer).
pub fn agent_stat(c: &mut Connection, name: &str) -> f64 {
    let flat: Vec<String> = redis::cmd("AGENT.STATS").query(c).unwrap_or_default();
    flat.chunks(2).find(|p| p.len() == 2 && p[0] == name).and_then(|p| p[1].parse().ok()).unwrap_or(f64::NAN)
}

/// A child process killed when dropped: benchmarks stop what they started, also on panic.
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Starts `agentic-fetcher` writing `rate * seconds` articles into `url`'s news_raw: AG News
/// replayed in a loop when `news` is given, else its synthetic generator.
pub fn start_fetcher(
    bin: &std::path::Path,
    url: &str,
    news: Option<&std::path::Path>,
    rate: u64,
    seconds: u64,
) -> Result<ChildGuard, String> {
    let (rate_s, limit) = (rate.to_string(), (rate * seconds).to_string());
    let mut cmd = std::process::Command::new(bin);
    cmd.args(["--valkey", url, "--metrics-addr", ""]);
    match news {
        Some(file) => cmd.arg("replay").arg("--file").arg(file).args(["--rate", &rate_s, "--loop", "--limit", &limit]),
        None => cmd.args(["generate", "--rate", &rate_s, "--count", &limit, "--seed", "7"]),
    };
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(ChildGuard)
        .map_err(|e| format!("cannot start the fetcher: {e}"))
}

/// Calls `each_second` once a second until the fetcher exits (or a generous deadline passes),
/// stops it, then waits until the pipeline's backlog is empty. Returns the ingest time in seconds.
pub fn ingest_and_drain(c: &mut Connection, mut fetcher: ChildGuard, seconds: u64, mut each_second: impl FnMut(&mut Connection)) -> f64 {
    let t0 = Instant::now();
    loop {
        thread::sleep(Duration::from_secs(1));
        each_second(c);
        if let Ok(Some(_)) = fetcher.0.try_wait() {
            break;
        }
        if t0.elapsed() > Duration::from_secs(seconds * 3 + 60) {
            println!("  the fetcher did not finish in time; stopping it");
            break;
        }
    }
    let ingest_s = t0.elapsed().as_secs_f64();
    drop(fetcher);
    let drain0 = Instant::now();
    while agent_stat(c, "pipeline_backlog") > 0.0 && drain0.elapsed() < Duration::from_secs(600) {
        thread::sleep(Duration::from_millis(200));
    }
    ingest_s
}
