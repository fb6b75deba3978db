//! Verify's Service Rate Limits, as Twilio documents them
//! (twilio.com/docs/verify/api/service-rate-limits and
//! .../service-rate-limit-buckets): a Rate Limit (RK…) is a named key, each
//! of its Buckets (BL…) allows `Max` sends per `Interval` seconds for one
//! value of that key; a send names its values in `RateLimits`, a JSON object
//! `{"<unique_name>": "<value>"}`. A full bucket refuses the send with HTTP
//! 429 and error 60203, the answer of Twilio's own send limit.
//!
//! Where Twilio's documents are silent the simulator chooses, and says so:
//! a `RateLimits` that is not an object of strings, or names a rate limit
//! the service does not have, is 400/60200; a refused send is not counted.

use super::state::{twilio_error, Answer};
use crate::clock::iso_time;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// A Rate Limit with that UniqueName already exists.
const DUPLICATE_NAME: u32 = 60208;
/// A Bucket with the given Interval already exists.
const DUPLICATE_INTERVAL: u32 = 60211;

struct Bucket {
    sid: String,
    max: u64,
    interval: u64,
    created: u64,
    updated: u64,
    /// Send times per rate-limit value, oldest first.
    hits: HashMap<String, VecDeque<u64>>,
}

struct RateLimit {
    sid: String,
    unique_name: String,
    description: Option<String>,
    created: u64,
    updated: u64,
    buckets: Vec<Bucket>,
}

/// The service's rate limits, in creation order.
#[derive(Default)]
pub struct RateLimits {
    limits: Vec<RateLimit>,
}

/// Where a request goes, from the path after `/v2/Services/{VA}/RateLimits`.
fn sid_of(s: &str, prefix: &str) -> Option<String> {
    let ok =
        s.len() == 34 && s.starts_with(prefix) && s[2..].bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| s.to_string())
}

fn int_param(form: &BTreeMap<String, String>, key: &str) -> Result<Option<u64>, Answer> {
    match form.get(key) {
        None => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .map(Some)
            .map_err(|_| twilio_error(400, 60200, &format!("Invalid parameter: {key}"))),
    }
}

impl RateLimits {
    /// The REST resources: `rest` is the path after `RateLimits`, split.
    pub fn route(
        &mut self,
        ids: (&str, &str),
        method: &str,
        rest: &[&str],
        form: &BTreeMap<String, String>,
        now: u64,
    ) -> Answer {
        let result = match (method, rest) {
            ("POST", []) => self.create(ids, form, now),
            ("GET", []) => Ok(self.list(ids)),
            (_, [rk, tail @ ..]) => match self
                .limits
                .iter()
                .position(|l| Some(&l.sid) == sid_of(rk, "RK").as_ref())
            {
                None => Err(not_found()),
                Some(i) => self.one(ids, i, method, tail, form, now),
            },
            _ => Err(not_found()),
        };
        result.unwrap_or_else(|e| e)
    }

    fn create(
        &mut self,
        ids: (&str, &str),
        form: &BTreeMap<String, String>,
        now: u64,
    ) -> Result<Answer, Answer> {
        let Some(name) = form.get("UniqueName").filter(|n| !n.is_empty()) else {
            return Err(twilio_error(
                400,
                60200,
                "Missing required parameter UniqueName",
            ));
        };
        if self.limits.iter().any(|l| &l.unique_name == name) {
            return Err(twilio_error(
                400,
                DUPLICATE_NAME,
                "Rate limit with that UniqueName already exists",
            ));
        }
        self.limits.push(RateLimit {
            sid: format!("RK{}", super::state::random_hex(16)),
            unique_name: name.clone(),
            description: form.get("Description").cloned(),
            created: now,
            updated: now,
            buckets: vec![],
        });
        let l = self.limits.last().expect("just pushed");
        Ok(Answer {
            status: 201,
            body: limit_json(ids, l),
        })
    }

    fn list(&self, ids: (&str, &str)) -> Answer {
        let url = format!(
            "https://verify.twilio.com/v2/Services/{}/RateLimits?PageSize=50&Page=0",
            ids.1
        );
        Answer {
            status: 200,
            body: json!({
                "rate_limits": self.limits.iter().map(|l| limit_json(ids, l)).collect::<Vec<_>>(),
                "meta": meta("rate_limits", &url),
            }),
        }
    }

