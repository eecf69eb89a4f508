//! `sink-cloudwatch`: sends events to Amazon CloudWatch through the host's
//! `http` capability, every request signed with SigV4 by the host
//! (`[capabilities.aws]`; the plugin never sees the credentials):
//!
//! - **metrics** (`PutMetricData`, namespace `[config] namespace`): per
//!   batch, `Events{EventType, Severity}` = how many events of that type and
//!   severity the batch holds (unit `Count`), and for every alert change
//!   with a value `AlertValue{Rule, Alert, State}` = the value checked.
//!   Sum `Events` over a period for rates; alarms can watch `AlertValue`.
//! - **logs** (`PutLogEvents` into `[config] log_group`/`log_stream`):
//!   every event as one log line, its JSON in the host's shape with its id,
//!   at the event's time. A missing stream is created (`CreateLogStream`)
//!   unless `create_log_stream = false`; the group must exist.
//!
//! Retries follow Prometheus remote-write's rules plus AWS's throttling:
//! see [`api`]. A batch retried after a partial failure skips what already
//! went through (the metrics, the log chunks sent), so a retry does not
//! count events twice; an instance restart forgets that, and log lines may
//! then repeat (each carries its event id).

pub mod api;
pub mod config;

use wasmon_sdk::http::{self, Method, Request, Response};
use wasmon_sdk::{DeliveryError, Error, Event, Sink};

/// The request header asking the host to sign for a service.
const SIGN_FOR: &str = "x-wasmon-aws-service";

/// The plugin: its config and the progress of a batch that failed midway.
pub struct CloudWatchSink {
    config: config::CloudWatch,
    progress: Option<Progress>,
}

/// What of one batch already went through.
#[derive(Debug, PartialEq)]
struct Progress {
    /// The batch ([`wasmon_sdk::sink::fingerprint`]).
    batch: String,
    /// Metric calls done.
    metric_calls: usize,
    /// Log calls done.
    log_calls: usize,
}

impl Sink for CloudWatchSink {
    fn init() -> Result<Self, Error> {
        let plugin = wasmon_sdk::config::plugin_name();
        let config = wasmon_sdk::config::get::<config::Config>()?
            .validate(&plugin)
            .map_err(|e| Error::new(format!("invalid [config]: {e}")))?;
        wasmon_sdk::info!(
            "sending to CloudWatch in {}: metrics {}, logs {}",
            config.region,
            config.namespace.as_deref().unwrap_or("off"),
            config
                .logs
                .as_ref()
                .map_or("off".to_string(), |(g, s)| format!("{g}/{s}"))
        );
        Ok(CloudWatchSink {
            config,
            progress: None,
        })
    }

    fn deliver(&mut self, batch: Vec<Event>) -> Result<(), DeliveryError> {
        let key = wasmon_sdk::sink::fingerprint(&batch);
        let mut progress = match self.progress.take() {
            Some(p) if p.batch == key => p,
            _ => Progress {
                batch: key,
                metric_calls: 0,
                log_calls: 0,
            },
        };
        let result = self.send(&batch, &mut progress);
        if let Err(error) = &result {
            if let DeliveryError::Permanent(why) = error {
                wasmon_sdk::error!(
                    "batch of {} events not deliverable, the host dead-letters it: {why}",
                    batch.len()
                );
            }
            self.progress = Some(progress);
        }
        result
    }
}

impl CloudWatchSink {
    fn send(&self, batch: &[Event], progress: &mut Progress) -> Result<(), DeliveryError> {
        let config = &self.config;
        let events: Vec<&Event> = batch.iter().filter(|e| config.events.accepts(e)).collect();
        if events.is_empty() {
            return Ok(());
        }
        if let Some(namespace) = &config.namespace {
            let datums = api::datums(&events);
            for chunk in datums.chunks(api::MAX_DATUMS).skip(progress.metric_calls) {
                let body = api::put_metric_data(namespace, chunk);
                self.put_metrics(body)?;
                progress.metric_calls += 1;
            }
        }
        if let Some((group, stream)) = &config.logs {
            let lines = api::lines(&events);
            for chunk in api::chunks(&lines).into_iter().skip(progress.log_calls) {
                self.put_logs(group, stream, chunk)?;
                progress.log_calls += 1;
            }
        }
        Ok(())
    }

    fn put_metrics(&self, body: String) -> Result<(), DeliveryError> {
        let what = format!("PutMetricData to {}", self.config.monitoring_url);
        let request = self
            .request("monitoring", &self.config.monitoring_url)
            .with_header(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .with_body(body.into_bytes());
        match http::send(&request) {
            Ok(r) if r.is_success() => Ok(()),
            Ok(r) => Err(api::Failure::of(&r).delivery_error(&what)),
            Err(e) => Err(api::no_answer(&what, e)),
        }
    }

    fn put_logs(
        &self,
        group: &str,
        stream: &str,
        lines: &[api::Line],
    ) -> Result<(), DeliveryError> {
        let what = format!(
            "PutLogEvents to {group}/{stream} at {}",
            self.config.logs_url
        );
        let body = api::put_log_events(group, stream, lines);
        let mut created = false;
        loop {
            let response = self
                .logs_call("PutLogEvents", body.clone())
                .map_err(|e| api::no_answer(&what, e))?;
            if response.is_success() {
                rejected(&response);
                return Ok(());
            }
            let failure = api::Failure::of(&response);
            let missing = response.status == 400
                && failure.code.as_deref() == Some("ResourceNotFoundException");
            if !missing || created || !self.config.create_log_stream {
                return Err(failure.delivery_error(&what));
            }
            self.create_stream(group, stream)?;
            created = true;
        }
    }

    fn create_stream(&self, group: &str, stream: &str) -> Result<(), DeliveryError> {
        let what = format!(
            "CreateLogStream {group}/{stream} at {}",
            self.config.logs_url
        );
        let response = self
            .logs_call("CreateLogStream", api::create_log_stream(group, stream))
            .map_err(|e| api::no_answer(&what, e))?;
        let failure = api::Failure::of(&response);
        if response.is_success()
            || failure.code.as_deref() == Some("ResourceAlreadyExistsException")
        {
            wasmon_sdk::info!("created log stream {group}/{stream}");
            return Ok(());
        }
        Err(failure.delivery_error(&format!(
            "{what} (does the log group {group:?} exist? the sink creates streams, not groups)"
        )))
    }

    fn logs_call(&self, action: &str, body: Vec<u8>) -> Result<Response, http::HttpError> {
        let request = self
            .request("logs", &self.config.logs_url)
            .with_header("content-type", "application/x-amz-json-1.1")
            .with_header("x-amz-target", format!("Logs_20140328.{action}"))
            .with_body(body);
        http::send(&request)
    }

    /// A POST to `url` that the host signs for `service`.
    fn request(&self, service: &str, url: &str) -> Request {
        let timeout_ms = u32::try_from(self.config.timeout.as_millis()).unwrap_or(u32::MAX);
        Request::new(Method::Post, format!("{url}/"))
            .with_header(SIGN_FOR, service)
            .with_timeout_ms(timeout_ms)
    }
}

/// Logs the events a 2xx PutLogEvents answer says it rejected (too old, too new).
fn rejected(response: &Response) {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(&response.body) else {
        return;
    };
    if let Some(info) = body.get("rejectedLogEventsInfo").filter(|i| !i.is_null()) {
        wasmon_sdk::warn!("CloudWatch Logs rejected some events of the batch: {info}");
    }
}

wasmon_sdk::export_sink!(CloudWatchSink);
