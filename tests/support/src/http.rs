//! A small blocking HTTP/1.1 client over `std::net`, for tests: one connection
//! per request (`Connection: close`), chunked responses decoded. Blocking keeps
//! it usable from plain `#[test]`s and from async tests alike, with no runtime
//! of its own to drop in the wrong context.

use http::StatusCode;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long a request may take to connect, and to send or receive.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// A response, read to the end.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: StatusCode,
    /// The headers, names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response ({}) is not JSON ({e}): {}",
                self.status,
                self.text()
            )
        })
    }
}

/// Sends one request to `url` (`http://host:port/path?query`) and reads the whole
/// response. `body`, when given, is sent with a `Content-Length`; add a
/// `content-type` header yourself.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<Response> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| invalid(format!("bad URL {url:?}: {e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(invalid(format!("only http:// URLs are supported: {url}")));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| invalid(format!("no host in {url}")))?;
    let port = authority.port_u16().unwrap_or(80);
    let addr = (authority.host(), port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| invalid(format!("{} resolves to nothing", authority.host())))?;
    let target = uri.path_and_query().map_or("/", |p| p.as_str());

    let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nUser-Agent: wasmon-test-support\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.unwrap_or_default();
    if !body.is_empty() || !matches!(method, "GET" | "HEAD" | "DELETE" | "OPTIONS") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;

    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw, method == "HEAD")
}

/// `GET url`, panicking on a transport error.
pub fn get(url: &str) -> Response {
    request("GET", url, &[], None).unwrap_or_else(|e| panic!("GET {url} failed: {e}"))
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

fn parse_response(raw: &[u8], head_only: bool) -> std::io::Result<Response> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            invalid(format!(
                "incomplete response: {:?}",
                String::from_utf8_lossy(raw)
            ))
        })?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let code = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut response = Response {
        status: code,
        headers,
        body: Vec::new(),
    };
    let rest = &raw[split + 4..];
    if head_only {
        return Ok(response);
    }
    response.body = if response
        .header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
    {
        dechunk(rest)?
    } else if let Some(len) = response
        .header("content-length")
        .and_then(|l| l.parse().ok())
    {
        rest.get(..len)
            .ok_or_else(|| invalid(format!("body shorter than content-length {len}")))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(response)
}

fn dechunk(mut rest: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| invalid("truncated chunk size".into()))?;
        let size_field = String::from_utf8_lossy(&rest[..line_end]);
        let size_hex = size_field.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| invalid(format!("bad chunk size {size_hex:?}")))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(
            rest.get(..size)
                .ok_or_else(|| invalid("truncated chunk".into()))?,
        );
        rest = rest.get(size + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_length_chunked_and_close_delimited_bodies() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", false).unwrap();
        assert_eq!((r.status, r.text()), (StatusCode::OK, "hi".into()));
        let r = parse_response(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(
            (r.status, r.text()),
            (StatusCode::NOT_FOUND, "abcde".into())
        );
        let r = parse_response(b"HTTP/1.0 503 Busy\r\nX-A: b\r\n\r\nrest", false).unwrap();
        assert_eq!((r.status.as_u16(), r.text()), (503, "rest".into()));
        assert_eq!(r.header("x-a"), Some("b"));
    }
}
