//! `sink-redis-stream`: appends each event to a Redis stream through the
//! host's `redis` capability (the manifest grants `write = ["XADD"]`):
//!
//! ```text
//! XADD <key> MAXLEN ~ <maxlen> * id <event id> type <event type> time_ms <ms>
//!      source <source> severity <severity> [service <service>] event <JSON>
//! ```
//!
//! `event` is the event in the host's own JSON (see `wasmon_sdk::event_json`);
//! the other fields let consumers filter without parsing it. The entry id is
//! Redis's (`*`); the event's id is the `id` field, for deduplication.
//!
//! Outcomes, per batch (the host retries a failed batch with backoff):
//! `connection` errors and the server's passing states (`LOADING`, `BUSY`,
//! `TRYAGAIN`, `OOM`, `MASTERDOWN`, `READONLY`, `CLUSTERDOWN`,
//! `NOREPLICAS`) are `retryable`; any other server error (`WRONGTYPE`: the
//! key is not a stream) is `permanent`, dead-lettered by the host; so is a
//! command the manifest does not grant (also a capability fault). A retried
//! batch skips the events already appended in the failed attempt.

pub mod config;

use std::collections::HashSet;
use wasmon_sdk::redis::{self, RedisError};
use wasmon_sdk::{DeliveryError, Error, Event, Sink};

/// The plugin: its config and the ids appended in a failed attempt.
pub struct StreamSink {
    config: config::Stream,
    appended: HashSet<String>,
}

impl Sink for StreamSink {
    fn init() -> Result<Self, Error> {
        let config = wasmon_sdk::config::get::<config::Config>()?
            .validate()
            .map_err(|e| Error::new(format!("invalid [config]: {e}")))?;
        wasmon_sdk::info!(
            "appending events to stream {:?} (MAXLEN ~ {})",
            config.key,
            config.maxlen
        );
        Ok(StreamSink {
            config,
            appended: HashSet::new(),
        })
    }

    fn deliver(&mut self, batch: Vec<Event>) -> Result<(), DeliveryError> {
        self.appended
            .retain(|id| batch.iter().any(|event| &event.id == id));
        for event in &batch {
            if !self.config.events.accepts(event) || self.appended.contains(&event.id) {
                continue;
            }
            let key = wasmon_sdk::event_json::fill(&self.config.key, event);
            let args = xadd_args(&key, self.config.maxlen, event).map_err(|e| {
                DeliveryError::Permanent(format!("event {}: cannot encode: {e}", event.id))
            })?;
            match redis::command("XADD", &args) {
                Ok(_) => {
                    self.appended.insert(event.id.clone());
                }
                Err(error) => {
                    let result = outcome(&key, &event.id, error);
                    if let DeliveryError::Permanent(why) = &result {
                        wasmon_sdk::error!(
                            "batch of {} events not deliverable, the host dead-letters it: {why}",
                            batch.len()
                        );
                    }
                    return Err(result);
                }
            }
        }
        self.appended.clear();
        Ok(())
    }
}

/// The arguments of one XADD.
pub fn xadd_args(key: &str, maxlen: u64, event: &Event) -> Result<Vec<Vec<u8>>, String> {
    let json = wasmon_sdk::event_json::to_vec(event).map_err(|e| e.to_string())?;
    let mut args: Vec<Vec<u8>> = vec![key.into()];
    if maxlen > 0 {
        args.extend([b"MAXLEN".to_vec(), b"~".to_vec(), maxlen.to_string().into()]);
    }
    args.push(b"*".to_vec());
    let mut field = |name: &str, value: &[u8]| {
        args.push(name.into());
        args.push(value.to_vec());
    };
    field("id", event.id.as_bytes());
    field("type", event.event_type.as_bytes());
    field("time_ms", event.time_ms.to_string().as_bytes());
    field("source", event.source.as_bytes());
    field("severity", event.severity.as_str().as_bytes());
    if let Some(service) = &event.service {
        field("service", service.as_bytes());
    }
    field("event", &json);
    Ok(args)
}

/// What a failed XADD means for the batch.
pub fn outcome(key: &str, id: &str, error: RedisError) -> DeliveryError {
    /// Error prefixes of states that pass.
    const PASSING: &[&str] = &[
        "LOADING",
        "BUSY",
        "TRYAGAIN",
        "OOM",
        "MASTERDOWN",
        "READONLY",
        "CLUSTERDOWN",
        "NOREPLICAS",
    ];
    let at = format!("XADD of event {id} to {key:?}");
    match error {
        RedisError::Connection(why) => DeliveryError::Retryable(format!("{at}: {why}")),
        RedisError::TooLarge(cap) => DeliveryError::Retryable(format!(
            "{at}: the reply exceeds the manifest's max_reply_bytes ({cap})"
        )),
        RedisError::Server(why) => {
            let code = why.split_whitespace().next().unwrap_or("");
            if PASSING.contains(&code) {
                DeliveryError::Retryable(format!("{at}: {why}"))
            } else {
                DeliveryError::Permanent(format!("{at}: {why}"))
            }
        }
        RedisError::NotGranted(why) | RedisError::ForbiddenCommand(why) => {
            DeliveryError::Permanent(format!(
                "{at}: {why} (grant it: [capabilities.redis] write = [\"XADD\"])"
            ))
        }
    }
}

wasmon_sdk::export_sink!(StreamSink);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmon_sdk::Severity;

    fn event() -> Event {
        Event {
            id: "e1".into(),
            time_ms: 7,
            event_type: "task.done".into(),
            source: "ingest".into(),
            service: Some("api".into()),
            component: None,
            severity: Severity::Ok,
            detail: None,
            attributes: Vec::new(),
            alert: None,
        }
    }

    #[test]
    fn the_command() {
        let args = xadd_args("k", 10, &event()).unwrap();
        let text: Vec<String> = args
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        assert_eq!(
            &text[..12],
            &[
                "k",
                "MAXLEN",
                "~",
                "10",
                "*",
                "id",
                "e1",
                "type",
                "task.done",
                "time_ms",
                "7",
                "source"
            ]
        );
        assert_eq!(text[text.len() - 2], "event");
        assert!(text.contains(&"service".to_string()));
        let untrimmed = xadd_args("k", 0, &event()).unwrap();
        assert_eq!(untrimmed[1], b"*");
    }

    #[test]
    fn retry_or_dead_letter() {
        let r = |e| outcome("k", "e1", e).is_retryable();
        assert!(r(RedisError::Connection("refused".into())));
        assert!(r(RedisError::Server("LOADING Redis is loading".into())));
        assert!(r(RedisError::Server("OOM command not allowed".into())));
        assert!(!r(RedisError::Server(
            "WRONGTYPE Operation against a key".into()
        )));
        assert!(!r(RedisError::ForbiddenCommand("XADD".into())));
    }
}
