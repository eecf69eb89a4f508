//! The `storage` capability (`wasmon:plugin/storage`): read-only questions
//! to the S3-compatible server (MinIO, AWS S3, ...) the manifest names:
//! health, the buckets, a bucket's object count and bytes (ListObjectsV2,
//! paged, bounded by `max_objects`), an object's metadata (HEAD).
//!
//! - `grant`: `[capabilities.storage]`; the credentials come from the
//!   environment variables it names and never reach the plugin, a log line,
//!   an error or the API.
//! - `s3`: the requests, signed with SigV4 by `aws-sigv4`, and the answers.
//! - here: the per-generation state (the host-wide HTTP client, the
//!   `PLUGIN/storage` breaker) and the `impl Host`.
//!
//! A bucket outside the manifest's `buckets` allow-list answers
//! `not-granted`, a policy violation that ends the call as a `capability`
//! fault, like a plugin with no grant at all. Errors name the plugin, the
//! capability, the operation and the endpoint. Connection failures,
//! timeouts and 5xx answers trip the breaker; while it is open calls answer
//! `connection` at once. Calls are counted in
//! `wasmon_plugin_capability_calls_total{capability="storage",result}`.

mod grant;
mod s3;

pub use grant::{Section, StorageGrant};

use super::{Capability, KeyError, Services};
use crate::plugins::bindings::storage as wit;
use crate::plugins::breaker::Breaker;
use crate::plugins::context::{PluginCtx, PluginEnv};
use crate::telemetry::Telemetry;
use s3::{Failure, Request};
use std::sync::Arc;
use std::time::Instant;

/// The `storage` capability.
pub struct Storage;

impl Capability for Storage {
    const NAME: &'static str = "storage";
    type Section = Section;
    type Grant = StorageGrant;
    type Shared = reqwest::Client;
    type State = State;

    fn grant(section: Section) -> Result<StorageGrant, KeyError> {
        section.resolve()
    }

    fn shared() -> anyhow::Result<reqwest::Client> {
        // reqwest is built without a default TLS provider; an error here only
        // means another part of the process installed one first.
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("wasmon/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| anyhow::anyhow!("failed to build the storage HTTP client: {e}"))
    }

    fn state(
        plugin: &Arc<str>,
        grant: Option<&StorageGrant>,
        shared: &reqwest::Client,
        services: &Services<'_>,
    ) -> State {
        State {
            plugin: plugin.clone(),
            client: shared.clone(),
            telemetry: services.telemetry.clone(),
            breaker: grant.map(|_| services.breakers.get(plugin, "storage", services.breaker)),
        }
    }
}

/// One generation's state: the client (its pool is host-wide) and the breaker.
pub struct State {
    plugin: Arc<str>,
    client: reqwest::Client,
    telemetry: Arc<Telemetry>,
    /// The `PLUGIN/storage` breaker (when granted).
    breaker: Option<Arc<Breaker>>,
}

impl State {
    fn count(&self, result: &str) {
        self.telemetry
            .plugin_capability_calls
            .with_label_values(&[&*self.plugin, "storage", result])
            .inc();
    }
}

/// One granted capability call: the generation's state, the grant, what
/// the errors name, and the call's deadline.
struct Call {
    env: Arc<PluginEnv>,
    grant: StorageGrant,
    /// `ListBuckets`, `ListObjectsV2 bucket`, `HeadObject bucket/key`.
    op: String,
    deadline: Instant,
}

impl Call {
    fn state(&self) -> &State {
        &self.env.capabilities.storage
    }

    /// An error text: `plugin P: storage: WHAT (OP on ENDPOINT)`, credentials scrubbed.
    fn message(&self, what: &str) -> String {
        self.grant.scrub(&format!(
            "plugin {}: storage: {what} ({} on {})",
            self.env.name, self.op, self.grant.endpoint
        ))
    }

    /// A bucket name the server could hold, or `not-found`.
    fn valid_bucket(&self, bucket: &str) -> Result<(), wit::StorageError> {
        grant::check_bucket(bucket).map_err(|e| {
            self.state().count("not_found");
            wit::StorageError::NotFound(self.message(&e))
        })
    }

