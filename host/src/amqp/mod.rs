//! The host's AMQP 0-9-1 client (RabbitMQ, through `lapin`): a consumer that
//! survives the broker, a publisher with confirms, and queue depth by passive
//! declare. `[[ingest.amqp]]` ([`ingest`]) is built on it; the plugin
//! capability (`on-message` for collectors, `publish` for sinks) uses the
//! same three pieces.
//!
//! ```text
//!   broker ──deliveries (prefetch)──► consumer::run ──Message──► Handler::handle
//!      ▲                                   │  Ok            → ack
//!      │                                   │  Err(Retry)    → nack + requeue, until max_redeliveries → reject (DLX)
//!      │                                   │  Err(Reject)   → reject without requeue (DLX)
//!      │                                   └─ every depth_interval: passive declare → wasmon_amqp_queue_*{queue}
//!   Publisher::publish ──confirm──► Ok | PublishError::Rejected | PublishError::Connection
//! ```
//!
//! # Using it (the plugin capability's recipe)
//!
//! - **Consume**: build a [`ConsumerSpec`] (a `name` for logs and metrics,
//!   the URL, the queue, `prefetch`, `declare`, `max_redeliveries`) and a
//!   [`Handler`]; [`spawn_consumer`] runs it until the [`Shutdown`] fires. The
//!   handler gets each [`Message`] once per delivery; it returns `Ok(())`
//!   only when the message is fully processed (the ack follows), or a
//!   [`HandlerError`]: `Retry` for a failure that may pass (a plugin's `Err`
//!   or fault), `Reject` for a message that can never succeed (invalid). The
//!   consumer processes one message at a time, in order, so a handler needs
//!   no locking of its own; prefetch bounds what the broker sends ahead.
//!   Acks follow the handler's `Ok`; while more deliveries are waiting they
//!   are coalesced into one `multiple` ack (at most half the prefetch).
//! - **Publish**: one [`Publisher`] per (plugin, broker), created without
//!   connecting; [`Publisher::publish`] connects on first use, reconnects
//!   after a failure (no sooner than its backoff allows, answering
//!   `Connection` meanwhile) and waits for the broker's confirm.
//! - **Depth**: [`spawn_depth_watch`] polls allow-listed queues by passive
//!   declare on a connection of its own.
//!
//! Every link (consumer, publisher, depth watch) exports
//! `wasmon_amqp_connected{name}` and logs one line per transition (connected,
//! lost, or a new reason for failing to connect), never one per retry. URLs
//! are logged through [`redact`], without their password.

mod consumer;
mod depth;
pub mod ingest;
mod metrics;
mod publisher;
mod redelivery;

pub use consumer::{ConsumerSpec, Handler, HandlerError, Message, spawn_consumer};
pub use depth::{DepthSpec, spawn_depth_watch};
pub use metrics::AmqpMetrics;
pub use publisher::{PublishError, Publisher, PublisherSpec};

use crate::shutdown::Shutdown;
use std::time::Duration;

/// How long connecting (TCP, TLS and the AMQP handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The first delay before reconnecting; it doubles up to the spec's maximum.
const BACKOFF_INITIAL: Duration = Duration::from_millis(100);

/// `amqp://user:***@host:port/vhost`: the URL without its password, for logs
/// and errors.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(not a URL)".to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_string(),
    }
}

/// Checks that `url` parses as an AMQP URI; the error never contains the URL.
pub fn check_url(url: &str) -> Result<(), String> {
    url.parse::<lapin::uri::AMQPUri>()
        .map(|_| ())
        .map_err(|e| format!("not an AMQP URL ({}): {e}", redact(url)))
}

/// Capped exponential backoff with jitter (each delay is 50–100% of the step).
#[derive(Debug)]
struct Backoff {
    step: Duration,
    max: Duration,
}

impl Backoff {
    fn new(max: Duration) -> Backoff {
        Backoff {
            step: BACKOFF_INITIAL.min(max),
            max,
        }
    }

    /// The delay before the next attempt.
    fn next_delay(&mut self) -> Duration {
        let delay = self.step.mul_f64(0.5 + fastrand::f64() / 2.0);
        self.step = (self.step * 2).min(self.max);
        delay
    }

    fn reset(&mut self) {
        self.step = BACKOFF_INITIAL.min(self.max);
    }
}

/// A link's connection state: the `wasmon_amqp_connected{name}` gauge and one
/// log line per transition.
struct LinkState {
    name: String,
    server: String,
    metrics: AmqpMetrics,
    connected: bool,
    last_failure: Option<String>,
}

impl LinkState {
    fn new(name: &str, url: &str, metrics: AmqpMetrics) -> LinkState {
        metrics.connected.with_label_values(&[name]).set(0);
        LinkState {
            name: name.to_string(),
            server: redact(url),
            metrics,
            connected: false,
            last_failure: None,
        }
    }

    fn up(&mut self) {
        if !self.connected {
            self.metrics
                .connected
                .with_label_values(&[&self.name])
                .set(1);
            self.connected = true;
            self.last_failure = None;
            tracing::info!(name = %self.name, server = %self.server, "amqp connected");
        }
    }

    fn down(&mut self, reason: &str) {
        if self.connected {
            // The metrics first: whoever reads the log line sees them too.
            self.metrics
                .connected
                .with_label_values(&[&self.name])
                .set(0);
            self.metrics
                .disconnects
                .with_label_values(&[&self.name])
                .inc();
            self.connected = false;
            tracing::warn!(name = %self.name, server = %self.server, %reason, "amqp connection lost; reconnecting");
        } else if self.last_failure.as_deref() != Some(reason) {
            tracing::warn!(name = %self.name, server = %self.server, %reason, "amqp cannot connect; retrying with backoff");
        } else {
            tracing::debug!(name = %self.name, %reason, "amqp still cannot connect");
        }
        self.last_failure = Some(reason.to_string());
    }

    fn closed(&mut self) {
        self.metrics
            .connected
            .with_label_values(&[&self.name])
            .set(0);
        if self.connected {
            tracing::info!(name = %self.name, server = %self.server, "amqp connection closed");
        }
        self.connected = false;
    }
}

/// Connects to `url` within [`CONNECT_TIMEOUT`], naming the connection after
/// `name` on the broker.
async fn connect(url: &str, name: &str) -> Result<lapin::Connection, String> {
    let properties = lapin::ConnectionProperties::default()
        .with_connection_name(format!("wasmon {name}").into());
    match tokio::time::timeout(CONNECT_TIMEOUT, lapin::Connection::connect(url, properties)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => Err(format!("cannot connect: {error}")),
        Err(_) => Err(format!(
            "cannot connect: no answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        )),
    }
}

/// Sleeps `delay`, or returns false when `shutdown` fires first.
async fn pause(delay: Duration, shutdown: &Shutdown) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = shutdown.wait() => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("amqp://guest:s3cret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redact("amqps://u:p@w@h/vh?heartbeat=5"),
            "amqps://u:***@h/vh?heartbeat=5"
        );
        assert_eq!(redact("amqp://localhost/%2f"), "amqp://localhost/%2f");
        assert_eq!(redact("nonsense"), "(not a URL)");
        let error = check_url("http://a:pw@x/").unwrap_err();
        assert!(!error.contains("pw"), "{error}");
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let mut b = Backoff::new(Duration::from_millis(400));
        let delays: Vec<_> = (0..5).map(|_| b.next_delay()).collect();
        assert!(delays[0] <= Duration::from_millis(100));
        assert!(delays[4] >= Duration::from_millis(200) && delays[4] <= Duration::from_millis(400));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
