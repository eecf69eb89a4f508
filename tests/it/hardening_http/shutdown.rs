//! SIGTERM under load: the host stops accepting, answers the requests in
//! flight (one whose body arrives after the signal included), lets the sink
//! deliver every event it accepted, and exits 0 within
//! `server.shutdown_timeout`; no client sees a response cut short.

use super::{BIN, WAIT};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmon_test_support::{Host, HostOptions, Recorder, guests};

/// How one request ended, seen from the client.
#[derive(Debug)]
enum Outcome {
    /// A whole response: status and body.
    Answered(u16, String),
    /// Refused, or closed before a single byte of response.
    NotServed,
    /// Some of a response, then the connection ended: must never happen.
    CutShort(String),
}

fn request_head(body: &str) -> String {
    format!(
        "POST /events HTTP/1.1\r\nHost: wasmon\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
}

fn event(n: u64) -> String {
    format!(r#"{{"service": "load", "event_type": "load", "detail": "{n}"}}"#)
}

/// Reads the answer to the request sent on `stream` until the server closes it.
fn outcome(mut stream: TcpStream) -> Outcome {
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    if raw.is_empty() {
        return Outcome::NotServed;
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Outcome::CutShort(text);
    };
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
        })
        .and_then(|v| v.parse::<usize>().ok());
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok());
    match (status, length) {
        (Some(status), Some(length)) if body.len() == length => {
            Outcome::Answered(status, body.to_string())
        }
        _ => Outcome::CutShort(text),
    }
}

/// One `POST /events` on its own connection.
fn post(addr: SocketAddr, n: u64) -> Outcome {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return Outcome::NotServed;
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let body = event(n);
    if stream
        .write_all(format!("{}{body}", request_head(&body)).as_bytes())
        .is_err()
    {
        return outcome(stream);
    }
    outcome(stream)
}

fn id_of(body: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(body).unwrap();
    value["id"].as_str().unwrap().to_string()
}

#[test]
fn sigterm_drains_requests_in_flight_flushes_the_sink_and_exits_0() {
    let receiver = Recorder::start();
    receiver.set_delay(Duration::from_millis(20));
    let manifest = format!(
        "events = [\"load\"]\nbatch_size = 500\n[capabilities.http]\nallow = [\"{}\"]\n[config]\nurl = \"{}\"\n",
        receiver.addr(),
        receiver.url("/hook")
    );
    let host = Host::start(
        HostOptions::new(BIN)
            .config("[sampling]\nenabled = false\n[server]\nshutdown_timeout = \"5s\"\n")
            .plugin("webhook", guests::SINK_WEBHOOK)
            .manifest("webhook", &manifest)
            .stop_timeout(Duration::from_secs(30)),
    );
    host.wait_ready(WAIT);
    let addr = host.addr();

    // A request in flight at SIGTERM: its headers now, its body after the signal.
    let signalled = Arc::new(AtomicBool::new(false));
    let slow = {
        let signalled = signalled.clone();
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let body = event(0);
        stream.write_all(request_head(&body).as_bytes()).unwrap();
        std::thread::spawn(move || {
            while !signalled.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(10));
            }
            std::thread::sleep(Duration::from_millis(300));
            stream.write_all(body.as_bytes()).unwrap();
            outcome(stream)
        })
    };
    // A steady stream of events from two clients until the host is gone.
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let loaders: Vec<_> = (1..=2u64)
        .map(|client| {
            let (stop, outcomes) = (stop.clone(), outcomes.clone());
            std::thread::spawn(move || {
                let mut n = client * 1_000_000;
                while !stop.load(Ordering::Acquire) {
                    let result = post(addr, n);
                    outcomes.lock().unwrap().push(result);
                    n += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        })
        .collect();
    // Under load, and the sink delivering, when the signal comes.
    host.wait_until(WAIT, || {
        let answered = outcomes
            .lock()
            .unwrap()
            .iter()
            .filter(|o| matches!(o, Outcome::Answered(200, _)))
            .count();
        (answered >= 50).then_some(())
    });
    receiver.wait_for_requests(2, WAIT);

    let signalled_at = Instant::now();
    host.signal(libc::SIGTERM);
    signalled.store(true, Ordering::Release);
    let status = host.wait_until(Duration::from_secs(30), || host.exit_status());
    let took = signalled_at.elapsed();
    stop.store(true, Ordering::Release);
    for loader in loaders {
        loader.join().unwrap();
    }
    let slow = slow.join().unwrap();
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());

    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    assert!(
        took < Duration::from_secs(10),
        "exited {took:?} after SIGTERM (shutdown_timeout 5 s)"
    );
    let Outcome::Answered(200, slow_body) = &slow else {
        panic!("the request in flight at SIGTERM was not answered: {slow:?}");
    };
    let cut: Vec<&str> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::CutShort(text) => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert!(cut.is_empty(), "responses cut short: {cut:?}");
    let mut accepted: Vec<String> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Answered(200, body) => Some(id_of(body)),
            _ => None,
        })
        .collect();
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::NotServed))
        .count();
    let other: Vec<_> = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Answered(s, _) if *s != 200))
        .collect();
    assert!(other.is_empty(), "unexpected answers: {other:?}");
    assert!(
        accepted.len() >= 10,
        "only {} events accepted",
        accepted.len()
    );
    accepted.push(id_of(slow_body));

    // Every event that got a 2xx reached the sink before the host exited.
    let delivered: HashSet<String> = receiver
        .requests()
        .iter()
        .flat_map(|r| r.json()["events"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["id"].as_str().map(String::from))
        .collect();
    let missing: Vec<_> = accepted
        .iter()
        .filter(|id| !delivered.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} accepted events never reached the sink ({refused} requests not served): {missing:?}",
        missing.len(),
        accepted.len()
    );
    let logs = host.logs();
    assert!(logs.contains("draining requests in flight"), "{logs}");
    assert!(!logs.contains("after server.shutdown_timeout"), "{logs}");
}
