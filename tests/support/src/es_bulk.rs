//! [`EsBulk`]: an Elasticsearch `_bulk` receiver. No Elasticsearch server can
//! be installed from the package registries here, so this implements the part
//! of its API a sink uses, with Elasticsearch's semantics:
//!
//! - `POST /_bulk` and `POST /{index}/_bulk` (the default `_index`); any
//!   other route is a 404 in Elasticsearch's error shape;
//! - `Content-Type` must be `application/x-ndjson` or `application/json`
//!   (else 406); the body must end with a newline and hold at least one
//!   action (else 400 `illegal_argument_exception` /
//!   `action_request_validation_exception`); an action line that is not a
//!   one-key object of `index`, `create`, `update` or `delete` fails the whole
//!   request with 400 (`update` is answered per item as unsupported here);
//! - per item: `index` stores the source under `_index`/`_id` (201
//!   `created`, or 200 `updated` with the next `_version`: a re-sent id
//!   overwrites, never duplicates); `create` answers 409
//!   `version_conflict_engine_exception` for an existing id; `delete` 200 or
//!   404 `not_found`; a source that is not a JSON object is a 400
//!   `document_parsing_exception` for that item only; the answer is
//!   `{"took", "errors", "items": [{ACTION: {"_index", "_id", "status", ...}}]}`
//!   in request order, `errors` true when any item failed.
//!
//! Scripted faults: [`EsBulk::fail_items`] makes the next N items whose
//! source contains a text fail with a status (429
//! `es_rejected_execution_exception`, 5xx `unavailable_shards_exception`,
//! 400 `document_parsing_exception`, ...), nothing stored;
//! [`EsBulk::fail_requests`] answers the next N requests with a status
//! as a whole; [`EsBulk::require_authorization`] answers 401
//! `security_exception` without the given header.

use crate::serve::Serving;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// One `_bulk` request as received.
#[derive(Debug, Clone)]
pub struct BulkRequest {
    /// Path and query, as sent.
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// `(action, _index, _id)` of each item, in order (empty when the
    /// request failed as a whole before its items were read).
    pub items: Vec<(String, String, String)>,
    /// The status the request was answered with.
    pub status: u16,
}

/// A stored document.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Its `_version`: 1, then one more per overwrite.
    pub version: u64,
    /// Its source.
    pub source: Value,
}

#[derive(Debug)]
struct ItemScript {
    needle: String,
    status: u16,
    remaining: usize,
}

#[derive(Debug, Default)]
struct Inner {
    /// index → id → document.
    indices: BTreeMap<String, BTreeMap<String, Document>>,
    requests: Vec<BulkRequest>,
    item_scripts: Vec<ItemScript>,
    /// (status, how many more requests).
    request_script: Option<(u16, usize)>,
    authorization: Option<String>,
    next_auto_id: u64,
}

#[derive(Debug, Default)]
struct Shared {
    inner: Mutex<Inner>,
    changed: Condvar,
}

/// A `_bulk` receiver on `127.0.0.1:0`; stops when dropped.
#[derive(Debug)]
pub struct EsBulk {
    serving: Serving,
    shared: Arc<Shared>,
}

impl EsBulk {
    /// Starts a receiver with no documents and no scripted faults.
    pub fn start() -> EsBulk {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("cannot bind a loopback port");
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new()
            .fallback(serve)
            .with_state(shared.clone());
        EsBulk {
            serving: Serving::start(listener, app, "es-bulk"),
            shared,
        }
    }

