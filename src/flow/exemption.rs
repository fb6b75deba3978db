//! Whether this login needs the second factor at all (groups,
//! trusted networks, an origin remembered from an earlier login).

use super::{Flow, Outcome, Step};
use crate::events::{Level, Record};
use crate::i18n::Msg;

impl Flow<'_, '_> {
    /// Why this user need not use the second factor here, if they need not:
    /// `only_groups`, `exempt_groups`, `trusted_networks`.
    pub(super) fn exemption(&self) -> Option<String> {
        let cfg = self.cfg;
        if !cfg.only_groups.is_empty() || !cfg.exempt_groups.is_empty() {
            match self.group_exemption() {
                Ok(Some(reason)) => return Some(reason),
                Ok(None) => {}
                // Groups cannot excuse a user we could not place.
                Err(e) => self.log(
                    Record::message(
                        Level::Warning,
                        format!("group lookup failed: {e}; the user must verify"),
                    )
                    .with("user", self.login.user),
                ),
            }
        }
        let rhost = self.login.rhost?;
        crate::net::trusted(rhost, &cfg.trusted_networks).map(|n| format!("trusted_network:{n}"))
    }

    /// `only_groups` and `exempt_groups`, compared by group id. Every group
    /// named there must resolve and the user's list must be read: with one
    /// unknown, the user might be in it, so any failure is an `Err`.
    fn group_exemption(&self) -> Result<Option<String>, String> {
        let (cfg, users) = (self.cfg, self.env.users);
        let mine = users
            .group_ids(self.account)
            .map_err(|e| format!("the user's groups: {e}"))?;
        let member_of = |names: &[String]| -> Result<Option<String>, String> {
            let mut hit = None;
            for name in names {
                let gid = users
                    .group_id(name)
                    .map_err(|e| format!("group {name}: {e}"))?
                    .ok_or_else(|| format!("group {name}: no such group"))?;
                if hit.is_none() && mine.contains(&gid) {
                    hit = Some(name.clone());
                }
            }
            Ok(hit)
        };
        if !cfg.only_groups.is_empty() && member_of(&cfg.only_groups)?.is_none() {
            return Ok(Some("not_in_only_groups".into()));
        }
        Ok(member_of(&cfg.exempt_groups)?.map(|g| format!("exempt_group:{g}")))
    }

    pub(super) fn skip_remembered(&mut self, origin: &str) -> Step<Outcome> {
        self.log(
            Record::event("verification_skipped")
                .with("user", self.login.user)
                .with("reason", "remembered")
                .with("origin", origin.to_string())
                .with("service", self.login.service),
        );
        let minutes = self.cfg.remember.div_ceil(60);
        let text = self.cfg.texts().count(Msg::Remembered, "minutes", minutes);
        self.env.conv.info(&text)?;
        Ok(Outcome::Success)
    }
}
