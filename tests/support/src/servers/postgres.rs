//! [`PostgresServer`]: a real PostgreSQL (Debian's `postgresql` package) on a
//! free loopback port, its cluster (`initdb -A trust -U postgres`) in a
//! temporary directory, `fsync=off`. `initdb` and `postgres` refuse to run as
//! root, so as root both run as the `postgres` user (the directory is chowned
//! to it). Seeded with `psql`.
//!
//! Start-up takes ~2 s (initdb ~0.8 s, ready ~1 s): tests that can share one
//! use [`PostgresServer::shared`] (one per test binary, isolated by table
//! names); a test that stops and restarts the server starts its own.
//! [`PostgresServer::start_tls`] also serves TLS with a certificate for
//! `127.0.0.1`/`localhost` signed by a test CA ([`PostgresServer::ca_file`]).

use crate::process::{self, ChildProcess, StartError};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// `/usr/lib/postgresql/N/bin` of the newest installed version.
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// The uid and gid of the `postgres` user when the tests run as root.
fn run_as() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    // SAFETY: getpwnam takes a NUL-terminated name and returns a pointer to
    // static storage or null; it is read at once.
    unsafe {
        let pw = libc::getpwnam(c"postgres".as_ptr());
        if pw.is_null() {
            panic!("running as root needs a `postgres` user (Debian's postgresql package)");
        }
        Some(((*pw).pw_uid, (*pw).pw_gid))
    }
}

