//! Texts the user sees; tests assert on them.

pub const NO_PHONE: &str =
    "No phone number is registered for two-factor authentication. Contact your administrator.";
pub const BAD_PHONE: &str =
    "The phone number on file for two-factor authentication is not valid. Contact your administrator.";
pub const UNAVAILABLE: &str = "Two-factor authentication is unavailable right now.";
pub const SETUP_ERROR: &str =
    "Two-factor authentication is not set up correctly on this system. Contact your administrator.";
pub const BAD_FORMAT: &str = "The code must be 4 to 10 digits.";
pub const WRONG_CODE: &str = "That code was not correct.";
pub const TOO_MANY_WRONG: &str = "Too many incorrect codes. Log in again to get a new code.";
pub const TOO_MANY_INVALID: &str = "Too many invalid entries.";
pub const EXPIRED: &str = "That code has expired. Type r to get a new code.";
pub const SEND_LIMIT: &str = "Too many codes were sent to this number; try again later.";
pub const RATE_LIMITED: &str = "Too many requests, try again shortly.";
pub const SEND_FAILED: &str =
    "The code could not be sent. Contact your administrator if this keeps happening.";
pub const CHECK_FAILED: &str =
    "The code could not be checked. Contact your administrator if this keeps happening.";
pub const BLOCKED: &str = "Codes cannot be sent to this number. Contact your administrator.";
pub const NO_METHOD_REACHES: &str =
    "None of the allowed ways of sending a code can reach this number. Contact your administrator.";
pub const BUSY: &str = "Another login for this account is in progress; try again in a moment.";
pub const NUMBER_CHANGED: &str =
    "Your phone number was changed by an administrator while you were logging in. Log in again.";

pub fn locked_out(seconds_left: u64) -> String {
    let minutes = seconds_left.div_ceil(60).max(1);
    let unit = if minutes == 1 { "minute" } else { "minutes" };
    format!("Too many failed attempts. Try again in {minutes} {unit}.")
}

pub fn damaged_state(user: &str) -> String {
    format!(
        "Two-factor authentication data for this account is damaged; ask an administrator to run `twilio-2fa unlock {user}`."
    )
}

/// The header of the method menu.
pub(super) const MENU_HEADER: &str = "Choose how to receive your code:";
