//! The number on file, from the `[phones]` sources, checked
//! against the country policy every time.

use super::{Flow, Outcome, Step};
use crate::events::{Level, Record};
use crate::i18n::Msg;
use crate::number_policy::{check_country, check_number, Rejection};
use crate::phone::PhoneNumber;
use crate::phone_book::Found;
use crate::state::UserState;

impl Flow<'_, '_> {
    pub(super) fn find_number(&mut self) -> Step<Option<Found>> {
        match self.env.phones.find(self.login.user) {
            Ok(found) => Ok(found),
            Err(e) => {
                self.admin_error(format!(
                    "cannot read phone numbers: {e}; fix the [phones] source"
                ));
                self.say(Msg::SetupError)?;
                Err(Outcome::ServiceErr)
            }
        }
    }

    /// A number from a source must still pass the country policy.
    pub(super) fn stored_number(&mut self, found: &Found, st: &UserState) -> Step<PhoneNumber> {
        let region = &self.cfg.default_region;
        let cached = st
            .number
            .as_ref()
            .and_then(|p| PhoneNumber::from_parsed(p, &found.number, region));
        let checked = match cached {
            // The policy is checked every time; only the parse is cached.
            Some(n) => check_country(n, self.cfg),
            None => {
                let checked = check_number(&found.number, self.cfg);
                if let Ok(n) = &checked {
                    let parsed = n.to_parsed(&found.number, region);
                    self.state_update(&mut |st| st.number = Some(parsed.clone()))?;
                }
                checked
            }
        };
        match checked {
            Ok(n) => Ok(n),
            Err(r) => {
                self.log(
                    Record::message(
                        Level::Error,
                        format!(
                            "the number on file for this user (from the {} source) is refused: {}",
                            found.source,
                            r.message()
                        ),
                    )
                    .with("user", self.login.user),
                );
                let text = match r {
                    Rejection::Country(_) => format!(
                        "{} {}",
                        r.text(&self.cfg.texts()),
                        self.text(Msg::ContactAdmin)
                    ),
                    _ => self.text(Msg::BadPhone),
                };
                self.error(&text)?;
                Err(Outcome::AuthErr)
            }
        }
    }
}
