//! The emitter: a background thread that batches job events to wasmon.
//!
//! [`Emitter::send`] never blocks on the network: it puts the event in a
//! bounded buffer and returns. The thread sends up to `batch_size` events per
//! `POST /v1/events/batch` as soon as that many wait, or after
//! `flush_interval`. A failed send (connection error, timeout, 429 or 5xx) is
//! retried with capped exponential backoff and jitter; the batch stays at the
//! front of the buffer meanwhile, so order is kept and nothing is lost while
//! wasmon restarts. When the buffer is full the oldest event is dropped and
//! counted ([`Stats::dropped`]). A batch wasmon refuses for what it holds
//! (another 4xx) is not retried: it is counted in [`Stats::rejected`] and
//! logged with wasmon's `detail`.
//!
//! Dropping the last handle flushes what is buffered (for up to
//! `close_timeout`) and stops the thread.

use crate::Error;
use crate::event::JobEvent;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Counters of what an emitter did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events wasmon accepted.
    pub sent: u64,
    /// Events dropped because the buffer was full.
    pub dropped: u64,
    /// Events wasmon refused (a 4xx other than 429); not retried.
    pub rejected: u64,
    /// Sends that failed and were retried.
    pub retries: u64,
    /// Events waiting in the buffer now, in flight included.
    pub buffered: usize,
}

/// How an [`Emitter`] behaves.
#[derive(Debug, Clone)]
pub struct EmitterBuilder {
    base_url: String,
    token: Option<String>,
    batch_size: usize,
    flush_interval: Duration,
    max_buffer: usize,
    timeout: Duration,
    retry_initial: Duration,
    retry_max: Duration,
    close_timeout: Duration,
}

impl EmitterBuilder {
    /// Bearer token for wasmon's `ingest.token`.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Most events per request (100).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// Longest an event waits for its batch to fill (200 ms).
    pub fn flush_interval(mut self, d: Duration) -> Self {
        self.flush_interval = d;
        self
    }

    /// Most events buffered; beyond, the oldest are dropped (10 000).
    pub fn max_buffer(mut self, n: usize) -> Self {
        self.max_buffer = n.max(1);
        self
    }

