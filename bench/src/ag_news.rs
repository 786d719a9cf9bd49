//! The four AG News classes as topics (descriptions written like a news editor's sections) and
//! accuracy of AGENT.CLASSIFY answers against the labels; shared by classify_eval and
//! classify_bench so both measure the same thing.

use std::collections::BTreeMap;

use std::sync::Arc;

use redis::Connection;

use crate::NewsItem;

/// AG News class -> (topic slug, description). The descriptions are written like a news editor's
/// section descriptions (each sentence becomes one facet of the topic's vector); they were
/// chosen on a development split of the training prefix (rows 6429-10428), never on the test set.
pub const CLASSES: [(&str, &str, &str); 4] = [
    (
        "World",
        "world",
        "International news and world affairs. \
         Governments, presidents, prime ministers and elections in countries around the world. \
         Diplomacy, foreign policy, treaties and international summits. \
         Wars, armed conflicts, military operations, terrorism, bombings and kidnappings. \
         The United Nations, refugees, natural disasters and humanitarian crises.",
    ),
    (
        "Sports",
        "sports",
        "Sports news. \
         Results and reports from games, matches, races and tournaments. \
         Football, baseball, basketball, hockey, soccer, tennis, golf, cycling and the Olympics. \
         Athletes, players, coaches and managers, and their transfers, contracts and injuries. \
         Teams, clubs, leagues, seasons and championships.",
    ),
    (
        "Business",
        "business",
        "Business and economic news. \
         Companies, corporate earnings, profits, sales and forecasts. \
         Mergers, acquisitions, takeovers, bankruptcies and lawsuits. \
         Stock markets, shares, oil prices, the dollar, interest rates, inflation, jobs and trade. \
         Banks, retailers, airlines, carmakers, investors and chief executives.",
    ),
    (
        "Sci/Tech",
        "scitech",
        "Science and technology news. \
         Computers, software, operating systems, the internet and web search. \
         Technology companies and their new products, such as mobile phones, chips and video games. \
         Computer security, viruses, hackers and spam. \
         Space exploration, NASA, scientific research, medicine, nature and new discoveries.",
    ),
];

/// Makes the catalog exactly the four topics, with `examples` per class label (the default
/// topics are deleted, so every AGENT.CLASSIFY chooses among the four and may teach the
/// self-trained heads, which learn from unrestricted calls only).
pub fn define_topics(c: &mut Connection, examples: &BTreeMap<&str, Vec<String>>) -> Result<(), String> {
    let listed: redis::Value = redis::cmd("AGENT.TOPIC.LIST").query(c).map_err(|e| format!("AGENT.TOPIC.LIST: {e}"))?;
    let redis::Value::Array(topics) = listed else { return Err("AGENT.TOPIC.LIST: not an array".into()) };
    for t in topics {
        let redis::Value::Array(fields) = t else { continue };
        let slug: String = fields.get(1).and_then(|v| redis::from_redis_value_ref(v).ok()).unwrap_or_default();
        if !CLASSES.iter().any(|c| c.1 == slug) {
            redis::cmd("AGENT.TOPIC.DEL").arg(&slug).query::<redis::Value>(c).map_err(|e| format!("AGENT.TOPIC.DEL {slug}: {e}"))?;
        }
    }
    for (label, slug, description) in CLASSES {
        let mut cmd = redis::cmd("AGENT.TOPIC.SET");
        cmd.arg(slug).arg(description).arg("EXAMPLES");
        for e in examples.get(label).map(Vec::as_slice).unwrap_or(&[]) {
            cmd.arg(e);
        }
        cmd.query::<redis::Value>(c).map_err(|e| format!("AGENT.TOPIC.SET {slug}: {e}"))?;
    }
    Ok(())
}

/// Self-training as a node does it from its traffic, compressed: `texts` (unlabelled articles)
/// go through the cascade with every one a teaching sample, then the call waits for the last
/// fit. Leaves self-training off (`classify-learn-percent 0`) so the heads stay fixed while they
/// are measured. Returns the samples the heads in use were fitted on.
pub fn self_train(c: &mut Connection, url: &str, texts: &Arc<Vec<String>>, clients: usize) -> Result<u64, String> {
    let (tier, rate) = (config_get(c, "classify-tier")?, config_get(c, "classify-escalate-max-per-sec")?);
    config_set(c, "classify-tier", "cascade")?;
    config_set(c, "classify-learn-percent", "100")?;
    config_set(c, "classify-escalate-max-per-sec", "1000000")?;
    let fits0 = crate::agent_stat(c, "classify_head_fits");
    let answers = crate::classify_all(url, texts, &[], clients);
    if let Some((Err(e), _)) = answers.iter().find(|(r, _)| r.is_err()) {
        return Err(format!("self-training: {e}"));
    }
    config_set(c, "classify-learn-percent", "0")?;
    config_set(c, "classify-escalate-max-per-sec", &rate)?;
    config_set(c, "classify-tier", &tier)?;
    // Fits run on the pool: wait until one has finished and none runs.
    let started = std::time::Instant::now();
    while crate::agent_stat(c, "classify_head_fits") <= fits0 || crate::agent_stat(c, "classify_head_fitting") > 0.0 {
        if started.elapsed() > std::time::Duration::from_secs(120) {
            return Err("self-training: no head was fitted within 120 s".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Ok(crate::agent_stat(c, "classify_head_samples") as u64)
}

/// Sets a module setting (`CONFIG SET agentic.<name> <value>`).
pub fn config_set(c: &mut Connection, name: &str, value: &str) -> Result<(), String> {
    redis::cmd("CONFIG").arg("SET").arg(format!("agentic.{name}")).arg(value).query::<()>(c).map_err(|e| format!("CONFIG SET {name}: {e}"))
}

/// A module setting's current value (`CONFIG GET agentic.<name>`).
pub fn config_get(c: &mut Connection, name: &str) -> Result<String, String> {
    let pair: Vec<String> =
        redis::cmd("CONFIG").arg("GET").arg(format!("agentic.{name}")).query(c).map_err(|e| format!("CONFIG GET {name}: {e}"))?;
    pair.get(1).cloned().ok_or_else(|| format!("CONFIG GET {name}: no such setting"))
}

pub struct Accuracy {
    pub correct: usize,
    pub total: usize,
    pub errors: usize,
    /// label -> (correct, total)
    pub per_class: BTreeMap<String, (usize, usize)>,
}

impl Accuracy {
    pub fn percent(&self) -> f64 {
        100.0 * self.correct as f64 / self.total.max(1) as f64
    }

    pub fn per_class_line(&self) -> String {
        let per: Vec<String> =
            self.per_class.iter().map(|(l, (ok, n))| format!("{l} {:.1}", 100.0 * *ok as f64 / (*n).max(1) as f64)).collect();
        per.join(", ")
    }
}

/// Scores answers (the best topic's slug, in item order) against the items' labels.
pub fn accuracy<'a>(items: &[NewsItem], answers: impl IntoIterator<Item = &'a Result<String, String>>) -> Accuracy {
    let mut acc = Accuracy { correct: 0, total: items.len(), errors: 0, per_class: BTreeMap::new() };
    for (item, answer) in items.iter().zip(answers) {
        let slug = CLASSES.iter().find(|c| c.0 == item.label).map(|c| c.1);
        let e = acc.per_class.entry(item.label.clone()).or_default();
        e.1 += 1;
        match answer {
            Ok(best) if Some(best.as_str()) == slug => {
                acc.correct += 1;
                e.0 += 1;
            }
            Ok(_) => {}
            Err(_) => acc.errors += 1,
        }
    }
    acc
}
