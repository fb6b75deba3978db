//! The Verify API over HTTPS (ureq), as Twilio documents it: form-encoded
//! requests, HTTP Basic auth, JSON answers with Twilio's error codes.

use crate::ca_store;
use crate::config::{wipe, Config, Secret};
use crate::method::Method;
use crate::number_policy::{LineInfo, LineTypeLookup};
use crate::verify::{ApiError, CheckResult, SendOptions, Verification, VerifyApi};
use base64::Engine;
use serde::Deserialize;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use ureq::unversioned::transport::{ConnectProxyConnector, Connector, TcpConnector};

/// Bodies larger than this are not Twilio answers.
const MAX_BODY: u64 = 64 * 1024;

/// Twilio's requests and answer heads are around 1 KiB. ureq's defaults
/// (128 KiB each way, zeroed on every connection) were a sixth of a
/// login's instructions under callgrind.
const IO_BUFFER: usize = 16 * 1024;
const MAX_ANSWER_HEAD: usize = 8 * 1024;

pub struct TwilioClient {
    /// Made on the first request: the CA store is read only by a login
    /// that talks HTTPS (the simulator on loopback HTTP never pays for it).
    agent: OnceLock<ureq::Agent>,
    proxy: Option<String>,
    trust: ca_store::Source,
    /// Some URL is https://: the agent gets roots, read by its first
    /// connection.
    tls: bool,
    base: String,
    lookup_base: String,
    auth_header: Secret,
    timeout_secs: u64,
}

pub fn user_agent() -> String {
    format!("pam-twilio-2fa/{}", env!("CARGO_PKG_VERSION"))
}

/// An agent with no CA roots: for plain HTTP to the simulator on loopback
/// (every https:// URL fails).
pub fn agent(timeout_secs: u64) -> ureq::Agent {
    agent_with(timeout_secs, None, None)
}

/// One agent setup for every Twilio API: bounded time, no redirects (they
/// would carry our credentials elsewhere), a proxy only from the config,
/// never from the environment (under sudo that is the user's to set), and
/// for HTTPS exactly the roots of `bundle` (none: every https:// URL fails).
pub fn agent_with(
    timeout_secs: u64,
    proxy: Option<&str>,
    trust: Option<Arc<crate::https::Trust>>,
) -> ureq::Agent {
    // The config check allows only http:// proxies, which ureq accepts.
    let proxy = proxy.and_then(|p| ureq::Proxy::new(p).ok());
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(proxy)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(timeout_secs)))
        .user_agent(user_agent())
        .input_buffer_size(IO_BUFFER)
        .output_buffer_size(IO_BUFFER)
        .max_response_header_size(MAX_ANSWER_HEAD)
        .build();
    // ureq's default chain, with our TLS step (crate::https) in place of its.
    let connector =
        ().chain(ConnectProxyConnector::default())
            .chain(TcpConnector::default())
            .chain(crate::https::TlsConnector::new(trust));
    ureq::Agent::with_parts(config, connector, crate::resolver::LoginResolver::default())
}

pub fn basic_auth(user: &str, secret: &str) -> String {
    let mut raw = format!("{user}:{secret}");
    let header = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(&raw)
    );
    wipe(&mut raw);
    header
}

impl TwilioClient {
    pub fn new(cfg: &Config) -> TwilioClient {
        TwilioClient {
            agent: OnceLock::new(),
            proxy: cfg.http_proxy.clone(),
            trust: ca_store::Source::of(cfg),
            tls: cfg.uses_https(),
            base: format!("{}/v2/Services/{}", cfg.verify_url, cfg.service_sid),
            lookup_base: format!("{}/v2/PhoneNumbers", cfg.lookup_url),
            auth_header: Secret::new(basic_auth(
                &cfg.credentials.username,
                cfg.credentials.secret.expose(),
            )),
            timeout_secs: cfg.http_timeout,
        }
    }

    /// The agent, made on first use; with the CA roots only if some URL is
    /// https:// (read by the first connection: a store that cannot be read
    /// fails every request).
    fn agent(&self) -> &ureq::Agent {
        self.agent.get_or_init(|| {
            let trust = self
                .tls
                .then(|| Arc::new(crate::https::Trust::from(self.trust.clone())));
            agent_with(self.timeout_secs, self.proxy.as_deref(), trust)
        })
    }