    /// `127.0.0.1:PORT`, for an allow-list.
    pub fn addr(&self) -> SocketAddr {
        self.serving.addr()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The next `times` items whose source line contains `needle` fail with
    /// `status` (nothing stored); `usize::MAX` for ever.
    pub fn fail_items(&self, needle: &str, status: u16, times: usize) {
        self.shared
            .inner
            .lock()
            .unwrap()
            .item_scripts
            .push(ItemScript {
                needle: needle.to_string(),
                status,
                remaining: times,
            });
    }

    /// The next `times` requests are answered `status` as a whole, nothing stored.
    pub fn fail_requests(&self, status: u16, times: usize) {
        self.shared.inner.lock().unwrap().request_script = Some((status, times));
    }

    /// From now on, a request without `Authorization: value` gets a 401.
    pub fn require_authorization(&self, value: &str) {
        self.shared.inner.lock().unwrap().authorization = Some(value.to_string());
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<BulkRequest> {
        self.shared.inner.lock().unwrap().requests.clone()
    }

    /// How many times `id` was sent, in any request.
    pub fn times_sent(&self, id: &str) -> usize {
        self.requests()
            .iter()
            .flat_map(|r| r.items.iter())
            .filter(|(_, _, i)| i == id)
            .count()
    }

    /// Every stored document: index → id → document.
    pub fn indices(&self) -> BTreeMap<String, BTreeMap<String, Document>> {
        self.shared.inner.lock().unwrap().indices.clone()
    }

    /// The index and document stored under `id`, in any index.
    pub fn document(&self, id: &str) -> Option<(String, Document)> {
        self.indices()
            .into_iter()
            .find_map(|(index, docs)| docs.get(id).map(|d| (index, d.clone())))
    }

    /// Waits until at least `n` documents are stored; panics with the
    /// requests so far on timeout.
    pub fn wait_for_documents(
        &self,
        n: usize,
        timeout: Duration,
    ) -> BTreeMap<String, BTreeMap<String, Document>> {
        let deadline = Instant::now() + timeout;
        let mut inner = self.shared.inner.lock().unwrap();
        loop {
            let count: usize = inner.indices.values().map(BTreeMap::len).sum();
            if count >= n {
                return inner.indices.clone();
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                panic!(
                    "{count} of {n} documents stored within {timeout:?}; requests: {:#?}",
                    inner.requests
                );
            };
            inner = self.shared.changed.wait_timeout(inner, left).unwrap().0;
        }
    }
}

async fn serve(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let (status, answer) = {
        let mut inner = shared.inner.lock().unwrap();
        let mut request = BulkRequest {
            path: uri
                .path_and_query()
                .map_or_else(|| uri.path().to_string(), |p| p.to_string()),
            authorization: header("authorization"),
            items: Vec::new(),
            status: 200,
        };
        let (status, answer) = handle(
            &mut inner,
            &method,
            uri.path(),
            header("content-type").as_deref(),
            &body,
            &mut request,
        );
        request.status = status;
        inner.requests.push(request);
        (status, answer)
    };
    shared.changed.notify_all();
    axum::response::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(answer.to_string()))
        .expect("a receiver response is valid")
}

/// Elasticsearch's error shape for a whole request.
fn error(status: u16, kind: &str, reason: &str) -> (u16, Value) {
    let cause = json!({"type": kind, "reason": reason});
    (
        status,
        json!({"error": {"root_cause": [cause.clone()], "type": kind, "reason": reason}, "status": status}),
    )
}

/// The error type Elasticsearch reports for an item failing with `status`.
fn item_error_type(status: u16) -> &'static str {
    match status {
        429 => "es_rejected_execution_exception",
        400 => "document_parsing_exception",
        409 => "version_conflict_engine_exception",
        404 => "index_not_found_exception",
        403 => "cluster_block_exception",
        500..=599 => "unavailable_shards_exception",
        _ => "illegal_argument_exception",
    }
}

