//! One connection: hyper serves it while a watchdog bounds how long the
//! client may keep it without making progress.
//!
//! The watchdog knows two things: how many requests are in flight (from the
//! moment their headers are parsed until their response body is sent or
//! dropped) and whether bytes arrived (the socket is wrapped to count reads).
//! With no request in flight, the connection is closed
//!
//! - before its first request: `header_read_timeout` after the accept;
//! - between requests: `keep_alive_timeout` after the last response, unless
//!   the next request has started to arrive, which then gets
//!   `header_read_timeout` more.
//!
//! A request in flight is never cut by the watchdog; its body is bounded by
//! [`DeadlineBody`]: it must arrive whole within `body_read_timeout` of the
//! headers, else the body read fails, the answer becomes `408` with a
//! `{"detail"}`, and (HTTP/1) the connection closes after it. Every request
//! also carries the peer address as [`ConnectInfo`], for the admin guard.

use crate::export::ApiError;
use crate::shutdown::Shutdown;
use crate::telemetry::Telemetry;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, Version, header};
use axum::response::IntoResponse;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::service::Service as HyperService;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What every connection of one server shares.
pub(super) struct Context {
    pub(super) builder: auto::Builder<TokioExecutor>,
    pub(super) router: axum::Router,
    pub(super) header_read_timeout: Duration,
    pub(super) body_read_timeout: Duration,
    pub(super) keep_alive_timeout: Duration,
    pub(super) telemetry: Arc<Telemetry>,
    pub(super) shutdown: Shutdown,
}

/// What a connection's requests and reads tell its watchdog.
#[derive(Default)]
struct Activity {
    /// Requests whose headers were parsed and whose response is not yet
    /// sent (or dropped).
    in_flight: AtomicUsize,
    /// Reads that returned data.
    reads: AtomicU64,
    /// Wakes the watchdog when `in_flight` leaves or reaches zero.
    changed: Notify,
}

impl Activity {
    fn start(self: &Arc<Self>) -> InFlight {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) == 0 {
            self.changed.notify_one();
        }
        InFlight(self.clone())
    }

    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
}

/// One request in flight, until dropped with its response body.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.changed.notify_one();
        }
    }
}

/// What the watchdog waits for while no request is in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The first request's headers (`header_read_timeout` from the accept).
    First,
    /// The next request, after a response (`keep_alive_timeout`).
    Idle,
    /// A request that started to arrive while idle (`header_read_timeout`).
    Headers,
}

