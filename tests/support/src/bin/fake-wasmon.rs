//! A stand-in for the `wasmon` binary with the same start-up contract, so the
//! [`Host`](wasmon_test_support::Host) harness is tested on its own: takes
//! `--config PATH`, listens on `MONITOR_HOST:MONITOR_PORT`, logs
//! `listening addr=IP:PORT` on stderr, exits on SIGTERM.
//!
//! Routes: `GET /healthz` → `ok`; `GET /config` → the config file;
//! `GET /env` → its `MONITOR_*`, `WASMON_*` and `RUST_LOG` variables as JSON;
//! `GET /plugins` → the `*.wasm` names in `plugins.dir`; `POST /echo` → 201 with
//! the body. SIGHUP logs `reload requested`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::Router;
use axum::body::Bytes;
use axum::routing::{get, post};
use std::path::PathBuf;
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut config_path = None;
    while let Some(arg) = args.next() {
        if arg == "--config" {
            config_path = args.next().map(PathBuf::from);
        }
    }
    let config_path = config_path.expect("usage: fake-wasmon --config PATH");
    let config = std::fs::read_to_string(&config_path).expect("cannot read the config");
    let table: toml::Table = config.parse().expect("the config is not TOML");
    let plugin_dir = PathBuf::from(table["plugins"]["dir"].as_str().expect("plugins.dir"));

    let host = std::env::var("MONITOR_HOST").unwrap_or_else(|_| "0.0.0.0".into());
    let port = std::env::var("MONITOR_PORT").unwrap_or_else(|_| "9400".into());
    let listener = tokio::net::TcpListener::bind(format!("{host}:{port}"))
        .await
        .expect("cannot bind");
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/config", get(move || async move { config }))
        .route(
            "/env",
            get(|| async {
                let vars: serde_json::Map<String, serde_json::Value> = std::env::vars()
                    .filter(|(k, _)| {
                        k.starts_with("MONITOR_") || k.starts_with("WASMON_") || k == "RUST_LOG"
                    })
                    .map(|(k, v)| (k, v.into()))
                    .collect();
                axum::Json(vars)
            }),
        )
        .route(
            "/plugins",
            get(move || async move {
                let mut names: Vec<String> = std::fs::read_dir(&plugin_dir)
                    .unwrap()
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| n.ends_with(".wasm"))
                    .collect();
                names.sort();
                axum::Json(names)
            }),
        )
        .route(
            "/echo",
            post(|body: Bytes| async move { (axum::http::StatusCode::CREATED, body) }),
        );
    eprintln!(
        "2025-01-01T00:00:00.000000Z  INFO wasmon::export: listening addr={}",
        listener.local_addr().unwrap()
    );
    let mut hangup = signal(SignalKind::hangup()).unwrap();
    let mut terminate = signal(SignalKind::terminate()).unwrap();
    let shutdown = async move {
        loop {
            tokio::select! {
                _ = hangup.recv() => eprintln!("INFO wasmon: reload requested"),
                _ = terminate.recv() => break,
            }
        }
        eprintln!("INFO wasmon: shutting down");
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .unwrap();
}