    /// Requests under one rate limit: itself, or its buckets.
    fn one(
        &mut self,
        ids: (&str, &str),
        i: usize,
        method: &str,
        tail: &[&str],
        form: &BTreeMap<String, String>,
        now: u64,
    ) -> Result<Answer, Answer> {
        match (method, tail) {
            ("GET", []) => Ok(ok(limit_json(ids, &self.limits[i]))),
            ("POST", []) => {
                let l = &mut self.limits[i];
                if let Some(d) = form.get("Description") {
                    l.description = Some(d.clone());
                }
                l.updated = now;
                Ok(ok(limit_json(ids, l)))
            }
            ("DELETE", []) => {
                self.limits.remove(i);
                Ok(deleted())
            }
            ("POST", ["Buckets"]) => {
                let (Some(max), Some(interval)) =
                    (int_param(form, "Max")?, int_param(form, "Interval")?)
                else {
                    return Err(twilio_error(
                        400,
                        60200,
                        "Missing required parameter Max or Interval",
                    ));
                };
                let l = &mut self.limits[i];
                if l.buckets.iter().any(|b| b.interval == interval) {
                    return Err(twilio_error(
                        400,
                        DUPLICATE_INTERVAL,
                        "Bucket with the given Interval already exists",
                    ));
                }
                l.buckets.push(Bucket {
                    sid: format!("BL{}", super::state::random_hex(16)),
                    max,
                    interval,
                    created: now,
                    updated: now,
                    hits: HashMap::new(),
                });
                let b = l.buckets.last().expect("just pushed");
                Ok(Answer {
                    status: 201,
                    body: bucket_json(ids, &l.sid, b),
                })
            }
            ("GET", ["Buckets"]) => {
                let l = &self.limits[i];
                let url = format!(
                    "https://verify.twilio.com/v2/Services/{}/RateLimits/{}/Buckets?PageSize=50&Page=0",
                    ids.1, l.sid
                );
                Ok(ok(json!({
                    "buckets": l.buckets.iter().map(|b| bucket_json(ids, &l.sid, b)).collect::<Vec<_>>(),
                    "meta": meta("buckets", &url),
                })))
            }
            (_, ["Buckets", bl]) => {
                let l = &mut self.limits[i];
                let Some(j) = l
                    .buckets
                    .iter()
                    .position(|b| Some(&b.sid) == sid_of(bl, "BL").as_ref())
                else {
                    return Err(not_found());
                };
                match method {
                    "GET" => Ok(ok(bucket_json(ids, &l.sid, &l.buckets[j]))),
                    "POST" => {
                        let max = int_param(form, "Max")?;
                        let interval = int_param(form, "Interval")?;
                        if let Some(iv) = interval {
                            if l.buckets
                                .iter()
                                .enumerate()
                                .any(|(k, b)| k != j && b.interval == iv)
                            {
                                return Err(twilio_error(
                                    400,
                                    DUPLICATE_INTERVAL,
                                    "Bucket with the given Interval already exists",
                                ));
                            }
                        }
                        let b = &mut l.buckets[j];
                        b.max = max.unwrap_or(b.max);
                        b.interval = interval.unwrap_or(b.interval);
                        b.updated = now;
                        Ok(ok(bucket_json(ids, &l.sid, &l.buckets[j])))
                    }
                    "DELETE" => {
                        l.buckets.remove(j);
                        Ok(deleted())
                    }
                    _ => Err(not_found()),
                }
            }
            _ => Err(not_found()),
        }
    }