    /// Makes a request; a 429 with error 20429 is tried once more, after
    /// `Retry-After` if that fits inside `http_timeout` (else not at all).
    fn call(
        &self,
        url: &str,
        make: &dyn Fn(&ureq::Agent) -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<serde_json::Value, ApiError> {
        let agent = self.agent();
        // DNS over TCP (glibc's writev) could raise SIGPIPE in the host.
        let _sigpipe = crate::sigpipe::Blocked::new();
        let (result, retry_after) = self.answer(url, make(agent));
        let rate_limited = matches!(
            &result,
            Err(ApiError::Twilio { code, .. }) if *code == crate::verify::codes::TOO_MANY_REQUESTS
        );
        if !rate_limited {
            return result;
        }
        let wait = retry_after.unwrap_or(0);
        if wait >= self.timeout_secs {
            return result;
        }
        std::thread::sleep(Duration::from_secs(wait));
        self.answer(url, make(agent)).0
    }

    fn post(&self, path: &str, form: &[(&str, &str)]) -> Result<serde_json::Value, ApiError> {
        let url = format!("{}{}", self.base, path);
        // Encoded here rather than by ureq so that the body, which carries
        // the code on a check, is wiped when the request is done.
        let body = Secret::new(form_body(form));
        self.call(&url, &|agent| {
            agent
                .post(&url)
                .header("Authorization", self.auth_header.expose())
                .header("Accept", "application/json")
                .header("Content-Type", "application/x-www-form-urlencoded")
                .send(body.expose().as_bytes())
        })
    }

    fn get(&self, url: &str) -> Result<serde_json::Value, ApiError> {
        self.call(url, &|agent| {
            agent
                .get(url)
                .header("Authorization", self.auth_header.expose())
                .header("Accept", "application/json")
                .call()
        })
    }

    fn delete(&self, url: &str) -> Result<serde_json::Value, ApiError> {
        self.call(url, &|agent| {
            agent
                .delete(url)
                .header("Authorization", self.auth_header.expose())
                .header("Accept", "application/json")
                .call()
        })
    }

    /// Admin requests under the Verify service (`twilio-2fa rate-limits`):
    /// `path` is relative to `/v2/Services/{sid}`, e.g. "/RateLimits".
    pub fn service_get(&self, path: &str) -> Result<serde_json::Value, ApiError> {
        self.get(&format!("{}{path}", self.base))
    }

    pub fn service_post(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<serde_json::Value, ApiError> {
        self.post(path, form)
    }

    pub fn service_delete(&self, path: &str) -> Result<(), ApiError> {
        self.delete(&format!("{}{path}", self.base)).map(|_| ())
    }

    fn answer(
        &self,
        url: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> (Result<serde_json::Value, ApiError>, Option<u64>) {
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => return (Err(ApiError::Unavailable(self.describe(url, &e))), None),
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string();
        let result = match body {
            Ok(body) => interpret(status, &body),
            Err(e) => Err(ApiError::Unavailable(format!(
                "HTTP {status}, body unreadable: {}",
                self.describe(url, &e)
            ))),
        };
        (result, retry_after)
    }
}

/// `application/x-www-form-urlencoded`, as browsers and ureq encode it:
/// letters, digits and `*-._` as they are, space as `+`, every other byte
/// as `%XX`.
pub fn form_body(form: &[(&str, &str)]) -> String {
    fn encode(out: &mut String, s: &str) {
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    let mut out = String::new();
    for (i, (k, v)) in form.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode(&mut out, k);
        out.push('=');
        encode(&mut out, v);
    }
    out
}

/// Turns a status and body into a JSON value or a typed error.
pub fn interpret(status: u16, body: &str) -> Result<serde_json::Value, ApiError> {
    // Twilio's own errors come with 4xx; anything else that is not 2xx
    // (5xx, a redirect, an informational status) is no usable answer.
    if !(200..300).contains(&status) && !(400..500).contains(&status) {
        return Err(ApiError::Unavailable(format!("HTTP {status} from Twilio")));
    }
    // A deleted resource: 204 and no body.
    if status == 204 {
        return Ok(serde_json::Value::Object(Default::default()));
    }
    let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
    if (200..300).contains(&status) {
        return json.filter(|j| j.is_object()).ok_or_else(|| {
            ApiError::Unavailable(format!(
                "HTTP {status} with a body that is not a JSON object"
            ))
        });
    }
    #[derive(Deserialize)]
    struct TwilioError {
        code: Option<u32>,
        message: Option<String>,
    }
    let parsed = json.and_then(|j| serde_json::from_value::<TwilioError>(j).ok());
    match parsed {
        Some(TwilioError {
            code: Some(code),
            message,
        }) => Err(ApiError::Twilio {
            http_status: status,
            code,
            message: redact_numbers(message.as_deref().unwrap_or("")),
        }),
        _ if status == 429 => Err(ApiError::Twilio {
            http_status: status,
            code: crate::verify::codes::TOO_MANY_REQUESTS,
            message: "Too many requests".into(),
        }),
        _ => Err(ApiError::Unavailable(format!(
            "HTTP {status} without a Twilio error body"
        ))),
    }
}

/// Twilio's messages may quote the number; keep only its last four digits.
pub fn redact_numbers(s: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 7 {
            let keep = run.len() - 4;
            out.push_str(&"*".repeat(keep));
            out.push_str(&run[keep..]);
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in s.chars().take(300) {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(if c.is_control() { ' ' } else { c });
        }
    }
    flush(&mut run, &mut out);
    out
}

impl TwilioClient {
    /// A failed request in one phrase; a TLS failure names the host and
    /// the reason, so a broken proxy or CA store is told from an outage.
    fn describe(&self, url: &str, e: &ureq::Error) -> String {
        if let Some(why) = roots_unavailable(e) {
            return why;
        }
        match tls_failure(e) {
            Some(why) => {
                let host = host_of(url);
                let store = match &self.trust {
                    ca_store::Source::System => "the system CA store".to_string(),
                    ca_store::Source::File(p) => format!("ca_file {}", p.display()),
                };
                format!("TLS to {host} failed: {why}; check {store}, the clock, and any proxy on the way")
            }
            None => describe(e),
        }
    }
}

fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::Io(io) => format!("network error: {io}"),
        other => other.to_string(),
    }
}

/// Why the CA roots could not be read, if that is what stopped a request.
fn roots_unavailable(e: &ureq::Error) -> Option<String> {
    match e {
        ureq::Error::Io(io) => io
            .get_ref()?
            .downcast_ref::<crate::https::RootsUnavailable>()
            .map(|r| r.0.clone()),
        _ => None,
    }
}

/// The rustls error inside a ureq error, in words an admin can act on.
/// (crate::https hands rustls errors to ureq inside an io::Error.)
pub fn tls_failure(e: &ureq::Error) -> Option<String> {
    use rustls::{CertificateError as C, Error as T};
    let tls: &T = match e {
        ureq::Error::Io(io) => io.get_ref()?.downcast_ref::<T>()?,
        ureq::Error::Tls(why) => return Some(format!("handshake failed ({why})")),
        _ => return None,
    };
    Some(match tls {
        T::InvalidCertificate(c) => match c {
            C::UnknownIssuer => "certificate signed by an unknown CA (UnknownIssuer)".into(),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "certificate is for another host name (NotValidForName)".into()
            }
            C::Expired | C::ExpiredContext { .. } => "certificate has expired (Expired)".into(),
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "certificate is not valid yet (NotValidYet)".into()
            }
            other => format!("certificate refused ({other:?})"),
        },
        T::InvalidMessage(m) => {
            format!("the server does not speak TLS there (plain HTTP on an HTTPS port?) ({m:?})")
        }
        T::AlertReceived(a) => format!("the server ended the handshake ({a:?})"),
        other => format!("handshake failed ({other})"),
    })
}