fn command(program: &Path, user: Option<(u32, u32)>) -> Command {
    let mut cmd = Command::new(program);
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// A running PostgreSQL; stopped when dropped.
pub struct PostgresServer {
    // Field order is drop order: the server before its directory.
    server: std::sync::Mutex<Option<ChildProcess>>,
    bin: PathBuf,
    user: Option<(u32, u32)>,
    port: u16,
    data: PathBuf,
    /// With TLS: the CA's PEM file.
    ca_file: Option<PathBuf>,
    dir: tempfile::TempDir,
}

impl PostgresServer {
    /// Starts a server of its own and waits until it accepts connections.
    /// Panics (with its output) if it cannot: run `scripts/test.sh` to install it.
    pub fn start() -> PostgresServer {
        process::start_with_retry("postgres", || Self::try_start(false))
    }

    /// Like [`PostgresServer::start`], also accepting TLS (`ssl=on`) with a
    /// certificate for `127.0.0.1` and `localhost` signed by a fresh test CA
    /// (made with `openssl`), whose PEM is [`PostgresServer::ca_file`].
    pub fn start_tls() -> PostgresServer {
        process::start_with_retry("postgres (tls)", || Self::try_start(true))
    }

    /// The test CA's certificate (PEM), with [`PostgresServer::start_tls`].
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// One server for the whole test binary, started on first use and stopped
    /// when the test process exits. Tests sharing it use their own tables.
    pub fn shared() -> &'static PostgresServer {
        static SHARED: OnceLock<PostgresServer> = OnceLock::new();
        extern "C" fn stop_shared() {
            if let Some(server) = SHARED.get() {
                server.shutdown();
            }
        }
        SHARED.get_or_init(|| {
            let server = PostgresServer::start();
            // SAFETY: registers a plain function; it runs once, at exit.
            unsafe { libc::atexit(stop_shared) };
            server
        })
    }

    fn try_start(tls: bool) -> Result<PostgresServer, StartError> {
        let bin = bin_dir().ok_or_else(|| {
            StartError::new(
                "no /usr/lib/postgresql/*/bin/postgres; run scripts/test.sh to install postgresql"
                    .into(),
            )
        })?;
        let user = run_as();
        let dir = tempfile::Builder::new()
            .prefix("wasmon-postgres-")
            .tempdir()
            .expect("cannot create a temporary directory");
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("cannot chown the temporary directory to postgres");
        }
        let data = dir.path().join("data");
        let output = command(&bin.join("initdb"), user)
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .env("LC_ALL", "C")
            .current_dir(dir.path())
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| StartError::new(format!("cannot run initdb ({e})")))?;
        if !output.status.success() {
            return Err(StartError::new(format!(
                "initdb failed ({}):\n{}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        let ca_file = if tls {
            Some(make_certificates(dir.path(), user)?)
        } else {
            None
        };
        let server = PostgresServer {
            server: std::sync::Mutex::new(None),
            bin,
            user,
            port: process::free_port(),
            data,
            ca_file,
            dir,
        };
        server.spawn()?;
        Ok(server)
    }

    /// Starts `postgres` on the data directory and port; waits until ready.
    fn spawn(&self) -> Result<(), StartError> {
        let mut cmd = command(&self.bin.join("postgres"), self.user);
        cmd.arg("-D")
            .arg(&self.data)
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "full_page_writes=off", "-c", "synchronous_commit=off"])
            .current_dir(self.dir.path());
        if self.ca_file.is_some() {
            let dir = self.dir.path();
            cmd.args(["-c", "ssl=on", "-c"])
                .arg(format!(
                    "ssl_cert_file={}",
                    dir.join("server.crt").display()
                ))
                .arg("-c")
                .arg(format!("ssl_key_file={}", dir.join("server.key").display()));
        }
        let process = ChildProcess::spawn(
            "postgres",
            &process::new_tag("postgres"),
            cmd,
            Duration::from_secs(10),
            Default::default(),
        )
        .map_err(|e| {
            StartError::new(format!(
                "cannot run postgres ({e}); run scripts/test.sh to install postgresql"
            ))
        })?;
        let port = self.port;
        process.wait_ready(Duration::from_secs(30), || {
            process::port_open(port)
                && Command::new("pg_isready")
                    .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
                    .status()
                    .is_ok_and(|s| s.success())
        })?;
        *self.guard() = Some(process);
        Ok(())
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, Option<ChildProcess>> {
        self.server
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgresql://postgres@127.0.0.1:PORT/postgres` (trust authentication).
    pub fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs `sql` with `psql` (stop on the first error, unaligned tuples only)
    /// and returns its stdout; panics with its output on failure.
    pub fn psql(&self, sql: &str) -> String {
        let output = Command::new("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", "postgres", "-c", sql])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("cannot run psql");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            panic!(
                "psql {sql:?} failed ({}):\n{stdout}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        stdout
    }

    /// Stops the server (SIGTERM: a fast shutdown); the data directory and
    /// port stay for [`PostgresServer::restart`].
    pub fn stop(&self) {
        if let Some(process) = self.guard().take() {
            process.stop();
        }
    }

    /// Starts the server again on the same port and data (stopping it first
    /// if it runs); returns once it accepts connections.
    pub fn restart(&self) {
        self.stop();
        let mut last = String::new();
        // Right after a stop the port may linger for a moment: retry.
        for _ in 0..5 {
            match self.spawn() {
                Ok(()) => return,
                Err(e) => last = e.message,
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("cannot restart postgres: {last}");
    }

    /// Its processes now (the postmaster and its backends); after drop none runs.
    pub fn processes(&self) -> Vec<crate::ProcessId> {
        self.guard()
            .as_ref()
            .map(ChildProcess::processes)
            .unwrap_or_default()
    }

    /// Its output so far (empty while stopped).
    pub fn logs(&self) -> String {
        self.guard()
            .as_ref()
            .map(|p| p.logs().text())
            .unwrap_or_default()
    }

    /// Stops the server and removes the directory; what drop does, callable
    /// through a shared reference (the shared server, at exit).
    fn shutdown(&self) {
        self.stop();
        // A static's TempDir is never dropped: remove it here.
        let _ = std::fs::remove_dir_all(self.dir.path());
    }
}

/// A test CA and a server certificate for 127.0.0.1/localhost signed by it,
/// in `dir` (the key readable by `user` only); returns the CA's PEM path.
fn make_certificates(dir: &Path, user: Option<(u32, u32)>) -> Result<PathBuf, StartError> {
    let run = |args: &[&str]| -> Result<(), StartError> {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| StartError::new(format!("cannot run openssl ({e})")))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(StartError::new(format!(
                "openssl {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )))
        }
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=wasmon test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ])?;
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ])?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .map_err(|e| StartError::new(format!("cannot write server.ext: {e}")))?;
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
    ])?;
    let key = dir.join("server.key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| StartError::new(format!("cannot chmod server.key: {e}")))?;
    if let Some((uid, gid)) = user {
        for file in ["server.key", "server.crt"] {
            std::os::unix::fs::chown(dir.join(file), Some(uid), Some(gid))
                .map_err(|e| StartError::new(format!("cannot chown {file}: {e}")))?;
        }
    }
    Ok(dir.join("ca.crt"))
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}
