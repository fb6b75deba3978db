//! Twilio Verify's documented semantics, without HTTP: codes live 10 minutes,
//! 5 checks then 60202, 5 sends per 10 minutes then 60203, finished or expired
//! verifications are gone (20404), a new send to the same number within the
//! lifetime re-sends the same code on the same verification; a cancelled
//! one lets the next send start a new verification with fresh counts.
//! Service Rate Limits and their Buckets: `super::rate_limits`.

use crate::clock::iso_time;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

pub const CODE_LIFETIME: u64 = 600;
pub const MAX_CHECKS: u32 = 5;
pub const MAX_SENDS: usize = 5;
pub const SEND_WINDOW: u64 = 600;
const CHANNELS: [&str; 3] = ["sms", "call", "whatsapp"];
/// The `Locale` values Twilio Verify documents (twilio.com/docs/verify/supported-languages);
/// Twilio answers any other with a 404, and tells callers to retry without it.
pub const LOCALES: [&str; 43] = [
    "af", "ar", "ca", "cs", "da", "de", "el", "en", "en-GB", "es", "es-MX", "et", "fi", "fr",
    "fr-CA", "he", "hi", "hr", "hu", "id", "it", "ja", "kn", "ko", "lt", "mr", "ms", "nb", "nl",
    "pl", "pt", "pt-BR", "ro", "ru", "sk", "sv", "ta", "te", "th", "tl", "tr", "uk", "vi",
];

/// A Twilio-style answer: HTTP status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

pub fn twilio_error(status: u16, code: u32, message: &str) -> Answer {
    Answer {
        status,
        body: json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status,
        }),
    }
}

/// A code "delivered" to a phone: what the outbox records.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Delivery {
    pub time: u64,
    pub to: String,
    pub channel: String,
    pub code: String,
    pub sid: String,
    pub friendly_name: Option<String>,
    /// The `Locale` the request asked for, if any.
    pub locale: Option<String>,
}

struct Verification {
    sid: String,
    to: String,
    channel: String,
    code: String,
    created: u64,
    updated: u64,
    checks: u32,
    sends: Vec<(String, u64)>,
}

pub struct VerifyState {
    pub account_sid: String,
    pub service_sid: String,
    live: HashMap<String, Verification>,
    /// Final status of every verification that is gone, for tests to inspect.
    pub finished: BTreeMap<String, String>,
    pub deliveries: Vec<Delivery>,
    /// Every code compared against a live verification: (time, number).
    pub evaluations: Vec<(u64, String)>,
    pub rate_limits: super::rate_limits::RateLimits,
    pub line_types: HashMap<String, String>,
}

