//! One WebSocket client: a reader that routes bus messages and answers the
//! client's requests, and a writer that owns the socket.
//!
//! The reader never waits on the socket: it hands messages to the writer
//! through a queue of `server.ws_queue`, and when that queue is full (the
//! client reads too slowly) it sends `system.lagged` past the queue, on a
//! one-shot line the writer watches even while a write is stuck, and the
//! client is closed.

use super::metrics::Follow;
use crate::live::events::{ErrorData, LaggedData, SubscribedData};
use crate::live::{Channel, Listening, Live, Message, MetricsSelection, Payload};
use crate::state::AppState;
use crate::store::Store;
use crate::telemetry::Telemetry;
use axum::extract::ws::{CloseFrame, Message as Frame, WebSocket, close_code};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

/// How long the last words (`system.lagged`, a close frame) may take.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);

/// A client request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    /// `subscribe` or `unsubscribe`.
    action: Action,
    /// Channels to add or remove.
    #[serde(default)]
    channels: Vec<Channel>,
    /// The series the `metrics` channel follows (`subscribe` only).
    metrics: Option<MetricsSelection>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Action {
    Subscribe,
    Unsubscribe,
}

/// What the writer sends.
enum Out {
    /// A message of `channel`.
    Text(Channel, String),
    /// A keep-alive ping.
    Ping,
}

/// Why the reader ends the session: the writer's last words.
enum Goodbye {
    /// The queue overflowed: `system.lagged`, then close.
    Lagged(String),
    /// Close with this code and reason.
    Close(u16, &'static str),
}

/// Everything one client needs, taken from the app before the upgrade.
pub(super) struct Session {
    live: Live,
    store: Arc<Store>,
    telemetry: Arc<Telemetry>,
    queue: usize,
    ping_interval: Duration,
    idle_timeout: Duration,
    metrics_interval: Duration,
}

impl Session {
    pub(super) fn new(app: &AppState) -> Session {
        let server = &app.config.server;
        Session {
            live: app.events.live().clone(),
            store: app.store.clone(),
            telemetry: app.telemetry.clone(),
            queue: server.ws_queue,
            ping_interval: server.ws_ping_interval,
            idle_timeout: server.ws_idle_timeout,
            metrics_interval: server.ws_metrics_interval,
        }
    }

    /// Serves the client until it leaves, lags, goes quiet or the host stops.
    pub(super) async fn run(self, socket: WebSocket) {
        self.telemetry.ws_clients.inc();
        let (sink, stream) = socket.split();
        let (queue, rx) = mpsc::channel(self.queue.max(1));
        let (goodbye, last_words) = oneshot::channel();
        let writer = tokio::spawn(write(
            sink,
            rx,
            last_words,
            self.idle_timeout,
            self.telemetry.clone(),
        ));
        let reader = Reader {
            bus: self.live.subscribe(),
            listening: self.live.listen(),
            follow: None,
            queue,
            session: &self,
        };
        let reason = reader.run(stream).await;
        if let Some(reason) = reason {
            let _ = goodbye.send(reason);
        } else {
            drop(goodbye);
        }
        let _ = writer.await;
        self.telemetry.ws_clients.dec();
    }
}

struct Reader<'a> {
    bus: broadcast::Receiver<Arc<Message>>,
    listening: Listening,
    follow: Option<Follow>,
    queue: mpsc::Sender<Out>,
    session: &'a Session,
}

/// Whether the session goes on after a step.
type Step = Result<(), Option<Goodbye>>;

