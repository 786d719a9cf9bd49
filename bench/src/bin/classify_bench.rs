//! classify_bench (`make bench-classify`): the same AG News test texts (title. description)
//! through AGENT.CLASSIFY with several concurrent clients, once per tier - the static tier alone,
//! the cascade at its default budget, the encoder (MiniLM on tract) alone - then through
//! onnxruntime (PyPI) running the same ONNX file on the same texts with the same truncation, in
//! one run. Prints articles/s, call latency, each one's AG News accuracy and the PING latency while
//! the pool is saturated.
//!
//! The catalog is AG News' four topics (make eval's descriptions). Before the timed runs the node
//! self-trains as it would from its traffic: the 6,429 training-pool rows, unlabelled, go through
//! the cascade as teaching samples (see classify_eval). The timed runs use the module's defaults.
//!
//!     cargo run --release -p agentic-bench --bin classify_bench -- [--clients N] [--texts N]
//!         [--model DIR] [--max-tokens N] [--module-arg NAME VALUE ...] [--skip-ort] [--no-self-training]
//!
//! Needs the real model (`make model`) and ../shared/data/ag_news (skips with a message without it).

use std::process::{exit, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use agentic_bench::ag_news::{accuracy, config_get, config_set, define_topics, self_train, CLASSES};
use agentic_bench::{
    agent_stat, classify_all, latency_summary, load_ag_news, server_cpu_s, spawn_pinger, used_memory, wait_model_ready, NewsItem,
};
use agentic_tests::{info_field, make_temp_dir, workspace_dir, Server};
use redis::Connection;

/// Issue 12: the cascade at 2,000 articles/s on 2 cores at >= 84% AG News zero-shot.
const TARGET_CASCADE_PER_S: f64 = 2000.0;
const TARGET_CASCADE_ACCURACY: f64 = 84.0;
const TARGET_ORT_RATIO: f64 = 0.8;
const TARGET_PING_P99_US: f64 = 1000.0;
const POOL_ROWS: usize = 6429;
const TIERS: [&str; 3] = ["static", "cascade", "model"];

struct Opts {
    clients: usize,
    texts: usize,
    model: std::path::PathBuf,
    max_tokens: usize,
    module_args: Vec<String>,
    skip_ort: bool,
    self_training: bool,
}

fn parse_opts() -> Opts {
    let mut o = Opts {
        clients: 16,
        texts: 7600,
        model: workspace_dir().join("model/out/real"),
        max_tokens: 64, // the module's default classify-max-tokens
        module_args: vec![],
        skip_ort: false,
        self_training: true,
    };
    let mut args = std::env::args().skip(1);
    let value = |args: &mut dyn Iterator<Item = String>, flag: &str| args.next().unwrap_or_else(|| fail(&format!("{flag} needs a value")));
    let num = |s: String, flag: &str| s.parse::<usize>().unwrap_or_else(|_| fail(&format!("{flag}: not a number: {s}")));
    while let Some(a) = args.next() {
        match a.as_str() {
            "--clients" => o.clients = num(value(&mut args, &a), &a).max(1),
            "--texts" => o.texts = num(value(&mut args, &a), &a).max(1),
            "--model" => o.model = value(&mut args, &a).into(),
            "--max-tokens" => o.max_tokens = num(value(&mut args, &a), &a),
            "--module-arg" => {
                o.module_args.push(value(&mut args, &a));
                o.module_args.push(value(&mut args, &a));
            }
            "--skip-ort" => o.skip_ort = true,
            "--no-self-training" => o.self_training = false,
            _ => fail(&format!("unknown option {a}")),
        }
    }
    o
}

fn fail(msg: &str) -> ! {
    eprintln!("classify_bench: {msg}");
    exit(2)
}

struct TierRun {
    tier: &'static str,
    articles_per_s: f64,
    latency: agentic_bench::Latency,
    ping: agentic_bench::Latency,
    accuracy: f64,
    errors: usize,
    cpu_s: f64,
    wall_s: f64,
    escalated_pct: f64,
    over_budget: f64,
}

fn set(c: &mut Connection, name: &str, value: &str) {
    config_set(c, name, value).unwrap_or_else(|e| fail(&e));
}

fn run_tier(server: &Server, c: &mut Connection, tier: &'static str, o: &Opts, items: &[NewsItem], texts: &Arc<Vec<String>>) -> TierRun {
    set(c, "classify-tier", tier);
    for t in texts.iter().take(32) {
        let _: redis::Value = redis::cmd("AGENT.CLASSIFY").arg(t).query(c).expect("warm-up AGENT.CLASSIFY");
    }
    let stat0 = |c: &mut Connection| {
        (agent_stat(c, "classify_escalations"), agent_stat(c, "classify_tier_static"), agent_stat(c, "classify_escalations_over_budget"))
    };
    let (esc0, static0, over0) = stat0(c);
    let cpu0 = server_cpu_s(c);
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(Barrier::new(2));
    let pinger = spawn_pinger(server.url(), Duration::from_millis(1), stop.clone(), ready.clone());
    ready.wait();
    let t0 = Instant::now();
    let answers = classify_all(&server.url(), texts, &[], o.clients);
    let wall_s = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let ping = latency_summary(pinger.join().expect("pinger"));
    let cpu_s = server_cpu_s(c) - cpu0;
    let (esc1, static1, over1) = stat0(c);
    let escalated = esc1 - esc0;
    TierRun {
        tier,
        articles_per_s: texts.len() as f64 / wall_s,
        latency: latency_summary(answers.iter().map(|(_, ns)| *ns).collect()),
        ping,
        accuracy: accuracy(items, answers.iter().map(|(r, _)| r)).percent(),
        errors: answers.iter().filter(|(r, _)| r.is_err()).count(),
        cpu_s,
        wall_s,
        escalated_pct: 100.0 * escalated / (escalated + static1 - static0).max(1.0),
        over_budget: over1 - over0,
    }
}

struct OrtRun {
    name: String,
    articles_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn run_ort(o: &Opts, texts: &[String], labels: &[&str]) -> Result<(String, Vec<OrtRun>, Option<f64>), String> {
    let dir = make_temp_dir("classify-bench");
    let file = dir.join("texts.jsonl");
    let body: String = texts.iter().map(|t| serde_json::Value::String(t.clone()).to_string() + "\n").collect();
    std::fs::write(&file, body).map_err(|e| e.to_string())?;
    let topics: serde_json::Map<String, serde_json::Value> =
        CLASSES.iter().map(|(_, slug, d)| (slug.to_string(), serde_json::Value::String(d.to_string()))).collect();
    std::fs::write(dir.join("topics.json"), serde_json::Value::Object(topics).to_string()).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("labels.txt"), labels.join("\n") + "\n").map_err(|e| e.to_string())?;
    let script = workspace_dir().join("bench/python/ort_baseline.py");
    let out = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
        .arg(&script)
        .args(["--model-dir", &o.model.display().to_string(), "--texts", &file.display().to_string()])
        .args(["--max-tokens", &o.max_tokens.to_string()])
        .args(["--topics", &dir.join("topics.json").display().to_string(), "--labels", &dir.join("labels.txt").display().to_string()])
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    let _ = std::fs::remove_dir_all(&dir);
    if !out.status.success() {
        return Err(format!("ort_baseline.py failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("ort_baseline.py output: {e}"))?;
    let version = v["onnxruntime"].as_str().unwrap_or("?").to_string();
    let configs = v["configs"].as_object().ok_or("no configs in ort_baseline.py output")?;
    let runs = configs
        .iter()
        .map(|(k, r)| OrtRun {
            name: k.clone(),
            articles_per_s: r["articles_per_s"].as_f64().unwrap_or(f64::NAN),
            p50_ms: r["call_p50_ms"].as_f64().unwrap_or(f64::NAN),
            p99_ms: r["call_p99_ms"].as_f64().unwrap_or(f64::NAN),
        })
        .collect();
    Ok((version, runs, v["zero_shot_accuracy"].as_f64()))
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

fn main() {
    let o = parse_opts();
    if !o.model.join("model.onnx").is_file() {
        eprintln!("classify_bench: no model in {} - build the real model first: make model", o.model.display());
        exit(2);
    }
    let (items, train) = match (load_ag_news("ag_news_test.jsonl"), load_ag_news("ag_news_train_prefix10429.jsonl")) {
        (Ok(t), Ok(r)) => (t, r),
        (Err(e), _) | (_, Err(e)) => {
            println!("classify_bench: skipped: AG News is not available ({e})");
            return;
        }
    };
    let items: Vec<NewsItem> = items.into_iter().take(o.texts).collect();
    let texts: Arc<Vec<String>> = Arc::new(items.iter().map(|i| i.text.clone()).collect());
    println!(
        "classify_bench: {} AG News texts (title. description), {} concurrent clients, max {} tokens, model {}; CPU {} ({} cores)",
        texts.len(),
        o.clients,
        o.max_tokens,
        o.model.display(),
        agentic_bench::cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut args = vec![
        "model-dir".to_string(),
        std::fs::canonicalize(&o.model).unwrap_or(o.model.clone()).display().to_string(),
        "classify-max-tokens".into(),
        o.max_tokens.to_string(),
    ];
    args.extend(o.module_args.iter().cloned());
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::builder().module_args(&arg_refs).start();
    let mut c = server.conn();
    wait_model_ready(&mut c, Duration::from_secs(120)).unwrap_or_else(|e| fail(&e));
    if info_field(&mut c, "agentic_classify", "agentic_static_status").as_deref() != Some("ready") {
        fail(&format!("no static tier in {} (static.bin): make model builds it", o.model.display()));
    }
    define_topics(&mut c, &Default::default()).unwrap_or_else(|e| fail(&e));
    let learn_percent = config_get(&mut c, "classify-learn-percent").unwrap_or_else(|e| fail(&e));
    if o.self_training {
        let pool: Arc<Vec<String>> = Arc::new(train.iter().take(POOL_ROWS).map(|i| i.text.clone()).collect());
        let t0 = Instant::now();
        let samples = self_train(&mut c, &server.url(), &pool, o.clients).unwrap_or_else(|e| fail(&e));
        println!(
            "self-training: {} unlabelled training-pool rows in {:.0} s, heads fitted on {samples} samples",
            pool.len(),
            t0.elapsed().as_secs_f64()
        );
    }
    // The timed runs use the module's defaults (learning included).
    set(&mut c, "classify-learn-percent", &learn_percent);

    let runs: Vec<TierRun> = TIERS.iter().map(|tier| run_tier(&server, &mut c, tier, &o, &items, &texts)).collect();
    println!(
        "\nAGENT.CLASSIFY per tier (classify pool, {} threads):",
        info_field(&mut c, "agentic_classify", "agentic_threads").unwrap_or_default()
    );
    println!(
        "  {:<8} {:>11} {:>9} {:>9} {:>9} {:>10} {:>11}  notes",
        "tier", "articles/s", "p50 ms", "p99 ms", "accuracy", "PING p99", "server CPU"
    );
    for r in &runs {
        let notes = if r.tier == "cascade" {
            format!("{:.1}% escalated, {:.0} over budget", r.escalated_pct, r.over_budget)
        } else {
            String::new()
        };
        println!(
            "  {:<8} {:>11.1} {:>9.2} {:>9.2} {:>8.1}% {:>7.0} us {:>9.0}%  {notes}{}",
            r.tier,
            r.articles_per_s,
            r.latency.p50_us / 1e3,
            r.latency.p99_us / 1e3,
            r.accuracy,
            r.ping.p99_us,
            100.0 * r.cpu_s / r.wall_s,
            if r.errors > 0 { format!(" ({} errors)", r.errors) } else { String::new() }
        );
    }
    println!("  used_memory          {:.1} MB", used_memory(&mut c) as f64 / 1e6);

    let mut best_ort = None::<OrtRun>;
    if o.skip_ort {
        println!("\nonnxruntime: skipped (--skip-ort)");
    } else {
        let labels: Vec<&str> = items.iter().map(|i| CLASSES.iter().find(|c| c.0 == i.label).map_or("?", |c| c.1)).collect();
        match run_ort(&o, &texts, &labels) {
            Ok((version, runs, acc)) => {
                let acc = acc.map_or("not measured".to_string(), |a| format!("{a:.1}%"));
                println!("\nonnxruntime {version} (same ONNX file, texts and truncation; zero-shot accuracy of its embeddings {acc}):");
                for r in runs {
                    println!("  {:<14} articles/s {:>7.1}  call p50 {:.1} ms  p99 {:.1} ms", r.name, r.articles_per_s, r.p50_ms, r.p99_ms);
                    if best_ort.as_ref().is_none_or(|b| r.articles_per_s > b.articles_per_s) {
                        best_ort = Some(r);
                    }
                }
            }
            Err(e) => println!("\nonnxruntime: not measured: {e} (make model-deps installs it)"),
        }
    }

    println!("\nSummary:");
    let by = |t: &str| runs.iter().find(|r| r.tier == t);
    if let Some(cascade) = by("cascade") {
        println!(
            "  cascade {:.0} articles/s: target >= {TARGET_CASCADE_PER_S:.0}: {}",
            cascade.articles_per_s,
            verdict(cascade.articles_per_s >= TARGET_CASCADE_PER_S)
        );
        println!(
            "  cascade AG News accuracy {:.1}%: target >= {TARGET_CASCADE_ACCURACY}%: {}",
            cascade.accuracy,
            verdict(cascade.accuracy >= TARGET_CASCADE_ACCURACY)
        );
    }
    if let (Some(m), Some(b)) = (by("model"), &best_ort) {
        let ratio = m.articles_per_s / b.articles_per_s;
        println!(
            "  encoder on tract vs best onnxruntime configuration ({} {:.1}/s): {:.2}x: target >= {TARGET_ORT_RATIO}x: {}",
            b.name,
            b.articles_per_s,
            ratio,
            verdict(ratio >= TARGET_ORT_RATIO)
        );
    }
    for r in &runs {
        println!(
            "  PING p99 while the {} tier saturates the pool {:.0} us: target < {TARGET_PING_P99_US:.0} us: {}",
            r.tier,
            r.ping.p99_us,
            verdict(r.ping.p99_us < TARGET_PING_P99_US)
        );
    }
}
