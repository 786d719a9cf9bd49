//! The ACL users of ops/acl/users.acl (issue 13 point 4) on a real server with the module: each
//! user can run what its component sends and is refused the rest with NOPERM, changing nothing.
//! The real fetcher and gateway under their users: fetcher/tests/acl.rs, gateway/tests/acl.rs.

mod common;

use agentic_tests::{acl_user_url, make_temp_dir, test_acl_file, Server};
use common::*;
use redis::{Connection, Value};

fn server() -> Server {
    let dir = make_temp_dir("acl-users");
    Server::builder().arg("--aclfile", test_acl_file(&dir).to_str().expect("UTF-8 path")).start()
}

fn login(server: &Server, user: &str) -> Connection {
    redis::Client::open(acl_user_url(server, user)).expect("URL").get_connection().unwrap_or_else(|e| panic!("{user} logs in: {e}"))
}

fn send(c: &mut Connection, args: &[&str]) -> redis::RedisResult<Value> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c)
}

fn allowed(c: &mut Connection, user: &str, args: &[&str]) {
    if let Err(e) = send(c, args) {
        assert_ne!(e.code(), Some("NOPERM"), "{user} may run {args:?}: {e}");
    }
}

fn refused(c: &mut Connection, user: &str, args: &[&str]) {
    match send(c, args) {
        Ok(v) => panic!("{user} must not run {args:?}, got {v:?}"),
        Err(e) => assert_eq!(e.code(), Some("NOPERM"), "{user} {args:?}: {e}"),
    }
}

