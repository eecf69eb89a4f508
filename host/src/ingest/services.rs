//! The service table: every service known from heartbeats or events, its
//! up/down state (seed 000's heartbeat watcher) and its event counters.
//!
//! The table is the one cardinality gate of ingestion: the seed's
//! `monitoring_*` series are rendered from it, so they never outnumber
//! `ingest.max_services` services, each with at most
//! `ingest.max_label_values` event types and components (beyond that the
//! label value is folded into [`OVERFLOW_LABEL`] and counted).
//!
//! So that a full table is not full forever, a service nothing was heard from
//! (no heartbeat, no event) for `ingest.service_ttl` is evicted, unless it is
//! `up`: with the heartbeat watcher running, `up` means its heartbeats
//! arrive, and such a service is never evicted. [`Services::evict`] runs on
//! the watcher's tick and whenever a new service would not fit.

use crate::ingest::payload::TaskOutcome;
use std::collections::BTreeMap;

/// The label value counters of excess event types and components are folded into.
pub const OVERFLOW_LABEL: &str = "_other";

/// One service.
#[derive(Debug, Clone, Default)]
pub struct Service {
    /// `Some(true)` up, `Some(false)` down, `None` known only from events.
    pub up: Option<bool>,
    /// Unix milliseconds of the last heartbeat.
    pub last_seen_ms: Option<u64>,
    /// The phase of the last heartbeat.
    pub phase: Option<String>,
    /// Unix milliseconds when it went down, while down.
    pub down_since_ms: Option<u64>,
    /// Heartbeats received.
    pub heartbeats: u64,
    /// Unix milliseconds of its last event.
    pub last_event_ms: Option<u64>,
    /// Events by event type (`monitoring_events_total`).
    pub events: BTreeMap<String, u64>,
    /// Successes by component (`monitoring_task_success_total`).
    pub successes: BTreeMap<String, u64>,
    /// Failures by component (`monitoring_task_failures_total`).
    pub failures: BTreeMap<String, u64>,
}

impl Service {
    /// When anything (a heartbeat or an event) was last heard from it, Unix ms.
    pub fn last_activity_ms(&self) -> u64 {
        self.last_seen_ms
            .unwrap_or(0)
            .max(self.last_event_ms.unwrap_or(0))
    }
}

/// A change of a service's state, for the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Its heartbeats stopped for longer than the timeout.
    Down {
        /// The service.
        service: String,
        /// Unix milliseconds of its last heartbeat.
        last_seen_ms: u64,
    },
    /// A heartbeat arrived while it was down.
    Up {
        /// The service.
        service: String,
        /// Unix milliseconds when it had gone down.
        down_since_ms: u64,
    },
}

/// Every known service, by name.
#[derive(Debug, Default)]
pub struct Services {
    table: BTreeMap<String, Service>,
    /// Most services.
    max_services: usize,
    /// Most event types (and components) counted per service.
    max_label_values: usize,
    /// Label values folded into [`OVERFLOW_LABEL`] so far.
    pub overflowed: u64,
    /// Silence after which a service that is not up is evicted, in ms.
    ttl_ms: u64,
    /// Whether `up` services are kept whatever their silence (true while the
    /// heartbeat watcher runs and `up` therefore means heartbeats arrive).
    keep_up: bool,
    /// No service can be evictable before this (Unix ms): a lower bound kept
    /// by [`evict`](Self::evict) and lowered for each new service, so a full
    /// table is not scanned in vain.
    next_expiry_ms: u64,
}

impl Services {
    /// An empty table with these limits: services silent for `ttl_ms` are
    /// evicted, unless they are up and `keep_up`.
    pub fn new(
        max_services: usize,
        max_label_values: usize,
        ttl_ms: u64,
        keep_up: bool,
    ) -> Services {
        Services {
            table: BTreeMap::new(),
            max_services,
            max_label_values: max_label_values.max(1),
            overflowed: 0,
            ttl_ms,
            keep_up,
            next_expiry_ms: 0,
        }
    }

    /// How many services are known.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no service is known.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Every service, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Service)> {
        self.table.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// One service.
    pub fn get(&self, name: &str) -> Option<&Service> {
        self.table.get(name)
    }

    /// Forgets a service; whether it was known.
    pub fn remove(&mut self, name: &str) -> bool {
        self.table.remove(name).is_some()
    }

