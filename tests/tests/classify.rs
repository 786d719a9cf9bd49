//! AGENT.CLASSIFY and the topic catalog, on real servers with the tiny test model
//! (`make tiny-model`); the accuracy checks at the end need the real model and skip without it.
//! The encoder answers alone here (`classify-tier model`), so repeated calls compare exactly; the
//! static tier and the cascade are tested in classify_tiers.rs.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use agentic_tests::{info_field, make_temp_dir, wait_for, wait_replica_synced, Server};
use common::classify::*;
use common::*;
use redis::{Connection, Value};

const DEFAULT_TOPICS: [&str; 10] =
    ["business", "climate", "education", "entertainment", "finance", "health", "politics", "science", "sports", "technology"];

/// A server whose encoder answers every text (no cascade).
fn start_encoder(extra: &[&str]) -> (Server, Connection) {
    let mut args = vec!["classify-tier", "model"];
    args.extend_from_slice(extra);
    start_tiny(&args)
}

fn topic_slugs(c: &mut Connection) -> Vec<String> {
    let Value::Array(topics) = run(c, &["AGENT.TOPIC.LIST"]) else { panic!("AGENT.TOPIC.LIST") };
    topics
        .iter()
        .map(|t| {
            let Value::Array(f) = t else { panic!("topic entry {t:?}") };
            as_string(&f[1])
        })
        .collect()
}

fn topic_field(c: &mut Connection, slug: &str, field: &str) -> Value {
    let Value::Array(topics) = run(c, &["AGENT.TOPIC.LIST"]) else { panic!("AGENT.TOPIC.LIST") };
    for t in topics {
        let Value::Array(f) = t else { panic!() };
        if as_string(&f[1]) == slug {
            let i = f.iter().position(|x| matches!(x, Value::BulkString(b) if b == field.as_bytes())).expect("field");
            return f[i + 1].clone();
        }
    }
    panic!("no topic {slug}")
}

#[test]
fn classifies_on_the_pool_against_the_default_topics() {
    let (_server, mut c) = start_encoder(&[]);
    let (best, scores) = classify(&mut c, &["The home team won the championship in overtime last night"]);
    let mut slugs: Vec<&str> = scores.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(best, slugs[0], "best comes first");
    assert!(scores.windows(2).all(|w| w[0].1 >= w[1].1), "scores sorted best first: {scores:?}");
    assert!(scores.iter().all(|s| (-1.0..=1.0).contains(&s.1)), "cosine scores: {scores:?}");
    slugs.sort();
    assert_eq!(slugs, DEFAULT_TOPICS);
    // Deterministic: the same text gets the same answer.
    assert_eq!(classify(&mut c, &["The home team won the championship in overtime last night"]).1, scores);
    assert_eq!(stat(&mut c, "classify_calls"), 2);
    assert!(stat(&mut c, "classify_batches") >= 1);
    assert_eq!(stat(&mut c, "classify_inline_calls"), 0, "a normal client blocks; nothing runs on the event loop");
    assert_eq!(stat(&mut c, "classify_latency_us_count"), 2);
    assert_eq!(stat(&mut c, "model_ready"), 1);
    assert!(stat(&mut c, "model_load_ms") > 0);
    assert_eq!(info_field(&mut c, "agentic_classify", "agentic_backend").as_deref(), Some("tract-onnx-cpu"));
    assert_eq!(info_field(&mut c, "agentic_classify", "agentic_threads").as_deref(), Some("2"));
    assert_eq!(info_field(&mut c, "agentic_stats", "agentic_classify_calls").as_deref(), Some("2"));
}

/// (policy, nice) of each classify worker thread of `pid`, from /proc (Linux).
fn worker_scheduling(pid: u32) -> Vec<(u32, i32)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc task list").flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("agentic-classif") {
            continue;
        }
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // Fields after the command name: 3 state ... 19 nice ... 41 policy.
        let Some(rest) = stat.rsplit_once(')').map(|r| r.1) else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 38 {
            out.push((f[38].parse().expect("policy"), f[16].parse().expect("nice")));
        }
    }
    out
}

