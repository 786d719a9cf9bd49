//! ACL categories and key specs of the AGENT.* commands, and their COMMAND INFO / GETKEYS / DOCS.

mod common;

use std::collections::HashMap;

use agentic_tests::Server;
use common::*;
use redis::{Connection, Value};

const COMMANDS: [&str; 20] = [
    "agent.subscribe",
    "agent.unsubscribe",
    "agent.interests",
    "agent.fanout",
    "agent.deliver",
    "agent.feed",
    "agent.stats",
    "agent.loaduser",
    "agent.debug",
    "agent.classify",
    "agent.topic.set",
    "agent.topic.addexamples",
    "agent.topic.del",
    "agent.topic.reset",
    "agent.topic.get",
    "agent.topic.list",
    "agent.loadtopics",
    "agent.sidecar.next",
    "agent.sidecar.result",
    "agent.sidecar.list",
];

fn conn_as(server: &Server, user: &str, pass: &str) -> Connection {
    redis::Client::open(format!("redis://{user}:{pass}@127.0.0.1:{}/", server.port))
        .expect("url")
        .get_connection()
        .expect("AUTH as ACL user")
}

fn acl_setuser(c: &mut Connection, rules: &[&str]) {
    let _: () = redis::cmd("ACL").arg("SETUSER").arg(rules).query(c).expect("ACL SETUSER");
}

fn write_commands() -> Vec<Vec<&'static str>> {
    vec![
        vec!["AGENT.FANOUT", "sports", "doc:9", "x"],
        vec!["AGENT.SUBSCRIBE", "user:{2}", "sports"],
        vec!["AGENT.UNSUBSCRIBE", "user:{1}", "sports"],
        vec!["AGENT.DELIVER", "sports", "doc:9", "1000", "10", "60000", "1000", "128", "user:{1}"],
        vec!["AGENT.LOADUSER", "user:{3}", "blob"],
        vec!["AGENT.TOPIC.SET", "world", "World news."],
        vec!["AGENT.TOPIC.ADDEXAMPLES", "sports", "Cup final"],
        vec!["AGENT.TOPIC.DEL", "sports"],
        vec!["AGENT.TOPIC.RESET"],
        vec!["AGENT.LOADTOPICS", "agentic:topics", "blob"],
        vec!["AGENT.TIMELINE.APPEND", "agentic:timelines", "sports", "doc:9", "1000-1", "1000", "10", "60000", "1000", "128"],
        vec!["AGENT.TIMELINE.LOAD", "agentic:timelines", "blob"],
    ]
}

fn read_commands() -> Vec<Vec<&'static str>> {
    vec![
        vec!["AGENT.FEED", "user:{1}"],
        vec!["AGENT.INTERESTS", "user:{1}"],
        vec!["AGENT.STATS"],
        vec!["AGENT.TOPIC.LIST"],
        vec!["AGENT.TOPIC.GET", "sports"],
        vec!["AGENT.CLASSIFY", "text"],
    ]
}

fn setup() -> (Server, Connection) {
    let server = Server::start();
    let mut c = server.conn();
    subscribe(&mut c, "user:{1}", &["sports"]);
    fanout(&mut c, "sports", "doc:1", "one");
    (server, c)
}

#[test]
fn user_without_write_category_can_read_but_not_write() {
    let (server, mut admin) = setup();
    acl_setuser(&mut admin, &["w", "on", ">p", "~*", "&*", "+@all", "-@write"]);
    let mut w = conn_as(&server, "w", "p");
    let digest_before = digest(&mut admin);
    for cmd in write_commands() {
        let e = expect_err_str(&mut w, &cmd);
        assert!(e.starts_with("NOPERM"), "{cmd:?}: {e}");
    }
    assert_eq!(digest(&mut admin), digest_before, "a refused command wrote something");
    assert_eq!(stat(&mut admin, "fanout_calls"), 1);

    assert_eq!(feed_docs(&mut w, "user:{1}"), vec!["doc:1"]);
    assert_eq!(interests(&mut w, "user:{1}"), vec!["sports"]);
    assert_eq!(stat(&mut w, "fanout_deliveries"), 1);
}

