//! The code prompt. Each check reserves an attempt under the
//! user's lock before Twilio is asked; the limit locks the user out.

use super::send::{Resend, Resent};
use super::{Flow, Outcome, Step, MAX_INVALID_ENTRIES};
use crate::config::wipe;
use crate::events::{Level, Record};
use crate::i18n::{Answer, Msg};
use crate::phone::PhoneNumber;
use crate::state::PendingSend;
use crate::verify::{codes, ApiError, CheckResult};

/// Why a check could not be started.
enum NoCheck {
    Locked(u64),
    NoAttemptsLeft,
}

impl Flow<'_, '_> {
    /// One line naming every answer the code prompt accepts besides a code
    /// (sshd shows it as one line).
    fn prompt_for(&self, phone: &PhoneNumber, p: &PendingSend, reused: bool) -> String {
        let t = self.cfg.texts();
        let choice = |msg: Msg, answer: Answer| t.fmt(msg, &[("key", &t.key(answer))]);
        let mut choices = vec![choice(Msg::ChoiceNewCode, Answer::NewCode)];
        if self.other_method_offered() {
            choices.push(choice(Msg::ChoiceOtherMethod, Answer::OtherMethod));
        }
        if self.change_offered && !self.change_asked {
            choices.push(choice(Msg::ChoiceChange, Answer::Change));
        }
        let lead = if reused {
            Msg::CodePromptReused
        } else {
            Msg::CodePromptSent
        };
        t.fmt(
            lead,
            &[
                ("method", &self.cfg.label_in(p.method, &t)),
                ("phone", &phone.display(self.cfg.obfuscate)),
                ("choices", &choices.join(", ")),
            ],
        )
    }

    /// `m` at the code prompt: only when another method could be chosen.
    fn other_method_offered(&self) -> bool {
        self.available_methods().len() > 1
    }

    pub(super) fn verify_loop(
        &mut self,
        phone: &PhoneNumber,
        pending: &mut PendingSend,
        reused: bool,
    ) -> Step<Outcome> {
        let mut reused = reused;
        let mut invalid = 0u32;
        // False once Twilio has said the verification is gone (expired, finished).
        let mut live = true;
        loop {
            let prompt = self.prompt_for(phone, pending, reused);
            let mut typed = self.env.conv.prompt_echo_off(&prompt)?;
            let answer = typed.trim().to_string();
            wipe(&mut typed);
            // Compared in place: no unwiped copy of a typed code is made.
            // In the login's language or in English (scripts, habits).
            let t = self.cfg.texts();
            let is = |a: Answer| t.means(&answer, a);
            if self.change_offered && is(Answer::Change) {
                self.change_asked = true;
                // A login that goes on to change the number is not remembered.
                self.remember_success = false;
                self.env.conv.info(&t.text(Msg::ChangeAfterCode))?;
                continue;
            }
            let other = self.other_method_offered() && is(Answer::OtherMethod);
            if other || is(Answer::NewCode) {
                // `m`: a new send by the chosen method, under a resend's rules.
                let method = if other {
                    self.choose_method()?
                } else {
                    pending.method
                };
                let old = pending.sid.clone();
                let resend = Resend { old: &old, live };
                match self.resend_locked(phone, method, resend)? {
                    Resent::Wait(wait) => {
                        let text = t.count(Msg::ResendWait, "seconds", wait);
                        self.invalid_entry(&mut invalid, &text)?;
                    }
                    Resent::Code(p, again) => {
                        *pending = p;
                        reused = again;
                        live = true;
                    }
                }
                continue;
            }
            let code = normalise_code(&answer);
            let mut answer = answer;
            wipe(&mut answer);
            let Some(mut code) = code else {
                self.invalid_entry(&mut invalid, &self.text(Msg::BadFormat))?;
                continue;
            };
            if !live {
                self.invalid_entry(&mut invalid, &self.text(Msg::Expired))?;
                continue;
            }
            let attempt = match self.reserve_attempt()? {
                Ok(n) => n,
                Err(NoCheck::Locked(left)) => {
                    self.say_locked_out(left)?;
                    return Ok(Outcome::MaxTries);
                }
                Err(NoCheck::NoAttemptsLeft) => {
                    self.say(Msg::TooManyWrong)?;
                    return Ok(Outcome::MaxTries);
                }
            };
            let checked = self.env.api.check(&pending.sid, &code);
            wipe(&mut code);
            match checked {
                Ok(CheckResult::Approved) => return self.succeeded(pending),
                Ok(CheckResult::Rejected) => {
                    self.log(
                        Record::event("verification_failed")
                            .with("user", self.login.user)
                            .with("reason", "wrong_code")
                            .with("attempt", format!("{attempt}/{}", self.cfg.max_attempts))
                            .with("sid", pending.sid.clone())
                            .with("rhost", self.login.rhost.unwrap_or("-")),
                    );
                    if attempt >= self.cfg.max_attempts {
                        return self.attempts_used_up(&pending.sid);
                    }
                    self.say(Msg::WrongCode)?;
                }
                Err(e) if e.twilio_code() == Some(codes::MAX_CHECK_ATTEMPTS) => {
                    return self.attempts_used_up(&pending.sid);
                }
                Err(e) if e.twilio_code() == Some(codes::NOT_FOUND) => {
                    live = false;
                    let sid = pending.sid.clone();
                    self.state_update(&mut |st| {
                        if st.pending.as_ref().is_some_and(|p| p.sid == sid) {
                            st.pending = None;
                        }
                    })?;
                    self.log(
                        Record::event("verification_expired")
                            .with("user", self.login.user)
                            .with("sid", pending.sid.clone()),
                    );
                    self.say(Msg::Expired)?;
                }
                Err(e) => return Err(self.check_failure(&e)),
            }
        }
    }