    /// Evicts every service silent for the TTL (see the module docs);
    /// returns their names.
    pub fn evict(&mut self, now_ms: u64) -> Vec<String> {
        if now_ms < self.next_expiry_ms {
            return Vec::new();
        }
        let (ttl_ms, keep_up) = (self.ttl_ms, self.keep_up);
        let mut next = u64::MAX;
        let mut evicted = Vec::new();
        self.table.retain(|name, service| {
            let expiry = service.last_activity_ms().saturating_add(ttl_ms);
            let kept = now_ms < expiry || (keep_up && service.up == Some(true));
            if kept {
                next = next.min(expiry);
            } else {
                evicted.push(name.clone());
            }
            kept
        });
        self.next_expiry_ms = next;
        evicted
    }

    /// Checks that the services `names` (repeats allowed) fit in the table:
    /// known ones always do, new ones while there is room; the error names
    /// the first that would exceed `max_services`. When they do not fit,
    /// [`evict`](Self::evict) may make room.
    pub fn admit<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Result<(), String> {
        let mut new: Vec<&str> = Vec::new();
        for name in names {
            if !self.table.contains_key(name) && !new.contains(&name) {
                if self.table.len() + new.len() >= self.max_services {
                    return Err(format!(
                        "service {name:?} would exceed the limit of {} distinct services (ingest.max_services)",
                        self.max_services
                    ));
                }
                new.push(name);
            }
        }
        Ok(())
    }

    /// Records a heartbeat; returns the transition it caused, if any. The
    /// caller checked [`admit`](Self::admit) first.
    pub fn heartbeat(
        &mut self,
        name: &str,
        phase: Option<String>,
        now_ms: u64,
    ) -> Option<Transition> {
        let service = self.entry(name, now_ms)?;
        service.heartbeats += 1;
        service.last_seen_ms = Some(now_ms);
        if phase.is_some() {
            service.phase = phase;
        }
        let was_down = service.up == Some(false);
        service.up = Some(true);
        let down_since_ms = service.down_since_ms.take();
        was_down.then(|| Transition::Up {
            service: name.to_string(),
            down_since_ms: down_since_ms.unwrap_or(now_ms),
        })
    }

    /// Counts an event of `service`. The caller checked [`admit`](Self::admit) first.
    pub fn count_event(
        &mut self,
        name: &str,
        event_type: &str,
        component: Option<&str>,
        outcome: Option<TaskOutcome>,
        now_ms: u64,
    ) {
        let max = self.max_label_values;
        let mut overflowed = 0;
        let Some(service) = self.entry(name, now_ms) else {
            return;
        };
        service.last_event_ms = Some(now_ms);
        bump(&mut service.events, event_type, max, &mut overflowed);
        if let (Some(component), Some(outcome)) = (component, outcome) {
            let counters = match outcome {
                TaskOutcome::Success => &mut service.successes,
                TaskOutcome::Failure => &mut service.failures,
            };
            bump(counters, component, max, &mut overflowed);
        }
        self.overflowed += overflowed;
    }

    /// Marks services whose last heartbeat is older than `timeout_ms` down.
    pub fn expire(&mut self, now_ms: u64, timeout_ms: u64) -> Vec<Transition> {
        let mut transitions = Vec::new();
        for (name, service) in &mut self.table {
            let (Some(true), Some(last_seen_ms)) = (service.up, service.last_seen_ms) else {
                continue;
            };
            if now_ms.saturating_sub(last_seen_ms) > timeout_ms {
                service.up = Some(false);
                service.down_since_ms = Some(now_ms);
                transitions.push(Transition::Down {
                    service: name.clone(),
                    last_seen_ms,
                });
            }
        }
        transitions
    }

    /// The service named `name`, created if new (the name is copied only then).
    fn entry(&mut self, name: &str, now_ms: u64) -> Option<&mut Service> {
        if !self.table.contains_key(name) {
            self.table.insert(name.to_string(), Service::default());
            // A new service may expire before every service known at the last scan.
            self.next_expiry_ms = self.next_expiry_ms.min(now_ms.saturating_add(self.ttl_ms));
        }
        self.table.get_mut(name)
    }
}

