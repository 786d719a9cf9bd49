//! Every malformed request is refused with a clear error and writes nothing.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use agentic_tests::{pid_alive, Server, ServerBuilder};
use common::*;
use redis::Connection;

/// A server with `user:{1}` following sports, one delivered document, a list, a string, a hash
/// and a stream to aim WRONGTYPE at.
fn setup_with(builder: ServerBuilder) -> (Server, Connection) {
    let server = builder.start();
    let mut c = server.conn();
    subscribe(&mut c, "user:{1}", &["sports"]);
    fanout(&mut c, "sports", "doc:0", "zero");
    let _: i64 = redis::cmd("RPUSH").arg("a-list").arg("x").query(&mut c).expect("RPUSH");
    let _: () = redis::cmd("SET").arg("a-string").arg("s").query(&mut c).expect("SET");
    let _: i64 = redis::cmd("HSET").arg("a-hash").arg("f").arg("v").query(&mut c).expect("HSET");
    let _: String = redis::cmd("XADD").arg("a-stream").arg("*").arg("f").arg("v").query(&mut c).expect("XADD");
    (server, c)
}

fn setup() -> (Server, Connection) {
    setup_with(Server::builder())
}

/// What a refused command must leave untouched.
#[derive(Debug, PartialEq)]
struct State {
    digest: String,
    dbsize: i64,
    deliveries: i64,
    calls: i64,
}

fn state(c: &mut Connection) -> State {
    State { digest: digest(c), dbsize: dbsize(c), deliveries: stat(c, "fanout_deliveries"), calls: stat(c, "fanout_calls") }
}

/// Runs `args`, asserts it fails with an error containing `needle` and that nothing changed.
fn refused(c: &mut Connection, args: &[&[u8]], needle: &str) {
    let before = state(c);
    let e = expect_err(c, args);
    assert!(
        e.contains(needle),
        "{:?}: error {e:?} does not mention {needle:?}",
        args.iter().map(|a| String::from_utf8_lossy(a).chars().take(40).collect::<String>()).collect::<Vec<_>>()
    );
    assert_eq!(state(c), before, "{e}: the refused command changed the data set");
}

fn refused_str(c: &mut Connection, args: &[&str], needle: &str) {
    let bytes: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    refused(c, &bytes, needle);
}

#[test]
fn wrong_arity_for_every_command() {
    let (_server, mut c) = setup();
    for args in [
        &["AGENT.SUBSCRIBE", "user:{1}"][..],
        &["AGENT.SUBSCRIBE"],
        &["AGENT.UNSUBSCRIBE", "user:{1}"],
        &["AGENT.INTERESTS"],
        &["AGENT.INTERESTS", "user:{1}", "extra"],
        &["AGENT.FANOUT", "sports", "doc:1"],
        &["AGENT.DELIVER", "sports", "doc:1", "1", "10", "60000", "1000", "128"],
        &["AGENT.FEED"],
        &["AGENT.STATS", "extra"],
        &["AGENT.LOADUSER", "user:{1}"],
        &["AGENT.LOADUSER", "user:{1}", "blob", "extra"],
        &["AGENT.DEBUG"],
    ] {
        refused_str(&mut c, args, "wrong number of arguments");
    }
}

