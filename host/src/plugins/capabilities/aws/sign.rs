//! SigV4 signing with `aws-sigv4` (never by hand), in one place for the
//! host: the `storage` capability signs its S3 requests here, and the
//! `aws` capability signs a plugin's `http` requests here.

use crate::plugins::capabilities::Secret;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use std::time::SystemTime;

/// The keys a request is signed with; never logged nor shown.
#[derive(Clone, Debug)]
pub struct Keys {
    /// The access key id.
    pub access_key: Secret,
    /// The secret access key.
    pub secret_key: Secret,
    /// A session token (temporary credentials), sent as `X-Amz-Security-Token`.
    pub session_token: Option<Secret>,
}

/// How a service canonicalises requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// S3: the path encoded once and never normalised, and the payload's
    /// hash sent as `x-amz-content-sha256`.
    S3,
    /// Every other service: SigV4's defaults.
    Standard,
}

/// What to sign: a request as it will be sent.
pub struct Signable<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The whole URL, encoded as it will be sent.
    pub url: &'a str,
    /// Headers to sign with it (`content-type`, `x-amz-target`, ...).
    pub headers: &'a [(&'a str, &'a str)],
    /// The body.
    pub body: &'a [u8],
}

/// The headers to add to `request` (`authorization`, `x-amz-date`, and
/// `x-amz-security-token` / `x-amz-content-sha256` where they apply),
/// signed for `service` in `region` at `time`.
pub fn headers(
    keys: &Keys,
    region: &str,
    service: &str,
    flavor: Flavor,
    request: &Signable<'_>,
    time: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    let mut settings = SigningSettings::default();
    if flavor == Flavor::S3 {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    }
    let identity = Credentials::new(
        keys.access_key.0.as_str(),
        keys.secret_key.0.as_str(),
        keys.session_token.as_ref().map(|t| t.0.clone()),
        None,
        "wasmon",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| format!("cannot sign the request: {e}"))?
        .into();
    let signable = SignableRequest::new(
        request.method,
        request.url,
        request.headers.iter().copied(),
        SignableBody::Bytes(request.body),
    )
    .map_err(|e| format!("cannot sign the request: {e}"))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| format!("cannot sign the request: {e}"))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(token: Option<&str>) -> Keys {
        Keys {
            access_key: Secret("AKIDEXAMPLE".into()),
            secret_key: Secret("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
            session_token: token.map(|t| Secret(t.into())),
        }
    }

    #[test]
    fn signs_with_the_scope_and_the_token() {
        let request = Signable {
            method: "POST",
            url: "https://logs.eu-west-1.amazonaws.com/",
            headers: &[
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amz-target", "Logs_20140328.PutLogEvents"),
            ],
            body: b"{}",
        };
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160);
        let out = headers(
            &keys(Some("tok")),
            "eu-west-1",
            "logs",
            Flavor::Standard,
            &request,
            time,
        )
        .unwrap();
        let get = |n: &str| {
            out.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.as_str())
        };
        let auth = get("authorization").unwrap();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-1/logs/aws4_request"
            ),
            "{auth}"
        );
        assert!(auth.contains("x-amz-target"), "{auth}");
        assert!(!auth.contains("wJalr"), "the secret is never in a header");
        assert_eq!(get("x-amz-date"), Some("20150830T123600Z"));
        assert_eq!(get("x-amz-security-token"), Some("tok"));
        let s3 = headers(&keys(None), "us-east-1", "s3", Flavor::S3, &request, time).unwrap();
        assert!(s3.iter().any(|(k, _)| k == "x-amz-content-sha256"));
        assert!(!s3.iter().any(|(k, _)| k == "x-amz-security-token"));
    }
}