    /// Takes one attempt from the user's allowance before a check is made.
    fn reserve_attempt(&mut self) -> Step<Result<u32, NoCheck>> {
        let (clock, max) = (self.env.clock, self.cfg.max_attempts);
        let mut out = Err(NoCheck::NoAttemptsLeft);
        self.state_update(&mut |st| {
            let now = clock.now();
            out = if let Some(left) = st.lockout_left(now) {
                Err(NoCheck::Locked(left))
            } else if st.attempts >= max {
                Err(NoCheck::NoAttemptsLeft)
            } else {
                st.attempts += 1;
                Ok(st.attempts)
            };
        })?;
        Ok(out)
    }

    fn succeeded(&mut self, pending: &PendingSend) -> Step<Outcome> {
        let (clock, remember) = (self.env.clock, self.cfg.remember);
        let origin = self.login.origin().filter(|_| self.remember_success);
        let sid = pending.sid.clone();
        self.state_update(&mut |st| {
            let now = clock.now();
            st.attempts = 0;
            st.locked_until = None;
            if st.pending.as_ref().is_some_and(|p| p.sid == sid) {
                st.pending = None;
            }
            st.prune_remembered(now, remember);
            if let (Some(o), true) = (&origin, remember > 0) {
                st.remember(o, now);
            }
        })?;
        self.log(
            Record::event("verification_success")
                .with("user", self.login.user)
                .with("method", pending.method.name())
                .with("sid", pending.sid.clone())
                .with("service", self.login.service)
                .with("rhost", self.login.rhost.unwrap_or("-")),
        );
        self.status_changed(&pending.sid, "approved");
        Ok(Outcome::Success)
    }

    /// The limit is reached: lock the user out (or, with a zero timeout,
    /// start the count again) and cancel the verification.
    fn attempts_used_up(&mut self, sid: &str) -> Step<Outcome> {
        let (clock, timeout) = (self.env.clock, self.cfg.max_attempts_timeout);
        let mut until = None;
        self.state_update(&mut |st| {
            let now = clock.now();
            st.attempts = 0;
            if timeout > 0 {
                let end = st.locked_until.unwrap_or(0).max(now + timeout);
                st.locked_until = Some(end);
                until = Some(end);
            }
            if st.pending.as_ref().is_some_and(|p| p.sid == sid) {
                st.pending = None;
            }
        })?;
        self.cancel(sid);
        let mut r = Record::event("verification_failed")
            .with("user", self.login.user)
            .with("reason", "max_attempts")
            .with("rhost", self.login.rhost.unwrap_or("-"))
            .at(Level::Warning);
        if let Some(end) = until {
            r = r.with("locked_until", crate::clock::iso_time(end));
        }
        self.log(r);
        match until {
            Some(end) => self.say_locked_out(end.saturating_sub(self.env.clock.now()))?,
            None => self.say(Msg::TooManyWrong)?,
        }
        Ok(Outcome::MaxTries)
    }

    /// Counts an unusable answer; past the limit the login ends.
    fn invalid_entry(&mut self, invalid: &mut u32, text: &str) -> Step<()> {
        *invalid += 1;
        if *invalid >= MAX_INVALID_ENTRIES {
            self.log(
                Record::event("verification_failed")
                    .with("user", self.login.user)
                    .with("reason", "too_many_invalid_entries"),
            );
            self.say(Msg::TooManyInvalid)?;
            return Err(Outcome::AuthErr);
        }
        self.error(text)?;
        Ok(())
    }

    /// Best effort: a verification we no longer want should not stay usable.
    fn cancel(&mut self, sid: &str) {
        match self.env.api.cancel(sid) {
            Ok(()) => self.status_changed(sid, "canceled"),
            Err(e) => self.log(
                Record::message(Level::Debug, format!("could not cancel verification: {e}"))
                    .with("sid", sid.to_string()),
            ),
        }
    }

    fn check_failure(&mut self, e: &ApiError) -> Outcome {
        let (outcome, text) = match (e, e.twilio_code()) {
            (ApiError::Unavailable(why), _) => (self.unreachable("check", why), Msg::Unavailable),
            (_, Some(codes::BAD_CREDENTIALS)) => {
                self.admin_error("Twilio rejected the credentials (error 20003); check account_sid and auth_token, or api_key_sid and api_key_secret".into());
                (Outcome::ServiceErr, Msg::SetupError)
            }
            (_, Some(codes::TOO_MANY_REQUESTS | codes::TOO_MANY_CONCURRENT)) => {
                (Outcome::AuthErr, Msg::RateLimited)
            }
            _ => {
                self.log(
                    Record::message(Level::Error, format!("Twilio refused to check a code: {e}"))
                        .with("user", self.login.user),
                );
                (Outcome::AuthErr, Msg::CheckFailed)
            }
        };
        let _ = self.say(text);
        outcome
    }
}

/// Strips spaces and dashes; a code is 4 to 10 ASCII digits.
pub fn normalise_code(answer: &str) -> Option<String> {
    if answer.len() > 64 {
        return None;
    }
    let code: String = answer.chars().filter(|c| *c != ' ' && *c != '-').collect();
    let ok = (4..=10).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit());
    ok.then_some(code)
}
