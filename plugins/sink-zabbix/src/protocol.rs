//! The Zabbix sender (trapper) protocol, as `zabbix_sender` speaks it: pure
//! functions, unit-tested natively.
//!
//! A message is the header `ZBXD` `0x01`, the data length as a little-endian
//! u64 (4 bytes of length and 4 reserved, zero), then the JSON data. The
//! request is `{"request":"sender data","data":[{"host","key","value",
//! "clock","ns"}, ...]}`; the server answers one message,
//! `{"response":"success","info":"processed: N; failed: M; total: T;
//! seconds spent: S"}`, then closes the connection.
//!
//! What the answer means for the batch:
//!
//! | answer | result |
//! |---|---|
//! | `success`, failed 0 | `Ok`: delivered |
//! | `success`, failed > 0 | `permanent`: Zabbix refuses an item whose host or key does not exist (or is not a trapper item, or whose value does not fit the item's type), and retrying cannot change that. The answer has only counts, so the whole batch is dead-lettered, with the counts in its message; replaying it after fixing Zabbix re-sends the items it had processed too. |
//! | any other `response` | `permanent`: the server refused the request itself |
//! | no connection, timeout, a short or malformed answer | `retryable`: the host backs off and sends the same batch again |

use crate::config::{Settings, Value};
use serde::Serialize;
use wasmon_sdk::{DeliveryError, Event};

/// The header's protocol bytes and flags (`0x01`: no compression).
pub const MAGIC: &[u8; 5] = b"ZBXD\x01";
/// Header length: magic, flags, u64 length.
pub const HEADER_LEN: usize = 13;
/// The largest answer read.
pub const MAX_ANSWER: u64 = 1 << 20;

/// One item of the request.
#[derive(Serialize)]
struct Item {
    host: String,
    key: String,
    value: String,
    clock: u64,
    ns: u64,
}

#[derive(Serialize)]
struct Request<'a> {
    request: &'static str,
    data: &'a [Item],
}

/// The request for `events` as one framed message (header and JSON). It
/// depends only on the events, so a retried batch is sent byte for byte
/// the same.
pub fn request(settings: &Settings, events: &[&Event]) -> Result<Vec<u8>, String> {
    let mut data = Vec::with_capacity(events.len());
    for event in events {
        let value = match settings.value {
            Value::Json => String::from_utf8(
                wasmon_sdk::event_json::to_vec(event)
                    .map_err(|e| format!("event {}: {e}", event.id))?,
            )
            .map_err(|e| format!("event {}: {e}", event.id))?,
            Value::Detail => event.detail.clone().unwrap_or_default(),
            Value::Severity => event.severity.as_str().to_string(),
            Value::Status => event.severity.status().to_string(),
        };
        data.push(Item {
            host: wasmon_sdk::event_json::fill(&settings.host, event),
            key: wasmon_sdk::event_json::fill(&settings.key, event),
            value,
            clock: event.time_ms / 1000,
            ns: (event.time_ms % 1000) * 1_000_000,
        });
    }
    let json = serde_json::to_vec(&Request {
        request: "sender data",
        data: &data,
    })
    .map_err(|e| e.to_string())?;
    let mut message = Vec::with_capacity(HEADER_LEN + json.len());
    message.extend_from_slice(MAGIC);
    message.extend_from_slice(&(json.len() as u64).to_le_bytes());
    message.extend_from_slice(&json);
    Ok(message)
}

/// The data length an answer's header announces.
pub fn answer_length(header: &[u8; HEADER_LEN]) -> Result<u64, String> {
    if &header[..4] != b"ZBXD" {
        return Err(format!(
            "the answer is not a Zabbix message (it starts with {:?})",
            String::from_utf8_lossy(&header[..4])
        ));
    }
    if header[4] != 0x01 {
        return Err(format!(
            "unsupported Zabbix protocol flags 0x{:02x} (only 0x01, uncompressed)",
            header[4]
        ));
    }
    let mut length = [0u8; 8];
    length.copy_from_slice(&header[5..]);
    let length = u64::from_le_bytes(length);
    if length > MAX_ANSWER {
        return Err(format!(
            "the answer announces {length} bytes, over {MAX_ANSWER}"
        ));
    }
    Ok(length)
}

/// The counts of a `success` answer.
#[derive(Debug, PartialEq)]
pub struct Counts {
    /// Items stored.
    pub processed: u64,
    /// Items refused.
    pub failed: u64,
    /// Items received.
    pub total: u64,
}

