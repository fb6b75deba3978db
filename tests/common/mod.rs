//! Shared harness: a simulator, a private PAM service folder, and a scripted
//! conversation driving the real libpam with the freshly built module.
#![allow(dead_code)]

pub mod sshd;

use pam_twilio_2fa::lab::{find_module, Lab};
use pam_twilio_2fa::pam_client::{code_name, Style, Transaction, PAM_ESTABLISH_CRED};
use pam_twilio_2fa::simulator::{Received, SimConfig, Simulator};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub const SERVICE: &str = "t2fa-test";
/// A test user every Debian/Ubuntu system has, with a number on file.
pub const USER: &str = "root";
pub const PHONE: &str = "+12015552671";

/// One answer to one prompt.
#[derive(Debug, Clone)]
pub enum Answer {
    Text(String),
    /// The latest code the simulator delivered.
    Code,
    /// The latest code typed as "123 456".
    CodeSpaced,
    /// The latest code typed as "12-34-56".
    CodeDashed,
    /// The latest code, but only if this file does not exist yet (else hang
    /// up): proves nothing was stored before the code was entered.
    CodeIfAbsent(PathBuf),
    /// A well-formed code that is not the latest one.
    WrongCode,
    /// Wait, then give the inner answer.
    After(Duration, Box<Answer>),
    /// Run this program (argv) to its end first, then give the inner
    /// answer: something changes while the login waits for the user.
    AfterCommand(Vec<String>, Box<Answer>),
    /// The latest code the simulator delivered to this E.164 number (for
    /// logins running at once).
    CodeTo(String),
}

pub fn text(s: &str) -> Answer {
    Answer::Text(s.to_string())
}

pub struct Setup {
    pub sim: Simulator,
    pub lab: Lab,
    pub module: PathBuf,
}

#[derive(Debug)]
pub struct LoginResult {
    pub rc: i32,
    /// Every message the module sent, in order.
    pub shown: Vec<(Style, String)>,
    pub elapsed: Duration,
}

impl LoginResult {
    pub fn errors(&self) -> Vec<String> {
        self.of(Style::Error)
    }
    pub fn prompts(&self) -> Vec<String> {
        self.shown
            .iter()
            .filter(|(s, _)| matches!(s, Style::EchoOff | Style::EchoOn))
            .map(|(_, t)| t.clone())
            .collect()
    }
    pub fn of(&self, style: Style) -> Vec<String> {
        self.shown
            .iter()
            .filter(|(s, _)| *s == style)
            .map(|(_, t)| t.clone())
            .collect()
    }
    #[track_caller]
    pub fn assert_rc(&self, want: i32) {
        assert_eq!(
            code_name(self.rc),
            code_name(want),
            "rc {} (want {want}); conversation: {:#?}",
            self.rc,
            self.shown
        );
    }
}

pub fn module_path() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    find_module(&exe).expect("libpam_twilio_2fa.so not built next to the test binary")
}

impl Setup {
    /// Simulator, config (with `extra` keys) and a phone for USER.
    pub fn new(extra: &str) -> Setup {
        Setup::with_simulator(SimConfig::default(), extra)
    }

    /// Like `with_simulator`, and the simulator also appends each code to
    /// an outbox file, for a login in a child process to read
    /// (tests/reexec). The outbox's folder lives as long as the `Lab`.
    pub fn with_outbox(sim_config: SimConfig, extra: &str) -> (Setup, Lab, PathBuf) {
        let dir = Lab::new("t2fa-outbox").expect("lab");
        let outbox = dir.dir.join("outbox");
        let sim = SimConfig {
            outbox: Some(outbox.clone()),
            ..sim_config
        };
        (Setup::with_simulator(sim, extra), dir, outbox)
    }

