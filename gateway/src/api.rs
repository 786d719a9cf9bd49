//! HTTP handlers and WebSocket upgrades. One shared state; every error becomes
//! `{"error": ...}` with a status in `ApiError`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::Config;
use crate::entry::{entry_json, Item};
use crate::hub::{Outbox, Registration, Registry};
use crate::ids::{EntryId, Slug, UserId};
use crate::session::{Feed, Session};
use crate::topics::TopicFeeds;
use crate::valkey::Valkey;
use crate::{auth, metrics};

#[derive(Clone)]
pub struct AppState {
    pub valkey: Valkey,
    pub users: Arc<Registry>,
    pub topics: Arc<TopicFeeds>,
    pub config: Arc<Config>,
}

pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, message: message.into() }
    }
    fn unauthorized(message: &str) -> Self {
        metrics::AUTH_FAILURES.inc();
        ApiError { status: StatusCode::UNAUTHORIZED, message: message.into() }
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(e: redis::RedisError) -> Self {
        // A refusal reads `CODE: detail` as the server sent it (redis 0.27 showed codes it did not
        // know, such as NOPERM and OOM, that way; 1.x writes its own names, `NoPerm: ...`).
        let message = match crate::valkey::first_server_error(&e) {
            Some(first) => format!("valkey: {}: {}", first.code(), first.details().unwrap_or_default()),
            None => format!("valkey: {e}"),
        };
        ApiError { status: status_of(&e), message }
    }
}

/// The module's own refusals (`ERR ...`) are the caller's mistake. A full or busy server is
/// temporary (503); a permission the gateway's ACL user lacks is the deployment's fault, not the
/// caller's (502), as is a lost connection.
fn status_of(e: &redis::RedisError) -> StatusCode {
    // Decided on the first failed command, as with redis 0.27: since 1.0 an aborted MULTI
    // (set_interests) reports EXECABORT and carries the OOM or NOPERM that caused it inside.
    let Some(first) = crate::valkey::first_server_error(e) else { return StatusCode::BAD_GATEWAY };
    match first.code() {
        "OOM" | "LOADING" | "BUSY" | "MASTERDOWN" | "TRYAGAIN" | "CLUSTERDOWN" | "READONLY" => StatusCode::SERVICE_UNAVAILABLE,
        "NOPERM" | "NOAUTH" | "WRONGPASS" => StatusCode::BAD_GATEWAY,
        _ if crate::valkey::is_refusal(&first) => StatusCode::BAD_REQUEST,
        _ => StatusCode::BAD_GATEWAY,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        metrics::HTTP_ERRORS.inc();
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn user_id(raw: &str) -> ApiResult<UserId> {
    UserId::parse(raw).map_err(ApiError::bad_request)
}

fn slug(raw: &str) -> ApiResult<Slug> {
    Slug::parse(raw).map_err(ApiError::bad_request)
}

fn entry_id(raw: Option<&String>, what: &str) -> ApiResult<Option<EntryId>> {
    raw.map(|s| EntryId::parse(s).ok_or_else(|| ApiError::bad_request(format!("invalid {what} id {s:?}: use <ms>-<seq>")))).transpose()
}

/// With `--auth-secret`, the request must carry a token for `user` (Bearer header or `token`).
fn authorize(state: &AppState, user: &UserId, headers: &HeaderMap, query_token: Option<&String>) -> ApiResult<()> {
    let Some(secret) = &state.config.auth_secret else { return Ok(()) };
    let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = bearer.or(query_token.map(String::as_str)) else { return Err(ApiError::unauthorized("this gateway needs a token")) };
    auth::verify(secret.as_bytes(), token, user.as_str(), now_s()).map_err(ApiError::unauthorized)
}

/// Browsers send Origin on WebSockets; other sites' pages must not read feeds through a
/// visitor's browser. Same-origin pages and configured origins pass; non-browser clients send none.
fn origin_allowed(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    if state.config.cors_origins.iter().any(|o| o == origin) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    origin.split_once("://").map(|(_, h)| h) == Some(host)
}

fn items_json(items: &[Item]) -> Response {
    let mut out = String::from("{\"entries\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        entry_json(&mut out, item);
    }
    out.push_str("]}");
    ([(header::CONTENT_TYPE, "application/json")], out).into_response()
}

pub async fn healthz(State(s): State<AppState>) -> Response {
    match s.valkey.module_loaded().await {
        Ok(true) => Json(json!({ "status": "ok", "module": true })).into_response(),
        Ok(false) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "module not loaded", "module": false }))).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": format!("valkey unreachable: {e}"), "module": false })))
            .into_response(),
    }
}

pub async fn prometheus() -> Response {
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], metrics::render()).into_response()
}

pub async fn config(State(s): State<AppState>) -> Json<Value> {
    metrics::HTTP_REQUESTS.inc();
    Json(json!({ "auth": s.config.auth_secret.is_some(), "backlog": s.config.backlog, "demo_users": s.config.demo_users }))
}

