//! pam-twilio-2fa: a second factor at login through Twilio Verify.
//!
//! The authentication flow (`flow`) is plain Rust over small interfaces
//! (`conversation`, `verify`, `phone`, `events`, `clock`, `users`); the PAM
//! entry points (`pam_entry`) are a thin shell that only translates.

pub mod ca_store;
pub mod clock;
pub mod config;
pub mod conversation;
pub mod event_log;
pub mod events;
pub mod flow;
pub mod https;
pub mod i18n;
pub mod lab;
pub mod ldap;
pub mod method;
pub mod net;
pub mod number_policy;
pub mod pam_client;
mod pam_entry;
mod pam_ffi;
pub mod phone;
pub mod phone_book;
pub mod phone_command;
pub mod pki;
pub mod policy;
pub mod rate_limits;
mod resolver;
pub mod secure_file;
pub mod session;
mod sigpipe;
pub mod simulator;
pub mod state;
mod syslog;
pub mod twilio_client;
pub mod unprivileged;
pub mod users;
pub mod verify;