#[test]
fn each_component_user_may_do_its_job_and_nothing_more() {
    let s = server();
    let mut admin = s.conn();
    subscribe(&mut admin, "user:{alice}", &["sports"]);
    fanout_with(&mut admin, "sports", "doc:{a1}", r#"{"title":"t"}"#, &["STREAM", "topic:sports"]);
    let digest_before = digest(&mut admin);

    let mut gateway = login(&s, "gateway");
    for args in [
        &["AGENT.FEED", "user:{alice}", "COUNT", "5"][..],
        &["AGENT.INTERESTS", "user:{alice}"],
        &["AGENT.TOPIC.LIST"],
        &["AGENT.STATS"],
        &["XREVRANGE", "topic:sports", "+", "-", "COUNT", "5"],
        &["GET", "doc:{a1}"],
        &["INFO", "stats"],
        &["MODULE", "LIST"],
    ] {
        allowed(&mut gateway, "gateway", args);
    }
    for args in [
        &["AGENT.FANOUT", "sports", "doc:{x}", "{}"][..],
        &["AGENT.TOPIC.SET", "sports", "anything"],
        &["AGENT.TOPIC.RESET"],
        &["AGENT.DELIVER", "sports", "doc:{a1}", "1", "10", "1000", "1000", "16", "user:{alice}"],
        &["AGENT.LOADUSER", "user:{alice}", "x"],
        &["CONFIG", "SET", "agentic.feed-len", "1"],
        &["SET", "doc:{a1}", "forged"],
        &["XADD", "topic:sports", "*", "f", "v"],
        &["XADD", "news_raw", "*", "f", "v"],
        &["DEL", "user:{alice}"],
        &["FLUSHALL"],
        &["PUBLISH", "agentic:deliveries", "forged"],
        &["KEYS", "*"],
    ] {
        refused(&mut gateway, "gateway", args);
    }

    let mut fetcher = login(&s, "fetcher");
    for args in [&["XLEN", "news_raw"][..], &["XINFO", "GROUPS", "news_raw"], &["XRANGE", "news_raw", "-", "+", "COUNT", "1"]] {
        allowed(&mut fetcher, "fetcher", args);
    }
    for args in [
        &["AGENT.FEED", "user:{alice}"][..],
        &["AGENT.FANOUT", "sports", "doc:{x}", "{}"],
        &["GET", "doc:{a1}"],
        &["XADD", "topic:sports", "*", "f", "v"],
        &["SET", "user:{alice}", "x"],
        &["AGENT.CLASSIFY", "text"],
        &["CONFIG", "GET", "*"],
    ] {
        refused(&mut fetcher, "fetcher", args);
    }
    // Inside its script too, only its own keys: EVAL cannot reach further than the user.
    let script = "return redis.call('GET', KEYS[1])";
    match redis::cmd("EVAL").arg(script).arg(1).arg("doc:{a1}").query::<Value>(&mut fetcher) {
        Ok(v) => panic!("the fetcher read a document through EVAL: {v:?}"),
        Err(e) => assert!(e.to_string().contains("NOPERM") || e.to_string().contains("permission"), "{e}"),
    }

    let mut sidecar = login(&s, "sidecar");
    allowed(&mut sidecar, "sidecar", &["AGENT.SIDECAR.RESULT", "s1", "1", "ERROR", "nothing taken"]);
    for args in [
        &["AGENT.FEED", "user:{alice}"][..],
        &["AGENT.INTERESTS", "user:{alice}"],
        &["GET", "doc:{a1}"],
        &["AGENT.CLASSIFY", "text"],
        &["AGENT.SIDECAR.LIST"],
        &["INFO"],
    ] {
        refused(&mut sidecar, "sidecar", args);
    }

    let mut exporter = login(&s, "exporter");
    for args in [&["INFO", "all"][..], &["AGENT.STATS"], &["CONFIG", "GET", "maxmemory"], &["SLOWLOG", "LEN"], &["LATENCY", "LATEST"]] {
        allowed(&mut exporter, "exporter", args);
    }
    let lua = std::fs::read_to_string(agentic_tests::workspace_dir().join("ops/prometheus/agentic.lua")).expect("agentic.lua");
    let metrics: Value = redis::cmd("EVAL").arg(&lua).arg(0).query(&mut exporter).expect("the exporter's script runs as exporter");
    assert!(matches!(metrics, Value::Array(ref a) if !a.is_empty()), "{metrics:?}");
    for args in [
        &["AGENT.FEED", "user:{alice}"][..],
        &["GET", "doc:{a1}"],
        &["CONFIG", "SET", "maxmemory", "1"],
        &["AGENT.TOPIC.SET", "x", "y"],
        &["SET", "k", "v"],
        &["FLUSHALL"],
        &["CLIENT", "KILL", "TYPE", "normal"],
    ] {
        refused(&mut exporter, "exporter", args);
    }

    let mut admin_user = login(&s, "pipeline-admin");
    for args in [
        &["AGENT.TOPIC.LIST"][..],
        &["AGENT.TOPIC.GET", "sports"],
        &["AGENT.STATS"],
        &["CONFIG", "GET", "agentic.feed-len"],
        &["AGENT.CLASSIFY", "The striker scored"],
    ] {
        allowed(&mut admin_user, "pipeline-admin", args);
    }
    for args in [
        &["AGENT.FEED", "user:{alice}"][..],
        &["AGENT.FANOUT", "sports", "doc:{x}", "{}"],
        &["AGENT.SUBSCRIBE", "user:{alice}", "politics"],
        &["GET", "doc:{a1}"],
        &["DEL", "agentic:topics"],
        &["FLUSHALL"],
    ] {
        refused(&mut admin_user, "pipeline-admin", args);
    }

    // Nothing any refused command could have done happened, and each refusal is in ACL LOG.
    assert_eq!(digest(&mut admin), digest_before, "refused commands changed nothing");
    let log: Vec<Value> = redis::cmd("ACL").arg("LOG").arg(1000).query(&mut admin).expect("ACL LOG");
    assert!(log.len() >= 20, "refusals are logged: {}", log.len());
}

#[test]
fn the_catalog_admin_changes_topics_and_the_agents_user_runs_the_reference_flow() {
    let s = server();
    let mut admin = login(&s, "pipeline-admin");
    let _: Value = redis::cmd("AGENT.TOPIC.SET").arg("robotics").arg("Robots, automation and drones").query(&mut admin).expect("TOPIC.SET");
    let _: Value = redis::cmd("CONFIG").arg("SET").arg("agentic.feed-len").arg("500").query(&mut admin).expect("CONFIG SET agentic.*");

    let mut agents = login(&s, "agents");
    let _: Value = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("news_raw")
        .arg("enrich")
        .arg("0")
        .arg("MKSTREAM")
        .query(&mut agents)
        .expect("XGROUP CREATE");
    let _: Value = redis::cmd("XADD").arg("news_raw").arg("*").arg("data").arg("{}").query(&mut agents).expect("XADD");
    let _: Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("enrich")
        .arg("w1")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg("news_raw")
        .arg(">")
        .query(&mut agents)
        .expect("XREADGROUP");
    let _: i64 = redis::cmd("AGENT.SUBSCRIBE").arg("user:{bob}").arg("robotics").query(&mut agents).expect("SUBSCRIBE");
    let _: Value = redis::cmd("AGENT.FANOUT").arg("robotics").arg("doc:{r1}").arg("{}").query(&mut agents).expect("FANOUT");
    let feed: Vec<Value> = redis::cmd("AGENT.FEED").arg("user:{bob}").query(&mut agents).expect("FEED");
    assert_eq!(feed.len(), 1);
    refused(&mut agents, "agents", &["AGENT.TOPIC.SET", "x", "y"]);
    refused(&mut agents, "agents", &["CONFIG", "SET", "agentic.feed-len", "1"]);
    refused(&mut agents, "agents", &["SET", "agentic:topics", "x"]);
}

#[test]
fn the_exporter_user_has_the_rules_compose_gives_redis_exporter() {
    // docker/valkey-start.sh builds the exporter from ops/prometheus/exporter.acl (tested with the
    // real redis_exporter in ops/tests); ops/acl/users.acl must not drift from it.
    let root = agentic_tests::workspace_dir();
    let rules: Vec<String> = std::fs::read_to_string(root.join("ops/prometheus/exporter.acl"))
        .expect("exporter.acl")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .collect();
    let users = std::fs::read_to_string(root.join("ops/acl/users.acl")).expect("users.acl");
    let line = users.lines().find(|l| l.starts_with("user exporter ")).expect("an exporter user");
    let words: Vec<&str> = line.split_whitespace().skip(4).filter(|w| *w != "resetkeys").collect();
    assert_eq!(words, rules.iter().map(String::as_str).collect::<Vec<_>>());
}
