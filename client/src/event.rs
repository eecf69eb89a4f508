//! The job event, shaped as seed 002's SDK sends it to the sidecar (and wasmon
//! takes it at `POST /v1/event` and `POST /v1/events/batch`):
//!
//! ```json
//! {"idempotency_key": "…", "site_id": "fab1",
//!  "app": {"app_id": "…", "name": "my-app", "version": "1.0.0"},
//!  "entity": {"type": "job", "id": "…", "parent_id": null, "business_key": "daily-batch", "sub_key": null},
//!  "event": {"kind": "finished", "at": "2026-11-30T06:00:00.000Z", "status": "succeeded",
//!            "metrics": {"duration_s": 1.2, "cpu_user_s": 0.8, "cpu_system_s": 0.1, "mem_max_mb": 41.5},
//!            "metadata": {}}}
//! ```

use serde::Serialize;
use serde_json::{Map, Value};

/// The application reporting jobs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppRef {
    /// A stable id of the application (a UUID).
    pub app_id: String,
    /// Its name: wasmon's `service`.
    pub name: String,
    /// Its version.
    pub version: String,
}

impl AppRef {
    /// An application with a fresh id.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> AppRef {
        AppRef {
            app_id: uuid::Uuid::new_v4().to_string(),
            name: name.into(),
            version: version.into(),
        }
    }

    /// The same application with a given id.
    pub fn with_id(mut self, app_id: impl Into<String>) -> AppRef {
        self.app_id = app_id.into();
        self
    }
}

/// What a job event is about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntityRef {
    /// `job` or `subjob` (any name wasmon accepts).
    #[serde(rename = "type")]
    pub entity_type: String,
    /// Unique per run (a UUID).
    pub id: String,
    /// The parent job's id, for sub-jobs.
    pub parent_id: Option<String>,
    /// The business identity of the work, e.g. `daily-batch`.
    pub business_key: Option<String>,
    /// A sub-job's part of the parent's work.
    pub sub_key: Option<String>,
}

/// The event part of a job event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventBody {
    /// `started`, `progress`, `finished` or `error`.
    pub kind: String,
    /// When it happened (RFC 3339).
    pub at: String,
    /// `running`, `succeeded`, `failed`.
    pub status: String,
    /// Fraction done, 0 to 1, for `progress`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    /// Numbers: `duration_s`, `cpu_user_s`, `cpu_system_s`, `mem_max_mb`, ...
    pub metrics: Map<String, Value>,
    /// Anything else (`error`, `error_type` on failure).
    pub metadata: Map<String, Value>,
}

/// One job event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobEvent {
    /// Unique per event, so a retried delivery can be recognised.
    pub idempotency_key: String,
    /// Where the job runs.
    pub site_id: String,
    /// Who runs it.
    pub app: AppRef,
    /// What it is.
    pub entity: EntityRef,
    /// What happened.
    pub event: EventBody,
}

impl JobEvent {
    /// An event of `kind` with `status`, now.
    pub fn now(
        kind: &str,
        status: &str,
        site_id: &str,
        app: &AppRef,
        entity: &EntityRef,
    ) -> JobEvent {
        JobEvent {
            idempotency_key: uuid::Uuid::new_v4().to_string(),
            site_id: site_id.to_string(),
            app: app.clone(),
            entity: entity.clone(),
            event: EventBody {
                kind: kind.to_string(),
                at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
                status: status.to_string(),
                progress: None,
                metrics: Map::new(),
                metadata: Map::new(),
            },
        }
    }
}
