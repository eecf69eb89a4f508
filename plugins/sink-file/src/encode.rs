//! What one event looks like in a file, and the files' names: pure
//! functions, unit-tested natively.
//!
//! - JSON lines: one object per line in the host's event shape (the
//!   `event-json` crate, as `GET /api/events` lists it): `id`, `time_ms`,
//!   `event_type`, `source`, `service`, `component`, `severity`, `detail`,
//!   `attributes`, `alert`.
//! - CSV (RFC 4180, `\r\n` line ends, fields quoted when they hold `,`, `"`
//!   or a line break): the header [`CSV_HEADER`], then one row per event;
//!   `attributes` and `alert` are JSON text in their cells.
//!
//! A file is named `PREFIX-YYYYMMDDTHHMMSS.mmmZ-NNNN.EXT` (UTC, the time it
//! was started, then a sequence number), so names sort by age.

use crate::config::Format;
use wasmon_sdk::Event;

/// The CSV header line.
pub const CSV_HEADER: &str =
    "id,time,time_ms,type,source,severity,service,component,detail,attributes,alert\r\n";

/// Appends `event` to `out` as one line of `format`.
pub fn line(format: Format, event: &Event, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    match format {
        Format::Jsonl => {
            out.extend_from_slice(&wasmon_sdk::event_json::to_vec(event)?);
            out.push(b'\n');
        }
        Format::Csv => {
            let value = serde_json::to_value(wasmon_sdk::event_json::EventJson::new(event))?;
            let json_cell = |key: &str| value.get(key).map(|v| v.to_string()).unwrap_or_default();
            let cells = [
                event.id.clone(),
                wasmon_sdk::sink::rfc3339(event.time_ms),
                event.time_ms.to_string(),
                event.event_type.clone(),
                event.source.clone(),
                event.severity.as_str().to_string(),
                event.service.clone().unwrap_or_default(),
                event.component.clone().unwrap_or_default(),
                event.detail.clone().unwrap_or_default(),
                json_cell("attributes"),
                json_cell("alert"),
            ];
            for (i, cell) in cells.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                csv_cell(cell, out);
            }
            out.extend_from_slice(b"\r\n");
        }
    }
    Ok(())
}

/// One CSV cell, quoted when it must be.
fn csv_cell(cell: &str, out: &mut Vec<u8>) {
    if cell.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        out.extend_from_slice(cell.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(cell.as_bytes());
    }
}

/// The name of file number `seq`, started at `ms` (Unix milliseconds).
pub fn file_name(prefix: &str, ms: u64, seq: u32, format: Format) -> String {
    // 2024-05-01T12:00:00.123Z -> 20240501T120000.123Z
    let stamp: String = wasmon_sdk::sink::rfc3339(ms)
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    format!("{prefix}-{stamp}-{seq:04}.{}", format.extension())
}

/// Whether `name` is one of this sink's files (its prefix and format), and
/// if so its sequence number.
pub fn parse_name(prefix: &str, format: Format, name: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
    let rest = rest.strip_suffix(format.extension())?.strip_suffix('.')?;
    let (stamp, seq) = rest.rsplit_once('-')?;
    if stamp.len() != 20 || !stamp.ends_with('Z') {
        return None;
    }
    seq.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmon_sdk::{Label, Severity};

    fn event() -> Event {
        Event {
            id: "e1".into(),
            time_ms: 1_714_564_800_123,
            event_type: "error".into(),
            source: "ingest".into(),
            service: Some("api".into()),
            component: None,
            severity: Severity::Warning,
            detail: Some("said \"no\", twice\nthen left".into()),
            attributes: vec![Label::new("region", "eu")],
            alert: None,
        }
    }

    #[test]
    fn jsonl_is_the_host_shape() {
        let mut out = Vec::new();
        line(Format::Jsonl, &event(), &mut out).unwrap();
        assert_eq!(out.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["id"], "e1");
        assert_eq!(v["event_type"], "error");
        assert_eq!(v["attributes"]["region"], "eu");
    }

    #[test]
    fn csv_quotes_what_it_must() {
        let mut out = Vec::new();
        line(Format::Csv, &event(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "e1,2024-05-01T12:00:00.123Z,1714564800123,error,ingest,warning,api,,\"said \"\"no\"\", twice\nthen left\",\"{\"\"region\"\":\"\"eu\"\"}\",\r\n"
        );
    }

    #[test]
    fn names_sort_by_age_and_parse_back() {
        let a = file_name("events", 1_714_564_800_123, 1, Format::Jsonl);
        assert_eq!(a, "events-20240501T120000.123Z-0001.jsonl");
        let b = file_name("events", 1_714_564_800_124, 2, Format::Jsonl);
        assert!(a < b);
        assert_eq!(parse_name("events", Format::Jsonl, &a), Some(1));
        assert_eq!(parse_name("events", Format::Csv, &a), None);
        assert_eq!(parse_name("event", Format::Jsonl, &a), None);
        assert_eq!(
            parse_name("events", Format::Jsonl, "events-x-0001.jsonl"),
            None
        );
    }
}
