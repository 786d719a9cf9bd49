//! The command fuzzer (issue 13): a primary with the module and the tiny model, and a replica,
//! take random AGENT.* commands with random and boundary arguments (also inside MULTI/EXEC and
//! Lua), mixed with DEL, RENAME, COPY, MOVE, RESTORE, EXPIRE, FLUSHALL ASYNC, SWAPDB, DEBUG
//! RELOAD, wrong-type writes and a replica that detaches and attaches again (a full resync).
//!
//! After every round: both servers are alive and answer; the replica's DEBUG DIGEST equals the
//! primary's; and the subscriber index equals the user keys: a fan-out to each topic reaches
//! exactly the user keys of database 0 that follow it, after which the index counts exactly them
//! (the index may only ever be a superset, repaired as fan-outs meet stale entries).
//!
//! Time budget: 20 x `AGENTIC_FUZZ_SECONDS` (default 1 s, so 20 s in `make test`; `make fuzz`
//! sets more). `AGENTIC_FUZZ_SEED` replays a run; the seed is printed.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use agentic_tests::fuzz::{mutate_once, Rng};
use agentic_tests::{pid_alive, wait_for, wait_replica_synced, Server};
use common::classify::{tiny_model, with_model};
use common::*;
use redis::{Connection, Value};

const USERS: [&str; 6] = ["user:{u0}", "user:{u1}", "user:{u2}", "user:{u3}", "user:{u4}", "user:{u5}"];
const TOPICS: [&str; 5] = ["sports", "politics", "science", "x", "long-topic_name-9"];
/// Arguments that sit on or past the edges of what commands accept.
const BOUNDARY: [&str; 16] = [
    "",
    "0",
    "-1",
    "1",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "18446744073709551616",
    "NaN",
    "inf",
    "0-0",
    "18446744073709551615-18446744073709551615",
    "$",
    "+",
    "1.5",
    "\u{0}",
];