pub(super) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    fill_random(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn fill_random(buf: &mut [u8]) {
    use std::io::Read;
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .is_ok();
    assert!(ok, "/dev/urandom unreadable");
}

fn random_code() -> String {
    let mut b = [0u8; 8];
    fill_random(&mut b);
    format!("{:06}", u64::from_le_bytes(b) % 1_000_000)
}

/// E.164: + then 2 to 15 digits, not starting with 0.
pub fn is_e164(s: &str) -> bool {
    let Some(d) = s.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
}

impl VerifyState {
    pub fn new(account_sid: &str, service_sid: &str) -> Self {
        VerifyState {
            account_sid: account_sid.into(),
            service_sid: service_sid.into(),
            live: HashMap::new(),
            finished: BTreeMap::new(),
            deliveries: Vec::new(),
            evaluations: Vec::new(),
            rate_limits: Default::default(),
            line_types: HashMap::new(),
        }
    }

    fn expire(&mut self, now: u64) {
        let gone: Vec<String> = self
            .live
            .values()
            .filter(|v| now >= v.created + CODE_LIFETIME)
            .map(|v| v.sid.clone())
            .collect();
        for sid in gone {
            self.live.remove(&sid);
            self.finished.insert(sid, "expired".into());
        }
    }

    fn finish(&mut self, sid: &str, status: &str) {
        self.live.remove(sid);
        self.finished.insert(sid.to_string(), status.to_string());
    }

    fn verification_json(&self, v: &Verification, status: &str) -> Value {
        json!({
            "sid": v.sid,
            "service_sid": self.service_sid,
            "account_sid": self.account_sid,
            "to": v.to,
            "channel": v.channel,
            "status": status,
            "valid": status == "approved",
            "lookup": {},
            "amount": null,
            "payee": null,
            "send_code_attempts": v.sends.iter().map(|(ch, t)| json!({
                "attempt_sid": format!("VL{}", &v.sid[2..]),
                "channel": ch,
                "time": iso_time(*t),
            })).collect::<Vec<_>>(),
            "date_created": iso_time(v.created),
            "date_updated": iso_time(v.updated),
            "sna": null,
            "url": format!("https://verify.twilio.com/v2/Services/{}/Verifications/{}", self.service_sid, v.sid),
        })
    }

    fn check_json(&self, v: &Verification, status: &str, now: u64) -> Value {
        json!({
            "sid": v.sid,
            "service_sid": self.service_sid,
            "account_sid": self.account_sid,
            "to": v.to,
            "channel": v.channel,
            "status": status,
            "valid": status == "approved",
            "amount": null,
            "payee": null,
            "date_created": iso_time(v.created),
            "date_updated": iso_time(now),
            "sna_attempts_error_codes": [],
        })
    }

    fn not_found(&self, what: &str) -> Answer {
        twilio_error(
            404,
            20404,
            &format!(
                "The requested resource /Services/{}/{what} was not found",
                self.service_sid
            ),
        )
    }

    /// `POST /Verifications`.
    pub fn create(&mut self, now: u64, form: &BTreeMap<String, String>) -> Answer {
        self.expire(now);
        let to = form.get("To").map(String::as_str).unwrap_or("");
        let channel = form.get("Channel").map(String::as_str).unwrap_or("");
        if !is_e164(to) {
            return twilio_error(400, 60200, "Invalid parameter `To`");
        }
        if !CHANNELS.contains(&channel) {
            return twilio_error(400, 60200, "Invalid parameter `Channel`");
        }
        if let Some(locale) = form.get("Locale") {
            if !LOCALES.contains(&locale.as_str()) {
                return twilio_error(
                    404,
                    20404,
                    &format!("The requested resource /Locales/{locale} was not found"),
                );
            }
        }
        let existing = self
            .live
            .values()
            .find(|v| v.to == to)
            .map(|v| v.sid.clone());
        // 5 sends per verification (it lives SEND_WINDOW seconds at most).
        if let Some(v) = existing.as_ref().map(|sid| &self.live[sid]) {
            if v.sends.len() >= MAX_SENDS {
                return twilio_error(429, 60203, "Max send attempts reached");
            }
        }
        if let Err(refused) = self.rate_limits.admit(form.get("RateLimits"), now) {
            return refused;
        }
        let sid = match existing {
            Some(sid) => sid,
            None => {
                let sid = format!("VE{}", random_hex(16));
                self.live.insert(
                    sid.clone(),
                    Verification {
                        sid: sid.clone(),
                        to: to.to_string(),
                        channel: channel.to_string(),
                        code: random_code(),
                        created: now,
                        updated: now,
                        checks: 0,
                        sends: vec![],
                    },
                );
                sid
            }
        };
        let v = self.live.get_mut(&sid).expect("just inserted");
        v.channel = channel.to_string();
        v.updated = now;
        v.sends.push((channel.to_string(), now));
        let delivery = Delivery {
            time: now,
            to: v.to.clone(),
            channel: v.channel.clone(),
            code: v.code.clone(),
            sid: v.sid.clone(),
            friendly_name: form.get("CustomFriendlyName").cloned(),
            locale: form.get("Locale").cloned(),
        };
        self.deliveries.push(delivery);
        let v = &self.live[&sid];
        Answer {
            status: 201,
            body: self.verification_json(v, "pending"),
        }
    }

    /// `POST /VerificationCheck`, by `VerificationSid` or by `To`.
    pub fn check(&mut self, now: u64, form: &BTreeMap<String, String>) -> Answer {
        self.expire(now);
        let Some(code) = form.get("Code") else {
            return twilio_error(400, 60200, "Invalid parameter: Code");
        };
        let sid = match (form.get("VerificationSid"), form.get("To")) {
            (Some(sid), _) => Some(sid.clone()),
            (None, Some(to)) => self
                .live
                .values()
                .find(|v| &v.to == to)
                .map(|v| v.sid.clone()),
            (None, None) => {
                return twilio_error(
                    400,
                    60200,
                    "Invalid parameter: either To or VerificationSid must be specified",
                )
            }
        };
        let Some(sid) = sid.filter(|s| self.live.contains_key(s)) else {
            return self.not_found("VerificationCheck");
        };
        let v = self.live.get_mut(&sid).expect("checked above");
        if v.checks >= MAX_CHECKS {
            return twilio_error(429, 60202, "Max check attempts reached");
        }
        v.checks += 1;
        v.updated = now;
        self.evaluations.push((now, v.to.clone()));
        let v = &self.live[&sid];
        if code == &v.code {
            let body = self.check_json(&self.live[&sid], "approved", now);
            self.finish(&sid, "approved");
            Answer { status: 200, body }
        } else {
            let body = self.check_json(&self.live[&sid], "pending", now);
            Answer { status: 200, body }
        }
    }

    /// `POST /Verifications/{sid}` with `Status`.
    pub fn update(&mut self, now: u64, sid: &str, form: &BTreeMap<String, String>) -> Answer {
        self.expire(now);
        let status = form.get("Status").map(String::as_str).unwrap_or("");
        if status != "canceled" && status != "approved" {
            return twilio_error(400, 60200, "Invalid parameter: Status");
        }
        let Some(v) = self.live.get(sid) else {
            return self.not_found(&format!("Verifications/{}", safe(sid)));
        };
        let body = self.verification_json(v, status);
        self.finish(sid, status);
        Answer { status: 200, body }
    }

    /// `GET /Verifications/{sid}`.
    pub fn fetch(&mut self, now: u64, sid: &str) -> Answer {
        self.expire(now);
        match self.live.get(sid) {
            Some(v) => Answer {
                status: 200,
                body: self.verification_json(v, "pending"),
            },
            None => self.not_found(&format!("Verifications/{}", safe(sid))),
        }
    }

    /// Lookups v2 `GET /v2/PhoneNumbers/{n}` with optional `Fields=line_type_intelligence`.
    pub fn lookup(&self, number: &str, fields: &str) -> Answer {
        let parsed = crate::phone::PhoneNumber::parse(number, "");
        let (valid, e164, national, cc, region) = match &parsed {
            Ok(n) => {
                let p = phonenumber::parse(None, n.e164()).ok();
                let cc = p
                    .as_ref()
                    .map(|p| p.code().value().to_string())
                    .unwrap_or_default();
                let region = p
                    .as_ref()
                    .and_then(|p| p.country().id())
                    .map(|id| id.as_ref().to_string())
                    .unwrap_or_default();
                (
                    true,
                    n.e164().to_string(),
                    n.national().to_string(),
                    cc,
                    region,
                )
            }
            Err(_) => (
                false,
                safe(number),
                safe(number),
                String::new(),
                String::new(),
            ),
        };
        let lti = if valid
            && fields
                .split(',')
                .any(|f| f.trim() == "line_type_intelligence")
        {
            let kind = self
                .line_types
                .get(&e164)
                .cloned()
                .unwrap_or_else(|| "mobile".into());
            json!({
                "mobile_country_code": "310",
                "mobile_network_code": "456",
                "carrier_name": "Simulated Carrier",
                "type": kind,
                "error_code": null,
            })
        } else {
            Value::Null
        };
        Answer {
            status: 200,
            body: json!({
                "calling_country_code": if valid { Value::from(cc) } else { Value::Null },
                "country_code": if valid { Value::from(region) } else { Value::Null },
                "phone_number": e164,
                "national_format": if valid { Value::from(national) } else { Value::Null },
                "valid": valid,
                "validation_errors": if valid { json!([]) } else { json!(["NOT_A_NUMBER"]) },
                "caller_name": null,
                "sim_swap": null,
                "call_forwarding": null,
                "line_status": null,
                "line_type_intelligence": lti,
                "identity_match": null,
                "reassigned_number": null,
                "sms_pumping_risk": null,
                "phone_number_quality_score": null,
                "pre_fill": null,
                "url": format!("https://lookups.twilio.com/v2/PhoneNumbers/{e164}"),
            }),
        }
    }
}

/// Echo only harmless characters of caller input back.
fn safe(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '+')
        .take(40)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::simulator::test_form as form;

    fn state() -> VerifyState {
        VerifyState::new(
            "AC00000000000000000000000000000000",
            "VA00000000000000000000000000000000",
        )
    }

    fn send(s: &mut VerifyState, now: u64) -> Answer {
        s.create(now, &form(&[("To", "+12015552671"), ("Channel", "sms")]))
    }

    #[test]
    fn create_then_check_approves_once() {
        let mut s = state();
        let a = send(&mut s, 0);
        assert_eq!(a.status, 201);
        let sid = a.body["sid"].as_str().unwrap().to_string();
        let code = s.deliveries[0].code.clone();
        assert_eq!(code.len(), 6);
        let ok = s.check(1, &form(&[("VerificationSid", &sid), ("Code", &code)]));
        assert_eq!(
            (ok.status, ok.body["status"].as_str()),
            (200, Some("approved"))
        );
        let again = s.check(2, &form(&[("VerificationSid", &sid), ("Code", &code)]));
        assert_eq!(
            (again.status, again.body["code"].as_u64()),
            (404, Some(20404))
        );
    }

    #[test]
    fn five_checks_then_60202() {
        let mut s = state();
        let sid = send(&mut s, 0).body["sid"].as_str().unwrap().to_string();
        let wrong = if s.deliveries[0].code == "000000" {
            "111111"
        } else {
            "000000"
        };
        for _ in 0..5 {
            let a = s.check(1, &form(&[("VerificationSid", &sid), ("Code", wrong)]));
            assert_eq!(a.body["status"].as_str(), Some("pending"));
        }
        let a = s.check(1, &form(&[("VerificationSid", &sid), ("Code", wrong)]));
        assert_eq!((a.status, a.body["code"].as_u64()), (429, Some(60202)));
    }

    #[test]
    fn a_documented_locale_is_kept_and_an_unknown_one_is_a_404_that_sends_nothing() {
        let mut s = state();
        let to = ("To", "+12015552671");
        let ok = s.create(0, &form(&[to, ("Channel", "sms"), ("Locale", "pt-BR")]));
        assert_eq!(ok.status, 201);
        assert_eq!(s.deliveries[0].locale.as_deref(), Some("pt-BR"));
        for bad in ["xx", "pt_BR", "de-DE"] {
            let a = s.create(1, &form(&[to, ("Channel", "sms"), ("Locale", bad)]));
            assert_eq!(
                (a.status, a.body["code"].as_u64()),
                (404, Some(20404)),
                "{bad}"
            );
        }
        assert_eq!(s.deliveries.len(), 1);
        for i in 0..4 {
            assert_eq!(send(&mut s, 2 + i).status, 201, "refusals are not sends");
        }
    }

    #[test]
    fn five_sends_per_ten_minutes_then_60203_and_same_code_resent() {
        let mut s = state();
        for i in 0..5 {
            assert_eq!(send(&mut s, i).status, 201);
        }
        assert_eq!(
            s.deliveries
                .iter()
                .map(|d| &d.code)
                .collect::<std::collections::HashSet<_>>()
                .len(),
            1
        );
        let a = send(&mut s, 10);
        assert_eq!((a.status, a.body["code"].as_u64()), (429, Some(60203)));
        assert_eq!(send(&mut s, 601).status, 201);
    }

    #[test]
    fn codes_expire_after_ten_minutes() {
        let mut s = state();
        let sid = send(&mut s, 0).body["sid"].as_str().unwrap().to_string();
        let code = s.deliveries[0].code.clone();
        let a = s.check(600, &form(&[("VerificationSid", &sid), ("Code", &code)]));
        assert_eq!(a.status, 404);
        assert_eq!(s.finished.get(&sid).map(String::as_str), Some("expired"));
    }

    #[test]
    fn bad_parameters_are_60200() {
        let mut s = state();
        for f in [
            form(&[("To", "2015552671"), ("Channel", "sms")]),
            form(&[("To", "+12015552671"), ("Channel", "pigeon")]),
            form(&[("Channel", "sms")]),
        ] {
            let a = s.create(0, &f);
            assert_eq!((a.status, a.body["code"].as_u64()), (400, Some(60200)));
        }
    }

    #[test]
    fn cancel_finishes_the_verification() {
        let mut s = state();
        let sid = send(&mut s, 0).body["sid"].as_str().unwrap().to_string();
        let a = s.update(1, &sid, &form(&[("Status", "canceled")]));
        assert_eq!(a.body["status"].as_str(), Some("canceled"));
        assert_eq!(s.fetch(2, &sid).status, 404);
        assert_eq!(
            s.update(2, &sid, &form(&[("Status", "canceled")])).status,
            404
        );
    }

    #[test]
    fn lookup_reports_line_type_and_validity() {
        let mut s = state();
        let a = s.lookup("+12015552671", "line_type_intelligence");
        assert_eq!(a.body["valid"], json!(true));
        assert_eq!(a.body["country_code"], json!("US"));
        assert_eq!(a.body["line_type_intelligence"]["type"], json!("mobile"));
        s.line_types
            .insert("+12015552671".into(), "landline".into());
        let a = s.lookup("+12015552671", "line_type_intelligence");
        assert_eq!(a.body["line_type_intelligence"]["type"], json!("landline"));
        assert_eq!(
            s.lookup("+12015552671", "").body["line_type_intelligence"],
            Value::Null
        );
        let bad = s.lookup("+1555", "line_type_intelligence");
        assert_eq!(bad.body["valid"], json!(false));
    }
}
