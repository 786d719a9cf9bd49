//! AGENT.SUBSCRIBE / UNSUBSCRIBE / INTERESTS and the subscriber index kept in step with the
//! keyspace (DEL, RENAME, COPY, FLUSHALL).

mod common;

use std::time::Duration;

use agentic_tests::{wait_for, Server};
use common::*;

#[test]
fn subscribe_counts_only_new_topics_and_interests_are_sorted() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(subscribe(&mut c, "user:{1}", &["sports", "news", "sports"]), 2);
    assert_eq!(subscribe(&mut c, "user:{1}", &["sports"]), 0);
    assert_eq!(subscribe(&mut c, "user:{1}", &["news", "ai-tech", "b_2", "0day"]), 3);
    assert_eq!(interests(&mut c, "user:{1}"), vec!["0day", "ai-tech", "b_2", "news", "sports"]);

    assert_eq!(unsubscribe(&mut c, "user:{1}", &["news", "not-followed", "news"]), 1);
    assert_eq!(unsubscribe(&mut c, "user:{1}", &["news"]), 0);
    assert_eq!(interests(&mut c, "user:{1}"), vec!["0day", "ai-tech", "b_2", "sports"]);

    // A user who does not exist: nothing removed, nothing created, no interests.
    assert_eq!(unsubscribe(&mut c, "user:{2}", &["sports"]), 0);
    assert!(!exists(&mut c, "user:{2}"));
    assert!(interests(&mut c, "user:{2}").is_empty());
    assert_eq!(dbsize(&mut c), 1);

    assert_eq!(stat(&mut c, "subscribe_calls"), 3);
    assert_eq!(stat(&mut c, "unsubscribe_calls"), 3);
}

#[test]
fn user_key_has_module_type_agentuser() {
    let server = Server::start();
    let mut c = server.conn();
    subscribe(&mut c, "user:{7}", &["sports"]);
    assert_eq!(key_type(&mut c, "user:{7}"), "agentuser");
    assert_eq!(stat(&mut c, "user_keys"), 1);
    assert!(stat(&mut c, "user_bytes") > 0);
}

#[test]
fn fanout_reaches_only_current_subscribers_and_stats_count_them() {
    let server = Server::start();
    let mut c = server.conn();
    for u in ["user:{1}", "user:{2}", "user:{3}"] {
        subscribe(&mut c, u, &["sports"]);
    }
    subscribe(&mut c, "user:{3}", &["news"]);
    subscribe(&mut c, "user:{4}", &["news"]);
    let counts = topic_counts(&mut c);
    assert_eq!(counts.get("sports"), Some(&3));
    assert_eq!(counts.get("news"), Some(&2));
    assert_eq!(stat(&mut c, "topics"), 2);

    assert_eq!(fanout(&mut c, "sports", "doc:{a}", "first"), (3, 0));
    assert_eq!(unsubscribe(&mut c, "user:{2}", &["sports"]), 1);
    assert_eq!(topic_counts(&mut c).get("sports"), Some(&2));
    assert_eq!(fanout(&mut c, "sports", "doc:{b}", "second"), (2, 0));

    assert_eq!(feed_docs(&mut c, "user:{1}"), vec!["doc:{b}", "doc:{a}"]);
    assert_eq!(feed_docs(&mut c, "user:{2}"), vec!["doc:{a}"], "unsubscribed user keeps old entries only");
    assert_eq!(feed_docs(&mut c, "user:{3}"), vec!["doc:{b}", "doc:{a}"]);
    assert!(feed_docs(&mut c, "user:{4}").is_empty(), "news subscriber got a sports doc");

    // The last subscriber of a topic leaving removes the topic from the stats.
    unsubscribe(&mut c, "user:{3}", &["news"]);
    unsubscribe(&mut c, "user:{4}", &["news"]);
    let counts = topic_counts(&mut c);
    assert_eq!(counts.get("news"), None, "{counts:?}");
    assert_eq!(stat(&mut c, "topics"), 1);
    assert_eq!(fanout(&mut c, "news", "doc:{n}", "x"), (0, 0));
}