#[test]
fn bad_numbers_are_refused() {
    let (_server, mut c) = setup();
    let feed_cases: [(&[&str], &str); 11] = [
        (&["COUNT", "0"], "COUNT must be between 1 and"),
        (&["COUNT", "-1"], "COUNT must be between 1 and"),
        (&["COUNT", "10001"], "COUNT must be between 1 and"),
        (&["COUNT", "abc"], "COUNT must be an integer"),
        (&["COUNT", "1.5"], "COUNT must be an integer"),
        (&["COUNT"], "COUNT needs a value"),
        (&["BLOCK", "-1"], "BLOCK timeout (ms) must be between 0 and"),
        (&["BLOCK", "soon"], "BLOCK timeout (ms) must be an integer"),
        (&["BEFORE", "12-x"], "invalid entry id"),
        (&["AFTER", "-5"], "invalid entry id"),
        (&["BEFORE", "1-0", "AFTER", "2-0"], "syntax error near 'AFTER'"),
    ];
    for (extra, needle) in feed_cases {
        let mut args = vec!["AGENT.FEED", "user:{1}"];
        args.extend_from_slice(extra);
        refused_str(&mut c, &args, needle);
    }
    refused_str(&mut c, &["AGENT.FEED", "user:{1}", "LIMIT", "5"], "syntax error near 'LIMIT'");

    // AGENT.DELIVER topic doc ts feed-len seen-ttl-ms fp-ppm capacity users...
    let good = ["sports", "doc:0", "1000", "10", "60000", "1000", "128"];
    let bad: [(usize, &str, &str); 11] = [
        (2, "-1", "timestamp must be between 0 and"),
        (2, "yesterday", "timestamp must be an integer"),
        (3, "0", "feed length must be between 1 and 100000"),
        (3, "100001", "feed length must be between 1 and 100000"),
        (3, "ten", "feed length must be an integer"),
        (4, "999", "seen TTL (ms) must be between 1000 and"),
        (4, "x", "seen TTL (ms) must be an integer"),
        (5, "0", "seen false-positive ppm must be between 1 and 100000"),
        (5, "100001", "seen false-positive ppm must be between 1 and 100000"),
        (6, "7", "seen capacity must be between 8 and"),
        (6, "", "seen capacity must be an integer"),
    ];
    for (pos, value, needle) in bad {
        let mut args: Vec<&str> = vec!["AGENT.DELIVER"];
        args.extend_from_slice(&good);
        args[pos + 1] = value;
        args.push("user:{2}");
        refused_str(&mut c, &args, needle);
    }
    assert!(!exists(&mut c, "user:{2}"));
}

#[test]
fn invalid_topics_are_refused() {
    let (_server, mut c) = setup();
    let long = "a".repeat(65);
    let bad: Vec<&[u8]> = vec![
        b"Sports",
        b"",
        long.as_bytes(),
        b"spo\0rts",
        b"\xff\xfe",
        b"-leading-dash",
        b"_leading",
        b"has space",
        b"dot.ted",
        "caf\u{e9}".as_bytes(),
    ];
    for t in bad {
        refused(&mut c, &[b"AGENT.SUBSCRIBE", b"user:{1}", b"news", t], "invalid topic");
        refused(&mut c, &[b"AGENT.UNSUBSCRIBE", b"user:{1}", t, b"sports"], "invalid topic");
        refused(&mut c, &[b"AGENT.FANOUT", t, b"doc:9", b"x"], "invalid topic");
        refused(&mut c, &[b"AGENT.DELIVER", t, b"doc:9", b"1", b"10", b"60000", b"1000", b"128", b"user:{1}"], "invalid topic");
    }
    assert_eq!(interests(&mut c, "user:{1}"), vec!["sports"]);
    // The limits themselves are fine.
    let max = "z".repeat(64);
    assert_eq!(subscribe(&mut c, "user:{1}", &[&max, "0-a_b", "9"]), 3);
}

#[test]
fn invalid_keys_are_refused() {
    let (_server, mut c) = setup();
    let long = format!("user:{}", "k".repeat(1020)); // 1025 bytes
    assert_eq!(long.len(), 1025);
    for key in [&b""[..], long.as_bytes(), b"user:\0x", b"user:\xc3\x28"] {
        refused(&mut c, &[b"AGENT.SUBSCRIBE", key, b"sports"], "user key");
        refused(&mut c, &[b"AGENT.UNSUBSCRIBE", key, b"sports"], "user key");
        refused(&mut c, &[b"AGENT.INTERESTS", key], "user key");
        refused(&mut c, &[b"AGENT.FEED", key], "user key");
        refused(&mut c, &[b"AGENT.FANOUT", b"sports", key, b"x"], "document key");
        refused(&mut c, &[b"AGENT.FANOUT", b"sports", b"doc:9", b"x", b"STREAM", key], "stream key");
        refused(&mut c, &[b"AGENT.FANOUT", b"sports", b"doc:9", b"x", b"USERS", b"user:{2}", key], "user key");
        refused(&mut c, &[b"AGENT.DELIVER", b"sports", b"doc:9", b"1", b"10", b"60000", b"1000", b"128", key], "user key");
        refused(&mut c, &[b"AGENT.DELIVER", b"sports", key, b"1", b"10", b"60000", b"1000", b"128", b"user:{1}"], "document key");
        refused(&mut c, &[b"AGENT.LOADUSER", key, b"blob"], "user key");
    }
    let e = expect_err(&mut c, &[b"AGENT.SUBSCRIBE", b"", b"sports"]);
    assert!(e.contains("must not be empty"), "{e}");
    let e = expect_err(&mut c, &[b"AGENT.SUBSCRIBE", long.as_bytes(), b"sports"]);
    assert!(e.contains("longer than 1024 bytes"), "{e}");
    // 1024 bytes is accepted.
    let max = format!("user:{}", "k".repeat(1019));
    assert_eq!(subscribe(&mut c, &max, &["sports"]), 1);
}

