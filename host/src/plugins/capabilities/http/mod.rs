//! The `http` capability (`wasmon:plugin/http`): outbound HTTP to the hosts
//! the manifest allow-lists, with a timeout (capped by the call's remaining
//! budget) and a response-size cap. No redirects are followed: the plugin
//! sees the 3xx. Whatever the allow-list says, the host's own API is off
//! limits (`egress`), checked on the IP literal or, for a name, on the
//! resolved address at connect time; `[capabilities.http] self = "read"`
//! opens `GET`/`HEAD` of its health and metrics. The longest `Retry-After`
//! of a 429 or 503 answer is kept in the call's state, for the sink loop.
//!
//! - `grant`: the manifest section `[capabilities.http]`.
//! - `egress`: the clients and the self-address check (host-wide, shared by
//!   every generation).

pub mod egress;
mod grant;

pub use egress::{Egress, SelfAddresses};
pub use grant::{HostPattern, HttpGrant, SELF_READ_PATHS, Section, SelfAccess};

use super::{Capability, KeyError, Services};
use crate::plugins::bindings::{http, types};
use crate::plugins::context::PluginCtx;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The `http` capability.
pub struct Http;

impl Capability for Http {
    const NAME: &'static str = "http";
    type Section = Section;
    type Grant = HttpGrant;
    type Shared = Egress;
    type State = Egress;

    fn grant(section: Section) -> Result<HttpGrant, KeyError> {
        section.resolve()
    }

    fn shared() -> anyhow::Result<Egress> {
        Egress::new()
    }

    fn state(
        _plugin: &Arc<str>,
        _grant: Option<&HttpGrant>,
        shared: &Egress,
        _services: &Services<'_>,
    ) -> Egress {
        // The clients pool connections host-wide; a generation shares them.
        shared.clone()
    }
}

impl http::Host for PluginCtx {
    async fn send(
        &mut self,
        request: http::Request,
    ) -> wasmtime::Result<Result<http::Response, http::HttpError>> {
        let Some(grant) = self.env.manifest.capabilities.http.clone() else {
            let why = self.deny(
                "http",
                format!("{}: the manifest has no [capabilities.http]", request.url),
            );
            return Ok(Err(http::HttpError::NotGranted(why)));
        };
        let url = match reqwest::Url::parse(&request.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => url,
            Ok(url) => {
                return Ok(Err(invalid(format!(
                    "unsupported scheme {:?}",
                    url.scheme()
                ))));
            }
            Err(e) => return Ok(Err(invalid(format!("invalid URL {:?}: {e}", request.url)))),
        };
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Ok(Err(invalid(format!("URL {:?} has no host", request.url))));
        };
        if !grant.allow.iter().any(|p| p.matches(host, port)) {
            let why = self.deny(
                "http",
                format!("{host}:{port} is not in capabilities.http.allow"),
            );
            return Ok(Err(http::HttpError::NotGranted(why)));
        }
        let asked = request
            .timeout_ms
            .map_or(grant.timeout, |ms| Duration::from_millis(u64::from(ms)));
        let timeout = asked.min(grant.timeout).min(self.call.remaining());
        if timeout.is_zero() {
            return Ok(Err(http::HttpError::Timeout));
        }
        // `[capabilities.aws]`: the host signs what asks for it (see `aws`).
        let mut request = request;
        match super::aws::sign_request(
            self.env.manifest.capabilities.aws.as_ref(),
            &mut request,
            &url,
            std::time::SystemTime::now(),
        ) {
            super::aws::Signing::Unsigned => {}
            super::aws::Signing::Signed(_) => self.count_aws("signed"),
            super::aws::Signing::Refused(why) => {
                self.count_aws("not_granted");
                return Ok(Err(http::HttpError::NotGranted(self.deny("aws", why))));
            }
            super::aws::Signing::Failed(why) => {
                self.count_aws("invalid");
                return Ok(Err(invalid(why)));
            }
        }
        let method = method(request.method);
        let env = self.env.clone();
        let client = match env
            .capabilities
            .http
            .route(&url, port, &method, grant.self_access)
        {
            Ok(client) => client,
            Err(why) => return Ok(Err(http::HttpError::NotGranted(self.deny("http", why)))),
        };
        let builder = match build(client, method, &request, url) {
            Ok(b) => b,
            Err(e) => return Ok(Err(e)),
        };
        let max = grant.max_response_bytes.0;
        let started = Instant::now();
        let result = tokio::time::timeout(timeout, exchange(builder, max)).await;
        Ok(match result {
            Err(_) => Err(http::HttpError::Timeout),
            Ok(Err(Failure::Transport(e))) => match env.capabilities.http.refusal(&e) {
                Some(why) => Err(http::HttpError::NotGranted(self.deny("http", why))),
                None => Err(transport(e)),
            },
            Ok(Err(Failure::Http(e))) => Err(e),
            Ok(Ok((status, headers, body))) => {
                self.note_retry_after(status, &headers);
                Ok(http::Response {
                    status,
                    headers,
                    body,
                    elapsed_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                })
            }
        })
    }
}

