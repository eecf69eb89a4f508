//! The little of S3 the `storage` capability speaks, over the host's
//! reqwest: path-style `GET`/`HEAD` requests signed with SigV4 by
//! `aws-sigv4` (never by hand; through the host's one signer, `aws::sign`),
//! bodies read up to a cap, and the XML answers (ListBuckets,
//! ListObjectsV2, errors) read with `roxmltree`.

use super::grant::StorageGrant;
use crate::plugins::capabilities::aws::sign;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::time::{Duration, SystemTime};

/// What SigV4 leaves unencoded in a canonical URI or query: the unreserved
/// characters. Sending exactly the canonical form makes the server's
/// canonicalisation agree with ours whatever it does with the path.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// One request: `GET`/`HEAD` of `/bucket/key?query` (all optional).
pub struct Request<'a> {
    /// `GET` or `HEAD`.
    pub method: reqwest::Method,
    /// The bucket (none: the service, ListBuckets).
    pub bucket: Option<&'a str>,
    /// The object's key.
    pub key: Option<&'a str>,
    /// Query parameters, unencoded.
    pub query: Vec<(&'static str, String)>,
}

/// A successful answer.
pub struct Answer {
    /// Its headers.
    pub headers: reqwest::header::HeaderMap,
    /// Its body (empty for `HEAD`).
    pub body: Vec<u8>,
}

/// Why a request failed.
#[derive(Debug)]
pub enum Failure {
    /// Connecting or the transfer failed, or no answer within the timeout:
    /// the source looks down.
    Connection(String),
    /// An HTTP error status, with the S3 error code and message when the
    /// body had them.
    Status {
        /// The HTTP status.
        status: u16,
        /// `SignatureDoesNotMatch`, `NoSuchBucket`, ...
        code: Option<String>,
        /// The server's message.
        message: Option<String>,
    },
    /// The body exceeded the cap (bytes).
    TooLarge(u64),
    /// The request could not be signed or the answer not read.
    Invalid(String),
}

/// Sends `request` to the grant's endpoint, signed with its key, within `timeout`.
pub async fn send(
    client: &reqwest::Client,
    grant: &StorageGrant,
    request: Request<'_>,
    timeout: Duration,
) -> Result<Answer, Failure> {
    let url = url(grant, &request);
    let signable = sign::Signable {
        method: request.method.as_str(),
        url: &url,
        headers: &[],
        body: &[],
    };
    let signed = sign::headers(
        &grant.keys,
        &grant.region,
        "s3",
        sign::Flavor::S3,
        &signable,
        SystemTime::now(),
    )
    .map_err(Failure::Invalid)?;
    let mut builder = client
        .request(request.method.clone(), &url)
        .timeout(timeout);
    for (name, value) in &signed {
        builder = builder.header(name, value);
    }
    let transport = |e: reqwest::Error| {
        if e.is_timeout() {
            Failure::Connection(format!(
                "no answer within {}",
                humantime::format_duration(timeout)
            ))
        } else {
            Failure::Connection(chain(&e))
        }
    };
    let mut response = builder.send().await.map_err(transport)?;
    let status = response.status();
    let max = grant.max_response_bytes.0;
    // A HEAD answer's length is the object's, not a body's.
    if request.method != reqwest::Method::HEAD && response.content_length().is_some_and(|n| n > max)
    {
        return Err(Failure::TooLarge(max));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if body.len() as u64 + chunk.len() as u64 > max {
            return Err(Failure::TooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    if status.is_success() {
        return Ok(Answer {
            headers: response.headers().clone(),
            body,
        });
    }
    let (code, message) = error_body(&body);
    Err(Failure::Status {
        status: status.as_u16(),
        code,
        message,
    })
}

/// The request's URL: the endpoint, the path and the query, each part
/// encoded as SigV4 canonicalises it.
fn url(grant: &StorageGrant, request: &Request<'_>) -> String {
    let mut url = grant.endpoint.clone();
    url.push('/');
    if let Some(bucket) = request.bucket {
        url.extend(utf8_percent_encode(bucket, UNRESERVED));
        if let Some(key) = request.key {
            url.push('/');
            let segments: Vec<String> = key
                .split('/')
                .map(|s| utf8_percent_encode(s, UNRESERVED).to_string())
                .collect();
            url.push_str(&segments.join("/"));
        }
    }
    for (i, (name, value)) in request.query.iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str(name);
        url.push('=');
        url.extend(utf8_percent_encode(value, UNRESERVED));
    }
    url
}

/// An error with its causes (`connection refused` is the source's source).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = e.source();
    }
    text
}

/// The `Code` and `Message` of an S3 error body, when it is one.
fn error_body(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(text) = std::str::from_utf8(body) else {
        return (None, None);
    };
    let Ok(doc) = roxmltree::Document::parse(text) else {
        return (None, None);
    };
    let field = |name: &str| {
        doc.descendants()
            .find(|n| n.tag_name().name() == name)
            .and_then(|n| n.text())
            .map(|t| t.trim().chars().take(300).collect::<String>())
    };
    (field("Code"), field("Message"))
}

/// A bucket from ListBuckets.
#[derive(Debug, PartialEq)]
pub struct Bucket {
    /// Its name.
    pub name: String,
    /// When it was created (Unix ms), when the server says.
    pub created_ms: Option<u64>,
}

