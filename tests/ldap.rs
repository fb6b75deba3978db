//! `twilio-2fa ldap-phone` as `[phones] command`, against a real OpenLDAP
//! `slapd` started here (packages slapd and ldap-utils): a small directory
//! on free loopback ports, TLS from a throwaway CA (src/pki.rs), logins
//! through the real libpam. Nothing outside the test's own folder changes,
//! except in the one test that puts the CA into the system store (undone
//! when it ends) and the test whose hostile user names live in a private
//! mount namespace. Needs root, as CI has.

mod common;

use common::*;
use pam_twilio_2fa::lab::Lab;
use pam_twilio_2fa::pam_client::*;
use pam_twilio_2fa::pki::Ca;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BASE: &str = "dc=example,dc=org";
const READER: &str = "cn=phone-reader,dc=example,dc=org";
const READER_PASSWORD: &str = "Rdr-pw-7f3a9c";

/// Users of this system (every Debian has them) with entries below.
const WITH_MOBILE: &str = "daemon";
const MOBILE: &str = "+12015550101";
const WITHOUT_NUMBER: &str = "bin";
/// `sys` has an unusable `mobile`, then a `telephoneNumber` that ends in a
/// space (so ldapsearch prints it base64): "+1 201 555 0104 ".
const DESK_ONLY: &str = "sys";
const DESK: &str = "+1 201 555 0104";
const DESK_E164: &str = "+12015550104";
/// Names that need escaping (accounts only inside the namespace test).
const HOSTILE: &str = "o*b(r)";
const HOSTILE_MOBILE: &str = "+12015550105";
/// `ev*` has no entry; unescaped, its filter would match `eve`'s.
const STAR: &str = "ev*";
const DECOY_MOBILE: &str = "+12015550106";

fn ldif() -> String {
    let person = |uid: &str, extra: &str| {
        format!(
            "dn: uid={uid},ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n{extra}\n"
        )
    };
    [
        format!("dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n"),
        format!("dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people\n"),
        format!("dn: {READER}\nobjectClass: person\ncn: phone-reader\nsn: reader\nuserPassword: {READER_PASSWORD}\n"),
        person(WITH_MOBILE, &format!("mobile: {MOBILE}\ntelephoneNumber: +12015550199\n")),
        person(WITHOUT_NUMBER, "telephoneNumber: n/a\n"),
        person(DESK_ONLY, "mobile: none\ntelephoneNumber:: KzEgMjAxIDU1NSAwMTA0IA==\n"),
        person(HOSTILE, &format!("mobile: {HOSTILE_MOBILE}\n")),
        person("eve", &format!("mobile: {DECOY_MOBILE}\n")),
        // What the hostile name would match with `*` unescaped.
        person("oXb(r)", "mobile: +12015550107\n"),
    ]
    .join("\n")
}

/// A port nobody listens on (at the moment).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private slapd on loopback: StartTLS on `ldap_port`, TLS on
/// `ldaps_port` (unless started without TLS). Killed when dropped.
struct Slapd {
    child: Child,
    lab: Lab,
    ca: Ca,
    ldap_port: u16,
    ldaps_port: u16,
}

