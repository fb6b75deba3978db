//! The `twilio-2fa` command as an admin or a newcomer runs it.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn demo_runs_a_real_login_as_a_person_would() {
    let mut child = Command::new(BIN)
        .arg("demo")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The menu comes first: choose the text message.
    writeln!(stdin, "1").unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    let code = loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "demo ended early:\n{seen}"
        );
        seen.push_str(&line);
        if let Some(i) = line.find("verification code is: ") {
            break line[i + 22..].trim().to_string();
        }
    };
    assert!(seen.contains("Choose how to receive your code:"), "{seen}");
    assert!(seen.contains("Text message"), "{seen}");
    writeln!(stdin, "{code}").unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{seen}{rest}");
    assert!(
        rest.contains(
            "Code sent by text message to (XXX) XXX-2671. Enter code (r: new code, m: other method, c: change number): "
        ),
        "{rest}"
    );
    assert!(rest.contains("PAM returned PAM_SUCCESS"), "{rest}");
    assert!(rest.contains("event=verification_success"), "{rest}");
    assert!(
        !rest.contains(&code),
        "the code must not appear in the module's log lines:\n{rest}"
    );
}

#[test]
fn demo_with_a_wrong_code_is_refused() {
    let mut child = Command::new(BIN)
        .arg("demo")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        // Menu, then five wrong codes; the simulator's codes are random, so
        // "0000" (4 digits) can never be right.
        writeln!(stdin, "sms\n0000\n0000\n0000\n0000\n0000").unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let out = child.wait_with_output().unwrap();
    assert!(Instant::now() < deadline);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("PAM returned PAM_MAXTRIES"), "{text}");
}

