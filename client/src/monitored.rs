//! [`Monitored`]: a guard around one job or sub-job.
//!
//! Starting it sends `started` (status `running`); [`Monitored::progress`]
//! sends `progress`; ending it sends `finished` with `duration_s`,
//! `cpu_user_s`, `cpu_system_s` and `mem_max_mb` (this process's CPU time
//! during the job and its peak resident memory, as seed 002's SDK measures
//! them). It ends as `succeeded` when dropped or [`Monitored::succeed`]ed,
//! and as `failed` by [`Monitored::fail`] or when dropped while the thread
//! panics. Sub-jobs carry their parent's id as `entity.parent_id`.

use crate::emitter::Emitter;
use crate::event::{AppRef, EntityRef, JobEvent};
use crate::usage::{self, Usage};
use serde_json::{Map, Value};
use std::time::Instant;

/// How a [`Monitored`] job starts.
#[must_use = "call .start() to begin the job"]
pub struct MonitoredBuilder {
    emitter: Emitter,
    site_id: String,
    app: AppRef,
    entity: EntityRef,
    metadata: Map<String, Value>,
}

impl MonitoredBuilder {
    /// The business identity of the work, e.g. `daily-batch`.
    pub fn business_key(mut self, key: impl Into<String>) -> Self {
        self.entity.business_key = Some(key.into());
        self
    }

    /// A sub-job's part of its parent's work.
    pub fn sub_key(mut self, key: impl Into<String>) -> Self {
        self.entity.sub_key = Some(key.into());
        self
    }

    /// The entity type (`job`, `subjob`, or a name of your own).
    pub fn entity_type(mut self, entity_type: impl Into<String>) -> Self {
        self.entity.entity_type = entity_type.into();
        self
    }

    /// Metadata sent with every event of this job.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Sends `started` and returns the running job.
    pub fn start(self) -> Monitored {
        let job = Monitored {
            emitter: self.emitter,
            site_id: self.site_id,
            app: self.app,
            entity: self.entity,
            metadata: self.metadata,
            started: Instant::now(),
            usage_at_start: usage::now(),
            finished: false,
        };
        let mut event = job.event("started", "running");
        event.event.metrics = metrics(&[
            ("cpu_user_s", 0.0),
            ("cpu_system_s", 0.0),
            ("mem_max_mb", job.usage_at_start.max_rss_mb),
        ]);
        job.emitter.send(&event);
        job
    }
}

/// A running job; reports `finished` when it ends.
pub struct Monitored {
    emitter: Emitter,
    site_id: String,
    app: AppRef,
    entity: EntityRef,
    metadata: Map<String, Value>,
    started: Instant,
    usage_at_start: Usage,
    finished: bool,
}

impl Monitored {
    /// A top-level job of `app` at `site_id`.
    pub fn job(emitter: &Emitter, site_id: &str, app: &AppRef) -> MonitoredBuilder {
        MonitoredBuilder {
            emitter: emitter.clone(),
            site_id: site_id.to_string(),
            app: app.clone(),
            entity: EntityRef {
                entity_type: "job".into(),
                id: uuid::Uuid::new_v4().to_string(),
                parent_id: None,
                business_key: None,
                sub_key: None,
            },
            metadata: Map::new(),
        }
    }

    /// A sub-job of this job: same site, app and business key, this job as parent.
    pub fn subjob(&self) -> MonitoredBuilder {
        let mut builder = Monitored::job(&self.emitter, &self.site_id, &self.app);
        builder.entity.entity_type = "subjob".into();
        builder.entity.parent_id = Some(self.entity.id.clone());
        builder.entity.business_key = self.entity.business_key.clone();
        builder
    }

    /// This job's id (`entity.id`).
    pub fn id(&self) -> &str {
        &self.entity.id
    }

    /// Reports progress: `fraction` done, 0 to 1.
    pub fn progress(&self, fraction: f64) {
        self.progress_with(fraction, Map::new());
    }

    /// Reports progress with extra metadata for this event.
    pub fn progress_with(&self, fraction: f64, extra: Map<String, Value>) {
        let mut event = self.event("progress", "running");
        event.event.progress = Some(fraction.clamp(0.0, 1.0));
        event.event.metrics = metrics(&[("mem_max_mb", usage::now().max_rss_mb)]);
        event.event.metadata.extend(extra);
        self.emitter.send(&event);
    }

    /// Ends the job as `succeeded`.
    pub fn succeed(mut self) {
        self.finish(None);
    }

    /// Ends the job as `failed`, with the error's text and type.
    pub fn fail(mut self, error: &(dyn std::error::Error + 'static)) {
        let type_name = error_type(error);
        self.finish(Some((error.to_string(), type_name)));
    }

    fn finish(&mut self, error: Option<(String, String)>) {
        if self.finished {
            return;
        }
        self.finished = true;
        let now = usage::now();
        let status = if error.is_some() {
            "failed"
        } else {
            "succeeded"
        };
        let mut event = self.event("finished", status);
        event.event.metrics = metrics(&[
            ("duration_s", self.started.elapsed().as_secs_f64()),
            (
                "cpu_user_s",
                (now.user_s - self.usage_at_start.user_s).max(0.0),
            ),
            (
                "cpu_system_s",
                (now.system_s - self.usage_at_start.system_s).max(0.0),
            ),
            ("mem_max_mb", now.max_rss_mb),
        ]);
        if let Some((message, type_name)) = error {
            event.event.metadata.insert("error".into(), message.into());
            event
                .event
                .metadata
                .insert("error_type".into(), type_name.into());
        }
        self.emitter.send(&event);
    }

    fn event(&self, kind: &str, status: &str) -> JobEvent {
        let mut event = JobEvent::now(kind, status, &self.site_id, &self.app, &self.entity);
        event.event.metadata = self.metadata.clone();
        event
    }
}

impl Drop for Monitored {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.finish(Some(("panicked".into(), "panic".into())));
        } else {
            self.finish(None);
        }
    }
}

fn metrics(pairs: &[(&str, f64)]) -> Map<String, Value> {
    pairs
        .iter()
        .filter_map(|(k, v)| {
            serde_json::Number::from_f64(*v).map(|n| (k.to_string(), Value::Number(n)))
        })
        .collect()
}

/// The error's type as the chain's innermost source describes it (Rust
/// errors have no runtime type name; its `Debug` head is the closest).
fn error_type(error: &(dyn std::error::Error + 'static)) -> String {
    let debug = format!("{error:?}");
    debug
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("Error")
        .to_string()
}
