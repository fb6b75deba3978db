//! Registering a number (none on file) or changing it (`c` at the code
//! prompt): the new number is verified like a login before it is stored.

use super::{Flow, Outcome, Step, MENU_ASKS};
use crate::events::{Level, Record};
use crate::i18n::{Answer, Msg};
use crate::method::Method;
use crate::number_policy::{check_new_number, Rejection};
use crate::phone::PhoneNumber;

impl Flow<'_, '_> {
    /// No number on file: register one if allowed, else deny.
    pub(super) fn register(&mut self) -> Step<Outcome> {
        let user = self.login.user;
        if !(self.cfg.allow_register && self.env.phones.can_store()) {
            self.log(
                Record::event("verification_failed")
                    .with("user", user)
                    .with("reason", "no_phone_number"),
            );
            self.say(Msg::NoPhone)?;
            return Ok(Outcome::AuthErr);
        }
        self.enrol(None, None)
    }

    /// Asks for a new number, verifies it like a login, and only then stores
    /// it. `old`: the number being replaced (already verified in this login),
    /// whose method is used again; without one the user picks a method.
    pub(super) fn enrol(
        &mut self,
        method: Option<Method>,
        old: Option<&PhoneNumber>,
    ) -> Step<Outcome> {
        let optional = old.is_none() && self.cfg.register_optional;
        let Some(new) = self.ask_new_number(optional, old)? else {
            self.log(
                Record::event("registration_skipped")
                    .with("user", self.login.user)
                    .with("service", self.login.service),
            );
            return Ok(Outcome::Ignore);
        };
        let method = match method {
            Some(m) => m,
            None => self.choose_method()?,
        };
        self.remember_success = false;
        let (mut pending, reused) = self.send_locked(&new, method, None)?;
        let outcome = self.verify_loop(&new, &mut pending, reused)?;
        if outcome != Outcome::Success {
            return Ok(outcome);
        }
        let dropped = self.store_number(&new)?;
        let (reason, r) = match old {
            None => ("registered", Record::event("registered")),
            Some(o) => (
                "phone_changed",
                Record::event("phone_changed").with("old", o.masked_e164()),
            ),
        };
        self.log(
            r.with("user", self.login.user)
                .with("to", new.masked_e164())
                .with("service", self.login.service),
        );
        if dropped > 0 {
            self.log(
                Record::event("remembered_ended")
                    .with("user", self.login.user)
                    .with("count", dropped.to_string())
                    .with("reason", reason),
            );
        }
        Ok(Outcome::Success)
    }

    /// Stores a verified new number under the user's state lock (which
    /// `twilio-2fa user set/remove` take too), unless the directory's number
    /// changed since the login began: then the administrator's (or another
    /// login's) number stays. A new number ends every remembered login.
    /// Returns how many remembered logins were ended.
    fn store_number(&mut self, new: &PhoneNumber) -> Step<usize> {
        enum Stored {
            Done(usize),
            Changed,
            Failed(crate::phone_book::SourceError),
        }
        let (phones, user) = (self.env.phones, self.login.user);
        let expected = self.directory_number.clone();
        let mut stored = Stored::Changed;
        self.state_update(&mut |st| {
            stored = match phones.stored(user) {
                Ok(now) if now != expected => Stored::Changed,
                Ok(_) => match phones.store(user, new.e164()) {
                    Ok(()) => Stored::Done(st.forget_remembered()),
                    Err(e) => Stored::Failed(e),
                },
                Err(e) => Stored::Failed(e),
            };
        })?;
        match stored {
            Stored::Done(dropped) => Ok(dropped),
            Stored::Changed => {
                self.log(
                    Record::event("verification_failed")
                        .with("user", user)
                        .with("reason", "number_changed_during_login")
                        .with("service", self.login.service)
                        .at(Level::Warning),
                );
                self.say(Msg::NumberChanged)?;
                Err(Outcome::AuthErr)
            }
            Stored::Failed(e) => {
                self.admin_error(format!("verified a new number but cannot store it: {e}"));
                self.say(Msg::SetupError)?;
                Err(Outcome::ServiceErr)
            }
        }
    }

    /// `Ok(None)`: the user typed `skip` (only when `optional`).
    fn ask_new_number(
        &mut self,
        optional: bool,
        old: Option<&PhoneNumber>,
    ) -> Step<Option<PhoneNumber>> {
        let t = self.cfg.texts();
        let prompt = match (old, optional) {
            (Some(_), _) => t.text(Msg::NewNumberChange),
            (None, true) => t.fmt(Msg::NewNumberOptional, &[("skip", &t.key(Answer::Skip))]),
            (None, false) => t.text(Msg::NewNumber),
        };
        for ask in 1..=MENU_ASKS {
            let answer = self.env.conv.prompt_echo_on(&prompt)?;
            let answer = answer.trim();
            if optional && t.means(answer, Answer::Skip) {
                return Ok(None);
            }
            let text = match check_new_number(answer, self.cfg, self.env.lookup, true) {
                Ok(n) if old.is_some_and(|o| o.e164() == n.e164()) => self.text(Msg::SameNumber),
                Ok(n) => return Ok(Some(n)),
                Err(r @ Rejection::LookupUnavailable(_)) => {
                    if let Rejection::LookupUnavailable(why) = &r {
                        self.admin_error(format!("carrier lookup failed: {why}"));
                    }
                    // Fail closed: no unchecked number is ever stored.
                    self.error(&r.text(&self.cfg.texts()))?;
                    return Err(Outcome::AuthErr);
                }
                Err(r) => r.text(&self.cfg.texts()),
            };
            if ask < MENU_ASKS {
                self.error(&text)?;
            } else {
                self.error(&format!("{text} {}", self.text(Msg::TooManyInvalid)))?;
            }
        }
        self.log(
            Record::event("verification_failed")
                .with("user", self.login.user)
                .with("reason", "no_valid_number_entered"),
        );
        Err(Outcome::AuthErr)
    }
}
