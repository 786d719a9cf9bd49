//! agentic-fetcher under its own ACL user (ops/acl/users.acl, issue 13 point 4): it writes its
//! articles, the pipeline delivers them, and the server refused it nothing (ACL LOG is empty).

mod common;

use std::time::Duration;

use agentic_tests::{acl_user_url, make_temp_dir, test_acl_file, workspace_dir, Server};
use common::*;

#[test]
fn the_fetcher_works_under_its_least_privilege_user() {
    let tiny = workspace_dir().join("model/out/tiny");
    assert!(tiny.join("model.onnx").is_file(), "the tiny test model is missing: run `make tiny-model` (make test does)");
    let acl = test_acl_file(&make_temp_dir("fetcher-acl"));
    let server = Server::builder()
        .arg("--aclfile", acl.to_str().expect("UTF-8 path"))
        .module_args(&["model-dir", tiny.to_str().expect("UTF-8 path"), "pipeline", "yes", "seen-fp-ppm", "1"])
        .start();
    let mut c = server.conn();
    for u in 0..3 {
        let _: i64 = redis::cmd("AGENT.SUBSCRIBE")
            .arg(format!("user:{{{u}}}"))
            .arg(
                &["politics", "business", "technology", "sports", "health", "climate", "science", "education", "entertainment", "finance"]
                    [..],
            )
            .query(&mut c)
            .expect("subscribe");
    }
    let n = 50;
    let mut fetcher =
        Fetcher::start(&acl_user_url(&server, "fetcher"), &["--max-backlog", "20", "generate", "--rate", "200", "--count", &n.to_string()]);
    assert!(fetcher.wait_exit(Duration::from_secs(60)).is_some_and(|s| s.success()), "the fetcher finished:\n{}", fetcher.stderr());
    assert_every_feed_has_each_article_once(&mut c, 3, n);
    let log: Vec<redis::Value> = redis::cmd("ACL").arg("LOG").query(&mut c).expect("ACL LOG");
    assert!(log.is_empty(), "the fetcher was refused something: {log:?}");
}
