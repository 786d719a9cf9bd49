//! classify_bench: AG News texts (title + description) through AGENT.CLASSIFY with several
//! concurrent clients, then through onnxruntime (PyPI) running the same ONNX file on the same
//! texts with the same truncation, in one run. Prints articles/s, latency and the ratio, plus
//! PING latency while the pool is saturated.
//!
//!     cargo run --release -p agentic-bench --bin classify_bench -- [--clients N] [--texts N]
//!         [--model DIR] [--max-tokens N] [--module-arg NAME VALUE ...] [--skip-ort]
//!
//! Needs the real model (`make model`) and ../shared/data/ag_news (skips with a message without it).

use std::process::{exit, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use agentic_bench::{agent_stat, classify_all, latency_summary, load_ag_news, server_cpu_s, spawn_pinger, used_memory, wait_model_ready};
use agentic_tests::{make_temp_dir, workspace_dir, Server};

const TARGET_ARTICLES_PER_S: f64 = 250.0;
const TARGET_ORT_RATIO: f64 = 0.8;
const TARGET_PING_P99_US: f64 = 1000.0;

struct Opts {
    clients: usize,
    texts: usize,
    model: std::path::PathBuf,
    max_tokens: usize,
    module_args: Vec<String>,
    skip_ort: bool,
}

fn parse_opts() -> Opts {
    let mut o = Opts {
        clients: 8,
        texts: 7600,
        model: workspace_dir().join("model/out/real"),
        max_tokens: 64, // the module's default classify-max-tokens
        module_args: vec![],
        skip_ort: false,
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
            _ => fail(&format!("unknown option {a}")),
        }
    }
    o
}

fn fail(msg: &str) -> ! {
    eprintln!("classify_bench: {msg}");
    exit(2)
}

struct ModuleRun {
    articles_per_s: f64,
    latency: agentic_bench::Latency,
    ping: agentic_bench::Latency,
    errors: usize,
    cpu_s: f64,
    wall_s: f64,
    mean_batch: f64,
    batch_p99: f64,
    used_memory: u64,
}

fn run_module(o: &Opts, texts: &Arc<Vec<String>>) -> ModuleRun {
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
    for t in texts.iter().take(32) {
        let _: redis::Value = redis::cmd("AGENT.CLASSIFY").arg(t).query(&mut c).expect("warm-up AGENT.CLASSIFY");
    }
    let batches0 = agent_stat(&mut c, "classify_batches");
    let texts0 = agent_stat(&mut c, "classify_texts");
    let cpu0 = server_cpu_s(&mut c);

    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(Barrier::new(2));
    let pinger = spawn_pinger(server.url(), Duration::from_millis(1), stop.clone(), ready.clone());
    ready.wait();
    let t0 = Instant::now();
    let answers = classify_all(&server.url(), texts, &[], o.clients);
    let wall_s = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let ping = latency_summary(pinger.join().expect("pinger"));
    let cpu_s = server_cpu_s(&mut c) - cpu0;
    let batches = agent_stat(&mut c, "classify_batches") - batches0;
    let classified = agent_stat(&mut c, "classify_texts") - texts0;
    let errors = answers.iter().filter(|(r, _)| r.is_err()).count();
    ModuleRun {
        articles_per_s: texts.len() as f64 / wall_s,
        latency: latency_summary(answers.iter().map(|(_, ns)| *ns).collect()),
        ping,
        errors,
        cpu_s,
        wall_s,
        mean_batch: classified / batches,
        batch_p99: agent_stat(&mut c, "classify_batch_size_p99"),
        used_memory: used_memory(&mut c),
    }
}