#[test]
fn deleted_or_overwritten_users_leave_the_index_and_are_never_recreated() {
    let server = Server::start();
    let mut c = server.conn();
    subscribe(&mut c, "user:{1}", &["sports"]);
    subscribe(&mut c, "user:{2}", &["sports"]);
    let _: i64 = redis::cmd("DEL").arg("user:{1}").query(&mut c).expect("DEL");
    // The keyspace event removes it at once (replicas, which never fan out, rely on this).
    assert_eq!(topic_counts(&mut c).get("sports"), Some(&1));

    assert_eq!(fanout(&mut c, "sports", "doc:1", "x"), (1, 0));
    assert!(!exists(&mut c, "user:{1}"), "a fan-out must not recreate a deleted subscriber");
    assert_eq!(feed_docs(&mut c, "user:{2}"), vec!["doc:1"]);

    // A user key overwritten with another type leaves the index and is not touched.
    subscribe(&mut c, "user:{3}", &["sports"]);
    let _: () = redis::cmd("SET").arg("user:{3}").arg("plain").query(&mut c).expect("SET");
    assert_eq!(topic_counts(&mut c).get("sports"), Some(&1));
    assert_eq!(fanout(&mut c, "sports", "doc:3", "z"), (1, 0));
    let v: String = redis::cmd("GET").arg("user:{3}").query(&mut c).expect("GET");
    assert_eq!(v, "plain");

    // An expiring user key leaves the index when it expires.
    subscribe(&mut c, "user:{4}", &["sports"]);
    let _: i64 = redis::cmd("PEXPIRE").arg("user:{4}").arg(50).query(&mut c).expect("PEXPIRE");
    assert!(wait_for(|| topic_counts(&mut server.conn()).get("sports") == Some(&1), Duration::from_secs(3)));
    assert_eq!(fanout(&mut c, "sports", "doc:4", "w"), (1, 0));
    assert_eq!(stat(&mut c, "fanout_stale_subscribers"), 0, "events kept the index exact");
}

