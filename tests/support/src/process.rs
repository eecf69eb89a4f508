//! Child processes the tests start: tied to the test binary so they cannot
//! outlive it, output captured line by line, stopped with their whole tree.
//!
//! Every child is spawned by one long-lived "keeper" thread with
//! `PR_SET_PDEATHSIG = SIGTERM`: the signal fires when the spawning *thread*
//! exits, and the keeper only exits with the process, so a test binary that is
//! killed (timeout, Ctrl-C, abort) still takes its servers down. Each child also
//! carries `WASMON_TEST_OWNER=<tag>` in its environment, inherited by everything
//! it forks, so [`leftover_processes`] finds even helpers re-parented to PID 1.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The environment variable that marks every process a test started.
pub const OWNER_VAR: &str = "WASMON_TEST_OWNER";

/// A fresh tag, unique in this machine's process table while this process lives.
pub(crate) fn new_tag(kind: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{kind}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A free TCP port on 127.0.0.1 (free now; a server binding it later may race
/// another process, so starters retry on "address in use").
pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// `N` distinct free TCP ports on 127.0.0.1 (all bound at once, then released).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<_> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("cannot bind a loopback port"))
        .collect();
    std::array::from_fn(|i| {
        listeners[i]
            .local_addr()
            .expect("a bound listener has an address")
            .port()
    })
}

/// Lines a child wrote on stdout and stderr, in arrival order, ANSI colours removed.
#[derive(Default)]
pub(crate) struct Logs {
    inner: Mutex<LogsInner>,
    changed: Condvar,
}

#[derive(Default)]
struct LogsInner {
    lines: Vec<String>,
    /// Output streams still being read.
    open_streams: usize,
}

impl Logs {
    pub(crate) fn push(&self, line: String) {
        self.inner.lock().unwrap().lines.push(line);
        self.changed.notify_all();
    }

    /// Every line so far, joined with newlines.
    pub(crate) fn text(&self) -> String {
        self.inner.lock().unwrap().lines.join("\n")
    }

    /// How many lines there are now (a mark for [`Logs::wait_for`]).
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().unwrap().lines.len()
    }

    /// Waits until a line from index `since` on contains `pattern`; returns it.
    pub(crate) fn wait_for(
        &self,
        since: usize,
        pattern: &str,
        timeout: Duration,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut inner = self.inner.lock().unwrap();
        loop {
            if let Some(line) = inner.lines.iter().skip(since).find(|l| l.contains(pattern)) {
                return Some(line.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            inner = self.changed.wait_timeout(inner, left).unwrap().0;
        }
    }

    /// Waits (at most `timeout`: a grandchild may hold the pipes open) until every
    /// stream reached its end, so a child that exited has all its output here.
    fn wait_drained(&self, timeout: Duration) {
        let inner = self.inner.lock().unwrap();
        let _ = self
            .changed
            .wait_timeout_while(inner, timeout, |inner| inner.open_streams > 0)
            .unwrap();
    }

    fn stream_opened(&self) {
        self.inner.lock().unwrap().open_streams += 1;
    }

    fn stream_closed(&self) {
        self.inner.lock().unwrap().open_streams -= 1;
        self.changed.notify_all();
    }
}

/// Removes ANSI escape sequences (`ESC [ ... final-byte`), so patterns match
/// whether or not the child coloured its output.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn capture(stream: impl Read + Send + 'static, logs: Arc<Logs>) {
    logs.stream_opened();
    std::thread::Builder::new()
        .name("test-child-output".into())
        .spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut buf = Vec::new();
            while reader.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                let line = String::from_utf8_lossy(&buf);
                logs.push(strip_ansi(line.trim_end_matches(['\n', '\r'])));
                buf.clear();
            }
            logs.stream_closed();
        })
        .expect("cannot start an output reader thread");
}

