//! PAM run without root, as a screen locker runs it (xscreensaver, swaylock,
//! i3lock, kscreenlocker): pamtester as an ordinary user, against a service
//! file under /etc/pam.d whose stack is pam_unix (or pam_permit) and the
//! module, with the root-only config. The `unprivileged=` argument decides;
//! a root-run pamtester for the same user still asks for the code. Needs
//! root (useradd, /etc/pam.d, a mount namespace for /dev/log).

mod common;

use common::*;
use pam_twilio_2fa::pam_client::{
    code_name, Style, Transaction, PAM_AUTH_ERR, PAM_SERVICE_ERR, PAM_SUCCESS,
};
use pam_twilio_2fa::users::{SystemUsers, UserDb};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// ---- the child: pamtester as the user, with our socket as /dev/log ---------

const SOCKET: &str = "T2FA_UNPRIV_SOCKET";
const SCRATCH: &str = "T2FA_UNPRIV_SCRATCH";
const UID: &str = "T2FA_UNPRIV_UID";
const GID: &str = "T2FA_UNPRIV_GID";
const SERVICE_VAR: &str = "T2FA_UNPRIV_SERVICE";
const PAM_USER: &str = "T2FA_UNPRIV_PAM_USER";
const INPUT: &str = "T2FA_UNPRIV_INPUT";
/// If set: no pamtester; the child logs in itself with this saved uid.
const SAVED_UID: &str = "T2FA_UNPRIV_SAVED_UID";
const CONFDIR: &str = "T2FA_UNPRIV_CONFDIR";