impl Reader<'_> {
    /// Returns the writer's last words, if any.
    async fn run(
        mut self,
        mut stream: futures_util::stream::SplitStream<WebSocket>,
    ) -> Option<Goodbye> {
        let s = self.session;
        let mut ping = tokio::time::interval_at(Instant::now() + s.ping_interval, s.ping_interval);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut tick = tokio::time::interval(s.metrics_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut heard = Instant::now();
        let live = s.live.clone();
        loop {
            let step = tokio::select! {
                () = live.closed() => Err(Some(Goodbye::Close(close_code::AWAY, "the host is shutting down"))),
                frame = stream.next() => match frame {
                    Some(Ok(frame)) => {
                        heard = Instant::now();
                        self.on_frame(frame)
                    }
                    // Gone, or a protocol error (too large, bad frame).
                    Some(Err(_)) | None => Err(None),
                },
                message = self.bus.recv() => match message {
                    Ok(message) if self.listening.has(message.channel()) => {
                        let text = message.json().to_string();
                        self.push(Out::Text(message.channel(), text))
                    }
                    Ok(_) => Ok(()),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        Err(Some(self.lagged(format!("{missed} messages were missed"))))
                    }
                    Err(broadcast::error::RecvError::Closed) => Err(None),
                },
                _ = ping.tick() => {
                    if heard.elapsed() >= s.idle_timeout {
                        Err(Some(Goodbye::Close(close_code::AWAY, "idle: no pong within server.ws_idle_timeout")))
                    } else {
                        self.push(Out::Ping)
                    }
                }
                _ = tick.tick(), if self.follow.is_some() => self.metrics(false),
                () = self.queue.closed() => Err(None),
            };
            if let Err(goodbye) = step {
                return goodbye;
            }
        }
    }

    fn on_frame(&mut self, frame: Frame) -> Step {
        match frame {
            Frame::Text(text) => self.on_request(text.as_str()),
            Frame::Binary(_) => {
                self.reply_error("binary messages are not understood; send JSON text")
            }
            Frame::Close(_) => Err(None),
            Frame::Ping(_) | Frame::Pong(_) => Ok(()),
        }
    }

    fn on_request(&mut self, text: &str) -> Step {
        let request: Request = match serde_json::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                return self.reply_error(&format!(
                    "invalid request: {e}; expected {{\"action\": \"subscribe\"|\"unsubscribe\", \"channels\": [...], \"metrics\": {{\"name\": ..., \"labels\": {{...}}}}}}"
                ));
            }
        };
        let mut snapshot = false;
        match request.action {
            Action::Subscribe => {
                let wants_metrics = request.channels.contains(&Channel::Metrics);
                match request.metrics {
                    Some(selection) if selection.name.is_empty() => {
                        return self.reply_error(
                            "metrics.name: give at least one metric name or prefix ending in `*`",
                        );
                    }
                    Some(selection) => {
                        self.follow = Some(Follow::new(selection));
                        self.listening.set(Channel::Metrics, true);
                        snapshot = true;
                    }
                    None if wants_metrics && self.follow.is_none() => {
                        return self.reply_error("the metrics channel needs a selection: \"metrics\": {\"name\": \"wasmon_cpu_*\", \"labels\": {}}");
                    }
                    None => {}
                }
                for channel in request.channels {
                    self.listening.set(channel, true);
                }
            }
            Action::Unsubscribe => {
                if request.metrics.is_some() {
                    return self.reply_error("`metrics` goes with subscribe only");
                }
                for channel in request.channels {
                    self.listening.set(channel, false);
                    if channel == Channel::Metrics {
                        self.follow = None;
                    }
                }
            }
        }
        self.reply(Payload::SystemSubscribed(SubscribedData {
            channels: self.listening.channels(),
            metrics: self.follow.as_ref().map(|f| f.selection().clone()),
        }))?;
        if snapshot {
            self.metrics(true)?;
        }
        Ok(())
    }

    /// Sends the selection's changes (or all of it, for a `snapshot`).
    fn metrics(&mut self, snapshot: bool) -> Step {
        let Some(follow) = self.follow.as_mut() else {
            return Ok(());
        };
        let data = follow.update(&self.session.store, snapshot);
        if !snapshot && data.series.is_empty() && data.removed.is_empty() {
            return Ok(());
        }
        let payload = if snapshot {
            Payload::MetricsSnapshot(data)
        } else {
            Payload::MetricsUpdate(data)
        };
        self.reply(payload)
    }

    fn reply_error(&mut self, detail: &str) -> Step {
        self.reply(Payload::SystemError(ErrorData {
            detail: detail.to_string(),
        }))
    }

    fn reply(&mut self, payload: Payload) -> Step {
        let message = Message::new(payload);
        let text = message.json().to_string();
        self.push(Out::Text(message.channel(), text))
    }

    /// Queues a message for the writer; a full queue ends the session.
    fn push(&mut self, out: Out) -> Step {
        match self.queue.try_send(out) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(Some(
                self.lagged(format!("{} messages were waiting", self.session.queue)),
            )),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(None),
        }
    }

    fn lagged(&self, what: String) -> Goodbye {
        self.session.telemetry.ws_lagged.inc();
        let queue = self.session.queue;
        tracing::info!(queue, what, "WebSocket client too slow: disconnected");
        let message = Message::new(Payload::SystemLagged(LaggedData {
            detail: format!(
                "the client read too slowly ({what}; server.ws_queue is {queue}); disconnecting"
            ),
            queue,
        }));
        Goodbye::Lagged(message.json().to_string())
    }
}

