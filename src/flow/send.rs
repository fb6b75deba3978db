//! Choose a method and send a code, under the user's lock, or
//! reuse one another login sent; resends and Twilio's send errors.

use super::{Flow, Outcome, Step, MENU_ASKS};
use crate::events::{Level, Record};
use crate::i18n::Msg;
use crate::method::Method;
use crate::phone::PhoneNumber;
use crate::state::{PendingSend, UserState};
use crate::verify::{codes, ApiError, SendOptions, Verification, VerifyApi};

/// What happened under the lock in `send_locked`.
enum SendResult {
    NotRun,
    Ready(PendingSend, bool),
    Locked(u64),
    Failed(ApiError),
    /// A resend asked for within `retry_time` of the user's last send.
    Wait(u64),
}

/// A resend: the verification it replaces, and whether Twilio may still
/// accept a code for it (false once Twilio said it is gone).
#[derive(Clone, Copy)]
pub(super) struct Resend<'s> {
    pub(super) old: &'s str,
    pub(super) live: bool,
}

/// What a resend came to.
pub(super) enum Resent {
    /// A code to type: newly sent, or (`true`) one another login sent.
    Code(PendingSend, bool),
    /// Too early: seconds until a new code may be sent.
    Wait(u64),
}

/// A code sent earlier, by this login or another, that is still worth typing.
pub(super) fn reusable(
    st: &UserState,
    phone: &PhoneNumber,
    now: u64,
    retry_time: u64,
) -> Option<PendingSend> {
    st.pending
        .clone()
        .filter(|p| p.to == phone.e164() && now < p.sent_at + retry_time)
}

impl Flow<'_, '_> {
    pub(super) fn choose_method(&mut self) -> Step<Method> {
        let methods = self.available_methods();
        if methods.len() == 1 {
            return Ok(methods[0]);
        }
        let t = self.cfg.texts();
        let count = methods.len().to_string();
        let menu = format!(
            "{}{}",
            self.menu_lines(&methods),
            t.fmt(Msg::MenuPrompt, &[("count", &count)])
        );
        for ask in 1..=MENU_ASKS {
            let answer = self.env.conv.prompt_echo_on(&menu)?;
            if let Some(m) = self.parse_menu_answer(&answer, &methods) {
                return Ok(m);
            }
            if ask < MENU_ASKS {
                self.error(&t.fmt(Msg::MenuInvalid, &[("count", &count)]))?;
            }
        }
        self.log(
            Record::event("verification_failed")
                .with("user", self.login.user)
                .with("reason", "no_method_chosen"),
        );
        self.say(Msg::TooManyInvalid)?;
        Err(Outcome::AuthErr)
    }

    fn menu_lines(&self, methods: &[Method]) -> String {
        let t = self.cfg.texts();
        let mut menu = format!("{}\n", t.text(Msg::MenuHeader));
        for (i, m) in methods.iter().enumerate() {
            menu.push_str(&format!("  {}. {}\n", i + 1, self.cfg.label_in(*m, &t)));
        }
        menu
    }

    /// Menu answers: the number, the method's name, or its label in the
    /// login's language or in English.
    fn parse_menu_answer(&self, answer: &str, methods: &[Method]) -> Option<Method> {
        let a = answer.trim().to_lowercase();
        if let Ok(i) = a.parse::<usize>() {
            return (1..=methods.len()).contains(&i).then(|| methods[i - 1]);
        }
        let (mine, english) = (self.cfg.texts(), crate::i18n::Texts::english());
        methods.iter().copied().find(|m| {
            m.name() == a
                || self.cfg.label_in(*m, &mine).to_lowercase() == a
                || self.cfg.label_in(*m, &english).to_lowercase() == a
        })
    }