fn handle(
    inner: &mut Inner,
    method: &Method,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
    request: &mut BulkRequest,
) -> (u16, Value) {
    if let Some(required) = &inner.authorization
        && request.authorization.as_deref() != Some(required.as_str())
    {
        return error(
            401,
            "security_exception",
            "missing authentication credentials for REST request [/_bulk]",
        );
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let default_index = match segments.as_slice() {
        ["_bulk"] => None,
        [index, "_bulk"] => Some(index.to_string()),
        _ => {
            return error(
                404,
                "resource_not_found_exception",
                &format!("no handler found for uri [{path}] and method [{method}]"),
            );
        }
    };
    if method != Method::POST && method != Method::PUT {
        return error(
            405,
            "method_not_allowed",
            &format!(
                "Incorrect HTTP method for uri [{path}] and method [{method}], allowed: [POST, PUT]"
            ),
        );
    }
    let media = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media != "application/x-ndjson" && media != "application/json" {
        return error(
            406,
            "media_type_header_exception",
            &format!(
                "Content-Type header [{}] is not supported",
                content_type.unwrap_or("")
            ),
        );
    }
    if let Some((status, remaining)) = inner.request_script.as_mut()
        && *remaining > 0
    {
        *remaining -= 1;
        let status = *status;
        return error(
            status,
            item_error_type(status),
            "scripted failure of the whole request",
        );
    }
    if body.is_empty() || body.iter().all(u8::is_ascii_whitespace) {
        return error(
            400,
            "action_request_validation_exception",
            "Validation Failed: 1: no requests added;",
        );
    }
    if body.last() != Some(&b'\n') {
        return error(
            400,
            "illegal_argument_exception",
            "The bulk request must be terminated by a newline [\\n]",
        );
    }
    // Read every action first: a malformed action line fails the whole request.
    let mut lines = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace));
    let mut actions = Vec::new();
    while let Some(line) = lines.next() {
        let action = match serde_json::from_slice::<Value>(line) {
            Ok(Value::Object(action)) if action.len() == 1 => action.into_iter().next(),
            _ => None,
        };
        let Some((op, meta)) = action else {
            return error(
                400,
                "x_content_parse_exception",
                &format!("Malformed action/metadata line [{}]", actions.len() * 2 + 1),
            );
        };
        if !["index", "create", "update", "delete"].contains(&op.as_str()) {
            return error(
                400,
                "illegal_argument_exception",
                &format!(
                    "Malformed action/metadata line, expected one of [create, delete, index, update] but found [{op}]"
                ),
            );
        }
        let Some(index) = meta["_index"]
            .as_str()
            .map(String::from)
            .or_else(|| default_index.clone())
        else {
            return error(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: index is missing;",
            );
        };
        let id = meta["_id"].as_str().map(String::from);
        let source = if op == "delete" {
            None
        } else {
            match lines.next() {
                Some(source) => Some(source.to_vec()),
                None => {
                    return error(
                        400,
                        "illegal_argument_exception",
                        "The bulk request must be terminated by a newline [\\n]",
                    );
                }
            }
        };
        actions.push((op, index, id, source));
    }
    let mut errors = false;
    let mut items = Vec::new();
    for (op, index, id, source) in actions {
        let id = id.unwrap_or_else(|| {
            inner.next_auto_id += 1;
            format!("auto-{}", inner.next_auto_id)
        });
        request.items.push((op.clone(), index.clone(), id.clone()));
        let item = apply(inner, &op, &index, &id, source.as_deref());
        errors |= item["status"]
            .as_u64()
            .is_none_or(|s| s >= 300 && !(op == "delete" && s == 404));
        items.push(json!({ op: item }));
    }
    (200, json!({"took": 1, "errors": errors, "items": items}))
}

