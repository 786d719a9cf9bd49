//! The gateway against a real valkey-server with the module: HTTP API, live user and topic
//! feeds, resume without gaps or duplicates, slow clients, lost delivery-channel connections,
//! tokens, origins, and many sockets over few Valkey connections.

mod common;

use std::time::Duration;

use agentic_tests::Server;
use common::*;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

fn server(extra: &[&str]) -> Server {
    let mut args = vec!["seen-fp-ppm", "1"];
    args.extend_from_slice(extra);
    Server::builder().module_args(&args).start()
}

fn fanout(c: &mut redis::Connection, topic: &str, doc: &str, payload: &str, users: &[&str]) -> i64 {
    let mut cmd = redis::cmd("AGENT.FANOUT");
    cmd.arg(topic).arg(doc).arg(payload).arg("STREAM").arg(format!("topic:{topic}"));
    if !users.is_empty() {
        cmd.arg("USERS").arg(users);
    }
    let reply: Vec<Value> = cmd
        .query::<redis::Value>(c)
        .map(|v| match v {
            redis::Value::Array(a) => a
                .into_iter()
                .map(|x| match x {
                    redis::Value::Int(i) => json!(i),
                    redis::Value::BulkString(b) => json!(String::from_utf8_lossy(&b)),
                    other => json!(format!("{other:?}")),
                })
                .collect(),
            other => panic!("AGENT.FANOUT replied {other:?}"),
        })
        .expect("AGENT.FANOUT");
    reply[1].as_i64().expect("delivered count")
}