/// The host of an http(s) URL, for messages.
fn host_of(url: &str) -> String {
    url.parse::<ureq::http::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn is_verification_sid(s: &str) -> bool {
    s.len() == 34 && s.starts_with("VE") && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn field<'j>(j: &'j serde_json::Value, key: &str) -> Option<&'j str> {
    j.get(key).and_then(|v| v.as_str())
}

impl LineTypeLookup for TwilioClient {
    /// Lookups v2 `GET /v2/PhoneNumbers/{E164}?Fields=line_type_intelligence`.
    fn line_info(&self, e164: &str) -> Result<LineInfo, ApiError> {
        // Only E.164 goes into the path: "+" and digits, "+" percent-encoded.
        if !e164.starts_with('+') || !e164[1..].bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::Unavailable("not an E.164 number".into()));
        }
        let url = format!(
            "{}/%2B{}?Fields=line_type_intelligence",
            self.lookup_base,
            &e164[1..]
        );
        let j = self.get(&url)?;
        let valid = j.get("valid").and_then(|v| v.as_bool()).unwrap_or(false);
        let line_type = j
            .get("line_type_intelligence")
            .and_then(|l| l.get("type"))
            .and_then(|t| t.as_str())
            .map(String::from);
        Ok(LineInfo { valid, line_type })
    }
}