    /// Sends one request through the breaker; maps every failure to the
    /// WIT error, counts the result and feeds the breaker.
    async fn send(&self, request: Request<'_>) -> Result<s3::Answer, wit::StorageError> {
        let state = self.state();
        if let Some(Err(why)) = state.breaker.as_ref().map(|b| b.admit()) {
            state.count("breaker_open");
            return Err(wit::StorageError::Connection(self.message(&why)));
        }
        let timeout = self
            .grant
            .timeout
            .min(self.deadline.saturating_duration_since(Instant::now()));
        let result = s3::send(&state.client, &self.grant, request, timeout).await;
        let trip = |message: &str| {
            if let Some(b) = &state.breaker {
                b.failure(message);
            }
        };
        let healthy = || {
            if let Some(b) = &state.breaker {
                b.success();
            }
        };
        match result {
            Ok(answer) => {
                healthy();
                Ok(answer)
            }
            Err(Failure::Connection(e)) => {
                state.count("connection");
                let message = self.message(&format!("cannot reach the server: {e}"));
                trip(&message);
                Err(wit::StorageError::Connection(message))
            }
            Err(Failure::TooLarge(max)) => {
                healthy();
                state.count("too_large");
                Err(wit::StorageError::TooLarge(max))
            }
            Err(Failure::Invalid(e)) => {
                state.count("server");
                Err(wit::StorageError::Server(self.message(&e)))
            }
            Err(Failure::Status {
                status,
                code,
                message,
            }) => {
                let detail = match (&code, &message) {
                    (Some(c), Some(m)) => format!("{status} {c}: {m}"),
                    (Some(c), None) => format!("{status} {c}"),
                    (None, Some(m)) => format!("{status}: {m}"),
                    (None, None) => status.to_string(),
                };
                if status >= 500 {
                    state.count("server");
                    let message = self.message(&format!("the server failed ({detail})"));
                    trip(&message);
                    return Err(wit::StorageError::Server(message));
                }
                // The server answered: the source is up.
                healthy();
                Err(match status {
                    401 | 403 => {
                        state.count("auth");
                        wit::StorageError::Auth(self.message(&format!(
                            "the server refused the credentials ({detail}); check the keys in {} and {}",
                            self.grant.access_key_env, self.grant.secret_key_env
                        )))
                    }
                    404 => {
                        state.count("not_found");
                        wit::StorageError::NotFound(self.message(&format!("not found ({detail})")))
                    }
                    _ => {
                        state.count("server");
                        wit::StorageError::Server(self.message(&format!("refused ({detail})")))
                    }
                })
            }
        }
    }
}

impl PluginCtx {
    /// The call for `op`, or `not-granted` (a violation) when the manifest
    /// has no `[capabilities.storage]` or its `buckets` exclude `bucket`.
    fn storage_call(
        &mut self,
        op: String,
        bucket: Option<&str>,
    ) -> Result<Call, wit::StorageError> {
        let env = self.env.clone();
        let Some(grant) = env.manifest.capabilities.storage.clone() else {
            let why = self.deny(
                "storage",
                format!("{op}: the manifest has no [capabilities.storage]"),
            );
            return Err(wit::StorageError::NotGranted(why));
        };
        if let Some(bucket) = bucket
            && !grant.allows(bucket)
        {
            let why = self.deny(
                "storage",
                format!(
                    "{op}: bucket {bucket:?} is not in capabilities.storage.buckets (endpoint {})",
                    grant.endpoint
                ),
            );
            return Err(wit::StorageError::NotGranted(why));
        }
        Ok(Call {
            env,
            grant,
            op,
            deadline: self.call.deadline,
        })
    }
}

impl wit::Host for PluginCtx {
    async fn health(&mut self) -> wasmtime::Result<Result<u64, wit::StorageError>> {
        let call = match self.storage_call("ListBuckets".into(), None) {
            Ok(call) => call,
            Err(e) => return Ok(Err(e)),
        };
        let started = Instant::now();
        let request = Request {
            method: reqwest::Method::GET,
            bucket: None,
            key: None,
            query: Vec::new(),
        };
        Ok(match call.send(request).await {
            Ok(_) => {
                call.state().count("ok");
                Ok(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX))
            }
            Err(e) => Err(e),
        })
    }

