//! The static tier and the cascade (issue 12) on real servers with the tiny test model and its
//! own static table (`make tiny-model` builds both): which tier answers, the mode switch, the
//! escalation budget, few-shot examples in the static tier, and a damaged or missing table.

mod common;

use std::time::Duration;

use agentic_tests::{info_field, make_temp_dir, wait_for, wait_replica_synced};
use common::classify::*;
use common::*;
use redis::Connection;

fn static_status(c: &mut Connection) -> String {
    info_field(c, "agentic_classify", "agentic_static_status").unwrap_or_default()
}

fn set(c: &mut Connection, name: &str, value: &str) {
    run(c, &["CONFIG", "SET", &format!("agentic.{name}"), value]);
}

const TEXTS: [&str; 12] = [
    "The home team won the championship in overtime",
    "Parliament passed the budget after a long debate",
    "Shares fell as the central bank raised interest rates",
    "A new phone with a faster chip goes on sale",
    "Scientists found water on a distant moon",
    "The hospital opened a new cancer ward",
    "Floods and heat waves follow record temperatures",
    "Schools reopen with smaller classes this autumn",
    "The film festival crowned a first-time director",
    "The striker scored twice in the cup final",
    "Voters head to the polls in a close election",
    "The startup raised money from venture investors",
];

/// An escalation budget that cannot bind: the default follows the encoder's measured cost, and on a
/// slow machine a cold first run can make it a handful per second.
const UNLIMITED: [&str; 2] = ["classify-escalate-max-per-sec", "1000000"];

/// Tiers that answered `texts`, in order.
fn tiers_of(c: &mut Connection, texts: &[&str]) -> Vec<String> {
    texts.iter().map(|t| classify_tier(c, &[t]).1).collect()
}

#[test]
fn the_cascade_says_which_tier_answered_and_counts_both() {
    let (_server, mut c) = start_tiny(&UNLIMITED);
    assert_eq!(static_status(&mut c), "ready");
    assert_eq!(info_field(&mut c, "agentic_classify", "agentic_tier_mode").as_deref(), Some("cascade"));
    assert_eq!(info_field(&mut c, "agentic_classify", "agentic_static_dim").as_deref(), Some("32"));
    assert_eq!(stat(&mut c, "static_ready"), 1);

    let tiers = tiers_of(&mut c, &TEXTS);
    let statics = tiers.iter().filter(|t| *t == "static").count() as i64;
    assert!(statics > 0, "the static tier answers most texts in the cascade: {tiers:?}");
    assert_eq!(stat(&mut c, "classify_tier_static"), statics);
    assert_eq!(stat(&mut c, "classify_tier_model"), TEXTS.len() as i64 - statics);
    assert_eq!(stat(&mut c, "classify_escalations"), TEXTS.len() as i64 - statics, "every model answer was an escalation");
    assert_eq!(stat(&mut c, "classify_static_margin_e4_count"), TEXTS.len() as i64);
    assert_eq!(stat(&mut c, "classify_texts"), TEXTS.len() as i64);
    assert_eq!(stat(&mut c, "classify_inline_calls"), 0, "both tiers run on the pool");

    // 100%: every text goes to the encoder; 0%: none does.
    set(&mut c, "classify-escalate-percent", "100");
    assert!(tiers_of(&mut c, &TEXTS).iter().all(|t| t == "model"));
    set(&mut c, "classify-escalate-percent", "0");
    assert!(tiers_of(&mut c, &TEXTS).iter().all(|t| t == "static"));
    assert!(stat(&mut c, "classify_escalated_permille") > 0);
}

#[test]
fn the_mode_switch_keeps_each_tier_alone_and_refuses_unknown_modes() {
    let (_server, mut c) = start_tiny(&[&UNLIMITED[..], &["classify-escalate-percent", "100"]].concat());
    set(&mut c, "classify-tier", "static");
    assert!(tiers_of(&mut c, &TEXTS).iter().all(|t| t == "static"), "static only, whatever the escalation share");
    let escalations = stat(&mut c, "classify_escalations");
    set(&mut c, "classify-tier", "model");
    assert!(tiers_of(&mut c, &TEXTS).iter().all(|t| t == "model"));
    // Workers that never offer their core while running the encoder answer the same way.
    set(&mut c, "classify-yield-us", "0");
    assert!(tiers_of(&mut c, &TEXTS[..2]).iter().all(|t| t == "model"));
    assert_eq!(stat(&mut c, "classify_escalations"), escalations, "the encoder alone escalates nothing");
    assert_eq!(stat(&mut c, "classify_tier_static"), TEXTS.len() as i64);
    set(&mut c, "classify-yield-us", "100");

    let e = expect_err_str(&mut c, &["CONFIG", "SET", "agentic.classify-tier", "fastest"]);
    assert!(e.contains("cascade, model, static"), "{e}");
    let e = expect_err_str(&mut c, &["CONFIG", "SET", "agentic.classify-escalate-percent", "101"]);
    assert!(e.contains("between 0 and 100"), "{e}");
    let v = run(&mut c, &["CONFIG", "GET", "agentic.classify-tier"]);
    assert!(format!("{v:?}").contains("model"), "{v:?}");

    // Inside MULTI the cascade runs inline, escalation included.
    set(&mut c, "classify-tier", "cascade");
    let replies: Vec<redis::Value> = redis::pipe().atomic().cmd("AGENT.CLASSIFY").arg(TEXTS[0]).query(&mut c).expect("MULTI/EXEC");
    let (_, _, tier) = parse_classification_tier(&replies[0]);
    assert_eq!(tier, "model", "100% escalation inline too");
}

