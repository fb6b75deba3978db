//! The list of messages: every text a user sees has a stable id here, the
//! same id as the `msgctxt` of its entry in `po/twilio-2fa.pot`.

/// How a message is used, which decides what an admin may override.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A sentence or prompt.
    Text,
    /// A sentence with singular and plural forms, chosen by its number.
    Plural,
    /// A word the user types (`key_*`, `word_*`): not overridable, since
    /// scripts and the prompts that name them depend on them.
    Answer,
}

macro_rules! messages {
    ($($variant:ident = $id:literal $kind:ident [$($p:literal),*];)*) => {
        /// A message id.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Msg { $($variant),* }

        impl Msg {
            pub const ALL: &'static [Msg] = &[$(Msg::$variant),*];

            /// The stable id: `[messages]` keys and the catalogs' msgctxt.
            pub fn id(self) -> &'static str {
                match self { $(Msg::$variant => $id),* }
            }

            /// The `{name}` placeholders every text of it must contain.
            pub fn placeholders(self) -> &'static [&'static str] {
                match self { $(Msg::$variant => &[$($p),*]),* }
            }

            pub fn kind(self) -> Kind {
                match self { $(Msg::$variant => Kind::$kind),* }
            }
        }
    };
}

messages! {
    NoPhone = "no_phone" Text [];
    BadPhone = "bad_phone" Text [];
    Unavailable = "unavailable" Text [];
    SetupError = "setup_error" Text [];
    BadFormat = "bad_format" Text [];
    WrongCode = "wrong_code" Text [];
    TooManyWrong = "too_many_wrong" Text [];
    TooManyInvalid = "too_many_invalid" Text [];
    Expired = "expired" Text ["key"];
    SendLimit = "send_limit" Text [];
    RateLimited = "rate_limited" Text [];
    RequestLimit = "request_limit" Text [];
    SendFailed = "send_failed" Text [];
    CheckFailed = "check_failed" Text [];
    Blocked = "blocked" Text [];
    NoMethodReaches = "no_method_reaches" Text [];
    Busy = "busy" Text [];
    NumberChanged = "number_changed" Text [];
    LockedOut = "locked_out" Plural ["minutes"];
    DamagedState = "damaged_state" Text ["user"];
    MenuHeader = "menu_header" Text [];
    MenuPrompt = "menu_prompt" Text ["count"];
    MenuInvalid = "menu_invalid" Text ["count"];
    NewNumberChange = "new_number_change" Text [];
    NewNumberOptional = "new_number_optional" Text ["skip"];
    NewNumber = "new_number" Text [];
    SameNumber = "same_number" Text [];
    NumberNotANumber = "number_not_a_number" Text [];
    NumberNeedsCountryCode = "number_needs_country_code" Text [];
    NumberCountryNamed = "number_country_named" Text ["country"];
    NumberCountry = "number_country" Text [];
    ContactAdmin = "contact_admin" Text [];
    NumberLineType = "number_line_type" Text ["line_type"];
    NumberLineTypeUnknown = "number_line_type_unknown" Text [];
    NumberLookupUnavailable = "number_lookup_unavailable" Text [];
    LineTypeLandline = "line_type_landline" Text [];
    LineTypeFixedVoip = "line_type_fixed_voip" Text [];
    LineTypeVoip = "line_type_voip" Text [];
    LineTypeTollFree = "line_type_toll_free" Text [];
    LineTypePremium = "line_type_premium" Text [];
    LineTypeSharedCost = "line_type_shared_cost" Text [];
    LineTypeUan = "line_type_uan" Text [];
    LineTypeVoicemail = "line_type_voicemail" Text [];
    LineTypePager = "line_type_pager" Text [];
    LineTypePersonal = "line_type_personal" Text [];
    LineTypeMobile = "line_type_mobile" Text [];
    Remembered = "remembered" Plural ["minutes"];
    MethodUnreachable = "method_unreachable" Text ["method"];
    CodePromptSent = "code_prompt_sent" Text ["method", "phone", "choices"];
    CodePromptReused = "code_prompt_reused" Text ["method", "phone", "choices"];
    ChoiceNewCode = "choice_new_code" Text ["key"];
    ChoiceOtherMethod = "choice_other_method" Text ["key"];
    ChoiceChange = "choice_change" Text ["key"];
    ChangeAfterCode = "change_after_code" Text [];
    ResendWait = "resend_wait" Plural ["seconds"];
    MethodSms = "method_sms" Text [];
    MethodCall = "method_call" Text [];
    MethodWhatsapp = "method_whatsapp" Text [];
    KeyNewCode = "key_new_code" Answer [];
    WordNewCode = "word_new_code" Answer [];
    KeyOtherMethod = "key_other_method" Answer [];
    WordOtherMethod = "word_other_method" Answer [];
    KeyChange = "key_change" Answer [];
    WordChange = "word_change" Answer [];
    WordSkip = "word_skip" Answer [];
}

impl Msg {
    pub fn from_id(id: &str) -> Option<Msg> {
        Msg::ALL.iter().copied().find(|m| m.id() == id)
    }
}
