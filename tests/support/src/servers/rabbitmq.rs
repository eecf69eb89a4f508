//! [`RabbitMqServer`]: a real RabbitMQ broker on free loopback ports, everything
//! (home, cookie, database, logs, its own epmd) in a temporary directory. See
//! `shared/notes/real-servers.md` for why each setting is there.
//!
//! A broker takes 3–8 s to boot: tests that can share one use
//! [`RabbitMqServer::shared`] (one per test binary, isolated by queue names).

use crate::process::{self, ChildProcess, StartError};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// The real server script; `/usr/sbin/rabbitmq-server` would switch to the
/// rabbitmq user and log under `/var/log` when run as root.
const RABBITMQ_BIN: &str = "/usr/lib/rabbitmq/bin";

/// The AMQP 0-9-1 protocol header a client opens with.
const AMQP_HEADER: &[u8] = b"AMQP\x00\x00\x09\x01";

/// The ports and paths one broker uses.
#[derive(Debug, Clone)]
struct Layout {
    dir: PathBuf,
    port: u16,
    epmd_port: u16,
    dist_port: u16,
}

impl Layout {
    fn node_name(&self) -> String {
        format!("rabbit{}@localhost", self.port)
    }

    /// The environment shared by the broker and `rabbitmqctl`.
    fn apply_env(&self, cmd: &mut Command) {
        let dir = &self.dir;
        cmd.env("HOME", dir.join("home"))
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("ERL_CRASH_DUMP", dir.join("erl_crash.dump"))
            .env("RABBITMQ_NODENAME", self.node_name())
            .env("RABBITMQ_CONF_ENV_FILE", dir.join("rabbitmq-env.conf"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .current_dir(dir);
    }

    fn write_files(&self) -> std::io::Result<()> {
        let dir = &self.dir;
        std::fs::create_dir_all(dir.join("home"))?;
        let cookie = dir.join("home/.erlang.cookie");
        std::fs::write(&cookie, format!("WASMONTEST{}", self.port))?;
        // Erlang refuses to boot with a cookie others can read.
        std::fs::set_permissions(&cookie, std::fs::Permissions::from_mode(0o400))?;
        std::fs::write(dir.join("rabbitmq-env.conf"), "")?;
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!(
                "listeners.tcp.default = 127.0.0.1:{}\ndisk_free_limit.absolute = 10MB\n",
                self.port
            ),
        )?;
        std::fs::write(dir.join("enabled_plugins"), "[].\n")?;
        Ok(())
    }
}

/// A running broker and the epmd it registers with; stopped when dropped
/// (broker first, its helpers by PID, epmd last).
pub struct RabbitMqServer {
    // Field order is drop order: the broker before its epmd, both before the dir.
    // A lock, so `kill`/`restart` can replace the broker through `&self`.
    server: std::sync::Mutex<ChildProcess>,
    epmd: ChildProcess,
    layout: Layout,
    dir: tempfile::TempDir,
}

impl RabbitMqServer {
    /// Starts a broker of its own and waits until its AMQP port answers the
    /// protocol header. Panics (with its output) if it cannot be started: run
    /// `scripts/test.sh` to install RabbitMQ.
    pub fn start() -> RabbitMqServer {
        process::start_with_retry("rabbitmq-server", Self::try_start)
    }

    /// One broker for the whole test binary, started on first use and stopped
    /// when the test process exits. Tests sharing it use their own queue names.
    pub fn shared() -> &'static RabbitMqServer {
        static SHARED: OnceLock<RabbitMqServer> = OnceLock::new();
        extern "C" fn stop_shared() {
            if let Some(server) = SHARED.get() {
                server.shutdown();
            }
        }
        SHARED.get_or_init(|| {
            let server = RabbitMqServer::start();
            // SAFETY: registers a plain function; it runs once, at exit.
            unsafe { libc::atexit(stop_shared) };
            server
        })
    }

    fn try_start() -> Result<RabbitMqServer, StartError> {
        let dir = tempfile::Builder::new()
            .prefix("wasmon-rabbitmq-")
            .tempdir()
            .expect("cannot create a temporary directory");
        let [port, epmd_port, dist_port] = process::free_ports();
        let layout = Layout {
            dir: dir.path().to_path_buf(),
            port,
            epmd_port,
            dist_port,
        };
        layout
            .write_files()
            .unwrap_or_else(|e| panic!("cannot prepare {}: {e}", layout.dir.display()));
        let tag = process::new_tag("rabbitmq");

        // Our own epmd on loopback, or Erlang forks a daemon that outlives us.
        let mut epmd = Command::new("epmd");
        epmd.args([
            "-port",
            &layout.epmd_port.to_string(),
            "-address",
            "127.0.0.1",
        ])
        .current_dir(&layout.dir);
        // A tag of its own: killing the broker (`kill`, `restart`) kills
        // every process carrying the broker's tag, and epmd must survive that.
        let epmd = ChildProcess::spawn(
            "epmd",
            &format!("{tag}-epmd"),
            epmd,
            Duration::from_secs(5),
            Default::default(),
        )
        .map_err(|e| {
            StartError::new(format!(
                "cannot run epmd ({e}); run scripts/test.sh to install RabbitMQ"
            ))
        })?;
        epmd.wait_ready(Duration::from_secs(10), || {
            Command::new("epmd")
                .args(["-port", &layout.epmd_port.to_string(), "-names"])
                .output()
                .is_ok_and(|o| o.status.success())
        })?;

        let server = spawn_broker(&layout, &tag, Default::default())?;
        Ok(RabbitMqServer {
            server: std::sync::Mutex::new(server),
            epmd,
            layout,
            dir,
        })
    }

    /// The AMQP port.
    pub fn port(&self) -> u16 {
        self.layout.port
    }

