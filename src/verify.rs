//! What the flow needs from Twilio Verify, as plain Rust.

use crate::method::Method;
use std::fmt;

/// A verification Twilio created: its SID is what later checks are bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub sid: String,
    pub status: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckResult {
    Approved,
    /// Wrong code: the verification stays pending.
    Rejected,
}

/// Why a call to Twilio did not give a usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// No usable answer: network, TLS, timeout, 5xx, or a body we cannot read.
    Unavailable(String),
    /// Twilio answered with one of its error codes.
    Twilio {
        http_status: u16,
        code: u32,
        message: String,
    },
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Unavailable(why) => write!(f, "Twilio unavailable: {why}"),
            ApiError::Twilio {
                http_status,
                code,
                message,
            } => write!(f, "Twilio error {code} (HTTP {http_status}): {message}"),
        }
    }
}

impl ApiError {
    pub fn twilio_code(&self) -> Option<u32> {
        match self {
            ApiError::Twilio { code, .. } => Some(*code),
            ApiError::Unavailable(_) => None,
        }
    }
}

/// Twilio error codes the flow treats specially.
pub mod codes {
    pub const BAD_CREDENTIALS: u32 = 20003;
    pub const NOT_FOUND: u32 = 20404;
    pub const TOO_MANY_REQUESTS: u32 = 20429;
    pub const INVALID_PARAMETER: u32 = 60200;
    pub const MAX_CHECK_ATTEMPTS: u32 = 60202;
    pub const MAX_SEND_ATTEMPTS: u32 = 60203;
    /// SMS is not supported for a landline.
    pub const LANDLINE_NO_SMS: u32 = 60205;
    pub const TOO_MANY_CONCURRENT: u32 = 60212;
    /// The channel is disabled for this Verify service.
    pub const CHANNEL_DISABLED: u32 = 60223;
    pub const FRAUD_BLOCKED: u32 = 60410;
    /// The `Locale` has no text-to-speech voice (a call).
    pub const LOCALE_NO_VOICE: u32 = 60331;
}

/// What a send asks of Twilio besides the number and the channel.
#[derive(Debug, Clone, Copy, Default)]
pub struct SendOptions<'a> {
    /// `CustomFriendlyName`.
    pub friendly_name: Option<&'a str>,
    /// `Locale`: the language of the SMS, call or WhatsApp text.
    pub locale: Option<&'a str>,
    /// `RateLimits`: (unique name, value) for each Service Rate Limit the
    /// send is counted under; values are keyed hashes, never clear text.
    pub rate_limits: &'a [(String, String)],
}

pub trait VerifyApi {
    /// `POST /v2/Services/{sid}/Verifications`.
    fn send(&self, to: &str, method: Method, opts: &SendOptions) -> Result<Verification, ApiError>;
    /// `POST /v2/Services/{sid}/VerificationCheck` with `VerificationSid`, never `To`.
    fn check(&self, verification_sid: &str, code: &str) -> Result<CheckResult, ApiError>;
    /// `POST /v2/Services/{sid}/Verifications/{sid}` with `Status=canceled`.
    fn cancel(&self, verification_sid: &str) -> Result<(), ApiError>;
}
