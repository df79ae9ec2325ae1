//! A small HTTP/1.1 server on `std::net`: just enough of the protocol for MCP's Streamable HTTP
//! transport (Content-Length bodies, keep-alive, `Expect: 100-continue`), served by a fixed pool of
//! worker threads so a burst of clients cannot make it spawn without bound.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Largest request body accepted; bigger ones get 413 before the body is read.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Largest request line plus headers; bigger ones get 431.
const MAX_HEAD_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 100;
/// How long a connection may sit idle (or stall mid-request) before it is closed, freeing its worker.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// The most time one request (head and body) may take to arrive.
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed request. Header names are lower-cased; the path has its query string removed.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".to_string(), "application/json".to_string())],
            body: value.to_string().into_bytes(),
        }
    }

    pub fn text(status: u16, message: &str) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".to_string(), "text/plain; charset=utf-8".to_string())],
            body: format!("{}\n", message).into_bytes(),
        }
    }

    pub fn empty(status: u16) -> Response {
        Response { status, headers: Vec::new(), body: Vec::new() }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    #[cfg(test)]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What answers requests; shared by all worker threads.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: &Request) -> Response;
}

/// Why reading a request stopped.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection (or went idle) between requests: nothing to answer.
    Closed,
    /// The request is unacceptable: answer with this status and message, then close.
    Reject(u16, &'static str),
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        421 => "Misdirected Request",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Read one line (ending in LF) without letting it grow past `budget` bytes.
fn read_line<R: BufRead>(reader: &mut R, budget: &mut usize) -> Result<String, ReadError> {
    let mut line = Vec::new();
    let limit = (*budget as u64) + 1;
    let n = reader.by_ref().take(limit).read_until(b'\n', &mut line).map_err(|_| ReadError::Closed)?;
    if n == 0 {
        return Err(ReadError::Closed);
    }
    if n > *budget || line.last() != Some(&b'\n') {
        if n > *budget {
            return Err(ReadError::Reject(431, "request head too large"));
        }
        // EOF in the middle of a line.
        return Err(ReadError::Closed);
    }
    *budget -= n;
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| ReadError::Reject(400, "request head is not valid UTF-8"))
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// True when a comma-separated header value (like Connection) holds `token`.
fn has_token(value: &str, token: &str) -> bool {
    value.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Read one request from the connection. Returns the request and whether to keep the connection open.
/// `S` is written to only for the interim `100 Continue` answer.
pub fn read_request<S: Read + Write>(reader: &mut BufReader<S>) -> Result<(Request, bool), ReadError> {
    let mut budget = MAX_HEAD_BYTES;
    // RFC 9112 2.2: ignore empty lines before the request line.
    let mut request_line = read_line(reader, &mut budget)?;
    while request_line.is_empty() {
        request_line = read_line(reader, &mut budget)?;
    }
    let parts: Vec<&str> = request_line.split(' ').collect();
    if parts.len() != 3 || !is_token(parts[0]) || !parts[1].starts_with('/') {
        return Err(ReadError::Reject(400, "malformed request line"));
    }
    let http10 = match parts[2] {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Err(ReadError::Reject(505, "only HTTP/1.1 and HTTP/1.0 are supported")),
    };
    let method = parts[0].to_string();
    let path = parts[1].split('?').next().unwrap_or("/").to_string();

    let mut headers: Vec<(String, String)> = Vec::new();
    loop {
        let line = read_line(reader, &mut budget)?;
        if line.is_empty() {
            break;
        }
        if headers.len() >= MAX_HEADERS {
            return Err(ReadError::Reject(431, "too many headers"));
        }
        let colon = match line.find(':') {
            Some(i) => i,
            None => return Err(ReadError::Reject(400, "malformed header line")),
        };
        let name = &line[..colon];
        if !is_token(name) {
            // Also rejects obsolete line folding and whitespace before the colon (request smuggling).
            return Err(ReadError::Reject(400, "malformed header name"));
        }
        let value = line[colon + 1..].trim_matches(|c| c == ' ' || c == '\t');
        headers.push((name.to_ascii_lowercase(), value.to_string()));
    }

    let header_values = |name: &str| -> Vec<&str> {
        headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    };
    let connection = header_values("connection").join(",");
    let keep_alive =
        if http10 { has_token(&connection, "keep-alive") } else { !has_token(&connection, "close") };

    if !header_values("transfer-encoding").is_empty() {
        return Err(ReadError::Reject(501, "Transfer-Encoding is not supported; send Content-Length"));
    }
    let lengths = header_values("content-length");
    let mut content_length: Option<usize> = None;
    for value in lengths.iter().flat_map(|v| v.split(',')) {
        let value = value.trim();
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) || value.len() > 12 {
            return Err(ReadError::Reject(400, "invalid Content-Length"));
        }
        let n: usize = value.parse().map_err(|_| ReadError::Reject(400, "invalid Content-Length"))?;
        if content_length.map_or(false, |previous| previous != n) {
            return Err(ReadError::Reject(400, "conflicting Content-Length headers"));
        }
        content_length = Some(n);
    }
    let length = match content_length {
        Some(n) => n,
        None if method == "POST" || method == "PUT" || method == "PATCH" => {
            return Err(ReadError::Reject(411, "a request body needs a Content-Length header"))
        }
        None => 0,
    };
    if length > MAX_BODY_BYTES {
        return Err(ReadError::Reject(413, "request body larger than 1 MiB"));
    }
    let expects_continue = header_values("expect").iter().any(|v| v.eq_ignore_ascii_case("100-continue"));
    if expects_continue && length > 0 && !http10 {
        let out = reader.get_mut();
        out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").map_err(|_| ReadError::Closed)?;
        out.flush().map_err(|_| ReadError::Closed)?;
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).map_err(|_| ReadError::Closed)?;
    Ok((Request { method, path, headers, body }, keep_alive))
}

/// Serialize a response. `keep_alive` decides the Connection header.
pub fn write_response<W: Write>(out: &mut W, response: &Response, keep_alive: bool) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", response.status, reason_phrase(response.status));
    for (name, value) in &response.headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
    head.push_str(if keep_alive { "Connection: keep-alive\r\n\r\n" } else { "Connection: close\r\n\r\n" });
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&response.body);
    out.write_all(&bytes)?;
    out.flush()
}

