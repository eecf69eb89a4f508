//! What `wasmon plugin run` feeds a plugin: samples for a rule (a JSON file
//! in the shape of `GET /api/samples`, or a live host's `/api/samples` and
//! `/api/services`), and events for a sink or a rule (a JSON file in the
//! shape of `GET /api/events`, or built-in realistic ones).

use crate::model::{AlertChange, AlertState, Event, MetricKind, Sample, Severity};
use crate::plugins::bindings::types::ServiceState;
use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::path::Path;
use std::time::Duration;

/// Where an input file's text comes from: a path, or stdin for `-`.
fn read_input(path: &Path, what: &str) -> Result<String> {
    if path == Path::new("-") {
        return std::io::read_to_string(std::io::stdin())
            .with_context(|| format!("cannot read the {what} from stdin"));
    }
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the {what} file {}", path.display()))
}

/// The list under `key` of a JSON document that is either that list or an
/// object holding it (the answer of the matching `GET /api/...` route).
fn list_of(text: &str, key: &str, origin: &str, route: &str) -> Result<Vec<Value>> {
    let document: Value =
        serde_json::from_str(text).map_err(|e| anyhow!("{origin}: not valid JSON: {e}"))?;
    match document {
        Value::Array(items) => Ok(items),
        Value::Object(mut object) => match object.remove(key) {
            Some(Value::Array(items)) => Ok(items),
            _ => bail!(
                "{origin}: expected a JSON list of {key}, or an object with a `{key}` list (the answer of {route})"
            ),
        },
        _ => bail!(
            "{origin}: expected a JSON list of {key}, or an object with a `{key}` list (the answer of {route})"
        ),
    }
}

/// `list[i].path`, or `list[i]` for the item itself.
fn key(list: &str, i: usize, path: &str) -> String {
    if path == "." {
        format!("{list}[{i}]")
    } else {
        format!("{list}[{i}].{path}")
    }
}

/// One sample as `GET /api/samples` shows it; `kind` (gauge), `labels`,
/// `help` and `timestamp_ms` may be left out, and `labels` may also be a
/// list of `[name, value]` pairs.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SampleIn {
    name: String,
    #[serde(default)]
    kind: Option<MetricKind>,
    #[serde(default)]
    labels: Option<Value>,
    value: f64,
    #[serde(default)]
    help: Option<String>,
    #[serde(default)]
    timestamp_ms: Option<u64>,
}

/// The samples of a JSON document (`{"samples": [...]}` or a list), from `origin`.
pub(super) fn parse_samples(text: &str, origin: &str) -> Result<Vec<Sample>> {
    list_of(text, "samples", origin, "GET /api/samples")?
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let sample: SampleIn = serde_path_to_error::deserialize(item).map_err(|e| {
                anyhow!(
                    "{origin}: invalid value for `{}`: {}",
                    key("samples", i, &e.path().to_string()),
                    e.inner()
                )
            })?;
            let labels = match sample.labels {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Object(map)) => map
                    .into_iter()
                    .map(|(k, v)| match v {
                        Value::String(s) => Ok((k, s)),
                        other => Err(anyhow!(
                            "{origin}: invalid value for `samples[{i}].labels.{k}`: a label value is a string, not {other}"
                        )),
                    })
                    .collect::<Result<_>>()?,
                Some(other) => serde_json::from_value::<Vec<(String, String)>>(other).map_err(|e| {
                    anyhow!(
                        "{origin}: invalid value for `samples[{i}].labels`: an object of strings or a list of [name, value] pairs ({e})"
                    )
                })?,
            };
            Ok(Sample {
                name: sample.name,
                kind: sample.kind.unwrap_or(MetricKind::Gauge),
                labels,
                value: sample.value,
                help: sample.help,
                timestamp_ms: sample.timestamp_ms,
            })
        })
        .collect()
}

/// The samples of a JSON file (`-`: stdin).
pub(super) fn samples_from_file(path: &Path) -> Result<Vec<Sample>> {
    let text = read_input(path, "samples")?;
    parse_samples(&text, &path.display().to_string())
}

/// What `name=` selectors keep unescaped in a query: names, `*` and `,`.
const SELECTORS: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'*')
    .remove(b',')
    .remove(b':');

/// A live host's base URL: `http://` is added when no scheme is given, a
/// trailing `/` dropped.
fn base_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

