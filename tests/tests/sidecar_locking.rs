//! The sidecar registry and the classify queue under contention: sidecars polling
//! AGENT.SIDECAR.NEXT as fast as they can and leaving their batches in flight, while clients
//! classify. The server must keep answering. A lock-order inversion between the pool's idle check
//! and AGENT.SIDECAR.NEXT once deadlocked the whole server (found by `make soak` after ~40 s); its
//! window is a few hundred nanoseconds, so this test catches it only sometimes: the order itself
//! is documented in classify/pool.rs.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use agentic_tests::info_field;
use common::classify::*;
use redis::Value;

#[test]
fn sidecars_polling_while_clients_classify_never_stop_the_server() {
    // Batches left unanswered go back to the CPU pool after 100 ms, so the pool's worker keeps
    // checking the in-flight batches while the sidecars keep calling.
    let (server, mut c) = start_tiny(&["classify-tier", "model", "sidecar-timeout-ms", "100"]);
    let fingerprint = info_field(&mut c, "agentic_classify", "agentic_model_fingerprint").expect("model fingerprint");
    let stop = Arc::new(AtomicBool::new(false));
    let batches = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for s in 0..2 {
        let (client, stop, batches, fp) = (server.client(), stop.clone(), batches.clone(), fingerprint.clone());
        threads.push(thread::spawn(move || {
            let mut c = client.get_connection().expect("sidecar connection");
            c.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
            while !stop.load(Ordering::Relaxed) {
                let reply: redis::RedisResult<Value> = redis::cmd("AGENT.SIDECAR.NEXT")
                    .arg(format!("racer-{s}"))
                    .arg("DEVICE")
                    .arg("cpu")
                    .arg("MODEL")
                    .arg(&fp)
                    .arg("BATCH")
                    .arg(2)
                    .arg("BLOCK")
                    .arg(1)
                    .query(&mut c);
                match reply {
                    Ok(Value::Array(_)) => {
                        batches.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) if e.is_timeout() => return Err(format!("AGENT.SIDECAR.NEXT did not answer within 5 s: {e}")),
                    Err(e) => return Err(format!("AGENT.SIDECAR.NEXT: {e}")),
                }
            }
            Ok(())
        }));
    }
    for t in 0..3 {
        let (client, stop, answered) = (server.client(), stop.clone(), answered.clone());
        threads.push(thread::spawn(move || {
            let mut c = client.get_connection().expect("client connection");
            c.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let text = format!("client {t} text {n}: the central bank raised interest rates again");
                match redis::cmd("AGENT.CLASSIFY").arg(&text).query::<Value>(&mut c) {
                    Ok(_) => {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) if e.is_timeout() => return Err(format!("AGENT.CLASSIFY did not answer within 10 s: {e}")),
                    Err(e) => return Err(format!("AGENT.CLASSIFY: {e}")),
                }
            }
            Ok(())
        }));
    }
    c.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    let started = Instant::now();
    let mut stalled = None;
    while started.elapsed() < Duration::from_secs(5) {
        if let Err(e) = redis::cmd("PING").query::<String>(&mut c) {
            stalled = Some(format!("PING after {:?}: {e}", started.elapsed()));
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(s) = stalled {
        // The server is stuck; drop kills it (by PID) before the threads are joined.
        drop(server);
        panic!("the server stopped answering: {s}");
    }
    for t in threads {
        t.join().expect("thread").unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(batches.load(Ordering::Relaxed) > 0, "the sidecars were never handed a batch");
    assert!(answered.load(Ordering::Relaxed) > 0, "no AGENT.CLASSIFY was answered");
    let fallbacks: u64 =
        info_field(&mut c, "agentic", "agentic_sidecar_fallbacks").and_then(|v| v.parse().ok()).expect("agentic_sidecar_fallbacks");
    assert!(fallbacks > 0, "unanswered batches must go back to the CPU pool");
}