#[test]
fn workers_run_at_the_configured_priority_and_a_change_restarts_them() {
    const SCHED_OTHER: u32 = 0;
    const SCHED_IDLE: u32 = 5;
    let (server, mut c) = start_encoder(&[]);
    let text = "The home team won the championship in overtime last night";
    let answer = classify(&mut c, &[text]);
    let v = run(&mut c, &["CONFIG", "GET", "agentic.classify-worker-priority"]);
    assert_eq!(as_string(&v.as_sequence().expect("CONFIG GET")[1]), "low", "the default");
    assert_eq!(worker_scheduling(server.pid), vec![(SCHED_OTHER, 10); 2], "two workers at nice 10");
    // In SCHED_IDLE a thread keeps the nice value it started with: the server's own.
    let proc_stat = std::fs::read_to_string(format!("/proc/{}/stat", server.pid)).expect("server stat");
    let server_nice: i32 = proc_stat.rsplit_once(')').expect("stat").1.split_whitespace().nth(16).expect("nice").parse().expect("nice");
    for (setting, want) in
        [("idle", (SCHED_IDLE, server_nice)), ("normal", (SCHED_OTHER, 0)), ("low", (SCHED_OTHER, 10)), ("idle", (SCHED_IDLE, server_nice))]
    {
        run(&mut c, &["CONFIG", "SET", "agentic.classify-worker-priority", setting]);
        // New workers take over at once; the old ones exit (a thread cannot leave SCHED_IDLE
        // without privileges, so they are not changed in place).
        assert_eq!(classify(&mut c, &[text]), answer, "{setting}: the new workers answer alike");
        assert!(
            wait_for(|| worker_scheduling(server.pid) == vec![want; 2], Duration::from_secs(5)),
            "{setting}: workers {:?}, want two at {want:?}",
            worker_scheduling(server.pid)
        );
        assert_eq!(stat(&mut c, "classify_threads"), 2);
    }
    let e = expect_err_str(&mut c, &["CONFIG", "SET", "agentic.classify-worker-priority", "realtime"]);
    assert!(e.contains("classify-worker-priority"), "{e}");
    let v = run(&mut c, &["CONFIG", "GET", "agentic.classify-worker-priority"]);
    assert_eq!(as_string(&v.as_sequence().expect("CONFIG GET")[1]), "idle", "a refused value changes nothing");
    assert_eq!(worker_scheduling(server.pid), vec![(SCHED_IDLE, server_nice); 2]);
    assert_eq!(stat(&mut c, "classify_priority_refused"), 0);
    // Set at load time too.
    let (idle, mut c2) = start_encoder(&["classify-worker-priority", "idle"]);
    classify(&mut c2, &[text]);
    assert_eq!(worker_scheduling(idle.pid), vec![(SCHED_IDLE, server_nice); 2]);
}

#[test]
fn length_plans_are_built_after_loading_before_any_text_needs_them() {
    // classify-max-tokens 40: lengths up to 40 in steps of 8 need 5 plans; at most 3 are kept.
    let (_s, mut c) = start_encoder(&["classify-max-tokens", "40", "classify-length-plans", "3"]);
    assert!(wait_for(|| stat(&mut c, "model_length_plans") == 3, Duration::from_secs(30)), "3 plans, without a text classified");
    assert_eq!(stat(&mut c, "classify_texts"), 0);
    let (_s2, mut c2) = start_encoder(&["classify-max-tokens", "16"]);
    assert!(wait_for(|| stat(&mut c2, "model_length_plans") == 2, Duration::from_secs(30)), "lengths 8 and 16");
    thread::sleep(Duration::from_millis(300));
    assert_eq!(stat(&mut c2, "model_length_plans"), 2, "no plan for lengths the texts cannot have");
    let (_s3, mut c3) = start_encoder(&["classify-length-plans", "0"]);
    thread::sleep(Duration::from_millis(300));
    assert_eq!(stat(&mut c3, "model_length_plans"), 0, "0 keeps the general plan only");
}

