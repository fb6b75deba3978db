//! `twilio-2fa rate-limits apply|show`: the Verify service's Service Rate
//! Limits and Buckets, made to match `[rate_limits]`, or listed.
//!
//! A rate limit this command creates carries a `Description` starting with
//! `MARK`; `apply` deletes only such rate limits when the config no longer
//! declares them, so rate limits another application made on the same
//! service are left alone.

use crate::admin_args::{self, log_event};
use crate::cli::RateLimitsCommand;
use pam_twilio_2fa::events::Record;
use pam_twilio_2fa::rate_limits::{Bucket, RateLimit};
use pam_twilio_2fa::twilio_client::TwilioClient;
use pam_twilio_2fa::verify::ApiError;
use serde_json::Value;

const MARK: &str = "pam-twilio-2fa";
/// More rate limits or buckets than this on one page: refuse to guess.
const PAGE: usize = 100;

/// A rate limit as Twilio has it.
struct Remote {
    sid: String,
    name: String,
    description: String,
    buckets: Vec<RemoteBucket>,
}

struct RemoteBucket {
    sid: String,
    max: u64,
    interval: u64,
}

pub fn run(command: RateLimitsCommand) -> Result<(), String> {
    match command {
        RateLimitsCommand::Apply(c) => apply(&admin_args::load("rate-limits apply", &c.path)?),
        RateLimitsCommand::Show(c) => show(&admin_args::load("rate-limits show", &c.path)?),
    }
}

fn description(l: &RateLimit) -> String {
    format!("{MARK}: by {}", l.key.name())
}

fn twilio(what: &str, e: ApiError) -> String {
    format!("{what}: {e}")
}

