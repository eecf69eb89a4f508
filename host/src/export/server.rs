//! The HTTP server: hyper-util's auto (HTTP/1 + HTTP/2) connection builder
//! behind an accept loop that bounds what a client can hold.
//!
//! - **Connections**: at most `server.max_connections` open at once (lowered
//!   to what the open-file limit allows); one beyond is answered `503` with a
//!   `{"detail"}` when the socket takes it, closed, and counted in
//!   `wasmon_http_connections_refused_total`. `wasmon_http_connections` is the
//!   gauge of open ones.
//! - **Timeouts** (see [`conn`]): the first request's headers within
//!   `server.header_read_timeout` of the accept; an idle keep-alive connection
//!   is closed after `server.keep_alive_timeout`; a request body must arrive
//!   whole within `server.body_read_timeout` of its headers, else `408` and
//!   the connection is closed. Each is counted in
//!   `wasmon_http_timeouts_total{phase}`.
//! - **Shutdown**: stop accepting, let requests in flight finish (idle
//!   connections close at once) for up to `server.shutdown_timeout`.

mod conn;

pub(super) use conn::is_body_timeout;

use crate::config::ServerConfig;
use crate::shutdown::Shutdown;
use crate::telemetry::Telemetry;
use anyhow::{Context, Result};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// File descriptors kept for the rest of the host (plugin files, the
/// plugin directory watch, outgoing connections of plugins, logs) when the
/// open-file limit lowers `server.max_connections`.
const RESERVED_DESCRIPTORS: usize = 256;

/// Most connections any configuration gets (the semaphore's bound, with room).
const MAX_CAP: usize = 1 << 24;

/// How often a refused connection is logged at most (each is counted).
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What the server enforces, from `[server]`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The first request's headers must arrive within this of the accept,
    /// and a later request's within this of its first byte.
    pub header_read_timeout: Duration,
    /// A request's whole body must arrive within this of its headers.
    pub body_read_timeout: Duration,
    /// An idle connection is closed after this.
    pub keep_alive_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// How long requests in flight may take to finish at shutdown.
    pub shutdown_timeout: Duration,
}

impl Settings {
    /// The settings of `[server]`.
    pub fn from_config(config: &ServerConfig) -> Settings {
        Settings {
            header_read_timeout: config.header_read_timeout,
            body_read_timeout: config.body_read_timeout,
            keep_alive_timeout: config.keep_alive_timeout,
            max_connections: config.max_connections,
            shutdown_timeout: config.shutdown_timeout,
        }
    }
}

/// Binds `addr`; returns the listener and the address it got (port 0 picks one).
pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("failed to listen on {addr}"))?;
    let local = listener
        .local_addr()
        .context("failed to read the listening address")?;
    Ok((listener, local))
}

/// Serves `router` on `listener` until `shutdown`, then lets requests in
/// flight finish for up to `settings.shutdown_timeout`. Returns how many
/// connections were still open when it gave up waiting (0: all drained).
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    settings: Settings,
    telemetry: Arc<Telemetry>,
    shutdown: Shutdown,
) -> usize {
    let max = connection_cap(settings.max_connections);
    let slots = Arc::new(Semaphore::new(max));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Header, idle and body timeouts are the connection watchdog's (conn.rs):
    // hyper's own header timer also runs while a keep-alive connection is
    // idle, which would cut keep-alive to the header timeout.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None::<Duration>)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let context = Arc::new(conn::Context {
        builder,
        router,
        header_read_timeout: settings.header_read_timeout,
        body_read_timeout: settings.body_read_timeout,
        keep_alive_timeout: settings.keep_alive_timeout,
        telemetry: telemetry.clone(),
        shutdown: shutdown.clone(),
    });
    let refusal = refusal_response(max);
    let mut refusals = RefusalLog::default();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            telemetry.http_connections_refused.inc();
            refusals.note(peer, max);
            refuse(stream, &refusal);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let context = context.clone();
        tokio::spawn(async move {
            context.telemetry.http_connections.inc();
            conn::serve(&context, stream, peer).await;
            context.telemetry.http_connections.dec();
            drop(permit);
        });
    }
    drop(listener);
    let open = max - slots.available_permits();
    tracing::info!(
        open,
        timeout_s = settings.shutdown_timeout.as_secs_f64(),
        "stopped accepting connections; draining requests in flight"
    );
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    match tokio::time::timeout(settings.shutdown_timeout, slots.acquire_many(all)).await {
        Ok(_) => 0,
        Err(_) => {
            let left = max - slots.available_permits();
            tracing::warn!(
                connections = left,
                "connections still open after server.shutdown_timeout"
            );
            left
        }
    }
}