#[test]
fn the_rate_budget_caps_escalations_and_counts_the_rest() {
    let (_server, mut c) =
        start_tiny(&["classify-escalate-percent", "100", "classify-escalate-max-per-sec", "2", "classify-learn-percent", "0"]);
    let tiers = tiers_of(&mut c, &TEXTS);
    let model = tiers.iter().filter(|t| *t == "model").count() as i64;
    // Two per second, refilled while the texts go through (well under a few seconds here).
    assert!((1..=6).contains(&model), "{tiers:?}");
    assert_eq!(stat(&mut c, "classify_escalations_over_budget"), TEXTS.len() as i64 - model, "every text over budget is counted");
    assert_eq!(stat(&mut c, "classify_escalation_rate_per_sec"), 2);
    assert_eq!(stat(&mut c, "classify_failures"), 0);
}

/// The default escalation budget follows the encoder's cost per text, measured when the model
/// loads: known before the first text, so a burst right after start-up cannot queue more
/// escalations than the pool runs.
#[test]
fn the_encoders_cost_is_measured_when_it_loads_before_any_text() {
    let (_server, mut c) = start_tiny(&[]);
    assert!(wait_for(|| stat(&mut c, "classify_model_us_per_text") > 0, Duration::from_secs(30)), "the loader measures the encoder");
    assert_eq!(stat(&mut c, "classify_texts"), 0, "before any text");
    assert_eq!(stat(&mut c, "classify_escalation_rate_per_sec"), 0, "no budget computed yet");
    classify_tier(&mut c, &[TEXTS[0]]);
    let (cost_us, rate) = (stat(&mut c, "classify_model_us_per_text"), stat(&mut c, "classify_escalation_rate_per_sec"));
    assert!(rate > 0, "the first text already has a budget: {rate}/s at {cost_us} us per text");
}

#[test]
fn examples_pull_the_static_tier_too() {
    let (_server, mut c) = start_tiny(&["classify-tier", "static"]);
    let text = "zebra quantum lighthouse marathon";
    let (before, _) = classify(&mut c, &[text]);
    let target = ["business", "politics", "sports"].into_iter().find(|t| *t != before).expect("another topic");
    let mut args = vec!["AGENT.TOPIC.ADDEXAMPLES", target];
    args.extend(std::iter::repeat_n(text, 40));
    run(&mut c, &args);
    let (after, scores, tier) = parse_classification_tier(&run(&mut c, &["AGENT.CLASSIFY", text]));
    assert_eq!((after.as_str(), tier.as_str()), (target, "static"), "{scores:?}");
    // A topic subset is honoured by the static tier.
    let (best, scores, _) = parse_classification_tier(&run(&mut c, &["AGENT.CLASSIFY", text, "TOPICS", &before, "health"]));
    assert!(best == before || best == "health");
    assert_eq!(scores.len(), 2);
}

#[test]
fn one_candidate_never_escalates() {
    let (_server, mut c) = start_tiny(&[&UNLIMITED[..], &["classify-escalate-percent", "100"]].concat());
    assert_eq!(classify_tier(&mut c, &[TEXTS[0], "TOPICS", "business", "sports"]).1, "model");
    let (best, tier) = classify_tier(&mut c, &[TEXTS[0], "TOPICS", "sports"]);
    assert_eq!((best.as_str(), tier.as_str()), ("sports", "static"), "nothing to decide: no encoder run");
}

