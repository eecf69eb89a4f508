//! The `aws` capability (`[capabilities.aws]`): the host signs a plugin's
//! `http` requests to AWS with SigV4, with credentials from the host's
//! environment that the plugin never sees. It adds no WIT interface: a
//! plugin asks for signing by naming the service in the request header
//! `x-wasmon-aws-service` (`logs`, `monitoring`, ...); the host removes that
//! header, checks the service is granted and the URL is that service's
//! endpoint, drops any `Authorization`/`X-Amz-Date`/`X-Amz-Security-Token`/
//! `X-Amz-Content-Sha256` the plugin set, and adds its own. The request then
//! goes out like any other: through `[capabilities.http]`'s allow-list and
//! self-address check, with its timeout and size cap. A request without the
//! header is sent unsigned.
//!
//! A signing request for a service the manifest does not grant, to another
//! origin than that service's endpoint, or without `[capabilities.aws]`, is
//! `not-granted` and a policy violation (a `capability` fault): a signed
//! request is a bearer credential for 15 minutes, so it only ever goes where
//! the manifest says. Signed requests are counted in
//! `wasmon_plugin_capability_calls_total{capability="aws",result}`.
//!
//! - `grant`: the manifest section.
//! - `sign`: SigV4 through `aws-sigv4`, shared with the `storage` capability.

mod grant;
pub mod sign;

pub use grant::{AwsGrant, Section};

use super::{Capability, KeyError, Services};
use crate::plugins::bindings::{http, types};
use std::sync::Arc;
use std::time::SystemTime;

/// The request header that asks the host to sign for a service.
pub const SERVICE_HEADER: &str = "x-wasmon-aws-service";

