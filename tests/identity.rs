//! Who is logging in, through the real libpam, with user and group
//! databases that misbehave the way directories do: one that ignores case
//! (sssd's AD provider, many LDAP setups), a group too big for a fixed
//! buffer, and a source that fails.
//!
//! Each test runs itself again inside a private mount namespace (`unshare
//! -m`), where a bind-mounted nsswitch.conf (and /etc/group) brings in a
//! stand-in NSS module built by the test. Nothing outside that namespace
//! changes. Needs root, as CI has.

mod common;

use common::*;
use pam_twilio_2fa::lab::Lab;
use pam_twilio_2fa::pam_client::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Set in the inner run: the name of the test to run there.
const INNER: &str = "T2FA_IDENTITY_INNER";
/// The folder holding the inner run's nsswitch.conf, group file and module.
const NSS_DIR: &str = "T2FA_NSS_DIR";
/// How the stand-in module misbehaves, read by the module itself.
const MODE: &str = "T2FA_NSS_MODE";
/// The outer run's mount namespace: the inner run must be in another.
const OUTER_NS: &str = "T2FA_OUTER_MOUNT_NS";

/// `daemon` exists everywhere; it gets its own number in these tests.
const DAEMON: &str = "daemon";
const DAEMON_PHONE: &str = "+12015550188";

/// The stand-in NSS module (`t2fa`). passwd: any capitalisation of an
/// account in /etc/passwd resolves to that account's entry, as a directory
/// that ignores case does; two special names return entries whose name is
/// empty or not UTF-8. With T2FA_NSS_MODE=passwd_eio every passwd lookup
/// fails, with group_eio every group lookup does (NSS_STATUS_UNAVAIL, EIO:
/// what an unreachable LDAP server or sssd gives).
const NSS_SOURCE: &str = r#"
#include <errno.h>
#include <grp.h>
#include <nss.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int mode_is(const char *m) {
    const char *v = getenv("T2FA_NSS_MODE");
    return v && strcmp(v, m) == 0;
}

static enum nss_status odd_name(const char *name, struct passwd *pw, char *buf,
                                size_t len, int *errnop) {
    const char *pick = strcmp(name, "T2FA-EMPTY") == 0 ? "" : "\xff\xfe";
    if (len < 16) { *errnop = ERANGE; return NSS_STATUS_TRYAGAIN; }
    strcpy(buf, pick);
    strcpy(buf + 4, "x");
    pw->pw_name = buf; pw->pw_passwd = buf + 4; pw->pw_uid = 1; pw->pw_gid = 1;
    pw->pw_gecos = buf + 4; pw->pw_dir = buf + 4; pw->pw_shell = buf + 4;
    return NSS_STATUS_SUCCESS;
}

enum nss_status _nss_t2fa_getpwnam_r(const char *name, struct passwd *pw,
                                     char *buf, size_t len, int *errnop) {
    if (mode_is("passwd_eio")) { *errnop = EIO; return NSS_STATUS_UNAVAIL; }
    if (strcmp(name, "T2FA-EMPTY") == 0 || strcmp(name, "T2FA-BADNAME") == 0)
        return odd_name(name, pw, buf, len, errnop);
    FILE *f = fopen("/etc/passwd", "re");
    if (!f) { *errnop = errno; return NSS_STATUS_UNAVAIL; }
    struct passwd *res;
    int rc;
    enum nss_status st = NSS_STATUS_NOTFOUND;
    while ((rc = fgetpwent_r(f, pw, buf, len, &res)) == 0) {
        if (strcasecmp(res->pw_name, name) == 0) { st = NSS_STATUS_SUCCESS; break; }
    }
    fclose(f);
    if (st == NSS_STATUS_NOTFOUND && rc == ERANGE) { *errnop = ERANGE; return NSS_STATUS_TRYAGAIN; }
    if (st == NSS_STATUS_NOTFOUND) *errnop = ENOENT;
    return st;
}

