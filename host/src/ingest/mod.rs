//! HTTP ingestion, compatible with the seeds: heartbeats and events (seed
//! 000), job events singly and in batches (seed 002's sidecar), the service
//! table and the heartbeat watcher.
//!
//! ```text
//!   POST /heartbeat ─► payload::heartbeat ─► Services (up, last seen, phase)
//!   POST /events, /v1/event, /v1/events/batch ─► payload ─► Services (counters)
//!                                                        └► EventLog ─► rules, sinks, GET /api/events
//!   watcher (every heartbeat.check_interval) ─► Services::expire ─► service.down / service.up events
//!                                            └► Services::evict (silent for ingest.service_ttl, not up)
//! ```
//!
//! [`Ingest`] owns the service table and hands every event to the shared
//! [`EventLog`], where rule plugins read what arrived since their last
//! evaluation and sink plugins read from their own cursor. A batch is
//! validated whole before anything is recorded, so a rejected batch leaves no
//! trace. [`Ingest::record`] resolves only once its events are durable
//! (`storage.durability`), so a `2xx` means the event survives a crash;
//! service transitions (`service.down`/`up`) are appended without waiting.
//! Heartbeats update the service table only: they are state, not events
//! (a heartbeat every few seconds per service would fill the log with
//! nothing a sink needs; the transitions they cause are logged).
//!
//! An event carrying an `idempotency_key` (seed 002) already recorded within
//! `ingest.idempotency_window` is not recorded again: the receipt gives the
//! original id and marks it a duplicate. The keys live with the log (stored
//! in its records, rebuilt at recovery), so this holds across restarts.
//! This module knows nothing of HTTP: `export::ingest` maps
//! [`RecordError`] to statuses.

pub mod message;
pub mod payload;
pub mod services;
mod watcher;

pub use payload::{Heartbeat, IngestError, Limits, Parsed, TaskOutcome};
pub use services::{Service, Services, Transition};
pub use watcher::spawn_watcher;

use crate::config::{HeartbeatConfig, IngestConfig};
use crate::events::{AppendError, EventLog};
use crate::model::{Event, ServiceState, Severity};
use crate::telemetry::Telemetry;
use parking_lot::{Mutex, MutexGuard};
use std::sync::Arc;
use std::time::Duration;

/// The ingestion state: the service table, and where events go.
pub struct Ingest {
    services: Mutex<Services>,
    events: Arc<EventLog>,
    telemetry: Arc<Telemetry>,
    limits: Limits,
    heartbeat_timeout: Duration,
}

/// What a recorded event or batch got.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// The id of each event, in order (a duplicate's is the original's).
    pub ids: Vec<String>,
    /// Whether each event was a duplicate of an `idempotency_key` already
    /// recorded (and so not recorded again).
    pub duplicates: Vec<bool>,
    /// Unix milliseconds the events were recorded at.
    pub time_ms: u64,
}