    /// Like `new`, with a simulator configured by the test.
    pub fn with_simulator(sim_config: SimConfig, extra: &str) -> Setup {
        let sim = Simulator::start("127.0.0.1:0", sim_config).expect("simulator");
        let lab = Lab::new("t2fa-test").expect("lab");
        let module = module_path();
        lab.write_config(&sim, &with_test_defaults(extra))
            .expect("config");
        lab.set_phone(USER, PHONE).expect("phone");
        lab.write_service(SERVICE, &module, "")
            .expect("service file");
        Setup { sim, lab, module }
    }

    /// SMS only: the code is sent at once, no menu.
    pub fn sms(extra: &str) -> Setup {
        Setup::new(&format!("allowed_methods = [\"sms\"]\n{extra}"))
    }

    pub fn login(&self, answers: Vec<Answer>) -> LoginResult {
        self.login_as(USER, Some("192.0.2.10"), 0, answers)
    }

    pub fn login_as(
        &self,
        user: &str,
        rhost: Option<&str>,
        flags: i32,
        answers: Vec<Answer>,
    ) -> LoginResult {
        self.login_full(user, rhost, None, flags, answers)
    }

    pub fn login_full(
        &self,
        user: &str,
        rhost: Option<&str>,
        tty: Option<&str>,
        flags: i32,
        answers: Vec<Answer>,
    ) -> LoginResult {
        self.login_service(SERVICE, user, rhost, tty, flags, answers)
    }

    /// `login_full` through the PAM service `service` (its file must be in
    /// the lab's confdir, e.g. from `lab.write_service`).
    pub fn login_service(
        &self,
        service: &str,
        user: &str,
        rhost: Option<&str>,
        tty: Option<&str>,
        flags: i32,
        answers: Vec<Answer>,
    ) -> LoginResult {
        let mut queue: VecDeque<Answer> = answers.into();
        let mut shown = Vec::new();
        let rc;
        let started = Instant::now();
        {
            let shown_ref = &mut shown;
            let sim = &self.sim;
            let responder = Box::new(move |style: Style, text: &str| -> Option<String> {
                shown_ref.push((style, text.to_string()));
                if !matches!(style, Style::EchoOff | Style::EchoOn) {
                    return Some(String::new());
                }
                resolve(queue.pop_front()?, sim)
            });
            let mut tx = Transaction::start(service, user, Some(&self.lab.confdir), responder)
                .expect("pam_start_confdir");
            if let Some(r) = rhost {
                tx.set_rhost(r).expect("rhost");
            }
            if let Some(t) = tty {
                tx.set_tty(t).expect("tty");
            }
            rc = tx.authenticate(flags);
        }
        LoginResult {
            rc,
            shown,
            elapsed: started.elapsed(),
        }
    }

    /// Runs pam_setcred for `user` through the stack.
    pub fn setcred(&self, user: &str) -> i32 {
        let responder = Box::new(|_: Style, _: &str| -> Option<String> { None });
        let mut tx = Transaction::start(SERVICE, user, Some(&self.lab.confdir), responder)
            .expect("pam_start_confdir");
        tx.setcred(PAM_ESTABLISH_CRED)
    }

    /// API requests the simulator got at `path_suffix` (e.g. "/VerificationCheck").
    pub fn requests_to(&self, path_suffix: &str) -> Vec<Received> {
        self.sim
            .received()
            .into_iter()
            .filter(|r| r.path.ends_with(path_suffix))
            .collect()
    }

    pub fn sends(&self) -> Vec<Received> {
        self.sim
            .received()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/Verifications"))
            .collect()
    }

    pub fn checks(&self) -> Vec<Received> {
        self.requests_to("/VerificationCheck")
    }

    /// Writes a config made from the usual one (with `extra`) by `f`.
    pub fn rewrite_config(&self, extra: &str, f: impl FnOnce(String) -> String) {
        let text = f(self.lab.config_text(&self.sim, &with_test_defaults(extra)));
        self.lab
            .write_private(&self.lab.config, &text)
            .expect("config");
    }
}