#[test]
fn invalid_payloads_are_refused() {
    let (_server, mut c) = setup();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("agentic.max-doc-bytes").arg("100").query(&mut c).expect("CONFIG SET");
    let big = "p".repeat(101);
    for (payload, needle) in [
        (&b""[..], "payload must not be empty"),
        (big.as_bytes(), "payload is 101 bytes, over agentic.max-doc-bytes (100)"),
        (b"nul\0inside", "payload must not contain NUL bytes"),
        (b"bad \xff utf8", "payload must be valid UTF-8"),
    ] {
        refused(&mut c, &[b"AGENT.FANOUT", b"sports", b"doc:9", payload], needle);
        refused(&mut c, &[b"AGENT.FANOUT", b"sports", b"doc:0", payload, b"STREAM", b"ts:s"], needle);
    }
    // Exactly max-doc-bytes is accepted.
    assert_eq!(fanout(&mut c, "sports", "doc:9", &"p".repeat(100)), (1, 0));
}

#[test]
fn wrong_types_are_refused() {
    let (_server, mut c) = setup();
    let wrongtype = "WRONGTYPE";
    refused_str(&mut c, &["AGENT.FANOUT", "sports", "a-list", "x"], wrongtype);
    refused_str(&mut c, &["AGENT.FANOUT", "sports", "user:{1}", "x"], wrongtype);
    refused_str(&mut c, &["AGENT.FANOUT", "sports", "doc:9", "x", "STREAM", "a-string"], wrongtype);
    refused_str(&mut c, &["AGENT.FANOUT", "sports", "doc:9", "x", "STREAM", "user:{1}"], wrongtype);
    refused_str(&mut c, &["AGENT.FANOUT", "sports", "doc:9", "x", "USERS", "user:{2}", "a-hash"], wrongtype);
    refused_str(&mut c, &["AGENT.FANOUT", "sports", "doc:9", "x", "STREAM", "ts:s", "USERS", "a-stream"], wrongtype);
    refused_str(&mut c, &["AGENT.DELIVER", "sports", "doc:0", "1", "10", "60000", "1000", "128", "user:{2}", "a-string"], wrongtype);
    refused_str(&mut c, &["AGENT.SUBSCRIBE", "a-string", "sports"], wrongtype);
    refused_str(&mut c, &["AGENT.UNSUBSCRIBE", "a-hash", "sports"], wrongtype);
    refused_str(&mut c, &["AGENT.INTERESTS", "a-list"], wrongtype);
    refused_str(&mut c, &["AGENT.FEED", "a-stream"], wrongtype);
    assert!(!exists(&mut c, "user:{2}"));
    assert!(!exists(&mut c, "doc:9"));
    assert!(!exists(&mut c, "ts:s"));
}

#[test]
fn fanout_option_syntax_errors_are_refused() {
    let (_server, mut c) = setup();
    refused_str(&mut c, &["AGENT.FANOUT", "sports", "doc:9", "x", "STREAM"], "STREAM needs a stream key");
    refused_str(&mut c, &["AGENT.FANOUT", "sports", "doc:9", "x", "USERS"], "USERS needs at least one user key");
    refused_str(&mut c, &["AGENT.FANOUT", "sports", "doc:9", "x", "STREAM", "s1", "STREAM", "s2"], "syntax error");
    refused_str(&mut c, &["AGENT.FANOUT", "sports", "doc:9", "x", "TTL", "5"], "syntax error near 'TTL'");
    refused_str(&mut c, &["AGENT.DEBUG", "PANIC"], "AGENT.DEBUG is disabled");
}

#[test]
fn too_many_topics_per_user_is_refused() {
    let (_server, mut c) = setup();
    let topics: Vec<String> = (0..256).map(|i| format!("t{i}")).collect();
    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    let mut args = vec!["AGENT.SUBSCRIBE", "user:{1}"];
    args.extend_from_slice(&refs); // 256 new + sports = 257
    refused_str(&mut c, &args, "at most 256 topics");
    args[1] = "user:{2}";
    args.push("sports"); // a new user with 257 topics
    refused_str(&mut c, &args, "at most 256 topics");
    assert!(!exists(&mut c, "user:{2}"));
    assert_eq!(subscribe(&mut c, "user:{1}", &refs[..255]), 255);
}

