//! `sink-elasticsearch`: indexes each batch of events with one `_bulk`
//! request (NDJSON `index` actions, `_id` = the event's id, so redelivery
//! overwrites instead of duplicating) into an index named from the event's
//! time (`events-%Y.%m.%d` by default, UTC).
//!
//! The whole request follows the SDK's retry rules ([`wasmon_sdk::sink`]):
//! 429/5xx/network errors retry the batch, other 4xx (a bad request, 401)
//! dead-letter it. A 2xx answer with `"errors": true` is read item by item
//! ([`bulk::record`]): the batch's progress (ids indexed, ids refused) is kept
//! in the plugin's state under `bulk`, so the host's retry of the same batch
//! re-sends only the items that failed with 429/5xx; once none is left, a
//! batch with items refused for good (other 4xx, e.g. a mapping error) is
//! dead-lettered, naming them.
//!
//! # Layout
//!
//! - [`config`]: the `[config]` table, auth and the index pattern.
//! - [`bulk`]: the request body and the per-item reading of the answer,
//!   pure and unit-tested natively.

pub mod bulk;
pub mod config;

use bulk::Progress;
use wasmon_sdk::http::{self, Method, Request};
use wasmon_sdk::{DeliveryError, Error, Event, Sink};

/// The state key holding the current batch's [`Progress`].
const STATE_KEY: &str = "bulk";

/// The plugin: its settings.
pub struct Elasticsearch {
    settings: config::Settings,
}

impl Sink for Elasticsearch {
    fn init() -> Result<Self, Error> {
        let settings = wasmon_sdk::config::get::<config::Config>()?
            .validate()
            .map_err(|e| Error::new(format!("invalid [config]: {e}")))?;
        wasmon_sdk::info!("indexing events with {}", settings.bulk_url);
        Ok(Elasticsearch { settings })
    }

    fn deliver(&mut self, batch: Vec<Event>) -> Result<(), DeliveryError> {
        if batch.is_empty() {
            return Ok(());
        }
        let fresh = Progress::new(&batch);
        let mut progress = wasmon_sdk::state::get_json::<Progress>(STATE_KEY)
            .filter(|p| p.batch == fresh.batch)
            .unwrap_or(fresh);
        let sent = progress.pending(&batch);
        if sent.is_empty() {
            return finish(&progress);
        }
        let body = bulk::body(&sent, &self.settings.index)
            .map_err(|e| DeliveryError::Permanent(format!("cannot encode the batch: {e}")))?;
        let settings = &self.settings;
        let timeout_ms = u32::try_from(settings.timeout.as_millis()).unwrap_or(u32::MAX);
        let mut request = Request::new(Method::Post, settings.bulk_url.as_str())
            .with_header("content-type", "application/x-ndjson")
            .with_timeout_ms(timeout_ms)
            .with_body(body);
        if let Some(authorization) = &settings.authorization {
            request = request.with_header("authorization", authorization.as_str());
        }
        for (name, value) in &settings.headers {
            request = request.with_header(name.as_str(), value.as_str());
        }
        let response = match http::send(&request) {
            Ok(response) if response.is_success() => response,
            answer => {
                let result = wasmon_sdk::sink::outcome(&settings.bulk_url, answer);
                if let Err(DeliveryError::Permanent(message)) = &result {
                    wasmon_sdk::state::delete(STATE_KEY);
                    wasmon_sdk::error!(
                        "batch of {} events not deliverable, the host dead-letters it: {message}",
                        batch.len()
                    );
                }
                return result;
            }
        };
        let recorded = bulk::record(&mut progress, &sent, &response.body);
        match recorded {
            Ok(()) => finish(&progress),
            Err(reason) => {
                if let Err(e) = wasmon_sdk::state::set_json(STATE_KEY, &progress) {
                    // The retry then re-sends every item: same ids, no duplicates.
                    wasmon_sdk::warn!("cannot keep the batch's progress: {}", e.message);
                }
                Err(DeliveryError::Retryable(format!(
                    "{}: {reason}",
                    settings.bulk_url
                )))
            }
        }
    }
}

/// Nothing left to send: forget the progress and say how the batch ended.
fn finish(progress: &Progress) -> Result<(), DeliveryError> {
    wasmon_sdk::state::delete(STATE_KEY);
    let verdict = progress.verdict();
    if let Err(DeliveryError::Permanent(message)) = &verdict {
        wasmon_sdk::error!("{message}; the host dead-letters the batch");
    }
    verdict
}

wasmon_sdk::export_sink!(Elasticsearch);
