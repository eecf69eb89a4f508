//! What a plugin's `Store` holds: its WASI context, its limits, the per-call
//! budget, and the environment its capabilities consult (`PluginEnv`).

use super::capabilities::{self, States};
use super::fault::Fault;
use super::manifest::Manifest;
use super::state::KvState;
use crate::telemetry::Telemetry;
use crate::units::ByteSize;
use parking_lot::Mutex;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Everything a plugin generation's capabilities consult. Shared by every
/// instance (restart) of that generation.
pub struct PluginEnv {
    /// The plugin's name.
    pub name: Arc<str>,
    /// Its parsed manifest.
    pub manifest: Manifest,
    /// The manifest's `[config]` as JSON text.
    pub config_json: String,
    /// The key-value state; owned by the plugin's slot, so it survives reloads.
    pub state: Arc<KvState>,
    /// The per-generation state of every capability (`capabilities::*`).
    pub capabilities: States,
    /// Self-metrics.
    pub telemetry: Arc<Telemetry>,
    /// Rate limit of the `log` capability.
    pub log_limiter: Mutex<TokenBucket>,
    /// The tail of what the guest wrote to stdout/stderr (panic messages land here).
    pub output: GuestOutput,
    /// Its self-metrics, resolved once.
    pub metrics: PluginMetrics,
}

/// A plugin's self-metrics with their labels resolved once per generation, so
/// a call updates them without looking labels up.
pub struct PluginMetrics {
    /// `wasmon_plugin_memory_bytes`.
    pub memory: prometheus::IntGauge,
    /// `wasmon_plugin_call_duration_seconds` of its main export.
    pub call_duration: prometheus::Histogram,
    /// `wasmon_plugin_calls_total` by result.
    pub calls_ok: prometheus::IntCounter,
    /// ...
    pub calls_error: prometheus::IntCounter,
    /// ...
    pub calls_fault: prometheus::IntCounter,
}

impl PluginMetrics {
    /// Resolves the metrics of plugin `name`, whose main export is `export`.
    pub fn new(telemetry: &Telemetry, name: &str, export: &str) -> Self {
        PluginMetrics {
            memory: telemetry.plugin_memory.with_label_values(&[name]),
            call_duration: telemetry
                .plugin_call_duration
                .with_label_values(&[name, export]),
            calls_ok: telemetry.plugin_calls.with_label_values(&[name, "ok"]),
            calls_error: telemetry.plugin_calls.with_label_values(&[name, "error"]),
            calls_fault: telemetry.plugin_calls.with_label_values(&[name, "fault"]),
        }
    }
}

/// What the host lends every plugin generation.
pub struct HostParts<'a> {
    /// The capabilities' host-wide state.
    pub shared: &'a capabilities::Shared,
    /// The circuit breakers.
    pub breakers: &'a super::breaker::Breakers,
    /// Self-metrics.
    pub telemetry: Arc<Telemetry>,
}

impl PluginEnv {
    /// The environment of one generation of plugin `name`.
    pub fn new(
        name: Arc<str>,
        export: &str,
        manifest: Manifest,
        state: Arc<KvState>,
        host: HostParts<'_>,
        output: GuestOutput,
    ) -> Self {
        let telemetry = host.telemetry;
        let services = capabilities::Services {
            telemetry: &telemetry,
            breakers: host.breakers,
            breaker: manifest.breaker_settings(),
        };
        let capabilities = States::new(&name, &manifest.capabilities, host.shared, &services);
        PluginEnv {
            metrics: PluginMetrics::new(&telemetry, &name, export),
            capabilities,
            name,
            log_limiter: Mutex::new(TokenBucket::new(manifest.log_lines_per_second)),
            config_json: manifest.config.to_string(),
            manifest,
            state,
            telemetry,
            output,
        }
    }
}

/// The data of a plugin's `Store`.
pub struct PluginCtx {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) env: Arc<PluginEnv>,
    pub(crate) call: CallState,
    /// Calls in flight in this engine: the epoch ticker runs while there are some.
    pub(crate) activity: Arc<super::activity::Activity>,
}

impl PluginCtx {
    /// A fresh context for one instance of `env`'s plugin; its calls are
    /// counted in `activity`.
    pub fn new(env: Arc<PluginEnv>, activity: Arc<super::activity::Activity>) -> Self {
        let mut wasi = WasiCtx::builder();
        // No environment; no files or sockets unless `[capabilities.files]`
        // (a preopened directory) or `[capabilities.tcp]` (allow-listed
        // connects) grants them; other capabilities are our own interfaces.
        wasi.stdout(env.output.clone())
            .stderr(env.output.clone())
            .allow_tcp(false)
            .allow_udp(false);
        let mut call = CallState::idle();
        if let Some(quota) = &env.capabilities.files {
            quota.preopen(&mut wasi);
            call.violation.quota = Some(quota.clone());
        }
        capabilities::tcp::configure(&env, &mut wasi, &call.violation);
        PluginCtx {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(env.manifest.memory_limit),
            env,
            call,
            activity,
        }
    }
}

impl WasiView for PluginCtx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The budget and findings of the call in progress.
#[derive(Debug)]
pub struct CallState {
    /// When the call must be finished.
    pub deadline: Instant,
    /// The first capability violation seen during the call.
    pub violation: Violation,
    /// The longest `Retry-After` of a 429 or 503 answer the plugin received
    /// through the `http` capability during the call (the sink loop waits
    /// at least that long before it retries).
    pub retry_after: Option<Duration>,
}

