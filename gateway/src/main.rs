//! agentic-gateway: serves every user's feed live to browsers over WebSockets, an HTTP API for
//! interests, topics and stats, Prometheus metrics, and the built feed UI. Many sockets share a
//! few Valkey connections: live user entries come from the module's delivery channel.

mod api;
mod auth;
mod cluster;
mod config;
mod entry;
mod hub;
mod ids;
#[cfg(test)]
mod input_fuzz;
mod live;
mod metrics;
mod session;
mod shards;
mod tls;
mod topics;
mod valkey;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderValue, Method};
use axum::routing::get;
use axum::Router;
use clap::Parser;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::{ServeDir, ServeFile};

use api::AppState;
use config::{Cli, Command, Config};

/// Thousands of sockets need thousands of descriptors: raise the soft limit to the hard one.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/healthz", get(api::healthz))
        .route("/metrics", get(api::prometheus))
        .route("/api/config", get(api::config))
        .route("/api/topics", get(api::topics))
        .route("/api/topics/{slug}/feed", get(api::topic_feed))
        .route("/api/users/{id}/interests", get(api::get_interests).put(api::put_interests))
        .route("/api/users/{id}/feed", get(api::user_feed))
        .route("/api/stats", get(api::stats))
        .route("/ws/users/{id}", get(api::ws_user))
        .route("/ws/topics/{slug}", get(api::ws_topic))
        .route("/api/{*rest}", axum::routing::any(api::not_found))
        .route("/ws/{*rest}", axum::routing::any(api::not_found));
    let mut app = match &state.config.ui_dir {
        // Client-side routes (/u/alice, /ops) get index.html.
        Some(dir) => api.fallback_service(ServeDir::new(dir).fallback(ServeFile::new(dir.join("index.html")))),
        None => api.fallback(|| async {
            (axum::http::StatusCode::NOT_FOUND, "no UI here: start the gateway with --ui-dir gateway/ui/dist (make ui builds it)")
        }),
    };
    let origins: Vec<HeaderValue> = state.config.cors_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    if !origins.is_empty() {
        app = app.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::PUT])
                .allow_headers([axum::http::header::CONTENT_TYPE, axum::http::header::AUTHORIZATION]),
        );
    }
    app.with_state(state)
}

/// How long a connection attempt runs before the gateway says it is waiting (the attempt goes on).
const CONNECT_PATIENCE: Duration = Duration::from_secs(5);

async fn connect(config: &Config, tls: &tls::TlsFiles) -> valkey::Valkey {
    let mut logged = false;
    let mut warn_once = |why: String| {
        if !logged {
            log::warn!("waiting for Valkey at {}: {why}", config.valkey_shown());
            logged = true;
        }
    };
    loop {
        let attempt = valkey::Valkey::connect(&config.valkey, config.cluster, tls, config.valkey_connections as usize);
        tokio::pin!(attempt);
        // The client retries a failing connection itself for a long while (a TLS handshake with
        // an unknown certificate among them): say so instead of waiting silently, but let a slow
        // attempt finish rather than starting it again.
        let result = match tokio::time::timeout(CONNECT_PATIENCE, &mut attempt).await {
            Ok(result) => result,
            Err(_) => {
                warn_once(format!(
                    "no connection within {} s yet (with rediss://, is the server's certificate trusted? does it want a client certificate? see --tls-ca-cert, --tls-cert)",
                    CONNECT_PATIENCE.as_secs()
                ));
                attempt.await
            }
        };
        match result {
            Ok(v) => return v,
            Err(e) => warn_once(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(_) => return ctrl_c.await.unwrap_or(()),
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

async fn serve(config: Config) -> Result<(), String> {
    for o in &config.cors_origins {
        if o == "*" {
            return Err("--cors-origin '*' is not allowed: list the origins".into());
        }
        axum::http::HeaderValue::from_str(o).map_err(|_| format!("invalid --cors-origin {o:?}"))?;
    }
    for u in &config.demo_users {
        ids::UserId::parse(u).map_err(|e| format!("--demo-users: {e}"))?;
    }
    if let Some(dir) = &config.ui_dir {
        if !dir.join("index.html").is_file() {
            log::warn!("{} has no index.html: build the UI (make ui)", dir.display());
        }
    }
    let tls = tls::TlsFiles::load(&config.tls_paths())?;
    raise_fd_limit();
    let valkey = connect(&config, &tls).await;
    let users: Arc<hub::Registry> = Arc::default();
    tokio::spawn(live::run(valkey.clone(), users.clone(), config.delivery_channel.clone()));
    let listener = tokio::net::TcpListener::bind(config.listen).await.map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    log::info!("agentic-gateway on http://{addr} (Valkey {}{})", config.valkey_shown(), if config.cluster { ", cluster" } else { "" });
    let state = AppState { topics: topics::TopicFeeds::new(valkey.clone()), valkey, users, config: Arc::new(config) };
    // Pushed frames go out at once: Nagle would hold a frame while the previous one is unacknowledged.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown_signal()).await.map_err(|e| e.to_string())
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    if let Some(Command::Token { secret, user, ttl }) = cli.command {
        if let Err(e) = ids::UserId::parse(&user) {
            eprintln!("agentic-gateway: {e}");
            std::process::exit(2);
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        println!("{}", auth::mint(secret.as_bytes(), &user, now + ttl));
        return;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("agentic-gateway: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(serve(cli.serve)) {
        eprintln!("agentic-gateway: {e}");
        std::process::exit(2);
    }
}
