//! `sink-zabbix`: sends events to a Zabbix server or proxy as trapper
//! items, one sender-protocol exchange (`ZBXD`) per batch, over a plain TCP
//! connection the host allows with `[capabilities.tcp] connect` (the
//! guest uses `std::net::TcpStream` on WASI sockets). Each event is one
//! item: the Zabbix host and key come from patterns (`{service}`,
//! `wasmon.event[{type}]`), the value is the event's JSON (or its detail,
//! severity or status), the clock is the event's time.
//!
//! Retries and dead letters: see [`protocol`]'s table. In short, a server
//! that cannot be reached or answers garbage is `retryable`; items Zabbix
//! refuses (host or key missing) are `permanent`: the batch is dead-lettered.
//!
//! # Layout
//!
//! - [`config`]: the `[config]` table and its validation.
//! - [`protocol`]: the frames and the meaning of the answer (pure).
//! - here: the connection.

pub mod config;
pub mod protocol;

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};
use wasmon_sdk::{DeliveryError, Error, Event, Sink};

/// The plugin.
pub struct Zabbix {
    settings: config::Settings,
}

impl Sink for Zabbix {
    fn init() -> Result<Self, Error> {
        let settings = wasmon_sdk::config::get::<config::Config>()?
            .validate()
            .map_err(|e| Error::new(format!("invalid [config]: {e}")))?;
        wasmon_sdk::info!(
            "sending {} to zabbix {} as host {:?}, key {:?}",
            settings.events,
            settings.server,
            settings.host,
            settings.key
        );
        Ok(Zabbix { settings })
    }

    fn deliver(&mut self, batch: Vec<Event>) -> Result<(), DeliveryError> {
        let settings = &self.settings;
        let events: Vec<&Event> = batch
            .iter()
            .filter(|e| settings.events.accepts(e))
            .collect();
        if events.is_empty() {
            return Ok(());
        }
        let message = protocol::request(settings, &events)
            .map_err(|e| DeliveryError::Permanent(format!("cannot encode the batch: {e}")))?;
        let server = &settings.server;
        let body = exchange(server, &message, settings.timeout)
            .map_err(|e| DeliveryError::Retryable(format!("zabbix {server}: {e}")))?;
        let result = protocol::outcome(server, &body, events.len());
        match &result {
            Ok(counts) => wasmon_sdk::debug!("zabbix {server}: processed {}", counts.processed),
            Err(DeliveryError::Permanent(message)) => wasmon_sdk::error!(
                "batch of {} events not deliverable, the host dead-letters it: {message}",
                events.len()
            ),
            Err(DeliveryError::Retryable(_)) => {}
        }
        result.map(|_| ())
    }
}

/// Connects to `server`, sends `message`, and returns the answer's JSON,
/// all within `timeout`.
fn exchange(server: &str, message: &[u8], timeout: Duration) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("no answer within {timeout:?}"))
    };
    let addrs = server
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve: {e}"))?;
    let mut last = String::from("no address");
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, left()?) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("cannot connect to {addr}: {e}"),
        }
    }
    let mut stream = stream.ok_or(last)?;
    stream
        .set_write_timeout(Some(left()?))
        .map_err(|e| format!("cannot set a timeout: {e}"))?;
    stream
        .write_all(message)
        .map_err(|e| format!("cannot send: {e}"))?;
    stream
        .set_read_timeout(Some(left()?))
        .map_err(|e| format!("cannot set a timeout: {e}"))?;
    let mut header = [0u8; protocol::HEADER_LEN];
    stream
        .read_exact(&mut header)
        .map_err(|e| format!("no answer: {e}"))?;
    let length = protocol::answer_length(&header)?;
    let mut body = Vec::new();
    stream
        .take(length)
        .read_to_end(&mut body)
        .map_err(|e| format!("cannot read the answer: {e}"))?;
    if (body.len() as u64) < length {
        return Err(format!(
            "the answer ended after {} of {length} bytes",
            body.len()
        ));
    }
    Ok(body)
}

wasmon_sdk::export_sink!(Zabbix);
