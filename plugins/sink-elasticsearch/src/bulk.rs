//! The `_bulk` request and what its answer means, item by item: pure
//! functions, unit-tested natively.
//!
//! One request per `deliver`: for each event an `index` action with
//! `_id` = the event's id (so a re-sent event overwrites itself, never
//! duplicates) and the document:
//!
//! ```text
//! {"index":{"_index":"events-2024.05.01","_id":"0190f1c2-..."}}
//! {"@timestamp":"2024-05-01T12:00:00.123Z","id":"0190f1c2-...","type":"alert.firing",...}
//! ```
//!
//! A 2xx answer with `"errors": true` is read item by item: 2xx indexed,
//! 429/5xx (and 408) to re-send, any other status refused for good. The
//! batch's [`Progress`] (kept in the plugin's state between calls) remembers
//! which ids are indexed or refused, so a retry of the same batch re-sends
//! only the rest. Once nothing is left to re-send, a batch with refused items
//! is dead-lettered whole, the message naming them (replaying it re-indexes
//! the others under the same ids, harmlessly); otherwise it is delivered.

use crate::config::IndexPattern;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use wasmon_sdk::event_json::Readable;
use wasmon_sdk::sink::{fingerprint, is_retryable_status, rfc3339};
use wasmon_sdk::{DeliveryError, Event};

/// The most refused items named in a dead-letter message.
const NAMED: usize = 5;

/// How far the current batch got, across retries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Which batch this is ([`fingerprint`]).
    pub batch: String,
    /// Ids Elasticsearch indexed.
    pub done: BTreeSet<String>,
    /// Ids it refused for good, with why.
    pub refused: BTreeMap<String, String>,
}

impl Progress {
    /// No progress on `batch` yet.
    pub fn new(batch: &[Event]) -> Progress {
        Progress {
            batch: fingerprint(batch),
            ..Progress::default()
        }
    }

    /// The events still to send.
    pub fn pending<'a>(&self, batch: &'a [Event]) -> Vec<&'a Event> {
        batch
            .iter()
            .filter(|e| !self.done.contains(&e.id) && !self.refused.contains_key(&e.id))
            .collect()
    }

    /// The outcome once nothing is left to send: delivered, or dead-lettered
    /// naming the refused items.
    pub fn verdict(&self) -> Result<(), DeliveryError> {
        if self.refused.is_empty() {
            return Ok(());
        }
        let named: Vec<String> = self
            .refused
            .iter()
            .take(NAMED)
            .map(|(id, why)| format!("{id} ({why})"))
            .collect();
        let more = self.refused.len().saturating_sub(NAMED);
        Err(DeliveryError::Permanent(format!(
            "Elasticsearch refused {} of the batch's events: {}{}; the other {} were indexed",
            self.refused.len(),
            named.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            },
            self.done.len()
        )))
    }
}

/// The NDJSON body for `events`, ending with a newline as `_bulk` requires.
pub fn body(events: &[&Event], index: &IndexPattern) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::new();
    for event in events {
        let action = serde_json::json!({
            "index": { "_index": index.index(event.time_ms), "_id": event.id }
        });
        serde_json::to_writer(&mut out, &action)?;
        out.push(b'\n');
        serde_json::to_writer(&mut out, &Document::new(event))?;
        out.push(b'\n');
    }
    Ok(out)
}

/// Reads a 2xx `_bulk` answer for the `sent` events into `progress`; `Err`
/// with a reason when items are to be re-sent (or the answer cannot be read,
/// then all of them are).
pub fn record(progress: &mut Progress, sent: &[&Event], answer: &[u8]) -> Result<(), String> {
    let response: BulkResponse = serde_json::from_slice(answer).map_err(|e| {
        format!(
            "unreadable _bulk answer ({e}){}",
            wasmon_sdk::sink::excerpt(answer)
        )
    })?;
    if !response.errors {
        progress.done.extend(sent.iter().map(|e| e.id.clone()));
        return Ok(());
    }
    let mut retry = 0;
    let mut first = None;
    for (i, event) in sent.iter().enumerate() {
        let item = response
            .items
            .get(i)
            .and_then(|item| item.values().next())
            .filter(|item| item.id.as_deref().is_none_or(|id| id == event.id));
        let Some(item) = item else {
            // No answer for it (or not in order): send it again.
            retry += 1;
            first.get_or_insert_with(|| format!("{}: no item in the answer", event.id));
            continue;
        };
        if (200..300).contains(&item.status) {
            progress.done.insert(event.id.clone());
        } else if is_retryable_status(item.status) {
            retry += 1;
            first.get_or_insert_with(|| format!("{}: {}", event.id, item.describe()));
        } else {
            progress.refused.insert(event.id.clone(), item.describe());
        }
    }
    match first {
        None => Ok(()),
        Some(first) => Err(format!(
            "{retry} of {} items to re-send (first: {first}); {} indexed so far",
            sent.len(),
            progress.done.len()
        )),
    }
}

#[derive(Deserialize)]
struct BulkResponse {
    #[serde(default)]
    errors: bool,
    #[serde(default)]
    items: Vec<BTreeMap<String, Item>>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(rename = "_id", default)]
    id: Option<String>,
    status: u16,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

