//! Self-test of the harness: a plain server starts, answers, and is gone after drop.

use std::time::Duration;

use agentic_tests::{info_field, pid_alive, wait_for, wait_replica_synced, Server};

#[test]
fn plain_server_starts_answers_and_is_killed_on_drop() {
    let server = Server::builder().no_module().start();
    let pid = server.pid;
    let dir = server.dir.clone();
    let mut conn = server.conn();
    let pong: String = redis::cmd("PING").query(&mut conn).expect("PING");
    assert_eq!(pong, "PONG");
    let port = info_field(&mut conn, "server", "tcp_port").expect("tcp_port in INFO server");
    assert_eq!(port, server.port.to_string());
    // defaults from the harness command line
    let aof = info_field(&mut conn, "persistence", "aof_enabled").expect("aof_enabled");
    assert_eq!(aof, "0");
    assert!(dir.join("valkey.log").exists(), "log file in data dir");
    assert!(pid_alive(pid));
    drop(conn);
    drop(server);
    assert!(!pid_alive(pid), "server pid {pid} still alive after drop");
    assert!(!dir.exists(), "temp dir {} not removed", dir.display());
}

#[test]
fn extra_args_override_defaults() {
    let server = Server::builder().no_module().arg("--appendonly", "yes").arg("maxmemory-policy", "allkeys-lru").start();
    let mut conn = server.conn();
    assert_eq!(info_field(&mut conn, "persistence", "aof_enabled").as_deref(), Some("1"));
    let cfg: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("maxmemory-policy").query(&mut conn).expect("CONFIG GET");
    assert_eq!(cfg, vec!["maxmemory-policy", "allkeys-lru"]);
}

#[test]
fn kill9_keeps_dir_and_restart_reuses_it() {
    let server = Server::builder().no_module().arg("--appendonly", "yes").arg("--appendfsync", "always").start();
    let pid = server.pid;
    let mut conn = server.conn();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut conn).expect("SET");
    drop(conn);
    let dir = server.kill9();
    assert!(!pid_alive(pid), "SIGKILLed server still alive");
    assert!(dir.exists());

    let restarted = Server::builder().no_module().arg("--appendonly", "yes").adopt_dir(&dir).start();
    let mut conn = restarted.conn();
    let v: Option<String> = redis::cmd("GET").arg("k").query(&mut conn).expect("GET");
    assert_eq!(v.as_deref(), Some("v"), "AOF replay after kill -9");
    drop(conn);
    let dir2 = restarted.stop();
    assert_eq!(dir2, dir);
    assert!(dir.exists(), "stop() hands the dir to the caller");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn replica_syncs() {
    let primary = Server::builder().no_module().start();
    let replica = Server::builder().no_module().replica_of(primary.port).start();
    let mut pc = primary.conn();
    for i in 0..100 {
        let _: () = redis::cmd("SET").arg(format!("k{i}")).arg(i).query(&mut pc).expect("SET");
    }
    wait_replica_synced(&primary, &replica);
    let mut rc = replica.conn();
    let v: Option<i64> = redis::cmd("GET").arg("k99").query(&mut rc).expect("GET");
    assert_eq!(v, Some(99));
    assert!(wait_for(|| true, Duration::from_millis(1)));
}

#[test]
#[should_panic(expected = "valkey-server did not start")]
fn bad_config_panics_with_log() {
    let _server = Server::builder().no_module().arg("--no-such-option", "1").start();
}