/// One item: scripted failure, or what Elasticsearch does with it.
fn apply(inner: &mut Inner, op: &str, index: &str, id: &str, source: Option<&[u8]>) -> Value {
    let failed = |status: u16, reason: String| {
        json!({"_index": index, "_id": id, "status": status,
               "error": {"type": item_error_type(status), "reason": reason}})
    };
    let text = source.map(String::from_utf8_lossy).unwrap_or_default();
    if let Some(script) = inner
        .item_scripts
        .iter_mut()
        .find(|s| s.remaining > 0 && text.contains(&s.needle))
    {
        script.remaining = script.remaining.saturating_sub(1);
        return failed(
            script.status,
            format!("scripted failure of [{}]", script.needle),
        );
    }
    let docs = inner.indices.entry(index.to_string()).or_default();
    match op {
        "delete" => {
            let found = docs.remove(id).is_some();
            let status = if found { 200 } else { 404 };
            json!({"_index": index, "_id": id, "status": status,
                   "result": if found { "deleted" } else { "not_found" }})
        }
        "update" => failed(400, "update is not supported by this receiver".into()),
        _ => {
            let source = match serde_json::from_slice::<Value>(source.unwrap_or_default()) {
                Ok(Value::Object(source)) => Value::Object(source),
                _ => {
                    return failed(
                        400,
                        format!("[1:1] failed to parse: the source of [{id}] is not a JSON object"),
                    );
                }
            };
            let version = match docs.get(id) {
                Some(_) if op == "create" => {
                    return failed(
                        409,
                        format!("[{id}]: version conflict, document already exists"),
                    );
                }
                Some(doc) => doc.version + 1,
                None => 1,
            };
            docs.insert(id.to_string(), Document { version, source });
            let (status, result) = if version == 1 {
                (201, "created")
            } else {
                (200, "updated")
            };
            json!({"_index": index, "_id": id, "_version": version, "result": result,
                   "status": status, "_shards": {"total": 1, "successful": 1, "failed": 0}})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(inner: &mut Inner, body: &str) -> (u16, Value) {
        let mut request = BulkRequest {
            path: "/_bulk".into(),
            authorization: None,
            items: Vec::new(),
            status: 0,
        };
        handle(
            inner,
            &Method::POST,
            "/_bulk",
            Some("application/x-ndjson"),
            body.as_bytes(),
            &mut request,
        )
    }

    #[test]
    fn items_are_stored_idempotently_and_scripted_failures_are_per_item() {
        let mut inner = Inner::default();
        let body = "{\"index\":{\"_index\":\"e\",\"_id\":\"a\"}}\n{\"n\":1}\n{\"index\":{\"_index\":\"e\",\"_id\":\"b\"}}\n{\"n\":2,\"flaky\":1}\n";
        inner.item_scripts.push(ItemScript {
            needle: "flaky".into(),
            status: 429,
            remaining: 1,
        });
        let (status, answer) = bulk(&mut inner, body);
        assert_eq!(status, 200);
        assert_eq!(answer["errors"], true);
        assert_eq!(answer["items"][0]["index"]["status"], 201);
        assert_eq!(answer["items"][1]["index"]["status"], 429);
        assert_eq!(
            answer["items"][1]["index"]["error"]["type"],
            "es_rejected_execution_exception"
        );
        let (_, answer) = bulk(&mut inner, body);
        assert_eq!(answer["errors"], false);
        assert_eq!(answer["items"][0]["index"]["result"], "updated");
        assert_eq!(answer["items"][0]["index"]["_version"], 2);
        assert_eq!(inner.indices["e"].len(), 2);
    }

    #[test]
    fn malformed_requests_fail_whole() {
        let mut inner = Inner::default();
        assert_eq!(bulk(&mut inner, "").0, 400);
        assert_eq!(
            bulk(&mut inner, "{\"index\":{\"_index\":\"e\"}}\n{}").0,
            400,
            "no final newline"
        );
        assert_eq!(bulk(&mut inner, "not json\n{}\n").0, 400);
        assert_eq!(bulk(&mut inner, "{\"index\":{}}\n{}\n").0, 400, "no index");
        let (status, answer) = bulk(
            &mut inner,
            "{\"index\":{\"_index\":\"e\",\"_id\":\"x\"}}\n[1]\n",
        );
        assert_eq!(status, 200);
        assert_eq!(answer["items"][0]["index"]["status"], 400);
    }
}