    /// Under the user's lock: reuse a code another login sent within
    /// `retry_time` to the same number, or send one (and, with `replace`,
    /// cancel the one it replaces). Holding the lock across the send is what
    /// stops 20 logins at once from sending 20 codes; checking the lockout
    /// again under it stops a login that started before a lockout from
    /// sending after it.
    pub(super) fn send_locked(
        &mut self,
        phone: &PhoneNumber,
        method: Method,
        replace: Option<&str>,
    ) -> Step<(PendingSend, bool)> {
        // Without a resend's cooldown there is nothing to wait for.
        let resend = replace.map(|old| Resend { old, live: false });
        match self.send_under_lock(phone, method, resend, false)? {
            Resent::Code(p, reused) => Ok((p, reused)),
            Resent::Wait(_) => {
                self.admin_error("a send without a cooldown was told to wait".into());
                Err(Outcome::ServiceErr)
            }
        }
    }

    /// The user typed `r`. `retry_time` runs from the user's last send,
    /// whichever login made it, and is decided under the user's lock, so
    /// logins at once cannot each send a code: a newer code another login
    /// sent is taken over instead of sending one more.
    pub(super) fn resend_locked(
        &mut self,
        phone: &PhoneNumber,
        method: Method,
        resend: Resend,
    ) -> Step<Resent> {
        self.send_under_lock(phone, method, Some(resend), true)
    }

    /// The core of `send_locked` and `resend_locked`; `cooldown`: apply
    /// `retry_time` to a resend.
    fn send_under_lock(
        &mut self,
        phone: &PhoneNumber,
        method: Method,
        resend: Option<Resend>,
        cooldown: bool,
    ) -> Step<Resent> {
        let replace = resend.map(|r| r.old);
        let (api, clock) = (self.env.api, self.env.clock);
        let (retry_time, friendly) = (self.cfg.retry_time, self.friendly_name(method));
        let locale = self.cfg.twilio_locale();
        let rate_limits = self
            .cfg
            .rate_limits
            .as_ref()
            .map(|r| r.values(self.login.user, self.login.rhost))
            .unwrap_or_default();
        let opts = SendOptions {
            friendly_name: friendly.as_deref(),
            locale: locale.as_deref(),
            rate_limits: &rate_limits,
        };
        let mut refused = None;
        let mut result = SendResult::NotRun;
        let mut canceled = None;
        self.state_update(&mut |st| {
            let now = clock.now();
            if let Some(left) = st.lockout_left(now) {
                result = SendResult::Locked(left);
                return;
            }
            match (resend, reusable(st, phone, now, retry_time)) {
                (None, Some(p)) => {
                    result = SendResult::Ready(p, true);
                    return;
                }
                // Another login sent a newer code within retry_time: use it.
                (Some(r), Some(p)) if cooldown && p.sid != r.old => {
                    result = SendResult::Ready(p, true);
                    return;
                }
                _ => {}
            }
            // A verification Twilio already called gone may be replaced at
            // once; a live one only `retry_time` after the user's last send.
            if cooldown && resend.is_some_and(|r| r.live) {
                // Old state files have no last_sent_at: the pending send's time.
                let last = st.last_sent_at.or(st.pending.as_ref().map(|p| p.sent_at));
                let wait = last.map_or(0, |t| (t + retry_time).saturating_sub(now));
                if wait > 0 {
                    result = SendResult::Wait(wait);
                    return;
                }
            }
            if let Some(old) = replace {
                canceled = Some(api.cancel(old).map(|_| old.to_string()));
            }
            let to = phone.e164();
            let sent = send_in_language(api, to, method, &opts, &mut refused);
            result = match sent {
                Ok(v) => {
                    let p = PendingSend {
                        sid: v.sid,
                        method,
                        to: phone.e164().to_string(),
                        sent_at: now,
                    };
                    st.pending = Some(p.clone());
                    st.last_sent_at = Some(now);
                    SendResult::Ready(p, false)
                }
                Err(e) => {
                    st.pending = None;
                    SendResult::Failed(e)
                }
            };
        })?;
        if let Some(e) = refused {
            self.log(
                Record::message(
                    Level::Warning,
                    format!(
                        "Twilio refused Locale {:?} ({e}); the code was sent without it, in the language Twilio picks for the number; check `language` and `locale`",
                        locale.unwrap_or_default()
                    ),
                )
                .with("user", self.login.user),
            );
        }
        if let Some(Ok(sid)) = canceled {
            self.status_changed(&sid, "canceled");
        }
        match result {
            SendResult::Ready(p, reused) => {
                if !reused {
                    self.log(
                        Record::event("verification_sent")
                            .with("user", self.login.user)
                            .with("method", p.method.name())
                            .with("to", phone.masked_e164())
                            .with("sid", p.sid.clone())
                            .with("service", self.login.service)
                            .with("rhost", self.login.rhost.unwrap_or("-")),
                    );
                }
                Ok(Resent::Code(p, reused))
            }
            SendResult::Wait(left) => Ok(Resent::Wait(left)),
            SendResult::Locked(left) => {
                self.say_locked_out(left)?;
                Err(Outcome::MaxTries)
            }
            SendResult::Failed(e)
                if matches!(
                    e.twilio_code(),
                    Some(codes::LANDLINE_NO_SMS | codes::CHANNEL_DISABLED)
                ) =>
            {
                self.method_unavailable(&e, phone, method, replace)
                    .map(|(p, reused)| Resent::Code(p, reused))
            }
            SendResult::Failed(e) => Err(self.send_failure(&e, method)),
            SendResult::NotRun => {
                self.admin_error("state store returned without running the update".into());
                Err(Outcome::ServiceErr)
            }
        }
    }