#[test]
fn a_damaged_table_leaves_the_encoder_classifying_alone() {
    let dir = make_temp_dir("damaged-static");
    for f in ["model.onnx", "tokenizer.json", "config.json"] {
        std::fs::copy(tiny_model().join(f), dir.join(f)).expect("copy model");
    }
    // No static.bin: the encoder answers every text, and says why.
    let server = with_model(&dir, &[]).start();
    let mut c = server.conn();
    wait_ready(&mut c);
    assert_eq!(static_status(&mut c), "absent");
    assert!(tiers_of(&mut c, &TEXTS[..3]).iter().all(|t| t == "model"));
    drop(c);
    server.stop();

    let mut table = std::fs::read(tiny_model().join("static.bin")).expect("tiny static.bin");
    table.truncate(table.len() - 7);
    std::fs::write(dir.join("static.bin"), &table).expect("write damaged table");
    let server = with_model(&dir, &[]).start();
    let mut c = server.conn();
    wait_ready(&mut c);
    assert_eq!(static_status(&mut c), "failed");
    let why = info_field(&mut c, "agentic_classify", "agentic_static_error").unwrap_or_default();
    assert!(why.contains("static.bin") && why.contains("expected"), "{why}");
    assert!(tiers_of(&mut c, &TEXTS[..3]).iter().all(|t| t == "model"));
    assert_eq!(stat(&mut c, "classify_failures"), 0);
    drop(c);
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn replicas_load_the_static_tier_and_answer_with_it() {
    let primary = with_model(&tiny_model(), &["classify-tier", "static"]).start();
    let replica = with_model(&tiny_model(), &["classify-tier", "static"]).replica_of(primary.port).start();
    wait_replica_synced(&primary, &replica);
    let (mut p, mut r) = (primary.conn(), replica.conn());
    wait_ready(&mut p);
    wait_ready(&mut r);
    assert!(wait_for(|| static_status(&mut r) == "ready", Duration::from_secs(10)));
    for t in TEXTS {
        assert_eq!(classify(&mut p, &[t]), classify(&mut r, &[t]), "the static tier is a pure function of the model folder");
    }
}

#[test]
fn self_training_fits_heads_from_teaching_samples_and_forgets_them_with_the_catalog() {
    // Every unrestricted text teaches (100%); none is escalated for its margin.
    let (_server, mut c) =
        start_tiny(&["classify-learn-percent", "100", "classify-escalate-percent", "0", "classify-escalate-max-per-sec", "1000000"]);
    let words = ["match", "team", "vote", "party", "shares", "bank", "chip", "phone", "virus", "doctor", "film", "star"];
    let texts: Vec<String> = (0..1_000).map(|i| format!("{} {} story {i}", words[i % 12], words[(i / 12) % 12])).collect();
    let mut pipe = redis::pipe();
    for t in &texts {
        pipe.cmd("AGENT.CLASSIFY").arg(t);
    }
    let replies: Vec<redis::Value> = pipe.query(&mut c).expect("pipelined AGENT.CLASSIFY");
    assert!(replies.iter().all(|r| parse_classification_tier(r).2 == "model"), "teaching samples are answered by the encoder");
    assert_eq!(stat(&mut c, "classify_learn_samples"), 1_000);
    assert!(wait_for(|| stat(&mut c, "classify_head_fits") == 1, Duration::from_secs(30)), "a head is fitted after 1,000 samples");
    assert_eq!(stat(&mut c, "classify_head_version"), 1);
    assert_eq!(stat(&mut c, "classify_head_fit_failures"), 0);
    let words_weighed = stat(&mut c, "classify_head_words");
    assert!(words_weighed >= 12, "the word head weighs the texts' words and pairs: {words_weighed}");
    // Restricted calls never teach (their label would be biased by the subset).
    classify(&mut c, &["match team story", "TOPICS", "sports", "politics"]);
    assert_eq!(stat(&mut c, "classify_learn_samples"), 1_000);
    // With the heads in place both tiers still answer, over every topic.
    set(&mut c, "classify-learn-percent", "0");
    let (_, scores, tier) = parse_classification_tier(&run(&mut c, &["AGENT.CLASSIFY", "vote party story"]));
    assert_eq!((scores.len(), tier.as_str()), (10, "static"));
    set(&mut c, "classify-tier", "model");
    let (_, scores, tier) = parse_classification_tier(&run(&mut c, &["AGENT.CLASSIFY", "vote party story"]));
    assert_eq!((scores.len(), tier.as_str()), (10, "model"));
    // The word head's log-probabilities are added to either head's scores; weight 0 leaves them out.
    for tier in ["static", "model"] {
        set(&mut c, "classify-tier", tier);
        let with_words = parse_classification_tier(&run(&mut c, &["AGENT.CLASSIFY", "vote party story"])).1;
        set(&mut c, "classify-word-weight", "0");
        let without = parse_classification_tier(&run(&mut c, &["AGENT.CLASSIFY", "vote party story"])).1;
        set(&mut c, "classify-word-weight", "400");
        assert_ne!(with_words, without, "{tier}: the word head changes the scores");
        let lowest = |s: &[(String, f64)]| s.iter().map(|x| x.1).fold(f64::INFINITY, f64::min);
        assert!(lowest(&with_words) < lowest(&without), "{tier}: log-probabilities are negative: {with_words:?} / {without:?}");
    }

    // A topic change makes the samples and heads stale: learning starts again.
    set(&mut c, "classify-tier", "cascade");
    set(&mut c, "classify-learn-percent", "100");
    run(&mut c, &["AGENT.TOPIC.ADDEXAMPLES", "sports", "match team story 1"]);
    classify(&mut c, &["film star story"]);
    assert_eq!(stat(&mut c, "classify_learn_samples_kept"), 1);
}

/// Classifies `n` unrestricted texts in one pipeline (every one a teaching sample when
/// `classify-learn-percent` is 100).
fn teach(c: &mut Connection, n: usize) {
    let words = ["match", "team", "vote", "party", "shares", "bank", "chip", "phone", "virus", "doctor", "film", "star"];
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.cmd("AGENT.CLASSIFY").arg(format!("{} {} story {i}", words[i % 12], words[(i / 12) % 12]));
    }
    let _: Vec<redis::Value> = pipe.query(c).expect("pipelined AGENT.CLASSIFY");
}

