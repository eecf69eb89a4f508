//! [`Recorder`]: an HTTP server on `127.0.0.1:0` that records every request and
//! answers with a response the test can change at any time. A probe target, a
//! webhook receiver, a Prometheus scrape target.
//!
//! It runs axum on a thread of its own ([`crate::serve`]), so it works the same
//! from plain and async tests, and dropping it never blocks a runtime.

use crate::serve::Serving;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// One request as the recorder received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path and query, as sent: `/hook?x=1`.
    pub path: String,
    /// Headers, names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// When it arrived.
    pub received: Instant,
}

impl RecordedRequest {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("request body is not JSON ({e}): {}", self.text()))
    }
}

/// What the recorder answers.
#[derive(Debug, Clone)]
struct Canned {
    status: u16,
    content_type: String,
    body: Vec<u8>,
    delay: Duration,
    /// Extra response headers.
    headers: Vec<(String, String)>,
}

#[derive(Debug)]
struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
    arrived: Condvar,
    canned: Mutex<Canned>,
}

/// A recording HTTP server; stops when dropped.
#[derive(Debug)]
pub struct Recorder {
    serving: Serving,
    shared: Arc<Shared>,
}

impl Recorder {
    /// Starts a recorder answering `200 ok` to everything.
    pub fn start() -> Recorder {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("cannot bind a loopback port");
        Recorder::serve(listener)
    }

    /// Starts a recorder on `addr`, the address of one that was dropped (a
    /// target coming back); retries the bind for a few seconds while the old
    /// one lets go of the port.
    pub fn start_on(addr: SocketAddr) -> Recorder {
        Recorder::serve(crate::serve::bind_again(addr))
    }

    fn serve(listener: std::net::TcpListener) -> Recorder {
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            canned: Mutex::new(Canned {
                status: 200,
                content_type: "text/plain; charset=utf-8".into(),
                body: b"ok".to_vec(),
                delay: Duration::ZERO,
                headers: Vec::new(),
            }),
        });
        let app = axum::Router::new()
            .fallback(record)
            .with_state(shared.clone());
        Recorder {
            serving: Serving::start(listener, app, "recorder"),
            shared,
        }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.serving.addr()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    /// Answers `status` from now on (body unchanged).
    pub fn set_status(&self, status: u16) {
        self.shared.canned.lock().unwrap().status = status;
    }

    /// Answers `status` with `body` of type `content_type` from now on.
    pub fn set_response(&self, status: u16, content_type: &str, body: impl Into<Vec<u8>>) {
        let mut canned = self.shared.canned.lock().unwrap();
        canned.status = status;
        canned.content_type = content_type.to_string();
        canned.body = body.into();
    }

    /// Serves `text` as a Prometheus scrape target would.
    pub fn serve_metrics(&self, text: &str) {
        self.set_response(200, "text/plain; version=0.0.4; charset=utf-8", text);
    }

    /// Adds the header `name: value` to every answer from now on.
    pub fn set_header(&self, name: &str, value: &str) {
        let mut canned = self.shared.canned.lock().unwrap();
        canned
            .headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        canned.headers.push((name.to_string(), value.to_string()));
    }

    /// Answers without extra headers from now on.
    pub fn clear_headers(&self) {
        self.shared.canned.lock().unwrap().headers.clear();
    }

    /// Waits `delay` before answering each request from now on (a slow server).
    pub fn set_delay(&self, delay: Duration) {
        self.shared.canned.lock().unwrap().delay = delay;
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Forgets the requests so far.
    pub fn clear(&self) {
        self.shared.requests.lock().unwrap().clear();
    }

    /// Waits until at least `n` requests arrived and returns all of them; panics
    /// with what did arrive on timeout.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let deadline = Instant::now() + timeout;
        let mut requests = self.shared.requests.lock().unwrap();
        while requests.len() < n {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                panic!(
                    "{} of {n} requests arrived at the recorder within {timeout:?}: {:#?}",
                    requests.len(),
                    *requests
                );
            };
            requests = self.shared.arrived.wait_timeout(requests, left).unwrap().0;
        }
        requests.clone()
    }
}

async fn record(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let request = RecordedRequest {
        method: method.to_string(),
        path: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_string(), |p| p.to_string()),
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
        received: Instant::now(),
    };
    shared.requests.lock().unwrap().push(request);
    shared.arrived.notify_all();
    let canned = shared.canned.lock().unwrap().clone();
    if !canned.delay.is_zero() {
        tokio::time::sleep(canned.delay).await;
    }
    let mut response = axum::response::Response::builder()
        .status(canned.status)
        .header("content-type", canned.content_type);
    for (name, value) in &canned.headers {
        response = response.header(name, value);
    }
    response
        .body(axum::body::Body::from(canned.body))
        .expect("a canned response is valid")
}
