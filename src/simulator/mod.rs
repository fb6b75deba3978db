//! The built-in Twilio Verify simulator: Verify v2 and Lookups v2 over plain
//! HTTP or HTTPS (`SimConfig::tls`) on loopback, with Twilio's documented semantics (see `state`), HTTP
//! Basic auth, form-encoded requests, and faults that tests can inject.
//!
//! Twilio cannot be reached from a test machine; this is the one stand-in.

pub mod rate_limits;
pub mod state;

use base64::Engine;
use serde_json::{json, Value};
use state::{twilio_error, Answer, Delivery, VerifyState};
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Credentials and SIDs the simulator accepts unless told otherwise.
pub const DEFAULT_ACCOUNT_SID: &str = "AC00000000000000000000000000000001";
pub const DEFAULT_AUTH_TOKEN: &str = "simulator-auth-token";
pub const DEFAULT_SERVICE_SID: &str = "VA00000000000000000000000000000001";

const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub account_sid: String,
    pub auth_token: String,
    pub service_sid: String,
    /// Each delivered code is appended here as one JSON line.
    pub outbox: Option<PathBuf>,
    /// Print each delivered code on stdout, as a phone would show it.
    pub print: bool,
    /// An API key (SID, secret) accepted besides the account's auth token.
    pub api_key: Option<(String, String)>,
    /// Serve HTTPS with this certificate (chain) and key instead of HTTP.
    pub tls: Option<crate::pki::Leaf>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            account_sid: DEFAULT_ACCOUNT_SID.into(),
            auth_token: DEFAULT_AUTH_TOKEN.into(),
            service_sid: DEFAULT_SERVICE_SID.into(),
            outbox: None,
            print: false,
            api_key: None,
            tls: None,
        }
    }
}

/// A fault applied to the next API request(s) instead of a normal answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer normally, but only after this long.
    Delay(Duration),
    /// Answer with this HTTP status and a Twilio error body (e.g. 500, 503).
    Status(u16),
    /// 429 with error 20429 and `Retry-After`.
    TooManyRequests,
    /// 200 with a body that is not JSON.
    Garbage,
    /// Close the connection without answering.
    Close,
    /// A Twilio error answer: HTTP status and error code.
    Twilio(u16, u32),
    /// A redirect to another URL (which must never be followed).
    Redirect(String),
    /// Any status with any body (e.g. JSON with missing fields or wrong types).
    Body(u16, String),
}

impl Fault {
    /// Parses the control endpoint's `kind` (delay:MS, status:CODE, 429, garbage, close).
    pub fn parse(s: &str) -> Option<Fault> {
        if let Some(ms) = s.strip_prefix("delay:") {
            return ms
                .parse()
                .ok()
                .map(|ms| Fault::Delay(Duration::from_millis(ms)));
        }
        if let Some(code) = s.strip_prefix("status:") {
            return code
                .parse()
                .ok()
                .filter(|c| (100..600).contains(c))
                .map(Fault::Status);
        }
        match s {
            "429" => Some(Fault::TooManyRequests),
            "garbage" => Some(Fault::Garbage),
            "close" => Some(Fault::Close),
            _ => None,
        }
    }
}

/// One API request as received, for tests to assert what "Twilio" got.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub form: BTreeMap<String, String>,
    pub authorized: bool,
    pub user_agent: String,
}

/// What the benchmark reads: connections accepted, TLS handshakes
/// completed, requests answered, and the time spent answering them. The
/// benchmark's own control connections (`/_simulator/...`) are not counted.
#[derive(Default)]
struct Stats {
    connections: std::sync::atomic::AtomicU64,
    tls_handshakes: std::sync::atomic::AtomicU64,
    requests: std::sync::atomic::AtomicU64,
    busy_micros: std::sync::atomic::AtomicU64,
}

/// A snapshot of the simulator's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct StatsSnapshot {
    pub connections: u64,
    pub tls_handshakes: u64,
    pub requests: u64,
    pub busy_micros: u64,
}

