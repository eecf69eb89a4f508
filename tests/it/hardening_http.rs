//! Hostile HTTP clients and the ingestion rules, against the real binary
//! (issue 13, points 6, 9 and 10, and SIGTERM): slow bodies, headers and
//! idle connections are cut by the server's timeouts while `/metrics` keeps
//! answering; connections beyond `server.max_connections` are refused and
//! counted; admin routes answer loopback clients only while no admin token
//! is set; every ingestion route refuses invalid UTF-8 and duplicate keys
//! alike; silent services are evicted after `ingest.service_ttl`; SIGTERM
//! drains requests in flight and flushes sinks, then exits 0.

mod ingestion;
mod shutdown;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use wasmon_test_support::{Host, HostOptions, metric_value};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(20);

/// A host without system sampling, with `server` keys added.
fn host(server: &str) -> Host {
    Host::start(
        HostOptions::new(BIN).config(&format!("[sampling]\nenabled = false\n[server]\n{server}")),
    )
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("cannot connect to the host");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream
}

/// Reads one response whose body has a `Content-Length` (what the host
/// sends), leaving the connection open.
fn read_response(stream: &mut TcpStream) -> std::io::Result<(u16, String)> {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|l| l.trim().parse().ok())
                .unwrap_or(0);
            if raw.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&raw[end + 4..end + 4 + length]).into_owned();
                return Ok((status, body));
            }
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(
                ErrorKind::UnexpectedEof,
                format!("closed after {:?}", String::from_utf8_lossy(&raw)),
            ));
        }
        raw.extend_from_slice(&chunk[..n]);
    }
}

/// `GET path` on a kept-alive connection.
fn get_on(stream: &mut TcpStream, path: &str) -> (u16, String) {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: wasmon\r\n\r\n").unwrap();
    read_response(stream).unwrap()
}

/// Waits until the server closes `stream` (EOF or reset); how long it took.
fn wait_closed(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut sink = [0u8; 4096];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return started.elapsed(),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("still open after {:?}", started.elapsed())
            }
            Err(_) => return started.elapsed(),
        }
    }
}

fn metric(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric_value(metrics, name, labels).unwrap_or(0.0)
}

/// A slow client: what it sends, and what it got back.
struct Slow {
    stream: TcpStream,
    /// Sent again every round while the client is writing.
    drip: &'static [u8],
    writing: bool,
    received: Vec<u8>,
    closed: bool,
}

impl Slow {
    fn open(addr: SocketAddr, head: &str, drip: &'static [u8]) -> Slow {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        stream.set_nonblocking(true).unwrap();
        Slow {
            stream,
            writing: !drip.is_empty(),
            drip,
            received: Vec::new(),
            closed: false,
        }
    }

    /// Reads what arrived (an answer stops the writing), then drips once.
    fn round(&mut self, drip: bool) {
        let mut chunk = [0u8; 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.closed = true;
                    return;
                }
                Ok(n) => {
                    self.received.extend_from_slice(&chunk[..n]);
                    self.writing = false;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.closed = true;
                    return;
                }
            }
        }
        if drip && self.writing {
            match self.stream.write(self.drip) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => self.writing = false,
            }
        }
    }
}