/// The buckets of a ListBuckets answer.
pub fn parse_buckets(body: &[u8]) -> Result<Vec<Bucket>, String> {
    let doc = document(body)?;
    Ok(doc
        .descendants()
        .filter(|n| n.tag_name().name() == "Bucket")
        .filter_map(|b| {
            let name = child_text(b, "Name")?;
            let created_ms = child_text(b, "CreationDate").and_then(|d| rfc3339_ms(&d));
            Some(Bucket { name, created_ms })
        })
        .collect())
}

/// One page of a ListObjectsV2 answer.
#[derive(Debug, PartialEq)]
pub struct Page {
    /// Objects on the page.
    pub objects: u64,
    /// Their total size.
    pub bytes: u64,
    /// The token of the next page, when the listing is truncated.
    pub next: Option<String>,
}

/// A ListObjectsV2 page.
pub fn parse_page(body: &[u8]) -> Result<Page, String> {
    let doc = document(body)?;
    let root = doc.root_element();
    let mut page = Page {
        objects: 0,
        bytes: 0,
        next: None,
    };
    for contents in root
        .children()
        .filter(|n| n.tag_name().name() == "Contents")
    {
        page.objects += 1;
        let size = child_text(contents, "Size").unwrap_or_default();
        page.bytes += size
            .parse::<u64>()
            .map_err(|_| format!("an object's Size is not a number: {size:?}"))?;
    }
    let truncated = child_text(root, "IsTruncated").is_some_and(|t| t == "true");
    if truncated {
        match child_text(root, "NextContinuationToken").filter(|t| !t.is_empty()) {
            Some(token) => page.next = Some(token),
            None => return Err("a truncated listing without NextContinuationToken".into()),
        }
    }
    Ok(page)
}

fn document(body: &[u8]) -> Result<roxmltree::Document<'_>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the answer is not UTF-8".to_string())?;
    roxmltree::Document::parse(text).map_err(|e| format!("the answer is not XML: {e}"))
}

fn child_text(node: roxmltree::Node<'_, '_>, name: &str) -> Option<String> {
    node.children()
        .find(|n| n.tag_name().name() == name)
        .and_then(|n| n.text())
        .map(|t| t.trim().to_string())
}

/// Unix ms of an RFC 3339 time (`2026-12-02T02:07:14.000Z`).
fn rfc3339_ms(text: &str) -> Option<u64> {
    let time = humantime::parse_rfc3339_weak(text.trim_end_matches('Z'))
        .or_else(|_| humantime::parse_rfc3339(text))
        .ok()?;
    unix_ms(time)
}

/// Unix ms of an HTTP date (`Last-Modified`).
pub fn http_date_ms(text: &str) -> Option<u64> {
    unix_ms(httpdate::parse_http_date(text).ok()?)
}

fn unix_ms(time: SystemTime) -> Option<u64> {
    u64::try_from(
        time.duration_since(SystemTime::UNIX_EPOCH)
            .ok()?
            .as_millis(),
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::capabilities::Secret;

    #[test]
    fn a_listing_page_counts_objects_and_bytes() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>b</Name><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>
  <Contents><Key>a</Key><Size>10</Size></Contents>
  <Contents><Key>b/c</Key><Size>20</Size></Contents>
  <NextContinuationToken>tok+/=</NextContinuationToken>
</ListBucketResult>"#;
        assert_eq!(
            parse_page(body).unwrap(),
            Page {
                objects: 2,
                bytes: 30,
                next: Some("tok+/=".into())
            }
        );
        let last = br#"<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>"#;
        assert_eq!(parse_page(last).unwrap().next, None);
        assert!(parse_page(b"not xml").is_err());
    }

    #[test]
    fn buckets_and_errors_are_read() {
        let body = br#"<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Buckets>
<Bucket><Name>one</Name><CreationDate>2026-12-02T02:07:14.000Z</CreationDate></Bucket>
<Bucket><Name>two</Name><CreationDate>garbage</CreationDate></Bucket></Buckets></ListAllMyBucketsResult>"#;
        let buckets = parse_buckets(body).unwrap();
        assert_eq!(buckets.len(), 2);
        assert_eq!(buckets[0].created_ms, Some(1_796_177_234_000));
        assert_eq!(buckets[1].created_ms, None);
        let error = br#"<?xml version="1.0"?><Error><Code>SignatureDoesNotMatch</Code><Message>no</Message></Error>"#;
        assert_eq!(
            error_body(error),
            (Some("SignatureDoesNotMatch".into()), Some("no".into()))
        );
        assert_eq!(error_body(b""), (None, None));
    }

    #[test]
    fn keys_and_queries_are_encoded_canonically() {
        let grant = StorageGrant {
            endpoint: "http://127.0.0.1:9000".into(),
            region: "us-east-1".into(),
            access_key_env: "A".into(),
            secret_key_env: "S".into(),
            keys: sign::Keys {
                access_key: Secret("a".into()),
                secret_key: Secret("s".into()),
                session_token: None,
            },
            buckets: None,
            max_objects: 10,
            page_size: 1000,
            timeout: Duration::from_secs(1),
            max_response_bytes: crate::units::ByteSize(1024),
        };
        let request = Request {
            method: reqwest::Method::GET,
            bucket: Some("b-1"),
            key: Some("dir/a b+c~é"),
            query: vec![("continuation-token", "x+/=".into())],
        };
        assert_eq!(
            url(&grant, &request),
            "http://127.0.0.1:9000/b-1/dir/a%20b%2Bc~%C3%A9?continuation-token=x%2B%2F%3D"
        );
    }
}
