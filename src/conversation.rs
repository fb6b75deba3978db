//! What the flow needs from the PAM conversation, without any C types.

use std::fmt;

/// The client hung up, has no terminal, or answered nothing to a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvError(pub String);

impl fmt::Display for ConvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One message per call: OpenSSH and others handle single-message calls best.
pub trait Conversation {
    /// Asks with the answer shown as typed (menus, phone numbers).
    fn prompt_echo_on(&mut self, prompt: &str) -> Result<String, ConvError>;
    /// Asks with the answer hidden (codes).
    fn prompt_echo_off(&mut self, prompt: &str) -> Result<String, ConvError>;
    /// Something went wrong; shown even under PAM_SILENT.
    fn error(&mut self, text: &str) -> Result<(), ConvError>;
    /// Plain information; the PAM shell drops these under PAM_SILENT.
    fn info(&mut self, text: &str) -> Result<(), ConvError>;
}