    /// Time limit of one request (5 s).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// First and longest wait between retries (100 ms, 5 s).
    pub fn retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.retry_initial = initial;
        self.retry_max = max.max(initial);
        self
    }

    /// How long dropping the last handle waits for the buffer to drain (5 s).
    pub fn close_timeout(mut self, d: Duration) -> Self {
        self.close_timeout = d;
        self
    }

    /// Starts the emitter's thread.
    pub fn build(self) -> Result<Emitter, Error> {
        let base = self.base_url.trim_end_matches('/').to_string();
        let scheme_ok =
            base.starts_with("http://") || (cfg!(feature = "tls") && base.starts_with("https://"));
        if !scheme_ok {
            return Err(Error::InvalidUrl {
                url: self.base_url.clone(),
                reason: if base.starts_with("https://") {
                    "https needs the `tls` feature of wasmon-client".into()
                } else {
                    "expected http://HOST:PORT".into()
                },
            });
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            drained: Condvar::new(),
            sent: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        });
        let worker = Worker {
            url: format!("{base}/v1/events/batch"),
            shared: shared.clone(),
            agent: ureq::Agent::config_builder()
                .timeout_global(Some(self.timeout))
                .http_status_as_error(false)
                .build()
                .into(),
            config: self.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("wasmon-emitter".into())
            .spawn(move || worker.run())?;
        Ok(Emitter {
            inner: Arc::new(Inner {
                shared,
                max_buffer: self.max_buffer,
                close_timeout: self.close_timeout,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }
}

/// A cheap, cloneable handle to the emitter's thread.
#[derive(Clone)]
pub struct Emitter {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    max_buffer: usize,
    close_timeout: Duration,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    state: Mutex<State>,
    /// The buffer filled up to a batch, a flush was asked for, or the emitter closes.
    wake: Condvar,
    /// The buffer became empty.
    drained: Condvar,
    sent: AtomicU64,
    rejected: AtomicU64,
    retries: AtomicU64,
}

#[derive(Default)]
struct State {
    /// Serialized events, oldest first; the first `in_flight` are being sent.
    buffer: VecDeque<String>,
    in_flight: usize,
    dropped: u64,
    flush: bool,
    closing: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn flush(&self, timeout: Duration) -> Result<(), Error> {
        let started = Instant::now();
        let mut state = self.lock();
        state.flush = true;
        self.wake.notify_one();
        while !state.buffer.is_empty() {
            let left = timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(Error::FlushTimeout {
                    pending: state.buffer.len(),
                    waited: timeout,
                });
            }
            state = self
                .drained
                .wait_timeout(state, left)
                .map(|(s, _)| s)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        Ok(())
    }
}

impl Emitter {
    /// An emitter with the defaults, sending to `base_url` (e.g.
    /// `http://localhost:9400`; seed 002's `SIDECAR_URL`).
    pub fn new(base_url: &str) -> Result<Emitter, Error> {
        Emitter::builder(base_url).build()
    }

    /// An emitter to configure.
    pub fn builder(base_url: &str) -> EmitterBuilder {
        EmitterBuilder {
            base_url: base_url.to_string(),
            token: None,
            batch_size: 100,
            flush_interval: Duration::from_millis(200),
            max_buffer: 10_000,
            timeout: Duration::from_secs(5),
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
            close_timeout: Duration::from_secs(5),
        }
    }

    /// Buffers an event for the next batch; never blocks on the network.
    pub fn send(&self, event: &JobEvent) {
        let json = match serde_json::to_string(event) {
            Ok(json) => json,
            Err(error) => {
                tracing::warn!(%error, "job event not serializable; dropped");
                return;
            }
        };
        let shared = &self.inner.shared;
        let mut state = shared.lock();
        // Events in flight stay: they are dropped only if wasmon refuses them.
        if state.buffer.len() >= self.inner.max_buffer && state.buffer.len() > state.in_flight {
            let oldest_waiting = state.in_flight;
            state.buffer.remove(oldest_waiting);
            state.dropped += 1;
        }
        state.buffer.push_back(json);
        drop(state);
        shared.wake.notify_one();
    }

    /// Sends what is buffered now and waits until the buffer is empty, for at
    /// most `timeout`.
    pub fn flush(&self, timeout: Duration) -> Result<(), Error> {
        self.inner.shared.flush(timeout)
    }

    /// What the emitter did so far.
    pub fn stats(&self) -> Stats {
        let shared = &self.inner.shared;
        let state = shared.lock();
        Stats {
            sent: shared.sent.load(Ordering::Relaxed),
            dropped: state.dropped,
            rejected: shared.rejected.load(Ordering::Relaxed),
            retries: shared.retries.load(Ordering::Relaxed),
            buffered: state.buffer.len(),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(error) = self.shared.flush(self.close_timeout) {
            tracing::warn!(%error, "emitter closed with events undelivered");
        }
        self.shared.lock().closing = true;
        self.shared.wake.notify_one();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

struct Worker {
    url: String,
    shared: Arc<Shared>,
    agent: ureq::Agent,
    config: EmitterBuilder,
}

/// How a send went.
enum Outcome {
    Sent,
    /// Worth retrying: the reason.
    Retry(String),
    /// wasmon refused the batch for what it holds: the reason.
    Rejected(String),
}

impl Worker {
    fn run(self) {
        let mut backoff = self.config.retry_initial;
        loop {
            let batch = {
                let mut state = self.shared.lock();
                let deadline = Instant::now() + self.config.flush_interval;
                // Wait for a full batch, a flush, closing, or the interval.
                while !state.closing && !state.flush && state.buffer.len() < self.config.batch_size
                {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    state = self
                        .shared
                        .wake
                        .wait_timeout(state, left)
                        .map(|(s, _)| s)
                        .unwrap_or_else(|e| e.into_inner().0);
                }
                if state.buffer.is_empty() {
                    state.flush = false;
                    self.shared.drained.notify_all();
                    if state.closing {
                        return;
                    }
                    continue;
                }
                let n = state.buffer.len().min(self.config.batch_size);
                state.in_flight = n;
                let mut body = String::with_capacity(n * 512);
                body.push('[');
                for (i, event) in state.buffer.iter().take(n).enumerate() {
                    if i > 0 {
                        body.push(',');
                    }
                    body.push_str(event);
                }
                body.push(']');
                (n, body)
            };
            let (n, body) = batch;
            let outcome = self.post(&body);
            let mut state = self.shared.lock();
            state.in_flight = 0;
            match outcome {
                Outcome::Sent => {
                    state.buffer.drain(..n);
                    self.shared.sent.fetch_add(n as u64, Ordering::Relaxed);
                    backoff = self.config.retry_initial;
                }
                Outcome::Rejected(reason) => {
                    state.buffer.drain(..n);
                    self.shared.rejected.fetch_add(n as u64, Ordering::Relaxed);
                    tracing::warn!(events = n, %reason, "wasmon refused a batch; dropped");
                }
                Outcome::Retry(reason) => {
                    self.shared.retries.fetch_add(1, Ordering::Relaxed);
                    if state.closing {
                        tracing::warn!(events = state.buffer.len(), %reason, "closing with events undelivered");
                        return;
                    }
                    drop(state);
                    let wait = jittered(backoff);
                    tracing::debug!(%reason, retry_in_ms = wait.as_millis() as u64, "send failed; retrying");
                    std::thread::sleep(wait);
                    backoff = (backoff * 2).min(self.config.retry_max);
                    continue;
                }
            }
            if state.buffer.is_empty() {
                state.flush = false;
                self.shared.drained.notify_all();
            }
        }
    }

    fn post(&self, body: &str) -> Outcome {
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json");
        if let Some(token) = &self.config.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        match request.send(body.as_bytes()) {
            Ok(mut response) => {
                let status = response.status().as_u16();
                if (200..300).contains(&status) {
                    return Outcome::Sent;
                }
                let detail = response
                    .body_mut()
                    .read_to_string()
                    .ok()
                    .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
                    .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(String::from))
                    .unwrap_or_default();
                let reason = format!("HTTP {status}: {detail}");
                if status == 429 || status >= 500 {
                    Outcome::Retry(reason)
                } else {
                    Outcome::Rejected(reason)
                }
            }
            Err(error) => Outcome::Retry(error.to_string()),
        }
    }
}

/// `d` ± 20 %.
fn jittered(d: Duration) -> Duration {
    d.mul_f64(0.8 + fastrand::f64() * 0.4)
}
