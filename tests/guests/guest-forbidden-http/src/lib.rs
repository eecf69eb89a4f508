//! Fixture `guest-forbidden-http` (hostile): `collect()` calls `http::get` on
//! a URL its manifest will not grant (by default the cloud metadata address
//! `http://169.254.169.254/latest/meta-data/`; `[config] url` overrides it)
//! and returns what came back as an error:
//! `forbidden-http: GET <url>: not-granted: <host's detail>`, or
//! `forbidden-http: GET <url>: unexpectedly answered HTTP <status>` if the
//! host let it through. The host must answer `not-granted` without any
//! network traffic and count a policy violation.

use wasmon_sdk::http::{self, HttpError};
use wasmon_sdk::{Collector, Error, Sample};

/// The URL asked for when `[config] url` is absent.
const DEFAULT_URL: &str = "http://169.254.169.254/latest/meta-data/";

/// The collector: the URL to ask for.
pub struct ForbiddenHttp {
    url: String,
}

impl Collector for ForbiddenHttp {
    fn init() -> Result<Self, Error> {
        Ok(ForbiddenHttp {
            url: wasmon_sdk::config::value("url").unwrap_or_else(|| DEFAULT_URL.into()),
        })
    }

    fn collect(&mut self) -> Result<Vec<Sample>, Error> {
        let what = match http::get(&self.url) {
            Ok(response) => format!("unexpectedly answered HTTP {}", response.status),
            Err(HttpError::NotGranted(detail)) => format!("not-granted: {detail}"),
            Err(HttpError::InvalidRequest(detail)) => format!("invalid-request: {detail}"),
            Err(HttpError::Timeout) => "timeout".into(),
            Err(HttpError::Transport(detail)) => format!("transport: {detail}"),
            Err(HttpError::TooLarge(cap)) => format!("too-large: {cap}"),
        };
        Err(Error::new(format!(
            "forbidden-http: GET {}: {what}",
            self.url
        )))
    }
}

wasmon_sdk::export_collector!(ForbiddenHttp);