/// Adds one to `key`'s counter, or to the overflow counter once `map` holds
/// `max` keys (the key is copied only when new).
fn bump(map: &mut BTreeMap<String, u64>, key: &str, max: usize, overflowed: &mut u64) {
    if let Some(count) = map.get_mut(key) {
        *count += 1;
        return;
    }
    let key = if map.len() < max {
        key
    } else {
        *overflowed += 1;
        OVERFLOW_LABEL
    };
    *map.entry(key.to_string()).or_insert(0) += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_and_expiry_make_transitions() {
        let mut s = Services::new(10, 10, DAY, true);
        assert_eq!(s.heartbeat("a", Some("boot".into()), 1_000), None);
        assert_eq!(s.get("a").unwrap().up, Some(true));
        assert!(
            s.expire(30_000, 30_000).is_empty(),
            "29 s of silence is fine"
        );
        let down = s.expire(31_001, 30_000);
        assert_eq!(
            down,
            vec![Transition::Down {
                service: "a".into(),
                last_seen_ms: 1_000
            }]
        );
        assert!(s.expire(40_000, 30_000).is_empty(), "down once");
        let a = s.get("a").unwrap();
        assert_eq!((a.up, a.down_since_ms), (Some(false), Some(31_001)));
        assert_eq!(
            s.heartbeat("a", None, 50_000),
            Some(Transition::Up {
                service: "a".into(),
                down_since_ms: 31_001
            })
        );
        let a = s.get("a").unwrap();
        assert_eq!(
            a.phase.as_deref(),
            Some("boot"),
            "a heartbeat without phase keeps it"
        );
        assert_eq!((a.up, a.down_since_ms, a.heartbeats), (Some(true), None, 2));
    }

    #[test]
    fn services_known_from_events_only_never_go_down() {
        let mut s = Services::new(10, 10, DAY, true);
        s.count_event("b", "error", None, None, 1);
        assert!(s.expire(1_000_000, 1).is_empty());
        assert_eq!(s.get("b").unwrap().up, None);
    }

    const DAY: u64 = 24 * 3600 * 1000;

    #[test]
    fn the_service_cap_admits_known_names_only() {
        let mut s = Services::new(2, 10, DAY, true);
        s.heartbeat("a", None, 1);
        assert!(s.admit(["a", "b", "b"]).is_ok());
        s.heartbeat("b", None, 1);
        let err = s.admit(["a", "c"]).unwrap_err();
        assert!(err.contains("\"c\"") && err.contains("limit of 2"), "{err}");
        assert!(s.admit(["b", "a"]).is_ok());
    }

    #[test]
    fn silent_services_are_evicted_to_make_room_but_up_ones_never() {
        let mut s = Services::new(2, 10, 1_000, true);
        assert!(s.evict(0).is_empty(), "an empty table");
        s.heartbeat("a", None, 0);
        s.count_event("b", "x", None, None, 0);
        assert!(s.admit(["c"]).is_err());
        assert!(s.evict(500).is_empty(), "nothing expired yet");
        // b (events only) expired at 1000; a is up: kept.
        assert_eq!(s.evict(1_000), vec!["b".to_string()]);
        assert!(s.admit(["c"]).is_ok());
        s.count_event("c", "x", None, None, 1_000);
        assert!(s.get("b").is_none());
        // a goes down: now it can be evicted.
        assert_eq!(s.expire(10_000, 1).len(), 1);
        s.count_event("c", "x", None, None, 10_000);
        assert_eq!(s.evict(10_000), vec!["a".to_string()]);
        assert_eq!(s.len(), 1);
        // Without the watcher, up means nothing: silence alone counts.
        let mut s = Services::new(1, 10, 1_000, false);
        s.heartbeat("a", None, 0);
        assert!(s.evict(999).is_empty());
        assert_eq!(s.evict(1_000), vec!["a".to_string()]);
    }

    #[test]
    fn excess_label_values_fold_into_other() {
        let mut s = Services::new(10, 2, DAY, true);
        for t in ["x", "y", "z", "w", "x"] {
            s.count_event("a", t, Some(t), Some(TaskOutcome::Success), 1);
        }
        let a = s.get("a").unwrap();
        assert_eq!(a.events.get("x"), Some(&2));
        assert_eq!(a.events.get(OVERFLOW_LABEL), Some(&2));
        assert_eq!(a.events.len(), 3);
        assert_eq!(a.successes.get(OVERFLOW_LABEL), Some(&2));
        assert_eq!(s.overflowed, 4);
    }
}
