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

/// Text for a terminal: control characters (escape sequences among them)
/// are dropped, except newlines. Config labels, Twilio's words and a phone
/// command's output must not be able to drive the user's terminal.
pub fn terminal_safe(text: &str) -> String {
    text.chars()
        .filter(|c| *c == '\n' || !c.is_control())
        .collect()
}

/// One stored or user-supplied value (a user name, a remote host, a number)
/// for an administrator's terminal: control characters, line breaks and
/// bidirectional overrides are shown escaped (`\u{1b}`), so a value can
/// neither drive the terminal nor pass for another line or field.
pub fn escape_for_display(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || bidi {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displayed_values_cannot_drive_the_terminal_or_add_lines() {
        assert_eq!(
            escape_for_display("h\x1b[2J\nlocked until -\u{202e}x"),
            "h\\u{1b}[2J\\u{a}locked until -\\u{202e}x"
        );
        assert_eq!(escape_for_display("192.0.2.1 alice"), "192.0.2.1 alice");
    }

    #[test]
    fn escape_sequences_are_removed() {
        assert_eq!(terminal_safe("a\x1b[2Jb\r\nc\u{9b}d\0e"), "a[2Jb\ncde");
        assert_eq!(terminal_safe("Enter 1-3:\n  1. x"), "Enter 1-3:\n  1. x");
    }
}