enum nss_status _nss_t2fa_getgrnam_r(const char *name, struct group *g,
                                     char *buf, size_t len, int *errnop) {
    (void)name; (void)g; (void)buf; (void)len;
    if (mode_is("group_eio")) { *errnop = EIO; return NSS_STATUS_UNAVAIL; }
    *errnop = ENOENT;
    return NSS_STATUS_NOTFOUND;
}

enum nss_status _nss_t2fa_getgrgid_r(gid_t gid, struct group *g,
                                     char *buf, size_t len, int *errnop) {
    (void)gid;
    return _nss_t2fa_getgrnam_r("", g, buf, len, errnop);
}
"#;

/// What NSS looks like inside the namespace.
struct Nss<'a> {
    passwd: &'a str,
    group: &'a str,
    /// Extra lines appended to a copy of /etc/group, bind-mounted over it.
    extra_groups: Option<String>,
    mode: &'a str,
}

impl Default for Nss<'_> {
    fn default() -> Self {
        Nss {
            passwd: "files t2fa",
            group: "files",
            extra_groups: None,
            mode: "",
        }
    }
}

/// In the outer run: builds the namespace's files, runs the test `name`
/// again inside it, asserts that run passed and returns false. In the inner
/// run: bind-mounts the files and returns true (the caller runs the test).
fn inside(name: &str, nss: Nss) -> bool {
    if std::env::var(INNER).as_deref() == Ok(name) {
        enter_namespace();
        return true;
    }
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test needs root (unshare -m, bind mounts)"
    );
    let dir = Lab::new("t2fa-nss").expect("folder for the NSS files");
    build_module(&dir.dir);
    std::fs::create_dir(dir.dir.join("empty")).unwrap();
    let real = std::fs::read_to_string("/etc/nsswitch.conf").unwrap_or_default();
    let mut conf: Vec<String> = real
        .lines()
        // An initgroups line would take getgrouplist past the group line.
        .filter(|l| {
            !["passwd:", "group:", "initgroups:"]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .map(String::from)
        .collect();
    conf.push(format!("passwd: {}", nss.passwd));
    conf.push(format!("group: {}", nss.group));
    std::fs::write(dir.dir.join("nsswitch.conf"), conf.join("\n") + "\n").unwrap();
    if let Some(extra) = &nss.extra_groups {
        let mut group = std::fs::read_to_string("/etc/group").unwrap();
        if !group.ends_with('\n') {
            group.push('\n');
        }
        group.push_str(extra);
        std::fs::write(dir.dir.join("group"), group).unwrap();
    }
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private"])
        .arg(&exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(INNER, name)
        .env(NSS_DIR, &dir.dir)
        // glibc dlopens "libnss_t2fa.so.2": the path must be known at start.
        .env("LD_LIBRARY_PATH", &dir.dir)
        .env(MODE, nss.mode)
        .env(OUTER_NS, mount_namespace());
    let (ok, out, err) = run_with_deadline(&mut cmd, 120);
    assert!(
        ok && out.contains("1 passed"),
        "inner run of {name} failed:\n{out}\n{err}"
    );
    false
}

fn build_module(dir: &Path) {
    let src = dir.join("nss_t2fa.c");
    std::fs::write(&src, NSS_SOURCE).unwrap();
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-Wall", "-o"])
        .arg(dir.join("libnss_t2fa.so.2"))
        .arg(&src)
        .output()
        .expect("cc");
    assert!(
        out.status.success(),
        "building the NSS module failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Inner run: refuses to go on unless this process has its own mount
/// namespace (a bind mount here must never reach the real /etc), then puts
/// the prepared files over /etc/nsswitch.conf and /etc/group.
fn enter_namespace() {
    let outer = std::env::var(OUTER_NS).expect("the outer run's namespace");
    assert_ne!(
        mount_namespace(),
        outer,
        "not in a private mount namespace: refusing to bind-mount over /etc"
    );
    let dir = PathBuf::from(std::env::var(NSS_DIR).expect("NSS folder"));
    bind_mount(&dir.join("nsswitch.conf"), Path::new("/etc/nsswitch.conf"));
    if dir.join("group").exists() {
        bind_mount(&dir.join("group"), Path::new("/etc/group"));
    }
    // A running nscd would answer from the real databases.
    if Path::new("/var/run/nscd").is_dir() {
        bind_mount(&dir.join("empty"), Path::new("/var/run/nscd"));
    }
}

/// This process's mount namespace, e.g. "mnt:[4026531841]".
fn mount_namespace() -> String {
    let link = std::fs::read_link("/proc/self/ns/mnt").expect("mount namespace link");
    link.to_string_lossy().into_owned()
}

/// The test's own name, for `inside`.
macro_rules! this_test {
    ($f:ident) => {
        stringify!($f)
    };
}

/// Our module, then a stand-in for the rest of the stack that lets people
/// in: a PAM_IGNORE from us is then a way in.
const THEN_PERMIT: &str = "auth required MODULE\nauth required pam_permit.so\n";

fn sent_to(s: &Setup) -> Vec<String> {
    s.sends()
        .iter()
        .map(|r| r.form.get("To").cloned().unwrap_or_default())
        .collect()
}

fn state_file(s: &Setup, user: &str) -> PathBuf {
    s.lab
        .state_dir
        .join(pam_twilio_2fa::state::file_name_for(user.as_bytes()))
}

// --- One account, one key ---------------------------------------------------

#[test]
fn another_capitalisation_logs_in_as_the_account_itself() {
    if !inside(
        this_test!(another_capitalisation_logs_in_as_the_account_itself),
        Nss::default(),
    ) {
        return;
    }
    // Registration on: before the fix, DAEMON had "no number" and was
    // offered registration with the attacker's phone.
    let s = Setup::sms("allow_register = true\nservice_name = \"{user} on {host}\"\n");
    s.lab.set_phone(DAEMON, DAEMON_PHONE).unwrap();
    let r = s.login_as("DAEMON", Some("192.0.2.10"), 0, vec![Answer::Code]);
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(
        r.prompts(),
        vec!["Code sent by text message to (XXX) XXX-0188. Enter code (r: new code): "],
        "daemon's number, no registration"
    );
    assert_eq!(sent_to(&s), vec![DAEMON_PHONE]);
    let friendly = s.sends()[0].form.get("CustomFriendlyName").cloned();
    assert!(
        friendly.as_deref().unwrap_or("").starts_with("daemon on "),
        "{friendly:?}"
    );
    assert!(!s.lab.phones.join("DAEMON").exists(), "no phones/DAEMON");
    assert!(state_file(&s, DAEMON).exists());
    assert!(!state_file(&s, "DAEMON").exists());
    let log = s.log();
    assert!(
        log.contains("event=verification_success user=daemon"),
        "{log}"
    );
    assert!(log.contains("typed_user=DAEMON"), "{log}");
    assert!(!log.contains(" user=DAEMON"), "{log}");
}

#[test]
fn wrong_codes_under_any_capitalisation_share_one_count_and_lockout() {
    if !inside(
        this_test!(wrong_codes_under_any_capitalisation_share_one_count_and_lockout),
        Nss::default(),
    ) {
        return;
    }
    let s = Setup::sms("max_attempts = 3\nmax_attempts_timeout = 600\n");
    s.lab.set_phone(DAEMON, DAEMON_PHONE).unwrap();
    let wrong_twice = vec![Answer::WrongCode, Answer::WrongCode];
    let r = s.login_as("DAEMON", None, 0, wrong_twice);
    assert_ne!(r.rc, PAM_SUCCESS);
    assert_eq!(state_of(&s, DAEMON).attempts, 2, "kept under daemon");
    assert!(!state_file(&s, "DAEMON").exists());
    let r = s.login_as("Daemon", None, 0, vec![Answer::WrongCode]);
    r.assert_rc(PAM_MAXTRIES);
    assert!(!state_file(&s, "Daemon").exists());
    let sends = s.sends().len();
    for name in [DAEMON, "DAEMON", "dAEMON"] {
        let r = s.login_as(name, None, 0, vec![Answer::Code]);
        r.assert_rc(PAM_MAXTRIES);
        assert!(r.prompts().is_empty(), "{name}: {:?}", r.shown);
    }
    assert_eq!(s.sends().len(), sends, "no code while locked out");
    assert_eq!(s.checks().len(), 3);
}

#[test]
fn another_capitalisation_cannot_skip_optional_registration() {
    if !inside(
        this_test!(another_capitalisation_cannot_skip_optional_registration),
        Nss::default(),
    ) {
        return;
    }
    let s = Setup::sms("allow_register = true\nregister_optional = true\n");
    s.stack(THEN_PERMIT);
    s.lab.set_phone(DAEMON, DAEMON_PHONE).unwrap();
    let r = s.login_as("DAEMON", None, 0, vec![text("skip")]);
    assert_ne!(code_name(r.rc), code_name(PAM_SUCCESS), "{:?}", r.shown);
    assert_eq!(
        r.prompts()[0],
        "Code sent by text message to (XXX) XXX-0188. Enter code (r: new code): "
    );
    assert!(!s.log().contains("registration_skipped"));
    assert!(!s.lab.phones.join("DAEMON").exists());
}

#[test]
fn the_command_source_gets_the_account_name_as_percent_u() {
    if !inside(
        this_test!(the_command_source_gets_the_account_name_as_percent_u),
        Nss::default(),
    ) {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let s = Setup::sms("");
    let script = s.lab.dir.join("phone-of");
    std::fs::write(
        &script,
        format!("#!/bin/sh\n[ \"$1\" = daemon ] && echo '{DAEMON_PHONE}'\nexit 0\n"),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    s.rewrite_config(
        &format!(
            "allowed_methods = [\"sms\"]\n[phones]\ncommand = \"{} %u\"\n",
            script.display()
        ),
        |t| t,
    );
    s.login_as("DAEMON", None, 0, vec![Answer::Code])
        .assert_rc(PAM_SUCCESS);
    assert_eq!(sent_to(&s), vec![DAEMON_PHONE]);
}

#[test]
fn user_set_stores_the_number_under_the_account_name() {
    if !inside(
        this_test!(user_set_stores_the_number_under_the_account_name),
        Nss::default(),
    ) {
        return;
    }
    let s = Setup::sms("");
    let (ok, out, err) = s.cli(&["user", "set", "DAEMON", DAEMON_PHONE, "--no-lookup"]);
    assert!(ok, "{out}{err}");
    assert!(out.starts_with("daemon: "), "{out}");
    assert_eq!(
        std::fs::read_to_string(s.lab.phones.join(DAEMON)).unwrap(),
        format!("{DAEMON_PHONE}\n")
    );
    assert!(!s.lab.phones.join("DAEMON").exists());
}

#[test]
fn a_failed_user_lookup_is_auth_err_and_logged() {
    if !inside(
        this_test!(a_failed_user_lookup_is_auth_err_and_logged),
        Nss {
            mode: "passwd_eio",
            ..Nss::default()
        },
    ) {
        return;
    }
    let s = Setup::sms("allow_register = true\n");
    s.lab.set_phone(DAEMON, DAEMON_PHONE).unwrap();
    // The files source still answers for the name as it is spelt there.
    s.login_as(DAEMON, None, 0, vec![Answer::Code])
        .assert_rc(PAM_SUCCESS);
    let r = s.login_as("DAEMON", None, 0, vec![text("(201) 555-0177")]);
    r.assert_rc(PAM_AUTH_ERR);
    assert!(r.prompts().is_empty(), "{:?}", r.shown);
    assert_eq!(s.sends().len(), 1);
    let log = s.log();
    assert!(
        log.contains(
            "level=error msg=\"cannot look up the user: getpwnam_r failed: Input/output error"
        ),
        "{log}"
    );
    assert!(log.contains("typed_user=DAEMON"), "{log}");
}

#[test]
fn an_entry_whose_name_is_empty_or_not_utf8_is_auth_err() {
    if !inside(
        this_test!(an_entry_whose_name_is_empty_or_not_utf8_is_auth_err),
        Nss::default(),
    ) {
        return;
    }
    let s = Setup::sms("allow_register = true\n");
    for name in ["T2FA-EMPTY", "T2FA-BADNAME"] {
        let r = s.login_as(name, None, 0, vec![text("(201) 555-0177")]);
        r.assert_rc(PAM_AUTH_ERR);
        assert!(r.prompts().is_empty(), "{name}: {:?}", r.shown);
    }
    assert!(s.sends().is_empty());
    let log = s.log();
    assert!(log.contains("the entry's name is empty"), "{log}");
    assert!(log.contains("the entry's name is not valid UTF-8"), "{log}");
}

// --- Group lookups fail closed ------------------------------------------------

/// A group of 9000 members, root among them: its /etc/group line (~120 KiB)
/// is far bigger than a 64 KiB lookup buffer.
fn bigteam() -> String {
    let existing = std::fs::read_to_string("/etc/group").unwrap();
    let gid = (40000..60000)
        .find(|g| !existing.contains(&format!(":{g}:")))
        .unwrap();
    let mut members: Vec<String> = (0..8999).map(|i| format!("member{i:07}")).collect();
    members.insert(4500, USER.to_string());
    format!("bigteam:x:{gid}:{}\n", members.join(","))
}

#[test]
fn a_member_of_a_huge_only_group_is_asked_for_a_code() {
    if !inside(
        this_test!(a_member_of_a_huge_only_group_is_asked_for_a_code),
        Nss {
            extra_groups: Some(bigteam()),
            ..Nss::default()
        },
    ) {
        return;
    }
    let s = Setup::sms("only_groups = [\"bigteam\"]\n");
    s.stack(THEN_PERMIT);
    s.lab.set_phone(DAEMON, DAEMON_PHONE).unwrap();
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(sent_to(&s), vec![PHONE], "root is in bigteam: a code");
    // Someone outside the group still skips.
    s.login_as(DAEMON, None, 0, vec![]).assert_rc(PAM_SUCCESS);
    assert!(s.log().contains("reason=not_in_only_groups"));
    // And the big group exempts its members as well.
    s.rewrite_config(
        "allowed_methods = [\"sms\"]\nexempt_groups = [\"bigteam\"]\n",
        |t| t,
    );
    s.login(vec![]).assert_rc(PAM_SUCCESS);
    assert!(s.log().contains("reason=exempt_group:bigteam"));
    assert_eq!(s.sends().len(), 1);
    assert!(!s.log().contains("group lookup failed"));
}

#[test]
fn a_failing_group_source_means_the_user_verifies() {
    if !inside(
        this_test!(a_failing_group_source_means_the_user_verifies),
        Nss {
            group: "files t2fa",
            mode: "group_eio",
            ..Nss::default()
        },
    ) {
        return;
    }
    // ldapteam lives in the source that is down.
    for extra in [
        "only_groups = [\"ldapteam\"]\n",
        "exempt_groups = [\"ldapteam\"]\n",
    ] {
        let s = Setup::sms(extra);
        s.stack(THEN_PERMIT);
        let r = s.login(vec![Answer::Code]);
        r.assert_rc(PAM_SUCCESS);
        assert_eq!(sent_to(&s), vec![PHONE], "{extra}");
        let log = s.log();
        assert!(
            log.contains("level=warning msg=\"group lookup failed: group ldapteam: getgrnam_r failed: Input/output error"),
            "{extra}: {log}"
        );
        assert!(!log.contains("verification_skipped"), "{extra}: {log}");
    }
}

#[test]
fn check_config_warns_about_groups_that_do_not_resolve() {
    let s =
        Setup::sms("only_groups = [\"root\", \"t2fa-nogroup\"]\nexempt_groups = [\"daemon\"]\n");
    let (ok, out, err) = twilio_2fa(&["check-config", s.lab.config.to_str().unwrap()]);
    assert!(ok, "{err}");
    let warnings: Vec<&str> = out.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(
        warnings,
        vec!["warning: only_groups: group \"t2fa-nogroup\": no such group; while it does not resolve, every user must verify"],
        "{out}"
    );
}
