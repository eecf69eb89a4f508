//! `sink-alertmanager`: posts alert changes (`alert.firing`,
//! `alert.resolved`) to Alertmanager's `POST /api/v2/alerts`, and re-sends
//! firing alerts before they expire, as Prometheus does.
//!
//! The firing alerts live in the plugin's key-value state (`alerts`), so they
//! survive hot reloads and restarts of the instance. Every `deliver` (a batch
//! of events, or an empty batch on the manifest's `tick`) re-sends all of
//! them once `resend_interval` has passed. Answers follow the SDK's retry
//! rules ([`wasmon_sdk::sink`]): 429/5xx/network errors retry the batch, other
//! 4xx dead-letter it.
//!
//! # Layout
//!
//! - [`config`]: the `[config]` table and its validation.
//! - [`alerts`]: events as Alertmanager alerts and the book of firing ones,
//!   pure and unit-tested natively.

pub mod alerts;
pub mod config;

use alerts::Book;
use wasmon_sdk::http::{self, Method, Request};
use wasmon_sdk::{DeliveryError, Error, Event, Sink};

/// The state key holding the [`Book`].
const STATE_KEY: &str = "alerts";

/// The plugin: its settings and the book of firing alerts.
pub struct Alertmanager {
    settings: config::Settings,
    book: Book,
}

impl Sink for Alertmanager {
    fn init() -> Result<Self, Error> {
        let settings = wasmon_sdk::config::get::<config::Config>()?
            .validate()
            .map_err(|e| Error::new(format!("invalid [config]: {e}")))?;
        let book: Book = wasmon_sdk::state::get_json(STATE_KEY).unwrap_or_default();
        wasmon_sdk::info!(
            "posting alerts to {} ({} firing remembered)",
            settings.endpoint,
            book.firing.len()
        );
        Ok(Alertmanager { settings, book })
    }

    fn deliver(&mut self, batch: Vec<Event>) -> Result<(), DeliveryError> {
        let plan = alerts::plan(&self.book, &batch, &self.settings, wasmon_sdk::now_ms());
        if plan.alerts.is_empty() {
            self.commit(plan.book);
            return Ok(());
        }
        let body = serde_json::to_vec(&plan.alerts)
            .map_err(|e| DeliveryError::Permanent(format!("cannot encode the alerts: {e}")))?;
        let settings = &self.settings;
        let timeout_ms = u32::try_from(settings.timeout.as_millis()).unwrap_or(u32::MAX);
        let mut request = Request::new(Method::Post, settings.endpoint.as_str())
            .with_header("content-type", "application/json")
            .with_timeout_ms(timeout_ms)
            .with_body(body);
        for (name, value) in &settings.headers {
            request = request.with_header(name.as_str(), value.as_str());
        }
        match wasmon_sdk::sink::outcome(&settings.endpoint, http::send(&request)) {
            Ok(()) => {
                self.commit(plan.book);
                Ok(())
            }
            Err(DeliveryError::Permanent(message)) => {
                wasmon_sdk::error!(
                    "Alertmanager refused {} alerts, the host dead-letters the batch: {message}",
                    plan.alerts.len()
                );
                let book = alerts::after_refusal(&self.book, &plan.book);
                self.commit(book);
                Err(DeliveryError::Permanent(message))
            }
            // Retried with the same batch: the book stays as it was.
            Err(retryable) => Err(retryable),
        }
    }
}

impl Alertmanager {
    /// Keeps `book` in memory and, when it changed, in the state.
    fn commit(&mut self, book: Book) {
        if book == self.book {
            return;
        }
        if let Err(e) = wasmon_sdk::state::set_json(STATE_KEY, &book) {
            // Still held in memory; only a restart of the instance forgets.
            wasmon_sdk::warn!("cannot keep the firing alerts in the state: {}", e.message);
        }
        self.book = book;
    }
}

wasmon_sdk::export_sink!(Alertmanager);
