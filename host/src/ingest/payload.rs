//! The ingestion payloads, parsed and validated into host [`Event`]s.
//!
//! Three shapes are accepted, verbatim as the seeds send them:
//!
//! - a heartbeat, `{"service": "edge-cam01", "phase": "edge_loop"}` (seed 000);
//! - an event, `{"service", "event_type", "detail"?, "component"?}` (seed 000);
//! - a job event of seed 002's SDK: `{"idempotency_key", "site_id", "app":
//!   {"app_id", "name", "version"}, "entity": {"type", "id", "parent_id",
//!   "business_key", "sub_key"}, "event": {"kind", "at", "status", "progress",
//!   "metrics", "metadata"}}`.
//!
//! The sidecar routes take either event shape (an object with `event_type` is
//! a seed 000 event). Fields the host does not model are never dropped: the
//! event keeps the object's text as its [`Attributes`], read back flattened
//! with dotted keys (`entity.parent_id`, `event.metrics.duration_s`, ...).
//!
//! Every body first passes the same checks on every route ([`check_json`]):
//! UTF-8, nesting depth, and no duplicate key in any object at any depth
//! (400 each), so a body refused on one route is refused on all.
//!
//! Parsing is typed and borrows from the body: the modelled fields are read
//! and validated in one pass that skips the rest, and a batch is first split
//! into its items' texts. Errors name the field (`events[3]: service: ...`);
//! the caller turns [`IngestError`] into an HTTP status.

use crate::model::{Attributes, Event, Severity};
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

mod scan;

pub use scan::check_json;

/// Most bytes of a service, component or phase name.
pub const MAX_NAME_BYTES: usize = 128;
/// Most bytes of an event type.
pub const MAX_EVENT_TYPE_BYTES: usize = 128;

/// What a seed 000 event models; its other fields are attributes.
const SIMPLE_FIELDS: &[&str] = &["service", "event_type", "detail", "component", "severity"];
/// What a job event models beyond its attributes.
const JOB_FIELDS: &[&str] = &["app.name", "entity.type", "event.kind"];

/// Why a payload was refused. Each kind maps to one HTTP status.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IngestError {
    /// Not JSON, or nested deeper than allowed (400).
    #[error("{0}")]
    Malformed(String),
    /// JSON whose fields are missing, of the wrong type or out of bounds (422).
    #[error("{0}")]
    Invalid(String),
    /// More events in one batch than allowed (413).
    #[error("{0}")]
    BatchTooLarge(String),
    /// A new service beyond `ingest.max_services` (429).
    #[error("{0}")]
    TooManyServices(String),
}

impl IngestError {
    /// The reason label of `wasmon_ingest_rejected_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            IngestError::Malformed(_) => "malformed",
            IngestError::Invalid(_) => "invalid",
            IngestError::BatchTooLarge(_) => "batch_too_large",
            IngestError::TooManyServices(_) => "too_many_services",
        }
    }

    /// The same error about item `index` of a batch.
    fn at(self, index: usize) -> IngestError {
        let prefix = |m: String| format!("events[{index}]: {m}");
        match self {
            IngestError::Malformed(m) => IngestError::Malformed(prefix(m)),
            IngestError::Invalid(m) => IngestError::Invalid(prefix(m)),
            other => other,
        }
    }
}

/// Bounds on what one payload may contain.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Deepest nesting of arrays and objects.
    pub max_depth: usize,
    /// Most events in one batch.
    pub max_batch: usize,
    /// Most bytes of an event's `detail`.
    pub max_detail_bytes: usize,
    /// Most bytes of one event's JSON (attributes included).
    pub max_event_bytes: usize,
}

/// An event as parsed, with the task outcome it reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The event, with a fresh id and the time it arrived.
    pub event: Event,
    /// Success or failure of a task, for seed 000's task counters: the
    /// `event_type` of a seed 000 event, or a seed 002 `*.finished` event's
    /// `event.status` (`*.error` is a failure).
    pub outcome: Option<TaskOutcome>,
}

/// A parsed heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct Heartbeat {
    /// The service that is alive.
    pub service: String,
    /// What it is doing now.
    pub phase: Option<String>,
}

/// Parses `body` as `T`, naming the field a type error is about.
fn from_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, IngestError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = if path == "." || path.is_empty() {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        };
        match inner.classify() {
            serde_json::error::Category::Data => IngestError::Invalid(message),
            _ => IngestError::Malformed(format!("malformed JSON: {message}")),
        }
    })?;
    de.end()
        .map_err(|e| IngestError::Malformed(format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// Refuses a body that is JSON but not an object, before a typed parse would
/// describe it in terms of Rust structs.
fn expect_object(body: &[u8]) -> Result<(), IngestError> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        _ => Err(match from_json::<Value>(body) {
            Err(e) => e,
            Ok(v) => {
                IngestError::Invalid(format!("expected a JSON object, found {}", type_name(&v)))
            }
        }),
    }
}