#[test]
fn heads_replicate_as_data_and_survive_a_restart() {
    let learning = ["classify-learn-percent", "100", "classify-escalate-percent", "0", "classify-escalate-max-per-sec", "1000000"];
    let aof = |b: agentic_tests::ServerBuilder| b.arg("--appendonly", "yes").arg("--appendfsync", "always");
    let builder = aof(with_model(&tiny_model(), &learning));
    let primary = builder.clone().start();
    let replica = with_model(&tiny_model(), &["classify-learn-percent", "0"]).replica_of(primary.port).start();
    wait_replica_synced(&primary, &replica);
    let (mut p, mut r) = (primary.conn(), replica.conn());
    wait_ready(&mut p);
    wait_ready(&mut r);
    teach(&mut p, 1_000);
    assert!(wait_for(|| stat(&mut p, "classify_heads_published") == 1, Duration::from_secs(30)), "the fitted heads are written");
    assert!(exists(&mut p, "agentic:heads"));
    let version = stat(&mut p, "classify_head_version");
    assert_eq!(version, 1);
    let _: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut p).expect("WAIT");
    assert!(wait_for(|| stat(&mut r, "classify_heads_loaded") == 1, Duration::from_secs(10)), "the replica installs them");
    assert_eq!(stat(&mut r, "classify_head_version"), version);
    assert_eq!(stat(&mut r, "classify_head_fits"), 0, "installed, not fitted");
    let words_weighed = stat(&mut p, "classify_head_words");
    assert!(words_weighed > 0);
    assert_eq!(stat(&mut r, "classify_head_words"), words_weighed, "the word head travels with the vector heads");
    set(&mut p, "classify-learn-percent", "0");
    for tier in ["static", "model"] {
        set(&mut p, "classify-tier", tier);
        set(&mut r, "classify-tier", tier);
        for t in TEXTS {
            assert_eq!(classify(&mut p, &[t]), classify(&mut r, &[t]), "{tier}: the replica scores with the primary's heads");
        }
    }
    let before: Vec<_> = TEXTS.iter().map(|t| classify(&mut p, &[t])).collect();
    assert_eq!(digest(&mut p), digest(&mut r));
    drop((p, r));
    drop(replica);

    // The primary restarts from its AOF with the heads it had.
    let dir = primary.stop();
    let primary = builder.adopt_dir(dir).start();
    let mut p = primary.conn();
    wait_ready(&mut p);
    assert!(wait_for(|| stat(&mut p, "classify_heads_loaded") == 1, Duration::from_secs(10)));
    assert_eq!(stat(&mut p, "classify_head_version"), version);
    assert_eq!(stat(&mut p, "classify_head_words"), words_weighed);
    set(&mut p, "classify-learn-percent", "0");
    set(&mut p, "classify-tier", "model");
    let after: Vec<_> = TEXTS.iter().map(|t| classify(&mut p, &[t])).collect();
    assert_eq!(after, before);

    // Heads of another catalog are stale and left alone; a damaged value is refused and counted.
    run(&mut p, &["AGENT.TOPIC.DEL", "climate"]);
    run(&mut p, &["SET", "agentic:heads", "AGHEADS1 but not really"]);
    assert!(wait_for(|| stat(&mut p, "classify_heads_ignored") == 1, Duration::from_secs(5)));
    classify(&mut p, &[TEXTS[0]]);
    assert_eq!(stat(&mut p, "panics_caught"), 0);
}