    /// Twilio cannot use `method` for this number (60205 landline, 60223
    /// channel disabled): offer the other allowed methods, if any.
    fn method_unavailable(
        &mut self,
        e: &ApiError,
        phone: &PhoneNumber,
        method: Method,
        replace: Option<&str>,
    ) -> Step<(PendingSend, bool)> {
        self.log(
            Record::message(
                Level::Warning,
                format!("{} cannot be used: {e}", method.name()),
            )
            .with("user", self.login.user)
            .with("to", phone.masked_e164()),
        );
        self.unavailable.push(method);
        if self.available_methods().is_empty() {
            self.say(Msg::NoMethodReaches)?;
            return Err(Outcome::AuthErr);
        }
        let t = self.cfg.texts();
        let label = self.cfg.label_in(method, &t);
        self.error(&t.fmt(Msg::MethodUnreachable, &[("method", &label)]))?;
        let next = self.choose_method()?;
        self.send_locked(phone, next, replace)
    }

    /// The allowed methods, less those Twilio said cannot reach this number.
    pub(super) fn available_methods(&self) -> Vec<Method> {
        self.cfg
            .allowed_methods
            .iter()
            .copied()
            .filter(|m| !self.unavailable.contains(m))
            .collect()
    }

    fn send_failure(&mut self, e: &ApiError, method: Method) -> Outcome {
        let code = e.twilio_code();
        let mut reason = "send_failed";
        let (outcome, text) = match (e, code) {
            (ApiError::Unavailable(why), _) => (self.unreachable("send", why), Msg::Unavailable),
            (_, Some(codes::BAD_CREDENTIALS)) => {
                self.admin_error("Twilio rejected the credentials (error 20003); check account_sid and auth_token, or api_key_sid and api_key_secret".into());
                (Outcome::ServiceErr, Msg::SetupError)
            }
            (_, Some(codes::NOT_FOUND)) => {
                self.admin_error(format!(
                    "Twilio has no Verify service {} (error 20404); check service_sid",
                    self.cfg.service_sid
                ));
                (Outcome::ServiceErr, Msg::SetupError)
            }
            // A full bucket of a Service Rate Limit comes back as a 429:
            // 60203 like Twilio's own send limit, or 20429 (whose page
            // lists configured rate limits among its causes). Neither names
            // the bucket nor says when it empties.
            (
                ApiError::Twilio { http_status, .. },
                Some(c @ (codes::MAX_SEND_ATTEMPTS | codes::TOO_MANY_REQUESTS)),
            ) if self.cfg.rate_limits.is_some() => {
                reason = "rate_limited";
                let names = self.cfg.rate_limits.as_ref().map(|r| r.names());
                self.log(
                    Record::message(
                        Level::Warning,
                        format!(
                            "Twilio refused to send a code (error {c}, HTTP {http_status}): a bucket of [rate_limits] ({}) is full, or Twilio's own limits were reached; `twilio-2fa rate-limits show` lists the buckets",
                            names.unwrap_or_default()
                        ),
                    )
                    .with("user", self.login.user)
                    .with("rhost", self.login.rhost.unwrap_or("-")),
                );
                (Outcome::AuthErr, Msg::RequestLimit)
            }
            (_, Some(codes::MAX_SEND_ATTEMPTS)) => (Outcome::AuthErr, Msg::SendLimit),
            (ApiError::Twilio { message, .. }, Some(codes::INVALID_PARAMETER))
                if self.cfg.rate_limits.is_some() && message.contains("RateLimits") =>
            {
                self.admin_error(format!(
                    "Twilio refused the send's RateLimits ({e}): run `twilio-2fa rate-limits apply` so that the Verify service has every rate limit [rate_limits] declares"
                ));
                (Outcome::AuthErr, Msg::SendFailed)
            }
            (_, Some(codes::TOO_MANY_REQUESTS | codes::TOO_MANY_CONCURRENT)) => {
                (Outcome::AuthErr, Msg::RateLimited)
            }
            (_, Some(codes::FRAUD_BLOCKED)) => {
                self.log(
                    Record::message(
                        Level::Warning,
                        "Twilio blocked sending to this number as suspected fraud (error 60410)",
                    )
                    .with("user", self.login.user),
                );
                (Outcome::AuthErr, Msg::Blocked)
            }
            _ => {
                self.log(
                    Record::message(Level::Error, format!("Twilio refused to send a code: {e}"))
                        .with("user", self.login.user)
                        .with("method", method.name()),
                );
                (Outcome::AuthErr, Msg::SendFailed)
            }
        };
        self.log(
            Record::event("verification_failed")
                .with("user", self.login.user)
                .with("reason", reason)
                .with(
                    "twilio_code",
                    code.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                ),
        );
        let _ = self.say(text);
        outcome
    }