/// `GET base + path`, its body when 200; otherwise an error naming the URL
/// and the host's `detail`.
async fn get(client: &reqwest::Client, url: &str) -> Result<String> {
    let response = client.get(url).send().await.map_err(|e| {
        anyhow!(
            "cannot reach {url}: {e} (is wasmon running there? its address is in its `listening addr=` log line)"
        )
    })?;
    let status = response.status();
    let body = response
        .text()
        .await
        .with_context(|| format!("cannot read the answer of {url}"))?;
    if !status.is_success() {
        let detail = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_string))
            .unwrap_or(body);
        bail!("{url} answered {status}: {detail}");
    }
    Ok(body)
}

/// What a live host would hand a rule: the latest value of every series
/// `select` matches (`GET /api/samples`) and the services with heartbeats
/// (`GET /api/services`).
pub(super) async fn from_host(
    url: &str,
    select: &[String],
) -> Result<(Vec<Sample>, Vec<ServiceState>)> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("cannot build an HTTP client")?;
    let base = base_url(url);
    let samples = if select.is_empty() {
        Vec::new()
    } else {
        let joined = select.join(",");
        let names = percent_encoding::utf8_percent_encode(&joined, SELECTORS);
        let url = format!("{base}/api/samples?name={names}");
        parse_samples(&get(&client, &url).await?, &url)?
    };
    let url = format!("{base}/api/services");
    let services = parse_services(&get(&client, &url).await?, &url)?;
    Ok((samples, services))
}

/// The services of `GET /api/services` a host hands rules: those with
/// heartbeats (`up` or `down`, and a last heartbeat).
fn parse_services(text: &str, origin: &str) -> Result<Vec<ServiceState>> {
    #[derive(Deserialize)]
    struct ServiceIn {
        service: String,
        status: String,
        last_seen_ms: Option<u64>,
        phase: Option<String>,
    }
    list_of(text, "services", origin, "GET /api/services")?
        .into_iter()
        .enumerate()
        .filter_map(|(i, item)| {
            let service: ServiceIn = match serde_json::from_value(item) {
                Ok(s) => s,
                Err(e) => return Some(Err(anyhow!("{origin}: services[{i}]: {e}"))),
            };
            let up = match service.status.as_str() {
                "up" => true,
                "down" => false,
                _ => return None,
            };
            Some(Ok(ServiceState {
                name: service.service,
                up,
                last_seen_ms: service.last_seen_ms?,
                phase: service.phase,
            }))
        })
        .collect()
}

/// The events of a JSON document (`{"events": [...]}`, the answer of `GET
/// /api/events`, or a list). Each needs `event_type`; `id` (a fresh one),
/// `time_ms` (now) and `source` (`wasmon-plugin-run`) may be left out.
pub(super) fn parse_events(text: &str, origin: &str) -> Result<Vec<Event>> {
    list_of(text, "events", origin, "GET /api/events")?
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let Value::Object(mut object) = item else {
                bail!("{origin}: `events[{i}]` is not a JSON object");
            };
            object
                .entry("id")
                .or_insert_with(|| Value::from(crate::model::new_event_id()));
            object
                .entry("time_ms")
                .or_insert_with(|| Value::from(crate::time::now_ms()));
            object
                .entry("source")
                .or_insert_with(|| Value::from("wasmon-plugin-run"));
            serde_path_to_error::deserialize(Value::Object(object)).map_err(|e| {
                anyhow!(
                    "{origin}: invalid value for `{}`: {}",
                    key("events", i, &e.path().to_string()),
                    e.inner()
                )
            })
        })
        .collect()
}

/// The events of a JSON file (`-`: stdin).
pub(super) fn events_from_file(path: &Path) -> Result<Vec<Event>> {
    let text = read_input(path, "events")?;
    parse_events(&text, &path.display().to_string())
}