pub async fn topics(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    metrics::HTTP_REQUESTS.inc();
    Ok(Json(json!({ "topics": s.valkey.topics().await? })))
}

#[derive(Deserialize)]
pub struct Page {
    count: Option<usize>,
    before: Option<String>,
}

pub async fn topic_feed(State(s): State<AppState>, Path(raw): Path<String>, Query(p): Query<Page>) -> ApiResult<Response> {
    metrics::HTTP_REQUESTS.inc();
    let t = slug(&raw)?;
    let before = entry_id(p.before.as_ref(), "before")?;
    Ok(items_json(&s.valkey.topic_newest(&t, p.count.unwrap_or(20), before).await?))
}

pub async fn user_feed(
    State(s): State<AppState>,
    Path(raw): Path<String>,
    Query(p): Query<Page>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    metrics::HTTP_REQUESTS.inc();
    let u = user_id(&raw)?;
    authorize(&s, &u, &headers, None)?;
    let before = entry_id(p.before.as_ref(), "before")?;
    Ok(items_json(&s.valkey.feed_newest(&u, p.count.unwrap_or(20), before).await?))
}

pub async fn get_interests(State(s): State<AppState>, Path(raw): Path<String>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    metrics::HTTP_REQUESTS.inc();
    let u = user_id(&raw)?;
    authorize(&s, &u, &headers, None)?;
    Ok(Json(json!({ "user": u.as_str(), "interests": s.valkey.interests(&u).await? })))
}

#[derive(Deserialize)]
pub struct Interests {
    interests: Vec<String>,
}

pub async fn put_interests(
    State(s): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Result<Json<Interests>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<Value>> {
    metrics::HTTP_REQUESTS.inc();
    let u = user_id(&raw)?;
    authorize(&s, &u, &headers, None)?;
    let Json(body) = body.map_err(|e| ApiError::bad_request(format!("body must be {{\"interests\": [topic, ...]}}: {e}")))?;
    if body.interests.len() > 1024 {
        return Err(ApiError::bad_request("at most 1024 interests"));
    }
    let mut want: Vec<Slug> = body.interests.iter().map(|t| slug(t)).collect::<ApiResult<_>>()?;
    want.sort();
    want.dedup();
    let known = s.valkey.topics().await?;
    if let Some(unknown) = want.iter().find(|w| !known.iter().any(|k| k.slug == w.as_str())) {
        return Err(ApiError::bad_request(format!("unknown topic {:?}", unknown.as_str())));
    }
    let now = s.valkey.set_interests(&u, &want).await?;
    if s.users.has(u.key().as_bytes()) {
        s.users.set_interests(u.key().as_bytes(), &now);
    }
    Ok(Json(json!({ "user": u.as_str(), "interests": now })))
}

pub async fn stats(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    metrics::HTTP_REQUESTS.inc();
    let module = s.valkey.module_stats().await?;
    let info = s.valkey.info(&["memory", "agentic_classify"]).await?;
    let num = |k: &str| info.get(k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let txt = |k: &str| info.get(k).cloned().unwrap_or_default();
    Ok(Json(json!({
        "ts_ms": metrics::now_ms(),
        "module": module,
        "server": {
            "used_memory": num("used_memory"),
            "maxmemory": num("maxmemory"),
            "model_status": txt("model_status"),
            "backend": txt("backend"),
            "sidecars_live": num("sidecars_live"),
            "sidecar_devices": txt("sidecar_devices"),
        },
        "gateway": {
            "sockets": metrics::USER_SOCKETS.get() + metrics::TOPIC_SOCKETS.get(),
            "entries_sent": metrics::entries_sent(),
            "resyncs": metrics::RESYNCS_SLOW.get() + metrics::RESYNCS_RECONNECT.get(),
            "dropped": metrics::ENTRIES_DROPPED.get(),
            "latency_ms_p50": metrics::DELIVERY_LATENCY.recent_percentile(50.0),
            "latency_ms_p99": metrics::DELIVERY_LATENCY.recent_percentile(99.0),
        },
    })))
}

fn ws_refusal(status: StatusCode, message: String) -> Response {
    metrics::SOCKETS_REFUSED.inc();
    (status, Json(json!({ "error": message }))).into_response()
}

/// A browser cannot read the body of a refused upgrade: accept it, say why, and close.
fn refuse_in_band(ws: WebSocketUpgrade, message: String) -> Response {
    metrics::SOCKETS_REFUSED.inc();
    tune(ws).on_upgrade(move |mut socket| async move {
        let _ = socket.send(axum::extract::ws::Message::Text(crate::entry::error_frame(&message).into())).await;
        let _ = socket.send(axum::extract::ws::Message::Close(None)).await;
    })
}

/// Unknown API paths get JSON, not the UI's index.html.
pub async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({ "error": "no such endpoint (see gateway/API.md)" }))).into_response()
}