impl Stats {
    fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            connections: self.connections.load(Ordering::SeqCst),
            tls_handshakes: self.tls_handshakes.load(Ordering::SeqCst),
            requests: self.requests.load(Ordering::SeqCst),
            busy_micros: self.busy_micros.load(Ordering::SeqCst),
        }
    }
}

/// When one API connection's steps happened, in nanoseconds of
/// CLOCK_MONOTONIC: one clock for every process on the host, so the
/// benchmark can set them against the timestamp its login driver took
/// right before `pam_authenticate` (time to first byte).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConnTimes {
    /// accept() returned: the TCP handshake is done.
    pub accepted_ns: u64,
    /// The client's first TLS message (ClientHello) arrived, and the TLS
    /// handshake completed (None: plain HTTP).
    pub hello_ns: Option<u64>,
    pub tls_done_ns: Option<u64>,
    /// The first byte of the first request was read.
    pub first_byte_ns: u64,
    /// The first request's path and `To` (the send's number, if any):
    /// which login the connection belongs to when many run at once.
    pub first_path: String,
    pub to: String,
    /// Time spent answering this connection's requests.
    pub busy_micros: u64,
}

/// At most this many connections' times are kept (a benchmark run makes
/// a few thousand).
const MAX_CONN_TIMES: usize = 100_000;

/// Now on CLOCK_MONOTONIC, in nanoseconds (see `ConnTimes`).
pub fn monotonic_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

struct Shared {
    cfg: SimConfig,
    state: Mutex<VerifyState>,
    faults: Mutex<VecDeque<Fault>>,
    received: Mutex<Vec<Received>>,
    started: Instant,
    start_epoch: u64,
    stats: Stats,
    conn_times: Mutex<Vec<ConnTimes>>,
    offset: Mutex<u64>,
}