#[test]
fn check_config_summarises_a_good_file_without_secrets() {
    let s = Setup::sms("");
    let (ok, out, err) = twilio_2fa(&["check-config", s.lab.config.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains(": OK"), "{out}");
    assert!(out.contains("allowed_methods  sms (text message)"), "{out}");
    assert!(!out.contains("simulator-auth-token"), "{out}");
}

#[test]
fn check_config_names_the_bad_key_and_fails() {
    let s = Setup::sms("");
    s.rewrite_config("max_attempts = \"five\"\n", |t| t);
    let (ok, _, err) = twilio_2fa(&["check-config", s.lab.config.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("max_attempts: invalid type"), "{err}");

    let (ok, _, err) = twilio_2fa(&["check-config", "/nonexistent/config.toml"]);
    assert!(!ok);
    assert!(err.contains("/nonexistent/config.toml"), "{err}");
}

#[test]
fn unknown_command_fails_with_usage() {
    let (ok, _, err) = twilio_2fa(&["frobnicate"]);
    assert!(!ok);
    assert!(err.contains("Usage:"), "{err}");
}

#[test]
fn simulator_command_refuses_non_loopback() {
    let (ok, _, err) = twilio_2fa(&["simulator", "--listen", "0.0.0.0:0"]);
    assert!(!ok);
    assert!(err.contains("loopback"), "{err}");
}

/// The README once suggested trusting ::1/128: every connection relayed
/// through the host (ssh -J, -L) then skips the second factor.
#[test]
fn check_config_warns_about_a_trusted_loopback_network() {
    let s = Setup::sms("trusted_networks = [\"10.0.0.0/8\", \"::1/128\"]\n");
    let (ok, out, err) = twilio_2fa(&["check-config", s.lab.config.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        out.contains("trusted_networks: ::1/128 holds a loopback address"),
        "{out}"
    );
    assert!(!out.contains("10.0.0.0/8 holds"), "{out}");
    // And the module does skip such a login: the warning is not idle talk.
    // (PAM_IGNORE from the only module of the test stack reads as PAM_PERM_DENIED.)
    let r = s.login_as(USER, Some("::1"), 0, vec![]);
    assert!(r.prompts().is_empty() && s.sends().is_empty(), "{r:?}");
    let events = s.lab.events();
    assert!(
        events.contains("event=verification_skipped") && events.contains("trusted_network:::1/128"),
        "{events}"
    );
}

/// Runs `twilio-2fa ARGS` with raw arguments: (exit code, stdout, stderr).
fn run_raw<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

type Surface = std::collections::BTreeMap<Vec<String>, std::collections::BTreeSet<String>>;

/// The names under a `--help` heading ("Commands:", "Options:"): the first
/// word of each entry, up to the blank line that ends the section.
fn help_section(help: &str, heading: &str) -> Vec<String> {
    let mut entries = Vec::new();
    let mut inside = false;
    for line in help.lines() {
        if line == heading {
            inside = true;
        } else if inside && line.trim().is_empty() {
            break;
        } else if inside {
            // "  status  desc" or "  -h, --help  desc" or "      --config <PATH>  desc".
            let spec = line.trim_start().split("  ").next().unwrap_or("");
            entries.push(spec.to_string());
        }
    }
    entries
}

fn long_options(spec: &[String]) -> Vec<String> {
    spec.iter()
        .flat_map(|s| s.split([' ', ',']))
        .filter(|w| w.starts_with("--"))
        .map(String::from)
        .collect()
}

/// Every command `--help` lists, with the long options its `--help` shows
/// (`--help` itself only at the top, with `--version`). Also checks that
/// `--help` succeeds everywhere and `help COMMAND` says the same.
fn help_surface(path: &mut Vec<String>, out: &mut Surface) {
    let (code, help, err) = run_raw(&[&path[..], &["--help".to_string()]].concat());
    assert_eq!(code, 0, "{path:?} --help: {err}");
    assert!(
        help.contains(format!("Usage: twilio-2fa {}", path.join(" ")).trim_end()),
        "{path:?}: {help}"
    );
    if !path.is_empty() {
        let (code, via_help, _) = run_raw(&[&["help".to_string()], &path[..]].concat());
        assert_eq!((code, &via_help), (0, &help), "help {path:?}");
    }
    let mut longs: std::collections::BTreeSet<String> =
        long_options(&help_section(&help, "Options:"))
            .into_iter()
            .collect();
    if !path.is_empty() {
        assert!(longs.remove("--help"), "{path:?}: no --help");
    }
    let commands = help_section(&help, "Commands:");
    if commands.is_empty() || path.is_empty() {
        out.insert(path.clone(), longs);
    }
    for c in commands {
        if c == "help" {
            if path.is_empty() {
                out.insert(vec!["help".into()], Default::default());
            }
            continue;
        }
        path.push(c);
        help_surface(path, out);
        path.pop();
    }
}

/// The manual page's SYNOPSIS as the same map, and the names of its COMMANDS entries.
fn man_surface() -> (Surface, Vec<String>) {
    let man = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/man/twilio-2fa.8"),
    )
    .unwrap();
    let plain = |line: &str| -> Vec<String> {
        let line = line.replace("\\-", "-").replace('"', " ");
        line.split_whitespace().skip(1).map(String::from).collect()
    };
    let section = |name: &str| -> Vec<&str> {
        man.lines()
            .skip_while(|l| *l != format!(".SH {name}"))
            .skip(1)
            .take_while(|l| !l.starts_with(".SH "))
            .collect()
    };
    let mut surface = Surface::new();
    let synopsis = section("SYNOPSIS").join("\n");
    for entry in synopsis.split(".br") {
        let words: Vec<String> = entry.lines().flat_map(plain).collect();
        assert_eq!(
            words.first().map(String::as_str),
            Some("twilio-2fa"),
            "{entry}"
        );
        let path: Vec<String> = words[1..]
            .iter()
            .take_while(|w| {
                w.chars().all(|c| c.is_ascii_lowercase() || c == '-') && !w.starts_with('-')
            })
            .cloned()
            .collect();
        let longs = words
            .iter()
            .filter(|w| w.starts_with("--"))
            .cloned()
            .collect();
        assert!(
            surface.insert(path.clone(), longs).is_none(),
            "{path:?} twice"
        );
    }
    let commands = section("COMMANDS")
        .iter()
        .filter_map(|l| l.strip_prefix(".B "))
        .map(|l| l.replace("\\-", "-"))
        .collect();
    (surface, commands)
}

/// twilio-2fa(8) and `--help` name the same commands and long options: a
/// command or option added to one and not the other fails here.
#[test]
fn the_manual_page_and_help_list_the_same_commands_and_options() {
    let mut from_help = Surface::new();
    help_surface(&mut Vec::new(), &mut from_help);
    let (from_man, described) = man_surface();
    assert_eq!(
        from_help, from_man,
        "left: what --help shows; right: twilio-2fa(8) SYNOPSIS"
    );
    for path in from_man.keys().filter(|p| !p.is_empty()) {
        let name = path.join(" ");
        assert!(
            described.contains(&name),
            "twilio-2fa(8) COMMANDS has no entry for {name}"
        );
    }
    // A sanity check of the parsing itself.
    assert!(from_help[&vec!["user".to_string(), "set".to_string()]].contains("--no-lookup"));
    assert!(from_help.len() > 15, "{from_help:?}");
}

#[test]
fn version_and_help_succeed_on_stdout() {
    let (code, out, _) = run_raw(&["--version"]);
    assert_eq!(
        (code, out.trim()),
        (
            0,
            format!("twilio-2fa {}", env!("CARGO_PKG_VERSION")).as_str()
        )
    );
    let (code, out, _) = run_raw(&["help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Commands:") && out.contains("check-config"),
        "{out}"
    );
}

/// 2 for a command line it cannot read (with the usage), 1 when the
/// command itself failed, 0 on success: scripts can tell them apart.
#[test]
fn usage_errors_exit_2_and_failed_commands_exit_1() {
    for args in [
        &["frobnicate"][..],
        &[],
        &["status"],
        &["status", "root", "--frobnicate"],
        &["status", "", "--config", "/nonexistent"],
        &["check-config", "a", "b"],
        &["user", "sett", "root", "+12015550123"],
        &[
            "simulator",
            "--listen",
            "127.0.0.1:0",
            "--tls",
            "--tls-cert",
            "x",
        ],
        &["completions", "tcsh"],
        &["ldap-phone"],
    ] {
        let (code, out, err) = run_raw(args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(
            err.contains("Usage: twilio-2fa") || err.contains("try '--help'"),
            "{args:?}: {err}"
        );
    }
    // A typo gets a suggestion.
    let (_, _, err) = run_raw(&["unlokc", "root"]);
    assert!(err.contains("unlock"), "{err}");

    let (code, _, err) = run_raw(&["check-config", "/nonexistent/config.toml"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.starts_with("twilio-2fa: "), "{err}");
    let (code, _, err) = run_raw(&["simulator", "--listen", "0.0.0.0:0"]);
    assert_eq!(code, 1, "{err}");
}

/// clap echoes what was typed in its errors; typed text may hold escape
/// sequences (a pasted name, a hostile script): they never reach the terminal.
#[test]
fn usage_errors_cannot_drive_the_terminal() {
    for args in [
        &["frob\x1b]0;owned\x07nicate"][..],
        &["status", "root", "--x\x1b[2J"],
        &["completions", "\x1b[31mbash"],
        &["user", "show", "root", "--ful\x1b[2Jl"],
    ] {
        let (code, out, err) = run_raw(args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(
            !err.contains('\x1b') && !err.contains('\x07'),
            "{args:?}: {err:?}"
        );
        assert!(
            err.contains("[2J") || err.contains("owned") || err.contains("[31m"),
            "{err:?}"
        );
    }
}

/// A user named like an option is a name after `--`, in the admin commands
/// and in ldap-phone (which the module never calls with such a name: it
/// refuses names starting with '-').
#[test]
fn user_names_like_options_are_names_after_double_dash() {
    let s = Setup::sms("");
    let config = s.lab.config.to_str().unwrap();
    for name in ["-h", "--config", "--help", "-V"] {
        let (code, out, err) = run_raw(&["unlock", "--config", config, "--", name]);
        assert_eq!(code, 0, "{name}: {err}");
        assert!(
            out.starts_with(&format!("{name}: attempts cleared")),
            "{out}"
        );
        let (code, out, err) = run_raw(&["status", "--config", config, "--", name]);
        assert_eq!(code, 0, "{name}: {err}");
        assert!(
            out.starts_with(&format!("user           {name}\n")),
            "{out}"
        );
        // ldap-phone takes it as the user too: the failure names it.
        let (code, out, err) = run_raw(&[
            "ldap-phone",
            "--config",
            "/nonexistent/ldap.toml",
            "--",
            name,
        ]);
        assert_eq!((code, out.as_str()), (1, ""), "{err}");
        assert!(err.contains(&format!("ldap-phone {name}: ")), "{err}");
    }
    // Without `--`, -h is help, not a user: nothing is changed.
    let (code, out, _) = run_raw(&["unlock", "-h"]);
    assert_eq!(code, 0);
    assert!(out.contains("Usage: twilio-2fa unlock"), "{out}");
}

/// Non-UTF-8 user names still reach the state commands as bytes.
#[test]
fn user_names_may_be_any_bytes() {
    use std::os::unix::ffi::OsStrExt;
    let s = Setup::sms("");
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9");
    let out = Command::new(BIN)
        .arg("status")
        .arg(name)
        .args(["--config", s.lab.config.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("user           caf\u{fffd}\n"), "{text}");
}

/// The completion scripts load, and bash completes the commands.
#[test]
fn completions_for_bash_zsh_and_fish() {
    let (code, zsh, _) = run_raw(&["completions", "zsh"]);
    assert_eq!(code, 0);
    assert!(zsh.starts_with("#compdef twilio-2fa"), "{zsh}");
    let (code, fish, _) = run_raw(&["completions", "fish"]);
    assert_eq!(code, 0);
    assert!(
        fish.contains("complete -c twilio-2fa") && fish.contains("rate-limits"),
        "{fish}"
    );

    let lab = pam_twilio_2fa::lab::Lab::new("t2fa-completions").unwrap();
    let script = lab.dir.join("twilio-2fa");
    let (code, bash, _) = run_raw(&["completions", "bash"]);
    assert_eq!(code, 0);
    std::fs::write(&script, bash).unwrap();
    let complete = |line: &str| -> String {
        let words: Vec<&str> = line.split(' ').collect();
        let program = format!(
            "source {} && complete -p twilio-2fa >/dev/null && \
             COMP_WORDS=({line}) COMP_CWORD={} COMP_LINE='{line}' COMP_POINT={} && \
             $(complete -p twilio-2fa | sed -n 's/.*-F \\([^ ]*\\).*/\\1/p') twilio-2fa '{}' '{}' && \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display(),
            words.len() - 1,
            line.len(),
            words[words.len() - 1],
            words[words.len() - 2],
        );
        let out = Command::new("bash")
            .args(["-c", &program])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(complete("twilio-2fa rate-").trim(), "rate-limits");
    let opts = complete("twilio-2fa user show root --");
    assert!(opts.lines().any(|l| l == "--full"), "{opts}");
    assert!(opts.lines().any(|l| l == "--config"), "{opts}");
}