impl Item {
    /// `429 es_rejected_execution_exception: queue full`.
    fn describe(&self) -> String {
        let error = match &self.error {
            Some(serde_json::Value::Object(e)) => format!(
                " {}: {}",
                e.get("type").and_then(|t| t.as_str()).unwrap_or("error"),
                e.get("reason").and_then(|r| r.as_str()).unwrap_or("")
            ),
            Some(serde_json::Value::String(s)) => format!(" {s}"),
            _ => String::new(),
        };
        let mut text = format!("{}{error}", self.status);
        if text.len() > 200 {
            let mut end = 200;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push_str("...");
        }
        text
    }
}

/// One event as an Elasticsearch document: the shape webhooks receive
/// ([`Readable`]) with `@timestamp`, the field Kibana sorts on.
#[derive(Serialize)]
struct Document<'a> {
    #[serde(rename = "@timestamp")]
    timestamp: String,
    #[serde(flatten)]
    event: Readable<'a>,
}

impl<'a> Document<'a> {
    fn new(event: &'a Event) -> Self {
        Document {
            timestamp: rfc3339(event.time_ms),
            event: Readable::new(event),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use wasmon_sdk::{Label, Severity};

    fn event(id: &str, time_ms: u64) -> Event {
        Event {
            id: id.into(),
            time_ms,
            event_type: "error".into(),
            source: "ingest".into(),
            service: Some("api".into()),
            component: None,
            severity: Severity::Warning,
            detail: Some("slow".into()),
            attributes: vec![Label::new("region", "eu")],
            alert: None,
        }
    }

    fn pattern() -> IndexPattern {
        IndexPattern::parse("events-%Y.%m.%d").unwrap()
    }

    #[test]
    fn body_is_ndjson_with_index_and_id() {
        let a = event("a", 1_714_564_800_123);
        let b = event("b", 1_714_607_999_999 + 1);
        let body = String::from_utf8(body(&[&a, &b], &pattern()).unwrap()).unwrap();
        assert!(body.ends_with('\n'));
        let lines: Vec<serde_json::Value> = body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[0],
            serde_json::json!({"index": {"_index": "events-2024.05.01", "_id": "a"}})
        );
        assert_eq!(lines[1]["@timestamp"], "2024-05-01T12:00:00.123Z");
        assert_eq!(lines[1]["id"], "a");
        assert_eq!(lines[1]["attributes"]["region"], "eu");
        assert_eq!(lines[1]["status"], "WARNING");
        assert_eq!(lines[2]["index"]["_index"], "events-2024.05.02");
    }

    fn answer(items: &[(&str, u16)]) -> Vec<u8> {
        let items: Vec<_> = items
            .iter()
            .map(|(id, status)| {
                let mut item = serde_json::json!({"_index": "i", "_id": id, "status": status});
                if *status >= 300 {
                    item["error"] = serde_json::json!({"type": "some_exception", "reason": "why"});
                }
                serde_json::json!({ "index": item })
            })
            .collect();
        let errors = items
            .iter()
            .any(|i| i["index"]["status"].as_u64() >= Some(300));
        serde_json::to_vec(&serde_json::json!({"took": 1, "errors": errors, "items": items}))
            .unwrap()
    }

    #[test]
    fn partial_failures_re_send_only_the_failed() {
        let batch = [event("a", 1), event("b", 2), event("c", 3), event("d", 4)];
        let mut p = Progress::new(&batch);
        let sent = p.pending(&batch);
        assert_eq!(sent.len(), 4);
        let err = record(
            &mut p,
            &sent,
            &answer(&[("a", 201), ("b", 429), ("c", 400), ("d", 503)]),
        )
        .unwrap_err();
        assert!(
            err.starts_with("2 of 4 items to re-send (first: b: 429 some_exception: why)"),
            "{err}"
        );
        let ids: Vec<_> = p.pending(&batch).iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["b", "d"]);
        let sent = p.pending(&batch);
        record(&mut p, &sent, &answer(&[("b", 200), ("d", 201)])).unwrap();
        assert!(p.pending(&batch).is_empty());
        let Err(DeliveryError::Permanent(m)) = p.verdict() else {
            panic!("c was refused");
        };
        assert!(
            m.contains("refused 1")
                && m.contains("c (400 some_exception: why)")
                && m.contains("other 3"),
            "{m}"
        );
    }

    #[test]
    fn all_indexed_and_unreadable_answers() {
        let batch = [event("a", 1), event("b", 2)];
        let mut p = Progress::new(&batch);
        let sent = p.pending(&batch);
        record(&mut p, &sent, br#"{"took":3,"errors":false,"items":[]}"#).unwrap();
        assert_eq!(p.verdict(), Ok(()));
        let mut p = Progress::new(&batch);
        let err = record(&mut p, &sent, b"<html>proxy</html>").unwrap_err();
        assert!(err.contains("unreadable"), "{err}");
        assert_eq!(p.pending(&batch).len(), 2);
        // Fewer items than sent: the missing ones are re-sent.
        let err = record(&mut p, &sent, &answer(&[("a", 201), ("x", 400)])).unwrap_err();
        assert!(err.contains("1 of 2"), "{err}");
        assert_eq!(p.pending(&batch)[0].id, "b");
    }
}
