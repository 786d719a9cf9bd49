//! INFO sections and AGENT.STATS: the same metrics, consistent with what the commands replied.

mod common;

use std::collections::HashMap;

use agentic_tests::{parse_info_field, Server};
use common::*;
use redis::Connection;

fn info(c: &mut Connection, section: &str) -> String {
    redis::cmd("INFO").arg(section).query(c).expect("INFO")
}

fn info_map(text: &str) -> HashMap<String, String> {
    text.lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k.to_string(), v.trim().to_string())).collect()
}

fn busy_server() -> (Server, Connection) {
    let server = Server::start();
    let mut c = server.conn();
    for i in 0..6 {
        subscribe(&mut c, &format!("user:{{{i}}}"), &["sports", "ai-tech"]);
    }
    subscribe(&mut c, "user:{9}", &["news"]);
    for i in 0..5 {
        fanout(&mut c, "sports", &format!("doc:{i}"), "x");
    }
    fanout(&mut c, "ai-tech", "doc:0", "x");
    feed(&mut c, "user:{0}", &[]);
    (server, c)
}

#[test]
fn info_sections_carry_the_metrics() {
    let (_server, mut c) = busy_server();
    let stats_section = info(&mut c, "agentic_stats");
    assert!(stats_section.contains("# agentic_stats"), "{stats_section}");
    let m = info_map(&stats_section);
    assert_eq!(m["agentic_fanout_calls"], "6");
    assert_eq!(m["agentic_fanout_deliveries"], "30");
    assert_eq!(m["agentic_fanout_duplicates_skipped"], "6");
    for p in ["p50", "p90", "p99", "p999", "max", "count"] {
        assert!(m.contains_key(&format!("agentic_fanout_latency_us_{p}")), "no latency {p}: {stats_section}");
        assert!(m.contains_key(&format!("agentic_fanout_slice_us_{p}")), "no slice {p}");
    }
    assert_eq!(m["agentic_fanout_latency_us_count"], "6");
    let p50: i64 = m["agentic_fanout_latency_us_p50"].parse().expect("p50");
    let p99: i64 = m["agentic_fanout_latency_us_p99"].parse().expect("p99");
    let max: i64 = m["agentic_fanout_latency_us_max"].parse().expect("max");
    assert!(p50 <= p99 && p99 <= max, "percentiles out of order: {p50} {p99} {max}");
    assert!(m["agentic_user_bytes"].parse::<i64>().expect("user_bytes") > 0);
    assert_eq!(m["agentic_user_keys"], "7");
    assert_eq!(m["agentic_feed_reads"], "1");
    assert!(!stats_section.contains("agentic_subscribers_"), "topics belong to their own section");

    let topics = info_map(&info(&mut c, "agentic_topics"));
    assert_eq!(topics.get("agentic_subscribers_sports").map(String::as_str), Some("6"));
    assert_eq!(topics.get("agentic_subscribers_ai_tech").map(String::as_str), Some("6"), "'-' becomes '_'");
    assert_eq!(topics.get("agentic_subscribers_news").map(String::as_str), Some("1"));

    for section in ["modules", "everything", "agentic"] {
        let text = info(&mut c, section);
        for field in ["agentic_fanout_calls", "agentic_fanout_deliveries", "agentic_fanout_latency_us_p99", "agentic_subscribers_sports"] {
            assert!(parse_info_field(&text, field).is_some(), "INFO {section} lacks {field}");
        }
    }
    // The default INFO does not include module sections.
    assert!(parse_info_field(&info(&mut c, "default"), "agentic_fanout_calls").is_none());
}

#[test]
fn agent_stats_agrees_with_info() {
    let (_server, mut c) = busy_server();
    let pairs = stats_pairs(&mut c);
    let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    for expected in ["fanout_calls", "fanout_deliveries", "fanout_latency_us_p99", "user_bytes", "topics", "index_bytes"] {
        assert!(names.contains(&expected), "AGENT.STATS lacks {expected}: {names:?}");
    }
    let unique: std::collections::HashSet<&str> = names.iter().copied().collect();
    assert_eq!(unique.len(), names.len(), "duplicate metric names");

    let stats_info = info_map(&info(&mut c, "agentic_stats"));
    let topics_info = info_map(&info(&mut c, "agentic_topics"));
    let mut compared = 0;
    for (k, v) in &pairs {
        let (field, source) = match k.strip_prefix("topic_subscribers:") {
            Some(t) => (format!("agentic_subscribers_{}", t.replace('-', "_")), &topics_info),
            None => (format!("agentic_{k}"), &stats_info),
        };
        assert_eq!(source.get(&field), Some(v), "{k} = {v} in AGENT.STATS, INFO has {:?}", source.get(&field));
        compared += 1;
    }
    assert_eq!(compared, stats_info.len() + topics_info.len(), "INFO has metrics AGENT.STATS lacks");
    assert_eq!(stat(&mut c, "topics"), 3);
}