/// Tests of other features assert the code prompt as it is without the
/// "c: change number" choice that `allow_change` (on by default) adds;
/// tests of it set the key themselves.
fn with_test_defaults(extra: &str) -> String {
    if extra.contains("allow_change") {
        extra.to_string()
    } else {
        format!("allow_change = false\n{extra}")
    }
}

fn resolve(a: Answer, sim: &Simulator) -> Option<String> {
    match a {
        Answer::Text(t) => Some(t),
        Answer::Code => latest(sim),
        Answer::CodeIfAbsent(p) if p.exists() => None,
        Answer::CodeIfAbsent(_) => latest(sim),
        Answer::CodeSpaced => latest(sim).map(|c| format!("{} {}", &c[..3], &c[3..])),
        Answer::CodeDashed => latest(sim).map(|c| format!("{}-{}-{}", &c[..2], &c[2..4], &c[4..])),
        Answer::WrongCode => {
            let right = sim
                .deliveries()
                .last()
                .map(|d| d.code.clone())
                .unwrap_or_default();
            Some(
                if right == "000000" {
                    "111111"
                } else {
                    "000000"
                }
                .to_string(),
            )
        }
        Answer::After(d, inner) => {
            std::thread::sleep(d);
            resolve(*inner, sim)
        }
        Answer::AfterCommand(argv, inner) => {
            // Runs inside the conversation callback: report, never panic;
            // the test checks the command's effect.
            match std::process::Command::new(&argv[0])
                .args(&argv[1..])
                .output()
            {
                Ok(out) if out.status.success() => {}
                Ok(out) => eprintln!("{argv:?} failed: {}", String::from_utf8_lossy(&out.stderr)),
                Err(e) => eprintln!("{argv:?}: {e}"),
            }
            resolve(*inner, sim)
        }
        Answer::CodeTo(to) => sim
            .deliveries()
            .iter()
            .rev()
            .find(|d| d.to == to)
            .map(|d| d.code.clone()),
    }
}

fn latest(sim: &Simulator) -> Option<String> {
    sim.deliveries().last().map(|d| d.code.clone())
}

/// A service file under /etc/pam.d for this setup, removed when dropped.
pub struct EtcService {
    pub name: String,
    path: PathBuf,
}

impl EtcService {
    pub fn new(s: &Setup, tag: &str) -> EtcService {
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "this test writes /etc/pam.d: run it as root"
        );
        let name = format!("t2fa-{tag}-{}", std::process::id());
        let path = PathBuf::from("/etc/pam.d").join(&name);
        std::fs::write(
            &path,
            format!(
                "auth required {} config={}\n",
                s.module.display(),
                s.lab.config.display()
            ),
        )
        .unwrap();
        EtcService { name, path }
    }
}

impl Drop for EtcService {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The user's state file in the setup's state directory, parsed.
pub fn state_of(s: &Setup, user: &str) -> pam_twilio_2fa::state::UserState {
    let path = s
        .lab
        .state_dir
        .join(pam_twilio_2fa::state::file_name_for(user.as_bytes()));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()))
}

/// The `twilio-2fa` command built with these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_twilio-2fa");

/// Runs `twilio-2fa ARGS`: (success, stdout, stderr).
pub fn twilio_2fa(args: &[&str]) -> (bool, String, String) {
    outcome(std::process::Command::new(BIN).args(args).output().unwrap())
}

/// A finished command as (success, stdout, stderr).
pub fn outcome(out: std::process::Output) -> (bool, String, String) {
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl Setup {
    /// Runs `twilio-2fa ARGS --config <this setup's config>`.
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let config = self.lab.config.to_str().unwrap();
        twilio_2fa(&[args, &["--config", config]].concat())
    }
}

impl Setup {
    /// Writes the test service as `text`, where `MODULE` stands for this
    /// module with its config argument.
    pub fn stack(&self, text: &str) {
        let module = format!(
            "{} config={}",
            self.module.display(),
            self.lab.config.display()
        );
        std::fs::write(
            self.lab.confdir.join(SERVICE),
            text.replace("MODULE", &module),
        )
        .unwrap();
    }

