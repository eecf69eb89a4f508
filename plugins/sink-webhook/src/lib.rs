//! `sink-webhook`: POSTs each batch of events (alert changes, service
//! transitions, ingested events) as one JSON envelope to a configured URL.
//!
//! A 2xx answer delivers the batch. 408, 429, 5xx, timeouts and transport
//! errors return `retryable`, so the host retries the same batch with backoff
//! and nothing is lost while the receiver is down; other statuses return
//! `permanent` and the host dead-letters the batch (see [`wasmon_sdk::sink::outcome`]).
//!
//! # Layout
//!
//! - [`config`]: the `[config]` table and its validation.
//! - [`payload`]: the envelope and the meaning of the receiver's answer, pure
//!   and unit-tested natively with `cargo test --target x86_64-unknown-linux-gnu`.

pub mod config;
pub mod payload;

use wasmon_sdk::http::{self, Method, Request};
use wasmon_sdk::{DeliveryError, Error, Event, Sink};

/// The `User-Agent` of every delivery unless the config sets its own.
const USER_AGENT: &str = concat!("wasmon-webhook/", env!("CARGO_PKG_VERSION"));

/// The plugin: the validated config and its own name, the envelope's `receiver`.
pub struct Webhook {
    config: config::Webhook,
    receiver: String,
}

impl Sink for Webhook {
    fn init() -> Result<Self, Error> {
        let config = wasmon_sdk::config::get::<config::Config>()?
            .validate()
            .map_err(|e| Error::new(format!("invalid [config]: {e}")))?;
        wasmon_sdk::info!(
            "delivering {} to {}",
            if config.events.is_empty() {
                "all events".to_string()
            } else {
                config.events.join(", ")
            },
            config.url
        );
        Ok(Webhook {
            config,
            receiver: wasmon_sdk::config::plugin_name(),
        })
    }

    fn deliver(&mut self, batch: Vec<Event>) -> Result<(), DeliveryError> {
        let config = &self.config;
        let body = payload::body(&batch, &config.events, &config.source, &self.receiver)
            .map_err(|e| DeliveryError::Permanent(format!("cannot encode the batch: {e}")))?;
        let Some(body) = body else {
            // The filter left nothing to send: delivered.
            return Ok(());
        };
        let timeout_ms = u32::try_from(config.timeout.as_millis()).unwrap_or(u32::MAX);
        let mut request = Request::new(Method::Post, config.url.as_str())
            .with_header("content-type", "application/json")
            .with_timeout_ms(timeout_ms)
            .with_body(body);
        if !config
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("user-agent"))
        {
            request = request.with_header("user-agent", USER_AGENT);
        }
        for (name, value) in &config.headers {
            request = request.with_header(name.as_str(), value.as_str());
        }
        let result = wasmon_sdk::sink::outcome(&config.url, http::send(&request));
        if let Err(DeliveryError::Permanent(message)) = &result {
            wasmon_sdk::error!(
                "batch of {} events not deliverable, the host dead-letters it: {message}",
                batch.len()
            );
        }
        result
    }
}

wasmon_sdk::export_sink!(Webhook);