    /// A send's `RateLimits`: `Ok` counts it in every bucket it names;
    /// `Err` is Twilio's answer (a full bucket, or a bad parameter).
    pub fn admit(&mut self, param: Option<&String>, now: u64) -> Result<(), Answer> {
        let Some(text) = param else {
            return Ok(());
        };
        let bad = || twilio_error(400, 60200, "Invalid parameter: RateLimits");
        let Ok(Value::Object(pairs)) = serde_json::from_str::<Value>(text) else {
            return Err(bad());
        };
        let mut named = Vec::new();
        for (name, value) in &pairs {
            let (Some(i), Some(v)) = (
                self.limits.iter().position(|l| &l.unique_name == name),
                value.as_str(),
            ) else {
                return Err(bad());
            };
            named.push((i, v.to_string()));
        }
        // Every bucket first: a refused send is counted in none.
        for (i, v) in &named {
            for b in &mut self.limits[*i].buckets {
                let hits = b.hits.entry(v.clone()).or_default();
                while hits.front().is_some_and(|t| now >= t + b.interval) {
                    hits.pop_front();
                }
                if hits.len() as u64 >= b.max {
                    return Err(twilio_error(429, 60203, "Max send attempts reached"));
                }
            }
        }
        for (i, v) in named {
            for b in &mut self.limits[i].buckets {
                b.hits.entry(v.clone()).or_default().push_back(now);
            }
        }
        Ok(())
    }
}

fn ok(body: Value) -> Answer {
    Answer { status: 200, body }
}

fn deleted() -> Answer {
    Answer {
        status: 204,
        body: Value::Null,
    }
}

fn not_found() -> Answer {
    twilio_error(404, 20404, "The requested resource was not found")
}

fn meta(key: &str, url: &str) -> Value {
    json!({
        "page": 0,
        "page_size": 50,
        "first_page_url": url,
        "previous_page_url": null,
        "next_page_url": null,
        "key": key,
        "url": url,
    })
}

/// `ids`: (account SID, service SID).
fn limit_json(ids: (&str, &str), l: &RateLimit) -> Value {
    let url = format!(
        "https://verify.twilio.com/v2/Services/{}/RateLimits/{}",
        ids.1, l.sid
    );
    json!({
        "sid": l.sid,
        "service_sid": ids.1,
        "account_sid": ids.0,
        "unique_name": l.unique_name,
        "description": l.description,
        "date_created": iso_time(l.created),
        "date_updated": iso_time(l.updated),
        "url": url,
        "links": { "buckets": format!("{url}/Buckets") },
    })
}

fn bucket_json(ids: (&str, &str), rk: &str, b: &Bucket) -> Value {
    json!({
        "sid": b.sid,
        "rate_limit_sid": rk,
        "service_sid": ids.1,
        "account_sid": ids.0,
        "max": b.max,
        "interval": b.interval,
        "date_created": iso_time(b.created),
        "date_updated": iso_time(b.updated),
        "url": format!("https://verify.twilio.com/v2/Services/{}/RateLimits/{rk}/Buckets/{}", ids.1, b.sid),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::simulator::test_form as form;

    const IDS: (&str, &str) = (
        "AC00000000000000000000000000000000",
        "VA00000000000000000000000000000000",
    );

    #[test]
    fn a_bucket_allows_max_sends_per_interval_per_value() {
        let mut r = RateLimits::default();
        let a = r.route(IDS, "POST", &[], &form(&[("UniqueName", "per_user")]), 0);
        assert_eq!(a.status, 201);
        let rk = a.body["sid"].as_str().unwrap().to_string();
        let b = r.route(
            IDS,
            "POST",
            &[&rk, "Buckets"],
            &form(&[("Max", "2"), ("Interval", "60")]),
            0,
        );
        assert_eq!(b.status, 201, "{:?}", b.body);
        let alice = r#"{"per_user":"a"}"#.to_string();
        let bob = r#"{"per_user":"b"}"#.to_string();
        assert!(r.admit(Some(&alice), 0).is_ok());
        assert!(r.admit(Some(&alice), 1).is_ok());
        let full = r.admit(Some(&alice), 2).unwrap_err();
        assert_eq!(
            (full.status, full.body["code"].as_u64()),
            (429, Some(60203))
        );
        assert!(
            r.admit(Some(&bob), 2).is_ok(),
            "another value has its own count"
        );
        assert!(r.admit(Some(&alice), 60).is_ok(), "the interval has passed");
        let unknown = r
            .admit(Some(&r#"{"nope":"a"}"#.to_string()), 0)
            .unwrap_err();
        assert_eq!(unknown.body["code"].as_u64(), Some(60200));
        let dup = r.route(IDS, "POST", &[], &form(&[("UniqueName", "per_user")]), 0);
        assert_eq!(dup.body["code"].as_u64(), Some(60208));
    }
}