fn article(n: usize) -> String {
    json!({ "id": format!("a{n}"), "title": format!("Article {n}"), "text": "body", "ingest_ms": now_ms() }).to_string()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

fn subscribe(c: &mut redis::Connection, user: &str, topics: &[&str]) {
    let _: i64 = redis::cmd("AGENT.SUBSCRIBE").arg(format!("user:{{{user}}}")).arg(topics).query(c).expect("AGENT.SUBSCRIBE");
}

#[tokio::test]
async fn http_api_reads_and_changes_interests_and_refuses_bad_input() {
    let s = server(&[]);
    let g = Gateway::start(&s, &["--demo-users", "alice,bob"]).await;
    let http = reqwest::Client::new();

    let health: Value = http.get(g.url("/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["module"], true);
    let config: Value = http.get(g.url("/api/config")).send().await.unwrap().json().await.unwrap();
    assert_eq!(config, json!({ "auth": false, "backlog": 50, "demo_users": ["alice", "bob"] }));
    let topics: Value = http.get(g.url("/api/topics")).send().await.unwrap().json().await.unwrap();
    let slugs: Vec<&str> = topics["topics"].as_array().unwrap().iter().map(|t| t["slug"].as_str().unwrap()).collect();
    assert_eq!(slugs.len(), 10);
    assert!(slugs.windows(2).all(|w| w[0] < w[1]) && slugs.contains(&"sports"));

    let put =
        http.put(g.url("/api/users/alice/interests")).json(&json!({ "interests": ["sports", "business", "sports"] })).send().await.unwrap();
    assert_eq!(put.status(), 200);
    assert_eq!(put.json::<Value>().await.unwrap(), json!({ "user": "alice", "interests": ["business", "sports"] }));
    let put = http.put(g.url("/api/users/alice/interests")).json(&json!({ "interests": ["science"] })).send().await.unwrap();
    assert_eq!(put.json::<Value>().await.unwrap()["interests"], json!(["science"]));
    let mut c = s.conn();
    let module_view: Vec<String> = redis::cmd("AGENT.INTERESTS").arg("user:{alice}").query(&mut c).unwrap();
    assert_eq!(module_view, vec!["science"]);

    // Each refusal is a 400 with a reason, and changes nothing.
    for (path, body, reason) in [
        ("/api/users/alice/interests", json!({ "interests": ["science", "nope"] }), "unknown topic"),
        ("/api/users/alice/interests", json!({ "interests": ["Bad Slug"] }), "invalid topic"),
        ("/api/users/alice/interests", json!({ "topics": ["science"] }), "body must be"),
        ("/api/users/al%20ice/interests", json!({ "interests": [] }), "invalid user id"),
    ] {
        let r = http.put(g.url(path)).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 400, "{path} {body}");
        let err = r.json::<Value>().await.unwrap()["error"].as_str().unwrap().to_string();
        assert!(err.contains(reason), "{err}");
    }
    let get: Value = http.get(g.url("/api/users/alice/interests")).send().await.unwrap().json().await.unwrap();
    assert_eq!(get["interests"], json!(["science"]));
    let bad = http.get(g.url("/api/users/alice/feed?before=yesterday")).send().await.unwrap();
    assert_eq!(bad.status(), 400);

    // Feed pages, newest first, with the article inline.
    for n in 0..5 {
        fanout(&mut c, "science", &format!("doc:{{{n}}}"), &article(n), &[]);
    }
    let page: Value = http.get(g.url("/api/users/alice/feed?count=2")).send().await.unwrap().json().await.unwrap();
    let first = page["entries"].as_array().unwrap();
    assert_eq!(first.iter().map(|e| e["article"]["title"].as_str().unwrap()).collect::<Vec<_>>(), ["Article 4", "Article 3"]);
    let older: Value = http
        .get(g.url(&format!("/api/users/alice/feed?count=10&before={}", first[1]["id"].as_str().unwrap())))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(older["entries"].as_array().unwrap().len(), 3);
    let topic_page: Value = http.get(g.url("/api/topics/science/feed?count=3")).send().await.unwrap().json().await.unwrap();
    assert_eq!(topic_page["entries"][0]["article"]["title"], "Article 4");
    assert_eq!(topic_page["entries"][0]["doc"], "doc:{4}");

    let stats: Value = http.get(g.url("/api/stats")).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats["module"]["fanout_deliveries"], 5.0);
    assert!(stats["server"]["used_memory"].as_f64().unwrap() > 0.0);
    let metrics = http.get(g.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("gateway_http_errors_total 5"), "{metrics}");
}

#[tokio::test]
async fn a_user_socket_gets_the_backlog_then_live_entries() {
    let s = server(&[]);
    let g = Gateway::start(&s, &["--backlog", "3"]).await;
    let mut c = s.conn();
    subscribe(&mut c, "bob", &["sports"]);
    for n in 0..5 {
        fanout(&mut c, "sports", &format!("doc:{{{n}}}"), &article(n), &[]);
    }
    let mut ws = connect(&g.ws_url("/ws/users/bob"), None).await.unwrap();
    let first = next_frame(&mut ws, WAIT).await.expect("backlog frame");
    assert_eq!(first["mode"], "backlog");
    let backlog = first["entries"].as_array().unwrap();
    assert_eq!(
        backlog.iter().map(|e| e["article"]["title"].as_str().unwrap()).collect::<Vec<_>>(),
        ["Article 2", "Article 3", "Article 4"]
    );

    // A topic bob does not follow reaches nobody; his own topic arrives live.
    fanout(&mut c, "politics", "doc:{p}", &article(99), &[]);
    for n in 5..8 {
        fanout(&mut c, "sports", &format!("doc:{{{n}}}"), &article(n), &[]);
    }
    let (live, modes) = collect(&mut ws, 3, WAIT).await;
    assert!(modes.iter().all(|m| m == "live"), "{modes:?}");
    assert_eq!(live.iter().map(|e| e["article"]["title"].as_str().unwrap()).collect::<Vec<_>>(), ["Article 5", "Article 6", "Article 7"]);
    let mut all = ids(backlog);
    all.extend(ids(&live));
    assert_increasing(&all);
    assert!(next_frame(&mut ws, Duration::from_millis(300)).await.is_none(), "nothing else was delivered");
    assert!(g.metric("gateway_entries_sent_total{mode=\"live\"}").await >= 3.0);
    assert!(g.metric("gateway_delivery_latency_ms_count").await >= 3.0);
    close(ws).await;
}

/// Appends a stored article to a topic's shared timeline the way the module's pipeline
/// replicates it (the pipeline does this for topics with `fanout-shared-min-subscribers` followers).
fn share(c: &mut redis::Connection, topic: &str, doc: &str, n: usize, id: &str) {
    let _: () = redis::cmd("SET").arg(doc).arg(article(n)).query(c).expect("SET document");
    let appended: i64 = redis::cmd("AGENT.TIMELINE.APPEND")
        .arg("agentic:timelines")
        .arg(topic)
        .arg(doc)
        .arg(id)
        .arg(now_ms())
        .arg(100)
        .arg(86_400_000)
        .arg(1)
        .arg(128)
        .query(c)
        .expect("AGENT.TIMELINE.APPEND");
    assert_eq!(appended, 1);
}

#[tokio::test]
async fn a_shared_topic_timeline_reaches_the_sockets_of_its_followers_only() {
    let s = server(&[]);
    let g = Gateway::start(&s, &["--demo-users", "ann,ben"]).await;
    let mut c = s.conn();
    subscribe(&mut c, "ann", &["sports"]);
    subscribe(&mut c, "ben", &["politics"]);
    let mut ann = connect(&g.ws_url("/ws/users/ann"), None).await.unwrap();
    let mut ben = connect(&g.ws_url("/ws/users/ben"), None).await.unwrap();
    for ws in [&mut ann, &mut ben] {
        assert_eq!(next_frame(ws, WAIT).await.expect("backlog frame")["mode"], "backlog");
    }
    let base = now_ms();
    share(&mut c, "sports", "doc:{s1}", 1, &format!("{base}-1"));
    let (live, modes) = collect(&mut ann, 1, WAIT).await;
    assert_eq!(modes, ["live"]);
    assert_eq!(live[0]["article"]["title"], "Article 1");
    assert_eq!(live[0]["id"], format!("{base}-1"));
    assert!(next_frame(&mut ben, Duration::from_millis(300)).await.is_none(), "ben does not follow sports");

    // Interests changed through the gateway take effect for the open socket.
    let http = reqwest::Client::new();
    let put = http.put(g.url("/api/users/ben/interests")).json(&json!({ "interests": ["politics", "sports"] })).send().await.unwrap();
    assert!(put.status().is_success());
    share(&mut c, "sports", "doc:{s2}", 2, &format!("{base}-3"));
    for ws in [&mut ann, &mut ben] {
        let (live, _) = collect(ws, 1, WAIT).await;
        assert_eq!(live[0]["article"]["title"], "Article 2");
    }
    assert!(g.metric("gateway_delivery_shared_total").await >= 2.0);

    // Interests changed by another client, straight on Valkey: the module announces them on the
    // delivery channel, and the open socket follows them without reconnecting.
    let _: i64 = redis::cmd("AGENT.UNSUBSCRIBE").arg("user:{ann}").arg("sports").query(&mut c).expect("AGENT.UNSUBSCRIBE");
    subscribe(&mut c, "ann", &["science"]);
    share(&mut c, "science", "doc:{s3}", 3, &format!("{base}-5"));
    let (live, _) = collect(&mut ann, 1, WAIT).await;
    assert_eq!(live[0]["article"]["title"], "Article 3", "ann now follows science");
    share(&mut c, "sports", "doc:{s4}", 4, &format!("{base}-7"));
    let (live, _) = collect(&mut ben, 1, WAIT).await;
    assert_eq!(live[0]["article"]["title"], "Article 4");
    assert!(next_frame(&mut ann, Duration::from_millis(300)).await.is_none(), "ann no longer follows sports");
    assert!(g.metric("gateway_interests_updates_total").await >= 2.0);
    assert_eq!(g.metric("gateway_delivery_malformed_total").await, 0.0);
    close(ann).await;
    close(ben).await;
}

#[tokio::test]
async fn a_reconnecting_client_resumes_without_gaps_or_duplicates() {
    let s = server(&[]);
    let g = Gateway::start(&s, &[]).await;
    let mut c = s.conn();
    subscribe(&mut c, "carol", &["health"]);
    for n in 0..3 {
        fanout(&mut c, "health", &format!("doc:{{{n}}}"), &article(n), &[]);
    }
    let mut ws = connect(&g.ws_url("/ws/users/carol"), None).await.unwrap();
    let (seen, _) = collect(&mut ws, 3, WAIT).await;
    let last = seen.last().unwrap()["id"].as_str().unwrap().to_string();
    drop(ws);

    // Delivered while the browser was away, and more while it reconnects.
    for n in 3..6 {
        fanout(&mut c, "health", &format!("doc:{{{n}}}"), &article(n), &[]);
    }
    let mut ws = connect(&g.ws_url(&format!("/ws/users/carol?after={last}")), None).await.unwrap();
    for n in 6..9 {
        fanout(&mut c, "health", &format!("doc:{{{n}}}"), &article(n), &[]);
    }
    let (resumed, modes) = collect(&mut ws, 6, WAIT).await;
    assert_eq!(modes[0], "resume");
    let titles: Vec<&str> = resumed.iter().map(|e| e["article"]["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["Article 3", "Article 4", "Article 5", "Article 6", "Article 7", "Article 8"]);
    assert!(next_frame(&mut ws, Duration::from_millis(300)).await.is_none(), "no duplicates after the resume");
    let mut all = ids(&seen);
    all.extend(ids(&resumed));
    assert_increasing(&all);
    close(ws).await;

    // A resume point older than what the feed still holds says so.
    let _: () = redis::cmd("CONFIG").arg("SET").arg("agentic.feed-len").arg("2").query(&mut c).unwrap();
    for n in 9..12 {
        fanout(&mut c, "health", &format!("doc:{{{n}}}"), &article(n), &[]);
    }
    let mut ws = connect(&g.ws_url(&format!("/ws/users/carol?after={last}")), None).await.unwrap();
    let f = next_frame(&mut ws, WAIT).await.unwrap();
    assert_eq!((f["mode"].as_str(), f["truncated"].as_bool()), (Some("resume"), Some(true)));
    assert_eq!(f["entries"].as_array().unwrap().len(), 2);
    // Bad resume points and ids: the socket says why, then closes.
    for path in ["/ws/users/carol?after=last-week", "/ws/users/no%20pe"] {
        let mut ws = connect(&g.ws_url(path), None).await.unwrap();
        assert_refused(&mut ws, "invalid").await;
    }
}

#[tokio::test]
async fn a_slow_browser_is_resynced_and_still_gets_everything_once() {
    let s = server(&["feed-len", "1000"]);
    let g = Gateway::start(&s, &["--socket-queue", "4"]).await;
    let mut c = s.conn();
    subscribe(&mut c, "dave", &["finance"]);
    let mut ws = connect(&g.ws_url("/ws/users/dave"), None).await.unwrap();
    let backlog = next_frame(&mut ws, WAIT).await.unwrap();
    assert_eq!(backlog["entries"].as_array().unwrap().len(), 0);
    // The browser stops reading while ~16 MB of articles arrive: socket buffers fill, the
    // gateway's writes stall, its queue for this socket overflows.
    let filler = "x".repeat(60_000);
    let n = 280;
    for i in 0..n {
        let payload = json!({ "title": format!("Big {i}"), "text": filler, "ingest_ms": now_ms() }).to_string();
        assert_eq!(fanout(&mut c, "finance", &format!("doc:{{big{i}}}"), &payload, &[]), 1);
    }
    let (got, modes) = collect(&mut ws, n, Duration::from_secs(60)).await;
    let titles: Vec<String> = got.iter().map(|e| e["article"]["title"].as_str().unwrap().to_string()).collect();
    let expected: Vec<String> = (0..n).map(|i| format!("Big {i}")).collect();
    assert_eq!(titles, expected, "every entry once, in order (modes {modes:?})");
    assert!(modes.iter().any(|m| m == "resync"), "{modes:?}");
    assert!(g.metric("gateway_resyncs_total{reason=\"slow_client\"}").await >= 1.0);
    assert!(g.metric("gateway_entries_dropped_total").await >= 1.0);
    close(ws).await;
}

#[tokio::test]
async fn a_lost_delivery_channel_is_recovered_by_a_resync() {
    let s = server(&[]);
    let g = Gateway::start(&s, &[]).await;
    let mut c = s.conn();
    subscribe(&mut c, "erin", &["climate"]);
    let mut ws = connect(&g.ws_url("/ws/users/erin"), None).await.unwrap();
    next_frame(&mut ws, WAIT).await.unwrap();
    // Deliveries announced while the gateway has no subscription are never seen on the channel.
    let killed: i64 = redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub").query(&mut c).unwrap();
    assert_eq!(killed, 1);
    for n in 0..4 {
        fanout(&mut c, "climate", &format!("doc:{{{n}}}"), &article(n), &[]);
    }
    let (got, modes) = collect(&mut ws, 4, WAIT).await;
    assert_eq!(
        got.iter().map(|e| e["article"]["title"].as_str().unwrap()).collect::<Vec<_>>(),
        ["Article 0", "Article 1", "Article 2", "Article 3"]
    );
    assert!(modes.iter().any(|m| m == "resync"), "{modes:?}");
    assert!(next_frame(&mut ws, Duration::from_millis(500)).await.is_none());
    assert!(g.metric("gateway_pubsub_connects_total").await >= 2.0);
    close(ws).await;
}

#[tokio::test]
async fn a_topic_socket_follows_the_topic_stream() {
    let s = server(&[]);
    let g = Gateway::start(&s, &["--backlog", "2"]).await;
    let mut c = s.conn();
    for n in 0..3 {
        fanout(&mut c, "technology", &format!("doc:{{{n}}}"), &article(n), &[]);
    }
    let mut ws = connect(&g.ws_url("/ws/topics/technology"), None).await.unwrap();
    let first = next_frame(&mut ws, WAIT).await.unwrap();
    assert_eq!(
        first["entries"].as_array().unwrap().iter().map(|e| e["article"]["title"].as_str().unwrap()).collect::<Vec<_>>(),
        ["Article 1", "Article 2"]
    );
    for n in 3..5 {
        fanout(&mut c, "technology", &format!("doc:{{{n}}}"), &article(n), &[]);
    }
    fanout(&mut c, "sports", "doc:{s}", &article(50), &[]);
    let (live, _) = collect(&mut ws, 2, WAIT).await;
    assert_eq!(live.iter().map(|e| e["article"]["title"].as_str().unwrap()).collect::<Vec<_>>(), ["Article 3", "Article 4"]);
    assert!(live.iter().all(|e| e["topic"] == "technology"));
    assert!(next_frame(&mut ws, Duration::from_millis(300)).await.is_none());
    // Resume on a topic socket.
    let last = live[0]["id"].as_str().unwrap().to_string();
    let mut again = connect(&g.ws_url(&format!("/ws/topics/technology?after={last}")), None).await.unwrap();
    let (resumed, modes) = collect(&mut again, 1, WAIT).await;
    assert_eq!((modes[0].as_str(), resumed[0]["article"]["title"].as_str()), ("resume", Some("Article 4")));
    let mut bad = connect(&g.ws_url("/ws/topics/Not-A-Slug"), None).await.unwrap();
    assert_refused(&mut bad, "invalid topic").await;
}

#[tokio::test]
async fn tokens_keep_users_out_of_each_others_feeds() {
    let s = server(&[]);
    let g = Gateway::start(&s, &["--auth-secret", "test-secret"]).await;
    let mint = |user: &str, secret: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_agentic-gateway"))
            .args(["token", "--secret", secret, "--user", user])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let (alice, bob, forged) = (mint("alice", "test-secret"), mint("bob", "test-secret"), mint("alice", "guess"));
    let http = reqwest::Client::new();
    let get = |token: Option<String>| {
        let mut r = http.get(g.url("/api/users/alice/interests"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(get(None).await.unwrap().status(), 401);
    assert_eq!(get(Some(bob.clone())).await.unwrap().status(), 401);
    assert_eq!(get(Some(forged.clone())).await.unwrap().status(), 401);
    assert_eq!(get(Some(alice.clone())).await.unwrap().status(), 200);
    let put =
        http.put(g.url("/api/users/alice/interests")).bearer_auth(&bob).json(&json!({ "interests": ["sports"] })).send().await.unwrap();
    assert_eq!(put.status(), 401);
    let mut ws = connect(&g.ws_url("/ws/users/alice"), None).await.unwrap();
    assert_refused(&mut ws, "needs a token").await;
    let mut ws = connect(&g.ws_url(&format!("/ws/users/alice?token={bob}")), None).await.unwrap();
    assert_refused(&mut ws, "another user").await;
    let mut ws = connect(&g.ws_url(&format!("/ws/users/alice?token={alice}")), None).await.unwrap();
    assert_eq!(next_frame(&mut ws, WAIT).await.unwrap()["mode"], "backlog");
    assert!(g.metric("gateway_auth_failures_total").await >= 5.0);
    let config: Value = http.get(g.url("/api/config")).send().await.unwrap().json().await.unwrap();
    assert_eq!(config["auth"], true);
}

#[tokio::test]
async fn only_listed_origins_may_open_sockets_or_read_cross_origin() {
    let s = server(&[]);
    let g = Gateway::start(&s, &["--cors-origin", "http://feeds.example"]).await;
    assert!(connect(&g.ws_url("/ws/users/frank"), Some("http://evil.example")).await.is_err());
    assert!(connect(&g.ws_url("/ws/users/frank"), Some("http://feeds.example")).await.is_ok());
    let same = format!("http://127.0.0.1:{}", g.port);
    assert!(connect(&g.ws_url("/ws/users/frank"), Some(&same)).await.is_ok());
    let http = reqwest::Client::new();
    let allowed = http.get(g.url("/api/topics")).header("Origin", "http://feeds.example").send().await.unwrap();
    assert_eq!(allowed.headers().get("access-control-allow-origin").unwrap(), "http://feeds.example");
    let other = http.get(g.url("/api/topics")).header("Origin", "http://evil.example").send().await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    // No wildcard, ever.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_agentic-gateway"))
        .args(["--valkey", &s.url(), "--listen", "127.0.0.1:0", "--cors-origin", "*"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not allowed"));
}

#[tokio::test]
async fn hundreds_of_sockets_share_a_few_valkey_connections() {
    let s = server(&[]);
    let g = Gateway::start(&s, &["--valkey-connections", "2"]).await;
    let mut c = s.conn();
    let users = 300;
    for u in 0..users {
        subscribe(&mut c, &format!("u{u}"), &["education"]);
    }
    let mut sockets = Vec::new();
    for u in 0..users {
        let mut ws = connect(&g.ws_url(&format!("/ws/users/u{u}")), None).await.unwrap();
        next_frame(&mut ws, WAIT).await.unwrap();
        sockets.push(ws);
    }
    let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut c).unwrap();
    // 2 shared connections + 1 delivery-channel subscriber + this test's own connection.
    assert!(clients.lines().count() <= 4, "{clients}");
    assert_eq!(fanout(&mut c, "education", "doc:{e}", &article(1), &[]), users as i64);
    for ws in sockets.iter_mut() {
        let (got, _) = collect(ws, 1, WAIT).await;
        assert_eq!(got[0]["doc"], "doc:{e}");
    }
    assert_eq!(g.metric("gateway_sockets{kind=\"user\"}").await, users as f64);
    drop(sockets);
}

#[tokio::test]
async fn the_ui_is_served_with_client_side_routes() {
    let s = server(&[]);
    let dir = agentic_tests::make_temp_dir("gateway-ui");
    std::fs::write(dir.join("index.html"), "<!doctype html><title>feeds</title>").unwrap();
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::write(dir.join("assets/app.js"), "console.log(1)").unwrap();
    let g = Gateway::start(&s, &["--ui-dir", dir.to_str().unwrap()]).await;
    let missing = reqwest::get(g.url("/api/nothing")).await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.text().await.unwrap().contains("no such endpoint"));
    for path in ["/", "/u/alice", "/ops"] {
        let body = reqwest::get(g.url(path)).await.unwrap().text().await.unwrap();
        assert!(body.contains("<title>feeds</title>"), "{path}: {body}");
    }
    assert_eq!(reqwest::get(g.url("/assets/app.js")).await.unwrap().text().await.unwrap(), "console.log(1)");
    drop(g);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_valkey_restart_costs_browsers_nothing() {
    let dir = agentic_tests::make_temp_dir("gateway-restart");
    let s = Server::builder().dir(&dir).arg("appendonly", "yes").arg("appendfsync", "always").module_args(&["seen-fp-ppm", "1"]).start();
    let port = s.port;
    let g = Gateway::start(&s, &[]).await;
    let mut c = s.conn();
    subscribe(&mut c, "gina", &["science"]);
    fanout(&mut c, "science", "doc:{0}", &article(0), &[]);
    let mut ws = connect(&g.ws_url("/ws/users/gina"), None).await.unwrap();
    let (first, _) = collect(&mut ws, 1, WAIT).await;
    let dir = s.stop();

    // The socket stays open while Valkey is away; after the restart the gateway resubscribes,
    // re-reads the feed after the last entry it sent, and live entries flow again.
    let s = Server::builder().adopt_dir(&dir).port(port).arg("appendonly", "yes").module_args(&["seen-fp-ppm", "1"]).start();
    let mut c = s.conn();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for n in 1..4 {
        fanout(&mut c, "science", &format!("doc:{{{n}}}"), &article(n), &[]);
    }
    let (got, _) = collect(&mut ws, 3, Duration::from_secs(20)).await;
    let titles: Vec<&str> = got.iter().map(|e| e["article"]["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["Article 1", "Article 2", "Article 3"], "{}", g.log());
    let mut all = ids(&first);
    all.extend(ids(&got));
    assert_increasing(&all);
    assert!(g.metric("gateway_pubsub_connects_total").await >= 2.0);
    drop(s);
    let _ = std::fs::remove_dir_all(dir);
}