#[test]
fn slow_bodies_and_headers_are_cut_while_metrics_keeps_answering() {
    let host = host("body_read_timeout = \"1s\"\nheader_read_timeout = \"1s\"\n");
    let addr = host.addr();
    let post = |framing: &str| {
        format!(
            "POST /events HTTP/1.1\r\nHost: wasmon\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
        )
    };
    let mut clients = Vec::new();
    // 200 bodies at one byte every 300 ms, where 100 are announced.
    for _ in 0..200 {
        clients.push(Slow::open(addr, &post("Content-Length: 100"), b" "));
    }
    // A Content-Length longer than the body sent, then silence.
    let short = format!("{}{{\"service\": \"a\"", post("Content-Length: 1000"));
    clients.push(Slow::open(addr, &short, b""));
    // A chunked body that never ends.
    clients.push(Slow::open(
        addr,
        &post("Transfer-Encoding: chunked"),
        b"1\r\n \r\n",
    ));
    let bodies = clients.len();
    // Headers that never end, and a connection that sends nothing.
    clients.push(Slow::open(
        addr,
        "POST /events HTTP/1.1\r\nHost: wasmon\r\n",
        b"X",
    ));
    clients.push(Slow::open(addr, "", b""));

    let started = Instant::now();
    let mut scrapes = 0;
    let mut round = 0u32;
    while clients.iter().any(|c| !c.closed) && started.elapsed() < Duration::from_secs(15) {
        for client in clients.iter_mut().filter(|c| !c.closed) {
            client.round(round.is_multiple_of(3));
        }
        if round.is_multiple_of(5) {
            let (status, body) = host.get("/metrics");
            assert_eq!(status, 200, "/metrics while slow clients hold connections");
            assert!(body.contains("wasmon_http_connections "));
            scrapes += 1;
        }
        round += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let open = clients.iter().filter(|c| !c.closed).count();
    assert_eq!(open, 0, "{open} slow connections still open after 15 s");
    assert!(scrapes >= 2, "/metrics was scraped while they were open");
    for (i, client) in clients[..bodies].iter().enumerate() {
        let answer = String::from_utf8_lossy(&client.received);
        assert!(
            answer.starts_with("HTTP/1.1 408 ")
                && answer.contains("connection: close")
                && answer.contains(
                    r#"{"detail":"the request body did not arrive within 1s (server.body_read_timeout)"}"#
                ),
            "client {i}: {answer:?}"
        );
    }
    let metrics = host.get("/metrics").1;
    let timeouts = |phase| metric(&metrics, "wasmon_http_timeouts_total", &[("phase", phase)]);
    assert_eq!(timeouts("body"), bodies as f64, "{metrics}");
    assert_eq!(timeouts("header"), 2.0);
    let rejected = metric(
        &metrics,
        "wasmon_ingest_rejected_total",
        &[("route", "/events"), ("reason", "body_timeout")],
    );
    assert_eq!(rejected, bodies as f64);
    assert_eq!(host.get_json("/api/events")["total"], 0);
}

#[test]
fn idle_keep_alive_connections_are_closed_after_keep_alive_timeout() {
    let host = host("keep_alive_timeout = \"1s\"\nheader_read_timeout = \"5s\"\n");
    // A connection in use outlives the keep-alive timeout: it restarts after each answer.
    let mut busy = connect(host.addr());
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(get_on(&mut busy, "/healthz").0, 200);
    }
    // Left idle, it is closed after about a second, not at once.
    let closed_after = wait_closed(&mut busy);
    assert!(
        closed_after >= Duration::from_millis(900),
        "closed after {closed_after:?}, before keep_alive_timeout"
    );
    // A request that starts arriving while idle gets header_read_timeout (5 s)
    // from the keep-alive deadline, so it completes.
    let mut late = connect(host.addr());
    assert_eq!(get_on(&mut late, "/healthz").0, 200);
    std::thread::sleep(Duration::from_millis(700));
    late.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    late.write_all(b"Host: wasmon\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut late).unwrap().0, 200);

    let metrics = host.get("/metrics").1;
    assert!(metric(&metrics, "wasmon_http_timeouts_total", &[("phase", "idle")]) >= 1.0);
}

#[test]
fn connections_beyond_max_connections_are_refused_and_counted() {
    let host =
        host("max_connections = 4\nheader_read_timeout = \"30s\"\nkeep_alive_timeout = \"30s\"\n");
    // One kept-alive connection to watch the gauge: it takes one of the four slots.
    let mut watch = connect(host.addr());
    let gauge = |watch: &mut TcpStream| {
        let (status, body) = get_on(watch, "/metrics");
        assert_eq!(status, 200);
        metric(&body, "wasmon_http_connections", &[])
    };
    let mut idle: Vec<TcpStream> = (0..3).map(|_| connect(host.addr())).collect();
    host.wait_until(WAIT, || (gauge(&mut watch) == 4.0).then_some(()));

    // The fifth is answered 503 (or closed at once when the answer does not fit).
    let mut extra = connect(host.addr());
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: wasmon\r\n\r\n");
    match read_response(&mut extra) {
        Ok((status, body)) => {
            assert_eq!(status, 503, "{body}");
            assert!(body.contains("server.max_connections"), "{body}");
        }
        Err(e) => assert_ne!(
            e.kind(),
            ErrorKind::WouldBlock,
            "neither answered nor closed"
        ),
    }
    let (_, metrics) = get_on(&mut watch, "/metrics");
    assert_eq!(
        metric(&metrics, "wasmon_http_connections_refused_total", &[]),
        1.0
    );

    // A slot freed is a slot taken.
    drop(idle.pop());
    host.wait_until(WAIT, || (gauge(&mut watch) == 3.0).then_some(()));
    assert_eq!(host.get("/healthz").0, 200);
    drop(idle);
}

/// A non-loopback IPv4 address of this machine, to reach the host as a
/// client from the network would.
fn non_loopback_address() -> Option<IpAddr> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`, which freeifaddrs releases below; each
    // entry is read while the list lives.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return None;
        }
        let mut found = None;
        let mut entry = list;
        while let Some(ifa) = entry.as_ref() {
            if let Some(addr) = ifa.ifa_addr.as_ref()
                && i32::from(addr.sa_family) == libc::AF_INET
            {
                let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                if !ip.is_loopback() && !ip.is_unspecified() {
                    found = Some(IpAddr::V4(ip));
                    break;
                }
            }
            entry = ifa.ifa_next;
        }
        libc::freeifaddrs(list);
        found
    }
}

#[test]
fn admin_routes_answer_loopback_only_without_a_token() {
    let ip = non_loopback_address()
        .expect("this test needs a non-loopback IPv4 address on the machine (none found)");
    let host = Host::start(
        HostOptions::new(BIN)
            .config("[sampling]\nenabled = false\n")
            .env("MONITOR_HOST", "0.0.0.0"),
    );
    let remote = |method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>| {
        let url = format!("http://{ip}:{}{path}", host.addr().port());
        wasmon_test_support::http::request(method, &url, headers, body).unwrap()
    };
    let json = [("content-type", "application/json")];
    host.wait_for_log("no server.admin_token is set", WAIT);
    assert_eq!(
        host.logs().matches("no server.admin_token is set").count(),
        1
    );

    // From the network: every admin route is 403, saying how to set a token.
    for (method, path) in [
        ("POST", "/api/plugins/reload"),
        ("POST", "/api/plugins/probe/reload"),
        ("POST", "/api/plugins/probe/reset"),
        ("GET", "/api/plugins/probe/state"),
        ("DELETE", "/api/services/edge"),
    ] {
        let r = remote(method, path, &[], None);
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text());
        let detail = r.json()["detail"].as_str().unwrap().to_string();
        assert!(
            detail.contains("server.admin_token") && detail.contains("WASMON_SERVER__ADMIN_TOKEN"),
            "{detail}"
        );
    }
    // Read-only routes, ingestion and /metrics are unchanged.
    let beat = remote("POST", "/heartbeat", &json, Some(br#"{"service": "edge"}"#));
    assert_eq!(beat.status, 200, "{}", beat.text());
    for path in ["/metrics", "/api/plugins", "/api/services", "/healthz"] {
        assert_eq!(remote("GET", path, &[], None).status, 200, "{path}");
    }
    // From loopback, admin routes work as before.
    assert_eq!(host.post("/api/plugins/reload").0, 200);
    let (status, body) = host.post("/api/plugins/probe/reset");
    assert_eq!(status, 404, "{body}");
    let r = host.request("DELETE", "/api/services/edge", &[], None);
    assert_eq!(r.status, 200, "{}", r.text());

    // With a token, the token decides, from anywhere; no warning.
    let host = Host::start(
        HostOptions::new(BIN)
            .config("[sampling]\nenabled = false\n[server]\nadmin_token = \"s3cret\"\n")
            .env("MONITOR_HOST", "0.0.0.0"),
    );
    let url = |path: &str| format!("http://{ip}:{}{path}", host.addr().port());
    let post = |path: &str, headers: &[(&str, &str)]| {
        wasmon_test_support::http::request("POST", &url(path), headers, None).unwrap()
    };
    let ok = post("/api/plugins/reload", &[("authorization", "Bearer s3cret")]);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(post("/api/plugins/reload", &[]).status, 401);
    assert_eq!(
        host.post("/api/plugins/reload").0,
        401,
        "loopback needs it too"
    );
    assert!(!host.logs().contains("no server.admin_token is set"));
}