impl Shared {
    /// Simulated seconds since the epoch: real time plus `advance`d time.
    fn now(&self) -> u64 {
        self.start_epoch + self.started.elapsed().as_secs() + *lock(&self.offset)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking connection thread must not take the simulator down with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running simulator; it stops when dropped.
pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
}

/// The server side of the simulator's HTTPS.
fn server_tls(leaf: &crate::pki::Leaf) -> std::io::Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &str| std::io::Error::other(format!("simulator TLS: {what}"));
    let chain = CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| bad("the certificate is not PEM"))?;
    let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes())
        .map_err(|_| bad("the key is not a PEM private key"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| bad(&e.to_string()))?;
    // No session tickets: every login is a fresh process that cannot resume.
    let mut config = config;
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

impl Simulator {
    /// Binds `listen` (e.g. "127.0.0.1:0") and serves in background threads.
    pub fn start(listen: &str, cfg: SimConfig) -> std::io::Result<Simulator> {
        let tls = cfg.tls.as_ref().map(server_tls).transpose()?;
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(VerifyState::new(&cfg.account_sid, &cfg.service_sid)),
            cfg,
            faults: Mutex::new(VecDeque::new()),
            received: Mutex::new(Vec::new()),
            started: Instant::now(),
            stats: Stats::default(),
            conn_times: Mutex::new(Vec::new()),
            start_epoch: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            offset: Mutex::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, stop2) = (shared.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let accepted_ns = monotonic_ns();
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = conn {
                    let (s3, tls) = (s2.clone(), tls.clone());
                    std::thread::spawn(move || accept(stream, accepted_ns, tls, &s3));
                }
            }
        });
        Ok(Simulator { addr, shared, stop })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL to put in `verify_url` / `lookup_url`.
    pub fn url(&self) -> String {
        self.url_for(&self.addr.ip().to_string())
    }

    /// The base URL by another name for the listen address (e.g.
    /// "localhost", which the `--tls` certificate names).
    pub fn url_for(&self, host: &str) -> String {
        let scheme = if self.shared.cfg.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        format!("{scheme}://{host}:{}", self.addr.port())
    }

    pub fn config(&self) -> &SimConfig {
        &self.shared.cfg
    }

    /// Every code delivered so far, oldest first.
    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.shared.state).deliveries.clone()
    }

    /// Every API request received so far (control requests excluded).
    pub fn received(&self) -> Vec<Received> {
        lock(&self.shared.received).clone()
    }

    /// How a verification ended ("approved", "canceled", "expired"), if it has.
    pub fn final_status(&self, sid: &str) -> Option<String> {
        lock(&self.shared.state).finished.get(sid).cloned()
    }

    /// Queues a fault for each of the next `times` API requests.
    pub fn inject(&self, fault: Fault, times: usize) {
        let mut f = lock(&self.shared.faults);
        for _ in 0..times {
            f.push_back(fault.clone());
        }
    }

    /// Moves the simulated clock forward (code expiry, send windows).
    pub fn advance(&self, secs: u64) {
        *lock(&self.shared.offset) += secs;
    }

    /// Every code "Twilio" compared against a live verification: (time
    /// on the simulator's clock, number). Refused checks (60202, 404) are not in it.
    pub fn evaluations(&self) -> Vec<(u64, String)> {
        lock(&self.shared.state).evaluations.clone()
    }

    /// The simulator's clock (real time plus `advance`d seconds).
    pub fn now(&self) -> u64 {
        self.shared.now()
    }

    /// Connections accepted, TLS handshakes, requests answered, time spent answering.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// The times of every API connection so far, oldest first.
    pub fn conn_times(&self) -> Vec<ConnTimes> {
        lock(&self.shared.conn_times).clone()
    }

    /// Sets the line type Lookups reports for an E.164 number (default "mobile").
    pub fn set_line_type(&self, e164: &str, kind: &str) {
        lock(&self.shared.state)
            .line_types
            .insert(e164.into(), kind.into());
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so its thread ends.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

struct Request {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn read_request<S: Read>(reader: &mut BufReader<S>) -> Option<Request> {
    let mut head = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader
            .by_ref()
            .take(MAX_HEAD as u64)
            .read_line(&mut line)
            .ok()?;
        if n == 0 {
            return None;
        }
        head.push(line.trim_end_matches(['\r', '\n']).to_string());
        if line == "\r\n" || line == "\n" {
            break;
        }
        if head.iter().map(String::len).sum::<usize>() > MAX_HEAD {
            return None;
        }
    }
    let mut first = head.first()?.split_whitespace();
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers: Vec<(String, String)> = head[1..]
        .iter()
        .filter_map(|h| h.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if len > MAX_BODY {
        return None;
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    Some(Request {
        method,
        path,
        query,
        headers,
        body,
    })
}

/// Decodes `application/x-www-form-urlencoded` (also used for query strings).
pub fn parse_form(s: &str) -> BTreeMap<String, String> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Answers and closes the connection (faults, errors).
fn respond(stream: &mut dyn Write, status: u16, content_type: &str, extra: &str, body: &str) {
    write_response(stream, status, content_type, extra, body, false);
}

fn write_response(
    stream: &mut dyn Write,
    status: u16,
    content_type: &str,
    extra: &str,
    body: &str,
    keep_alive: bool,
) {
    let reason = match status {
        200 => "OK",
        302 => "Found",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    };
    // A 204 has no body, so no type either.
    let content_type = if status == 204 {
        String::new()
    } else {
        format!("Content-Type: {content_type}\r\n")
    };
    let msg = format!(
        "HTTP/1.1 {status} {reason}\r\n{content_type}Content-Length: {}\r\nConnection: {}\r\n{extra}\r\n{body}",
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    let _ = stream.write_all(msg.as_bytes());
    let _ = stream.flush();
}

fn respond_json(stream: &mut dyn Write, a: &Answer) {
    respond(
        stream,
        a.status,
        "application/json",
        "",
        &a.body.to_string(),
    );
}

/// Starts serving one connection, in TLS if the simulator speaks HTTPS.
fn accept(
    mut stream: TcpStream,
    accepted_ns: u64,
    tls: Option<Arc<rustls::ServerConfig>>,
    shared: &Shared,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    match tls {
        Some(config) => {
            // The handshake's last flight and the answer are small writes:
            // with Nagle on, the answer would wait for the client's delayed
            // ACK (~40 ms).
            let _ = stream.set_nodelay(true);
            let Ok(mut conn) = rustls::ServerConnection::new(config) else {
                return;
            };
            // The handshake first, on its own, so that its start and end
            // can be timed; a client that refuses the certificate ends it here.
            let mut hello = [0u8; 1];
            let _ = stream.peek(&mut hello);
            let hello_ns = monotonic_ns();
            while conn.is_handshaking() {
                if !matches!(conn.complete_io(&mut stream), Ok((r, w)) if r + w > 0) {
                    return;
                }
            }
            let tls = Some((hello_ns, monotonic_ns()));
            let stream = rustls::StreamOwned::new(conn, stream);
            serve(stream, accepted_ns, tls, shared)
        }
        None => {
            // A TLS ClientHello on the plain port: answer as a plain HTTP
            // server would (400), instead of waiting for a request line.
            let mut first = [0u8; 1];
            if matches!(stream.peek(&mut first), Ok(1) if first[0] == 0x16) {
                respond(&mut stream, 400, "text/plain", "", "plain HTTP here");
                return;
            }
            serve(stream, accepted_ns, None, shared)
        }
    }
}

/// A stream that notes when it first gave bytes to read.
struct FirstByte<S> {
    inner: S,
    at_ns: Option<u64>,
}

impl<S: Read> Read for FirstByte<S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 && self.at_ns.is_none() {
            self.at_ns = Some(monotonic_ns());
        }
        Ok(n)
    }
}

impl<S: Write> Write for FirstByte<S> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Serves one connection: HTTP/1.1 keep-alive, as Twilio does, so a client
/// can send and check over one connection. Counted (and timed) as an API
/// connection unless its first request is a control one.
/// `tls`: when the ClientHello came and the handshake ended, on HTTPS.
fn serve<S: Read + Write>(stream: S, accepted_ns: u64, tls: Option<(u64, u64)>, shared: &Shared) {
    let handshakes = u64::from(tls.is_some());
    let mut first = true;
    // Where this connection's times are in `conn_times`, if kept.
    let mut record: Option<usize> = None;
    let mut reader = BufReader::new(FirstByte {
        inner: stream,
        at_ns: None,
    });
    while let Some(req) = read_request(&mut reader) {
        let started = Instant::now();
        let api = !req.path.starts_with("/_simulator/");
        if first && api {
            shared.stats.connections.fetch_add(1, Ordering::SeqCst);
            shared
                .stats
                .tls_handshakes
                .fetch_add(handshakes, Ordering::SeqCst);
            let form = parse_form(&String::from_utf8_lossy(&req.body));
            let mut times = lock(&shared.conn_times);
            if times.len() < MAX_CONN_TIMES {
                record = Some(times.len());
                times.push(ConnTimes {
                    accepted_ns,
                    hello_ns: tls.map(|t| t.0),
                    tls_done_ns: tls.map(|t| t.1),
                    first_byte_ns: reader.get_ref().at_ns.unwrap_or(0),
                    first_path: req.path.clone(),
                    to: form.get("To").cloned().unwrap_or_default(),
                    busy_micros: 0,
                });
            }
        }
        first = false;
        let keep = answer(reader.get_mut(), &req, shared);
        if api {
            let busy = started.elapsed().as_micros() as u64;
            shared.stats.busy_micros.fetch_add(busy, Ordering::SeqCst);
            shared.stats.requests.fetch_add(1, Ordering::SeqCst);
            if let Some(i) = record {
                lock(&shared.conn_times)[i].busy_micros += busy;
            }
        }
        if !keep {
            return;
        }
    }
    // A handshake no request followed is a client's wasted work: count it.
    if first {
        shared
            .stats
            .tls_handshakes
            .fetch_add(handshakes, Ordering::SeqCst);
    }
}

/// Answers one request; false when the connection must close after it.
fn answer(stream: &mut dyn Write, req: &Request, shared: &Shared) -> bool {
    let client_keeps = !req
        .header("connection")
        .is_some_and(|c| c.eq_ignore_ascii_case("close"));
    if let Some(control) = req.path.strip_prefix("/_simulator/") {
        let a = control_request(control, req, shared);
        respond_json(stream, &a);
        return false;
    }
    let form = parse_form(&String::from_utf8_lossy(&req.body));
    let authorized = is_authorized(req, &shared.cfg);
    lock(&shared.received).push(Received {
        method: req.method.clone(),
        path: req.path.clone(),
        form: form.clone(),
        authorized,
        user_agent: req.header("user-agent").unwrap_or("").to_string(),
    });
    let fault = lock(&shared.faults).pop_front();
    match fault {
        Some(Fault::Close) => return false,
        Some(Fault::Garbage) => {
            respond(stream, 200, "text/html", "", "<html>not json</html>");
            return false;
        }
        Some(Fault::TooManyRequests) => {
            let a = twilio_error(429, 20429, "Too many requests");
            respond(
                stream,
                429,
                "application/json",
                "Retry-After: 1\r\n",
                &a.body.to_string(),
            );
            return false;
        }
        Some(Fault::Status(code)) => {
            let a = twilio_error(code, 20500, "Internal Server Error");
            respond_json(stream, &a);
            return false;
        }
        Some(Fault::Twilio(status, code)) => {
            let a = twilio_error(status, code, "Simulated error");
            respond_json(stream, &a);
            return false;
        }
        Some(Fault::Redirect(to)) => {
            let location = format!("Location: {}\r\n", to.replace(['\r', '\n'], ""));
            respond(stream, 302, "text/plain", &location, "moved");
            return false;
        }
        Some(Fault::Body(status, body)) => {
            respond(stream, status, "application/json", "", &body);
            return false;
        }
        Some(Fault::Delay(d)) => std::thread::sleep(d),
        None => {}
    }
    if !authorized {
        respond_json(stream, &twilio_error(401, 20003, "Authenticate"));
        return false;
    }
    let a = route(req, &form, shared);
    // A 204 (a deleted resource) has no body.
    let body = if a.status == 204 {
        String::new()
    } else {
        a.body.to_string()
    };
    write_response(
        stream,
        a.status,
        "application/json",
        "",
        &body,
        client_keeps,
    );
    client_keeps
}

fn is_authorized(req: &Request, cfg: &SimConfig) -> bool {
    let Some(encoded) = req
        .header("authorization")
        .and_then(|h| h.strip_prefix("Basic "))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let key_ok = cfg
        .api_key
        .as_ref()
        .is_some_and(|(sid, secret)| decoded == format!("{sid}:{secret}").as_bytes());
    key_ok || decoded == format!("{}:{}", cfg.account_sid, cfg.auth_token).as_bytes()
}

fn route(req: &Request, form: &BTreeMap<String, String>, shared: &Shared) -> Answer {
    let now = shared.now();
    let parts: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let mut st = lock(&shared.state);
    match (req.method.as_str(), parts.as_slice()) {
        ("GET", ["v2", "PhoneNumbers", number]) => {
            let q = parse_form(&req.query);
            st.lookup(
                &percent_decode(number),
                q.get("Fields").map(String::as_str).unwrap_or(""),
            )
        }
        (_, ["v2", "Services", service, ..]) if *service != st.service_sid => twilio_error(
            404,
            20404,
            &format!(
                "The requested resource /Services/{} was not found",
                service
                    .chars()
                    .filter(char::is_ascii_alphanumeric)
                    .take(40)
                    .collect::<String>()
            ),
        ),
        ("POST", ["v2", "Services", _, "Verifications"]) => {
            let a = st.create(now, form);
            if a.status == 201 {
                if let Some(d) = st.deliveries.last().cloned() {
                    drop(st);
                    deliver(&shared.cfg, &d);
                }
            }
            a
        }
        ("POST", ["v2", "Services", _, "VerificationCheck"]) => st.check(now, form),
        (method, ["v2", "Services", _, "RateLimits", rest @ ..]) => {
            let ids = (st.account_sid.clone(), st.service_sid.clone());
            st.rate_limits
                .route((&ids.0, &ids.1), method, rest, form, now)
        }
        ("POST", ["v2", "Services", _, "Verifications", sid]) => st.update(now, sid, form),
        ("GET", ["v2", "Services", _, "Verifications", sid]) => st.fetch(now, sid),
        _ => twilio_error(404, 20404, "The requested resource was not found"),
    }
}

/// "Delivers" a code: the outbox file and, if asked, stdout.
fn deliver(cfg: &SimConfig, d: &Delivery) {
    if let Some(path) = &cfg.outbox {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{}", serde_json::to_string(d).unwrap_or_default());
        }
    }
    if cfg.print {
        let how = match d.channel.as_str() {
            "call" => "Voice call",
            "whatsapp" => "WhatsApp message",
            _ => "Text message",
        };
        let from = d.friendly_name.as_deref().unwrap_or("Twilio Verify");
        let text = message_text(d.locale.as_deref(), from, &d.code);
        println!("\n[simulated phone {}] {how}: {text}\n", d.to);
        let _ = std::io::stdout().flush();
    }
}

/// The message as Twilio's default template words it in the requested
/// language (English when none, as for a number without a country match).
fn message_text(locale: Option<&str>, from: &str, code: &str) -> String {
    match locale.and_then(|l| l.split('-').next()) {
        Some("de") => format!("Ihr {from} Verifizierungscode lautet: {code}"),
        Some("es") => format!("Tu código de verificación de {from} es: {code}"),
        Some("fr") => format!("Votre code de vérification {from} est : {code}"),
        Some("pt") => format!("Seu código de verificação {from} é: {code}"),
        _ => format!("Your {from} verification code is: {code}"),
    }
}

/// `/_simulator/...`: fault injection and inspection for out-of-process tests.
fn control_request(path: &str, req: &Request, shared: &Shared) -> Answer {
    let q = parse_form(&req.query);
    let ok = |body: Value| Answer { status: 200, body };
    match path {
        "fault" => {
            let times: usize = q
                .get("times")
                .and_then(|t| t.parse().ok())
                .unwrap_or(1)
                .min(1000);
            match q.get("kind").and_then(|k| Fault::parse(k)) {
                Some(f) => {
                    let mut faults = lock(&shared.faults);
                    for _ in 0..times {
                        faults.push_back(f.clone());
                    }
                    ok(json!({"queued": times}))
                }
                None => twilio_error(
                    400,
                    60200,
                    "kind must be delay:MS, status:CODE, 429, garbage or close",
                ),
            }
        }
        "advance" => {
            let secs: u64 = q.get("seconds").and_then(|s| s.parse().ok()).unwrap_or(0);
            *lock(&shared.offset) += secs;
            ok(json!({"now": shared.now()}))
        }
        "outbox" => ok(json!(lock(&shared.state).deliveries)),
        "requests" => ok(json!(*lock(&shared.received))),
        "stats" => ok(json!(shared.stats.snapshot())),
        "connections" => {
            // ?since_ns=N: only the connections accepted since then.
            let since: u64 = q.get("since_ns").and_then(|s| s.parse().ok()).unwrap_or(0);
            let times = lock(&shared.conn_times);
            let recent: Vec<&ConnTimes> = times.iter().filter(|t| t.accepted_ns >= since).collect();
            ok(json!(recent))
        }
        "evaluations" => ok(json!(lock(&shared.state).evaluations)),
        _ => twilio_error(404, 20404, "unknown control endpoint"),
    }
}

/// A form as the simulator's handlers receive it, for unit tests.
#[cfg(test)]
pub(crate) fn test_form(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let f = parse_form("To=%2B12015552671&Channel=sms&CustomFriendlyName=a+b%zz");
        assert_eq!(f["To"], "+12015552671");
        assert_eq!(f["CustomFriendlyName"], "a b%zz");
        assert_eq!(parse_form("x=%")["x"], "%");
    }

    #[test]
    fn fault_kinds_parse() {
        assert_eq!(
            Fault::parse("delay:1500"),
            Some(Fault::Delay(Duration::from_millis(1500)))
        );
        assert_eq!(Fault::parse("status:503"), Some(Fault::Status(503)));
        assert_eq!(Fault::parse("status:9999"), None);
        assert_eq!(Fault::parse("close"), Some(Fault::Close));
    }
}