type SpawnJob = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns `cmd` from the keeper thread, so `PR_SET_PDEATHSIG` means "when the
/// test process dies", not "when the current test thread ends".
fn spawn_tied(cmd: Command) -> std::io::Result<Child> {
    static KEEPER: OnceLock<Mutex<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("test-child-keeper".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("cannot start the child keeper thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    keeper
        .lock()
        .unwrap()
        .send((cmd, reply_tx))
        .expect("the child keeper thread is gone");
    reply_rx.recv().expect("the child keeper thread is gone")
}

/// A process identity that survives PID reuse: the PID plus its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProcessId {
    /// The PID.
    pub pid: i32,
    /// Start time in clock ticks since boot (`/proc/PID/stat` field 22).
    pub start_time: u64,
}

/// `(ppid, state, start time)` of a process, from `/proc/PID/stat`.
fn stat(pid: i32) -> Option<(i32, char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let state = fields.first()?.chars().next()?;
    let ppid = fields.get(1)?.parse().ok()?;
    let start_time = fields.get(19)?.parse().ok()?;
    Some((ppid, state, start_time))
}

impl ProcessId {
    fn of(pid: i32) -> Option<ProcessId> {
        stat(pid).map(|(_, _, start_time)| ProcessId { pid, start_time })
    }

    /// Whether this very process still runs (a zombie does not count: it only
    /// waits to be reaped, by PID 1 for orphans).
    pub fn is_running(&self) -> bool {
        matches!(stat(self.pid), Some((_, state, start)) if start == self.start_time && state != 'Z' && state != 'X')
    }

    /// Its command line, for messages.
    pub fn cmdline(&self) -> String {
        std::fs::read(format!("/proc/{}/cmdline", self.pid))
            .map(|raw| {
                String::from_utf8_lossy(&raw)
                    .replace('\0', " ")
                    .trim()
                    .to_string()
            })
            .unwrap_or_default()
    }

    fn signal(&self, signal: i32) {
        if self.is_running() {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(self.pid, signal) };
        }
    }
}

fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// `pid` and every process below it, as the process table stands now.
pub fn process_tree(pid: i32) -> Vec<ProcessId> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for p in all_pids() {
        if let Some((ppid, _, _)) = stat(p) {
            children.entry(ppid).or_default().push(p);
        }
    }
    let mut tree = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        if let Some(id) = ProcessId::of(p) {
            tree.push(id);
        }
        todo.extend(children.get(&p).into_iter().flatten());
    }
    tree
}

/// Running processes whose environment carries `WASMON_TEST_OWNER=<tag>`: what is
/// left of a child and everything it started, wherever it was re-parented.
/// (Not a process that rewrote its own environment, as redis-server does for its
/// title: the guards' `processes()` add the process tree for that.)
pub fn leftover_processes(tag: &str) -> Vec<ProcessId> {
    let needle = format!("{OWNER_VAR}={tag}");
    all_pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == needle.as_bytes()))
        })
        .filter_map(ProcessId::of)
        .filter(ProcessId::is_running)
        .collect()
}

/// Why a child could not be started; `port_race` when another process took a
/// port between choosing and binding it, so a retry with new ports may work.
#[derive(Debug)]
pub(crate) struct StartError {
    pub(crate) message: String,
    pub(crate) port_race: bool,
}

impl StartError {
    pub(crate) fn new(message: String) -> StartError {
        let lower = message.to_lowercase();
        let port_race = lower.contains("address already in use") || lower.contains("eaddrinuse");
        StartError { message, port_race }
    }
}

/// Runs `start` up to three times while it fails with a port race; panics with
/// the last error otherwise.
pub(crate) fn start_with_retry<T>(
    what: &str,
    mut start: impl FnMut() -> Result<T, StartError>,
) -> T {
    const ATTEMPTS: usize = 3;
    for attempt in 1..=ATTEMPTS {
        match start() {
            Ok(started) => return started,
            Err(e) if e.port_race && attempt < ATTEMPTS => {
                eprintln!(
                    "{what}: port taken while starting (attempt {attempt}), retrying with new ports"
                );
            }
            Err(e) => panic!("cannot start {what}: {}", e.message),
        }
    }
    unreachable!("the last attempt returns or panics")
}

/// A running child: its output captured, stopped (with everything it started)
/// on [`ChildProcess::stop`] or drop.
pub(crate) struct ChildProcess {
    name: String,
    tag: String,
    pid: i32,
    /// The child until it is reaped, then its exit status. While the child is not
    /// reaped its PID cannot be reused, so signalling it under this lock is safe.
    state: Mutex<Result<Child, ExitStatus>>,
    logs: Arc<Logs>,
    stop_timeout: Duration,
}

