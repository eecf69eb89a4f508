//! Installing a plugin from bytes: `PUT /api/plugins/{name}` (and `wasmon
//! plugin install`, which checks a component the same way before copying it).
//!
//! An upload is checked before anything is replaced: the name; the manifest
//! it will run under (the uploaded one, else the `NAME.toml` already there)
//! parsed with the host's defaults and ceilings, and its grants within
//! `[plugins.upload] max_grants`; the component compiled (off the async
//! workers, under the compile semaphore) and its world and manifest checked
//! by the reload path's own `build`, without an instance. Only then, under
//! the plugin's load lock, are `NAME.toml` and `NAME.wasm` written (each to a
//! hidden temporary file in the directory, then renamed into place: manifest
//! first) and the plugin loaded by `reload`'s `load_locked`, reusing the
//! component just compiled. The watcher's event for those files finds them
//! loaded already. When that load fails (`init` faulted while an older
//! generation serves), the files are put back: the older generation keeps
//! serving, on disk too, and the reload error is the answer.

use super::context::GuestOutput;
use super::manifest::{Grants, HostPattern, Manifest, PluginKind, SelfAccess};
use super::registry::{Inner, PluginView, Plugins, Slot, valid_name};
use super::reload::{BuildError, LoadOutcome, Target};
use super::runtime::Runtime;
use super::state::KvState;
use crate::config::PluginsConfig;
use anyhow::{Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod files;

use files::Staged;
pub use files::install_files;

/// Why an upload was refused; nothing was replaced.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// A bad name or request.
    #[error("{0}")]
    BadRequest(String),
    /// The component or the manifest does not build (corrupt, not a
    /// component, wrong world, a bad manifest key).
    #[error("{0}")]
    Invalid(String),
    /// The manifest grants more than `[plugins.upload] max_grants` allows.
    #[error("{0}")]
    Forbidden(String),
    /// The files were valid but the reload failed (`init`); they were put
    /// back and the previous generation keeps serving.
    #[error("{0}")]
    Reload(String),
    /// The files could not be written.
    #[error("{0}")]
    Internal(String),
}

/// What an upload did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Uploaded {
    /// `true` when no plugin of this name served before.
    pub created: bool,
    /// What the reload did: `loaded` (a new generation), or `unchanged`
    /// (these very files were already serving).
    pub outcome: LoadOutcome,
    /// The plugin now: `name`, `generation`, `kind`, `wit`, `status`, ...
    pub plugin: PluginView,
}

/// What a local check of a component found.
#[derive(Debug, Clone)]
pub struct Checked {
    /// Its world.
    pub kind: PluginKind,
    /// The `wasmon:plugin` version it was built against.
    pub wit: super::bindings::WitVersion,
}

/// Checks a component and its manifest outside any host, the way a host
/// would load them (`wasmon plugin install --to`): compiles it, detects its
/// world and WIT version, and parses the manifest with `config`'s defaults,
/// ceilings and `env_allow`; no instance is made, no `init` runs.
pub fn check_component(
    bytes: &[u8],
    manifest: Option<&str>,
    manifest_origin: &str,
    config: &PluginsConfig,
) -> Result<Checked> {
    let runtime = Runtime::new(None, config.compiler)?;
    let manifest = match manifest {
        Some(text) => Manifest::parse_with_env(
            text,
            &config.defaults,
            &config.limits,
            &config.env_allow,
            manifest_origin,
        )
        .with_context(|| format!("invalid manifest {manifest_origin}"))?,
        None => Manifest::defaults(&config.defaults, &config.limits),
    };
    let component = runtime.compile(bytes)?;
    let prepared = runtime.prepare(&component)?;
    super::reload::check_kind(&manifest, prepared.kind())?;
    Ok(Checked {
        kind: prepared.kind(),
        wit: prepared.version(),
    })
}

/// Whether `pattern` allows every `host:port` that `entry` allows.
pub fn covers(pattern: &HostPattern, entry: &HostPattern) -> bool {
    if pattern.port.is_some() && pattern.port != entry.port {
        return false;
    }
    if pattern.host == "*" {
        return true;
    }
    if entry.host == "*" {
        return false;
    }
    match pattern.host.strip_prefix("*.") {
        // `*.d` covers `x.d`, `*.x.d` and `*.d`, never `d` itself.
        Some(domain) => {
            let name = entry.host.strip_prefix("*.");
            let host = name.unwrap_or(&entry.host);
            (name.is_some() && host == domain)
                || (host.len() > domain.len()
                    && host.ends_with(domain)
                    && host[..host.len() - domain.len()].ends_with('.'))
        }
        None => pattern.host == entry.host,
    }
}