/// Not a test of its own: the child side of the tests below (a no-op unless
/// a test re-executed this binary to run it). It runs in a private mount
/// namespace as root, puts the test's socket on /dev/log, then runs
/// pamtester as the ordinary user (or, with `SAVED_UID`, a login of its
/// own) and prints its result.
#[test]
#[ignore = "the child process of the tests in this file"]
fn child_login_as_the_user() {
    let Some(socket) = std::env::var_os(SOCKET) else {
        return;
    };
    let var = |k| std::env::var(k).expect(k);
    use_as_dev_log(Path::new(&socket), Path::new(&var(SCRATCH)));
    if let Ok(saved) = std::env::var(SAVED_UID) {
        return login_in_process(&var, saved.parse().unwrap());
    }
    let mut child = Command::new("setpriv")
        .args([
            &format!("--reuid={}", var(UID)),
            &format!("--regid={}", var(GID)),
            "--init-groups",
            "pamtester",
            "-v",
            &var(SERVICE_VAR),
            &var(PAM_USER),
            "authenticate",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv and pamtester are installed by .ci/setup");
    writeln!(child.stdin.take().unwrap(), "{}", var(INPUT)).unwrap();
    let out = child.wait_with_output().unwrap();
    println!("CHILD_OK={}", out.status.success());
    println!(
        "CHILD_OUT={}",
        String::from_utf8_lossy(&out.stdout).replace('\n', " ")
    );
    println!(
        "CHILD_ERR={}",
        String::from_utf8_lossy(&out.stderr).replace('\n', " ")
    );
}

/// The login in this process, after `setresuid(uid, uid, saved)`: with
/// saved uid 0 this is a root program that lowered its effective uid for a
/// while (it could act as root on the answer).
fn login_in_process(var: &dyn Fn(&'static str) -> String, saved: u32) {
    let uid: u32 = var(UID).parse().unwrap();
    assert_eq!(unsafe { libc::setresuid(uid, uid, saved) }, 0, "setresuid");
    let responder = Box::new(|_: Style, _: &str| -> Option<String> { Some(String::new()) });
    let confdir = PathBuf::from(var(CONFDIR));
    let mut tx = Transaction::start(&var(SERVICE_VAR), &var(PAM_USER), Some(&confdir), responder)
        .expect("pam_start_confdir");
    let rc = tx.authenticate(0);
    drop(tx);
    println!("CHILD_OK={}", rc == PAM_SUCCESS);
    println!("CHILD_OUT={}", code_name(rc));
    println!("CHILD_ERR=");
}

/// What pamtester, run as an ordinary user, and the module's syslog said.
#[derive(Debug)]
struct UserRun {
    ok: bool,
    out: String,
    err: String,
    /// The module's syslog messages (after `pam_twilio_2fa[PID]: `).
    syslog: Vec<String>,
}

/// Runs pamtester as `runner` for PAM user `pam_user`, typing `input` at
/// the first prompt.
fn as_user(s: &Setup, service: &str, runner: &TestUser, pam_user: &str, input: &str) -> UserRun {
    child_run(s, service, runner, pam_user, input, &[])
}

/// Runs the child as root in its own mount namespace, with `extra`
/// variables, and collects what it printed and what the module logged.
fn child_run(
    s: &Setup,
    service: &str,
    runner: &TestUser,
    pam_user: &str,
    input: &str,
    extra: &[(&str, String)],
) -> UserRun {
    let account = SystemUsers
        .lookup(&runner.name)
        .unwrap()
        .expect("the test user exists");
    let scratch = s.lab.dir.join(format!("scratch-{}", service_tag()));
    std::fs::create_dir(&scratch).unwrap();
    let socket = scratch.join("log");
    let daemon = UnixDatagram::bind(&socket).expect("bind syslog socket");
    // The user must be able to send to it, as to the real /dev/log.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let exe = std::env::current_exe().unwrap();
    let (_, stdout, stderr) = run_with_deadline(
        Command::new("unshare")
            .args(["-m", "--propagation", "private"])
            .arg(&exe)
            .args([
                "--exact",
                "child_login_as_the_user",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(SOCKET, &socket)
            .env(SCRATCH, &scratch)
            .env(UID, account.uid.to_string())
            .env(GID, account.gid.to_string())
            .env(SERVICE_VAR, service)
            .env(PAM_USER, pam_user)
            .env(INPUT, input)
            .envs(extra.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null()),
        60,
    );
    let field = |k: &str| {
        stdout
            .lines()
            .find_map(|l| l.split_once(&format!("{k}=")).map(|(_, v)| v.to_string()))
            .unwrap_or_else(|| panic!("no {k} from the child:\n{stdout}\n{stderr}"))
    };
    // The child has ended: all its datagrams are queued.
    daemon
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut syslog = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = daemon.recv(&mut buf) {
        let line = String::from_utf8_lossy(&buf[..n]).into_owned();
        if let Some((header, message)) = line.split_once("]: ") {
            if header.contains("pam_twilio_2fa[") {
                syslog.push(message.to_string());
            }
        }
    }
    UserRun {
        ok: field("CHILD_OK") == "true",
        out: field("CHILD_OUT"),
        err: field("CHILD_ERR"),
        syslog,
    }
}

fn service_tag() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

// ---- the parent ---------------------------------------------------------------

/// The module, copied where an ordinary user may load it (the checkout may
/// sit in a directory only root can enter); removed when dropped.
struct SharedModule {
    dir: PathBuf,
    path: PathBuf,
}

impl SharedModule {
    fn new(module: &Path) -> SharedModule {
        let dir = std::env::temp_dir().join(format!("t2fa-unpriv-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.join("pam_twilio_2fa.so");
        std::fs::copy(module, &path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        // A PAM service folder the user can read, for logins in the child.
        let confdir = dir.join("pam.d");
        std::fs::create_dir(&confdir).unwrap();
        std::fs::set_permissions(&confdir, std::fs::Permissions::from_mode(0o755)).unwrap();
        SharedModule { dir, path }
    }
}

impl Drop for SharedModule {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A service file /etc/pam.d/t2fa-unpriv-PID-N: `first` (the first factor),
/// then the module with `args`. Removed when dropped.
fn etc_service(s: &Setup, module: &SharedModule, first: &str, args: &str) -> (String, TempFile) {
    let name = format!("t2fa-unpriv-{}", service_tag());
    let text = format!(
        "auth requisite {first}\nauth required {} config={} {args}\n",
        module.path.display(),
        s.lab.config.display()
    );
    let file = TempFile::write(Path::new("/etc/pam.d").join(&name), &text);
    (name, file)
}

/// pamtester as root for `user`: the password, then the code it was sent.
fn as_root(s: &Setup, service: &str, user: &str, password: &str) -> (bool, String, String) {
    let mut child = Command::new("pamtester")
        .args(["-v", service, user, "authenticate"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pamtester is installed by .ci/setup");
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{password}").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.sim.deliveries().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(d) = s.sim.deliveries().last() {
        writeln!(stdin, "{}", d.code).unwrap();
    }
    drop(stdin);
    outcome(child.wait_with_output().unwrap())
}

fn needs_root() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test adds a user and writes /etc/pam.d: run it as root"
    );
}

#[test]
fn a_screen_locker_run_by_the_user_follows_the_unprivileged_argument() {
    needs_root();
    let s = Setup::sms("");
    let user = TestUser::new("lock");
    s.lab.set_phone(&user.name, PHONE).unwrap();
    let module = SharedModule::new(&s.module);

    // unprivileged=ignore (what the pam-auth-update profile sets): the
    // password alone unlocks, nothing is sent, one line says so.
    let (ignore, _f1) = etc_service(&s, &module, "pam_unix.so", "unprivileged=ignore");
    let run = as_user(&s, &ignore, &user, &user.name, &user.password);
    assert!(run.ok, "{run:#?}");
    assert!(run.out.contains("successfully authenticated"), "{run:#?}");
    assert_eq!(run.syslog.len(), 1, "{run:#?}");
    let line = &run.syslog[0];
    assert!(line.contains("event=unprivileged_ignored"), "{line}");
    assert!(line.contains(&format!("user={}", user.name)), "{line}");
    assert!(line.contains(&format!("service={ignore}")), "{line}");
    let uid = SystemUsers.lookup(&user.name).unwrap().unwrap().uid;
    assert!(line.contains(&format!("uid={uid}")), "{line}");
    assert!(s.sim.received().is_empty(), "nothing may be sent");

    // The password still decides: a wrong one is refused before the module.
    let run = as_user(&s, &ignore, &user, &user.name, "not-the-password");
    assert!(!run.ok, "{run:#?}");
    assert!(run.err.contains("Authentication failure"), "{run:#?}");

    // The default, and unprivileged=deny: denied (PAM_AUTH_ERR), with a
    // line naming the service, the uid and the reason.
    let (default, _f2) = etc_service(&s, &module, "pam_unix.so", "");
    let (deny, _f3) = etc_service(&s, &module, "pam_unix.so", "unprivileged=deny");
    for service in [&default, &deny] {
        let run = as_user(&s, service, &user, &user.name, &user.password);
        assert!(!run.ok, "{run:#?}");
        assert!(run.err.contains("Authentication failure"), "{run:#?}");
        assert!(
            run.out.contains("not set up correctly") || run.err.contains("not set up correctly"),
            "the user is told to contact the administrator: {run:#?}"
        );
        assert_eq!(run.syslog.len(), 1, "{run:#?}");
        let line = &run.syslog[0];
        assert!(line.contains("event=unprivileged_denied"), "{line}");
        assert!(line.contains(&format!("service={service}")), "{line}");
        assert!(line.contains(&format!("uid={uid}")), "{line}");
        assert!(line.contains("reason=deny_configured"), "{line}");
    }
    assert!(s.sim.received().is_empty(), "nothing may be sent");

    // Another account is never ignored, whatever the first factor lets in
    // (pam_sss or pam_ldap check anyone's password for anyone; pam_permit
    // stands in for them here).
    let (permit, _f4) = etc_service(&s, &module, "pam_permit.so", "unprivileged=ignore");
    let run = as_user(&s, &permit, &user, "root", "");
    assert!(!run.ok, "{run:#?}");
    assert!(run.err.contains("Authentication failure"), "{run:#?}");
    assert_eq!(run.syslog.len(), 1, "{run:#?}");
    assert!(run.syslog[0].contains("reason=not_own_account"), "{run:#?}");

    // As root (sshd, su, sudo, GDM's unlock worker) the same stack asks for
    // the code (the argument never matters with effective uid 0: see the
    // unit tests in src/unprivileged.rs).
    let (ok, out, err) = as_root(&s, &ignore, &user.name, &user.password);
    assert!(ok, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("Enter code"), "{err}");
    assert_eq!(s.sim.deliveries().len(), 1);
    assert!(s
        .lab
        .events()
        .contains(&format!("event=verification_success user={}", user.name)));
}

#[test]
fn the_pam_auth_update_profile_lets_lock_screens_unlock_with_the_password() {
    // The profile puts the module in common-auth, which lock screens run as
    // the user: it must say `unprivileged=ignore` (packaging/test-packages
    // checks the line pam-auth-update writes).
    let profile = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/pam-configs/twilio-2fa"),
    )
    .unwrap();
    let (_, auth) = profile.split_once("\nAuth:\n").expect("an Auth: field");
    let line = auth.lines().next().unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        words,
        ["required", "pam_twilio_2fa.so", "unprivileged=ignore"],
        "{profile}"
    );
}

#[test]
fn a_root_program_that_lowered_its_effective_uid_is_never_ignored() {
    needs_root();
    let s = Setup::sms("");
    let user = TestUser::new("lower");
    let module = SharedModule::new(&s.module);
    let confdir = module.dir.join("pam.d");
    std::fs::write(
        confdir.join("t2fa-lowered"),
        format!(
            "auth required pam_permit.so\nauth required {} config={} unprivileged=ignore\n",
            module.path.display(),
            s.lab.config.display()
        ),
    )
    .unwrap();
    let uid = SystemUsers.lookup(&user.name).unwrap().unwrap().uid;
    let login = |saved: u32| {
        child_run(
            &s,
            "t2fa-lowered",
            &user,
            &user.name,
            "",
            &[
                (SAVED_UID, saved.to_string()),
                (CONFDIR, confdir.display().to_string()),
            ],
        )
    };
    // Saved uid 0: the program can become root again and act on the
    // answer, so it is denied even for its user's own account.
    let run = login(0);
    assert_eq!(run.out.trim(), code_name(PAM_AUTH_ERR), "{run:#?}");
    assert_eq!(run.syslog.len(), 1, "{run:#?}");
    assert!(run.syslog[0].contains("reason=mixed_uids"), "{run:#?}");
    // All three uids the user's: ignored, pam_permit decides.
    let run = login(uid);
    assert_eq!(run.out.trim(), code_name(PAM_SUCCESS), "{run:#?}");
    assert!(
        run.syslog[0].contains("event=unprivileged_ignored"),
        "{run:#?}"
    );
    assert!(s.sim.received().is_empty());
}

#[test]
fn a_bad_unprivileged_value_is_a_service_error_and_root_logins_are_unchanged() {
    needs_root();
    // Through pam_start_confdir as root (no /etc, no user): a typo in the
    // value is refused like any unknown argument...
    let s = Setup::sms("");
    s.lab
        .write_service(SERVICE, &s.module, "unprivileged=allow")
        .unwrap();
    s.login(vec![Answer::Code]).assert_rc(PAM_SERVICE_ERR);
    assert!(s.sim.received().is_empty());
    // ...and with effective uid 0 either value asks for the code.
    for mode in ["deny", "ignore"] {
        let s = Setup::sms("");
        s.lab
            .write_service(SERVICE, &s.module, &format!("unprivileged={mode}"))
            .unwrap();
        let r = s.login(vec![Answer::Code]);
        r.assert_rc(PAM_SUCCESS);
        assert_eq!(s.sim.deliveries().len(), 1, "{mode}");
    }
}
