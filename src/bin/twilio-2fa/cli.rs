//! The command line: every command, option and argument in one place, for
//! clap (parsing, `--help`, usage errors) and clap_complete (completions).
//! packaging/man/twilio-2fa.8 lists the same commands and options
//! (tests/cli.rs compares them).

use clap::builder::{OsStringValueParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use pam_twilio_2fa::config::DEFAULT_PATH;
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "twilio-2fa",
    version,
    about = "Administer pam_twilio_2fa: configuration, users' numbers and state, simulator",
    after_help = "A user name that starts with '-' goes after `--`, options before it:\n  \
                  twilio-2fa unlock --config PATH -- -name\n\
                  `twilio-2fa help COMMAND` or `twilio-2fa COMMAND --help` describes a command;\n\
                  twilio-2fa(8) has the details."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check the configuration as the module would (exit 1 and the error, or a summary)
    CheckConfig {
        /// The configuration file
        #[arg(value_name = "PATH", default_value = DEFAULT_PATH)]
        path: PathBuf,
    },
    /// USER's attempts used, lockout, last send and remembered hosts
    Status(UserArgs),
    /// Clear USER's attempts and lockout (also replaces a damaged state file)
    Unlock(UserArgs),
    /// Drop USER's remembered hosts
    Forget(UserArgs),
    /// The settings USER logs in with ([[policy]] blocks) and their source
    Policy(UserArgs),
    /// Users' numbers in the phone directory
    #[command(subcommand)]
    User(UserCommand),
    /// Print USER's number from LDAP, for [phones] command (see docs/ldap.md)
    LdapPhone(LdapPhoneArgs),
    /// The Verify service's rate limits and buckets ([rate_limits])
    #[command(subcommand)]
    RateLimits(RateLimitsCommand),
    /// Every message id [messages] may override: placeholders and texts
    Messages(MessagesArgs),
    /// Run the built-in Twilio Verify simulator (loopback only)
    Simulator(SimulatorArgs),
    /// A real PAM login against the simulator, on this terminal
    Demo(DemoArgs),
    /// Print a completion script for SHELL (the packages install them)
    Completions {
        #[arg(value_enum, value_name = "SHELL")]
        shell: Shell,
    },
}

/// A user name: any bytes but none; `--` before one that starts with '-'.
fn user_name() -> impl TypedValueParser<Value = OsString> {
    OsStringValueParser::new().try_map(|s| {
        if s.is_empty() {
            Err("a user name cannot be empty")
        } else {
            Ok(s)
        }
    })
}

#[derive(Args, Debug)]
pub struct ConfigArg {
    /// The module's configuration file
    #[arg(long = "config", value_name = "PATH", default_value = DEFAULT_PATH)]
    pub path: PathBuf,
}

#[derive(Args, Debug)]
pub struct UserArgs {
    /// The user name (any bytes)
    #[arg(value_name = "USER", value_parser = user_name())]
    pub user: OsString,
    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Validate (country, carrier lookup) and store USER's number
    Set {
        /// The user name
        #[arg(value_name = "USER", value_parser = user_name())]
        user: OsString,
        /// The number, in international (+...) or national form
        #[arg(value_name = "NUMBER")]
        number: String,
        /// Skip the carrier (line type) lookup through Twilio Lookup
        #[arg(long)]
        no_lookup: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// USER's number (masked unless --full) and its source
    Show {
        /// The user name
        #[arg(value_name = "USER", value_parser = user_name())]
        user: OsString,
        /// Show the whole number
        #[arg(long)]
        full: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Remove USER's number from the phone directory
    Remove {
        /// The user name
        #[arg(value_name = "USER", value_parser = user_name())]
        user: OsString,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Every user with a number (masked)
    List {
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Args, Debug)]
pub struct LdapPhoneArgs {
    /// The user name, as the module passes it for %u
    #[arg(value_name = "USER", value_parser = user_name())]
    pub user: OsString,
    /// The LDAP configuration file
    #[arg(long, value_name = "PATH", default_value = pam_twilio_2fa::ldap::config::DEFAULT_PATH)]
    pub config: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum RateLimitsCommand {
    /// Create, update or delete rate limits and buckets to match [rate_limits] (idempotent)
    Apply(ConfigArg),
    /// The rate limits and buckets Twilio has
    Show(ConfigArg),
}

#[derive(Args, Debug)]
pub struct MessagesArgs {
    /// Also show this language's texts (en, de, es, fr, pt_BR)
    #[arg(long, value_name = "LANG")]
    pub language: Option<String>,
    /// Show this configuration's texts, its overrides marked
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct SimulatorArgs {
    /// Where to listen (a loopback address), e.g. 127.0.0.1:8080
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: String,
    /// Append every message sent to FILE (JSON lines)
    #[arg(long, value_name = "FILE")]
    pub outbox: Option<PathBuf>,
    /// The Account SID the simulator accepts
    #[arg(long, value_name = "SID")]
    pub account_sid: Option<String>,
    /// The auth token the simulator accepts
    #[arg(long, value_name = "TOKEN")]
    pub auth_token: Option<String>,
    /// The Verify service SID the simulator serves
    #[arg(long, value_name = "SID")]
    pub service_sid: Option<String>,
    /// HTTPS with a throwaway CA whose path it prints
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub tls: bool,
    /// HTTPS with this certificate (PEM; with --tls-key)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// The language of prompts and of the code message
    #[arg(long, value_name = "LANG")]
    pub language: Option<String>,
    /// The module to load (default: libpam_twilio_2fa.so beside this program)
    #[arg(long, value_name = "PATH")]
    pub module: Option<PathBuf>,
}

/// The shells the packages install completions for.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// `twilio-2fa completions SHELL`: the script on stdout.
pub fn completions(shell: Shell) -> Result<(), String> {
    use clap::CommandFactory;
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "twilio-2fa", &mut script);
    write_stdout(&script)
}

/// Writes to stdout; a closed pipe (`| head`) is not worth a panic.
pub fn write_stdout(bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("stdout: {e}")),
        _ => Ok(()),
    }
}