impl CallState {
    fn idle() -> Self {
        CallState {
            deadline: Instant::now(),
            violation: Violation::default(),
            retry_after: None,
        }
    }

    /// Starts a call that must be finished by `deadline`.
    pub fn start(&mut self, deadline: Instant) {
        self.deadline = deadline;
        self.violation.clear();
        self.retry_after = None;
    }

    /// Time left before the deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

impl PluginCtx {
    /// Records a capability violation: the guest gets `not-granted`, and the call
    /// becomes a [`Fault::Capability`] when it returns.
    pub fn deny(&mut self, capability: &str, why: String) -> String {
        self.env
            .telemetry
            .plugin_capability_denied
            .with_label_values(&[&*self.env.name, capability])
            .inc();
        tracing::warn!(plugin = %self.env.name, capability, reason = %why, "capability denied");
        self.call.violation.record(format!("{capability}: {why}"));
        why
    }
}

/// The call's violation slot, shared with the checks that run outside the
/// guest's calls into our interfaces (the WASI socket check of
/// `[capabilities.tcp]`): the first violation recorded wins. It also holds
/// the `[capabilities.files]` cap, measured when the call ends.
#[derive(Clone, Default, Debug)]
pub struct Violation {
    slot: Arc<Mutex<Option<String>>>,
    quota: Option<capabilities::files::Quota>,
}

impl Violation {
    /// Records `why` unless a violation was recorded first.
    pub fn record(&self, why: String) {
        let mut slot = self.slot.lock();
        if slot.is_none() {
            *slot = Some(why);
        }
    }

    /// Forgets what was recorded (a call starts).
    pub fn clear(&self) {
        self.slot.lock().take();
    }

    /// The violation of the call that just ended, if any, and clears the
    /// slot: the first one recorded, else the files directory over its cap
    /// (measured now, after the call; see `capabilities::files`).
    pub fn take(&self) -> Option<String> {
        let recorded = self.slot.lock().take();
        recorded.or_else(|| {
            let quota = self.quota.as_ref()?;
            quota.check().err().map(|why| format!("files: {why}"))
        })
    }
}

/// Enforces the manifest's memory limit per linear memory, traps with a
/// [`Fault::Memory`] past it, and tracks what the instance holds.
pub struct MemoryLimiter {
    limit: ByteSize,
    /// Bytes held by all linear memories of the instance.
    pub held: u64,
}

impl MemoryLimiter {
    fn new(limit: ByteSize) -> Self {
        MemoryLimiter { limit, held: 0 }
    }
}

/// Most table elements one table may hold.
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.limit.0 {
            return Err(wasmtime::Error::new(Fault::Memory {
                limit: self.limit,
                desired: desired as u64,
            }));
        }
        self.held = self.held.saturating_add((desired - current) as u64);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        100
    }

    fn tables(&self) -> usize {
        100
    }

    fn memories(&self) -> usize {
        10
    }
}

/// A token bucket: `rate` tokens per second, bursts of twice that.
pub struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
    /// Tokens refused since the last report.
    pub refused: u64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: u32) -> Self {
        let rate = f64::from(rate.max(1));
        TokenBucket {
            rate,
            tokens: rate * 2.0,
            last: Instant::now(),
            refused: 0,
        }
    }

    /// Takes a token if one is there.
    pub fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate)
            .min(self.rate * 2.0);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.refused += 1;
            false
        }
    }
}

/// Most bytes of guest output kept.
const OUTPUT_TAIL: usize = 4096;

/// The guest's stdout and stderr: never fails a write, keeps the last
/// [`OUTPUT_TAIL`] bytes (where a panic message lands) and counts the rest.
#[derive(Clone, Default)]
pub struct GuestOutput {
    tail: Arc<Mutex<Vec<u8>>>,
    written: Arc<AtomicU64>,
}

impl GuestOutput {
    /// The last lines written, trimmed, as text.
    pub fn tail(&self) -> String {
        let tail = self.tail.lock();
        String::from_utf8_lossy(&tail).trim().to_string()
    }

    /// Forgets what was written.
    pub fn clear(&self) {
        self.tail.lock().clear();
    }

    /// Bytes written since the plugin was loaded.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    fn push(&self, bytes: &[u8]) {
        self.written
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let mut tail = self.tail.lock();
        if bytes.len() >= OUTPUT_TAIL {
            tail.clear();
            tail.extend_from_slice(&bytes[bytes.len() - OUTPUT_TAIL..]);
        } else {
            let overflow = (tail.len() + bytes.len()).saturating_sub(OUTPUT_TAIL);
            tail.drain(..overflow);
            tail.extend_from_slice(bytes);
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_output_keeps_the_tail() {
        let out = GuestOutput::default();
        out.push(&vec![b'a'; OUTPUT_TAIL]);
        out.push(b"\npanicked at src/lib.rs:1:1:\nboom\n");
        let tail = out.tail();
        assert!(
            tail.ends_with("panicked at src/lib.rs:1:1:\nboom"),
            "{tail}"
        );
        assert_eq!(out.tail.lock().len(), OUTPUT_TAIL);
        assert_eq!(out.written(), OUTPUT_TAIL as u64 + 34);
    }

    #[test]
    fn token_bucket_refuses_past_its_burst() {
        let mut bucket = TokenBucket::new(5);
        let taken = (0..20).filter(|_| bucket.take()).count();
        assert_eq!(taken, 10);
        assert_eq!(bucket.refused, 10);
    }
}
