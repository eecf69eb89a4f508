//! `wasmon plugin install`: puts a built component (and its manifest) where
//! a host loads it, in one of two ways:
//!
//! - `--to DIR` (the default, `plugins.d` or the config's `plugins.dir`):
//!   checks the component here first (compiles it, detects its world and
//!   WIT version, parses the manifest with the host's defaults and
//!   ceilings), then copies `NAME.toml` and `NAME.wasm` into DIR atomically
//!   (hidden temporary file + rename, manifest first), so a watching host
//!   never sees half a file and loads the pair once;
//! - `--host URL`: uploads them with `PUT /api/plugins/{name}` (the host
//!   checks them, replaces the files and waits for the new generation) and
//!   prints the generation now serving, or the host's refusal or reload
//!   error (exit status 1).

use crate::config::Config;
use crate::plugins::upload;
use crate::plugins::valid_name;
use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::time::Duration;

/// `wasmon plugin install` arguments.
#[derive(clap::Args, Debug)]
pub struct InstallArgs {
    /// The component to install, e.g. `my_collector.wasm` as written by
    /// `wasmon plugin build`.
    #[arg(value_name = "FILE.wasm")]
    pub file: PathBuf,
    /// Its manifest [default: NAME.toml beside FILE, when there is one].
    /// Without any, the manifest already installed (if any) is kept, else
    /// the host's defaults apply.
    #[arg(long, value_name = "M")]
    pub manifest: Option<PathBuf>,
    /// The plugin's name, which names NAME.wasm and NAME.toml in the plugin
    /// directory [default: FILE's stem].
    #[arg(long, value_name = "N")]
    pub name: Option<String>,
    /// Copy into this plugin directory [default: the configuration's
    /// `plugins.dir`, `plugins.d`].
    #[arg(long, value_name = "DIR", conflicts_with = "host")]
    pub to: Option<PathBuf>,
    /// Upload to a running host instead, e.g. `http://127.0.0.1:9400`
    /// (`PUT /api/plugins/NAME`; needs `server.admin_token` set there).
    #[arg(long, value_name = "URL")]
    pub host: Option<String>,
    /// The host's admin token (`server.admin_token`), for `--host`.
    #[arg(
        long,
        value_name = "T",
        env = "WASMON_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// How long to wait for the host's answer (it answers once the new
    /// generation serves), for `--host`.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// The host's configuration file: its `plugins.dir` is the default
    /// `--to`, and its `[plugins.defaults]`, `[plugins.limits]` and
    /// `env_allow` check the manifest [default: the built-in ones].
    #[arg(long, value_name = "FILE", conflicts_with = "host")]
    pub config: Option<PathBuf>,
    /// Print the host's answer as JSON (`--host`).
    #[arg(long)]
    pub json: bool,
}

/// What is installed: the name, the component and the manifest, if any.
struct Payload {
    name: String,
    wasm: Vec<u8>,
    manifest: Option<(PathBuf, String)>,
}

pub fn run(args: InstallArgs) -> Result<()> {
    let payload = payload(&args)?;
    match &args.host {
        Some(url) => upload_to(url, &args, payload),
        None => copy_into(&args, payload),
    }
}

fn payload(args: &InstallArgs) -> Result<Payload> {
    let file = &args.file;
    let name = match &args.name {
        Some(name) => name.clone(),
        None => file
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string)
            .with_context(|| {
                format!(
                    "cannot take a plugin name from {}: pass --name",
                    file.display()
                )
            })?,
    };
    if !valid_name(&name) {
        bail!(
            "invalid plugin name {name:?}{}: it must match ^[a-zA-Z][a-zA-Z0-9_]*$ (at most 64 characters); pass --name",
            if args.name.is_none() {
                " (from the file name)"
            } else {
                ""
            }
        );
    }
    let wasm = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let manifest = match &args.manifest {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the manifest {}", path.display()))?;
            Some((path.clone(), text))
        }
        None => {
            let sibling = file.with_extension("toml");
            match std::fs::read_to_string(&sibling) {
                Ok(text) => Some((sibling, text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => bail!("cannot read the manifest {}: {e}", sibling.display()),
            }
        }
    };
    Ok(Payload {
        name,
        wasm,
        manifest,
    })
}

/// `--to DIR`: checked here, then copied atomically.
fn copy_into(args: &InstallArgs, payload: Payload) -> Result<()> {
    let config = Config::load(args.config.as_deref(), std::env::vars())?;
    let dir = args
        .to
        .clone()
        .unwrap_or_else(|| config.plugins.dir.clone());
    if !dir.is_dir() {
        bail!(
            "the plugin directory {} does not exist: pass --to DIR (the host's `plugins.dir`) or --config FILE (the host's configuration)",
            dir.display()
        );
    }
    let Payload {
        name,
        wasm,
        manifest,
    } = payload;
    let installed_toml = dir.join(format!("{name}.toml"));
    // The manifest the component will run under: the one given, else the
    // one already installed.
    let (text, origin) = match &manifest {
        Some((path, text)) => (Some(text.clone()), path.display().to_string()),
        None => match std::fs::read_to_string(&installed_toml) {
            Ok(text) => (Some(text), installed_toml.display().to_string()),
            Err(_) => (None, String::new()),
        },
    };
    let checked = upload::check_component(&wasm, text.as_deref(), &origin, &config.plugins)
        .with_context(|| format!("{} does not load", args.file.display()))?;
    let mut files = Vec::new();
    let mut written = Vec::new();
    if let Some((_, text)) = manifest {
        files.push((installed_toml.clone(), text.into_bytes()));
        written.push(format!("{name}.toml"));
    }
    files.push((dir.join(format!("{name}.wasm")), wasm));
    written.push(format!("{name}.wasm"));
    upload::install_files(files).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "installed {name} ({}, wasmon:plugin@{}) into {}: {}",
        checked.kind,
        checked.wit.as_str(),
        dir.display(),
        written.join(", ")
    );
    if written.len() == 1 && text.is_some() {
        println!(
            "kept the manifest already there: {}",
            installed_toml.display()
        );
    }
    println!(
        "a host watching {} loads it now (else: POST /api/plugins/{name}/reload); see GET /api/plugins/{name}",
        dir.display()
    );
    Ok(())
}

