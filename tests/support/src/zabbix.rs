//! [`ZabbixReceiver`]: a Zabbix trapper on `127.0.0.1:0` that speaks the
//! sender protocol the way `zabbix_server` does, for `sink-zabbix`'s tests
//! (a real `zabbix_server` needs its database schema, a host and items
//! created through its API: too heavy for CI, see tests/README.md).
//!
//! Each connection carries one message: the header `ZBXD` `0x01`, the data
//! length as u64 little-endian, then `{"request":"sender data","data":[
//! {"host","key","value","clock","ns"}, ...]}`. The receiver checks all of
//! it strictly (a malformed message is recorded in [`errors`] and answered
//! `{"response":"failed"}` as the server does), stores the items whose
//! (host, key) it knows (every pair unless [`set_known`] lists some), and
//! answers `{"response":"success","info":"processed: N; failed: M; total:
//! T; seconds spent: S"}` in a framed message, then closes.
//!
//! [`errors`]: ZabbixReceiver::errors
//! [`set_known`]: ZabbixReceiver::set_known

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One item a request carried.
#[derive(Debug, Clone, PartialEq)]
pub struct ZabbixItem {
    /// The Zabbix host name.
    pub host: String,
    /// The item key.
    pub key: String,
    /// The value (always a string in the protocol).
    pub value: String,
    /// Unix seconds.
    pub clock: u64,
    /// Nanoseconds within the second.
    pub ns: u64,
    /// Whether the receiver stored it (its host and key are known).
    pub processed: bool,
}

#[derive(Default)]
struct State {
    items: Vec<ZabbixItem>,
    requests: usize,
    errors: Vec<String>,
    known: Option<Vec<(String, String)>>,
    /// Read requests and never answer (a hung server).
    silent: bool,
    /// Connections held open unanswered while silent.
    held: Vec<TcpStream>,
}

/// A Zabbix trapper; stops when dropped.
pub struct ZabbixReceiver {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ZabbixReceiver {
    /// Starts a receiver that knows every host and key.
    pub fn start() -> ZabbixReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind a loopback port");
        ZabbixReceiver::serve(listener)
    }

    /// Starts a receiver on `addr`, the address of one that was dropped (a
    /// server coming back); retries the bind for a few seconds.
    pub fn start_on(addr: SocketAddr) -> ZabbixReceiver {
        ZabbixReceiver::serve(crate::serve::bind_again(addr))
    }