fn str_of(j: &Value, key: &str) -> String {
    j.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

/// Only SIDs of the documented shape go back into URL paths.
fn sid_ok(s: &str, prefix: &str) -> bool {
    s.len() == 34 && s.starts_with(prefix) && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn list(client: &TwilioClient, path: &str, key: &str) -> Result<Vec<Value>, String> {
    let j = client
        .service_get(&format!("{path}?PageSize={PAGE}"))
        .map_err(|e| twilio(&format!("listing {path}"), e))?;
    if j.pointer("/meta/next_page_url")
        .is_some_and(|v| !v.is_null())
    {
        return Err(format!(
            "{path}: more than {PAGE} entries; clean up the service first"
        ));
    }
    Ok(j.get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

fn fetch(client: &TwilioClient) -> Result<Vec<Remote>, String> {
    let mut out = Vec::new();
    for r in list(client, "/RateLimits", "rate_limits")? {
        let sid = str_of(&r, "sid");
        if !sid_ok(&sid, "RK") {
            return Err("Twilio listed a rate limit without a valid sid".into());
        }
        let mut buckets = Vec::new();
        for b in list(client, &format!("/RateLimits/{sid}/Buckets"), "buckets")? {
            let bsid = str_of(&b, "sid");
            if !sid_ok(&bsid, "BL") {
                return Err("Twilio listed a bucket without a valid sid".into());
            }
            buckets.push(RemoteBucket {
                sid: bsid,
                max: b.get("max").and_then(Value::as_u64).unwrap_or(0),
                interval: b.get("interval").and_then(Value::as_u64).unwrap_or(0),
            });
        }
        out.push(Remote {
            sid,
            name: str_of(&r, "unique_name"),
            description: str_of(&r, "description"),
            buckets,
        });
    }
    Ok(out)
}

fn apply(cfg: &pam_twilio_2fa::config::Config) -> Result<(), String> {
    // No section: nothing is wanted, so the rate limits this command made go.
    let wanted: &[RateLimit] = cfg.rate_limits.as_ref().map_or(&[], |r| &r.limits);
    let client = TwilioClient::new(cfg);
    let remote = fetch(&client)?;
    let mut changes: Vec<String> = Vec::new();
    for l in wanted {
        let desc = description(l);
        let (sid, have) = match remote.iter().find(|r| r.name == l.name) {
            Some(r) => {
                if r.description != desc {
                    client
                        .service_post(&format!("/RateLimits/{}", r.sid), &[("Description", &desc)])
                        .map_err(|e| twilio(&format!("updating rate limit {}", l.name), e))?;
                    changes.push(format!(
                        "rate limit {}: now counted by {}",
                        l.name,
                        l.key.name()
                    ));
                }
                (r.sid.clone(), r.buckets.iter().collect::<Vec<_>>())
            }
            None => {
                let j = client
                    .service_post(
                        "/RateLimits",
                        &[("UniqueName", &l.name), ("Description", &desc)],
                    )
                    .map_err(|e| twilio(&format!("creating rate limit {}", l.name), e))?;
                let sid = str_of(&j, "sid");
                if !sid_ok(&sid, "RK") {
                    return Err(format!(
                        "creating rate limit {}: answer without a valid sid",
                        l.name
                    ));
                }
                changes.push(format!(
                    "rate limit {}: created (by {})",
                    l.name,
                    l.key.name()
                ));
                (sid, Vec::new())
            }
        };
        buckets(&client, l, &sid, have, &mut changes)?;
    }
    for r in &remote {
        if wanted.iter().any(|l| l.name == r.name) {
            continue;
        }
        if r.description.starts_with(MARK) {
            client
                .service_delete(&format!("/RateLimits/{}", r.sid))
                .map_err(|e| twilio(&format!("deleting rate limit {}", r.name), e))?;
            changes.push(format!(
                "rate limit {}: deleted (no longer in the config)",
                r.name
            ));
        } else {
            println!(
                "left alone: rate limit {} (not made by twilio-2fa)",
                shown(&r.name)
            );
        }
    }
    if changes.is_empty() {
        println!("no change: the service's rate limits already match the config");
    } else {
        for c in &changes {
            println!("{c}");
        }
        log_event(
            cfg,
            Record::event("rate_limits_applied").with("changes", changes.len().to_string()),
        );
    }
    Ok(())
}

/// Buckets of one rate limit: the same interval is kept (its max updated
/// if it changed), a bucket whose interval changed is updated in place,
/// the rest created or deleted.
fn buckets(
    client: &TwilioClient,
    l: &RateLimit,
    sid: &str,
    have: Vec<&RemoteBucket>,
    changes: &mut Vec<String>,
) -> Result<(), String> {
    let same: Vec<(&Bucket, &RemoteBucket)> = l
        .buckets
        .iter()
        .filter_map(|b| {
            have.iter()
                .find(|h| h.interval == b.interval)
                .map(|h| (b, *h))
        })
        .collect();
    let mut new: Vec<&Bucket> = l
        .buckets
        .iter()
        .filter(|b| !same.iter().any(|(s, _)| s == b))
        .collect();
    let mut old: Vec<&RemoteBucket> = have
        .iter()
        .copied()
        .filter(|h| !same.iter().any(|(_, s)| s.sid == h.sid))
        .collect();
    let path = |b: &str| format!("/RateLimits/{sid}/Buckets/{b}");
    let err = |what: &str, e| twilio(&format!("{what} a bucket of {}", l.name), e);
    for (b, h) in same {
        if b.max != h.max {
            let max = b.max.to_string();
            client
                .service_post(&path(&h.sid), &[("Max", &max)])
                .map_err(|e| err("updating", e))?;
            changes.push(format!(
                "rate limit {}: bucket {} s: max {} -> {}",
                l.name, b.interval, h.max, b.max
            ));
        }
    }
    // Old buckets move to the new intervals; what is left over goes.
    while let (Some(b), Some(h)) = (new.first().copied(), old.first().copied()) {
        let (max, interval) = (b.max.to_string(), b.interval.to_string());
        client
            .service_post(&path(&h.sid), &[("Max", &max), ("Interval", &interval)])
            .map_err(|e| err("updating", e))?;
        changes.push(format!(
            "rate limit {}: bucket {} per {} s -> {} per {} s",
            l.name, h.max, h.interval, b.max, b.interval
        ));
        new.remove(0);
        old.remove(0);
    }
    for b in new {
        let (max, interval) = (b.max.to_string(), b.interval.to_string());
        client
            .service_post(
                &format!("/RateLimits/{sid}/Buckets"),
                &[("Max", &max), ("Interval", &interval)],
            )
            .map_err(|e| err("creating", e))?;
        changes.push(format!(
            "rate limit {}: bucket {} per {} s created",
            l.name, b.max, b.interval
        ));
    }
    for h in old {
        client
            .service_delete(&path(&h.sid))
            .map_err(|e| err("deleting", e))?;
        changes.push(format!(
            "rate limit {}: bucket {} per {} s deleted",
            l.name, h.max, h.interval
        ));
    }
    Ok(())
}

/// Names and descriptions come from Twilio: letters, digits and a few
/// marks only, on the terminal.
fn shown(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(100)
        .collect()
}

fn show(cfg: &pam_twilio_2fa::config::Config) -> Result<(), String> {
    let client = TwilioClient::new(cfg);
    let remote = fetch(&client)?;
    if remote.is_empty() {
        println!("the Verify service {} has no rate limits", cfg.service_sid);
    }
    let declared = |name: &str| {
        cfg.rate_limits
            .as_ref()
            .is_some_and(|r| r.limits.iter().any(|l| l.name == name))
    };
    for r in &remote {
        let whose = if !r.description.starts_with(MARK) {
            "not made by twilio-2fa"
        } else if declared(&r.name) {
            "in the config"
        } else {
            "made by twilio-2fa, no longer in the config"
        };
        println!(
            "rate limit {} ({}): {} [{}]",
            shown(&r.name),
            r.sid,
            shown(&r.description),
            whose
        );
        let mut buckets: Vec<&RemoteBucket> = r.buckets.iter().collect();
        buckets.sort_by_key(|b| b.interval);
        for b in buckets {
            println!("  bucket {}: max {} per {} s", b.sid, b.max, b.interval);
        }
    }
    Ok(())
}