/// Checks what `grants` allows against `[plugins.upload] max_grants`: each
/// `[capabilities.http] allow` entry within one of `http`, `self = "read"`
/// only with `http_self`, and every other capability listed in
/// `capabilities`. The error names the grant and the bound it exceeds.
pub fn check_grants(
    grants: &Grants,
    http: &[HostPattern],
    http_self: bool,
    capabilities: &[String],
) -> Result<(), String> {
    let bound = |list: &[String]| {
        if list.is_empty() {
            "none".to_string()
        } else {
            format!("[{}]", list.join(", "))
        }
    };
    if let Some(grant) = &grants.http {
        let allowed: Vec<String> = http.iter().map(ToString::to_string).collect();
        for (i, entry) in grant.allow.iter().enumerate() {
            if !http.iter().any(|p| covers(p, entry)) {
                return Err(format!(
                    "`capabilities.http.allow[{i}]` = \"{entry}\" is beyond what an upload may reach: `[plugins.upload] max_grants.http` allows {}; add it there, or install the plugin by copying its files into the plugin directory",
                    bound(&allowed)
                ));
            }
        }
        if grant.self_access == SelfAccess::Read && !http_self {
            return Err(
                "`capabilities.http.self` = \"read\" is beyond what an upload may be granted: set `[plugins.upload] max_grants.http_self = true` to allow it".into(),
            );
        }
    }
    // Every capability granted, whatever the list holds: the grants'
    // serialized keys (absent ones are skipped).
    let granted = serde_json::to_value(grants)
        .map_err(|e| format!("cannot list the manifest's grants: {e}"))?;
    if let Some(granted) = granted.as_object() {
        for name in granted.keys().filter(|name| *name != "http") {
            if !capabilities.iter().any(|c| c == name) {
                return Err(format!(
                    "`[capabilities.{name}]` is beyond what an upload may be granted: `[plugins.upload] max_grants.capabilities` allows {}; add \"{name}\" there, or install the plugin by copying its files into the plugin directory",
                    bound(capabilities)
                ));
            }
        }
    }
    Ok(())
}

impl Plugins {
    /// Installs `component` (with `manifest`, else the `NAME.toml` already
    /// in the directory, else the defaults) as plugin `name`: checked first,
    /// then written atomically and loaded. Runs on the plugin runtime; the
    /// answer comes once the new generation serves, or the load failed.
    pub async fn upload(
        &self,
        name: &str,
        component: Vec<u8>,
        manifest: Option<String>,
    ) -> Result<Uploaded, UploadError> {
        let name = name.to_string();
        self.on_runtime(move |inner| async move { inner.upload(&name, component, manifest).await })
            .await
            .map_err(|e| UploadError::Internal(format!("the upload task failed: {e}")))?
    }
}