#[test]
fn without_the_agentic_category_every_agent_command_is_refused() {
    let (server, mut admin) = setup();
    acl_setuser(&mut admin, &["na", "on", ">p", "~*", "&*", "+@all", "-@agentic"]);
    let mut na = conn_as(&server, "na", "p");
    for cmd in write_commands().into_iter().chain(read_commands()).chain([vec!["AGENT.DEBUG", "PANIC"]]) {
        let e = expect_err_str(&mut na, &cmd);
        assert!(e.starts_with("NOPERM"), "{cmd:?}: {e}");
    }
    let pong: String = redis::cmd("PING").query(&mut na).expect("PING");
    assert_eq!(pong, "PONG");

    // Conversely, +@agentic alone grants exactly the module's commands.
    acl_setuser(&mut admin, &["only", "on", ">p", "~*", "&*", "-@all", "+@agentic"]);
    let mut only = conn_as(&server, "only", "p");
    assert_eq!(feed_docs(&mut only, "user:{1}"), vec!["doc:1"]);
    assert_eq!(fanout(&mut only, "sports", "doc:2", "two"), (1, 0));
    let e = expect_err_str(&mut only, &["GET", "doc:1"]);
    assert!(e.starts_with("NOPERM"), "{e}");
    let cats: Vec<String> = redis::cmd("ACL").arg("CAT").query(&mut admin).expect("ACL CAT");
    assert!(cats.iter().any(|c| c == "agentic"), "{cats:?}");
}

#[test]
fn key_permissions_apply_to_every_key_argument() {
    let (server, mut admin) = setup();
    acl_setuser(&mut admin, &["k", "on", ">p", "~user:*", "~doc:*", "&*", "+@all"]);
    let mut k = conn_as(&server, "k", "p");
    assert_eq!(fanout(&mut k, "sports", "doc:2", "two"), (1, 0));
    let before = digest(&mut admin);
    for cmd in [
        vec!["AGENT.FANOUT", "sports", "other:3", "x"],
        vec!["AGENT.FANOUT", "sports", "doc:3", "x", "STREAM", "ts:sports"],
        vec!["AGENT.FANOUT", "sports", "doc:3", "x", "USERS", "user:{1}", "admin:{1}"],
        vec!["AGENT.SUBSCRIBE", "admin:{1}", "sports"],
        vec!["AGENT.FEED", "admin:{1}"],
        vec!["AGENT.DELIVER", "sports", "doc:3", "1", "10", "60000", "1000", "128", "admin:{1}"],
    ] {
        let e = expect_err_str(&mut k, &cmd);
        assert!(e.starts_with("NOPERM"), "{cmd:?}: {e}");
    }
    assert_eq!(digest(&mut admin), before, "a refused command wrote something");
}

/// COMMAND INFO entry of one command: (arity, flags, categories).
fn command_info(c: &mut Connection, name: &str) -> (i64, Vec<String>, Vec<String>) {
    let v: Value = redis::cmd("COMMAND").arg("INFO").arg(name).query(c).expect("COMMAND INFO");
    let Value::Array(list) = v else { panic!("{v:?}") };
    let Value::Array(info) = &list[0] else { panic!("no COMMAND INFO for {name}: {list:?}") };
    assert_eq!(as_string(&info[0]), name);
    let Value::Int(arity) = info[1] else { panic!("arity {:?}", info[1]) };
    let strings = |v: &Value| -> Vec<String> {
        match v {
            Value::Array(a) | Value::Set(a) => a.iter().map(as_string).collect(),
            other => panic!("{other:?}"),
        }
    };
    (arity, strings(&info[2]), strings(&info[6]))
}

#[test]
fn command_info_has_flags_and_categories() {
    let server = Server::start();
    let mut c = server.conn();
    let expect: [(&str, i64, &[&str], &[&str]); 20] = [
        ("agent.subscribe", -3, &["write", "denyoom", "fast"], &["@write", "@fast", "@agentic"]),
        ("agent.unsubscribe", -3, &["write", "fast"], &["@write", "@fast", "@agentic"]),
        ("agent.interests", 2, &["readonly", "fast"], &["@read", "@fast", "@agentic"]),
        ("agent.fanout", -4, &["write", "denyoom", "movablekeys"], &["@write", "@agentic"]),
        ("agent.deliver", -9, &["write", "denyoom"], &["@write", "@agentic"]),
        ("agent.feed", -2, &["readonly", "blocking"], &["@read", "@blocking", "@agentic"]),
        ("agent.stats", 1, &["readonly", "fast"], &["@read", "@fast", "@agentic"]),
        ("agent.loaduser", 3, &["write", "denyoom"], &["@write", "@agentic"]),
        ("agent.debug", -2, &["admin", "noscript"], &["@admin", "@dangerous", "@agentic"]),
        ("agent.classify", -2, &["readonly", "blocking"], &["@read", "@blocking", "@agentic"]),
        ("agent.topic.set", -3, &["write", "denyoom"], &["@write", "@agentic"]),
        ("agent.topic.addexamples", -3, &["write", "denyoom"], &["@write", "@agentic"]),
        ("agent.topic.del", -2, &["write"], &["@write", "@agentic"]),
        ("agent.topic.reset", 1, &["write"], &["@write", "@agentic"]),
        ("agent.topic.get", 2, &["readonly", "fast"], &["@read", "@fast", "@agentic"]),
        ("agent.topic.list", 1, &["readonly"], &["@read", "@agentic"]),
        ("agent.loadtopics", 3, &["write", "denyoom"], &["@write", "@agentic"]),
        ("agent.sidecar.next", -6, &["readonly", "blocking"], &["@blocking", "@agentic"]),
        ("agent.sidecar.result", -5, &["readonly"], &["@agentic"]),
        ("agent.sidecar.list", 1, &["readonly"], &["@agentic"]),
    ];
    for (name, arity, flags, cats) in expect {
        let (a, f, k) = command_info(&mut c, name);
        assert_eq!(a, arity, "arity of {name}");
        for flag in flags {
            assert!(f.iter().any(|x| x == flag), "{name} lacks flag {flag}: {f:?}");
        }
        for cat in cats {
            assert!(k.iter().any(|x| x == cat), "{name} lacks category {cat}: {k:?}");
        }
        if name != "agent.debug" {
            assert!(!f.iter().any(|x| x == "admin"), "{name} is not an admin command: {f:?}");
        }
    }
    let (_, feed_flags, _) = command_info(&mut c, "agent.feed");
    assert!(!feed_flags.iter().any(|x| x == "write"), "{feed_flags:?}");
    let (_, fanout_flags, _) = command_info(&mut c, "agent.fanout");
    assert!(!fanout_flags.iter().any(|x| x == "readonly"), "{fanout_flags:?}");
}