#[test]
fn loaduser_with_garbage_is_refused() {
    let (_server, mut c) = setup();
    for blob in [&b"garbage"[..], b"", b"\x01", b"\x01\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff"] {
        refused(&mut c, &[b"AGENT.LOADUSER", b"user:{5}", blob], "invalid user encoding");
        refused(&mut c, &[b"AGENT.LOADUSER", b"user:{1}", blob], "invalid user encoding");
    }
    assert!(stat(&mut c, "load_errors") >= 8);
    assert_eq!(feed_docs(&mut c, "user:{1}"), vec!["doc:0"]);
}

#[test]
fn config_bounds_are_enforced() {
    let (_server, mut c) = setup();
    let set =
        |c: &mut Connection, name: &str, v: &str| -> redis::RedisResult<()> { redis::cmd("CONFIG").arg("SET").arg(name).arg(v).query(c) };
    let get = |c: &mut Connection, name: &str| -> String {
        let v: Vec<String> = redis::cmd("CONFIG").arg("GET").arg(name).query(c).expect("CONFIG GET");
        v[1].clone()
    };
    for (name, v) in [
        ("agentic.feed-len", "0"),
        ("agentic.feed-len", "100001"),
        ("agentic.feed-len", "abc"),
        ("agentic.seen-ttl", "0"),
        ("agentic.seen-fp-ppm", "0"),
        ("agentic.seen-capacity", "7"),
        ("agentic.doc-ttl", "-1"),
        ("agentic.max-doc-bytes", "0"),
        ("agentic.topic-maxlen", "0"),
        ("agentic.topic-hard-maxlen", "-1"),
        ("agentic.fanout-slice-us", "9"),
        ("agentic.classify-yield-us", "-1"),
        ("agentic.classify-yield-us", "1000001"),
        ("agentic.debug-commands", "maybe"),
    ] {
        let before = get(&mut c, name);
        let r = set(&mut c, name, v);
        assert!(r.is_err(), "CONFIG SET {name} {v} accepted");
        assert_eq!(get(&mut c, name), before, "{name} changed by a refused CONFIG SET");
    }
    assert_eq!(get(&mut c, "agentic.feed-len"), "100");
    set(&mut c, "agentic.feed-len", "50").expect("CONFIG SET agentic.feed-len 50");
    assert_eq!(get(&mut c, "agentic.feed-len"), "50");
    // The new value is used by the next fan-out.
    subscribe(&mut c, "user:{9}", &["cfg"]);
    for i in 0..55 {
        fanout(&mut c, "cfg", &format!("doc:cfg-{i}"), "x");
    }
    assert_eq!(feed(&mut c, "user:{9}", &["COUNT", "100"]).len(), 50);
}

/// Starts a server expected to fail; returns the failure message (panics if it started).
fn start_fails(builder: ServerBuilder) -> String {
    let result = catch_unwind(AssertUnwindSafe(move || {
        let server = builder.start();
        let mut c = server.conn();
        let v: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("agentic.*").query(&mut c).unwrap_or_default();
        v
    }));
    match result {
        Ok(config) => panic!("server started despite a bad module argument; config: {config:?}"),
        Err(payload) => agentic_tests_panic_message(&payload),
    }
}

fn agentic_tests_panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    payload.downcast_ref::<String>().cloned().or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

#[test]
fn bad_module_argument_fails_to_start() {
    let msg = start_fails(Server::builder().module_args(&["feed-len", "abc"]));
    assert!(msg.contains("did not start"), "{msg}");
    let msg = start_fails(Server::builder().module_args(&["feed-len", "0"]));
    assert!(msg.contains("did not start"), "{msg}");
}

#[test]
fn bad_config_file_value_fails_to_start() {
    let msg = start_fails(Server::builder().arg("--agentic.feed-len", "0"));
    assert!(msg.contains("agentic.feed-len"), "{msg}");
}