fn budget() -> Duration {
    let s: f64 = std::env::var("AGENTIC_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).filter(|s: &f64| *s > 0.0).unwrap_or(1.0);
    Duration::from_secs_f64(s * 20.0)
}

/// A valid encoded user value (the AGENT.LOADUSER blob): version, salt, topics, an empty feed and
/// seen filter. Mutated, it exercises the decoder through the real command.
fn user_blob(topics: &[&str]) -> Vec<u8> {
    let mut b = vec![2u8];
    b.extend(7u64.to_le_bytes());
    b.extend((topics.len() as u32).to_le_bytes());
    for t in topics {
        b.extend((t.len() as u32).to_le_bytes());
        b.extend(t.as_bytes());
    }
    b.extend([0u8; 16]); // last feed id
    b.extend([0u8; 12]); // no entries, no layers, no bits
    b
}

struct Gen {
    rng: Rng,
    docs: u64,
    /// The sequence number of the last shared timeline id generated (odd ids, growing).
    shared_seq: u64,
}

impl Gen {
    fn user(&mut self) -> Vec<u8> {
        if self.rng.chance(20) {
            return self.arg();
        }
        self.rng.pick(&USERS).as_bytes().to_vec()
    }

    fn topic(&mut self) -> Vec<u8> {
        if self.rng.chance(10) {
            return self.arg();
        }
        self.rng.pick(&TOPICS).as_bytes().to_vec()
    }

    fn doc(&mut self) -> Vec<u8> {
        self.docs += 1;
        format!("doc:{}", self.rng.below(50)).into_bytes()
    }

    /// Any argument: a boundary value, random bytes, a long string or a known name.
    fn arg(&mut self) -> Vec<u8> {
        match self.rng.below(8) {
            0 => (0..self.rng.below(16)).map(|_| self.rng.next_u64() as u8).collect(),
            1 => vec![b'a'; *self.rng.pick(&[64usize, 65, 1024, 70_000])],
            2 => self.rng.pick(&USERS).as_bytes().to_vec(),
            3 => self.rng.pick(&TOPICS).as_bytes().to_vec(),
            4 => self.rng.below(1000).to_string().into_bytes(),
            _ => self.rng.pick(&BOUNDARY).as_bytes().to_vec(),
        }
    }

    fn maybe_args(&mut self, max: usize) -> Vec<Vec<u8>> {
        (0..self.rng.below(max + 1)).map(|_| self.arg()).collect()
    }

    /// One command of the module's surface.
    fn any_agent_command(&mut self) -> Vec<Vec<u8>> {
        let name = |s: &str| s.as_bytes().to_vec();
        let mut cmd = match self.rng.below(17) {
            0 | 1 => {
                let mut c = vec![name("AGENT.SUBSCRIBE"), self.user()];
                (0..1 + self.rng.below(3)).for_each(|_| c.push(self.topic()));
                c
            }
            2 => {
                let mut c = vec![name("AGENT.UNSUBSCRIBE"), self.user()];
                (0..1 + self.rng.below(2)).for_each(|_| c.push(self.topic()));
                c
            }
            3 => vec![name("AGENT.INTERESTS"), self.user()],
            4 | 5 => {
                let mut c = vec![name("AGENT.FANOUT"), self.topic(), self.doc(), format!("payload {}", self.docs).into_bytes()];
                if self.rng.chance(4) {
                    c.push(name("STREAM"));
                    c.push(format!("topic:{}", String::from_utf8_lossy(&self.topic())).into_bytes());
                }
                if self.rng.chance(3) {
                    c.push(name("USERS"));
                    (0..1 + self.rng.below(3)).for_each(|_| c.push(self.user()));
                }
                c
            }
            6 | 7 => {
                let mut c = vec![name("AGENT.FEED"), self.user()];
                for _ in 0..self.rng.below(3) {
                    match self.rng.below(4) {
                        0 => c.extend([name("COUNT"), self.arg()]),
                        1 => c.extend([name("BEFORE"), self.arg()]),
                        2 => c.extend([name("AFTER"), self.arg()]),
                        // Short blocks only: a fuzzer blocked forever finds nothing.
                        _ => c.extend([name("BLOCK"), self.rng.pick(&["1", "5", "-1", "x"]).as_bytes().to_vec()]),
                    }
                }
                c
            }
            8 => {
                let mut c = vec![name("AGENT.CLASSIFY"), self.arg()];
                if self.rng.chance(2) {
                    c.push(name("TOPICS"));
                    (0..self.rng.below(3)).for_each(|_| c.push(self.topic()));
                }
                c
            }
            9 => {
                let mut c = vec![name("AGENT.TOPIC.SET"), self.topic(), self.arg()];
                c.extend(self.maybe_args(3));
                c
            }
            10 => {
                let mut c = vec![name("AGENT.TOPIC.ADDEXAMPLES"), self.topic()];
                (0..1 + self.rng.below(3)).for_each(|_| c.push(self.arg()));
                c
            }
            11 => match self.rng.below(4) {
                0 => vec![name("AGENT.TOPIC.DEL"), self.topic()],
                1 => vec![name("AGENT.TOPIC.GET"), self.topic()],
                2 => vec![name("AGENT.TOPIC.LIST")],
                _ => vec![name("AGENT.TOPIC.RESET")],
            },
            12 => {
                let mut blob = user_blob(&["sports", "science"]);
                for _ in 0..self.rng.below(3) {
                    let other = user_blob(&["x"]);
                    mutate_once(&mut self.rng, &mut blob, &other);
                }
                vec![name("AGENT.LOADUSER"), self.user(), blob]
            }
            13 => {
                // The replicated delivery form with random parameters.
                let mut c = vec![name("AGENT.DELIVER"), self.topic(), self.doc()];
                (0..5).for_each(|_| c.push(self.arg()));
                (0..1 + self.rng.below(2)).for_each(|_| c.push(self.user()));
                c
            }
            14 => vec![name("AGENT.STATS")],
            15 => {
                // A shared timeline append: mostly well formed (odd ids from a growing clock, so
                // many are applied and replicated), sometimes with a random argument.
                self.shared_seq += 2;
                let id = format!("1700000000000-{}", self.shared_seq);
                let mut c = vec![name("AGENT.TIMELINE.APPEND"), b"agentic:timelines".to_vec(), self.topic(), self.doc(), id.into_bytes()];
                c.extend(["1700000000000", "5", "86400000", "1000", "128"].map(|a| a.as_bytes().to_vec()));
                if self.rng.chance(4) {
                    let i = 2 + self.rng.below(c.len() - 2);
                    c[i] = self.arg();
                }
                c
            }
            _ => {
                let mut c = vec![name(self.rng.pick::<&str>(&[
                    "AGENT.LOADTOPICS",
                    "AGENT.SIDECAR.RESULT",
                    "AGENT.SIDECAR.LIST",
                    "AGENT.TIMELINE.LOAD",
                ]))];
                c.extend(self.maybe_args(5));
                c
            }
        };
        if self.rng.chance(30) {
            // Wrong arity or trailing junk.
            if self.rng.chance(2) {
                cmd.truncate(1);
            } else {
                cmd.push(self.arg());
            }
        }
        cmd
    }

    /// One command on the keyspace around the module's keys. Key names are the known users only:
    /// the module refuses other names when it creates a key, but RENAME would not.
    fn keyspace_command(&mut self) -> Vec<Vec<u8>> {
        let s = |x: &str| x.as_bytes().to_vec();
        let known: Vec<Vec<u8>> = (0..2).map(|_| self.rng.pick(&USERS).as_bytes().to_vec()).collect();
        let mut names = known.into_iter();
        let mut next = || names.next().unwrap_or_default();
        match self.rng.below(12) {
            0 => vec![s("DEL"), next()],
            1 => vec![s("RENAME"), next(), next()],
            2 => vec![s("COPY"), next(), next(), s("REPLACE")],
            3 => vec![s("EXPIRE"), next(), s(self.rng.pick::<&str>(&["1000", "0", "-1"]))],
            // Milliseconds: gone before the round's checks.
            4 => vec![s("PEXPIRE"), next(), s(self.rng.pick::<&str>(&["1", "20"]))],
            5 => vec![s("PERSIST"), next()],
            6 => vec![s("MOVE"), next(), s("1")],
            7 => vec![s("SET"), next(), s("not a user")],
            8 => vec![s("UNLINK"), self.doc()],
            9 => vec![s("SWAPDB"), s("0"), s("1")],
            10 => vec![s("FLUSHALL"), s("ASYNC")],
            _ => vec![s("DEBUG"), s("RELOAD")],
        }
    }

    /// `AGENTIC_FUZZ_SKIP` (comma-separated command names) narrows a run down when hunting a bug.
    fn skipped(c: &[Vec<u8>]) -> bool {
        let skip = std::env::var("AGENTIC_FUZZ_SKIP").unwrap_or_default();
        let name = String::from_utf8_lossy(&c[0]).to_ascii_uppercase();
        skip.split(',').any(|s| !s.is_empty() && s.eq_ignore_ascii_case(&name))
    }

    fn agent_command(&mut self) -> Vec<Vec<u8>> {
        loop {
            let c = self.any_agent_command();
            if !Self::skipped(&c) {
                return c;
            }
        }
    }

    fn command(&mut self) -> Vec<Vec<u8>> {
        loop {
            let c = self.any_command();
            if !Self::skipped(&c) {
                return c;
            }
        }
    }

    fn any_command(&mut self) -> Vec<Vec<u8>> {
        if self.rng.chance(6) {
            let c = self.keyspace_command();
            // The whole-database commands are rare: they would leave little state to test.
            let rare = c[0] == b"FLUSHALL" || c[0] == b"SWAPDB" || c[0] == b"DEBUG";
            if rare && !self.rng.chance(15) {
                return self.agent_command();
            }
            return c;
        }
        self.agent_command()
    }
}

/// Keeps the last 300 commands for a failure's message.
fn note(recent: &mut std::collections::VecDeque<String>, c: &[Vec<u8>], how: &str) {
    let text: Vec<String> = c.iter().map(|a| String::from_utf8_lossy(&a[..a.len().min(40)]).into_owned()).collect();
    if recent.len() == 300 {
        recent.pop_front();
    }
    recent.push_back(format!("{how}{}", text.join(" ")));
}

fn send(c: &mut Connection, args: &[Vec<u8>]) -> redis::RedisResult<Value> {
    let mut cmd = redis::cmd(std::str::from_utf8(&args[0]).unwrap_or("AGENT.STATS"));
    for a in &args[1..] {
        cmd.arg(a.as_slice());
    }
    cmd.query(c)
}

/// A RESTORE of one user key's DUMP under another name (the serialised form of the type).
fn dump_restore(c: &mut Connection, from: &str, to: &str) {
    if let Ok(Value::BulkString(dump)) = redis::cmd("DUMP").arg(from).query::<Value>(c) {
        let _: redis::RedisResult<Value> = redis::cmd("RESTORE").arg(to).arg(0).arg(dump).arg("REPLACE").query(c);
    }
}

/// Every user key in database 0 and the topics it follows.
fn user_keys_and_topics(c: &mut Connection) -> BTreeMap<String, BTreeSet<String>> {
    let keys: Vec<String> = redis::cmd("SCAN")
        .cursor_arg(0)
        .arg("TYPE")
        .arg("agentuser")
        .arg("COUNT")
        .arg(10_000)
        .clone()
        .iter(c)
        .expect("SCAN")
        .collect::<Result<_, _>>()
        .expect("SCAN page");
    keys.into_iter()
        .map(|k| {
            let topics = interests(c, &k).into_iter().collect();
            (k, topics)
        })
        .collect()
}

/// Keys whose values differ between the two servers, per database, for the failure message.
fn differences(p: &mut Connection, r: &mut Connection) -> String {
    let mut out = String::new();
    for (name, c) in [("primary", &mut *p), ("replica", &mut *r)] {
        let info: String = redis::cmd("INFO").arg("replication").query(c).unwrap_or_default();
        let keyspace: String = redis::cmd("INFO").arg("keyspace").query(c).unwrap_or_default();
        let fields: Vec<&str> = info
            .lines()
            .chain(keyspace.lines())
            .filter(|l| l.starts_with("db") || l.contains("offset") || l.contains("link_status"))
            .collect();
        out += &format!("{name}: digest {} {fields:?}\n", digest(c));
    }
    for db in 0..2 {
        let mut keys = BTreeSet::new();
        let values = |c: &mut Connection| -> BTreeMap<Vec<u8>, String> {
            let _: () = redis::cmd("SELECT").arg(db).query(c).expect("SELECT");
            let ks: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(c).unwrap_or_default();
            let m = ks
                .into_iter()
                .map(|k| {
                    let d: Vec<String> = redis::cmd("DEBUG").arg("DIGEST-VALUE").arg(&k).query(c).unwrap_or_default();
                    let t: String = redis::cmd("TYPE").arg(&k).query(c).unwrap_or_default();
                    let expires: i64 = redis::cmd("PEXPIRETIME").arg(&k).query(c).unwrap_or_default();
                    (k, format!("{t} {d:?} expires at {expires}"))
                })
                .collect();
            let _: () = redis::cmd("SELECT").arg(0).query(c).expect("SELECT");
            m
        };
        let (a, b) = (values(p), values(r));
        keys.extend(a.keys().cloned());
        keys.extend(b.keys().cloned());
        for k in keys {
            if a.get(&k) != b.get(&k) {
                out += &format!("db {db} {}: primary {:?} replica {:?}\n", String::from_utf8_lossy(&k), a.get(&k), b.get(&k));
            }
        }
    }
    out
}

/// Checks one round; returns how many (user, topic) follows it verified.
fn check_round(
    p: &mut Connection,
    r: &mut Connection,
    primary: &Server,
    replica: &Server,
    round: u64,
    seed: u64,
    recent: &std::collections::VecDeque<String>,
) -> usize {
    assert!(pid_alive(primary.pid), "the primary died in round {round} (seed {seed}):\n{}", primary.log_tail(40));
    assert!(pid_alive(replica.pid), "the replica died in round {round} (seed {seed}):\n{}", replica.log_tail(40));
    // Short expiries have passed; SCAN removes the expired keys (their DELs replicate).
    std::thread::sleep(Duration::from_millis(30));
    let users = user_keys_and_topics(p);
    let mut followers: BTreeMap<String, usize> = BTreeMap::new();
    for topics in users.values() {
        for t in topics {
            *followers.entry(t.clone()).or_default() += 1;
        }
    }
    for (topic, n) in &followers {
        let (delivered, duplicates) = fanout(p, topic, &format!("check:{round}:{topic}"), "invariant check");
        assert_eq!(
            (delivered + duplicates) as usize,
            *n,
            "round {round} (seed {seed}): a fan-out to {topic} reaches its {n} followers: {users:?}\nlast commands:\n{}",
            recent.iter().cloned().collect::<Vec<_>>().join("\n")
        );
    }
    let counts = topic_counts(p);
    for (topic, n) in counts.iter().filter(|(_, n)| **n > 0) {
        let followed = followers.get(topic).copied().unwrap_or(0);
        assert!(*n as usize >= followed, "round {round} (seed {seed}): the index lost followers of {topic}: {n} < {followed}");
    }
    for (topic, n) in &followers {
        assert_eq!(
            counts.get(topic).copied().unwrap_or(0) as usize,
            *n,
            "round {round} (seed {seed}): after a fan-out the index counts exactly the followers of {topic}"
        );
    }
    let _: i64 = redis::cmd("WAIT").arg(1).arg(10_000).query(p).expect("WAIT");
    let same = wait_for(|| digest(p) == digest(r), Duration::from_secs(10));
    assert!(
        same,
        "round {round} (seed {seed}): the replica's DEBUG DIGEST differs from the primary's:\n{}\nlast commands:\n{}",
        differences(p, r),
        recent.iter().cloned().collect::<Vec<_>>().join("\n")
    );
    assert_eq!(stat(p, "panics_caught"), 0, "round {round} (seed {seed}): a command panicked (caught):\n{}", primary.log_tail(30));
    followers.values().sum()
}

#[test]
fn random_commands_never_crash_and_keep_replica_and_index_exact() {
    let seed: u64 = std::env::var("AGENTIC_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64));
    let model = tiny_model();
    let primary = with_model(&model, &["classify-tier", "static"]).start();
    let replica = with_model(&model, &["classify-tier", "static"]).replica_of(primary.port).start();
    wait_replica_synced(&primary, &replica);
    let (mut p, mut r) = (primary.conn(), replica.conn());
    let mut gen = Gen { rng: Rng::new(seed), docs: 0, shared_seq: 1 };
    let lua = "return redis.pcall(unpack(ARGV))";
    let started = Instant::now();
    let mut recent: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let (mut commands, mut errors, mut rounds, mut resyncs, mut follows) = (0u64, 0u64, 0u64, 0u64, 0usize);
    while started.elapsed() < budget() {
        rounds += 1;
        let mut reloaded = false;
        let per_round: usize = std::env::var("AGENTIC_FUZZ_ROUND").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
        for _ in 0..per_round {
            let reply = match gen.rng.below(20) {
                0 | 1 => {
                    // MULTI/EXEC around a few commands: the module runs them inline.
                    let mut pipe = redis::pipe();
                    pipe.atomic();
                    for _ in 0..1 + gen.rng.below(4) {
                        let c = gen.agent_command();
                        note(&mut recent, &c, "MULTI ");
                        let mut cmd = redis::cmd(std::str::from_utf8(&c[0]).unwrap_or("PING"));
                        c[1..].iter().for_each(|a| {
                            cmd.arg(a.as_slice());
                        });
                        pipe.add_command(cmd);
                        commands += 1;
                    }
                    pipe.query::<Value>(&mut p).map(|_| Value::Nil)
                }
                2 => {
                    let c = gen.agent_command();
                    note(&mut recent, &c, "EVAL ");
                    commands += 1;
                    let mut cmd = redis::cmd("EVAL");
                    cmd.arg(lua).arg(0);
                    c.iter().for_each(|a| {
                        cmd.arg(a.as_slice());
                    });
                    cmd.query::<Value>(&mut p)
                }
                3 if std::env::var("AGENTIC_FUZZ_SKIP").unwrap_or_default().contains("RESTORE") => Ok(Value::Nil),
                3 => {
                    commands += 1;
                    let (from, to) = (*gen.rng.pick(&USERS), *gen.rng.pick(&USERS));
                    note(&mut recent, &[b"DUMP+RESTORE".to_vec(), from.into(), to.into()], "");
                    dump_restore(&mut p, from, to);
                    Ok(Value::Nil)
                }
                _ => {
                    commands += 1;
                    let c = gen.command();
                    note(&mut recent, &c, "");
                    reloaded |= c[0] == b"DEBUG";
                    send(&mut p, &c)
                }
            };
            if reply.is_err() {
                errors += 1;
            }
            // The connection may have been left in another database by nothing we sent; be sure.
            if gen.rng.chance(50) {
                let _: redis::RedisResult<()> = redis::cmd("SELECT").arg(0).query(&mut p);
            }
        }
        // DEBUG RELOAD drops keys whose time has passed without telling the replicas (rdb.c feeds
        // the DELs to replicas only when a restarting primary has none yet), so a replica that
        // still holds such a key diverges from then on. A real restart resyncs its replicas;
        // after a reload the fuzzer does the same.
        if std::mem::take(&mut reloaded) || gen.rng.chance(5) {
            // The replica detaches and attaches again: a full resync of everything so far.
            let _: () = redis::cmd("REPLICAOF").arg("NO").arg("ONE").query(&mut r).expect("REPLICAOF NO ONE");
            let _: () = redis::cmd("REPLICAOF").arg("127.0.0.1").arg(primary.port).query(&mut r).expect("REPLICAOF");
            wait_replica_synced(&primary, &replica);
            resyncs += 1;
            note(&mut recent, &[b"(replica full resync)".to_vec()], "");
        }
        follows += check_round(&mut p, &mut r, &primary, &replica, rounds, seed, &recent);
    }
    println!(
        "command fuzz: {commands} commands in {rounds} rounds ({errors} refused with an error), {resyncs} full resyncs, {follows} follows checked against the index, 0 crashes, digests equal after every round (seed {seed})"
    );
    if let Ok(path) = std::env::var("AGENTIC_FUZZ_REPORT") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(f, "fuzz server: {commands} commands in {rounds} rounds, {resyncs} full resyncs, {follows} follows checked, digests equal every round, 0 crashes (seed {seed})");
        }
    }
    assert!(commands > 0 && follows > 0, "the checks had state to check");
}