#[test]
fn topics_option_restricts_the_candidates() {
    let (_server, mut c) = start_encoder(&[]);
    let (best, scores) = classify(&mut c, &["Stocks rally", "TOPICS", "sports", "health"]);
    assert!(best == "sports" || best == "health");
    let mut slugs: Vec<String> = scores.into_iter().map(|s| s.0).collect();
    slugs.sort();
    assert_eq!(slugs, ["health", "sports"]);
    let (_, scores) = classify(&mut c, &["Stocks rally", "TIMEOUT", "5000", "TOPICS", "finance"]);
    assert_eq!(scores.len(), 1);
}

#[test]
fn bad_classify_input_gets_clear_errors() {
    let (_server, mut c) = start_encoder(&[]);
    for (args, expected) in [
        (vec!["AGENT.CLASSIFY", ""], "text must not be empty"),
        (vec!["AGENT.CLASSIFY", "x", "TOPICS", "nope"], "no topic 'nope'"),
        (vec!["AGENT.CLASSIFY", "x", "TOPICS", "Bad Slug"], "invalid topic"),
        (vec!["AGENT.CLASSIFY", "x", "TOPICS"], "TOPICS needs at least one topic"),
        (vec!["AGENT.CLASSIFY", "x", "TIMEOUT", "soon"], "TIMEOUT (ms) must be an integer"),
        (vec!["AGENT.CLASSIFY", "x", "TIMEOUT", "-1"], "TIMEOUT (ms) must be between"),
        (vec!["AGENT.CLASSIFY", "x", "FAST"], "unexpected argument 'FAST'"),
    ] {
        let e = expect_err_str(&mut c, &args);
        assert!(e.contains(expected), "{args:?}: {e}");
    }
    let e = expect_err(&mut c, &[b"AGENT.CLASSIFY", b"caf\xe9"]);
    assert!(e.contains("valid UTF-8"), "{e}");
    assert!(expect_err_str(&mut c, &["AGENT.CLASSIFY"]).contains("wrong number of arguments"));
}

#[test]
fn without_a_model_the_module_loads_and_says_why() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(model_status(&mut c), "absent");
    let e = expect_err_str(&mut c, &["AGENT.CLASSIFY", "hello"]);
    assert!(e.contains("no model configured") && e.contains("model-dir"), "{e}");
    assert_eq!(stat(&mut c, "model_ready"), 0);
    // Fan-out and topics keep working without a model.
    assert_eq!(topic_slugs(&mut c), DEFAULT_TOPICS);
    subscribe(&mut c, "user:{1}", &["sports"]);
    assert_eq!(fanout(&mut c, "sports", "doc:1", "x").0, 1);
}