/// Headers the host sets on a signed request; a plugin's own are dropped.
const SIGNING_HEADERS: [&str; 4] = [
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

/// The `aws` capability.
pub struct Aws;

impl Capability for Aws {
    const NAME: &'static str = "aws";
    type Section = Section;
    type Grant = AwsGrant;
    type Shared = ();
    type State = ();

    fn grant(section: Section) -> Result<AwsGrant, KeyError> {
        section.resolve()
    }

    fn shared() -> anyhow::Result<()> {
        Ok(())
    }

    fn state(
        _plugin: &Arc<str>,
        _grant: Option<&AwsGrant>,
        _shared: &(),
        _services: &Services<'_>,
    ) {
    }
}

/// What [`sign_request`] did.
#[derive(Debug, PartialEq)]
pub enum Signing {
    /// The request did not ask to be signed.
    Unsigned,
    /// Signed for this service.
    Signed(String),
    /// Not allowed: a policy violation, with why.
    Refused(String),
    /// Allowed but could not be signed (a header the signer refuses).
    Failed(String),
}

/// Signs `request`, to be sent to `url`, when it carries [`SERVICE_HEADER`]
/// (which is removed either way), per `grant`.
pub fn sign_request(
    grant: Option<&AwsGrant>,
    request: &mut http::Request,
    url: &reqwest::Url,
    now: SystemTime,
) -> Signing {
    let asked: Vec<String> = request
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(SERVICE_HEADER))
        .map(|h| h.value.trim().to_string())
        .collect();
    if asked.is_empty() {
        return Signing::Unsigned;
    }
    request
        .headers
        .retain(|h| !h.name.eq_ignore_ascii_case(SERVICE_HEADER));
    let Some(grant) = grant else {
        return Signing::Refused(format!(
            "signing for {:?}: the manifest has no [capabilities.aws]",
            asked[0]
        ));
    };
    let [service] = asked.as_slice() else {
        return Signing::Refused(format!("{SERVICE_HEADER} given {} times", asked.len()));
    };
    let Some(endpoint) = grant.services.get(service) else {
        return Signing::Refused(format!(
            "signing for service {service:?}: not in capabilities.aws.services {:?}",
            grant.services.keys().collect::<Vec<_>>()
        ));
    };
    let origin = url.origin().ascii_serialization();
    if &origin != endpoint {
        return Signing::Refused(format!(
            "signing for service {service:?} only to its endpoint {endpoint}, not {origin}"
        ));
    }
    request.headers.retain(|h| {
        !SIGNING_HEADERS
            .iter()
            .any(|s| h.name.eq_ignore_ascii_case(s))
    });
    let headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .map(|h| (h.name.as_str(), h.value.as_str()))
        .collect();
    let method = super::http::method(request.method);
    let signable = sign::Signable {
        method: method.as_str(),
        url: url.as_str(),
        headers: &headers,
        body: request.body.as_deref().unwrap_or_default(),
    };
    match sign::headers(
        &grant.keys,
        &grant.region,
        service,
        sign::Flavor::Standard,
        &signable,
        now,
    ) {
        Ok(added) => {
            request.headers.extend(
                added
                    .into_iter()
                    .map(|(name, value)| types::Label { name, value }),
            );
            Signing::Signed(service.clone())
        }
        Err(why) => Signing::Failed(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::capabilities::Secret;
    use std::collections::BTreeMap;

    fn grant() -> AwsGrant {
        AwsGrant {
            region: "us-east-1".into(),
            services: BTreeMap::from([("logs".to_string(), "http://127.0.0.1:5000".to_string())]),
            access_key_env: "AWS_ACCESS_KEY_ID".into(),
            secret_key_env: "AWS_SECRET_ACCESS_KEY".into(),
            session_token_env: None,
            keys: sign::Keys {
                access_key: Secret("AKID".into()),
                secret_key: Secret("sekrit".into()),
                session_token: None,
            },
        }
    }

    fn request(url: &str, headers: &[(&str, &str)]) -> (http::Request, reqwest::Url) {
        let request = http::Request {
            method: http::Method::Post,
            url: url.into(),
            headers: headers
                .iter()
                .map(|(n, v)| types::Label {
                    name: (*n).into(),
                    value: (*v).into(),
                })
                .collect(),
            body: Some(b"{}".to_vec()),
            timeout_ms: None,
        };
        (request, reqwest::Url::parse(url).unwrap())
    }

    fn names(request: &http::Request) -> Vec<String> {
        request
            .headers
            .iter()
            .map(|h| h.name.to_ascii_lowercase())
            .collect()
    }

    #[test]
    fn signs_only_what_the_grant_allows() {
        let g = grant();
        let now = SystemTime::now();
        let (mut r, url) = request("http://127.0.0.1:5000/", &[("content-type", "x")]);
        assert_eq!(sign_request(Some(&g), &mut r, &url, now), Signing::Unsigned);
        assert_eq!(names(&r), ["content-type"]);

        let (mut r, url) = request(
            "http://127.0.0.1:5000/",
            &[
                ("X-Wasmon-Aws-Service", "logs"),
                ("Authorization", "forged"),
                ("content-type", "x"),
            ],
        );
        assert_eq!(
            sign_request(Some(&g), &mut r, &url, now),
            Signing::Signed("logs".into())
        );
        let n = names(&r);
        assert!(!n.contains(&SERVICE_HEADER.to_string()), "{n:?}");
        assert_eq!(n.iter().filter(|h| *h == "authorization").count(), 1);
        assert!(!r.headers.iter().any(|h| h.value == "forged"));
        assert!(n.contains(&"x-amz-date".to_string()));

        let refused = |url: &str, service: &str, grant: Option<&AwsGrant>| {
            let (mut r, parsed) = request(url, &[(SERVICE_HEADER, service)]);
            match sign_request(grant, &mut r, &parsed, now) {
                Signing::Refused(why) => why,
                other => panic!("{other:?}"),
            }
        };
        assert!(refused("http://127.0.0.1:5000/", "monitoring", Some(&g)).contains("monitoring"));
        assert!(
            refused("http://127.0.0.1:6000/", "logs", Some(&g)).contains("only to its endpoint")
        );
        assert!(refused("http://127.0.0.1:5000/", "logs", None).contains("[capabilities.aws]"));
    }
}