    /// `amqp://guest:guest@127.0.0.1:PORT/%2f` (guest may log in over loopback).
    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.layout.port)
    }

    /// The Erlang node name, `rabbitPORT@localhost`.
    pub fn node_name(&self) -> String {
        self.layout.node_name()
    }

    /// Runs `rabbitmqctl ARGS` against this broker (e.g. `["list_queues", "name",
    /// "messages"]`) and returns its stdout; panics with its output on failure.
    /// Each call boots a small Erlang node: about a second.
    pub fn rabbitmqctl(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(Path::new(RABBITMQ_BIN).join("rabbitmqctl"));
        self.layout.apply_env(&mut cmd);
        // The CLI's own node listens on a port of this range (default 35672-35682).
        let ctl_port = process::free_port().to_string();
        cmd.env("RABBITMQ_CTL_DIST_PORT_MIN", &ctl_port)
            .env("RABBITMQ_CTL_DIST_PORT_MAX", &ctl_port)
            .env(process::OWNER_VAR, self.tag())
            .args(["-n", &self.node_name(), "-q"])
            .args(args)
            .stdin(std::process::Stdio::null());
        let output = cmd.output().expect("cannot run rabbitmqctl");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            panic!(
                "rabbitmqctl {args:?} failed ({}):\n{stdout}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        stdout
    }

    /// The tag in the environment of its processes, epmd included (see
    /// [`crate::leftover_processes`]).
    pub fn tag(&self) -> String {
        self.broker().tag().to_string()
    }

    /// Its processes now, epmd included (see [`crate::ProcessId`]); after drop
    /// none of them runs.
    pub fn processes(&self) -> Vec<crate::ProcessId> {
        let mut all = self.broker().processes();
        all.extend(self.epmd.processes());
        all.sort();
        all.dedup();
        all
    }

    /// The broker's PID (the `rabbitmq-server` script, parent of the Erlang VM).
    pub fn pid(&self) -> i32 {
        self.broker().pid()
    }

    /// Its output so far.
    pub fn logs(&self) -> String {
        self.broker().logs().text()
    }

    fn broker(&self) -> std::sync::MutexGuard<'_, ChildProcess> {
        self.server
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Kills the broker with SIGKILL (a crash: nothing is flushed beyond what
    /// it had written); epmd, the directory and the ports stay for
    /// [`RabbitMqServer::restart`]. The broker's metadata log (Mnesia) is
    /// synced first, as in a broker whose queues were declared long before
    /// the crash: a queue declared a second earlier could otherwise come
    /// back missing, with its persistent messages, which tests of the host's
    /// reconnection would take for the host's loss.
    pub fn kill(&self) {
        self.rabbitmqctl(&["eval", "mnesia:sync_log()."]);
        self.broker().stop_with(libc::SIGKILL);
    }

    /// Starts the broker again on the same port, node and data directory
    /// (durable queues and persistent messages survive), killing it first if
    /// it runs; returns once it answers AMQP. Its output keeps accumulating
    /// in [`RabbitMqServer::logs`]; its processes get a new [`tag`](Self::tag).
    pub fn restart(&self) {
        let mut broker = self.broker();
        broker.stop_with(libc::SIGKILL);
        let logs = broker.logs().clone();
        // A new tag: dropping the old guard kills whatever carries its tag.
        let tag = process::new_tag("rabbitmq");
        let mut last = String::new();
        // Right after a kill the port may linger for a moment: retry.
        for _ in 0..3 {
            match spawn_broker(&self.layout, &tag, logs.clone()) {
                Ok(server) => {
                    *broker = server;
                    return;
                }
                Err(e) => last = e.message,
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("cannot restart rabbitmq-server: {last}");
    }

    /// Stops the broker and epmd and removes the directory; what drop does,
    /// callable through a shared reference (the shared broker, at exit).
    fn shutdown(&self) {
        self.broker().stop();
        self.epmd.stop();
        // A static's TempDir is never dropped: remove it here.
        let _ = std::fs::remove_dir_all(self.dir.path());
    }
}

impl Drop for RabbitMqServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Starts `rabbitmq-server` for `layout` and waits until it answers AMQP.
fn spawn_broker(
    layout: &Layout,
    tag: &str,
    logs: std::sync::Arc<process::Logs>,
) -> Result<ChildProcess, StartError> {
    let mut cmd = Command::new(Path::new(RABBITMQ_BIN).join("rabbitmq-server"));
    layout.apply_env(&mut cmd);
    cmd.env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
        .env("RABBITMQ_NODE_PORT", layout.port.to_string())
        // Always set: the default (port + 20000) overflows for high ports.
        .env("RABBITMQ_DIST_PORT", layout.dist_port.to_string())
        .env(
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
            "-kernel inet_dist_use_interface {127,0,0,1}",
        )
        // Log to stdout, which is captured.
        .env("RABBITMQ_LOGS", "-");
    let server = ChildProcess::spawn("rabbitmq-server", tag, cmd, Duration::from_secs(15), logs)
        .map_err(|e| {
            StartError::new(format!(
                "cannot run {RABBITMQ_BIN}/rabbitmq-server ({e}); run scripts/test.sh to install it"
            ))
        })?;
    server.wait_ready(Duration::from_secs(90), || {
        process::port_open(layout.port) && amqp_handshake(layout.port).is_ok()
    })?;
    Ok(server)
}

/// Sends the AMQP protocol header and expects a method frame (`Connection.Start`).
fn amqp_handshake(port: u16) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(AMQP_HEADER)?;
    let mut frame = [0u8; 7];
    stream.read_exact(&mut frame)?;
    if frame[0] == 1 {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "unexpected AMQP reply {frame:?}"
        )))
    }
}
