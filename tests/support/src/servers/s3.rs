//! [`S3Server`]: a real S3-compatible server, `moto_server` (PyPI
//! `moto[server]`, in the repository's `.venv`, which `scripts/test.sh`
//! creates) on a free loopback port, that **verifies SigV4 signatures**.
//!
//! moto accepts unsigned requests unless `INITIAL_NO_AUTH_ACTION_COUNT` is
//! set: then only that many requests skip authentication. The server is
//! started with 4, spent at once on creating an IAM user, a policy allowing
//! everything, its attachment and an access key; every later request must be
//! signed with that key (a wrong secret gets 403 `SignatureDoesNotMatch`).
//! Buckets and objects are made with boto3 (moto's dependency, in the same
//! venv): a signer independent of the host's.

use crate::process::{self, ChildProcess, StartError};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// The requests moto serves without authentication: the IAM set-up below.
const FREE_REQUESTS: u32 = 4;

/// The boto3 helper: `python3 s3_admin.py ENDPOINT JSON`, where JSON is
/// `{"op": "setup"}` (prints the access key), `{"op": "fill", "key": ...,
/// "secret": ..., "buckets": {"name": [["key", size], ...]}}`, or `{"op":
/// "call", "key", "secret", "service", "method", "params"}` (any boto3 call
/// against moto's other services, its answer printed as JSON).
const ADMIN_SCRIPT: &str = r#"
import json, sys, time
import boto3
from botocore.config import Config

endpoint, request = sys.argv[1], json.loads(sys.argv[2])
config = Config(retries={"max_attempts": 10, "mode": "standard"}, s3={"addressing_style": "path"})

def client(service, key="testing", secret="testing"):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret, config=config)