impl Slapd {
    fn start(tls: bool) -> Slapd {
        assert_eq!(unsafe { libc::geteuid() }, 0, "these tests need root");
        let lab = Lab::new("t2fa-ldap").expect("folder");
        let d = &lab.dir;
        let ca = Ca::new("t2fa LDAP test CA").unwrap();
        let leaf = ca.leaf(&["127.0.0.1"]).unwrap();
        lab.write_private(&d.join("server.pem"), &leaf.cert_pem)
            .unwrap();
        lab.write_private(&d.join("server.key"), &leaf.key_pem)
            .unwrap();
        std::fs::write(d.join("ca.pem"), &ca.cert_pem).unwrap();
        std::fs::create_dir(d.join("db")).unwrap();
        let tls_lines = if tls {
            format!(
                "TLSCertificateFile {0}/server.pem\nTLSCertificateKeyFile {0}/server.key\n",
                d.display()
            )
        } else {
            String::new()
        };
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             pidfile {0}/slapd.pid\n\
             argsfile {0}/slapd.args\n\
             {tls_lines}\
             database mdb\n\
             suffix \"{BASE}\"\n\
             directory {0}/db\n\
             maxsize 10485760\n\
             access to attrs=userPassword by anonymous auth by * none\n\
             access to * by dn.exact=\"{READER}\" read by * none\n",
            d.display()
        );
        std::fs::write(d.join("slapd.conf"), conf).unwrap();
        std::fs::write(d.join("data.ldif"), ldif()).unwrap();
        let out = Command::new("slapadd")
            .arg("-f")
            .arg(d.join("slapd.conf"))
            .arg("-l")
            .arg(d.join("data.ldif"))
            .output()
            .expect("slapadd (package slapd)");
        assert!(
            out.status.success(),
            "slapadd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (ldap_port, ldaps_port) = (free_port(), free_port());
        let mut listen = format!("ldap://127.0.0.1:{ldap_port}/");
        if tls {
            listen.push_str(&format!(" ldaps://127.0.0.1:{ldaps_port}/"));
        }
        let log = std::fs::File::create(d.join("slapd.log")).unwrap();
        // -d: stay in the foreground (our child, killed on drop).
        let child = Command::new("slapd")
            .arg("-f")
            .arg(d.join("slapd.conf"))
            .args(["-h", &listen, "-d", "0"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("slapd (package slapd)");
        let slapd = Slapd {
            child,
            lab,
            ca,
            ldap_port,
            ldaps_port,
        };
        let ports = if tls {
            vec![ldap_port, ldaps_port]
        } else {
            vec![ldap_port]
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        for port in ports {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "slapd did not listen on {port}: {}",
                    std::fs::read_to_string(slapd.lab.dir.join("slapd.log")).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        slapd
    }

    fn ldaps(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.ldaps_port)
    }

    fn starttls(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.ldap_port)
    }

    fn ca_file(&self) -> PathBuf {
        self.lab.dir.join("ca.pem")
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server that accepts connections and never says a word.
struct Silent {
    port: u16,
    _stop: std::sync::mpsc::Sender<()>,
}

impl Silent {
    fn start() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            // Until the test drops its sender.
            while let Err(std::sync::mpsc::TryRecvError::Empty) = stopped.try_recv() {
                if let Ok((c, _)) = listener.accept() {
                    held.push(c);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Silent { port, _stop: stop }
    }
}

/// The helper's files in `dir`: its config (0600) and the bind password
/// file (0600, with the newline `echo` leaves).
struct Helper {
    config: PathBuf,
    program: PathBuf,
}

impl Helper {
    /// `keys` go into ldap.toml after uri/base/bind settings.
    fn new(lab: &Lab, uri: &str, keys: &str) -> Helper {
        let password_file = lab.dir.join("ldap.secret");
        lab.write_private(&password_file, &format!("{READER_PASSWORD}\n"))
            .unwrap();
        let config = lab.dir.join("ldap.toml");
        let text = format!(
            "uri = \"{uri}\"\nbase = \"{BASE}\"\nbind_dn = \"{READER}\"\nbind_password_file = \"{}\"\nattributes = [\"mobile\", \"telephoneNumber\"]\ntimeout = 2\n{keys}\n",
            password_file.display()
        );
        lab.write_private(&config, &text).unwrap();
        Helper {
            config,
            program: program_in(lab),
        }
    }

    /// A helper for `uri` on `ldap` that trusts the server's throwaway CA.
    fn trusting(ldap: &Slapd, uri: &str) -> Helper {
        let ca = format!("tls_ca_file = \"{}\"", ldap.ca_file().display());
        Helper::new(&ldap.lab, uri, &ca)
    }

    /// Runs `twilio-2fa ldap-phone USER --config ...` as the module would
    /// (plus `env` from a caller): (success, stdout, stderr).
    fn run(&self, user: &str, env: &[(&str, &str)]) -> (bool, String, String) {
        let mut cmd = Command::new(&self.program);
        cmd.args(["ldap-phone", user, "--config"])
            .arg(&self.config)
            .envs(env.iter().copied());
        run_with_deadline(&mut cmd, 30)
    }

    /// Makes `s`'s only phone source this helper.
    fn use_in(&self, s: &Setup, command_timeout: u64) {
        s.rewrite_config(
            &format!(
                "allowed_methods = [\"sms\"]\n[phones]\ncommand = \"{} ldap-phone %u --config {}\"\ncommand_timeout = {command_timeout}\n",
                self.program.display(),
                self.config.display()
            ),
            |t| t,
        );
    }
}

/// The twilio-2fa built with these tests, where the command source accepts
/// it: the build's own path if it is root's all the way up, else a copy in
/// the lab's folder.
fn program_in(lab: &Lab) -> PathBuf {
    let built = PathBuf::from(BIN);
    if pam_twilio_2fa::secure_file::check_program(&built).is_ok() {
        return built;
    }
    let copy = lab.dir.join("twilio-2fa");
    if !copy.exists() {
        std::fs::copy(&built, &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    copy
}

fn sent_to(s: &Setup) -> Vec<String> {
    s.sends()
        .iter()
        .map(|r| r.form.get("To").cloned().unwrap_or_default())
        .collect()
}

/// A login by `user` whose code is sent to `number`.
#[track_caller]
fn assert_login_reaches(s: &Setup, user: &str, number: &str) {
    let r = s.login_as(
        user,
        Some("192.0.2.10"),
        0,
        vec![Answer::CodeTo(number.into())],
    );
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(sent_to(s), vec![number.to_string()], "{}", s.log());
}

/// A login by `user` that the directory gives no number: the module's
/// no-number path (deny, nothing sent).
#[track_caller]
fn assert_no_number(s: &Setup, user: &str) {
    let r = s.login_as(user, Some("192.0.2.10"), 0, vec![Answer::Code]);
    r.assert_rc(PAM_AUTH_ERR);
    assert!(s.sends().is_empty(), "sent to {:?}", sent_to(s));
    assert!(
        s.log().contains("no_phone_number"),
        "no no-number event: {}",
        s.log()
    );
}

/// A login whose lookup fails: an outage (`PAM_SERVICE_ERR`), nothing sent.
#[track_caller]
fn assert_source_fails(s: &Setup, user: &str) -> LoginResult {
    let r = s.login_as(user, Some("192.0.2.10"), 0, vec![Answer::Code]);
    r.assert_rc(PAM_SERVICE_ERR);
    assert!(s.sends().is_empty(), "sent to {:?}", sent_to(s));
    assert!(s.log().contains("phones.command"), "{}", s.log());
    r
}

// --- Numbers from the directory through the real libpam ---------------------

#[test]
fn a_login_gets_the_number_from_ldaps() {
    let ldap = Slapd::start(true);
    let helper = Helper::trusting(&ldap, &ldap.ldaps());
    let s = Setup::sms("");
    helper.use_in(&s, 10);
    assert_login_reaches(&s, WITH_MOBILE, MOBILE);
}

#[test]
fn a_login_gets_the_number_over_starttls() {
    let ldap = Slapd::start(true);
    let helper = Helper::trusting(&ldap, &ldap.starttls());
    let s = Setup::sms("");
    helper.use_in(&s, 10);
    assert_login_reaches(&s, WITH_MOBILE, MOBILE);
}

#[test]
fn the_first_usable_attribute_value_is_the_number() {
    let ldap = Slapd::start(true);
    let helper = Helper::trusting(&ldap, &ldap.ldaps());
    // `mobile: none` is passed over; telephoneNumber came base64-encoded.
    let (ok, out, err) = helper.run(DESK_ONLY, &[]);
    assert!(ok, "{err}");
    assert_eq!(out, format!("{DESK}\n"));
    let s = Setup::sms("");
    helper.use_in(&s, 10);
    assert_login_reaches(&s, DESK_ONLY, DESK_E164);
}

#[test]
fn a_user_without_a_number_or_without_an_entry_gets_the_no_number_path() {
    let ldap = Slapd::start(true);
    // Only `mobile`: bin's entry has none.
    let helper = Helper::trusting(&ldap, &ldap.ldaps());
    let text = std::fs::read_to_string(&helper.config).unwrap().replace(
        "attributes = [\"mobile\", \"telephoneNumber\"]",
        "attributes = [\"mobile\"]",
    );
    ldap.lab.write_private(&helper.config, &text).unwrap();
    let (ok, out, err) = helper.run(WITHOUT_NUMBER, &[]);
    assert!(ok && out.is_empty(), "{out} {err}");
    let s = Setup::sms("");
    helper.use_in(&s, 10);
    assert_no_number(&s, WITHOUT_NUMBER);
    // No entry at all (`lp` is a system user the directory does not know).
    assert_no_number(&s, "lp");
}

#[test]
fn server_down_is_a_source_failure() {
    let lab = Lab::new("t2fa-ldap").unwrap();
    let helper = Helper::new(&lab, &format!("ldaps://127.0.0.1:{}", free_port()), "");
    let (ok, _, err) = helper.run(WITH_MOBILE, &[]);
    assert!(!ok && err.contains("Can't contact LDAP server"), "{err}");
    let s = Setup::sms("");
    helper.use_in(&s, 10);
    assert_source_fails(&s, WITH_MOBILE);
}

#[test]
fn a_server_that_never_answers_is_a_source_failure_within_the_helpers_timeout() {
    let silent = Silent::start();
    let lab = Lab::new("t2fa-ldap").unwrap();
    // timeout = 2 (Helper::new); the module would wait 20. Over ldaps://
    // only the helper's kill ends the TLS handshake's wait; StartTLS may
    // also end by libldap's own timeout (the same 2 s), whichever is first.
    for (uri, ends) in [
        (
            format!("ldaps://127.0.0.1:{}", silent.port),
            &["no answer from"][..],
        ),
        (
            format!("ldap://127.0.0.1:{}", silent.port),
            &["no answer from", "Timed out"][..],
        ),
    ] {
        let helper = Helper::new(&lab, &uri, "");
        let started = Instant::now();
        let (ok, _, err) = helper.run(WITH_MOBILE, &[]);
        assert!(!ok && ends.iter().any(|e| err.contains(e)), "{uri}: {err}");
        assert!(started.elapsed() < Duration::from_secs(15), "{uri}: {err}");
        let s = Setup::sms("");
        helper.use_in(&s, 20);
        let r = assert_source_fails(&s, WITH_MOBILE);
        assert!(
            r.elapsed < Duration::from_secs(15),
            "{uri}: the helper's own deadline did not end it: {:?}",
            r.elapsed
        );
    }
    // ldapsearch never outlives the helper's deadline.
    let left = running_ldapsearch(silent.port);
    assert!(left.is_empty(), "left running: {left:?}");
}

/// Command lines of the ldapsearch processes that name `port`.
fn ldapsearch_command_lines(port: u16) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let cmdline = std::fs::read(e.ok()?.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (cmdline.contains("ldapsearch") && cmdline.contains(&format!(":{port}")))
                .then_some(cmdline)
        })
        .collect()
}

/// ldapsearch processes that name `port`, still there after 5 s.
fn running_ldapsearch(port: u16) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found = ldapsearch_command_lines(port);
        if found.is_empty() || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_bind_password_is_on_no_command_line() {
    let silent = Silent::start();
    let lab = Lab::new("t2fa-ldap").unwrap();
    let helper = Helper::new(&lab, &format!("ldaps://127.0.0.1:{}", silent.port), "");
    let mut child = Command::new(&helper.program)
        .args(["ldap-phone", WITH_MOBILE, "--config"])
        .arg(&helper.config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // ldapsearch waits on the silent server for the helper's 2 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while seen.is_empty() && Instant::now() < deadline {
        seen = ldapsearch_command_lines(silent.port);
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.wait();
    assert!(!seen.is_empty(), "ldapsearch was never seen running");
    for line in seen {
        assert!(line.contains("-y /dev/fd/"), "{line}");
        assert!(!line.contains(READER_PASSWORD), "{line}");
    }
}

#[test]
fn a_wrong_bind_password_fails_without_showing_the_password() {
    let ldap = Slapd::start(true);
    let helper = Helper::trusting(&ldap, &ldap.ldaps());
    let wrong = "Wrong-pw-51c2e0";
    ldap.lab
        .write_private(&ldap.lab.dir.join("ldap.secret"), wrong)
        .unwrap();
    let (ok, out, err) = helper.run(WITH_MOBILE, &[]);
    assert!(!ok && out.is_empty(), "{out}");
    assert!(err.contains("Invalid credentials"), "{err}");
    assert!(!err.contains(wrong), "{err}");
    let s = Setup::sms("");
    helper.use_in(&s, 10);
    assert_source_fails(&s, WITH_MOBILE);
    assert!(!s.log().contains(wrong), "{}", s.log());
}

#[test]
fn a_filter_that_matches_several_entries_is_an_error() {
    let ldap = Slapd::start(true);
    let helper = Helper::new(
        &ldap.lab,
        &ldap.ldaps(),
        &format!(
            "tls_ca_file = \"{}\"\nfilter = \"(|(uid={{user}})(uid=eve))\"",
            ldap.ca_file().display()
        ),
    );
    let (ok, out, err) = helper.run(WITH_MOBILE, &[]);
    assert!(!ok && out.is_empty(), "{out}");
    assert!(err.contains("exactly one"), "{err}");
    // Three or more: the server's size limit (2) speaks.
    let text = std::fs::read_to_string(&helper.config)
        .unwrap()
        .replace("(uid=eve)", "(objectClass=inetOrgPerson)");
    ldap.lab.write_private(&helper.config, &text).unwrap();
    let (ok, _, err) = helper.run(WITH_MOBILE, &[]);
    assert!(!ok && err.contains("more than one entry"), "{err}");
}

// --- TLS -----------------------------------------------------------------------

#[test]
fn tls_is_required_and_the_callers_environment_cannot_weaken_it() {
    let ldap = Slapd::start(true);
    // The test CA is in neither the system store nor ldap.toml.
    let rogue_conf = ldap.lab.dir.join("rogue-ldap.conf");
    std::fs::write(&rogue_conf, "TLS_REQCERT never\n").unwrap();
    let ca = ldap.ca_file();
    let rogue: Vec<(&str, &str)> = vec![
        ("LDAPTLS_REQCERT", "never"),
        ("LDAPTLS_CACERT", ca.to_str().unwrap()),
        ("LDAPCONF", rogue_conf.to_str().unwrap()),
        ("LDAPRC", "rogue-ldap.conf"),
        ("HOME", ldap.lab.dir.to_str().unwrap()),
    ];
    for uri in [ldap.ldaps(), ldap.starttls()] {
        let helper = Helper::new(&ldap.lab, &uri, "");
        let (ok, out, err) = helper.run(WITH_MOBILE, &rogue);
        assert!(
            !ok && out.is_empty(),
            "{uri}: untrusted server answered: {out}"
        );
        assert!(err.contains("ldapsearch failed"), "{uri}: {err}");
    }
    // A server without TLS: StartTLS is required, never skipped.
    let plain = Slapd::start(false);
    let helper = Helper::trusting(&plain, &plain.starttls());
    let (ok, out, err) = helper.run(WITH_MOBILE, &[]);
    assert!(!ok && out.is_empty(), "plain LDAP answered: {out}");
    assert!(
        err.contains("start_tls") || err.contains("StartTLS"),
        "{err}"
    );
    let s = Setup::sms("");
    helper.use_in(&s, 10);
    assert_source_fails(&s, WITH_MOBILE);
}

/// Where update-ca-certificates takes local CAs from, and the bundle it
/// writes (the one Debian's /etc/ldap/ldap.conf names as TLS_CACERT).
const LOCAL_CAS: &str = "/usr/local/share/ca-certificates";
const BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The test CA in the system store while this lives.
struct StoreCa(PathBuf);

impl StoreCa {
    fn add(pem: &str) -> StoreCa {
        let file = Path::new(LOCAL_CAS).join(format!("t2fa-ldap-test-{}.crt", std::process::id()));
        std::fs::create_dir_all(LOCAL_CAS).unwrap();
        let guard = StoreCa(file);
        std::fs::write(&guard.0, pem).unwrap();
        update_store(&[]);
        let body = pem.lines().nth(1).unwrap();
        assert!(std::fs::read_to_string(BUNDLE).unwrap().contains(body));
        guard
    }
}

impl Drop for StoreCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        update_store(&["--fresh"]);
    }
}

fn update_store(args: &[&str]) {
    let out = Command::new("update-ca-certificates")
        .args(args)
        .output()
        .expect("update-ca-certificates");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_system_ca_store_is_trusted_by_default() {
    let ldap = Slapd::start(true);
    let helper = Helper::new(&ldap.lab, &ldap.ldaps(), "");
    let (ok, _, err) = helper.run(WITH_MOBILE, &[]);
    assert!(!ok, "trusted a CA outside the system store");
    assert!(err.contains("Can't contact LDAP server"), "{err}");
    let _store = StoreCa::add(&ldap.ca.cert_pem);
    let (ok, out, err) = helper.run(WITH_MOBILE, &[]);
    assert!(ok, "{err}");
    assert_eq!(out, format!("{MOBILE}\n"));
}

// --- User names that need escaping ------------------------------------------

/// Set in the inner run of the namespace test.
const INNER: &str = "T2FA_LDAP_INNER";
const PASSWD: &str = "T2FA_LDAP_PASSWD";
const OUTER_NS: &str = "T2FA_LDAP_OUTER_NS";

fn mount_namespace() -> String {
    std::fs::read_link("/proc/self/ns/mnt")
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Accounts named `o*b(r)` and `ev*` exist only in a private mount
/// namespace, where a copy of /etc/passwd with them is bind-mounted.
#[test]
fn names_that_need_escaping_find_their_own_entry_and_no_other() {
    if std::env::var(INNER).is_err() {
        assert_eq!(unsafe { libc::geteuid() }, 0, "needs root (unshare -m)");
        let dir = Lab::new("t2fa-ldap-ns").unwrap();
        let mut passwd = std::fs::read_to_string("/etc/passwd").unwrap();
        if !passwd.ends_with('\n') {
            passwd.push('\n');
        }
        for name in [HOSTILE, STAR] {
            passwd.push_str(&format!(
                "{name}:x:65530:65534::/nonexistent:/usr/sbin/nologin\n"
            ));
        }
        let file = dir.dir.join("passwd");
        std::fs::write(&file, passwd).unwrap();
        let exe = std::env::current_exe().unwrap();
        let name = "names_that_need_escaping_find_their_own_entry_and_no_other";
        let mut cmd = Command::new("unshare");
        cmd.args(["-m", "--propagation", "private"])
            .arg(&exe)
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env(INNER, "1")
            .env(PASSWD, &file)
            .env(OUTER_NS, mount_namespace());
        let (ok, out, err) = run_with_deadline(&mut cmd, 120);
        assert!(
            ok && out.contains("1 passed"),
            "inner run failed:\n{out}\n{err}"
        );
        return;
    }
    assert_ne!(
        mount_namespace(),
        std::env::var(OUTER_NS).unwrap(),
        "not in a private mount namespace: refusing to bind-mount over /etc/passwd"
    );
    bind_mount(
        Path::new(&std::env::var(PASSWD).unwrap()),
        Path::new("/etc/passwd"),
    );
    if Path::new("/var/run/nscd").is_dir() {
        let empty = Lab::new("t2fa-ldap-nscd").unwrap();
        bind_mount(&empty.dir, Path::new("/var/run/nscd"));
        std::mem::forget(empty);
    }

    let ldap = Slapd::start(true);
    let helper = Helper::trusting(&ldap, &ldap.ldaps());
    let s = Setup::sms("");
    helper.use_in(&s, 10);
    // Unescaped, "(uid=ev*)" would find eve and send her the code.
    assert_no_number(&s, STAR);
    assert!(!sent_to(&s).contains(&DECOY_MOBILE.to_string()));

    let (ok, out, err) = helper.run(HOSTILE, &[]);
    assert!(ok, "{err}");
    assert_eq!(out, format!("{HOSTILE_MOBILE}\n"));
    let s = Setup::sms("");
    helper.use_in(&s, 10);
    assert_login_reaches(&s, HOSTILE, HOSTILE_MOBILE);
}