fn tune(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    // Tens of thousands of sockets: small buffers (tungstenite's read default is 128 KiB each).
    ws.read_buffer_size(4 * 1024).write_buffer_size(0).max_message_size(64 * 1024).max_frame_size(64 * 1024)
}

pub async fn ws_user(
    ws: WebSocketUpgrade,
    State(s): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !origin_allowed(&s, &headers) {
        return ws_refusal(StatusCode::FORBIDDEN, "origin not allowed".into());
    }
    let checked = user_id(&raw).and_then(|u| {
        authorize(&s, &u, &headers, q.get("token"))?;
        Ok((u, entry_id(q.get("after"), "after")?))
    });
    let (u, after) = match checked {
        Ok(v) => v,
        Err(e) => return refuse_in_band(ws, e.message),
    };
    let outbox = Outbox::new(s.config.socket_queue as usize);
    let key = u.key().into_bytes().into_boxed_slice();
    tune(ws).on_upgrade(move |socket| async move {
        // The interests first, for articles appended to shared topic timelines (routed by topic).
        match s.valkey.interests(&u).await {
            Ok(topics) => s.users.set_interests(&key, &topics),
            Err(e) => {
                metrics::INTERESTS_UNREAD.inc();
                log::warn!("cannot read the interests of {}: {e}", u.as_str());
            }
        }
        // Registered before the first read, so nothing delivered in between is missed.
        s.users.add(&key, &outbox);
        let registration = Registration { registry: s.users.clone(), key, outbox };
        let session = Session {
            socket,
            valkey: s.valkey.clone(),
            feed: Feed::User(u),
            registration,
            backlog: s.config.backlog as usize,
            write_timeout: s.config.write_timeout(),
        };
        session.run(after).await;
    })
}

pub async fn ws_topic(
    ws: WebSocketUpgrade,
    State(s): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !origin_allowed(&s, &headers) {
        return ws_refusal(StatusCode::FORBIDDEN, "origin not allowed".into());
    }
    let (t, after) = match slug(&raw).and_then(|t| Ok((t, entry_id(q.get("after"), "after")?))) {
        Ok(v) => v,
        Err(e) => return refuse_in_band(ws, e.message),
    };
    let outbox = Outbox::new(s.config.socket_queue as usize);
    tune(ws).on_upgrade(move |mut socket| async move {
        let registration = match s.topics.register(&t, &outbox).await {
            Ok(r) => r,
            Err(e) => {
                let text = crate::entry::error_frame(&format!("cannot follow the topic: {e}"));
                let _ = socket.send(axum::extract::ws::Message::Text(text.into())).await;
                return;
            }
        };
        let session = Session {
            socket,
            valkey: s.valkey.clone(),
            feed: Feed::Topic(t),
            registration,
            backlog: s.config.backlog as usize,
            write_timeout: s.config.write_timeout(),
        };
        session.run(after).await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(reply: &str) -> redis::RedisError {
        match redis::parse_redis_value(format!("-{reply}\r\n").as_bytes()).and_then(redis::Value::extract_error) {
            Err(e) => e,
            Ok(v) => panic!("{reply} parsed as {v:?}"),
        }
    }

    #[test]
    fn statuses_of_valkey_errors() {
        for (reply, status) in [
            ("ERR unknown topic", StatusCode::BAD_REQUEST),
            ("WRONGTYPE wrong kind of value", StatusCode::BAD_REQUEST),
            ("OOM command not allowed", StatusCode::SERVICE_UNAVAILABLE),
            ("LOADING loading", StatusCode::SERVICE_UNAVAILABLE),
            ("BUSY script", StatusCode::SERVICE_UNAVAILABLE),
            ("MASTERDOWN link down", StatusCode::SERVICE_UNAVAILABLE),
            ("TRYAGAIN multiple keys", StatusCode::SERVICE_UNAVAILABLE),
            ("CLUSTERDOWN down", StatusCode::SERVICE_UNAVAILABLE),
            ("READONLY replica", StatusCode::SERVICE_UNAVAILABLE),
            ("NOPERM no permissions", StatusCode::BAD_GATEWAY),
            ("NOAUTH authentication required", StatusCode::BAD_GATEWAY),
            ("WRONGPASS invalid password", StatusCode::BAD_GATEWAY),
            ("NOSCRIPT no script", StatusCode::BAD_GATEWAY),
            ("MOVED 3999 127.0.0.1:6381", StatusCode::BAD_GATEWAY),
            ("CROSSSLOT keys", StatusCode::BAD_GATEWAY),
        ] {
            assert_eq!(status_of(&server_error(reply)), status, "{reply}");
        }
        let lost = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(status_of(&lost), StatusCode::BAD_GATEWAY);
    }
}