impl PluginCtx {
    /// Counts one request the `aws` capability signed or refused.
    fn count_aws(&self, result: &str) {
        self.env
            .telemetry
            .plugin_capability_calls
            .with_label_values(&[&*self.env.name, "aws", result])
            .inc();
    }

    /// Keeps the longest `Retry-After` of a 429 or 503 answer in the call's
    /// state, for the sink loop.
    fn note_retry_after(&mut self, status: u16, headers: &[types::Label]) {
        if !matches!(status, 429 | 503) {
            return;
        }
        let wait = headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("retry-after"))
            .find_map(|h| retry_after(&h.value, std::time::SystemTime::now()));
        // `None` orders before any `Some`: the longest wait wins.
        self.call.retry_after = self.call.retry_after.max(wait);
    }
}

/// A `Retry-After` value: delta-seconds or an HTTP-date (a date in the past
/// is no wait).
fn retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn invalid(message: String) -> http::HttpError {
    http::HttpError::InvalidRequest(message)
}

/// The WIT method as an HTTP method (the `aws` capability signs its name).
pub(super) fn method(method: http::Method) -> reqwest::Method {
    match method {
        http::Method::Get => reqwest::Method::GET,
        http::Method::Head => reqwest::Method::HEAD,
        http::Method::Post => reqwest::Method::POST,
        http::Method::Put => reqwest::Method::PUT,
        http::Method::Patch => reqwest::Method::PATCH,
        http::Method::Delete => reqwest::Method::DELETE,
        http::Method::Options => reqwest::Method::OPTIONS,
    }
}

fn build(
    client: &reqwest::Client,
    method: reqwest::Method,
    request: &http::Request,
    url: reqwest::Url,
) -> Result<reqwest::RequestBuilder, http::HttpError> {
    let mut headers = reqwest::header::HeaderMap::new();
    for types::Label { name, value } in &request.headers {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(format!("invalid header name {name:?}")))?;
        let value = reqwest::header::HeaderValue::from_str(value)
            .map_err(|_| invalid(format!("invalid value for header {name}")))?;
        headers.append(name, value);
    }
    let mut builder = client.request(method, url).headers(headers);
    if let Some(body) = &request.body {
        builder = builder.body(body.clone());
    }
    Ok(builder)
}

/// How an exchange failed: a transport error is examined for a refusal of
/// the host's own address before it reaches the plugin.
enum Failure {
    Transport(reqwest::Error),
    Http(http::HttpError),
}

/// Sends the request and reads at most `max` bytes of body.
async fn exchange(
    builder: reqwest::RequestBuilder,
    max: u64,
) -> Result<(u16, Vec<types::Label>, Vec<u8>), Failure> {
    let mut response = builder.send().await.map_err(Failure::Transport)?;
    if response.content_length().is_some_and(|len| len > max) {
        return Err(Failure::Http(http::HttpError::TooLarge(max)));
    }
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| types::Label {
            name: k.as_str().to_string(),
            value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
        })
        .collect();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(Failure::Transport)? {
        if body.len() as u64 + chunk.len() as u64 > max {
            return Err(Failure::Http(http::HttpError::TooLarge(max)));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, headers, body))
}

fn transport(e: reqwest::Error) -> http::HttpError {
    // The source chain says what actually failed (connection refused, TLS, ...).
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    http::HttpError::Transport(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(retry_after(" 2 ", now), Some(Duration::from_secs(2)));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:27 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-1", now), None);
    }
}