#[test]
fn a_corrupt_model_is_reported_and_can_be_replaced_at_runtime() {
    let dir = make_temp_dir("corrupt-model");
    std::fs::write(dir.join("model.onnx"), b"this is not an onnx graph").expect("write");
    std::fs::copy(tiny_model().join("tokenizer.json"), dir.join("tokenizer.json")).expect("copy tokenizer");
    let server = with_model(&dir, &[]).start();
    let mut c = server.conn();
    assert!(wait_for(|| model_status(&mut c) == "failed", Duration::from_secs(30)), "status {}", model_status(&mut c));
    let why = info_field(&mut c, "agentic_classify", "agentic_model_error").unwrap_or_default();
    assert!(why.contains("model.onnx"), "INFO says why: {why}");
    let e = expect_err_str(&mut c, &["AGENT.CLASSIFY", "hello"]);
    assert!(e.contains("failed to load"), "{e}");
    assert_eq!(stat(&mut c, "model_load_failures"), 1);
    assert!(stat(&mut c, "classify_failures") >= 1);

    // A missing tokenizer is reported as such.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("agentic.model-dir")
        .arg(make_temp_dir("empty-model").to_str().unwrap())
        .query(&mut c)
        .expect("CONFIG SET");
    assert!(wait_for(
        || model_status(&mut c) == "failed"
            && info_field(&mut c, "agentic_classify", "agentic_model_error").unwrap_or_default().contains("cannot read"),
        Duration::from_secs(30)
    ));

    let _: () =
        redis::cmd("CONFIG").arg("SET").arg("agentic.model-dir").arg(tiny_model().to_str().unwrap()).query(&mut c).expect("CONFIG SET");
    wait_ready(&mut c);
    classify(&mut c, &["hello again"]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn topics_are_data_defined_listed_extended_and_removed() {
    let (_server, mut c) = start_encoder(&[]);
    assert_eq!(topic_slugs(&mut c), DEFAULT_TOPICS);
    assert_eq!(as_string(&topic_field(&mut c, "sports", "default")), "1");
    assert_eq!(as_string(&run(&mut c, &["AGENT.TOPIC.SET", "world", "International news: diplomacy, wars and governments abroad."])), "OK");
    let mut expected: Vec<&str> = DEFAULT_TOPICS.to_vec();
    expected.push("world");
    expected.sort();
    assert_eq!(topic_slugs(&mut c), expected, "the first write keeps the defaults and adds the new topic");
    assert_eq!(as_string(&topic_field(&mut c, "sports", "default")), "0");
    assert_eq!(
        as_string(&run(&mut c, &["AGENT.TOPIC.ADDEXAMPLES", "world", "Troops withdraw from the border", "Summit ends in Geneva"])),
        "2"
    );
    let Value::Array(got) = run(&mut c, &["AGENT.TOPIC.GET", "world"]) else { panic!() };
    assert_eq!(as_string(&got[3]), "International news: diplomacy, wars and governments abroad.");
    let Value::Array(ex) = &got[5] else { panic!() };
    assert_eq!(ex.iter().map(as_string).collect::<Vec<_>>(), ["Troops withdraw from the border", "Summit ends in Geneva"]);
    // SET without EXAMPLES keeps them; with EXAMPLES replaces them.
    run(&mut c, &["AGENT.TOPIC.SET", "world", "World news."]);
    assert_eq!(as_string(&topic_field(&mut c, "world", "examples")), "2");
    run(&mut c, &["AGENT.TOPIC.SET", "world", "World news.", "EXAMPLES", "Elections abroad"]);
    assert_eq!(as_string(&topic_field(&mut c, "world", "examples")), "1");
    assert!(
        wait_for(|| as_string(&topic_field(&mut c, "world", "ready")) == "1", Duration::from_secs(10)),
        "vectors get prepared in the background"
    );
    assert!(stat(&mut c, "topic_texts_embedded") > 0);

    // Classification sees the new topic.
    let (_, scores) = classify(&mut c, &["x", "TOPICS", "world", "sports"]);
    assert_eq!(scores.len(), 2);

    assert_eq!(as_string(&run(&mut c, &["AGENT.TOPIC.DEL", "world", "sports", "not-there"])), "2");
    assert_eq!(as_string(&run(&mut c, &["AGENT.TOPIC.DEL", "world"])), "0");
    assert!(!topic_slugs(&mut c).contains(&"sports".to_string()));
    assert!(expect_err_str(&mut c, &["AGENT.CLASSIFY", "x", "TOPICS", "sports"]).contains("no topic 'sports'"));
    let all: Vec<&str> = DEFAULT_TOPICS.iter().copied().filter(|t| *t != "sports").collect();
    let mut del = vec!["AGENT.TOPIC.DEL"];
    del.extend(all.iter());
    run(&mut c, &del);
    assert!(topic_slugs(&mut c).is_empty());
    assert!(expect_err_str(&mut c, &["AGENT.CLASSIFY", "x"]).contains("no topics are defined"));
    assert_eq!(as_string(&run(&mut c, &["AGENT.TOPIC.RESET"])), "1");
    assert_eq!(topic_slugs(&mut c), DEFAULT_TOPICS, "RESET brings the defaults back");
    assert_eq!(as_string(&run(&mut c, &["AGENT.TOPIC.RESET"])), "0");
}

#[test]
fn examples_pull_classification_towards_their_topic() {
    let (_server, mut c) = start_encoder(&[]);
    let text = "zebra quantum lighthouse marathon";
    let (before, _) = classify(&mut c, &[text]);
    let target = DEFAULT_TOPICS.iter().copied().find(|t| *t != before).expect("another topic");
    let mut args = vec!["AGENT.TOPIC.ADDEXAMPLES", target];
    args.extend(std::iter::repeat_n(text, 40));
    run(&mut c, &args);
    let (after, scores) = classify(&mut c, &[text]);
    assert_eq!(after, target, "40 examples of the very text move it to {target}: {scores:?}");
    // Few-shot scores are discriminant values: the winner leads clearly.
    assert!(scores[0].1 > scores[1].1, "{scores:?}");
    // Topics without examples still classify (their description counts as their mean).
    let (_, restricted) = classify(&mut c, &[text, "TOPICS", &before]);
    assert_eq!(restricted.len(), 1);
}

#[test]
fn bad_topic_input_changes_nothing() {
    let (_server, mut c) = start_encoder(&[]);
    run(&mut c, &["AGENT.TOPIC.SET", "world", "World news."]);
    let before = digest(&mut c);
    let long = "x".repeat(5000);
    for (args, expected) in [
        (vec!["AGENT.TOPIC.SET", "Bad", "d"], "invalid topic"),
        (vec!["AGENT.TOPIC.SET", "ok", ""], "description must not be empty"),
        (vec!["AGENT.TOPIC.SET", "ok", &long], "description is longer than 4096 bytes"),
        (vec!["AGENT.TOPIC.SET", "ok", "d", "EXAMPLE", "x"], "expected EXAMPLES"),
        (vec!["AGENT.TOPIC.SET", "ok", "d", "EXAMPLES", "fine", ""], "example must not be empty"),
        (vec!["AGENT.TOPIC.ADDEXAMPLES", "nope", "x"], "no topic 'nope'"),
        (vec!["AGENT.TOPIC.ADDEXAMPLES", "world", "ok", ""], "example must not be empty"),
        (vec!["AGENT.TOPIC.DEL", "world", "Bad Slug"], "invalid topic"),
        (vec!["AGENT.TOPIC.GET", "nope"], "no topic 'nope'"),
        (vec!["AGENT.LOADTOPICS", "agentic:topics", "garbage"], "invalid topic catalog encoding"),
        (vec!["AGENT.LOADTOPICS", "elsewhere", "garbage"], "lives under agentic:topics"),
    ] {
        let e = expect_err_str(&mut c, &args);
        assert!(e.contains(expected), "{args:?}: {e}");
    }
    let e = expect_err(&mut c, &[b"AGENT.TOPIC.ADDEXAMPLES", b"world", b"fine", b"nul\0byte"]);
    assert!(e.contains("NUL"), "{e}");
    assert_eq!(digest(&mut c), before, "nothing changed");
    assert_eq!(as_string(&topic_field(&mut c, "world", "examples")), "0");

    // A foreign value under the catalog key is reported, not overwritten.
    run(&mut c, &["DEL", "agentic:topics"]);
    run(&mut c, &["SET", "agentic:topics", "oops"]);
    assert!(expect_err_str(&mut c, &["AGENT.TOPIC.SET", "world", "d"]).contains("not a topic catalog"));
    assert!(expect_err_str(&mut c, &["AGENT.CLASSIFY", "x"]).contains("not a topic catalog"));
    assert_eq!(as_string(&run(&mut c, &["GET", "agentic:topics"])), "oops");
}

#[test]
fn inside_multi_and_lua_it_computes_inline_or_refuses() {
    let (_server, mut c) = start_encoder(&[]);
    let expected = classify(&mut c, &["Parliament passes the budget"]);
    let replies: Vec<Value> =
        redis::pipe().atomic().cmd("AGENT.CLASSIFY").arg("Parliament passes the budget").query(&mut c).expect("MULTI/EXEC");
    assert_eq!(parse_classification(&replies[0]), expected);
    let lua: Value = redis::cmd("EVAL")
        .arg("return server.call('AGENT.CLASSIFY', ARGV[1])")
        .arg(0)
        .arg("Parliament passes the budget")
        .query(&mut c)
        .expect("EVAL");
    assert_eq!(parse_classification(&lua), expected);
    assert_eq!(stat(&mut c, "classify_inline_calls"), 2);

    let _: () = redis::cmd("CONFIG").arg("SET").arg("agentic.classify-inline").arg("no").query(&mut c).expect("CONFIG SET");
    let r: redis::RedisResult<Vec<Value>> = redis::pipe().atomic().cmd("AGENT.CLASSIFY").arg("x").query(&mut c);
    let e = err_text(&r.expect_err("refused inside MULTI"));
    assert!(e.contains("cannot block inside MULTI or Lua"), "{e}");
}

#[test]
fn timeouts_answer_and_the_server_stays_responsive() {
    let (server, mut c) = start_encoder(&["debug-commands", "yes", "classify-threads", "1"]);
    run(&mut c, &["AGENT.DEBUG", "CLASSIFY-DELAY", "600"]);
    let url = server.url();
    let slow = thread::spawn(move || {
        let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
        let t0 = Instant::now();
        let r: redis::RedisResult<Value> = redis::cmd("AGENT.CLASSIFY").arg("slow").arg("TIMEOUT").arg(150).query(&mut c);
        (r.map_err(|e| err_text(&e)), t0.elapsed())
    });
    // The event loop serves others while the pool is busy.
    thread::sleep(Duration::from_millis(50));
    for _ in 0..20 {
        let t0 = Instant::now();
        let pong: String = redis::cmd("PING").query(&mut c).expect("PING");
        assert_eq!(pong, "PONG");
        assert!(t0.elapsed() < Duration::from_millis(100), "PING took {:?} while the pool was busy", t0.elapsed());
    }
    let (r, took) = slow.join().unwrap();
    let e = r.expect_err("the call times out");
    assert!(e.contains("timed out"), "{e}");
    assert!(took < Duration::from_millis(550), "the timeout answered after {took:?}, before the worker finished");
    assert_eq!(stat(&mut c, "classify_timeouts"), 1);
    run(&mut c, &["AGENT.DEBUG", "CLASSIFY-DELAY", "0"]);
    // The late answer is dropped; the connection stays in sync.
    classify(&mut c, &["fresh"]);
}

#[test]
fn concurrent_callers_are_micro_batched() {
    let (server, mut c) = start_encoder(&["debug-commands", "yes", "classify-threads", "1"]);
    run(&mut c, &["AGENT.DEBUG", "CLASSIFY-DELAY", "300"]);
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let url = server.url();
            thread::spawn(move || {
                let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
                let v: Value = redis::cmd("AGENT.CLASSIFY").arg(format!("text number {i}")).query(&mut c).expect("classify");
                parse_classification(&v)
            })
        })
        .collect();
    let answers: Vec<_> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(answers.len(), 8);
    assert!(answers.iter().all(|(_, s)| s.len() == 10));
    assert!(stat(&mut c, "classify_batch_size_max") >= 2, "queued requests share a batch");
    assert!(stat(&mut c, "classify_batches") < 8);
    run(&mut c, &["AGENT.DEBUG", "CLASSIFY-DELAY", "0"]);
    // Batched answers equal single ones.
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(&classify(&mut c, &[&format!("text number {i}")]), a);
    }
}

