//! Limits that hold across logins, through the real libpam and the simulator:
//! lockout, resend cooldown, remembered origins, the state directory.

mod common;

use common::*;
use pam_twilio_2fa::pam_client::*;
use pam_twilio_2fa::state::file_name_for;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const LOCKED: &str = "Too many failed attempts. Try again in 10 minutes.";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().mode() & 0o7777
}

#[test]
fn lockout_holds_across_transactions_and_sends_nothing() {
    let s = Setup::sms("max_attempts = 2\n");
    s.login(vec![Answer::WrongCode, Answer::WrongCode])
        .assert_rc(PAM_MAXTRIES);
    let sends = s.sends().len();
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_MAXTRIES);
    assert_eq!(r.errors(), vec![LOCKED]);
    assert!(r.prompts().is_empty(), "no code prompt while locked");
    assert_eq!(s.sends().len(), sends, "no verification sent while locked");

    // On disk: an absolute lockout end, in a 0600 file in a 0700 directory.
    let st = state_of(&s, USER);
    let until = st.locked_until.expect("locked");
    assert!(until > now() + 590 && until <= now() + 600, "{until}");
    assert_eq!(st.attempts, 0);
    assert_eq!(mode(&s.lab.state_dir), 0o700);
    assert_eq!(mode(&s.lab.state_dir.join("u-root")), 0o600);
    assert!(s.lab.events().contains("reason=max_attempts"));
}

#[test]
fn lockout_expires() {
    let s = Setup::sms("max_attempts = 1\nmax_attempts_timeout = 1\n");
    s.login(vec![Answer::WrongCode]).assert_rc(PAM_MAXTRIES);
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_MAXTRIES);
    assert_eq!(
        r.errors(),
        vec!["Too many failed attempts. Try again in 1 minute."]
    );
    std::thread::sleep(Duration::from_millis(2100));
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);
}

#[test]
fn zero_timeout_only_resets_the_count() {
    let s = Setup::sms("max_attempts = 2\nmax_attempts_timeout = 0\n");
    let r = s.login(vec![Answer::WrongCode, Answer::WrongCode]);
    r.assert_rc(PAM_MAXTRIES);
    assert_eq!(
        r.errors().last().map(String::as_str),
        Some("Too many incorrect codes. Log in again to get a new code.")
    );
    assert_eq!(state_of(&s, USER).locked_until, None);
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);
}

#[test]
fn wrong_codes_add_up_across_transactions() {
    let s = Setup::sms("max_attempts = 3\n");
    // One wrong code, then the client hangs up.
    s.login(vec![Answer::WrongCode]).assert_rc(PAM_CONV_ERR);
    assert_eq!(state_of(&s, USER).attempts, 1);
    // Reconnecting does not give a fresh allowance: two more and it is over.
    s.login(vec![Answer::WrongCode, Answer::WrongCode, Answer::Code])
        .assert_rc(PAM_MAXTRIES);
    assert_eq!(s.checks().len(), 3);
}

#[test]
fn resend_cooldown_holds_across_transactions() {
    let s = Setup::sms("");
    s.login(vec![]).assert_rc(PAM_CONV_ERR);
    assert_eq!(s.sim.deliveries().len(), 1);
    // The next connection reuses the pending code: no new SMS.
    let r = s.login(vec![text("r"), Answer::Code]);
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(
        r.prompts()[0],
        "A code was already sent by text message to (XXX) XXX-2671. Enter code (r: new code): "
    );
    assert!(
        r.errors()[0].starts_with("You can request a new code in 1"),
        "{:?}",
        r.errors()
    );
    assert_eq!(s.sim.deliveries().len(), 1);
    assert_eq!(
        s.checks()[0].form.get("VerificationSid"),
        Some(&s.sim.deliveries()[0].sid)
    );
}

/// Two logins at once for one user: once one of them has resent, the
/// other's `r` takes over that newer code instead of sending a third. The
/// cooldown runs from the user's last send, not from each login's own.
#[test]
fn logins_at_once_cannot_each_resend() {
    let s = Setup::sms("retry_time = 3\n");
    std::thread::scope(|scope| {
        let first = scope.spawn(|| {
            // Resends after the cooldown, then hangs up.
            s.login(vec![Answer::After(
                Duration::from_millis(3500),
                Box::new(text("r")),
            )])
        });
        wait_for(|| s.sim.deliveries().len() == 1);
        let second = s.login(vec![
            Answer::After(Duration::from_secs(5), Box::new(text("r"))),
            Answer::After(Duration::from_millis(300), Box::new(Answer::Code)),
        ]);
        first.join().unwrap().assert_rc(PAM_CONV_ERR);
        second.assert_rc(PAM_SUCCESS);
        assert_eq!(s.sends().len(), 2, "one first code, one resend: no third");
        assert_eq!(
            second.prompts()[1],
            "A code was already sent by text message to (XXX) XXX-2671. Enter code (r: new code): "
        );
        assert!(second.errors().is_empty(), "{:?}", second.errors());
    });
}