struct OrtRun {
    name: String,
    articles_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn run_ort(o: &Opts, texts: &[String]) -> Result<(String, Vec<OrtRun>), String> {
    let dir = make_temp_dir("classify-bench");
    let file = dir.join("texts.jsonl");
    let body: String = texts.iter().map(|t| serde_json::Value::String(t.clone()).to_string() + "\n").collect();
    std::fs::write(&file, body).map_err(|e| e.to_string())?;
    let script = workspace_dir().join("bench/python/ort_baseline.py");
    let out = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
        .arg(&script)
        .args([
            "--model-dir",
            &o.model.display().to_string(),
            "--texts",
            &file.display().to_string(),
            "--max-tokens",
            &o.max_tokens.to_string(),
        ])
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    let _ = std::fs::remove_dir_all(&dir);
    if !out.status.success() {
        return Err(format!("ort_baseline.py failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("ort_baseline.py output: {e}"))?;
    let version = v["onnxruntime"].as_str().unwrap_or("?").to_string();
    let configs = v["configs"].as_object().ok_or("no configs in ort_baseline.py output")?;
    Ok((
        version,
        configs
            .iter()
            .map(|(k, r)| OrtRun {
                name: k.clone(),
                articles_per_s: r["articles_per_s"].as_f64().unwrap_or(f64::NAN),
                p50_ms: r["call_p50_ms"].as_f64().unwrap_or(f64::NAN),
                p99_ms: r["call_p99_ms"].as_f64().unwrap_or(f64::NAN),
            })
            .collect(),
    ))
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
    let items = match load_ag_news("ag_news_test.jsonl") {
        Ok(items) => items,
        Err(e) => {
            println!("classify_bench: skipped: AG News is not available ({e})");
            return;
        }
    };
    let texts: Arc<Vec<String>> = Arc::new(items.into_iter().take(o.texts).map(|i| i.text).collect());
    println!(
        "classify_bench: {} AG News texts (title. description), {} concurrent clients, max {} tokens, model {}",
        texts.len(),
        o.clients,
        o.max_tokens,
        o.model.display()
    );
    let m = run_module(&o, &texts);
    println!("\nAGENT.CLASSIFY (tract-onnx, classify pool):");
    println!("  articles/s           {:.1}  ({} texts in {:.2} s, {} errors)", m.articles_per_s, texts.len(), m.wall_s, m.errors);
    println!(
        "  call latency         p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        m.latency.p50_us / 1e3,
        m.latency.p99_us / 1e3,
        m.latency.max_us / 1e3
    );
    println!("  server CPU           {:.2} s ({:.0}% of one core)", m.cpu_s, 100.0 * m.cpu_s / m.wall_s);
    println!("  requests per batch   mean {:.2}  p99 {:.0}", m.mean_batch, m.batch_p99);
    println!(
        "  PING while saturated p50 {:.0} us  p99 {:.0} us  max {:.0} us ({} pings)",
        m.ping.p50_us, m.ping.p99_us, m.ping.max_us, m.ping.count
    );
    println!("  used_memory          {:.1} MB", m.used_memory as f64 / 1e6);

    let mut best_ort = None::<OrtRun>;
    if o.skip_ort {
        println!("\nonnxruntime: skipped (--skip-ort)");
    } else {
        match run_ort(&o, &texts) {
            Ok((version, runs)) => {
                println!("\nonnxruntime {version} (same ONNX file, texts and truncation):");
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
    println!(
        "  AGENT.CLASSIFY {:.1} articles/s: target >= {TARGET_ARTICLES_PER_S:.0}: {}",
        m.articles_per_s,
        verdict(m.articles_per_s >= TARGET_ARTICLES_PER_S)
    );
    if let Some(b) = &best_ort {
        let ratio = m.articles_per_s / b.articles_per_s;
        println!(
            "  vs best onnxruntime configuration ({} {:.1}/s): {:.2}x: target >= {TARGET_ORT_RATIO}x: {}",
            b.name,
            b.articles_per_s,
            ratio,
            verdict(ratio >= TARGET_ORT_RATIO)
        );
    }
    println!(
        "  PING p99 while the pool is saturated {:.0} us: target < {TARGET_PING_P99_US:.0} us: {}",
        m.ping.p99_us,
        verdict(m.ping.p99_us < TARGET_PING_P99_US)
    );
}