fn getkeys(c: &mut Connection, args: &[&str]) -> Vec<String> {
    redis::cmd("COMMAND").arg("GETKEYS").arg(args).query(c).unwrap_or_else(|e| panic!("COMMAND GETKEYS {args:?}: {}", err_text(&e)))
}

#[test]
fn command_getkeys_finds_every_key() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(getkeys(&mut c, &["AGENT.SUBSCRIBE", "user:{1}", "a", "b"]), vec!["user:{1}"]);
    assert_eq!(getkeys(&mut c, &["AGENT.UNSUBSCRIBE", "user:{1}", "a"]), vec!["user:{1}"]);
    assert_eq!(getkeys(&mut c, &["AGENT.INTERESTS", "user:{1}"]), vec!["user:{1}"]);
    assert_eq!(getkeys(&mut c, &["AGENT.FEED", "user:{1}", "COUNT", "5", "BLOCK", "0"]), vec!["user:{1}"]);
    assert_eq!(getkeys(&mut c, &["AGENT.LOADUSER", "user:{1}", "blob"]), vec!["user:{1}"]);
    assert_eq!(getkeys(&mut c, &["AGENT.FANOUT", "sports", "doc:1", "p"]), vec!["doc:1"]);
    assert_eq!(getkeys(&mut c, &["AGENT.FANOUT", "sports", "doc:1", "p", "STREAM", "ts:s"]), vec!["doc:1", "ts:s"]);
    assert_eq!(getkeys(&mut c, &["AGENT.FANOUT", "sports", "doc:1", "p", "USERS", "u:1", "u:2"]), vec!["doc:1", "u:1", "u:2"]);
    assert_eq!(
        getkeys(&mut c, &["AGENT.FANOUT", "sports", "doc:1", "p", "STREAM", "ts:s", "USERS", "u:1", "u:2"]),
        vec!["doc:1", "ts:s", "u:1", "u:2"]
    );
    assert_eq!(getkeys(&mut c, &["AGENT.DELIVER", "sports", "doc:1", "1", "10", "60000", "1000", "128", "u:1", "u:2"]), vec!["u:1", "u:2"]);
    let e = redis::cmd("COMMAND").arg("GETKEYS").arg("AGENT.STATS").query::<Value>(&mut c).unwrap_err();
    assert!(err_text(&e).contains("no key arguments"), "{}", err_text(&e));
}

#[test]
fn command_docs_have_a_summary_for_every_command() {
    let server = Server::start();
    let mut c = server.conn();
    let v: Value = redis::cmd("COMMAND").arg("DOCS").arg(&COMMANDS).query(&mut c).expect("COMMAND DOCS");
    let Value::Array(items) = v else { panic!("{v:?}") };
    assert_eq!(items.len(), 2 * COMMANDS.len(), "{items:?}");
    let mut docs: HashMap<String, HashMap<String, Value>> = HashMap::new();
    for pair in items.chunks(2) {
        let Value::Array(fields) = &pair[1] else { panic!("{pair:?}") };
        let m = fields.chunks(2).map(|kv| (as_string(&kv[0]), kv[1].clone())).collect();
        docs.insert(as_string(&pair[0]), m);
    }
    for name in COMMANDS {
        let d = docs.get(name).unwrap_or_else(|| panic!("no docs for {name}"));
        let summary = as_string(d.get("summary").unwrap_or_else(|| panic!("{name} has no summary")));
        assert!(summary.len() > 10, "{name} summary {summary:?}");
        assert_eq!(d.get("module").map(as_string).as_deref(), Some("agentic"), "{name}");
        assert!(d.contains_key("complexity"), "{name} has no complexity");
    }
}