/// What an answer's JSON means for a batch of `sent` items (see the table
/// in the module's documentation); `server` names the other end.
pub fn outcome(server: &str, body: &[u8], sent: usize) -> Result<Counts, DeliveryError> {
    let answer: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        DeliveryError::Retryable(format!("zabbix {server}: the answer is not JSON: {e}"))
    })?;
    let response = answer["response"].as_str().unwrap_or_default();
    let info = answer["info"].as_str().unwrap_or_default();
    if response != "success" {
        return Err(DeliveryError::Permanent(format!(
            "zabbix {server} refused the request: response {response:?}, info {info:?}"
        )));
    }
    let count = |name: &str| -> Option<u64> {
        info.split(';')
            .filter_map(|part| part.trim().split_once(':'))
            .find(|(k, _)| k.trim() == name)
            .and_then(|(_, v)| v.trim().parse().ok())
    };
    let (Some(processed), Some(failed), Some(total)) =
        (count("processed"), count("failed"), count("total"))
    else {
        return Err(DeliveryError::Retryable(format!(
            "zabbix {server}: cannot read the counts in info {info:?}"
        )));
    };
    if failed > 0 || processed < sent as u64 {
        return Err(DeliveryError::Permanent(format!(
            "zabbix {server} refused {failed} of {total} items (processed {processed}): \
             items whose host or key does not exist, that are not trapper items, or whose \
             value does not fit the item's type"
        )));
    }
    Ok(Counts {
        processed,
        failed,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmon_sdk::Severity;

    fn settings(value: Value) -> Settings {
        Settings {
            server: "zbx:10051".into(),
            host: "{service}".into(),
            key: "wasmon.event[{type}]".into(),
            value,
            timeout: std::time::Duration::from_secs(1),
            events: Default::default(),
        }
    }

    fn event(id: &str, service: Option<&str>) -> Event {
        Event {
            id: id.into(),
            time_ms: 1_714_564_800_123,
            event_type: "task.failed".into(),
            source: "ingest".into(),
            service: service.map(Into::into),
            component: None,
            severity: Severity::Critical,
            detail: Some("boom".into()),
            attributes: Vec::new(),
            alert: None,
        }
    }

    #[test]
    fn request_frame_and_items() {
        let (a, b) = (event("e1", Some("api")), event("e2", None));
        let message = request(&settings(Value::Json), &[&a, &b]).unwrap();
        assert_eq!(&message[..5], MAGIC);
        let mut len = [0u8; 8];
        len.copy_from_slice(&message[5..13]);
        assert_eq!(u64::from_le_bytes(len) as usize, message.len() - HEADER_LEN);
        let json: serde_json::Value = serde_json::from_slice(&message[HEADER_LEN..]).unwrap();
        assert_eq!(json["request"], "sender data");
        let items = json["data"].as_array().unwrap();
        assert_eq!(items[0]["host"], "api");
        assert_eq!(items[1]["host"], "none");
        assert_eq!(items[0]["key"], "wasmon.event[task.failed]");
        assert_eq!(items[0]["clock"], 1_714_564_800u64);
        assert_eq!(items[0]["ns"], 123_000_000u64);
        let value: serde_json::Value =
            serde_json::from_str(items[0]["value"].as_str().unwrap()).unwrap();
        assert_eq!(value["id"], "e1");
        let message = request(&settings(Value::Status), &[&a]).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&message[HEADER_LEN..]).unwrap();
        assert_eq!(json["data"][0]["value"], "ALERT");
    }

    #[test]
    fn headers() {
        let mut header = [0u8; HEADER_LEN];
        header[..5].copy_from_slice(MAGIC);
        header[5] = 42;
        assert_eq!(answer_length(&header), Ok(42));
        header[4] = 0x03;
        assert!(answer_length(&header).unwrap_err().contains("0x03"));
        assert!(
            answer_length(b"HTTP/1.1 400 ")
                .unwrap_err()
                .contains("not a Zabbix")
        );
        let mut big = [0u8; HEADER_LEN];
        big[..5].copy_from_slice(MAGIC);
        big[5..].copy_from_slice(&(MAX_ANSWER + 1).to_le_bytes());
        assert!(answer_length(&big).is_err());
    }

    #[test]
    fn answers_classify() {
        let ok = br#"{"response":"success","info":"processed: 2; failed: 0; total: 2; seconds spent: 0.000055"}"#;
        assert_eq!(
            outcome("z", ok, 2),
            Ok(Counts {
                processed: 2,
                failed: 0,
                total: 2
            })
        );
        let partial = br#"{"response":"success","info":"processed: 1; failed: 1; total: 2; seconds spent: 0.000055"}"#;
        assert!(matches!(
            outcome("z", partial, 2),
            Err(DeliveryError::Permanent(m)) if m.contains("refused 1 of 2 items (processed 1)")
        ));
        let refused = br#"{"response":"failed","info":"cannot parse"}"#;
        assert!(matches!(
            outcome("z", refused, 1),
            Err(DeliveryError::Permanent(_))
        ));
        assert!(matches!(
            outcome("z", b"garbage", 1),
            Err(DeliveryError::Retryable(_))
        ));
        let no_counts = br#"{"response":"success","info":""}"#;
        assert!(matches!(
            outcome("z", no_counts, 1),
            Err(DeliveryError::Retryable(_))
        ));
    }
}