/// Three events like those a host delivers: a service whose heartbeats
/// stopped, a firing alert, and an event a service posted to `/api/events`.
pub(super) fn sample_events() -> Vec<Event> {
    let now = crate::time::now_ms();
    let mut down = Event::new("service.down", "heartbeat");
    down.time_ms = now.saturating_sub(2_000);
    down.service = Some("checkout-api".into());
    down.severity = Severity::Critical;
    down.detail = Some("no heartbeat for 95 s (timeout 60 s)".into());

    let change = AlertChange {
        rule: "disk_usage".into(),
        name: "disk_usage".into(),
        labels: vec![
            ("host".into(), "web-1".into()),
            ("mountpoint".into(), "/var".into()),
        ],
        severity: Severity::Warning,
        state: AlertState::Firing,
        summary: "disk usage 0.91 >= 0.80 on /var".into(),
        value: Some(0.91),
        active_since_ms: now.saturating_sub(120_000),
    };
    let mut firing = Event::new("alert.firing", "rule");
    firing.time_ms = now.saturating_sub(1_000);
    firing.severity = change.severity;
    firing.detail = Some(change.summary.clone());
    firing.attributes.insert("rule", change.rule.clone());
    firing.attributes.insert("alertname", change.name.clone());
    firing.alert = Some(change);

    let mut custom = Event::new("job.failed", "ingest");
    custom.time_ms = now;
    custom.service = Some("billing-worker".into());
    custom.component = Some("invoice-export".into());
    custom.severity = Severity::Warning;
    custom.detail = Some("export failed after 3 retries: connection reset by peer".into());
    let mut attributes = Map::new();
    attributes.insert("job_id".into(), Value::from("inv-2026-0042"));
    attributes.insert("retries".into(), Value::from(3));
    attributes.insert(
        "http".into(),
        serde_json::json!({ "status": 503, "url": "https://erp.example.com/export" }),
    );
    custom.attributes = attributes.into();
    vec![down, firing, custom]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_come_as_the_api_answer_or_a_list_with_either_label_form() {
        let page = r#"{"samples": [
            {"name": "up", "kind": "gauge", "labels": {"job": "a"}, "value": 1, "help": "Up.", "timestamp_ms": 5},
            {"name": "reqs", "kind": "counter", "labels": [["path", "/"]], "value": 3.5}
        ]}"#;
        let samples = parse_samples(page, "f.json").unwrap();
        let mut up = Sample::gauge("up", 1.0).label("job", "a").help("Up.");
        up.timestamp_ms = Some(5);
        assert_eq!(samples[0], up);
        assert_eq!(samples[1], Sample::counter("reqs", 3.5).label("path", "/"));
        let list = parse_samples(r#"[{"name": "x", "value": 2}]"#, "f.json").unwrap();
        assert_eq!(list, [Sample::gauge("x", 2.0)]);
    }

    #[test]
    fn a_bad_sample_names_the_file_the_index_and_the_key() {
        let error = parse_samples(r#"[{"name": "x", "value": "high"}]"#, "s.json").unwrap_err();
        let text = format!("{error:#}");
        assert!(
            text.contains("s.json") && text.contains("samples[0].value"),
            "{text}"
        );
        let error = parse_samples(r#"{"sample": []}"#, "s.json").unwrap_err();
        assert!(
            format!("{error:#}").contains("GET /api/samples"),
            "{error:#}"
        );
        let error =
            parse_samples(r#"[{"name": "x", "value": 1, "lables": {}}]"#, "s.json").unwrap_err();
        assert!(format!("{error:#}").contains("lables"), "{error:#}");
    }

    #[test]
    fn events_get_an_id_a_time_and_a_source_when_left_out() {
        let events = parse_events(
            r#"{"events": [{"event_type": "deploy", "service": "api", "time": "ignored"}]}"#,
            "e.json",
        )
        .unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event_type, "deploy");
        assert_eq!(events[0].source, "wasmon-plugin-run");
        assert!(!events[0].id.is_empty() && events[0].time_ms > 0);
        let error =
            parse_events(r#"[{"event_type": "x", "severity": "high"}]"#, "e.json").unwrap_err();
        assert!(
            format!("{error:#}").contains("events[0].severity"),
            "{error:#}"
        );
    }

    #[test]
    fn services_without_heartbeats_are_left_out_as_in_a_host() {
        let text = r#"{"services": [
            {"service": "a", "status": "up", "last_seen_ms": 10, "phase": "run"},
            {"service": "b", "status": "down", "last_seen_ms": 5},
            {"service": "c", "status": "unknown", "last_seen_ms": null}
        ]}"#;
        let services = parse_services(text, "u").unwrap();
        assert_eq!(services.len(), 2);
        assert!(services[0].up && !services[1].up);
        assert_eq!(services[0].phase.as_deref(), Some("run"));
    }

    #[test]
    fn sample_events_are_the_three_kinds_a_sink_meets() {
        let types: Vec<String> = sample_events().into_iter().map(|e| e.event_type).collect();
        assert_eq!(types, ["service.down", "alert.firing", "job.failed"]);
        assert_eq!(base_url("127.0.0.1:9400/"), "http://127.0.0.1:9400");
        assert_eq!(base_url("https://h"), "https://h");
    }
}
