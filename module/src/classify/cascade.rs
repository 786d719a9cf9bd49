//! Which texts the static tier hands to the encoder. A text is escalated when its top-2 margin
//! (best score minus runner-up) is below the threshold that `classify-escalate-percent` of recent
//! texts fall under, and while the escalation budget lasts: `classify-escalate-max-per-sec`
//! escalations per second, or by default as many as the pool's threads can run in
//! `AUTO_MODEL_SHARE` of their time at the encoder's measured cost. Under load the budget binds,
//! so accuracy degrades towards the static tier's instead of a backlog growing; the texts closest
//! to a tie are escalated first. Every text below the threshold but over budget is counted.
//!
//! A random `classify-learn-percent` of texts go to the encoder as teaching samples for the
//! self-trained heads (learner.rs), whatever their margin. While the learner collects its first
//! full set they take the budget first; afterwards a fifth of that share keeps the heads fresh,
//! after the margin escalations.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use crate::{configs, metrics};

/// Margins remembered for the threshold (the newest ones).
const WINDOW: usize = 2_048;
/// With the budget left to the default, at most this share of the pool's time goes to the encoder.
pub const AUTO_MODEL_SHARE: f64 = 0.6;
/// Weight of the newest measurement in the encoder's running cost per text.
const COST_SMOOTHING: f64 = 0.1;
/// Once the learner has its samples, teaching continues at this fraction of its share.
const MAINTENANCE_SHARE: f64 = 0.2;

/// Where a text goes after the static tier scored it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// The static tier's answer stands.
    Static,
    /// The encoder answers: the static margin was too small.
    Escalate,
    /// The encoder answers and the text becomes a teaching sample for the heads.
    Teach,
}

/// The learning part of a choice: which texts may teach (unrestricted topics), the share, and
/// whether teaching comes before margin escalations.
pub struct Learning<'a> {
    pub learnable: &'a [bool],
    pub percent: u64,
    pub first: bool,
}

impl Learning<'_> {
    /// The chance that a learnable text becomes a teaching sample.
    fn share(&self) -> f64 {
        self.percent as f64 / 100.0 * if self.first { 1.0 } else { MAINTENANCE_SHARE }
    }
}

pub struct Cascade {
    margins: VecDeque<f32>,
    /// The scorer the margins came from: margins of different scorers are not comparable.
    scorer_key: (u64, u64),
    /// Escalations that may start now (refilled at the budget's rate, at most one second's worth).
    tokens: f64,
    refilled: Option<Instant>,
    /// Running cost of one text on the encoder, in milliseconds of one thread; 0 until measured.
    model_ms_per_text: f64,
    /// xorshift64 state for drawing teaching samples.
    draw: u64,
}

impl Default for Cascade {
    fn default() -> Self {
        Self::new()
    }
}

impl Cascade {
    pub const fn new() -> Cascade {
        Cascade {
            margins: VecDeque::new(),
            scorer_key: (0, 0),
            tokens: 0.0,
            refilled: None,
            model_ms_per_text: 0.0,
            draw: 0x9E37_79B9_7F4A_7C15,
        }
    }

    /// Escalations allowed per second now; None = no limit (the encoder's cost is not yet known:
    /// the model loader measures it before the first text, model.rs).
    fn rate(&self, max_per_sec: u64, threads: usize) -> Option<f64> {
        if max_per_sec > 0 {
            return Some(max_per_sec as f64);
        }
        (self.model_ms_per_text > 0.0).then(|| threads as f64 * AUTO_MODEL_SHARE * 1000.0 / self.model_ms_per_text)
    }

    /// The margin below which a text is escalated, from the recent margins.
    fn threshold(&self, percent: u64, batch: &[f32]) -> f32 {
        if percent == 0 {
            return f32::NEG_INFINITY;
        }
        if percent >= 100 {
            return f32::INFINITY;
        }
        let mut sorted: Vec<f32> = self.margins.iter().chain(batch).copied().filter(|m| m.is_finite()).collect();
        if sorted.is_empty() {
            return f32::INFINITY;
        }
        sorted.sort_by(f32::total_cmp);
        let rank = (sorted.len() as f64 * percent as f64 / 100.0).ceil() as usize;
        sorted.get(rank).copied().unwrap_or(f32::INFINITY)
    }

    fn uniform(&mut self) -> f64 {
        self.draw ^= self.draw << 13;
        self.draw ^= self.draw >> 7;
        self.draw ^= self.draw << 17;
        (self.draw >> 11) as f64 / (1u64 << 53) as f64
    }