/// `--host URL`: `PUT /api/plugins/{name}`, then the host's answer.
fn upload_to(base: &str, args: &InstallArgs, payload: Payload) -> Result<()> {
    let base = if base.contains("://") {
        base.trim_end_matches('/').to_string()
    } else {
        format!("http://{}", base.trim_end_matches('/'))
    };
    let name = payload.name.clone();
    let url = format!("{base}/api/plugins/{name}");
    let (content_type, body) = match &payload.manifest {
        Some((_, text)) => {
            let (boundary, body) = multipart(&payload.name, &payload.wasm, text);
            (format!("multipart/form-data; boundary={boundary}"), body)
        }
        None => ("application/wasm".to_string(), payload.wasm),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start a runtime for the upload")?;
    let (status, text) = runtime.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(args.timeout)
            .build()
            .context("failed to make an HTTP client")?;
        let mut request = client
            .put(&url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        if let Some(token) = args.token.as_deref().filter(|t| !t.is_empty()) {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot upload to {url}"))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .with_context(|| format!("cannot read the answer of {url}"))?;
        anyhow::Ok((status, text))
    })?;
    let answer: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    if !status.is_success() {
        let detail = answer["detail"]
            .as_str()
            .map_or_else(|| text.trim().to_string(), str::to_string);
        let hint = if status == reqwest::StatusCode::UNAUTHORIZED && args.token.is_none() {
            " (pass --token or set WASMON_ADMIN_TOKEN)"
        } else {
            ""
        };
        bail!("{url} refused the upload ({status}){hint}: {detail}");
    }
    if args.json {
        println!("{text}");
        return Ok(());
    }
    let plugin = &answer["plugin"];
    let field = |key: &str| plugin[key].as_str().unwrap_or("?").to_string();
    let generation = plugin["generation"].as_u64().unwrap_or(0);
    if answer["outcome"]["result"] == "unchanged" {
        println!("{name} on {base}: unchanged, generation {generation} already serves these files");
    } else {
        println!(
            "installed {name} on {base}: generation {generation} ({}, wasmon:plugin@{}), {}",
            field("kind"),
            field("wit"),
            field("status")
        );
    }
    Ok(())
}

/// A `multipart/form-data` body with the parts `wasm` and `manifest`, and
/// its boundary (one that occurs in neither part).
fn multipart(name: &str, wasm: &[u8], manifest: &str) -> (String, Vec<u8>) {
    let boundary = loop {
        let candidate = format!("wasmon-{:032x}", fastrand::u128(..));
        let needle = candidate.as_bytes();
        let inside = |bytes: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        if !inside(wasm) && !inside(manifest.as_bytes()) {
            break candidate;
        }
    };
    let mut body = Vec::with_capacity(wasm.len() + manifest.len() + 512);
    let mut part = |field: &str, file: &str, content_type: &str, bytes: &[u8]| {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file}\"\r\nContent-Type: {content_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    };
    part(
        "manifest",
        &format!("{name}.toml"),
        "application/toml",
        manifest.as_bytes(),
    );
    part("wasm", &format!("{name}.wasm"), "application/wasm", wasm);
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (boundary, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_multipart_body_frames_both_parts() {
        let (boundary, body) = multipart("probe", b"\0asm-bytes", "interval = \"1s\"\n");
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with(&format!("--{boundary}\r\n")), "{text}");
        assert!(text.ends_with(&format!("--{boundary}--\r\n")), "{text}");
        assert!(text.contains("name=\"manifest\"; filename=\"probe.toml\"\r\nContent-Type: application/toml\r\n\r\ninterval = \"1s\"\n\r\n"));
        assert!(text.contains("name=\"wasm\"; filename=\"probe.wasm\"\r\nContent-Type: application/wasm\r\n\r\n\0asm-bytes\r\n"));
    }

    #[test]
    fn names_come_from_the_file_and_must_be_valid() {
        let args = |file: &str, name: Option<&str>| InstallArgs {
            file: PathBuf::from(file),
            manifest: None,
            name: name.map(str::to_string),
            to: None,
            host: None,
            token: None,
            timeout: Duration::from_secs(1),
            config: None,
            json: false,
        };
        let err = payload(&args("/nonexistent/my-probe.wasm", None))
            .err()
            .unwrap();
        let err = format!("{err:#}");
        assert!(err.contains("\"my-probe\" (from the file name)"), "{err}");
        assert!(err.contains("--name"), "{err}");
        let err = payload(&args("/nonexistent/my-probe.wasm", Some("probe")))
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("cannot read /nonexistent/my-probe.wasm"));
    }
}