    async fn buckets(&mut self) -> wasmtime::Result<Result<Vec<wit::Bucket>, wit::StorageError>> {
        let call = match self.storage_call("ListBuckets".into(), None) {
            Ok(call) => call,
            Err(e) => return Ok(Err(e)),
        };
        let request = Request {
            method: reqwest::Method::GET,
            bucket: None,
            key: None,
            query: Vec::new(),
        };
        let answer = match call.send(request).await {
            Ok(answer) => answer,
            Err(e) => return Ok(Err(e)),
        };
        Ok(match s3::parse_buckets(&answer.body) {
            Ok(buckets) => {
                call.state().count("ok");
                Ok(buckets
                    .into_iter()
                    .filter(|b| call.grant.allows(&b.name))
                    .map(|b| wit::Bucket {
                        name: b.name,
                        created_ms: b.created_ms,
                    })
                    .collect())
            }
            Err(e) => {
                call.state().count("server");
                Err(wit::StorageError::Server(call.message(&e)))
            }
        })
    }

    async fn bucket_stats(
        &mut self,
        bucket: String,
        prefix: Option<String>,
    ) -> wasmtime::Result<Result<wit::BucketUsage, wit::StorageError>> {
        let call = match self.storage_call(format!("ListObjectsV2 {bucket}"), Some(&bucket)) {
            Ok(call) => call,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = call.valid_bucket(&bucket) {
            return Ok(Err(e));
        }
        let mut usage = wit::BucketUsage {
            bucket: bucket.clone(),
            objects: 0,
            bytes: 0,
            truncated: false,
        };
        let mut token: Option<String> = None;
        loop {
            let left = call.grant.max_objects - usage.objects;
            let mut query = vec![
                ("list-type", "2".to_string()),
                (
                    "max-keys",
                    left.min(u64::from(call.grant.page_size)).to_string(),
                ),
            ];
            if let Some(token) = token.take() {
                query.push(("continuation-token", token));
            }
            if let Some(prefix) = &prefix {
                query.push(("prefix", prefix.clone()));
            }
            let request = Request {
                method: reqwest::Method::GET,
                bucket: Some(&bucket),
                key: None,
                query,
            };
            let answer = match call.send(request).await {
                Ok(answer) => answer,
                Err(e) => return Ok(Err(e)),
            };
            let page = match s3::parse_page(&answer.body) {
                Ok(page) => page,
                Err(e) => {
                    call.state().count("server");
                    return Ok(Err(wit::StorageError::Server(call.message(&e))));
                }
            };
            // A server answering more than asked for still counts only up to the cap.
            usage.objects = (usage.objects + page.objects).min(call.grant.max_objects);
            usage.bytes += page.bytes;
            match page.next {
                None => break,
                Some(_) if usage.objects >= call.grant.max_objects => {
                    usage.truncated = true;
                    break;
                }
                Some(next) => token = Some(next),
            }
        }
        call.state().count("ok");
        Ok(Ok(usage))
    }

    async fn head(
        &mut self,
        bucket: String,
        key: String,
    ) -> wasmtime::Result<Result<wit::ObjectInfo, wit::StorageError>> {
        let call = match self.storage_call(format!("HeadObject {bucket}/{key}"), Some(&bucket)) {
            Ok(call) => call,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = call.valid_bucket(&bucket) {
            return Ok(Err(e));
        }
        if key.is_empty() || key.len() > 1024 {
            call.state().count("not_found");
            return Ok(Err(wit::StorageError::NotFound(
                call.message("an object key has 1 to 1024 bytes"),
            )));
        }
        let request = Request {
            method: reqwest::Method::HEAD,
            bucket: Some(&bucket),
            key: Some(&key),
            query: Vec::new(),
        };
        let answer = match call.send(request).await {
            Ok(answer) => answer,
            Err(e) => return Ok(Err(e)),
        };
        let header = |name: &str| {
            answer
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        call.state().count("ok");
        Ok(Ok(wit::ObjectInfo {
            size: header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            etag: header("etag").map(|e| e.trim_matches('"').to_string()),
            last_modified_ms: header("last-modified").and_then(|d| s3::http_date_ms(&d)),
            content_type: header("content-type"),
        }))
    }
}
