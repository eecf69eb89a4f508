//! A W3C WebDriver client for the dashboard tests: one `chromedriver` per
//! test binary, a headless Chromium session per test, the browser log and
//! screenshots.

use super::{WAIT, wait_until};
use base64::Engine as _;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;
use wasmon_test_support::{Host, free_port};

/// `element` references in W3C WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

// ---- chromedriver, once per test binary ----------------------------------

/// The running `chromedriver`'s port.
fn driver() -> u16 {
    static DRIVER: OnceLock<u16> = OnceLock::new();
    *DRIVER.get_or_init(|| {
        for _ in 0..3 {
            let port = free_port();
            let (tx, rx) = std::sync::mpsc::channel();
            // Spawned from a thread that never ends, with PR_SET_PDEATHSIG, so
            // a killed test binary takes chromedriver down; atexit stops it
            // on a normal exit.
            std::thread::spawn(move || {
                use std::os::unix::process::CommandExt as _;
                let mut command = std::process::Command::new("/usr/bin/chromedriver");
                command
                    .arg(format!("--port={port}"))
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null());
                // SAFETY: prctl is async-signal-safe.
                unsafe {
                    command.pre_exec(|| {
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                        Ok(())
                    });
                }
                let child = command.spawn();
                let _ = tx.send(child.map(|c| c.id()).map_err(|e| e.to_string()));
                loop {
                    std::thread::park();
                }
            });
            let pid = rx.recv().unwrap().unwrap_or_else(|e| {
                panic!("cannot start /usr/bin/chromedriver ({e}); run scripts/test.sh to install chromium-driver")
            });
            DRIVER_PID.store(pid, std::sync::atomic::Ordering::SeqCst);
            // SAFETY: registers a plain function; it runs once, at exit.
            unsafe { libc::atexit(stop_driver) };
            let up = wasmon_test_support::try_wait_until(Duration::from_secs(15), || {
                let (status, v) = exchange(&format!("http://127.0.0.1:{port}"), "GET", "/status", None).ok()?;
                (status == 200 && v["value"]["ready"] == true).then_some(())
            });
            if up.is_some() {
                return port;
            }
            stop_driver();
        }
        panic!("chromedriver did not come up");
    })
}

static DRIVER_PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

