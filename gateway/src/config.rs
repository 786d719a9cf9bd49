//! Every setting of the gateway, from flags or environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "agentic-gateway", version, about = "WebSocket/HTTP gateway for valkey-agentic feeds, and the feed UI")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: Config,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Prints a token for one user, signed with the secret (for --auth-secret deployments).
    Token {
        #[arg(long, env = "AGENTIC_GATEWAY_SECRET")]
        secret: String,
        #[arg(long)]
        user: String,
        /// Seconds until it expires.
        #[arg(long, default_value_t = 86_400)]
        ttl: u64,
    },
}

#[derive(Args, Debug, Clone)]
pub struct Config {
    /// Valkey with the agentic module loaded; with --cluster, one or more nodes of the cluster
    /// (comma-separated; the others are discovered).
    #[arg(long, env = "VALKEY_URL", default_value = "redis://127.0.0.1:6379", value_delimiter = ',')]
    pub valkey: Vec<String>,
    /// Valkey runs as a cluster: commands go to the node serving each key, and live deliveries
    /// are followed on every primary's shard channel.
    #[arg(long, env = "AGENTIC_CLUSTER")]
    pub cluster: bool,
    /// With a `rediss://` URL: the CA certificate (PEM) that signed the server's certificate;
    /// without it the system's trusted roots are used.
    #[arg(long, env = "AGENTIC_TLS_CA_CERT", value_name = "FILE")]
    pub tls_ca_cert: Option<std::path::PathBuf>,
    /// With a `rediss://` URL: the client certificate (PEM) to present, for a server with
    /// `tls-auth-clients yes` (Valkey's default). Needs --tls-key.
    #[arg(long, env = "AGENTIC_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The client certificate's private key (PEM). Needs --tls-cert.
    #[arg(long, env = "AGENTIC_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// HTTP and WebSocket address.
    #[arg(long, env = "AGENTIC_GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Folder of the built UI (gateway/ui/dist); without one the API still works.
    #[arg(long, env = "AGENTIC_GATEWAY_UI_DIR")]
    pub ui_dir: Option<PathBuf>,
    /// Origins (scheme://host:port) allowed for CORS and cross-origin WebSockets; repeat or
    /// comma-separate. Default: none, only same-origin pages.
    #[arg(long = "cors-origin", env = "AGENTIC_GATEWAY_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// When set, user feeds and interests need a token for that user (see `token`).
    #[arg(long, env = "AGENTIC_GATEWAY_SECRET", hide_env_values = true)]
    pub auth_secret: Option<String>,
    /// Entries a new socket receives before live ones.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub backlog: u64,
    /// Live entries queued per socket before it is resynced from Valkey instead.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub socket_queue: u64,
    /// Seconds a write to a browser may take before the socket is closed.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub write_timeout_s: u64,
    /// The module's `delivery-channel`.
    #[arg(long, env = "AGENTIC_DELIVERY_CHANNEL", default_value = "agentic:deliveries")]
    pub delivery_channel: String,
    /// Shared multiplexed Valkey connections for reads and API calls.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub valkey_connections: u64,
    /// User ids the UI's home page offers (comma-separated).
    #[arg(long, env = "AGENTIC_DEMO_USERS", value_delimiter = ',')]
    pub demo_users: Vec<String>,
}

impl Config {
    /// The Valkey addresses without credentials, for logs.
    pub fn valkey_shown(&self) -> String {
        let host = |url: &String| url.rsplit_once('@').map_or(url.clone(), |(_, host)| host.to_string());
        self.valkey.iter().map(host).collect::<Vec<_>>().join(",")
    }

    pub fn tls_paths(&self) -> crate::tls::TlsPaths {
        crate::tls::TlsPaths { ca_cert: self.tls_ca_cert.clone(), cert: self.tls_cert.clone(), key: self.tls_key.clone() }
    }

    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.write_timeout_s)
    }
}