    /// For each text's margin (in one scorer's scale), where it goes.
    pub fn choose(
        &mut self,
        scorer_key: (u64, u64),
        margins: &[f32],
        learning: &Learning,
        now: Instant,
        percent: u64,
        max_per_sec: u64,
        threads: usize,
    ) -> Vec<Route> {
        if scorer_key != self.scorer_key {
            self.margins.clear();
            self.scorer_key = scorer_key;
        }
        let threshold = self.threshold(percent, margins);
        let rate = self.rate(max_per_sec, threads);
        if let Some(rate) = rate {
            let elapsed = self.refilled.map_or(1.0, |t| now.saturating_duration_since(t).as_secs_f64());
            self.tokens = (self.tokens + elapsed * rate).min(rate.max(1.0));
        }
        self.refilled = Some(now);
        let share = learning.share();
        let teach: Vec<usize> =
            (0..margins.len()).filter(|&i| learning.learnable.get(i).copied().unwrap_or(false) && self.uniform() < share).collect();
        let mut below: Vec<usize> = (0..margins.len()).filter(|&i| margins[i] < threshold && !teach.contains(&i)).collect();
        below.sort_by(|&a, &b| margins[a].total_cmp(&margins[b]));
        let order: Vec<(usize, Route)> = if learning.first {
            teach.iter().map(|&i| (i, Route::Teach)).chain(below.iter().map(|&i| (i, Route::Escalate))).collect()
        } else {
            below.iter().map(|&i| (i, Route::Escalate)).chain(teach.iter().map(|&i| (i, Route::Teach))).collect()
        };
        let mut routes = vec![Route::Static; margins.len()];
        for (i, route) in order {
            if rate.is_some() {
                if self.tokens < 1.0 {
                    if route == Route::Escalate {
                        metrics::CLASSIFY_ESCALATIONS_OVER_BUDGET.incr();
                    }
                    continue;
                }
                self.tokens -= 1.0;
            }
            routes[i] = route;
        }
        for &m in margins.iter().filter(|m| m.is_finite()) {
            if self.margins.len() == WINDOW {
                self.margins.pop_front();
            }
            self.margins.push_back(m);
            metrics::CLASSIFY_STATIC_MARGIN_E4.record((m.max(0.0) * 10_000.0) as u64);
        }
        metrics::CLASSIFY_ESCALATION_THRESHOLD_E4.set(if threshold.is_finite() { (threshold * 10_000.0) as i64 } else { -1 });
        metrics::CLASSIFY_ESCALATION_RATE_PER_SEC.set(rate.map_or(-1, |r| r as i64));
        routes
    }

    /// Which texts teach when every text runs on the encoder anyway (a sidecar embedded them):
    /// the same random share as in `choose`, with no escalation budget to spend.
    pub fn teaching(&mut self, learning: &Learning) -> Vec<bool> {
        let share = learning.share();
        learning.learnable.iter().map(|&learnable| learnable && self.uniform() < share).collect()
    }

    /// Records what `texts` texts cost on the encoder, in thread time.
    pub fn model_ran(&mut self, texts: usize, elapsed_ms: f64) {
        if texts == 0 {
            return;
        }
        let per_text = elapsed_ms / texts as f64;
        self.model_ms_per_text = if self.model_ms_per_text == 0.0 {
            per_text
        } else {
            self.model_ms_per_text * (1.0 - COST_SMOOTHING) + per_text * COST_SMOOTHING
        };
        metrics::CLASSIFY_MODEL_US_PER_TEXT.set((self.model_ms_per_text * 1000.0) as i64);
    }
}

static CASCADE: Mutex<Cascade> = Mutex::new(Cascade::new());

pub fn teaching(learning: &Learning) -> Vec<bool> {
    CASCADE.lock().unwrap_or_else(|p| p.into_inner()).teaching(learning)
}

pub fn choose(scorer_key: (u64, u64), margins: &[f32], learning: &Learning) -> Vec<Route> {
    let mut c = CASCADE.lock().unwrap_or_else(|p| p.into_inner());
    c.choose(
        scorer_key,
        margins,
        learning,
        Instant::now(),
        configs::classify_escalate_percent(),
        configs::classify_escalate_max_per_sec(),
        configs::classify_threads(),
    )
}