/// A remote host name is the client's to choose: `twilio-2fa status` shows
/// the stored one escaped, so it cannot drive the admin's terminal or pass
/// for another line of the report.
#[test]
fn status_shows_a_hostile_remembered_host_escaped() {
    let s = Setup::sms("remember = 600\n");
    let hostile = "192.0.2.7\x1b]0;owned\x07\x1b[2J\nlocked until   - (not locked)";
    s.login_as(USER, Some(hostile), 0, vec![Answer::Code])
        .assert_rc(PAM_SUCCESS);
    let (ok, out, err) = s.cli(&["status", USER]);
    assert!(ok, "{err}");
    assert!(!out.contains('\x1b') && !out.contains('\x07'), "{out:?}");
    // Stored percent-encoded (remembered origins), never raw.
    assert!(out.contains("rhost=192.0.2.7%1B"), "{out}");
    // A name given on the command line is shown escaped as well.
    let (_, out, _) = s.cli(&["status", "nobody\x1b[2J\nlocked until"]);
    assert!(!out.contains('\x1b'), "{out:?}");
    assert!(out.contains("nobody\\u{1b}[2J\\u{a}locked until"), "{out}");

    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("locked until"))
            .count(),
        1,
        "{out}"
    );
}

/// Waits (bounded) until `done` holds.
fn wait_for(done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn remembered_host_hit_and_miss() {
    let s = Setup::sms("remember = 2\n");
    let a = Some("192.0.2.1");
    s.login_as(USER, a, 0, vec![Answer::Code])
        .assert_rc(PAM_SUCCESS);
    assert_eq!(s.sends().len(), 1);

    let hit = s.login_as(USER, a, 0, vec![]);
    hit.assert_rc(PAM_SUCCESS);
    assert_eq!(s.sends().len(), 1, "remembered: nothing sent");
    assert!(
        hit.of(Style::Info)[0].contains("skipped"),
        "{:?}",
        hit.shown
    );
    assert!(s.lab.events().contains("event=verification_skipped"));

    // Another host is never remembered.
    s.login_as(USER, Some("192.0.2.2"), 0, vec![Answer::Code])
        .assert_rc(PAM_SUCCESS);
    assert_eq!(s.sends().len(), 2);

    // Expired.
    std::thread::sleep(Duration::from_millis(2100));
    s.login_as(USER, a, 0, vec![Answer::Code])
        .assert_rc(PAM_SUCCESS);
    assert_eq!(s.sends().len(), 3);
}

#[test]
fn twenty_concurrent_logins_use_at_most_max_attempts_checks() {
    let s = Setup::sms("");
    let etc = EtcService::new(&s, "race");
    let children: Vec<_> = (0..20)
        .map(|_| {
            let mut c = Command::new("pamtester")
                .args([etc.name.as_str(), USER, "authenticate"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("pamtester");
            // Well-formed but never right: the simulator's codes have 6 digits.
            use std::io::Write;
            let mut stdin = c.stdin.take().unwrap();
            // A login already locked out exits without reading: ignore EPIPE.
            let _ = stdin.write_all("0000\n".repeat(8).as_bytes());
            c
        })
        .collect();
    for mut c in children {
        assert!(!c.wait().unwrap().success(), "a wrong code got in");
    }
    assert!(
        s.checks().len() <= 5,
        "{} checks reached Twilio",
        s.checks().len()
    );
    assert_eq!(s.checks().len(), 5);
    assert_eq!(s.sim.deliveries().len(), 1, "one code for all 20 logins");
    let st = state_of(&s, USER);
    assert!(st.locked_until.is_some(), "{st:?}");
}

#[test]
fn kill_9_in_the_middle_of_state_writes_never_leaves_a_torn_file() {
    let s = Setup::sms("remember = 600\n");
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);
    let config = s.lab.config.to_str().unwrap().to_string();
    for i in 0..120u64 {
        let mut c = Command::new(BIN)
            .args(["unlock", USER, "--config", &config])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let jitter = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64;
        std::thread::sleep(Duration::from_micros((jitter + i * 397) % 4000));
        unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
        let _ = c.wait();
        // Whatever instant it died at, the file is the old or the new state.
        let st = state_of(&s, USER);
        assert_eq!(st.remembered.len(), 1, "iteration {i}: {st:?}");
    }
    // And the module still reads it.
    s.login(vec![]).assert_rc(PAM_SUCCESS);
}

#[test]
fn hostile_user_names_stay_inside_the_state_directory() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let s = Setup::sms("");
    std::fs::create_dir(&s.lab.state_dir).unwrap();
    std::fs::set_permissions(&s.lab.state_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let passwd = std::fs::read("/etc/passwd").unwrap();
    let names: Vec<OsString> = vec![
        "../../etc/passwd".into(),
        "a/b".into(),
        "..".into(),
        "x".repeat(300).into(),
        OsString::from_vec(vec![0xff, b'/', 0xfe, b'.', b'.']),
    ];
    for n in &names {
        let out = Command::new(BIN)
            .arg("unlock")
            .arg(n)
            .args(["--config", s.lab.config.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{n:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut files: Vec<String> = std::fs::read_dir(&s.lab.state_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        // Besides each user's state: its lock and its (empty) spare.
        .filter(|f| !f.ends_with(".lock") && !f.ends_with(".tmp"))
        .collect();
    files.sort();
    let mut want: Vec<String> = names
        .iter()
        .map(|n| file_name_for(n.as_encoded_bytes()))
        .collect();
    want.sort();
    assert_eq!(files, want, "one file per name, all distinct, all inside");
    assert!(files
        .iter()
        .all(|f| f.starts_with("u-") || f.starts_with("h-")));
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), passwd);
    let mut lab: Vec<String> = std::fs::read_dir(&s.lab.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    lab.sort();
    assert_eq!(
        lab,
        ["config.toml", "events.log", "pam.d", "phones", "state"],
        "nothing outside the state dir"
    );

    // Through PAM such names are unknown users: no state file at all.
    let before = std::fs::read_dir(&s.lab.state_dir).unwrap().count();
    for n in ["../../etc/passwd", "a/b", &"x".repeat(300)] {
        s.login_as(n, None, 0, vec![Answer::Code])
            .assert_rc(PAM_USER_UNKNOWN);
    }
    assert_eq!(std::fs::read_dir(&s.lab.state_dir).unwrap().count(), before);
}

#[test]
fn missing_state_directory_is_created_0700() {
    let s = Setup::sms("");
    assert!(!s.lab.state_dir.exists());
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);
    assert_eq!(mode(&s.lab.state_dir), 0o700);
    assert_eq!(std::fs::metadata(&s.lab.state_dir).unwrap().uid(), 0);
}

#[test]
fn logins_rewrite_the_same_two_state_files_instead_of_making_new_ones() {
    let s = Setup::sms("");
    let live = s.lab.state_dir.join(file_name_for(USER.as_bytes()));
    let spare = s
        .lab
        .state_dir
        .join(format!("{}.tmp", file_name_for(USER.as_bytes())));
    let inodes = || {
        let mut v = vec![
            std::fs::metadata(&live).unwrap().ino(),
            std::fs::metadata(&spare).unwrap().ino(),
        ];
        v.sort();
        v
    };
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);
    let first = inodes();
    for _ in 0..2 {
        s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);
    }
    // Each login writes the state three times; no write made a new file.
    assert_eq!(inodes(), first);
    for p in [&live, &spare] {
        assert_eq!(mode(p), 0o600, "{}", p.display());
    }
    let state = std::fs::read_to_string(&live).unwrap();
    assert!(state.contains("\"attempts\": 0"), "{state}");
}

fn assert_refused(s: &Setup, why: &str) {
    let r = s.login(vec![Answer::Code]);
    assert_eq!(code_name(r.rc), "PAM_SERVICE_ERR", "{why}: {:?}", r.shown);
    assert!(s.sim.received().is_empty(), "{why}: something was sent");
}

#[test]
fn insecure_state_directories_are_refused() {
    let s = Setup::sms("");
    std::fs::create_dir(&s.lab.state_dir).unwrap();
    std::fs::set_permissions(&s.lab.state_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_refused(&s, "world-writable");
    std::fs::set_permissions(&s.lab.state_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&s.lab.state_dir, Some(65534), None).unwrap();
    assert_refused(&s, "owned by nobody");
    assert!(
        s.lab.events().contains("must be owned by root"),
        "{}",
        s.lab.events()
    );
    std::os::unix::fs::chown(&s.lab.state_dir, Some(0), None).unwrap();

    // A parent anyone can write to (even sticky /tmp).
    let tmp = std::env::temp_dir().join(format!("t2fa-state-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o700)).unwrap();
    let dir = s.lab.state_dir.display().to_string();
    s.rewrite_config("allowed_methods = [\"sms\"]\n", |t| {
        t.replace(&dir, tmp.to_str().unwrap())
    });
    assert_refused(&s, "parent /tmp");
    std::fs::remove_dir_all(&tmp).unwrap();

    // A symlink instead of a directory.
    let link = s.lab.dir.join("state-link");
    std::os::unix::fs::symlink(&s.lab.state_dir, &link).unwrap();
    s.rewrite_config("allowed_methods = [\"sms\"]\n", |t| {
        t.replace(&dir, link.to_str().unwrap())
    });
    assert_refused(&s, "symlink");
}

#[test]
fn damaged_state_file_fails_closed_until_an_admin_unlocks() {
    let s = Setup::sms("");
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);
    let file = s.lab.state_dir.join("u-root");
    s.lab
        .write_private(&file, "{\"attempts\": 1, \"locked_until\": ")
        .unwrap();
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_SERVICE_ERR);
    assert!(
        r.errors()[0].contains("`twilio-2fa unlock root`"),
        "{:?}",
        r.errors()
    );
    assert_eq!(s.sends().len(), 1, "nothing sent");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "{\"attempts\": 1, \"locked_until\": ",
        "never silently reset"
    );
    let out = Command::new(BIN)
        .args(["unlock", USER, "--config", s.lab.config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);
}

#[test]
fn admin_status_unlock_and_forget() {
    let s = Setup::sms("max_attempts = 2\nremember = 600\n");
    s.login_as(USER, Some("192.0.2.9"), 0, vec![Answer::Code])
        .assert_rc(PAM_SUCCESS);
    s.login(vec![Answer::WrongCode, Answer::WrongCode])
        .assert_rc(PAM_MAXTRIES);

    let (ok, out, err) = s.cli(&["status", USER]);
    assert!(ok, "{err}");
    assert!(out.contains("attempts used  0 of 2"), "{out}");
    assert!(out.contains("locked until   20"), "{out}");
    assert!(
        out.contains("remembered     svc=t2fa-test uid=0 rhost=192.0.2.9 verified"),
        "{out}"
    );
    assert!(!out.contains("2015552671"), "full number shown:\n{out}");

    let (ok, out, _) = s.cli(&["unlock", USER]);
    assert!(ok);
    assert!(out.contains("lockout lifted"), "{out}");
    assert_eq!(state_of(&s, USER).locked_until, None);
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);

    let (ok, _, _) = s.cli(&["forget", USER]);
    assert!(ok);
    assert!(state_of(&s, USER).remembered.is_empty());
    let log = s.lab.events();
    assert!(log.contains("event=unlocked user=root"), "{log}");
    assert!(log.contains("event=forgotten user=root"), "{log}");
}

#[test]
fn admin_commands_refuse_non_root() {
    use std::os::unix::process::CommandExt;
    let s = Setup::sms("");
    for cmd in ["status", "unlock", "forget"] {
        let out = Command::new(BIN)
            .args([cmd, USER, "--config", s.lab.config.to_str().unwrap()])
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("must be run as root"), "{cmd}: {err}");
    }
}

#[test]
fn the_parsed_number_is_cached_and_follows_the_source() {
    let s = Setup::sms("");
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);
    let cached = state_of(&s, USER)
        .number
        .expect("cached after the first login");
    assert_eq!((cached.raw.as_str(), cached.e164.as_str()), (PHONE, PHONE));
    assert_eq!(cached.region.as_deref(), Some("US"));

    // The source changes: the new number is parsed, used and cached.
    s.lab.set_phone(USER, "(201) 555-0123").unwrap();
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);
    assert_eq!(
        s.sends().last().unwrap().form.get("To").map(String::as_str),
        Some("+12015550123")
    );
    assert_eq!(state_of(&s, USER).number.unwrap().e164, "+12015550123");

    // A cached entry that is not a parse result is ignored, not trusted.
    let file = s.lab.state_dir.join("u-root");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("\"e164\": \"+12015550123\"", "\"e164\": \"+1900../x\"");
    assert!(
        text.contains("+1900../x"),
        "the cache entry was not altered:\n{text}"
    );
    s.lab.write_private(&file, &text).unwrap();
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);
    assert_eq!(
        s.sends().last().unwrap().form.get("To").map(String::as_str),
        Some("+12015550123")
    );
}