#[test]
fn renamed_and_copied_user_keys_keep_receiving() {
    let server = Server::start();
    let mut c = server.conn();
    subscribe(&mut c, "user:{1}", &["sports", "news"]);
    assert_eq!(fanout(&mut c, "sports", "doc:1", "one"), (1, 0));

    let _: () = redis::cmd("RENAME").arg("user:{1}").arg("user:{9}").query(&mut c).expect("RENAME");
    let copied: i64 = redis::cmd("COPY").arg("user:{9}").arg("user:{10}").query(&mut c).expect("COPY");
    assert_eq!(copied, 1);
    assert_eq!(key_type(&mut c, "user:{10}"), "agentuser");
    assert_eq!(interests(&mut c, "user:{10}"), vec!["news", "sports"]);
    // The copy carries the seen-filter: doc:1 is a duplicate for both names.
    assert_eq!(fanout(&mut c, "sports", "doc:1", "one"), (0, 2));
    assert_eq!(fanout(&mut c, "sports", "doc:2", "two"), (2, 0));
    assert_eq!(fanout(&mut c, "news", "doc:3", "three"), (2, 0));
    assert!(!exists(&mut c, "user:{1}"), "the old name must not come back");
    assert_eq!(feed_docs(&mut c, "user:{9}"), vec!["doc:3", "doc:2", "doc:1"]);
    assert_eq!(feed_docs(&mut c, "user:{10}"), vec!["doc:3", "doc:2", "doc:1"]);

    // The copy is independent of the original.
    unsubscribe(&mut c, "user:{9}", &["sports"]);
    assert_eq!(fanout(&mut c, "sports", "doc:4", "four"), (1, 0));
    assert_eq!(feed_docs(&mut c, "user:{10}")[0], "doc:4");
    assert_eq!(feed_docs(&mut c, "user:{9}")[0], "doc:3");
    let counts = topic_counts(&mut c);
    assert_eq!(counts.get("sports"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("news"), Some(&2), "{counts:?}");
}

#[test]
fn flushall_empties_the_index() {
    let server = Server::start();
    let mut c = server.conn();
    subscribe(&mut c, "user:{1}", &["sports", "news"]);
    subscribe(&mut c, "user:{2}", &["sports"]);
    assert_eq!(topic_counts(&mut c).len(), 2);
    let _: () = redis::cmd("FLUSHALL").query(&mut c).expect("FLUSHALL");
    assert!(topic_counts(&mut c).is_empty(), "{:?}", stats_pairs(&mut c));
    assert_eq!(stat(&mut c, "topics"), 0);
    // The values may be freed in the background (lazyfree-lazy-user-flush): the gauge follows.
    assert!(
        agentic_tests::wait_for(|| stat(&mut c, "user_keys") == 0, std::time::Duration::from_secs(5)),
        "user_keys stays at {}",
        stat(&mut c, "user_keys")
    );
    assert_eq!(fanout(&mut c, "sports", "doc:1", "x"), (0, 0));
    assert_eq!(stat(&mut c, "fanout_stale_subscribers"), 0, "flushed users must not even be visited");
    assert_eq!(dbsize(&mut c), 1, "only the doc key");

    // Subscribing again after the flush works from scratch.
    assert_eq!(subscribe(&mut c, "user:{1}", &["sports"]), 1);
    assert_eq!(fanout(&mut c, "sports", "doc:2", "y"), (1, 0));
    assert_eq!(topic_counts(&mut c).get("sports"), Some(&1));
}

#[test]
fn swapdb_and_move_keep_the_index_to_database_zero() {
    let server = Server::start();
    let mut c = server.conn();
    subscribe(&mut c, "user:{1}", &["sports"]);
    subscribe(&mut c, "user:{2}", &["sports"]);
    let _: () = redis::cmd("SWAPDB").arg(0).arg(1).query(&mut c).expect("SWAPDB");
    assert!(topic_counts(&mut c).is_empty(), "database 0 is now empty");
    assert_eq!(fanout(&mut c, "sports", "doc:1", "x"), (0, 0));
    let _: () = redis::cmd("SWAPDB").arg(0).arg(1).query(&mut c).expect("SWAPDB");
    assert_eq!(topic_counts(&mut c).get("sports"), Some(&2));
    assert_eq!(fanout(&mut c, "sports", "doc:2", "y"), (2, 0));

    // MOVE to another database: the user leaves the audience (and is not followed there).
    let moved: i64 = redis::cmd("MOVE").arg("user:{2}").arg(1).query(&mut c).expect("MOVE");
    assert_eq!(moved, 1);
    assert_eq!(fanout(&mut c, "sports", "doc:3", "z"), (1, 0));
    assert_eq!(topic_counts(&mut c).get("sports"), Some(&1));
    // ... and back: it is followed again.
    let mut c1 = redis::Client::open(format!("redis://127.0.0.1:{}/1", server.port)).expect("url").get_connection().expect("db 1");
    let back: i64 = redis::cmd("MOVE").arg("user:{2}").arg(0).query(&mut c1).expect("MOVE back");
    assert_eq!(back, 1);
    assert_eq!(fanout(&mut c, "sports", "doc:4", "w"), (2, 0));
    assert_eq!(feed_docs(&mut c, "user:{2}"), vec!["doc:4", "doc:2"]);
}

#[test]
fn expired_user_is_skipped() {
    let server = Server::start();
    let mut c = server.conn();
    subscribe(&mut c, "user:{1}", &["sports"]);
    subscribe(&mut c, "user:{2}", &["sports"]);
    let _: i64 = redis::cmd("PEXPIRE").arg("user:{1}").arg(20).query(&mut c).expect("PEXPIRE");
    std::thread::sleep(std::time::Duration::from_millis(60));
    assert_eq!(fanout(&mut c, "sports", "doc:1", "x"), (1, 0));
    assert!(!exists(&mut c, "user:{1}"));
    assert_eq!(stat(&mut c, "fanout_stale_subscribers"), 1);
}
