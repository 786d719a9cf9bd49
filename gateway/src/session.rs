//! One WebSocket: first the backlog (or everything after the client's last id), then live items
//! from its outbox, coalesced into one frame per wake-up. Ids only increase on a socket: an item
//! at or below the last id sent was already sent by a read and is skipped.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use redis::RedisResult;

use crate::entry::{error_frame, frame, Item, Mode};
use crate::hub::{Registration, Work, MAX_FRAME_ENTRIES};
use crate::ids::{EntryId, Slug, UserId};
use crate::metrics;
use crate::valkey::Valkey;

const PING_EVERY: Duration = Duration::from_secs(20);

/// The feed a socket follows.
pub enum Feed {
    User(UserId),
    Topic(Slug),
}

impl Feed {
    async fn newest(&self, valkey: &Valkey, count: usize) -> RedisResult<Vec<Item>> {
        match self {
            Feed::User(u) => valkey.feed_newest(u, count, None).await,
            Feed::Topic(t) => valkey.topic_newest(t, count, None).await,
        }
    }

    async fn after(&self, valkey: &Valkey, after: EntryId) -> RedisResult<(Vec<Item>, bool)> {
        match self {
            Feed::User(u) => valkey.feed_after(u, after).await,
            Feed::Topic(t) => valkey.topic_after(t, after).await,
        }
    }

    fn gauge(&self) -> &'static metrics::Gauge {
        match self {
            Feed::User(_) => &metrics::USER_SOCKETS,
            Feed::Topic(_) => &metrics::TOPIC_SOCKETS,
        }
    }
}

pub struct Session {
    pub socket: WebSocket,
    pub valkey: Valkey,
    pub feed: Feed,
    pub registration: Registration,
    pub backlog: usize,
    pub write_timeout: Duration,
}

struct Open<'a>(&'a metrics::Gauge);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.add(-1);
    }
}

/// The sending half of a socket, with the write timeout.
struct Writer {
    sink: SplitSink<WebSocket, Message>,
    timeout: Duration,
}

impl Session {
    /// Runs until the browser leaves, a write times out, or Valkey fails a read. Reading the
    /// browser's side runs in a task of its own, so a wake-up for new items polls only the outbox.
    pub async fn run(self, after: Option<EntryId>) {
        let gauge = self.feed.gauge();
        gauge.add(1);
        let _open = Open(gauge);
        metrics::SOCKETS_OPENED.inc();
        let Session { socket, valkey, feed, registration, backlog, write_timeout } = self;
        let (sink, mut stream) = socket.split();
        let mut w = Writer { sink, timeout: write_timeout };
        let (closed_tx, mut closed) = tokio::sync::oneshot::channel::<()>();
        let reader = tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                if matches!(msg, Message::Close(_)) {
                    break;
                }
            }
            let _ = closed_tx.send(());
        });
        run_feed(&mut w, &valkey, &feed, &registration, backlog, after, &mut closed).await;
        reader.abort();
        let _ = w.sink.close().await;
    }
}

async fn run_feed(
    w: &mut Writer,
    valkey: &Valkey,
    feed: &Feed,
    registration: &Registration,
    backlog: usize,
    after: Option<EntryId>,
    closed: &mut tokio::sync::oneshot::Receiver<()>,
) {
    {
        let mut last = EntryId::ZERO;
        let first = match after {
            Some(a) => {
                last = a;
                feed.after(valkey, a).await.map(|(items, truncated)| (Mode::Resume, items, truncated))
            }
            None => feed.newest(valkey, backlog).await.map(|mut items| {
                items.reverse();
                (Mode::Backlog, items, false)
            }),
        };
        match first {
            Ok((mode, items, truncated)) => {
                if !w.send(mode, truncated, &items, &mut last).await {
                    return;
                }
            }
            Err(e) => {
                w.write(Message::Text(error_frame(&format!("cannot read the feed: {e}")).into())).await;
                return;
            }
        }
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
            tokio::select! {
                work = registration.outbox.next() => {
                    let ok = match work {
                        Work::Send(items) => {
                            let queued = items.len();
                            let fresh: Vec<Item> = items.into_iter().filter(|i| i.id > last).collect();
                            metrics::ENTRIES_SKIPPED_DUPLICATE.inc_by((queued - fresh.len()) as u64);
                            w.send(Mode::Live, false, &fresh, &mut last).await
                        }
                        Work::Resync => match feed.after(valkey, last).await {
                            Ok((items, truncated)) => w.send(Mode::Resync, truncated, &items, &mut last).await,
                            Err(e) => {
                                w.write(Message::Text(error_frame(&format!("cannot read the feed: {e}")).into())).await;
                                false
                            }
                        },
                    };
                    if !ok {
                        return;
                    }
                }
                _ = &mut *closed => return,
                _ = ping.tick() => {
                    if !w.write(Message::Ping(Default::default())).await {
                        return;
                    }
                }
            }
        }
    }
}

impl Writer {
    /// Sends items in frames of at most MAX_FRAME_ENTRIES (a backlog or resume is sent even when
    /// empty, so the client knows it is live); false when the socket is gone.
    async fn send(&mut self, mode: Mode, truncated: bool, items: &[Item], last: &mut EntryId) -> bool {
        if items.is_empty() {
            return !(matches!(mode, Mode::Backlog | Mode::Resume) || truncated) || self.send_frame(mode, truncated, items, last).await;
        }
        for (i, chunk) in items.chunks(MAX_FRAME_ENTRIES).enumerate() {
            if !self.send_frame(mode, truncated && i == 0, chunk, last).await {
                return false;
            }
        }
        true
    }

    async fn send_frame(&mut self, mode: Mode, truncated: bool, items: &[Item], last: &mut EntryId) -> bool {
        let text = frame(mode, truncated, items);
        if !self.write(Message::Text(text.into())).await {
            return false;
        }
        metrics::FRAMES_SENT.inc();
        let n = items.len() as u64;
        match mode {
            Mode::Backlog => metrics::ENTRIES_SENT_BACKLOG.inc_by(n),
            Mode::Resume => metrics::ENTRIES_SENT_RESUME.inc_by(n),
            Mode::Resync => metrics::ENTRIES_SENT_RESYNC.inc_by(n),
            Mode::Live => {
                metrics::ENTRIES_SENT_LIVE.inc_by(n);
                let now = metrics::now_ms();
                for i in items {
                    if let Some(t) = i.body.ingest_ms {
                        metrics::DELIVERY_LATENCY.record(now.saturating_sub(t));
                    }
                }
            }
        }
        if let Some(newest) = items.last() {
            *last = (*last).max(newest.id);
        }
        true
    }

    async fn write(&mut self, msg: Message) -> bool {
        match tokio::time::timeout(self.timeout, self.sink.send(msg)).await {
            Ok(Ok(())) => true,
            Ok(Err(_)) => false,
            Err(_) => {
                metrics::SOCKETS_TIMED_OUT.inc();
                false
            }
        }
    }
}