/// `POST /heartbeat`.
pub fn heartbeat(body: &[u8], limits: &Limits) -> Result<Heartbeat, IngestError> {
    #[derive(Deserialize)]
    struct Raw<'a> {
        #[serde(borrow)]
        service: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        phase: Option<Cow<'a, str>>,
    }
    let text = check_json(body, limits.max_depth)?;
    expect_object(text.as_bytes())?;
    let raw: Raw<'_> = from_json(text.as_bytes())?;
    let service = raw
        .service
        .ok_or_else(|| IngestError::Invalid("service: field required".into()))?;
    check_name("service", &service)?;
    let phase = match raw.phase {
        Some(p) => {
            check_text("phase", &p, MAX_NAME_BYTES)?;
            Some(p.into_owned())
        }
        None => None,
    };
    Ok(Heartbeat {
        service: service.into_owned(),
        phase,
    })
}

/// `POST /events`: a seed 000 event.
pub fn event(body: &[u8], limits: &Limits) -> Result<Parsed, IngestError> {
    let text = check_json(body, limits.max_depth)?;
    let (item, text) = item(text, limits)?;
    if item.event_type.is_none() {
        return Err(IngestError::Invalid("event_type: field required".into()));
    }
    simple_event(item, text, limits)
}

/// `POST /v1/event`: a seed 002 job event, or a seed 000 event.
pub fn any_event(body: &[u8], limits: &Limits) -> Result<Parsed, IngestError> {
    let (item, text) = item(check_json(body, limits.max_depth)?, limits)?;
    normalize(item, text, limits)
}

/// `POST /v1/events/batch`: a JSON array of events (either shape), or
/// `{"events": [...]}`. One bad item rejects the whole batch, naming its index.
pub fn batch(body: &[u8], limits: &Limits) -> Result<Vec<Parsed>, IngestError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Wrapped<'a> {
        #[serde(borrow)]
        events: Vec<&'a RawValue>,
    }
    let body = check_json(body, limits.max_depth)?.as_bytes();
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let items: Vec<&RawValue> = match first {
        Some(b'{') => from_json::<Wrapped<'_>>(body)?.events,
        Some(b'[') => from_json(body)?,
        _ => {
            return Err(match from_json::<Value>(body) {
                Err(e) => e,
                Ok(_) => IngestError::Invalid(
                    "expected a JSON array of events or {\"events\": [...]}".into(),
                ),
            });
        }
    };
    if items.is_empty() {
        return Err(IngestError::Invalid("the batch holds no events".into()));
    }
    if items.len() > limits.max_batch {
        return Err(IngestError::BatchTooLarge(format!(
            "batch of {} events exceeds the limit of {}",
            items.len(),
            limits.max_batch
        )));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            item(raw.get(), limits)
                .and_then(|(item, text)| normalize(item, text, limits))
                .map_err(|e| e.at(i))
        })
        .collect()
}

/// Parses one event object's modelled fields; returns them with its text.
fn item<'a>(text: &'a str, limits: &Limits) -> Result<(Item<'a>, &'a str), IngestError> {
    let text = text.trim();
    expect_object(text.as_bytes())?;
    if text.len() > limits.max_event_bytes {
        return Err(IngestError::Invalid(format!(
            "event of {} bytes exceeds the limit of {} (ingest.max_event_bytes)",
            text.len(),
            limits.max_event_bytes
        )));
    }
    Ok((from_json(text.as_bytes())?, text))
}

fn normalize(item: Item<'_>, text: &str, limits: &Limits) -> Result<Parsed, IngestError> {
    if item.event_type.is_some() {
        simple_event(item, text, limits)
    } else {
        job_event(item, text, limits)
    }
}

/// A seed 000 event: `service`, `event_type`, `detail`, `component`, and
/// optionally `severity`; anything else becomes attributes.
fn simple_event(item: Item<'_>, text: &str, limits: &Limits) -> Result<Parsed, IngestError> {
    let service = item
        .service
        .ok_or_else(|| IngestError::Invalid("service: field required".into()))?;
    check_name("service", &service)?;
    let event_type = item
        .event_type
        .ok_or_else(|| IngestError::Invalid("event_type: field required".into()))?;
    check_event_type(&event_type)?;
    if let Some(d) = &item.detail {
        check_text("detail", d, limits.max_detail_bytes)?;
    }
    if let Some(c) = &item.component {
        check_name("component", c)?;
    }
    let severity = match &item.severity {
        Some(s) => parse_severity(s)?,
        None => severity_of(&event_type),
    };
    let outcome = task_outcome(&event_type);
    let mut event = Event::new(event_type.into_owned(), "ingest");
    event.service = Some(service.into_owned());
    event.component = item.component.map(Cow::into_owned);
    event.detail = item.detail.map(Cow::into_owned);
    event.severity = severity;
    if item.extra {
        event.attributes = Attributes::from_json_object(text, SIMPLE_FIELDS);
    }
    Ok(Parsed { event, outcome })
}

