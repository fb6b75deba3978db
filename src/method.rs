//! The delivery channels a code can be sent by.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Sms,
    Call,
    Whatsapp,
}

impl Method {
    pub fn all() -> Vec<Method> {
        vec![Method::Sms, Method::Call, Method::Whatsapp]
    }

    /// The name used in the config and as Twilio's `Channel` value.
    pub fn name(self) -> &'static str {
        match self {
            Method::Sms => "sms",
            Method::Call => "call",
            Method::Whatsapp => "whatsapp",
        }
    }

    /// What users see when no `[methods.<name>] label` is configured.
    pub fn default_label(self) -> &'static str {
        match self {
            Method::Sms => "text message",
            Method::Call => "voice call",
            Method::Whatsapp => "WhatsApp",
        }
    }

    pub fn from_name(s: &str) -> Option<Method> {
        Method::all().into_iter().find(|m| m.name() == s)
    }
}