impl VerifyApi for TwilioClient {
    fn send(&self, to: &str, method: Method, opts: &SendOptions) -> Result<Verification, ApiError> {
        let mut form = vec![("To", to), ("Channel", method.name())];
        if let Some(name) = opts.friendly_name {
            form.push(("CustomFriendlyName", name));
        }
        if let Some(locale) = opts.locale {
            form.push(("Locale", locale));
        }
        let rate_limits = crate::rate_limits::RateLimits::param(opts.rate_limits);
        if let Some(r) = &rate_limits {
            form.push(("RateLimits", r));
        }
        let j = self.post("/Verifications", &form)?;
        // The SID goes back into URL paths: accept only the documented shape.
        match (field(&j, "sid"), field(&j, "status")) {
            (Some(sid), Some(status)) if is_verification_sid(sid) => Ok(Verification {
                sid: sid.to_string(),
                status: status.to_string(),
            }),
            _ => Err(ApiError::Unavailable(
                "verification answer without a valid sid".into(),
            )),
        }
    }

    fn check(&self, verification_sid: &str, code: &str) -> Result<CheckResult, ApiError> {
        let j = self.post(
            "/VerificationCheck",
            &[("VerificationSid", verification_sid), ("Code", code)],
        )?;
        match field(&j, "status") {
            Some("approved") => Ok(CheckResult::Approved),
            Some(_) => Ok(CheckResult::Rejected),
            None => Err(ApiError::Unavailable(
                "check answer without a status".into(),
            )),
        }
    }

    fn cancel(&self, verification_sid: &str) -> Result<(), ApiError> {
        if !is_verification_sid(verification_sid) {
            return Err(ApiError::Unavailable("not a verification sid".into()));
        }
        self.post(
            &format!("/Verifications/{verification_sid}"),
            &[("Status", "canceled")],
        )
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified() {
        assert!(matches!(
            interpret(500, "{}"),
            Err(ApiError::Unavailable(_))
        ));
        assert!(matches!(
            interpret(200, "<html>"),
            Err(ApiError::Unavailable(_))
        ));
        assert!(matches!(
            interpret(200, "[1]"),
            Err(ApiError::Unavailable(_))
        ));
        assert!(interpret(201, "{\"sid\":\"x\"}").is_ok());
        assert_eq!(
            interpret(404, r#"{"code":20404,"message":"not found","status":404}"#),
            Err(ApiError::Twilio {
                http_status: 404,
                code: 20404,
                message: "not found".into()
            })
        );
        assert!(matches!(
            interpret(429, "slow down"),
            Err(ApiError::Twilio { code: 20429, .. })
        ));
        assert!(matches!(
            interpret(403, "<html>denied</html>"),
            Err(ApiError::Unavailable(_))
        ));
    }

    #[test]
    fn numbers_in_twilio_messages_are_redacted() {
        assert_eq!(
            redact_numbers("Invalid parameter `To`: +12015552671 (60200)"),
            "Invalid parameter `To`: +*******2671 (60200)"
        );
        assert_eq!(redact_numbers("a\nb"), "a b");
    }

    #[test]
    fn form_bodies_are_encoded_like_a_browser_form() {
        assert_eq!(
            form_body(&[
                ("To", "+12015552671"),
                ("CustomFriendlyName", "web1 login/ä&=")
            ]),
            "To=%2B12015552671&CustomFriendlyName=web1+login%2F%C3%A4%26%3D"
        );
        assert_eq!(form_body(&[]), "");
    }

    #[test]
    fn basic_auth_header() {
        assert_eq!(basic_auth("AC1", "tok"), "Basic QUMxOnRvaw==");
    }
}