    /// `service_name` with its placeholders filled in, cut to Twilio's 30 characters.
    fn friendly_name(&self, method: Method) -> Option<String> {
        let template = self.cfg.service_name.as_ref()?;
        let filled = template
            .replace("{user}", self.login.user)
            .replace("{host}", self.login.hostname)
            .replace("{service}", self.login.service)
            .replace("{method}", method.name());
        // The user name comes from the network and ends up in a text message.
        let clean: String = filled
            .chars()
            .filter(|c| !c.is_control())
            .take(30)
            .collect();
        let clean = clean.trim().to_string();
        (!clean.is_empty()).then_some(clean)
    }
}

/// A send in the login's language. Twilio answers a `Locale` it does not
/// support with a 404 and asks callers to retry without it (a call's voice
/// may answer 60331, a bad value 60200): one retry, without. `refused` is
/// set only when that retry worked, so a real error is not blamed on the
/// locale.
/// The retry keeps every other option (`RateLimits` above all: a send
/// without them would not be counted).
fn send_in_language(
    api: &dyn VerifyApi,
    to: &str,
    method: Method,
    opts: &SendOptions,
    refused: &mut Option<ApiError>,
) -> Result<Verification, ApiError> {
    let first = api.send(to, method, opts);
    let locale = opts.locale;
    let locale_refusal = [
        codes::NOT_FOUND,
        codes::INVALID_PARAMETER,
        codes::LOCALE_NO_VOICE,
    ];
    match first {
        Err(e)
            if locale.is_some() && e.twilio_code().is_some_and(|c| locale_refusal.contains(&c)) =>
        {
            let without = SendOptions {
                locale: None,
                ..*opts
            };
            let second = api.send(to, method, &without);
            if second.is_ok() {
                *refused = Some(e);
            }
            second
        }
        other => other,
    }
}
