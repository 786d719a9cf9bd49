//! `make dev CLUSTER=3` (scripts/dev-cluster.sh) as a user runs it, with the tiny model: six
//! nodes made into a 3+3 cluster by valkey-cli, the fetcher and the gateway as cluster clients;
//! a demo user's feed fills with articles through the gateway, stopping the script stops every
//! process it started, and a second run brings the same cluster back.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agentic_tests::{file_tail, free_port, make_temp_dir, server_binary, wait_for, workspace_dir};

/// A first port such that it and the next five, and their cluster bus ports (+10000), are free.
fn free_port_block() -> u16 {
    for base in (21000..29000).step_by(37) {
        let free = (0..6)
            .all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok() && TcpListener::bind(("127.0.0.1", base + i + 10000)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no block of 6 free ports");
}

fn answers(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// GET over plain HTTP/1.0: the body, or None when the server did not answer 200.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    let (head, body) = reply.split_once("\r\n\r\n")?;
    // Hyper answers an HTTP/1.0 request as HTTP/1.0.
    let status = head.lines().next()?.split_whitespace().nth(1)?;
    (status == "200").then(|| body.to_string())
}

/// The script, sent SIGTERM (its trap stops what it started) and waited for when dropped.
struct Script(Child);

impl Script {
    fn stop(&mut self) -> bool {
        // SAFETY: signals our own child by PID.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        if !self.stop() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn make_dev_cluster_runs_the_stack_on_six_nodes_and_stops_everything() {
    let root = workspace_dir();
    let model = root.join("model/out/tiny");
    assert!(model.join("model.onnx").is_file(), "the tiny test model is missing: run `make tiny-model` (make test does)");
    let data = make_temp_dir("dev-cluster");
    let base = free_port_block();
    let gateway = free_port();
    let fetcher_metrics = format!("127.0.0.1:{}", free_port());
    let start = |out: &std::path::Path| {
        let script = Script(
            Command::new("bash")
                .arg(root.join("scripts/dev-cluster.sh"))
                .env("CLUSTER", "3")
                .env("PORT", base.to_string())
                .env("GATEWAY_PORT", gateway.to_string())
                .env("MODEL_DIR", &model)
                .env("RATE", "10")
                .env("DATA_DIR", data.join("nodes"))
                .env("FETCHER_METRICS", &fetcher_metrics)
                .env("VALKEY_SERVER", server_binary())
                .stdout(std::fs::File::create(out).expect("script output"))
                .stderr(Stdio::inherit())
                .spawn()
                .expect("bash scripts/dev-cluster.sh"),
        );
        let started =
            wait_for(|| std::fs::read_to_string(out).unwrap_or_default().contains("is running on a cluster"), Duration::from_secs(120));
        assert!(started, "the script did not start the stack:\n{}", file_tail(out, 40));
        script
    };
    let out = data.join("script.out");
    let mut script = start(&out);
    assert!(std::fs::read_to_string(&out).unwrap_or_default().contains("creating a cluster"), "a first run creates the cluster");

    let mut c = redis::Client::open(format!("redis://127.0.0.1:{base}")).expect("url").get_connection().expect("connect");
    let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut c).expect("CLUSTER INFO");
    assert!(info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:6") && info.contains("cluster_size:3"), "{info}");
    // Alice follows technology, science and business; synthetic news covers ten topics.
    let fed = wait_for(
        || http_get(gateway, "/api/users/alice/feed?count=5").is_some_and(|b| b.contains("\"article\":{")),
        Duration::from_secs(60),
    );
    assert!(fed, "no article reached alice's feed through the gateway; gateway log:\n{}", file_tail(&data.join("nodes/gateway.log"), 30));
    let health = http_get(gateway, "/healthz").unwrap_or_default();
    assert!(health.contains("\"module\":true"), "{health}");
    // The fetcher and the gateway run as their own ACL users and were refused nothing.
    for p in base..base + 6 {
        let mut node = redis::Client::open(format!("redis://127.0.0.1:{p}")).expect("url").get_connection().expect("connect");
        let log: Vec<redis::Value> = redis::cmd("ACL").arg("LOG").query(&mut node).expect("ACL LOG");
        assert!(log.is_empty(), "node {p} refused a component: {log:?}");
    }

    assert!(script.stop(), "the script did not stop on SIGTERM");
    for p in base..base + 6 {
        assert!(wait_for(|| !answers(p), Duration::from_secs(10)), "node {p} still answers after the script stopped");
    }
    assert!(!answers(gateway), "the gateway still answers after the script stopped");

    // A second run brings the same cluster back from its nodes.conf and AOF files.
    let again = data.join("script-again.out");
    let mut script = start(&again);
    assert!(!std::fs::read_to_string(&again).unwrap_or_default().contains("creating a cluster"), "the cluster is not created twice");
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{base}")).expect("url").get_connection().expect("connect");
    let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut c).expect("CLUSTER INFO");
    assert!(info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:6"), "{info}");
    let kept = http_get(gateway, "/api/users/alice/feed?count=5").unwrap_or_default();
    assert!(kept.contains("\"article\":{"), "alice's feed survived the restart: {kept}");
    assert!(script.stop(), "the script did not stop on SIGTERM");
    let _ = std::fs::remove_dir_all(&data);
}