extern "C" fn stop_driver() {
    let pid = DRIVER_PID.swap(0, std::sync::atomic::Ordering::SeqCst);
    if let Ok(pid) = i32::try_from(pid)
        && pid > 0
    {
        // SAFETY: signals the child this binary started.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
}

/// One browser session; deleted (the browser closed) on drop.
pub(super) struct Browser {
    base: String,
    id: String,
}

impl Browser {
    pub(super) fn open(width: u32, height: u32) -> Browser {
        let base = format!("http://127.0.0.1:{}", driver());
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                         "--disable-extensions", "--no-first-run", "--hide-scrollbars",
                         format!("--window-size={width},{height}")],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let answer = send(&base, "POST", "/session", Some(&caps));
        let id = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_string();
        Browser { base, id }
    }

    pub(super) fn cmd(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        send(
            &self.base,
            method,
            &format!("/session/{}{path}", self.id),
            body,
        )
    }

    pub(super) fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(&json!({ "url": url })));
    }

    /// Runs `script` (a function body) in the page and returns its value.
    pub(super) fn js(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(&json!({"script": script, "args": []})),
        )
    }

    pub(super) fn find(&self, css: &str) -> String {
        let v = self.cmd(
            "POST",
            "/element",
            Some(&json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    /// Clicks the element `css` selects. The page re-renders its tables as
    /// data arrives, so the element found may be replaced before the click
    /// lands ("stale element reference"): then it is found again.
    pub(super) fn click(&self, css: &str) {
        for _ in 0..10 {
            let id = self.find(css);
            let path = format!("/session/{}/element/{id}/click", self.id);
            let (status, value) = exchange(&self.base, "POST", &path, Some(&json!({})))
                .unwrap_or_else(|e| panic!("POST {path} to chromedriver failed: {e}"));
            if (200..300).contains(&status) {
                return;
            }
            assert_eq!(
                value["value"]["error"], "stale element reference",
                "POST {path}: {status} {value}"
            );
        }
        panic!("{css} went stale ten times in a row");
    }

    pub(super) fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            Some(&json!({ "text": text })),
        );
    }

    /// Browser log entries since the last call: `(level, message)`.
    pub(super) fn log(&self) -> Vec<(String, String)> {
        let v = self.cmd("POST", "/se/log", Some(&json!({"type": "browser"})));
        v.as_array()
            .unwrap_or_else(|| panic!("no browser log: {v}"))
            .iter()
            .map(|e| {
                (
                    e["level"].as_str().unwrap_or_default().to_string(),
                    e["message"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Saves a PNG of the viewport to `target/test-artifacts/{name}`.
    pub(super) fn screenshot(&self, name: &str) -> PathBuf {
        let v = self.cmd("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Loads the dashboard and waits until its first round of requests is done.
    pub(super) fn dashboard(&self, host: &Host) {
        self.goto(&host.url("/"));
        wait_until(WAIT, || {
            (self.js("return document.body.dataset.ready === 'true'") == true).then_some(())
        });
    }

    /// How many points the chart `data-chart=NAME` draws.
    pub(super) fn points(&self, chart: &str) -> u64 {
        self.js(&format!(
            "return Number(document.querySelector('[data-chart=\"{chart}\"]').dataset.points || 0)"
        ))
        .as_u64()
        .unwrap_or(0)
    }

    /// The plugin table: `(name, status, generation)` per row.
    pub(super) fn plugin_rows(&self) -> Vec<(String, String, u64)> {
        let rows = self.js(
            "return [...document.querySelectorAll('#plugins tbody tr[data-plugin]')].map(r => [r.dataset.plugin, r.dataset.status, Number(r.dataset.generation)])",
        );
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r[0].as_str().unwrap().to_string(),
                    r[1].as_str().unwrap().to_string(),
                    r[2].as_u64().unwrap(),
                )
            })
            .collect()
    }

    pub(super) fn generation(&self, plugin: &str) -> Option<u64> {
        self.plugin_rows()
            .into_iter()
            .find(|(n, _, _)| n == plugin)
            .map(|(_, _, g)| g)
    }

    /// The toast: `(kind, text)` while one shows.
    pub(super) fn toast(&self) -> Option<(String, String)> {
        let v = self.js("const t = document.querySelector('#toast'); return t.hidden ? null : [t.dataset.kind, t.textContent]");
        v.as_array().map(|a| {
            (
                a[0].as_str().unwrap_or_default().to_string(),
                a[1].as_str().unwrap_or_default().to_string(),
            )
        })
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = exchange(&self.base, "DELETE", &format!("/session/{}", self.id), None);
    }
}

/// One WebDriver command; its `value`, panicking on a WebDriver error.
fn send(base: &str, method: &str, path: &str, body: Option<&Value>) -> Value {
    let (status, value) = exchange(base, method, path, body)
        .unwrap_or_else(|e| panic!("{method} {path} to chromedriver failed: {e}"));
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {value}"
    );
    value["value"].clone()
}

/// A request to chromedriver. Not the harness's client: chromedriver keeps
/// the connection open despite `Connection: close`, so the answer is read
/// by its `Content-Length`.
fn exchange(
    base: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    use std::io::{BufRead as _, Read as _, Write as _};
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut reader = std::io::BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut length = 0;
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut raw = vec![0; length];
    reader.read_exact(&mut raw)?;
    Ok((status, serde_json::from_slice(&raw).unwrap_or(Value::Null)))
}

pub(super) fn errors(log: &[(String, String)]) -> Vec<&(String, String)> {
    log.iter().filter(|(level, _)| level == "SEVERE").collect()
}