pub fn model_ran(texts: usize, elapsed_ms: f64) {
    CASCADE.lock().unwrap_or_else(|p| p.into_inner()).model_ran(texts, elapsed_ms);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const NO_LEARNING: Learning = Learning { learnable: &[], percent: 0, first: false };

    fn sent(routes: &[Route]) -> Vec<bool> {
        routes.iter().map(|r| *r != Route::Static).collect()
    }

    #[test]
    fn the_lowest_margins_escalate_up_to_the_percentage() {
        let mut c = Cascade::new();
        let t0 = Instant::now();
        let margins: Vec<f32> = (0..100).map(|i| i as f32 / 100.0).collect();
        let chosen = sent(&c.choose((1, 1), &margins, &NO_LEARNING, t0, 10, 0, 2));
        let escalated: Vec<usize> = (0..100).filter(|&i| chosen[i]).collect();
        assert_eq!(escalated, (0..10).collect::<Vec<_>>());
        assert_eq!(sent(&c.choose((1, 1), &[0.5], &NO_LEARNING, t0, 0, 0, 2)), [false], "0% never escalates");
        assert_eq!(sent(&c.choose((1, 1), &[0.99], &NO_LEARNING, t0, 100, 0, 2)), [true], "100% always escalates");
    }

    #[test]
    fn the_rate_budget_takes_the_closest_ties_first_and_refills() {
        let mut c = Cascade::new();
        let t0 = Instant::now();
        let chosen = sent(&c.choose((1, 1), &[0.3, 0.01, 0.2, 0.02], &NO_LEARNING, t0, 100, 2, 2));
        assert_eq!(chosen, [false, true, false, true], "2 per second: the two smallest margins");
        assert_eq!(sent(&c.choose((1, 1), &[0.0], &NO_LEARNING, t0, 100, 2, 2)), [false], "budget spent");
        assert_eq!(
            sent(&c.choose((1, 1), &[0.0], &NO_LEARNING, t0 + Duration::from_millis(500), 100, 2, 2)),
            [true],
            "half a second refills one"
        );
    }

    #[test]
    fn the_default_budget_follows_the_encoders_measured_cost() {
        let mut c = Cascade::new();
        assert_eq!(c.rate(0, 2), None, "unmeasured: unlimited");
        c.model_ran(10, 100.0);
        let r = c.rate(0, 2).unwrap();
        assert!((r - 2.0 * AUTO_MODEL_SHARE * 100.0).abs() < 1e-9, "{r}");
        assert_eq!(c.rate(7, 2), Some(7.0));
    }

    #[test]
    fn a_new_scorer_starts_a_new_window() {
        let mut c = Cascade::new();
        let t0 = Instant::now();
        c.choose((1, 1), &vec![0.0; 100], &NO_LEARNING, t0, 10, 0, 2);
        // Against the old window (all 0.0) nothing of 5.0.. would be below; a new scorer forgets it.
        let chosen = sent(&c.choose((2, 1), &[5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0], &NO_LEARNING, t0, 10, 0, 2));
        assert_eq!(chosen.iter().filter(|&&e| e).count(), 1);
        assert!(chosen[0]);
    }

    #[test]
    fn teaching_samples_are_random_learnable_texts_and_take_the_budget_first_while_hungry() {
        let mut c = Cascade::new();
        let t0 = Instant::now();
        let n = 1000;
        let margins = vec![1.0; n];
        let learnable: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
        let hungry = Learning { learnable: &learnable, percent: 10, first: true };
        let routes = c.choose((1, 1), &margins, &hungry, t0, 0, 0, 2);
        let taught: Vec<usize> = (0..n).filter(|&i| routes[i] == Route::Teach).collect();
        assert!(taught.iter().all(|i| i % 2 == 0), "only texts that may teach");
        assert!((20..=90).contains(&taught.len()), "about 10% of 500: {}", taught.len());
        // With 3 escalations a second, a hungry learner takes them; a fed one leaves them to ties.
        let mut margins = vec![1.0; n];
        margins[1] = 0.0;
        let routes = c.choose((1, 1), &margins, &hungry, t0 + Duration::from_secs(10), 50, 3, 2);
        assert_eq!(routes.iter().filter(|r| **r == Route::Teach).count(), 3);
        let fed = Learning { learnable: &learnable, percent: 10, first: false };
        let routes = c.choose((1, 1), &margins, &fed, t0 + Duration::from_secs(20), 50, 3, 2);
        assert_eq!(routes[1], Route::Escalate, "the closest tie first");
    }

    #[test]
    fn texts_a_sidecar_embedded_teach_at_the_same_share_without_a_budget() {
        let mut c = Cascade::new();
        let n = 4000;
        let learnable: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
        let hungry = c.teaching(&Learning { learnable: &learnable, percent: 10, first: true });
        let taught: Vec<usize> = (0..n).filter(|&i| hungry[i]).collect();
        assert!(taught.iter().all(|i| i % 2 == 0), "only texts that may teach");
        assert!((140..=260).contains(&taught.len()), "about 10% of 2,000: {}", taught.len());
        let fed = c.teaching(&Learning { learnable: &learnable, percent: 10, first: false });
        let fed = fed.iter().filter(|&&t| t).count();
        assert!((20..=70).contains(&fed), "a fifth of that once the learner is fed: {fed}");
        let none = c.teaching(&Learning { learnable: &learnable, percent: 0, first: true });
        assert!(none.iter().all(|&t| !t), "classify-learn-percent 0 teaches nothing");
    }
}