impl ChildProcess {
    /// Spawns `cmd` (stdin null, its own process group, tagged with `tag`), its
    /// stdout and stderr captured into `logs`.
    pub(crate) fn spawn(
        name: &str,
        tag: &str,
        mut cmd: Command,
        stop_timeout: Duration,
        logs: Arc<Logs>,
    ) -> std::io::Result<ChildProcess> {
        let parent = std::process::id() as i32;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env(OWNER_VAR, tag)
            .process_group(0);
        // SAFETY: the closure runs between fork and exec and only makes
        // async-signal-safe calls (prctl, getppid, _exit).
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                if libc::getppid() != parent {
                    // The test process died before prctl took effect.
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let mut child = spawn_tied(cmd)?;
        if let Some(out) = child.stdout.take() {
            capture(out, logs.clone());
        }
        if let Some(err) = child.stderr.take() {
            capture(err, logs.clone());
        }
        Ok(ChildProcess {
            name: name.to_string(),
            tag: tag.to_string(),
            pid: child.id() as i32,
            state: Mutex::new(Ok(child)),
            logs,
            stop_timeout,
        })
    }

    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    pub(crate) fn tag(&self) -> &str {
        &self.tag
    }

    pub(crate) fn logs(&self) -> &Arc<Logs> {
        &self.logs
    }

    /// Its processes now: the tree below it (while it runs) and everything
    /// carrying its tag. Some programs (redis-server's process title) overwrite
    /// their environment, so the tree is needed too.
    pub(crate) fn processes(&self) -> Vec<ProcessId> {
        let mut all: BTreeSet<ProcessId> = self
            .with_running(|child| process_tree(child.id() as i32))
            .unwrap_or_default()
            .into_iter()
            .collect();
        all.extend(leftover_processes(&self.tag));
        all.into_iter().collect()
    }

    /// Runs `f` on the child if it has not exited yet (reaping it if it has).
    fn with_running<T>(&self, f: impl FnOnce(&mut Child) -> T) -> Option<T> {
        let mut state = self.state.lock().unwrap();
        if let Ok(child) = state.as_mut() {
            match child.try_wait() {
                Ok(Some(status)) => *state = Err(status),
                _ => return Some(f(child)),
            }
        }
        None
    }

    /// Its exit status if it has exited (reaping it), `None` while it runs.
    pub(crate) fn try_status(&self) -> Option<ExitStatus> {
        self.with_running(|_| ());
        self.state.lock().unwrap().as_ref().err().copied()
    }

    /// Sends `signal` to the child itself, if it still runs.
    pub(crate) fn signal(&self, signal: i32) {
        self.with_running(|child| {
            // SAFETY: kill(2) has no memory-safety preconditions; the child is
            // not reaped (we hold its state), so the PID is still ours.
            unsafe { libc::kill(child.id() as i32, signal) };
        });
    }

    /// Stops the child and everything it started: records the tree, sends
    /// `signal`, waits up to the stop timeout, then SIGKILLs the child and
    /// every survivor by PID. Idempotent; returns the child's exit status.
    pub(crate) fn stop_with(&self, signal: i32) -> ExitStatus {
        let mut doomed: BTreeSet<ProcessId> = self
            .with_running(|child| {
                let tree = process_tree(child.id() as i32);
                // SAFETY: as in `signal`.
                unsafe { libc::kill(child.id() as i32, signal) };
                tree
            })
            .unwrap_or_default()
            .into_iter()
            .collect();
        let deadline = Instant::now() + self.stop_timeout;
        while self.try_status().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.signal(libc::SIGKILL);
        let status = {
            let mut state = self.state.lock().unwrap();
            if let Ok(child) = state.as_mut() {
                *state = Err(child.wait().expect("cannot wait for a child"));
            }
            state
                .as_ref()
                .err()
                .copied()
                .expect("the child was waited for")
        };
        // Helpers that started their own sessions or were re-parented.
        doomed.extend(leftover_processes(&self.tag));
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let alive: Vec<_> = doomed.iter().filter(|p| p.is_running()).collect();
            if alive.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                eprintln!("{}: processes survive SIGKILL: {alive:?}", self.name);
                break;
            }
            alive.iter().for_each(|p| p.signal(libc::SIGKILL));
            std::thread::sleep(Duration::from_millis(10));
        }
        status
    }

    /// [`ChildProcess::stop_with`] SIGTERM.
    pub(crate) fn stop(&self) -> ExitStatus {
        self.stop_with(libc::SIGTERM)
    }

    /// Polls `ready` until it returns true; fails with the child's output if the
    /// child exits first or `timeout` passes.
    pub(crate) fn wait_ready(
        &self,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), StartError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status() {
                self.logs.wait_drained(Duration::from_secs(2));
                return Err(StartError::new(format!(
                    "{} exited during start-up ({status}); its output:\n{}",
                    self.name,
                    self.logs.text()
                )));
            }
            if ready() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let message = format!(
                    "{} not ready after {timeout:?}; its output:\n{}",
                    self.name,
                    self.logs.text()
                );
                self.stop();
                return Err(StartError::new(message));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a TCP connection to `127.0.0.1:port` succeeds.
pub(crate) fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
        .is_ok()
}