/// A seed 002 job event: service = `app.name`, event type =
/// `{entity.type}.{event.kind}` (`job.started`, `subjob.finished`), component
/// = `entity.type`; every other field is an attribute.
fn job_event(item: Item<'_>, text: &str, limits: &Limits) -> Result<Parsed, IngestError> {
    let required = |what: &str| {
        IngestError::Invalid(format!(
            "{what}: field required (an event needs `service` and `event_type`, or `app`, `entity` and `event`)"
        ))
    };
    let app = item.app.ok_or_else(|| required("app"))?;
    let entity = item.entity.ok_or_else(|| required("entity"))?;
    let body = item.event.ok_or_else(|| required("event"))?;
    let service = app
        .name
        .ok_or_else(|| IngestError::Invalid("app.name: field required".into()))?;
    check_name("app.name", &service)?;
    let entity_type = entity
        .entity_type
        .ok_or_else(|| IngestError::Invalid("entity.type: field required".into()))?;
    check_name("entity.type", &entity_type)?;
    let kind = body
        .kind
        .ok_or_else(|| IngestError::Invalid("event.kind: field required".into()))?;
    let event_type = format!("{entity_type}.{kind}");
    check_event_type(&event_type).map_err(|_| {
        IngestError::Invalid(format!(
            "event.kind: {kind:?} does not make a valid event type with entity.type {entity_type:?}"
        ))
    })?;
    let status = body.status.as_deref().unwrap_or("");
    let outcome = match &*kind {
        "error" => Some(TaskOutcome::Failure),
        "finished" => task_outcome(status),
        _ => None,
    };
    let severity = if kind == "error" || matches!(status, "failed" | "failure" | "error") {
        Severity::Critical
    } else if matches!(status, "canceled" | "cancelled") {
        Severity::Warning
    } else {
        Severity::Ok
    };
    let detail = body
        .metadata
        .and_then(|m| m.error)
        .and_then(|raw| serde_json::from_str::<Cow<'_, str>>(raw.get()).ok())
        .map(|e| truncate(&e, limits.max_detail_bytes));
    let mut event = Event::new(event_type, "ingest");
    event.service = Some(service.into_owned());
    event.component = Some(entity_type.into_owned());
    event.severity = severity;
    event.detail = detail;
    event.attributes = Attributes::from_json_object(text, JOB_FIELDS);
    Ok(Parsed { event, outcome })
}

/// The modelled fields of either event shape, borrowed from the body where
/// no unescaping is needed. Unknown fields are skipped (the event keeps the
/// object's text); `extra` says whether there were any.
#[derive(Default)]
struct Item<'a> {
    service: Option<Cow<'a, str>>,
    event_type: Option<Cow<'a, str>>,
    detail: Option<Cow<'a, str>>,
    component: Option<Cow<'a, str>>,
    severity: Option<Cow<'a, str>>,
    app: Option<AppIn<'a>>,
    entity: Option<EntityIn<'a>>,
    event: Option<BodyIn<'a>>,
    extra: bool,
}

impl<'de> Deserialize<'de> for Item<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemVisitor;
        impl<'de> Visitor<'de> for ItemVisitor {
            type Value = Item<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item<'de>, A::Error> {
                let mut item = Item::default();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match &*key {
                        "service" => item.service = map.next_value()?,
                        "event_type" => item.event_type = map.next_value()?,
                        "detail" => item.detail = map.next_value()?,
                        "component" => item.component = map.next_value()?,
                        "severity" => item.severity = map.next_value()?,
                        "app" => item.app = map.next_value()?,
                        "entity" => item.entity = map.next_value()?,
                        "event" => item.event = map.next_value()?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            item.extra = true;
                        }
                    }
                }
                Ok(item)
            }
        }
        deserializer.deserialize_map(ItemVisitor)
    }
}

/// `app`: its name is the service; the rest is kept as attributes.
#[derive(Deserialize)]
#[serde(expecting = "an object")]
struct AppIn<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
}

/// `entity`: its type makes the event type; the ids must be strings.
#[derive(Deserialize)]
#[serde(expecting = "an object")]
#[allow(dead_code)] // read for validation only; kept as attributes
struct EntityIn<'a> {
    #[serde(rename = "type", borrow, default)]
    entity_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    parent_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    business_key: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    sub_key: Option<Cow<'a, str>>,
}