#[test]
fn counters_add_up_with_the_replies() {
    let server = Server::builder().module_args(&["fanout-slice-us", "10"]).start();
    let mut c = server.conn();
    let audience = users(0..300);
    subscribe_many(&mut c, &audience, "world");
    let (mut delivered, mut duplicates, mut calls) = (0, 0, 0);
    let mut add = |(d, m): (i64, i64)| {
        delivered += d;
        duplicates += m;
        calls += 1;
    };
    for i in 0..40 {
        let doc = format!("doc:{}", i % 25);
        add(fanout(&mut c, "world", &doc, "x"));
        if i % 7 == 0 {
            add(fanout_with(&mut c, "world", &doc, "x", &["USERS", "user:{1}", "user:{new-1}", "user:{new-2}"]));
        }
    }
    assert!(duplicates > 0 && delivered > 0);
    assert_eq!(stat(&mut c, "fanout_calls"), calls);
    assert_eq!(stat(&mut c, "fanout_deliveries"), delivered);
    assert_eq!(stat(&mut c, "fanout_duplicates_skipped"), duplicates);
    assert_eq!(stat(&mut c, "fanout_latency_us_count"), calls);
    assert!(stat(&mut c, "fanout_slices") >= calls);
    assert_eq!(stat(&mut c, "fanout_slice_us_count"), stat(&mut c, "fanout_slices"));
    assert_eq!(stat(&mut c, "fanout_jobs_pending"), 0);
    assert_eq!(stat(&mut c, "user_keys"), 302);
    assert_eq!(stat(&mut c, "subscribe_calls"), 300);
    // feed-len 100 by default: every user got at most 25 distinct docs, nothing was evicted.
    assert_eq!(stat(&mut c, "feed_evictions"), 0);
    let fp: f64 = stats(&mut c)["seen_false_positive_expected"].parse().expect("float");
    assert!((0.0..1.0).contains(&fp), "expected false positives {fp}");

    // Memory gauges return to zero once every user key is gone.
    assert!(stat(&mut c, "user_bytes") > 0);
    let _: () = redis::cmd("FLUSHALL").arg("SYNC").query(&mut c).expect("FLUSHALL");
    assert_eq!(stat(&mut c, "user_keys"), 0);
    assert_eq!(stat(&mut c, "user_bytes"), 0, "user_bytes drifted from the real footprint");
}

#[test]
fn memory_usage_of_a_user_key_grows_with_its_feed() {
    let server = Server::start();
    let mut c = server.conn();
    subscribe(&mut c, "user:{1}", &["sports"]);
    let usage = |c: &mut Connection| -> i64 { redis::cmd("MEMORY").arg("USAGE").arg("user:{1}").query(c).expect("MEMORY USAGE") };
    let empty = usage(&mut c);
    assert!(empty > 0);
    for i in 0..200 {
        fanout(&mut c, "sports", &format!("doc:{i}"), "x");
    }
    let full = usage(&mut c);
    assert!(full > empty, "MEMORY USAGE {empty} -> {full} after 200 deliveries");
    assert!(stat(&mut c, "user_bytes") >= full / 2, "user_bytes tracks the user values");
}

#[test]
fn long_fan_out_slices_reach_the_servers_latency_monitor() {
    // Slices of up to 20 ms over 60,000 subscribers: the slices after the first run from a timer,
    // which Valkey's latency monitor sees only because the module reports them.
    let server = Server::builder().module_args(&["fanout-slice-us", "20000"]).start();
    let mut c = server.conn();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("latency-monitor-threshold").arg(1).query(&mut c).expect("CONFIG SET");
    subscribe_many(&mut c, &users(0..60_000), "world");
    let (delivered, _) = fanout(&mut c, "world", "doc:1", "x");
    assert_eq!(delivered, 60_000);
    assert!(stat(&mut c, "fanout_slices") >= 2, "the fan-out took more than one slice");
    let latest: redis::Value = redis::cmd("LATENCY").arg("LATEST").query(&mut c).expect("LATENCY LATEST");
    assert!(format!("{latest:?}").contains("agentic-fanout-slice"), "LATENCY LATEST: {latest:?}");
}