/// Serves one accepted connection until it ends, the client is too slow, or
/// shutdown has let its requests in flight finish.
pub(super) async fn serve(context: &Context, stream: TcpStream, peer: SocketAddr) {
    let activity = Arc::new(Activity::default());
    let service = Handler {
        router: TowerToHyperService::new(context.router.clone()),
        peer,
        activity: activity.clone(),
        body_read_timeout: context.body_read_timeout,
        telemetry: context.telemetry.clone(),
    };
    let io = TokioIo::new(Counted {
        stream,
        activity: activity.clone(),
    });
    let connection = context.builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(connection);
    let timer = tokio::time::sleep(context.header_read_timeout);
    tokio::pin!(timer);
    let mut phase = Phase::First;
    let mut reads_when_idle = 0;
    let mut draining = false;
    loop {
        let busy = activity.busy();
        tokio::select! {
            biased;
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
                return;
            }
            () = activity.changed.notified() => {
                if !activity.busy() {
                    phase = Phase::Idle;
                    reads_when_idle = activity.reads();
                    timer.as_mut().reset(Instant::now() + context.keep_alive_timeout);
                }
            }
            () = &mut timer, if !busy => {
                if activity.busy() {
                    continue;
                }
                let expired = match phase {
                    Phase::Idle if activity.reads() != reads_when_idle => {
                        phase = Phase::Headers;
                        timer.as_mut().reset(Instant::now() + context.header_read_timeout);
                        None
                    }
                    Phase::Idle => Some("idle"),
                    Phase::First | Phase::Headers => Some("header"),
                };
                if let Some(phase) = expired {
                    context.telemetry.http_timeouts.with_label_values(&[phase]).inc();
                    tracing::debug!(%peer, phase, "connection closed: client too slow");
                    // Dropping the connection closes the socket: nothing is in flight.
                    return;
                }
            }
            () = context.shutdown.wait(), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// The hyper service of one connection: the router, with the peer address,
/// the body deadline and the in-flight count around each request.
#[derive(Clone)]
struct Handler {
    router: TowerToHyperService<axum::Router>,
    peer: SocketAddr,
    activity: Arc<Activity>,
    body_read_timeout: Duration,
    telemetry: Arc<Telemetry>,
}

impl HyperService<Request<Incoming>> for Handler {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let in_flight = self.activity.start();
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(ConnectInfo(self.peer));
        let version = parts.version;
        let (body, timed_out) = if hyper::body::Body::is_end_stream(&body) {
            (Body::new(body), None)
        } else {
            let flag = Arc::new(AtomicBool::new(false));
            let body = DeadlineBody::new(body, self.body_read_timeout, flag.clone());
            (Body::new(body), Some(flag))
        };
        let answer = self.router.call(Request::from_parts(parts, body));
        let timeout = self.body_read_timeout;
        let telemetry = self.telemetry.clone();
        Box::pin(async move {
            let mut response = match answer.await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            if timed_out.is_some_and(|flag| flag.load(Ordering::Acquire)) {
                telemetry.http_timeouts.with_label_values(&["body"]).inc();
                response = ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    BodyTimeout(timeout).to_string(),
                )
                .into_response();
                if version <= Version::HTTP_11 {
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
            }
            Ok(response.map(|body| TrackedBody {
                body,
                _in_flight: in_flight,
            }))
        })
    }
}

/// A response body that keeps its request in flight until it is sent or dropped.
pub(super) struct TrackedBody {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request body not received whole within `server.body_read_timeout`.
#[derive(Debug, thiserror::Error)]
#[error(
    "the request body did not arrive within {} (server.body_read_timeout)",
    humantime::format_duration(*.0)
)]
pub(super) struct BodyTimeout(Duration);

/// Whether `error`, or an error it wraps, is a [`BodyTimeout`].
pub(crate) fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<BodyTimeout>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// A request body with a deadline for its last frame. The timer is created
/// only when the body is not already there, so small bodies cost nothing.
struct DeadlineBody {
    inner: Incoming,
    deadline: Instant,
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    timed_out: Arc<AtomicBool>,
}

impl DeadlineBody {
    fn new(inner: Incoming, timeout: Duration, timed_out: Arc<AtomicBool>) -> DeadlineBody {
        DeadlineBody {
            inner,
            deadline: Instant::now() + timeout,
            timeout,
            sleep: None,
            timed_out,
        }
    }
}

impl hyper::body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.timed_out.load(Ordering::Acquire) {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(BoxError::from)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(sleep.as_mut().poll(cx));
        this.timed_out.store(true, Ordering::Release);
        Poll::Ready(Some(Err(Box::new(BodyTimeout(this.timeout)))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream() || self.timed_out.load(Ordering::Acquire)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, counting reads that return data for the watchdog.
struct Counted {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.reads.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_timeout_is_found_through_the_errors_wrapping_it() {
        let timeout: BoxError = Box::new(BodyTimeout(Duration::from_millis(1500)));
        assert_eq!(
            timeout.to_string(),
            "the request body did not arrive within 1s 500ms (server.body_read_timeout)"
        );
        let wrapped: BoxError = Box::new(axum::Error::new(timeout));
        assert!(is_body_timeout(&*wrapped));
        let other: BoxError = Box::new(axum::Error::new(io::Error::other("reset")));
        assert!(!is_body_timeout(&*other));
    }
}