/// Answers a connection beyond the cap, without waiting: `503` when the
/// socket takes it at once, then closes it.
fn refuse(stream: TcpStream, response: &[u8]) {
    let _ = stream.try_write(response);
    drop(stream);
}

/// The whole HTTP/1.1 answer to a refused connection.
fn refusal_response(max: usize) -> Vec<u8> {
    let body = serde_json::json!({
        "detail": format!(
            "too many connections: {max} are open (server.max_connections); retry later"
        )
    })
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Logs refusals at most every [`REFUSAL_LOG_INTERVAL`], with how many there were.
#[derive(Default)]
struct RefusalLog {
    last: Option<Instant>,
    since_last: u64,
}

impl RefusalLog {
    fn note(&mut self, peer: SocketAddr, max: usize) {
        self.since_last += 1;
        if self
            .last
            .is_none_or(|t| t.elapsed() >= REFUSAL_LOG_INTERVAL)
        {
            tracing::warn!(
                %peer,
                refused = self.since_last,
                max_connections = max,
                "connections refused: server.max_connections are open"
            );
            self.last = Some(Instant::now());
            self.since_last = 0;
        }
    }
}

/// `server.max_connections`, lowered to what the open-file limit leaves
/// after [`RESERVED_DESCRIPTORS`] (logged when it does).
fn connection_cap(configured: usize) -> usize {
    let configured = configured.min(MAX_CAP);
    let Some((soft, _)) = open_file_limit() else {
        return configured;
    };
    let room = usize::try_from(soft)
        .unwrap_or(usize::MAX)
        .saturating_sub(RESERVED_DESCRIPTORS)
        .max(1);
    if room < configured {
        tracing::warn!(
            max_connections = configured,
            open_file_limit = soft,
            effective = room,
            "server.max_connections lowered to fit the open-file limit"
        );
        room
    } else {
        configured
    }
}

/// The open-file limit (soft, hard), where the platform has one.
#[cfg(unix)]
pub fn open_file_limit() -> Option<(libc::rlim_t, libc::rlim_t)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own and reads nothing else.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (rc == 0).then_some((limit.rlim_cur, limit.rlim_max))
}

/// The open-file limit (soft, hard), where the platform has one.
#[cfg(not(unix))]
pub fn open_file_limit() -> Option<(u64, u64)> {
    None
}

/// Raises the soft open-file limit to the hard one (or the most the kernel
/// takes below it), so thousands of connections fit. Returns (before, after)
/// when it changed.
#[cfg(unix)]
pub fn raise_open_file_limit() -> Option<(libc::rlim_t, libc::rlim_t)> {
    let (soft, hard) = open_file_limit()?;
    // An unlimited hard limit is more than the kernel takes for descriptors
    // (Linux: fs.nr_open, macOS: OPEN_MAX): try smaller targets in turn.
    let candidates: [libc::rlim_t; 4] = [hard, 1 << 20, 1 << 16, 10_240];
    for target in candidates {
        if target <= soft || target > hard {
            continue;
        }
        let limit = libc::rlimit {
            rlim_cur: target,
            rlim_max: hard,
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } == 0 {
            return Some((soft, target));
        }
    }
    None
}

/// Raises the soft open-file limit; nothing to do on this platform.
#[cfg(not(unix))]
pub fn raise_open_file_limit() -> Option<(u64, u64)> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_a_whole_http_answer_with_a_detail() {
        let text = String::from_utf8(refusal_response(7)).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(head.contains(&format!("content-length: {}\r\n", body.len())));
        assert!(head.ends_with("connection: close"));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(
            json["detail"]
                .as_str()
                .unwrap()
                .contains("7 are open (server.max_connections)")
        );
    }

    #[test]
    fn the_cap_fits_the_open_file_limit() {
        let cap = connection_cap(usize::MAX);
        assert!(cap <= MAX_CAP);
        if let Some((soft, _)) = open_file_limit() {
            let soft = usize::try_from(soft).unwrap_or(usize::MAX);
            assert!(cap <= soft.saturating_sub(RESERVED_DESCRIPTORS).max(1));
        }
        assert_eq!(connection_cap(1), 1);
    }
}
