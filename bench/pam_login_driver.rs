//! One complete PAM authentication in a fresh process, answered without a
//! person, for bench/run. Prints one JSON line with its own resource use.
//!
//! usage: pam_login_driver CONFDIR SERVICE USER none
//!        pam_login_driver CONFDIR SERVICE USER outbox FILE E164
//!        pam_login_driver CONFDIR SERVICE USER totp BASE32_SECRET
//!        pam_login_driver CONFDIR SERVICE USER answer TEXT   (every prompt)
//!        pam_login_driver CONFDIR SERVICE USER fixed ANSWER

use pam_twilio_2fa::pam_client::{code_name, Style, Transaction};
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

fn main() {
    let started = Instant::now();
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: pam_login_driver CONFDIR SERVICE USER none|outbox FILE E164|totp SECRET|answer TEXT|fixed TEXT");
        std::process::exit(2);
    }
    let (confdir, service, user, mode) = (&args[1], &args[2], &args[3], args[4].as_str());
    let rest = args[5..].to_vec();
    let responder = Box::new(move |style: Style, text: &str| -> Option<String> {
        if !matches!(style, Style::EchoOff | Style::EchoOn) {
            return Some(String::new());
        }
        match mode {
            "outbox" => latest_code(&rest[0], &rest[1]),
            "totp" => Some(totp(&rest[0])),
            // A fixed answer, for modules whose prompt is not ours (pam_duo's
            // passcode prompt comes from its server).
            "answer" | "fixed" => Some(rest[0].clone()),
            _ => {
                eprintln!("unexpected prompt: {text}");
                None
            }
        }
    });
    let mut tx =
        Transaction::start(service, user, Some(Path::new(confdir)), responder).expect("pam_start");
    // For time to first byte: the simulator stamps its connections on the
    // same clock (CLOCK_MONOTONIC, one for the whole host).
    let auth_start_ns = pam_twilio_2fa::simulator::monotonic_ns();
    let rc = tx.authenticate(0);
    drop(tx);
    let wall = started.elapsed().as_micros();
    // The process's CPU clock counts every nanosecond its threads ran since
    // exec (loader included); getrusage's user/sys split is tick-sampled.
    let mut cpu = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut cpu) };
    let cpu_us = cpu.tv_sec * 1_000_000 + cpu.tv_nsec / 1000;
    println!(
        "{{\"rc\":{rc},\"rc_name\":\"{}\",\"wall_us\":{wall},\"cpu_us\":{cpu_us},\"hwm_kb\":{},\"auth_start_ns\":{auth_start_ns}}}",
        code_name(rc),
        peak_rss_kb()
    );
    std::process::exit(if rc == 0 { 0 } else { 1 });
}

/// Peak resident set of this process since exec. getrusage's ru_maxrss is
/// no good here: it keeps the high-water mark of the process before exec
/// (the benchmark's Python parent), which hides everything the login uses.
fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The newest code the simulator delivered to `to`.
fn latest_code(outbox: &str, to: &str) -> Option<String> {
    let text = std::fs::read_to_string(outbox).ok()?;
    text.lines().rev().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        (v["to"] == to).then(|| v["code"].as_str().map(String::from))?
    })
}

/// RFC 6238 TOTP (SHA-1, 30 s, 6 digits), as google-authenticator expects.
fn totp(secret_b32: &str) -> String {
    let key = base32_decode(secret_b32);
    let counter = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 30;
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &key);
    let mac = ring::hmac::sign(&k, &counter.to_be_bytes());
    let h = mac.as_ref();
    let off = (h[19] & 0x0f) as usize;
    let bin = u32::from_be_bytes([h[off] & 0x7f, h[off + 1], h[off + 2], h[off + 3]]);
    format!("{:06}", bin % 1_000_000)
}

fn base32_decode(s: &str) -> Vec<u8> {
    let mut bits = 0u64;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => continue,
        };
        bits = (bits << 5) | u64::from(v);
        n += 5;
        if n >= 8 {
            out.push((bits >> (n - 8)) as u8);
            n -= 8;
        }
    }
    out
}