/// Answer requests on one connection until the peer closes it, asks to, or goes idle.
/// A client connection whose reads give up at a deadline as well as after an idle gap, so a client
/// trickling bytes (slowloris) cannot hold a worker thread for longer than `REQUEST_DEADLINE`.
struct Connection {
    stream: TcpStream,
    deadline: Instant,
}

impl Read for Connection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "request deadline passed"));
        }
        self.stream.set_read_timeout(Some(left.min(IDLE_TIMEOUT)))?;
        self.stream.read(buf)
    }
}

impl Write for Connection {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// Answer requests on one connection until the peer closes it, asks to, or goes idle.
fn serve_connection(stream: TcpStream, handler: &dyn Handler) {
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(Connection { stream, deadline: Instant::now() + REQUEST_DEADLINE });
    loop {
        // Each request (including the idle wait before it) must arrive within REQUEST_DEADLINE.
        reader.get_mut().deadline = Instant::now() + REQUEST_DEADLINE;
        match read_request(&mut reader) {
            Ok((request, keep_alive)) => {
                let response = handler.handle(&request);
                if write_response(reader.get_mut(), &response, keep_alive).is_err() || !keep_alive {
                    return;
                }
            }
            Err(ReadError::Closed) => return,
            Err(ReadError::Reject(status, message)) => {
                let stream = &mut reader.get_mut().stream;
                let _ = write_response(stream, &Response::text(status, message), false);
                linger_close(stream);
                return;
            }
        }
    }
}

/// Close after an early answer (e.g. 413) without resetting the connection under the client while it
/// is still sending: stop writing, then read and drop what is in flight for a short while.
fn linger_close(stream: &mut TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut sink = [0u8; 8192];
    let mut drained = 0usize;
    while drained < 4 * MAX_BODY_BYTES {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

/// Accept connections forever, each served by one of `workers` threads.
pub fn serve(listener: TcpListener, handler: Arc<dyn Handler>, workers: usize) -> io::Result<()> {
    let workers = workers.max(1);
    let (sender, receiver) = mpsc::sync_channel::<TcpStream>(workers * 4);
    let receiver = Arc::new(Mutex::new(receiver));
    for index in 0..workers {
        let receiver = Arc::clone(&receiver);
        let handler = Arc::clone(&handler);
        thread::Builder::new().name(format!("http-worker-{}", index)).spawn(move || loop {
            let next = match receiver.lock() {
                Ok(guard) => guard.recv(),
                Err(_) => return,
            };
            match next {
                Ok(stream) => serve_connection(stream, handler.as_ref()),
                Err(_) => return,
            }
        })?;
    }
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                if sender.send(stream).is_err() {
                    break;
                }
            }
            Err(error) => {
                eprintln!("accept failed: {}", error);
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// An in-memory connection: reads from `input`, records what the server writes.
    struct Conn {
        input: Cursor<Vec<u8>>,
        output: Vec<u8>,
    }

    impl Read for Conn {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.input.read(buf)
        }
    }

    impl Write for Conn {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn reader(raw: &[u8]) -> BufReader<Conn> {
        BufReader::new(Conn { input: Cursor::new(raw.to_vec()), output: Vec::new() })
    }

    fn reject_status(raw: &[u8]) -> u16 {
        match read_request(&mut reader(raw)) {
            Err(ReadError::Reject(status, _)) => status,
            other => panic!("expected a rejection, got {:?}", other),
        }
    }

    #[test]
    fn reads_two_pipelined_requests_with_bodies() {
        let raw = b"POST /mcp?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /mcp HTTP/1.1\r\n\
                    Connection: close\r\n\r\n";
        let mut r = reader(raw);
        let (first, keep) = read_request(&mut r).unwrap();
        assert_eq!(first.method, "POST");
        assert_eq!(first.path, "/mcp");
        assert_eq!(first.body, b"hello");
        assert_eq!(first.header("HOST"), Some("a"));
        assert!(keep);
        let (second, keep) = read_request(&mut r).unwrap();
        assert_eq!(second.method, "GET");
        assert!(second.body.is_empty());
        assert!(!keep);
        assert!(matches!(read_request(&mut r), Err(ReadError::Closed)));
    }

    #[test]
    fn http10_closes_unless_asked_to_keep_alive() {
        let (_, keep) = read_request(&mut reader(b"GET / HTTP/1.0\r\n\r\n")).unwrap();
        assert!(!keep);
        let (_, keep) =
            read_request(&mut reader(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")).unwrap();
        assert!(keep);
    }

    #[test]
    fn answers_expect_continue_before_reading_the_body() {
        let mut r = reader(b"POST /mcp HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}");
        let (request, _) = read_request(&mut r).unwrap();
        assert_eq!(request.body, b"{}");
        assert_eq!(r.get_ref().output, b"HTTP/1.1 100 Continue\r\n\r\n");
    }

    #[test]
    fn rejects_oversized_bodies_without_reading_them() {
        let raw = format!(
            "POST /mcp HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY_BYTES + 1
        );
        let mut r = reader(raw.as_bytes());
        assert!(matches!(read_request(&mut r), Err(ReadError::Reject(413, _))));
        assert!(r.get_ref().output.is_empty(), "no 100 Continue for a body we refuse");
    }

    #[test]
    fn rejects_ambiguous_or_missing_lengths() {
        assert_eq!(reject_status(b"POST /mcp HTTP/1.1\r\n\r\n"), 411);
        assert_eq!(
            reject_status(b"POST /mcp HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n"),
            400
        );
        assert_eq!(reject_status(b"POST /mcp HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), 400);
        assert_eq!(reject_status(b"POST /mcp HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), 501);
        assert_eq!(reject_status(b"POST /mcp HTTP/1.1\r\nContent-Length : 2\r\n\r\n{}"), 400);
        assert_eq!(reject_status(b"GET /mcp HTTP/2.0\r\n\r\n"), 505);
        assert_eq!(reject_status(b"GET mcp HTTP/1.1\r\n\r\n"), 400);
    }

    #[test]
    fn rejects_huge_heads() {
        let raw = format!("GET /mcp HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(reject_status(raw.as_bytes()), 431);
    }

    #[test]
    fn writes_length_and_connection_headers() {
        let mut out = Vec::new();
        let response = Response::text(404, "nope").with_header("X-A", "b");
        write_response(&mut out, &response, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(text.contains("X-A: b\r\n"));
        assert!(text.contains("Content-Length: 5\r\n"));
        assert!(text.contains("Connection: close\r\n\r\nnope\n"));
    }
}