#[test]
fn a_full_queue_refuses_and_counts() {
    let (server, mut c) = start_encoder(&["debug-commands", "yes", "classify-threads", "1", "classify-queue-max", "1"]);
    run(&mut c, &["AGENT.DEBUG", "CLASSIFY-DELAY", "500"]);
    let spawn = |text: &'static str| {
        let url = server.url();
        thread::spawn(move || {
            let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
            redis::cmd("AGENT.CLASSIFY").arg(text).query::<Value>(&mut c).map_err(|e| err_text(&e))
        })
    };
    let first = spawn("taken by the worker");
    assert!(wait_for(|| stat(&mut c, "classify_calls") == 1 && stat(&mut c, "classify_queue_depth") == 0, Duration::from_secs(5)));
    thread::sleep(Duration::from_millis(50));
    let second = spawn("waits in the queue");
    assert!(wait_for(|| stat(&mut c, "classify_queue_depth") == 1, Duration::from_secs(5)));
    let e = expect_err_str(&mut c, &["AGENT.CLASSIFY", "no room"]);
    assert!(e.contains("queue is full"), "{e}");
    assert_eq!(stat(&mut c, "classify_rejected"), 1);
    assert!(first.join().unwrap().is_ok());
    assert!(second.join().unwrap().is_ok());
}