impl Inner {
    async fn upload(
        self: &Arc<Self>,
        name: &str,
        bytes: Vec<u8>,
        manifest: Option<String>,
    ) -> Result<Uploaded, UploadError> {
        if !valid_name(name) {
            return Err(UploadError::BadRequest(format!(
                "invalid plugin name {name:?}: it must match ^[a-zA-Z][a-zA-Z0-9_]*$ (at most 64 characters)"
            )));
        }
        let dir = self.config.dir.clone();
        let wasm_path = dir.join(format!("{name}.wasm"));
        let toml_path = dir.join(format!("{name}.toml"));
        // The manifest the component will run under, and where it came from.
        let (effective, origin) = match &manifest {
            Some(text) => (Some(text.clone()), format!("{name}.toml (uploaded)")),
            None => match tokio::fs::read_to_string(&toml_path).await {
                Ok(text) => (Some(text), toml_path.display().to_string()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, String::new()),
                Err(e) => {
                    return Err(UploadError::Internal(format!(
                        "cannot read {}: {e}",
                        toml_path.display()
                    )));
                }
            },
        };
        if let Some(text) = &effective {
            self.check_upload_grants(text, &origin)?;
        }
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let compiled = self
            .validate_upload(name, bytes.clone(), &sha256, effective.as_deref(), &origin)
            .await?;

        // Checked: replace the files and load, under the plugin's lock.
        let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
        if let Some(text) = manifest {
            files.push((toml_path, text.into_bytes()));
        }
        files.push((wasm_path, bytes));
        loop {
            let slot = self.slot_or_insert(name);
            let mut memo = slot.load_lock.lock().await;
            let serving = self.slots.read().get(name).cloned();
            if !serving.is_some_and(|s| Arc::ptr_eq(&s, &slot)) {
                // Unloaded while this upload waited: start over with a new slot.
                continue;
            }
            let created = slot.current().is_none();
            let mut staged = Staged::new(files);
            if let Err(error) = staged.commit() {
                let restored = staged.rollback();
                self.forget_if_empty(&slot);
                return Err(UploadError::Internal(match restored {
                    Ok(()) => error,
                    Err(also) => format!("{error}; putting the old files back failed too: {also}"),
                }));
            }
            memo.compiled = Some((sha256.clone(), compiled));
            let before = memo.inputs.clone();
            let outcome = self.load_locked(&slot, &mut memo, false).await;
            return match outcome {
                LoadOutcome::Loaded { .. } | LoadOutcome::Unchanged { .. } => {
                    staged.finish();
                    tracing::info!(plugin = name, created, outcome = ?outcome, "plugin uploaded");
                    Ok(Uploaded {
                        created,
                        outcome,
                        plugin: slot.view(),
                    })
                }
                LoadOutcome::Failed {
                    error,
                    kept_generation,
                } => {
                    // Back to the files that serve, and to what the lock
                    // remembers of them, so the watcher's event for the
                    // restored files finds nothing to do.
                    let restored = staged.rollback();
                    memo.inputs = before;
                    drop(memo);
                    self.forget_if_empty(&slot);
                    let kept = kept_generation
                        .map_or(String::new(), |g| format!("; generation {g} keeps serving"));
                    let restored = match restored {
                        Ok(()) => String::new(),
                        Err(e) => format!("; putting the old files back failed: {e}"),
                    };
                    tracing::warn!(plugin = name, error = %error, "plugin upload failed to load");
                    Err(UploadError::Reload(format!(
                        "the reload of {name:?} failed: {error}{kept}{restored}"
                    )))
                }
                LoadOutcome::Unloaded | LoadOutcome::Absent => Err(UploadError::Internal(format!(
                    "the files of {name:?} vanished while it loaded"
                ))),
            };
        }
    }

    /// The manifest parses with the host's defaults and ceilings, and grants
    /// no more than `[plugins.upload] max_grants`.
    fn check_upload_grants(&self, text: &str, origin: &str) -> Result<(), UploadError> {
        let manifest = Manifest::parse_with_env(
            text,
            &self.config.defaults,
            &self.config.limits,
            &self.config.env_allow,
            origin,
        )
        .map_err(|e| UploadError::Invalid(format!("invalid manifest {origin}: {e:#}")))?;
        let max = &self.config.upload.max_grants;
        let http = max
            .http_patterns()
            .map_err(|e| UploadError::Internal(format!("{e:#}")))?;
        check_grants(
            &manifest.capabilities,
            &http,
            max.http_self,
            &max.capabilities,
        )
        .map_err(|e| UploadError::Forbidden(format!("{origin}: {e}")))
    }

    /// Builds the upload like a reload would, without an instance: compile
    /// (bounded by the compile semaphore, off the async workers), world,
    /// manifest against the world. The compiled component comes back for
    /// the load to reuse.
    async fn validate_upload(
        self: &Arc<Self>,
        name: &str,
        bytes: Vec<u8>,
        sha256: &str,
        manifest: Option<&str>,
        origin: &str,
    ) -> Result<wasmtime::component::Component, UploadError> {
        // The component serving (or last compiled) when it is this one: a
        // manifest-only change or a repeated upload compiles nothing.
        let serving = self.slots.read().get(name).cloned();
        let mut compiled = serving.and_then(|slot| {
            let memo = slot.load_lock.try_lock().ok()?;
            memo.compiled
                .as_ref()
                .filter(|(hash, _)| hash == sha256)
                .cloned()
        });
        let target = Target {
            name: Arc::from(name),
            state: Arc::new(KvState::new()),
            output: GuestOutput::default(),
            stopped: true,
            compiled: &mut compiled,
            expect: None,
        };
        let built = self
            .build(
                target,
                bytes,
                sha256.to_string(),
                manifest,
                Path::new(origin),
            )
            .await;
        let invalid = |e: &dyn std::fmt::Display| {
            UploadError::Invalid(format!("{name}.wasm does not load: {e}"))
        };
        match built {
            Ok(_) => {}
            Err(BuildError::Invalid(e)) => return Err(invalid(&format!("{e:#}"))),
            Err(BuildError::WrongKind(kind)) => return Err(invalid(&format!("a {kind}"))),
            Err(BuildError::Fault(_, fault)) => return Err(invalid(&format!("init {fault}"))),
        }
        compiled
            .map(|(_, component)| component)
            .ok_or_else(|| UploadError::Internal("the compiled component went missing".into()))
    }