#[test]
fn caught_panic_leaves_the_server_alive() {
    let (mut server, mut c) = setup_with(Server::builder().module_args(&["debug-commands", "yes"]));
    let before = state(&mut c);
    let e = expect_err_str(&mut c, &["AGENT.DEBUG", "PANIC"]);
    assert!(e.contains("internal error") && e.contains("caught"), "{e}");
    assert!(server.is_running() && pid_alive(server.pid));
    let pong: String = redis::cmd("PING").query(&mut c).expect("PING after panic");
    assert_eq!(pong, "PONG");
    assert_eq!(stat(&mut c, "panics_caught"), 1);
    assert_eq!(state(&mut c), before);
    assert!(server.log_tail(50).contains("deliberate panic"), "the panic is logged");
    let e = expect_err_str(&mut c, &["AGENT.DEBUG", "EXPLODE"]);
    assert!(e.contains("unknown AGENT.DEBUG subcommand"), "{e}");
    // Module commands keep working afterwards.
    assert_eq!(fanout(&mut c, "sports", "doc:after-panic", "x"), (1, 0));
    assert_eq!(stat(&mut c, "panics_caught"), 1);
}

#[test]
fn commands_outside_database_zero_are_refused() {
    let (server, mut c0) = setup();
    let mut c1 =
        redis::Client::open(format!("redis://127.0.0.1:{}/1", server.port)).expect("url").get_connection().expect("connect to db 1");
    let before = state(&mut c0);
    for args in [
        &["AGENT.SUBSCRIBE", "user:{1}", "sports"][..],
        &["AGENT.UNSUBSCRIBE", "user:{1}", "sports"],
        &["AGENT.INTERESTS", "user:{1}"],
        &["AGENT.FANOUT", "sports", "doc:1", "x"],
        &["AGENT.DELIVER", "sports", "doc:1", "1", "10", "60000", "1000", "128", "user:{1}"],
        &["AGENT.FEED", "user:{1}"],
        &["AGENT.STATS"],
        &["AGENT.LOADUSER", "user:{1}", "blob"],
    ] {
        let e = expect_err_str(&mut c1, args);
        assert!(e.contains("database 0"), "{args:?}: {e}");
    }
    assert_eq!(dbsize(&mut c1), 0);
    assert_eq!(state(&mut c0), before);
}

/// Input echoed in an error message must come back as a well-formed error, whatever its bytes:
/// non-ASCII text (U+4E00 and U+0100 end in a 0x00 byte when truncated to Latin-1), invalid
/// UTF-8, control characters.
#[test]
fn errors_echoing_non_ascii_input_are_well_formed() {
    let (mut server, mut c) = setup();
    let inputs: [&[u8]; 6] = ["一".as_bytes(), "Ā".as_bytes(), "café".as_bytes(), b"\xff\xfe", b"a\r\nb", "x\u{85}".as_bytes()];
    for input in inputs {
        let cases: [Vec<&[u8]>; 4] = [
            vec![b"AGENT.SUBSCRIBE", b"user:{1}", input],
            vec![b"AGENT.FANOUT", input, b"doc:9", b"x"],
            vec![b"AGENT.FANOUT", b"sports", b"doc:9", b"x", input, b"v"],
            vec![b"AGENT.FEED", b"user:{1}", input],
        ];
        for args in cases {
            let before = state(&mut c);
            let mut cmd = redis::cmd(std::str::from_utf8(args[0]).expect("name"));
            for a in &args[1..] {
                cmd.arg(*a);
            }
            let r: redis::RedisResult<redis::Value> = cmd.query(&mut c);
            let e = r.expect_err("malformed input accepted");
            assert!(server.is_running(), "server died on input {:?}:\n{}", String::from_utf8_lossy(input), server.log_tail(60));
            assert!(
                e.code().is_some(),
                "input {:?} in {:?}: the reply is not a well-formed error: {e}",
                String::from_utf8_lossy(input),
                String::from_utf8_lossy(args[0])
            );
            assert_eq!(state(&mut c), before);
        }
    }
}

/// The same key named as document and topic stream cannot be both: refused before any write
/// (before the document is stored).
#[test]
fn same_key_as_document_and_stream_is_refused_without_writing() {
    let (_server, mut c) = setup();
    let before = state(&mut c);
    let e = expect_err_str(&mut c, &["AGENT.FANOUT", "sports", "same", "p", "STREAM", "same"]);
    assert!(!e.is_empty());
    assert!(!exists(&mut c, "same"), "the document was stored although the command failed ({e})");
    assert_eq!(state(&mut c), before);
}