#[test]
fn a_worker_that_panics_still_answers_its_client() {
    let (_server, mut c) = start_encoder(&["debug-commands", "yes"]);
    run(&mut c, &["AGENT.DEBUG", "CLASSIFY-PANIC"]);
    let e = expect_err_str(&mut c, &["AGENT.CLASSIFY", "boom"]);
    assert!(e.contains("worker stopped without an answer"), "{e}");
    // The client is answered while the panic unwinds, a moment before the worker counts it.
    assert!(wait_for(|| stat(&mut c, "panics_caught") == 1, Duration::from_secs(5)), "the panic is counted");
    classify(&mut c, &["the pool still works"]);
}

#[test]
fn topics_survive_restarts_and_aof_rewrite() {
    let builder =
        with_model(&tiny_model(), &[]).arg("--appendonly", "yes").arg("--appendfsync", "always").arg("--aof-use-rdb-preamble", "no");
    let server = builder.clone().start();
    let mut c = server.conn();
    run(&mut c, &["AGENT.TOPIC.SET", "world", "World news.", "EXAMPLES", "Summit ends", "Troops withdraw"]);
    run(&mut c, &["AGENT.TOPIC.DEL", "climate"]);
    let _: String = redis::cmd("BGREWRITEAOF").query(&mut c).expect("BGREWRITEAOF");
    assert!(wait_for(
        || info_field(&mut c, "persistence", "aof_rewrite_in_progress").as_deref() == Some("0")
            && info_field(&mut c, "persistence", "aof_rewrite_scheduled").as_deref() == Some("0"),
        Duration::from_secs(20)
    ));
    run(&mut c, &["AGENT.TOPIC.ADDEXAMPLES", "world", "After the rewrite"]);
    let before = (digest(&mut c), topic_slugs(&mut c));
    let _: String = redis::cmd("DEBUG").arg("RELOAD").query(&mut c).expect("DEBUG RELOAD");
    assert_eq!((digest(&mut c), topic_slugs(&mut c)), before, "RDB round trip");
    drop(c);
    let dir = server.stop();
    let server = builder.adopt_dir(dir).start();
    let mut c = server.conn();
    assert_eq!((digest(&mut c), topic_slugs(&mut c)), before, "AOF (rewrite + tail) round trip");
    assert_eq!(as_string(&topic_field(&mut c, "world", "examples")), "3");
    assert_eq!(stat(&mut c, "load_errors"), 0);
    wait_ready(&mut c);
    classify(&mut c, &["x", "TOPICS", "world"]);
}