    /// Removes `slot` when no generation of it serves (a new plugin whose
    /// upload failed), so it does not linger in `/api/plugins`.
    fn forget_if_empty(&self, slot: &Arc<Slot>) {
        if slot.current().is_some() {
            return;
        }
        let mut slots = self.slots.write();
        if slots.get(&*slot.name).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            slots.remove(&*slot.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> HostPattern {
        HostPattern::parse(text).unwrap()
    }

    #[test]
    fn patterns_cover_what_they_allow_and_no_more() {
        let yes = [
            ("api.example.com", "api.example.com"),
            ("api.example.com", "api.example.com:443"),
            ("api.example.com:443", "api.example.com:443"),
            ("10.0.0.5:8080", "10.0.0.5:8080"),
            ("*.example.com", "a.example.com"),
            ("*.example.com", "a.b.example.com:80"),
            ("*.example.com", "*.example.com"),
            ("*.example.com", "*.b.example.com"),
            ("*", "anything.org:1"),
            ("*", "*"),
            ("[::1]:9000", "[::1]:9000"),
        ];
        for (p, e) in yes {
            assert!(covers(&pattern(p), &pattern(e)), "{p} should cover {e}");
        }
        let no = [
            ("api.example.com", "evil.example.com"),
            ("api.example.com:443", "api.example.com"),
            ("api.example.com:443", "api.example.com:80"),
            ("10.0.0.5:8080", "10.0.0.5"),
            ("10.0.0.5:8080", "10.0.0.50:8080"),
            ("*.example.com", "example.com"),
            ("*.example.com", "badexample.com"),
            ("*.example.com", "*"),
            ("*.b.example.com", "*.example.com"),
            ("api.example.com", "*"),
            ("api.example.com", "*.example.com"),
        ];
        for (p, e) in no {
            assert!(
                !covers(&pattern(p), &pattern(e)),
                "{p} should not cover {e}"
            );
        }
    }

    fn grants(manifest: &str) -> Grants {
        let (d, l) = (Default::default(), Default::default());
        Manifest::parse(manifest, &d, &l).unwrap().capabilities
    }

    #[test]
    fn grants_beyond_max_grants_are_named() {
        let http = [pattern("api.example.com"), pattern("10.0.0.5:8080")];
        let none: [String; 0] = [];
        assert!(check_grants(&grants(""), &[], false, &none).is_ok());
        let ok =
            grants("[capabilities.http]\nallow = [\"api.example.com:443\", \"10.0.0.5:8080\"]\n");
        assert!(check_grants(&ok, &http, false, &none).is_ok());

        let far =
            grants("[capabilities.http]\nallow = [\"api.example.com\", \"169.254.169.254\"]\n");
        let err = check_grants(&far, &http, false, &none).unwrap_err();
        assert!(
            err.contains("`capabilities.http.allow[1]` = \"169.254.169.254\""),
            "{err}"
        );
        assert!(err.contains("[api.example.com, 10.0.0.5:8080]"), "{err}");
        let err = check_grants(&ok, &[], false, &none).unwrap_err();
        assert!(err.contains("max_grants.http` allows none"), "{err}");

        let own = grants("[capabilities.http]\nallow = []\nself = \"read\"\n");
        let err = check_grants(&own, &http, false, &none).unwrap_err();
        assert!(err.contains("max_grants.http_self"), "{err}");
        assert!(check_grants(&own, &http, true, &none).is_ok());

        let redis = grants("[capabilities.redis]\nurl = \"redis://127.0.0.1:6379/0\"\n");
        let err = check_grants(&redis, &http, true, &none).unwrap_err();
        assert!(err.contains("`[capabilities.redis]` is beyond"), "{err}");
        assert!(
            err.contains("max_grants.capabilities` allows none"),
            "{err}"
        );
        let err = check_grants(&redis, &http, true, &["sql".into()]).unwrap_err();
        assert!(err.contains("allows [sql]"), "{err}");
        assert!(check_grants(&redis, &http, true, &["redis".into()]).is_ok());
    }
}