/// `event`: kind and status; progress a number, metrics numbers.
#[derive(Deserialize)]
#[serde(expecting = "an object")]
#[allow(dead_code)] // read for validation only; kept as attributes
struct BodyIn<'a> {
    #[serde(borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    at: Option<Cow<'a, str>>,
    #[serde(default)]
    progress: Option<f64>,
    #[serde(default)]
    metrics: Option<Numbers>,
    #[serde(borrow, default)]
    metadata: Option<MetadataIn<'a>>,
}

/// `event.metadata`: free-form; a string `error` is the event's detail.
#[derive(Deserialize)]
#[serde(expecting = "an object")]
struct MetadataIn<'a> {
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

/// An object whose values are all numbers (or null), read without keeping it.
struct Numbers;

impl<'de> Deserialize<'de> for Numbers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumbersVisitor;
        impl<'de> Visitor<'de> for NumbersVisitor {
            type Value = Numbers;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of numbers")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Numbers, A::Error> {
                while map.next_key::<Cow<'de, str>>()?.is_some() {
                    map.next_value::<Option<f64>>()?;
                }
                Ok(Numbers)
            }
        }
        deserializer.deserialize_map(NumbersVisitor)
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Service and component names: 1 to 128 bytes, starting with a letter or
/// digit, then letters, digits and `. _ - : / @`.
pub fn check_name(field: &str, name: &str) -> Result<(), IngestError> {
    if name.is_empty() {
        return Err(IngestError::Invalid(format!("{field}: must not be empty")));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(IngestError::Invalid(format!(
            "{field}: {} bytes exceeds the limit of {MAX_NAME_BYTES}",
            name.len()
        )));
    }
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok
        || !chars
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/' | '@'))
    {
        return Err(IngestError::Invalid(format!(
            "{field}: invalid name {:?}: use letters, digits and . _ - : / @, starting with a letter or digit",
            truncate(name, 64)
        )));
    }
    Ok(())
}

/// Event types: like names, and `*` is not allowed (it is a pattern character
/// in sink manifests).
pub(crate) fn check_event_type(event_type: &str) -> Result<(), IngestError> {
    if event_type.len() > MAX_EVENT_TYPE_BYTES {
        return Err(IngestError::Invalid(format!(
            "event_type: {} bytes exceeds the limit of {MAX_EVENT_TYPE_BYTES}",
            event_type.len()
        )));
    }
    check_name("event_type", event_type)
}

/// Free text: at most `max` bytes, no control characters but tab and newline.
pub(crate) fn check_text(field: &str, text: &str, max: usize) -> Result<(), IngestError> {
    if text.len() > max {
        return Err(IngestError::Invalid(format!(
            "{field}: {} bytes exceeds the limit of {max}",
            text.len()
        )));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(IngestError::Invalid(format!(
            "{field}: contains control characters"
        )));
    }
    Ok(())
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn parse_severity(text: &str) -> Result<Severity, IngestError> {
    match text.to_ascii_lowercase().as_str() {
        "ok" | "info" | "success" => Ok(Severity::Ok),
        "warning" | "warn" => Ok(Severity::Warning),
        "critical" | "error" | "alert" => Ok(Severity::Critical),
        _ => Err(IngestError::Invalid(format!(
            "severity: expected ok, info, warning, critical or error, found {:?}",
            truncate(text, 32)
        ))),
    }
}

/// What an event type says about severity when the sender gave none.
fn severity_of(event_type: &str) -> Severity {
    match task_outcome(event_type) {
        Some(TaskOutcome::Failure) => Severity::Critical,
        _ if event_type.eq_ignore_ascii_case("warning") => Severity::Warning,
        _ => Severity::Ok,
    }
}

/// Whether an event reports a task's success or failure (seed 000's
/// `monitoring_task_success_total` / `monitoring_task_failures_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskOutcome {
    /// `success`, `succeeded`, `ok`, `completed`.
    Success,
    /// `failure`, `failed`, `error`.
    Failure,
}

/// The outcome a seed 000 event type reports, if any.
pub fn task_outcome(event_type: &str) -> Option<TaskOutcome> {
    const SUCCESS: &[&str] = &["success", "succeeded", "ok", "completed"];
    const FAILURE: &[&str] = &["failure", "failed", "error"];
    if SUCCESS.iter().any(|s| event_type.eq_ignore_ascii_case(s)) {
        Some(TaskOutcome::Success)
    } else if FAILURE.iter().any(|s| event_type.eq_ignore_ascii_case(s)) {
        Some(TaskOutcome::Failure)
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