/// Why events were not recorded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RecordError {
    /// The payload was refused (400, 413, 422, 429).
    #[error(transparent)]
    Refused(#[from] IngestError),
    /// The event log could not take them (503).
    #[error(transparent)]
    Log(#[from] AppendError),
}

impl Ingest {
    /// Ingestion per `config`, recording events in `events`.
    pub fn new(
        config: &IngestConfig,
        heartbeat: &HeartbeatConfig,
        events: Arc<EventLog>,
        telemetry: Arc<Telemetry>,
    ) -> Ingest {
        Ingest {
            services: Mutex::new(Services::new(
                config.max_services,
                config.max_label_values,
                u64::try_from(config.service_ttl.as_millis()).unwrap_or(u64::MAX),
                heartbeat.enabled,
            )),
            events,
            telemetry,
            limits: Limits {
                max_depth: config.max_json_depth,
                max_batch: config.max_batch,
                max_detail_bytes: config.max_detail_bytes.as_usize(),
                max_event_bytes: config.max_event_bytes.as_usize(),
            },
            heartbeat_timeout: heartbeat.timeout,
        }
    }

    /// What one payload may contain.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Records a heartbeat: the service is up as of now. When it brings a
    /// service back up, resolves once the `service.up` event is durable, so
    /// a client that reads `/api/events` after the 2xx sees it (transitions
    /// are rare; a heartbeat without one does not wait).
    pub async fn heartbeat(&self, heartbeat: Heartbeat) -> Result<(), IngestError> {
        let now_ms = crate::time::now_ms();
        let transition = {
            let mut services = self.services.lock();
            self.admit(&mut services, [heartbeat.service.as_str()], now_ms)?;
            let transition = services.heartbeat(&heartbeat.service, heartbeat.phase, now_ms);
            self.telemetry.ingest_services.set(gauge(services.len()));
            transition
        };
        self.telemetry
            .ingest_accepted
            .with_label_values(&["heartbeat"])
            .inc();
        if let Some(transition) = transition {
            let events = self.transition_events(vec![transition], now_ms);
            if let Err(error) = self.events.append_durable(events).await {
                tracing::error!(service = %heartbeat.service, %error, "the service's transition event could not be recorded");
            }
        }
        Ok(())
    }

    /// Records parsed events, all or none, and resolves once they are
    /// durable: the service cap is checked for the whole batch before
    /// anything is counted or logged. Events whose `idempotency_key` was
    /// recorded within the window are not recorded again.
    pub async fn record(&self, parsed: Vec<Parsed>) -> Result<Receipt, RecordError> {
        let now_ms = crate::time::now_ms();
        let mut ids = Vec::with_capacity(parsed.len());
        let mut duplicates = Vec::with_capacity(parsed.len());
        let mut claimed = Vec::new();
        let mut fresh = Vec::with_capacity(parsed.len());
        {
            let mut services = self.services.lock();
            let names = parsed.iter().filter_map(|p| p.event.service.as_deref());
            self.admit(&mut services, names, now_ms)?;
            let overflowed = services.overflowed;
            for mut p in parsed {
                let key = idempotency_key(&p.event);
                if let Some(key) = &key {
                    if let Some(original) = self.events.claim_key(key, &p.event.id, now_ms) {
                        ids.push(original);
                        duplicates.push(true);
                        continue;
                    }
                    claimed.push((key.clone(), p.event.id.clone()));
                }
                if let Some(service) = &p.event.service {
                    services.count_event(
                        service,
                        &p.event.event_type,
                        p.event.component.as_deref(),
                        p.outcome,
                        now_ms,
                    );
                }
                p.event.time_ms = now_ms;
                ids.push(p.event.id.clone());
                duplicates.push(false);
                fresh.push((p.event, key));
            }
            self.telemetry
                .ingest_label_overflow
                .inc_by(services.overflowed - overflowed);
            self.telemetry.ingest_services.set(gauge(services.len()));
        }
        let accepted = fresh.len() as u64;
        if let Err(error) = self.events.append_durable_keyed(fresh).await {
            for (key, id) in claimed {
                self.events.release_key(&key, &id);
            }
            return Err(error.into());
        }
        self.telemetry
            .ingest_accepted
            .with_label_values(&["event"])
            .inc_by(accepted);
        Ok(Receipt {
            ids,
            duplicates,
            time_ms: now_ms,
        })
    }

    /// Checks that `names` fit in the service table, evicting expired
    /// services first when they do not.
    fn admit<'a>(
        &self,
        services: &mut Services,
        names: impl IntoIterator<Item = &'a str> + Clone,
        now_ms: u64,
    ) -> Result<(), IngestError> {
        if services.admit(names.clone()).is_err() {
            let evicted = services.evict(now_ms);
            self.evicted(evicted, services.len());
        }
        services.admit(names).map_err(IngestError::TooManyServices)
    }

    /// Evicts services silent for `ingest.service_ttl` (see
    /// [`Services::evict`]); the watcher calls this every check interval.
    /// Returns how many were evicted.
    pub fn evict(&self, now_ms: u64) -> usize {
        let mut services = self.services.lock();
        let evicted = services.evict(now_ms);
        let n = evicted.len();
        self.evicted(evicted, services.len());
        n
    }

    /// Counts and logs evicted services.
    fn evicted(&self, evicted: Vec<String>, left: usize) {
        if evicted.is_empty() {
            return;
        }
        for service in &evicted {
            tracing::debug!(%service, "service evicted");
        }
        tracing::info!(
            evicted = evicted.len(),
            services = left,
            "services silent for ingest.service_ttl evicted"
        );
        self.telemetry
            .ingest_services_evicted
            .inc_by(evicted.len() as u64);
        self.telemetry.ingest_services.set(gauge(left));
    }

    /// Marks services silent for longer than the heartbeat timeout down; the
    /// watcher calls this every check interval. Returns how many went down.
    pub fn expire(&self, now_ms: u64) -> usize {
        let timeout_ms = u64::try_from(self.heartbeat_timeout.as_millis()).unwrap_or(u64::MAX);
        let transitions = self.services.lock().expire(now_ms, timeout_ms);
        let n = transitions.len();
        if n > 0 {
            self.events
                .append_all(self.transition_events(transitions, now_ms));
        }
        n
    }

    /// Logs and counts transitions; their `service.down` / `service.up`
    /// events, for the event log.
    fn transition_events(&self, transitions: Vec<Transition>, now_ms: u64) -> Vec<Event> {
        let timeout = self.heartbeat_timeout;
        let events = transitions.into_iter().map(|t| {
            let (event_type, service, severity, detail) = match t {
                Transition::Down {
                    service,
                    last_seen_ms,
                } => {
                    let silent = Duration::from_millis(now_ms.saturating_sub(last_seen_ms));
                    tracing::warn!(%service, silent_s = silent.as_secs(), "heartbeat timed out: service down");
                    (
                        "service.down",
                        service,
                        Severity::Critical,
                        format!(
                            "no heartbeat for {} s (timeout {} s)",
                            silent.as_secs(),
                            timeout.as_secs_f64()
                        ),
                    )
                }
                Transition::Up {
                    service,
                    down_since_ms,
                } => {
                    let down = Duration::from_millis(now_ms.saturating_sub(down_since_ms));
                    tracing::info!(%service, down_s = down.as_secs(), "heartbeat resumed: service up");
                    (
                        "service.up",
                        service,
                        Severity::Ok,
                        format!("heartbeat resumed after {} s down", down.as_secs()),
                    )
                }
            };
            self.telemetry
                .heartbeat_transitions
                .with_label_values(&[event_type.trim_start_matches("service.")])
                .inc();
            let mut event = Event::new(event_type, "heartbeat");
            event.time_ms = now_ms;
            event.service = Some(service);
            event.severity = severity;
            event.detail = Some(detail);
            self.events.live().service(&event);
            event
        });
        events.collect()
    }

    /// The services with heartbeats, for rule inputs.
    pub fn service_states(&self) -> Vec<ServiceState> {
        self.services
            .lock()
            .iter()
            .filter_map(|(name, s)| {
                Some(ServiceState {
                    name: name.to_string(),
                    up: s.up?,
                    last_seen_ms: s.last_seen_ms?,
                    phase: s.phase.clone(),
                    down_since_ms: s.down_since_ms,
                })
            })
            .collect()
    }

    /// The service table, locked: for `GET /api/services` and `/metrics`.
    /// Heartbeats wait while it is held, so hold it briefly.
    pub fn services(&self) -> MutexGuard<'_, Services> {
        self.services.lock()
    }

    /// The service table's lock itself, for a reader that takes it only for
    /// part of its work (the `/metrics` render).
    pub fn services_lock(&self) -> &Mutex<Services> {
        &self.services
    }

    /// Forgets a service (its series leave `/metrics`); whether it was known.
    pub fn forget(&self, name: &str) -> bool {
        let mut services = self.services.lock();
        let removed = services.remove(name);
        self.telemetry.ingest_services.set(gauge(services.len()));
        removed
    }
}

/// The attribute ingest deduplicates on.
const IDEMPOTENCY_KEY: &str = "idempotency_key";

/// A seed 002 event's `idempotency_key`, if it has a non-empty one.
fn idempotency_key(event: &Event) -> Option<String> {
    event
        .attributes
        .top_level_str(IDEMPOTENCY_KEY)
        .filter(|k| !k.is_empty())
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
