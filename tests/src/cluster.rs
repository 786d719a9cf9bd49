//! Valkey Cluster on loopback: real nodes with the module, slots assigned and joined by the
//! harness, stopped by PID when the cluster drops.

use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::Duration;

use crate::{free_port, parse_info_field, server_binary, wait_for, wait_replica_synced, Server, ServerBuilder, TlsFiles};

/// The `valkey-cli` binary: `$VALKEY_CLI` or `valkey-cli` from `PATH` (Debian's 8.0.1 drives
/// clusters of every supported server version).
pub fn cli_binary() -> PathBuf {
    match std::env::var_os("VALKEY_CLI") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from("valkey-cli"),
    }
}

/// `(major, minor, patch)` of the server binary the harness runs (`valkey-server --version`).
pub fn server_version() -> (u32, u32, u32) {
    let out = Command::new(server_binary()).arg("--version").output().unwrap_or_else(|e| panic!("{}: {e}", server_binary().display()));
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text.split_whitespace().find_map(|w| w.strip_prefix("v=")).unwrap_or("0.0.0");
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Builder for [`Cluster`]: `primaries` shards of one primary and `replicas` replicas each, every
/// node started from `node` (module arguments, extra config) with cluster mode on.
pub struct ClusterBuilder {
    primaries: usize,
    replicas: usize,
    node: ServerBuilder,
    by_cli: bool,
    tls: Option<TlsFiles>,
}

/// A running cluster. Nodes are stopped (by PID) when it drops, also when a test fails.
/// `nodes[..primaries]` start as the primaries, slots split evenly in order; the replicas of
/// primary `i` follow.
pub struct Cluster {
    pub nodes: Vec<Server>,
    pub primaries: usize,
    template: ServerBuilder,
    /// With TLS: the certificates and each node's TLS port (by index in `nodes`).
    tls: Option<(TlsFiles, Vec<u16>)>,
}

impl ClusterBuilder {
    pub fn new(primaries: usize, replicas: usize) -> Self {
        assert!(primaries >= 1);
        ClusterBuilder { primaries, replicas, node: ServerBuilder::new(), by_cli: false, tls: None }
    }

    /// Creates the cluster as an operator would: `valkey-cli --cluster create <nodes>
    /// --cluster-replicas <replicas>`, which picks the primaries and assigns the replicas itself
    /// (so read roles from the nodes, not from their order).
    pub fn created_by_cli(mut self) -> Self {
        self.by_cli = true;
        self
    }

    /// Every node also listens with TLS on a port of its own (`Cluster::tls_port`); the cluster
    /// bus and the plain ports stay as they are, so the harness keeps its plain connections.
    /// A client on a TLS port is told the nodes' TLS ports (CLUSTER SLOTS, MOVED).
    pub fn tls(mut self, files: &TlsFiles) -> Self {
        self.tls = Some(files.clone());
        self
    }

    /// The template every node starts from.
    pub fn node(mut self, f: impl FnOnce(ServerBuilder) -> ServerBuilder) -> Self {
        self.node = f(self.node);
        self
    }

    /// Starts the nodes, assigns slots with CLUSTER ADDSLOTSRANGE, joins them with CLUSTER MEET,
    /// attaches replicas with CLUSTER REPLICATE and waits until every node reports a healthy
    /// cluster that covers all slots.
    pub fn start(self) -> Cluster {
        let total = self.primaries * (1 + self.replicas);
        let template = self
            .node
            .clone()
            .arg("--cluster-enabled", "yes")
            .arg("--cluster-config-file", "nodes.conf")
            .arg("--cluster-node-timeout", "2000");
        let tls = self.tls.map(|files| (files, (0..total).map(|_| free_port()).collect::<Vec<u16>>()));
        let nodes: Vec<Server> = (0..total)
            .map(|i| match &tls {
                Some((files, ports)) => template.clone().tls(files, ports[i]).start(),
                None => template.clone().start(),
            })
            .collect();
        let cluster = Cluster { nodes, primaries: self.primaries, template, tls };
        if self.by_cli {
            let out = Command::new(cli_binary())
                .args(["--cluster", "create"])
                .args(cluster.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
                .args(["--cluster-replicas", &self.replicas.to_string(), "--cluster-yes"])
                .output()
                .expect("valkey-cli --cluster create");
            assert!(out.status.success(), "valkey-cli --cluster create failed: {}", String::from_utf8_lossy(&out.stdout));
            cluster.wait_known_nodes(total);
            cluster.wait_healthy();
            cluster.wait_shard_ids_agree();
            for replica in &cluster.nodes {
                let mut c = replica.conn();
                if crate::info_field(&mut c, "replication", "role").as_deref() != Some("slave") {
                    continue;
                }
                let port = crate::info_field(&mut c, "replication", "master_port").and_then(|p| p.parse::<u16>().ok());
                if let Some(primary) = cluster.nodes.iter().find(|n| Some(n.port) == port) {
                    wait_replica_synced(primary, replica);
                }
            }
            return cluster;
        }
        let per = 16384 / self.primaries;
        for i in 0..self.primaries {
            let first = i * per;
            let last = if i + 1 == self.primaries { 16383 } else { first + per - 1 };
            let _: () =
                redis::cmd("CLUSTER").arg("ADDSLOTSRANGE").arg(first).arg(last).query(&mut cluster.nodes[i].conn()).expect("ADDSLOTSRANGE");
        }
        let mut first = cluster.nodes[0].conn();
        for n in &cluster.nodes[1..] {
            let _: () = redis::cmd("CLUSTER").arg("MEET").arg("127.0.0.1").arg(n.port).query(&mut first).expect("CLUSTER MEET");
        }
        cluster.wait_known_nodes(total);
        for r in 0..self.primaries * self.replicas {
            let primary = &cluster.nodes[r / self.replicas.max(1)];
            let id = cluster.node_id(primary);
            let replica = &cluster.nodes[self.primaries + r];
            let ok = wait_for(
                || redis::cmd("CLUSTER").arg("REPLICATE").arg(&id).query::<()>(&mut replica.conn()).is_ok(),
                Duration::from_secs(10),
            );
            assert!(ok, "node {} could not become a replica of {}", replica.port, primary.port);
        }
        cluster.wait_healthy();
        cluster.wait_shard_ids_agree();
        for r in 0..self.primaries * self.replicas {
            wait_replica_synced(&cluster.nodes[r / self.replicas.max(1)], &cluster.nodes[self.primaries + r]);
        }
        cluster
    }
}

impl Cluster {
    pub fn builder(primaries: usize, replicas: usize) -> ClusterBuilder {
        ClusterBuilder::new(primaries, replicas)
    }

    /// A cluster-aware client (follows MOVED/ASK) seeded with every node.
    pub fn client(&self) -> redis::cluster::ClusterClient {
        let urls: Vec<String> = self.nodes.iter().map(|n| n.url()).collect();
        redis::cluster::ClusterClient::new(urls).expect("cluster client")
    }

    pub fn conn(&self) -> redis::cluster::ClusterConnection {
        self.client().get_connection().expect("cluster connection")
    }

    /// Node `i`'s TLS port, on a cluster started with `ClusterBuilder::tls`.
    pub fn tls_port(&self, i: usize) -> Option<u16> {
        self.tls.as_ref().map(|(_, ports)| ports[i])
    }

    /// What node `i` is started from (again, after a kill).
    fn node_template(&self, i: usize) -> ServerBuilder {
        match &self.tls {
            Some((files, ports)) => self.template.clone().tls(files, ports[i]),
            None => self.template.clone(),
        }
    }

    pub fn node_id(&self, node: &Server) -> String {
        redis::cmd("CLUSTER").arg("MYID").query(&mut node.conn()).expect("CLUSTER MYID")
    }

    /// The node that serves `slot` as primary now: the one whose own CLUSTER SLOTS names itself.
    pub fn primary_of_slot(&self, slot: u16) -> &Server {
        self.try_primary_of_slot(slot).unwrap_or_else(|| panic!("no primary serves slot {slot}"))
    }

    /// As `primary_of_slot`, or None while no node claims the slot (a migration in progress).
    pub fn try_primary_of_slot(&self, slot: u16) -> Option<&Server> {
        self.nodes.iter().find(|n| {
            let me = self.node_id(n);
            let Ok(redis::Value::Array(ranges)) = redis::cmd("CLUSTER").arg("SLOTS").query::<redis::Value>(&mut n.conn()) else {
                return false;
            };
            ranges.iter().any(|r| {
                let redis::Value::Array(r) = r else { return false };
                let (Some(redis::Value::Int(a)), Some(redis::Value::Int(b)), Some(redis::Value::Array(owner))) =
                    (r.first(), r.get(1), r.get(2))
                else {
                    return false;
                };
                let id = owner.get(2).and_then(|v| redis::from_redis_value_ref::<String>(v).ok());
                *a <= slot as i64 && slot as i64 <= *b && id.as_deref() == Some(me.as_str())
            })
        })
    }

    /// SIGKILLs node `i` and starts it again on the same port and data dir (its nodes.conf brings
    /// it back into the cluster; with AOF on, its data too). Returns once it answers PING.
    pub fn kill9_and_restart(&mut self, i: usize, down_for: Duration) {
        let port = self.nodes[i].port;
        let placeholder = ServerBuilder::new().no_module().start();
        let old = std::mem::replace(&mut self.nodes[i], placeholder);
        let dir = old.kill9();
        thread::sleep(down_for);
        let restarted = self.node_template(i).port(port).adopt_dir(dir).start();
        let placeholder = std::mem::replace(&mut self.nodes[i], restarted);
        drop(placeholder);
    }

    /// kill -9 of primary `i`, restarted only once one of its replicas has taken over. A fixed
    /// down time raced the failover on a loaded machine: a node without persistence that comes
    /// back empty before its replica is promoted is still the primary, and its replica then
    /// copies the empty data set (the tests saw a third of the feeds lose every article).
    pub fn kill9_and_restart_after_failover(&mut self, i: usize) {
        let port = self.nodes[i].port;
        let replicas: Vec<usize> = (0..self.nodes.len())
            .filter(|&j| j != i)
            .filter(|&j| crate::info_field(&mut self.nodes[j].conn(), "replication", "master_port").as_deref() == Some(&port.to_string()))
            .collect();
        assert!(!replicas.is_empty(), "node {port} has no replica to fail over to");
        let placeholder = ServerBuilder::new().no_module().start();
        let old = std::mem::replace(&mut self.nodes[i], placeholder);
        let dir = old.kill9();
        let promoted = wait_for(
            || replicas.iter().any(|&j| crate::info_field(&mut self.nodes[j].conn(), "replication", "role").as_deref() == Some("master")),
            Duration::from_secs(60),
        );
        assert!(promoted, "no replica of {port} took over within 60 s");
        let restarted = self.node_template(i).port(port).adopt_dir(dir).start();
        let placeholder = std::mem::replace(&mut self.nodes[i], restarted);
        drop(placeholder);
    }

    /// Starts an atomic slot migration (Valkey 9, `CLUSTER MIGRATESLOTS`) of the first half of
    /// `from`'s first slot range to `to`; returns the first slot it moves.
    pub fn migrate_half_of_first_range(&self, from: &Server, to: &Server) -> u16 {
        let (first, end) = self.slot_ranges_of(from)[0];
        let last = first + (end - first) / 2;
        let _: redis::Value = redis::cmd("CLUSTER")
            .arg("MIGRATESLOTS")
            .arg("SLOTSRANGE")
            .arg(first)
            .arg(last)
            .arg("NODE")
            .arg(self.node_id(to))
            .query(&mut from.conn())
            .expect("CLUSTER MIGRATESLOTS");
        first
    }

    /// Waits (up to 30 s, else panics) until `node` serves `slot` as primary.
    pub fn wait_primary_of_slot(&self, slot: u16, node: &Server) {
        let ok = wait_for(|| self.try_primary_of_slot(slot).is_some_and(|n| n.port == node.port), Duration::from_secs(30));
        assert!(ok, "node {} did not come to serve slot {slot}", node.port);
    }

    /// The slot ranges `node` serves, from its own CLUSTER SLOTS.
    pub fn slot_ranges_of(&self, node: &Server) -> Vec<(u16, u16)> {
        let me = self.node_id(node);
        let Ok(redis::Value::Array(ranges)) = redis::cmd("CLUSTER").arg("SLOTS").query::<redis::Value>(&mut node.conn()) else {
            return Vec::new();
        };
        let mut mine: Vec<(u16, u16)> = ranges
            .iter()
            .filter_map(|r| {
                let redis::Value::Array(r) = r else { return None };
                let (Some(redis::Value::Int(a)), Some(redis::Value::Int(b)), Some(redis::Value::Array(owner))) =
                    (r.first(), r.get(1), r.get(2))
                else {
                    return None;
                };
                let id = owner.get(2).and_then(|v| redis::from_redis_value_ref::<String>(v).ok())?;
                (id == me).then_some((*a as u16, *b as u16))
            })
            .collect();
        mine.sort();
        mine
    }

    /// `CLUSTER KEYSLOT key`, asked of the first node.
    pub fn key_slot(&self, key: &str) -> u16 {
        let s: i64 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query(&mut self.nodes[0].conn()).expect("CLUSTER KEYSLOT");
        s as u16
    }

    pub fn primary_of_key(&self, key: &str) -> &Server {
        self.primary_of_slot(self.key_slot(key))
    }

    fn wait_known_nodes(&self, total: usize) {
        let ok = wait_for(
            || self.nodes.iter().all(|n| info_field_cluster(n, "cluster_known_nodes").and_then(|v| v.parse::<usize>().ok()) == Some(total)),
            Duration::from_secs(20),
        );
        assert!(ok, "the nodes did not all meet");
    }

    /// Waits (up to 30 s, else panics) until every node groups the nodes into exactly the
    /// cluster's shards. A new cluster's shard ids settle through gossip, and Valkey 8.0 cannot
    /// restart from a nodes.conf written before they did (a replica's shard id differing from its
    /// primary's: "corrupted cluster config file", valkey-io/valkey#774; later versions converge, #2174):
    /// tests that kill -9 and restart nodes must not do so earlier.
    fn wait_shard_ids_agree(&self) {
        let shards_seen_by =
            |n: &Server| redis::cmd("CLUSTER").arg("SHARDS").query::<Vec<redis::Value>>(&mut n.conn()).map(|v| v.len()).ok();
        let ok = wait_for(|| self.nodes.iter().all(|n| shards_seen_by(n) == Some(self.primaries)), Duration::from_secs(30));
        assert!(
            ok,
            "the nodes do not agree on the shards: {:?} (want {})",
            self.nodes.iter().map(shards_seen_by).collect::<Vec<_>>(),
            self.primaries
        );
    }

    /// Waits (up to 30 s, else panics) until every node says `cluster_state:ok` with all slots.
    pub fn wait_healthy(&self) {
        let ok = wait_for(
            || {
                self.nodes.iter().all(|n| {
                    info_field_cluster(n, "cluster_state").as_deref() == Some("ok")
                        && info_field_cluster(n, "cluster_slots_ok").as_deref() == Some("16384")
                })
            },
            Duration::from_secs(30),
        );
        assert!(
            ok,
            "cluster did not become healthy: {:?}",
            self.nodes.iter().map(|n| info_field_cluster(n, "cluster_state")).collect::<Vec<_>>()
        );
    }
}

/// A field of `CLUSTER INFO` on one node.
pub fn info_field_cluster(node: &Server, field: &str) -> Option<String> {
    let text: String = redis::cmd("CLUSTER").arg("INFO").query(&mut node.conn()).ok()?;
    parse_info_field(&text, field)
}
