//! agentic-gateway under its own ACL user (ops/acl/users.acl, issue 13 point 4): the HTTP API, a
//! changed interest and a live socket all work, and the server refused it nothing (ACL LOG is
//! empty). What the gateway user may not do is in tests/tests/acl_users.rs.

mod common;

use std::time::Duration;

use agentic_tests::{acl_user_url, make_temp_dir, test_acl_file, Server};
use common::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_works_under_its_least_privilege_user() {
    let acl = test_acl_file(&make_temp_dir("gateway-acl"));
    let s = Server::builder().arg("--aclfile", acl.to_str().expect("UTF-8 path")).module_args(&["seen-fp-ppm", "1"]).start();
    let mut c = s.conn();
    let _: i64 = redis::cmd("AGENT.SUBSCRIBE").arg("user:{alice}").arg("science").query(&mut c).expect("subscribe");
    let _: Value = redis::cmd("AGENT.FANOUT")
        .arg("science")
        .arg("doc:{s1}")
        .arg(json!({ "title": "Before" }).to_string())
        .arg("STREAM")
        .arg("topic:science")
        .query::<redis::Value>(&mut c)
        .map(|_| Value::Null)
        .expect("fanout");
    let g = Gateway::spawn_url(&acl_user_url(&s, "gateway"), &[]).await;
    let http = reqwest::Client::new();
    let health: Value = http.get(g.url("/healthz")).send().await.expect("healthz").json().await.expect("JSON");
    assert_eq!(health["module"], true, "{health}");
    let feed: Value = http.get(g.url("/api/users/alice/feed?count=5")).send().await.expect("feed").json().await.expect("JSON");
    assert_eq!(feed["entries"][0]["article"]["title"], "Before", "{feed}");
    let topic: Value = http.get(g.url("/api/topics/science/feed?count=5")).send().await.expect("topic feed").json().await.expect("JSON");
    assert_eq!(topic["entries"][0]["article"]["title"], "Before", "{topic}");
    let put = http.put(g.url("/api/users/alice/interests")).json(&json!({ "interests": ["science", "health"] })).send().await.expect("PUT");
    assert_eq!(put.status(), 200, "{:?}", put.text().await);
    let topics = http.get(g.url("/api/topics")).send().await.expect("topics");
    assert_eq!(topics.status(), 200);
    let stats = http.get(g.url("/api/stats")).send().await.expect("stats");
    assert_eq!(stats.status(), 200);

    let mut ws = connect(&g.ws_url("/ws/users/alice"), None).await.expect("socket");
    next_frame(&mut ws, Duration::from_secs(10)).await.expect("backlog frame");
    let _: redis::Value =
        redis::cmd("AGENT.FANOUT").arg("health").arg("doc:{h1}").arg(json!({ "title": "Live" }).to_string()).query(&mut c).expect("fanout");
    let (entries, _) = collect(&mut ws, 1, Duration::from_secs(10)).await;
    assert_eq!(entries.first().map(|e| e["article"]["title"].clone()), Some(json!("Live")));

    let log: Vec<redis::Value> = redis::cmd("ACL").arg("LOG").query(&mut c).expect("ACL LOG");
    assert!(log.is_empty(), "the gateway was refused something: {log:?}\n{}", g.log());
}

/// Errors that are not the caller's are not 4xx: a permission the gateway's user lacks is 502, a
/// server at maxmemory is 503, and a bad request is still 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_refusals_are_not_client_errors() {
    let acl = test_acl_file(&make_temp_dir("gateway-acl-status"));
    let s = Server::builder().arg("--aclfile", acl.to_str().expect("UTF-8 path")).start();
    let mut c = s.conn();
    let g = Gateway::spawn_url(&acl_user_url(&s, "gateway"), &[]).await;
    let http = reqwest::Client::new();
    let put = |body: Value| http.put(g.url("/api/users/alice/interests")).json(&body).send();

    let _: () = redis::cmd("ACL").arg("SETUSER").arg("gateway").arg("-agent.subscribe").query(&mut c).expect("ACL SETUSER");
    let refused = put(json!({ "interests": ["science"] })).await.expect("PUT");
    assert_eq!(refused.status(), 502);
    assert!(refused.text().await.unwrap_or_default().contains("NOPERM"));
    let _: () = redis::cmd("ACL").arg("SETUSER").arg("gateway").arg("+agent.subscribe").query(&mut c).expect("ACL SETUSER");

    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg("1").query(&mut c).expect("CONFIG SET");
    let full = put(json!({ "interests": ["science"] })).await.expect("PUT");
    assert_eq!(full.status(), 503);
    assert!(full.text().await.unwrap_or_default().contains("OOM"));
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg("0").query(&mut c).expect("CONFIG SET");

    let bad = put(json!({ "interests": ["no such topic!"] })).await.expect("PUT");
    assert_eq!(bad.status(), 400);
    let ok = put(json!({ "interests": ["science"] })).await.expect("PUT");
    assert_eq!(ok.status(), 200, "{:?}", ok.text().await);
}