    /// Everything the module logged, for assertions on what it must never log.
    pub fn log(&self) -> String {
        self.lab.events()
    }
}

/// A throw-away local user with a password, removed (with its home) when dropped.
pub struct TestUser {
    pub name: String,
    pub password: String,
}

impl TestUser {
    pub fn new(tag: &str) -> TestUser {
        assert_eq!(unsafe { libc::geteuid() }, 0, "creating users needs root");
        let name = format!("t2fa{tag}{}", std::process::id());
        let password = "T2fa-test-pass-1".to_string();
        let _ = std::process::Command::new("userdel")
            .args(["-r", &name])
            .output();
        let ok = std::process::Command::new("useradd")
            .args(["-m", "-s", "/bin/sh", &name])
            .status()
            .unwrap()
            .success();
        assert!(ok, "useradd {name}");
        let mut chpasswd = std::process::Command::new("chpasswd")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        writeln!(chpasswd.stdin.take().unwrap(), "{name}:{password}").unwrap();
        assert!(chpasswd.wait().unwrap().success());
        TestUser { name, password }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-u", &self.name])
            .output();
        let _ = std::process::Command::new("userdel")
            .args(["-r", &self.name])
            .output();
    }
}

/// A file under /etc/pam.d (or anywhere) removed when dropped.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn write(path: impl Into<PathBuf>, text: &str) -> TempFile {
        let path = path.into();
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs a command with a deadline; returns (exit success, stdout, stderr).
pub fn run_with_deadline(cmd: &mut std::process::Command, secs: u64) -> (bool, String, String) {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("command did not finish within {secs} s: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    outcome(child.wait_with_output().unwrap())
}

/// Bind-mounts `from` onto `onto` (for tests that run in a private mount
/// namespace of their own; see tests/reexec).
pub fn bind_mount(from: &std::path::Path, onto: &std::path::Path) {
    let c = |p: &std::path::Path| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let (from_c, onto_c) = (c(from), c(onto));
    let rc = unsafe {
        libc::mount(
            from_c.as_ptr(),
            onto_c.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    assert_eq!(
        rc,
        0,
        "bind {} onto {}: {}",
        from.display(),
        onto.display(),
        std::io::Error::last_os_error()
    );
}

/// In the child's private mount namespace: /dev/log becomes `socket`. With no
/// /dev/log to mount over, /dev becomes a tmpfs holding the few devices a
/// login needs, bound from the real /dev, and the socket.
pub fn use_as_dev_log(socket: &std::path::Path, scratch: &std::path::Path) {
    let dev_log = std::path::Path::new("/dev/log");
    if dev_log.symlink_metadata().is_ok() {
        bind_mount(socket, dev_log);
        return;
    }
    let real = scratch.join("realdev");
    std::fs::create_dir(&real).unwrap();
    bind_mount(std::path::Path::new("/dev"), &real);
    let (tmpfs, dev, mode) = (
        std::ffi::CString::new("tmpfs").unwrap(),
        std::ffi::CString::new("/dev").unwrap(),
        std::ffi::CString::new("mode=755").unwrap(),
    );
    let rc = unsafe {
        libc::mount(
            tmpfs.as_ptr(),
            dev.as_ptr(),
            tmpfs.as_ptr(),
            libc::MS_NOSUID,
            mode.as_ptr().cast(),
        )
    };
    assert_eq!(rc, 0, "tmpfs on /dev: {}", std::io::Error::last_os_error());
    for name in ["null", "zero", "random", "urandom"] {
        let path = std::path::Path::new("/dev").join(name);
        std::fs::File::create(&path).unwrap();
        bind_mount(&real.join(name), &path);
    }
    std::fs::File::create(dev_log).unwrap();
    bind_mount(socket, dev_log);
}
