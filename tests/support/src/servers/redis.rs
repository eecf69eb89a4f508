//! [`RedisServer`]: a real `redis-server` on a free loopback port, with no
//! persistence, in a temporary directory; and a tiny RESP2 client to seed it.

use crate::process::{self, ChildProcess, StartError};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

/// A reply in RESP2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespValue {
    /// `+OK`
    Simple(String),
    /// `-ERR ...`
    Error(String),
    /// `:42`
    Integer(i64),
    /// `$3\r\nabc`, `None` for the nil bulk string.
    Bulk(Option<Vec<u8>>),
    /// `*2 ...`, `None` for the nil array.
    Array(Option<Vec<RespValue>>),
}

/// A running `redis-server`; stopped when dropped.
pub struct RedisServer {
    process: ChildProcess,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts `redis-server` and waits until it answers `PING`. Panics (with its
    /// output) if it cannot be started: run `scripts/test.sh` to install it.
    pub fn start() -> RedisServer {
        process::start_with_retry("redis-server", Self::try_start)
    }

    fn try_start() -> Result<RedisServer, StartError> {
        let dir = tempfile::Builder::new()
            .prefix("wasmon-redis-")
            .tempdir()
            .expect("cannot create a temporary directory");
        let port = process::free_port();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(dir.path())
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            // An empty log file name logs to stdout, which is captured.
            .args(["--logfile", ""])
            .current_dir(dir.path());
        let process = ChildProcess::spawn(
            "redis-server",
            &process::new_tag("redis"),
            cmd,
            Duration::from_secs(5),
            Default::default(),
        )
        .map_err(|e| {
            StartError::new(format!(
                "cannot run redis-server ({e}); run scripts/test.sh to install it"
            ))
        })?;
        process.wait_ready(Duration::from_secs(20), || {
            process::port_open(port)
                && matches!(command(port, &["PING"]), Ok(RespValue::Simple(pong)) if pong == "PONG")
        })?;
        Ok(RedisServer {
            process,
            port,
            _dir: dir,
        })
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs one command on a fresh connection (`&["HSET", "h", "k", "v"]`);
    /// panics on a transport error. A Redis error comes back as [`RespValue::Error`].
    pub fn cmd(&self, args: &[&str]) -> RespValue {
        command(self.port, args).unwrap_or_else(|e| panic!("redis {args:?} failed: {e}"))
    }

    /// The tag in the environment of its processes (see [`crate::leftover_processes`]).
    pub fn tag(&self) -> &str {
        self.process.tag()
    }

    /// Its processes now (see [`crate::ProcessId`]); after drop none of them runs.
    pub fn processes(&self) -> Vec<crate::ProcessId> {
        self.process.processes()
    }

    /// Its PID.
    pub fn pid(&self) -> i32 {
        self.process.pid()
    }

    /// Its output so far.
    pub fn logs(&self) -> String {
        self.process.logs().text()
    }
}

/// Sends one command to the Redis on `port` and reads its reply.
fn command(port: u16, args: &[&str]) -> std::io::Result<RespValue> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    stream.write_all(&request)?;
    read_value(&mut BufReader::new(stream))
}

fn read_value(reader: &mut impl BufRead) -> std::io::Result<RespValue> {
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(bad("connection closed before a reply".into()));
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line.split_at(line.len().min(1));
    let number = || {
        rest.parse::<i64>()
            .map_err(|_| bad(format!("bad RESP line {line:?}")))
    };
    Ok(match kind {
        "+" => RespValue::Simple(rest.to_string()),
        "-" => RespValue::Error(rest.to_string()),
        ":" => RespValue::Integer(number()?),
        "$" => match usize::try_from(number()?) {
            Err(_) => RespValue::Bulk(None),
            Ok(len) => {
                let mut data = vec![0; len + 2];
                reader.read_exact(&mut data)?;
                data.truncate(len);
                RespValue::Bulk(Some(data))
            }
        },
        "*" => match usize::try_from(number()?) {
            Err(_) => RespValue::Array(None),
            Ok(len) => RespValue::Array(Some(
                (0..len)
                    .map(|_| read_value(reader))
                    .collect::<std::io::Result<_>>()?,
            )),
        },
        _ => return Err(bad(format!("bad RESP line {line:?}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_resp2_type() {
        let raw = b"*5\r\n+OK\r\n-ERR no\r\n:-3\r\n$2\r\nhi\r\n$-1\r\n*-1\r\n";
        let mut reader = BufReader::new(&raw[..]);
        assert_eq!(
            read_value(&mut reader).unwrap(),
            RespValue::Array(Some(vec![
                RespValue::Simple("OK".into()),
                RespValue::Error("ERR no".into()),
                RespValue::Integer(-3),
                RespValue::Bulk(Some(b"hi".to_vec())),
                RespValue::Bulk(None),
            ]))
        );
        assert_eq!(read_value(&mut reader).unwrap(), RespValue::Array(None));
    }
}
