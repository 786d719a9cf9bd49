//! The self-trained heads (classify/learner.rs) as data. A primary writes every new version to
//! `agentic:heads`, so replicas, the AOF and RDB carry them like any key; every node installs the
//! heads it finds in that key when they were fitted for its catalog (by content) and its model
//! (by fingerprint): a replica answers AGENT.CLASSIFY with its primary's heads, a restarted node
//! with the heads it had. Runs on the pipeline's timer, on the main thread.
//!
//! On a cluster the key lives in one slot while every primary classifies its own traffic, so
//! there each node keeps the heads it learned itself (README: Known limits).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use valkey_module::{CallOptionsBuilder, CallReply, CallResult, Context, ContextFlags};

use crate::classify::catalog;
use crate::classify::learner::{self, Heads};
use crate::classify::scorer::Scorer;
use crate::classify::topic_vectors;
use crate::classify::word_head::WordHead;
use crate::topic_stream::reply_bytes;
use crate::{cluster, ffi, metrics};

pub const HEADS_KEY: &str = "agentic:heads";

/// The key may hold heads this node has not installed (set at start, after loading, on every
/// keyspace event of the key).
static DIRTY: AtomicBool = AtomicBool::new(true);

pub fn mark_dirty() {
    DIRTY.store(true, Ordering::Relaxed);
}

pub fn tick(ctx: &Context) {
    if cluster::enabled() {
        return;
    }
    let flags = ctx.get_flags();
    let publishing = flags.contains(ContextFlags::MASTER) && learner::unpublished().is_some();
    if flags.contains(ContextFlags::LOADING) || !(publishing || DIRTY.load(Ordering::Relaxed)) {
        return;
    }
    let Some(fingerprints) = topic_vectors::tier_fingerprints() else { return };
    let Ok(current) = crate::commands::topic::current_catalog(ctx) else { return };
    let catalog_hash = xxhash_rust::xxh3::xxh3_64(&catalog::encode(&current));
    if publishing {
        match learner::unpublished() {
            Some(heads) if heads.catalog_id == current.id => publish(ctx, &heads, catalog_hash, fingerprints),
            // Fitted for a catalog that has changed since: never written.
            Some(heads) => learner::mark_published(heads.version),
            None => {}
        }
    }
    if !DIRTY.swap(false, Ordering::Relaxed) {
        return;
    }
    let read = CallOptionsBuilder::new().errors_as_replies().build();
    let blob = match ctx.call_ext::<_, CallResult>("GET", &read, &[HEADS_KEY.as_bytes()]) {
        Ok(CallReply::String(s)) => s.as_bytes().to_vec(),
        Ok(CallReply::Null(_)) => return,
        Ok(other) => reply_bytes(&other),
        Err(_) => {
            ignored("agentic:heads holds a value that is not a string");
            return;
        }
    };
    if blob.is_empty() {
        return;
    }
    let encoded = match learner::decode(&blob) {
        Ok(e) => e,
        Err(e) => {
            ignored(&e);
            return;
        }
    };
    if encoded.catalog_hash != catalog_hash || encoded.fingerprints != fingerprints {
        // Fitted for another catalog or model: stale until this node's own heads replace them.
        metrics::CLASSIFY_HEADS_STALE.incr();
        return;
    }
    let tag = learner::fingerprint_tag(encoded.version);
    let [(static_dim, static_w, static_b), (model_dim, model_w, model_b)] = encoded.tiers;
    let built = Scorer::from_parts(&current, fingerprints.1 ^ tag, static_dim, static_w, static_b).and_then(|st| {
        let m = Scorer::from_parts(&current, fingerprints.0 ^ tag, model_dim, model_w, model_b)?;
        let words = match encoded.words {
            Some((topics, _, _, _)) if topics != current.topics.len() => return Err("the word head's topics do not fit the catalog".into()),
            Some((topics, keys, idf, weights)) => Some(Arc::new(WordHead::from_parts(topics, keys, idf, weights)?)),
            None => None,
        };
        Ok((st, m, words))
    });
    match built {
        Ok((static_head, model_head, word_head)) => {
            let heads = Heads {
                catalog_id: current.id,
                version: encoded.version,
                samples: encoded.samples,
                static_head: Arc::new(static_head),
                model_head: Arc::new(model_head),
                word_head,
            };
            if learner::install(heads, fingerprints) {
                metrics::CLASSIFY_HEADS_LOADED.incr();
            }
        }
        Err(e) => ignored(&e),
    }
}

fn publish(ctx: &Context, heads: &Heads, catalog_hash: u64, fingerprints: (u64, u64)) {
    let blob = learner::encode(heads, catalog_hash, fingerprints);
    let write = CallOptionsBuilder::new().replicate().errors_as_replies().build();
    match ctx.call_ext::<_, CallResult>("SET", &write, &[HEADS_KEY.as_bytes(), blob.as_slice()]) {
        Ok(_) => {
            learner::mark_published(heads.version);
            metrics::CLASSIFY_HEADS_PUBLISHED.incr();
        }
        Err(e) => {
            learner::mark_published(heads.version);
            ffi::log_warning(&format!("agentic: writing {HEADS_KEY} failed: {e}"));
        }
    }
}

fn ignored(why: &str) {
    metrics::CLASSIFY_HEADS_IGNORED.incr();
    ffi::log_warning(&format!("agentic: {HEADS_KEY} ignored: {why}"));
}
