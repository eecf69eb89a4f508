//! Outbound HTTP to the hosts the manifest allow-lists:
//!
//! ```toml
//! [capabilities.http]
//! allow = ["127.0.0.1:8080", "api.example.com"]
//! timeout = "5s"
//! max_response_bytes = 1048576
//! ```

use crate::Label;
use crate::bindings::wasmon::plugin::http as wit;

pub use wit::{HttpError, Method, Request, Response};

/// Sends a request.
pub fn send(request: &Request) -> Result<Response, HttpError> {
    wit::send(request)
}

/// `GET url`.
pub fn get(url: &str) -> Result<Response, HttpError> {
    send(&Request {
        method: Method::Get,
        url: url.into(),
        headers: Vec::new(),
        body: None,
        timeout_ms: None,
    })
}

/// `POST url` with a JSON body.
pub fn post_json<T: serde::Serialize>(url: &str, body: &T) -> Result<Response, HttpError> {
    let body = serde_json::to_vec(body).map_err(|e| HttpError::InvalidRequest(e.to_string()))?;
    send(&Request {
        method: Method::Post,
        url: url.into(),
        headers: vec![Label::new("content-type", "application/json")],
        body: Some(body),
        timeout_ms: None,
    })
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Request {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
            timeout_ms: None,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(Label::new(name, value));
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Sets the timeout (capped by the manifest and the call's time budget).
    pub fn with_timeout_ms(mut self, timeout_ms: u32) -> Self {
        self.timeout_ms = Some(timeout_ms);
        self
    }
}

impl Response {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// The body as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

impl std::str::FromStr for Method {
    type Err = String;

    /// Parses a method name, case-insensitively (`"GET"`, `"post"`).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Ok(match name.to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => {
                return Err(format!(
                    "unknown HTTP method {name:?} (expected GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS)"
                ));
            }
        })
    }
}

impl Method {
    /// The method's name as sent on the wire: `GET`, `POST`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
        }
    }
}