/// The writer: sends what the reader queues, each message within
/// `timeout`, until the queue closes, a send fails or times out, or the
/// reader says its last words (which interrupt a stuck send).
async fn write(
    mut sink: futures_util::stream::SplitSink<WebSocket, Frame>,
    mut queue: mpsc::Receiver<Out>,
    mut last_words: oneshot::Receiver<Goodbye>,
    timeout: Duration,
    telemetry: Arc<Telemetry>,
) {
    loop {
        let next = tokio::select! {
            biased;
            goodbye = &mut last_words => {
                if let Ok(goodbye) = goodbye {
                    say_goodbye(&mut sink, goodbye, &telemetry).await;
                }
                return;
            }
            next = queue.recv() => next,
        };
        let Some(out) = next else {
            return;
        };
        let (frame, channel) = match out {
            Out::Text(channel, text) => (Frame::Text(text.into()), Some(channel)),
            Out::Ping => (Frame::Ping(Default::default()), None),
        };
        let sent = tokio::select! {
            biased;
            goodbye = &mut last_words => {
                if let Ok(goodbye) = goodbye {
                    say_goodbye(&mut sink, goodbye, &telemetry).await;
                }
                return;
            }
            sent = tokio::time::timeout(timeout, sink.send(frame)) => sent,
        };
        match sent {
            Ok(Ok(())) => {
                if let Some(channel) = channel {
                    telemetry
                        .ws_messages
                        .with_label_values(&[channel.as_str()])
                        .inc();
                }
            }
            Ok(Err(_)) => return,
            Err(_) => {
                tracing::info!(
                    "WebSocket client took longer than server.ws_idle_timeout to accept a message: closed"
                );
                return;
            }
        }
    }
}

/// The last message and a close frame, if the socket takes them at once.
async fn say_goodbye(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Frame>,
    goodbye: Goodbye,
    telemetry: &Telemetry,
) {
    let (code, reason) = match goodbye {
        Goodbye::Lagged(text) => {
            let sent =
                tokio::time::timeout(GOODBYE_TIMEOUT, sink.send(Frame::Text(text.into()))).await;
            if matches!(sent, Ok(Ok(()))) {
                telemetry
                    .ws_messages
                    .with_label_values(&[Channel::System.as_str()])
                    .inc();
            }
            (close_code::POLICY, "lagged: server.ws_queue overflowed")
        }
        Goodbye::Close(code, reason) => (code, reason),
    };
    let close = Frame::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    let _ = tokio::time::timeout(GOODBYE_TIMEOUT, sink.send(close)).await;
}