#[test]
fn topics_replicate_and_replicas_classify_alike() {
    let primary = with_model(&tiny_model(), &["classify-tier", "model"]).start();
    let replica = with_model(&tiny_model(), &["classify-tier", "model", "classify-threads", "1"]).replica_of(primary.port).start();
    wait_replica_synced(&primary, &replica);
    let mut p = primary.conn();
    let mut r = replica.conn();
    run(&mut p, &["AGENT.TOPIC.SET", "world", "World news.", "EXAMPLES", "Summit ends"]);
    run(&mut p, &["AGENT.TOPIC.ADDEXAMPLES", "world", "Troops withdraw"]);
    run(&mut p, &["AGENT.TOPIC.DEL", "finance"]);
    let _: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut p).expect("WAIT");
    assert_eq!(digest(&mut p), digest(&mut r));
    assert_eq!(topic_slugs(&mut p), topic_slugs(&mut r));
    wait_ready(&mut p);
    wait_ready(&mut r);
    assert_eq!(classify(&mut p, &["Summit ends"]), classify(&mut r, &["Summit ends"]));
    run(&mut p, &["AGENT.TOPIC.RESET"]);
    let _: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut p).expect("WAIT");
    assert_eq!(topic_slugs(&mut r), DEFAULT_TOPICS);
}