    fn serve(listener: TcpListener) -> ZabbixReceiver {
        listener
            .set_nonblocking(true)
            .expect("cannot make a listener non-blocking");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("zabbix-{}", addr.port()))
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        match listener.accept() {
                            Ok((stream, _)) => {
                                if let Err(e) = handle(stream, &state) {
                                    state.lock().unwrap().errors.push(e);
                                }
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                                std::thread::sleep(Duration::from_millis(5));
                            }
                            Err(e) => state.lock().unwrap().errors.push(format!("accept: {e}")),
                        }
                    }
                })
                .expect("cannot spawn the receiver thread")
        };
        ZabbixReceiver {
            addr,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Only these (host, key) pairs exist from now on: items for others
    /// fail, as Zabbix fails items of unknown hosts or keys. `None`: all exist.
    pub fn set_known(&self, known: Option<Vec<(&str, &str)>>) {
        self.state.lock().unwrap().known =
            known.map(|k| k.into_iter().map(|(h, k)| (h.into(), k.into())).collect());
    }

    /// While `silent`, requests are read but never answered (their
    /// connections are held open): a server that hangs.
    pub fn set_silent(&self, silent: bool) {
        let mut state = self.state.lock().unwrap();
        state.silent = silent;
        if !silent {
            state.held.clear();
        }
    }

    /// Every item received so far, processed or not, in order.
    pub fn items(&self) -> Vec<ZabbixItem> {
        self.state.lock().unwrap().items.clone()
    }

    /// Requests received (well-formed ones, and those held unanswered).
    pub fn requests(&self) -> usize {
        self.state.lock().unwrap().requests
    }

    /// Protocol errors seen: a test expects none.
    pub fn errors(&self) -> Vec<String> {
        self.state.lock().unwrap().errors.clone()
    }

    /// Waits until `check` holds for the items, and returns them.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&[ZabbixItem]) -> bool,
    ) -> Vec<ZabbixItem> {
        let deadline = Instant::now() + timeout;
        loop {
            let items = self.items();
            if check(&items) {
                return items;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?}; items: {items:?}; errors: {:?}",
                    self.errors()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ZabbixReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One connection: one message in, one answer out.
fn handle(mut stream: TcpStream, state: &Mutex<State>) -> Result<(), String> {
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut header = [0u8; 13];
    stream
        .read_exact(&mut header)
        .map_err(|e| format!("reading the header: {e}"))?;
    if &header[..5] != b"ZBXD\x01" {
        return Err(format!("bad header {:?}", &header[..5]));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&header[5..]);
    let len = u64::from_le_bytes(len);
    if len > 128 << 20 {
        return Err(format!("length {len} over Zabbix's 128 MiB"));
    }
    let mut body = vec![0u8; len as usize];
    stream
        .read_exact(&mut body)
        .map_err(|e| format!("reading {len} bytes of data: {e}"))?;
    let started = Instant::now();
    {
        let mut state = state.lock().unwrap();
        if state.silent {
            state.requests += 1;
            state.held.push(stream);
            return Ok(());
        }
    }
    let answer = match parse(&body) {
        Ok(items) => {
            let mut state = state.lock().unwrap();
            state.requests += 1;
            let total = items.len();
            let mut processed = 0;
            for mut item in items {
                item.processed = state
                    .known
                    .as_ref()
                    .is_none_or(|k| k.iter().any(|(h, key)| *h == item.host && *key == item.key));
                processed += usize::from(item.processed);
                state.items.push(item);
            }
            serde_json::json!({
                "response": "success",
                "info": format!(
                    "processed: {processed}; failed: {}; total: {total}; seconds spent: {:.6}",
                    total - processed,
                    started.elapsed().as_secs_f64()
                ),
            })
        }
        Err(e) => {
            state.lock().unwrap().errors.push(e.clone());
            serde_json::json!({"response": "failed", "info": e})
        }
    };
    let answer = serde_json::to_vec(&answer).map_err(|e| e.to_string())?;
    let mut message = b"ZBXD\x01".to_vec();
    message.extend_from_slice(&(answer.len() as u64).to_le_bytes());
    message.extend_from_slice(&answer);
    stream
        .write_all(&message)
        .map_err(|e| format!("writing the answer: {e}"))
}

/// The items of a `sender data` request, checked strictly.
fn parse(body: &[u8]) -> Result<Vec<ZabbixItem>, String> {
    let json: Value =
        serde_json::from_slice(body).map_err(|e| format!("the data is not JSON: {e}"))?;
    if json["request"] != "sender data" {
        return Err(format!("unknown request {}", json["request"]));
    }
    let data = json["data"].as_array().ok_or("`data` is not an array")?;
    data.iter()
        .map(|item| {
            let text = |name: &str| {
                item[name]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("item {item}: `{name}` is not a string"))
            };
            let (host, key, value) = (text("host")?, text("key")?, text("value")?);
            if host.is_empty() || key.is_empty() {
                return Err(format!("item {item}: empty host or key"));
            }
            let clock = item["clock"]
                .as_u64()
                .ok_or_else(|| format!("item {item}: `clock` is not an integer"))?;
            let ns = item["ns"].as_u64().unwrap_or(0);
            if ns >= 1_000_000_000 {
                return Err(format!("item {item}: `ns` out of range"));
            }
            Ok(ZabbixItem {
                host,
                key,
                value,
                clock,
                ns,
                processed: false,
            })
        })
        .collect()
}