if request["op"] == "setup":
    iam = client("iam")
    iam.create_user(UserName="wasmon")
    policy = iam.create_policy(PolicyName="everything", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }))
    iam.attach_user_policy(UserName="wasmon", PolicyArn=policy["Policy"]["Arn"])
    key = iam.create_access_key(UserName="wasmon")["AccessKey"]
    print(json.dumps({"key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}))
elif request["op"] == "fill":
    s3 = client("s3", request["key"], request["secret"])
    for bucket, objects in request["buckets"].items():
        s3.create_bucket(Bucket=bucket)
        for name, size in objects:
            s3.put_object(Bucket=bucket, Key=name, Body=b"x" * size)
    print("ok")
elif request["op"] == "call":
    result = getattr(client(request["service"], request["key"], request["secret"]), request["method"])(**request["params"])
    result.pop("ResponseMetadata", None)
    print(json.dumps(result, default=str))
"#;

/// A running `moto_server` that verifies signatures; stopped when dropped.
pub struct S3Server {
    process: ChildProcess,
    port: u16,
    access_key: String,
    secret_key: String,
    python: PathBuf,
    dir: tempfile::TempDir,
}

impl S3Server {
    /// Starts `moto_server`, creates the IAM user and its access key, and
    /// returns once signed requests work. Panics (with its output) if it
    /// cannot: run `scripts/test.sh`, which creates `.venv`.
    pub fn start() -> S3Server {
        process::start_with_retry("moto_server", Self::try_start)
    }

    /// One server for the whole test binary, started on first use and
    /// stopped when the test process exits. Tests sharing it use their own
    /// bucket names.
    pub fn shared() -> &'static S3Server {
        static SHARED: OnceLock<S3Server> = OnceLock::new();
        extern "C" fn stop_shared() {
            if let Some(server) = SHARED.get() {
                server.process.stop();
                // A static's TempDir is never dropped: remove it here.
                let _ = std::fs::remove_dir_all(server.dir.path());
            }
        }
        SHARED.get_or_init(|| {
            let server = S3Server::start();
            // SAFETY: registers a plain function; it runs once, at exit.
            unsafe { libc::atexit(stop_shared) };
            server
        })
    }

    fn try_start() -> Result<S3Server, StartError> {
        let venv = venv();
        let moto = venv.join("bin/moto_server");
        let python = venv.join("bin/python3");
        if !moto.exists() {
            return Err(StartError::new(format!(
                "{} is missing: run scripts/test.sh (it creates .venv with moto[server])",
                moto.display()
            )));
        }
        let dir = tempfile::Builder::new()
            .prefix("wasmon-s3-")
            .tempdir()
            .expect("cannot create a temporary directory");
        std::fs::write(dir.path().join("s3_admin.py"), ADMIN_SCRIPT)
            .expect("cannot write the boto3 helper");
        let port = process::free_port();
        let mut cmd = Command::new(&moto);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", FREE_REQUESTS.to_string())
            .env("PYTHONUNBUFFERED", "1")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .current_dir(dir.path());
        let process = ChildProcess::spawn(
            "moto_server",
            &process::new_tag("s3"),
            cmd,
            Duration::from_secs(5),
            Default::default(),
        )
        .map_err(|e| StartError::new(format!("cannot run {} ({e})", moto.display())))?;
        process.wait_ready(Duration::from_secs(60), || process::port_open(port))?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let out = admin(
            &python,
            dir.path(),
            &endpoint,
            &serde_json::json!({"op": "setup"}),
        )
        .map_err(|e| {
            StartError::new(format!(
                "moto_server: the IAM set-up failed: {e}\nits output:\n{}",
                process.logs().text()
            ))
        })?;
        let keys: serde_json::Value = serde_json::from_str(out.trim())
            .map_err(|e| StartError::new(format!("moto_server: bad set-up answer {out:?}: {e}")))?;
        let field = |name: &str| keys[name].as_str().unwrap_or_default().to_string();
        Ok(S3Server {
            access_key: field("key"),
            secret_key: field("secret"),
            process,
            port,
            python,
            dir,
        })
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` (path-style buckets: `/bucket/key`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The access key id of the IAM user whose key signs requests.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// Its secret access key.
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// Creates each bucket and puts its objects (`(key, size in bytes)`),
    /// signed with the IAM user's key. Panics when moto refuses.
    pub fn fill(&self, buckets: &[(&str, &[(&str, usize)])]) {
        let buckets: serde_json::Map<String, serde_json::Value> = buckets
            .iter()
            .map(|(bucket, objects)| {
                let objects = objects
                    .iter()
                    .map(|(key, size)| serde_json::json!([key, size]))
                    .collect();
                (bucket.to_string(), serde_json::Value::Array(objects))
            })
            .collect();
        let request = serde_json::json!({
            "op": "fill",
            "key": self.access_key,
            "secret": self.secret_key,
            "buckets": buckets,
        });
        admin(&self.python, self.dir.path(), &self.endpoint(), &request)
            .unwrap_or_else(|e| panic!("cannot fill moto: {e}\nits output:\n{}", self.logs()));
    }

    /// Calls boto3's `service` client `method` with `params` (e.g. `"logs"`,
    /// `"get_log_events"`, `{"logGroupName": ...}`), signed with the IAM
    /// user's key: moto serves every AWS service on the same port. Its answer
    /// as JSON (without `ResponseMetadata`); panics when moto refuses.
    pub fn call(
        &self,
        service: &str,
        method: &str,
        params: serde_json::Value,
    ) -> serde_json::Value {
        let request = serde_json::json!({
            "op": "call",
            "key": self.access_key,
            "secret": self.secret_key,
            "service": service,
            "method": method,
            "params": params,
        });
        let out =
            admin(&self.python, self.dir.path(), &self.endpoint(), &request).unwrap_or_else(|e| {
                panic!("moto {service}.{method}: {e}\nits output:\n{}", self.logs())
            });
        serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("moto {service}.{method}: bad answer {out:?}: {e}"))
    }

    /// Kills it (SIGKILL), as a crashed server; idempotent. Only for a
    /// server of your own ([`S3Server::start`]), never the shared one.
    pub fn kill(&self) {
        self.process.stop_with(libc::SIGKILL);
    }

    /// Its PID (to stop it with SIGSTOP and resume it with SIGCONT).
    pub fn pid(&self) -> i32 {
        self.process.pid()
    }

    /// The tag in the environment of its processes (see [`crate::leftover_processes`]).
    pub fn tag(&self) -> &str {
        self.process.tag()
    }

    /// Its processes now; after drop none of them runs.
    pub fn processes(&self) -> Vec<crate::ProcessId> {
        self.process.processes()
    }

    /// Its output so far (moto logs one line per request).
    pub fn logs(&self) -> String {
        self.process.logs().text()
    }
}

/// The venv holding `moto_server`: `$WASMON_VENV`, else the repository's `.venv`.
fn venv() -> PathBuf {
    match std::env::var_os("WASMON_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv"),
    }
}

/// Runs the boto3 helper; its stdout, or why it failed.
fn admin(
    python: &Path,
    dir: &Path,
    endpoint: &str,
    request: &serde_json::Value,
) -> Result<String, String> {
    let out = Command::new(python)
        .arg(dir.join("s3_admin.py"))
        .arg(endpoint)
        .arg(request.to_string())
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{} exited with {}: {}",
            python.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