#[test]
fn command_metadata_and_acl() {
    let (_server, mut c) = start_encoder(&[]);
    let info: Value = redis::cmd("COMMAND").arg("INFO").arg("agent.classify").arg("agent.topic.set").query(&mut c).expect("COMMAND INFO");
    let text = format!("{info:?}");
    assert!(text.contains("blocking") && text.contains("@agentic"), "{text}");
    run(&mut c, &["ACL", "SETUSER", "reader", "on", "nopass", "+@read", "+@agentic", "-@write", "~*"]);
    let mut r = _server.conn();
    run(&mut r, &["AUTH", "reader", "x"]);
    classify(&mut r, &["allowed to classify"]);
    let e = expect_err_str(&mut r, &["AGENT.TOPIC.SET", "world", "d"]);
    assert!(e.contains("NOPERM"), "{e}");
}

/// American and British news under the default topics, by each tier alone (the cascade only
/// chooses between their answers).
#[test]
fn real_model_classifies_news_into_the_default_topics_in_both_tiers() {
    let Some(dir) = real_model() else { return };
    let server = with_model(&dir, &[]).start();
    let mut c = server.conn();
    wait_ready(&mut c);
    assert!(wait_for(
        || info_field(&mut c, "agentic_classify", "agentic_static_status").as_deref() == Some("ready"),
        Duration::from_secs(10)
    ));
    let cases = [
        ("Manchester United sacked their manager after a run of seven defeats in ten league games", "sports"),
        ("Oil prices fell 3% after OPEC agreed to raise output; shares and bonds rallied on Wall Street", "finance"),
        ("Apple unveils a new iPhone with a faster chip and better cameras", "technology"),
        ("Parliament rejected the prime minister's budget after a heated debate", "politics"),
        ("A new vaccine cut hospital admissions for the flu among older patients", "health"),
        ("Astronomers discover water ice near the lunar south pole", "science"),
        ("Manchester City beat Arsenal 3-1 in the Premier League at the Etihad", "sports"),
        ("England's cricketers collapse on the final day of the Test against Australia", "sports"),
        ("Tesco profits rise as shoppers return to its supermarkets", "business"),
        ("The Bank of England holds interest rates at 5.25% as inflation eases", "finance"),
        ("Labour pledges to cut NHS waiting lists before the general election", "politics"),
        ("Ofsted inspectors say pupils at the academy are let down", "education"),
    ];
    for tier in ["static", "model"] {
        run(&mut c, &["CONFIG", "SET", "agentic.classify-tier", tier]);
        for (text, topic) in cases {
            let (best, scores, answered) = parse_classification_tier(&run(&mut c, &["AGENT.CLASSIFY", text]));
            assert_eq!((best.as_str(), answered.as_str()), (topic, tier), "{text}: {scores:?}");
        }
    }
}
