//! Domain types that are parsed once and cannot hold a bad value.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization as _;

/// RFC 5321 limits: 254 octets for a whole path, 64 for the local part.
const MAX_EMAIL_BYTES: usize = 254;
const MAX_LOCAL_PART_BYTES: usize = 64;
const MAX_DOMAIN_LABEL_BYTES: usize = 63;
/// Characters that never belong in an unquoted address (we refuse quoted local parts).
const FORBIDDEN_IN_ADDRESS: &[char] =
    &['<', '>', '(', ')', '[', ']', '\\', ',', ';', ':', '"', '@'];

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("an e-mail address may not contain control characters or line breaks")]
    ControlCharacter,
    #[error("an e-mail address is at most 254 bytes long")]
    TooLong,
    #[error("an e-mail address needs exactly one @ with text on both sides")]
    Shape,
    #[error("the part before the @ is not a valid mailbox name")]
    LocalPart,
    #[error("the part after the @ is not a valid domain")]
    Domain,
}

/// Checks the shape every address (stored or normalised) must have.
fn validate_address(address: &str) -> Result<(), EmailError> {
    // CR/LF anywhere is header injection waiting to happen; refuse every control character.
    if address.chars().any(char::is_control) {
        return Err(EmailError::ControlCharacter);
    }
    if address.len() > MAX_EMAIL_BYTES {
        return Err(EmailError::TooLong);
    }
    let mut parts = address.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(EmailError::Shape);
    };
    if local.is_empty() || domain.is_empty() {
        return Err(EmailError::Shape);
    }
    let bad_char = |c: char| c.is_whitespace() || FORBIDDEN_IN_ADDRESS.contains(&c);
    if local.len() > MAX_LOCAL_PART_BYTES
        || local.chars().any(bad_char)
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
    {
        return Err(EmailError::LocalPart);
    }
    let domain_ok = domain.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= MAX_DOMAIN_LABEL_BYTES
            && !label.starts_with('-')
            && !label.ends_with('-')
            && !label.chars().any(bad_char)
    });
    if !domain_ok {
        return Err(EmailError::Domain);
    }
    Ok(())
}

/// An address as the user stored it: where mail goes. Never derived from request input
/// at reset time (Django CVE-2019-19844).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        if raw.chars().any(char::is_control) {
            return Err(EmailError::ControlCharacter);
        }
        let trimmed = raw.trim();
        validate_address(trimmed)?;
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The lookup key this stored address is found under.
    pub fn key(&self) -> EmailKey {
        // A stored address is valid, and normalising a valid address keeps it valid except
        // in pathological cases (NFKC expansion past 254 bytes); fall back to the lowercase
        // form rather than refusing a stored user.
        EmailKey::normalise(&self.0).unwrap_or_else(|_| EmailKey(self.0.to_lowercase()))
    }

    /// The part before the `@`, for similarity checks.
    pub fn local_part(&self) -> &str {
        self.0.split('@').next().unwrap_or_default()
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = EmailError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<EmailAddress> for String {
    fn from(value: EmailAddress) -> Self {
        value.0
    }
}

impl fmt::Debug for EmailAddress {
    // Addresses are personal data: keep them out of debug output and therefore logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EmailAddress(<redacted>)")
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The normalised form an address is looked up by: NFKC, then Unicode case folding, then
/// trimming, then validated. Two addresses collide only if their keys are equal.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailKey(String);

impl EmailKey {
    /// Normalise and validate request input. CR/LF (and every other control character)
    /// anywhere in the raw input is refused, before normalisation could hide it.
    pub fn normalise(raw: &str) -> Result<Self, EmailError> {
        if raw.chars().any(char::is_control) {
            return Err(EmailError::ControlCharacter);
        }
        // Bound the work before normalising: NFKC can expand a string up to 18 times.
        if raw.len() > MAX_EMAIL_BYTES * 4 {
            return Err(EmailError::TooLong);
        }
        let key = closed_fold(raw)?;
        validate_address(&key)?;
        Ok(Self(key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// NFKC, case fold, NFKC again and trim, repeated until nothing changes: Unicode's
/// NFKC_Casefold idea. One round is not closed: case folding can leave text that NFKC
/// composes differently ("ß\u{301}" folds to "ss\u{301}", which composes to "sś"), so
/// `key(key(x))` would differ from `key(x)` and one address would have two keys.
fn closed_fold(raw: &str) -> Result<String, EmailError> {
    // ASCII is its own NFKC form and case-folds to its ASCII lowercase, so the rounds
    // below settle at once on exactly this; most addresses skip the Unicode tables.
    if raw.is_ascii() {
        return Ok(raw.to_ascii_lowercase().trim().to_owned());
    }
    closed_fold_unicode(raw)
}

fn closed_fold_unicode(raw: &str) -> Result<String, EmailError> {
    /// Real text settles in two rounds; the bound only keeps a loop from being endless.
    const MAX_ROUNDS: usize = 8;
    let round = |text: &str| -> String {
        let nfkc: String = text.nfkc().collect();
        let folded: String = caseless::default_case_fold_str(&nfkc).nfkc().collect();
        folded.trim().to_owned()
    };
    let mut current = round(raw);
    for _ in 0..MAX_ROUNDS {
        // Normalisation can expand text; never spend rounds on what cannot be valid.
        if current.len() > MAX_EMAIL_BYTES * 4 {
            return Err(EmailError::TooLong);
        }
        let next = round(&current);
        if next == current {
            return Ok(current);
        }
        current = next;
    }
    Err(EmailError::Shape)
}

impl TryFrom<String> for EmailKey {
    type Error = EmailError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        let key = Self::normalise(&value)?;
        // A stored key must already be normal: re-normalising changes nothing.
        if key.0 == value {
            Ok(key)
        } else {
            Err(EmailError::Shape)
        }
    }
}

impl From<EmailKey> for String {
    fn from(value: EmailKey) -> Self {
        value.0
    }
}

impl fmt::Debug for EmailKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EmailKey(<redacted>)")
    }
}

/// The typed address trimmed and lower-cased (`str::to_lowercase`): what many apps store
/// and index their users' addresses as (`USERS_EMAIL_MATCH=lower`). Only a way to find
/// candidates; a match is mailed only if its stored address has the requested [`EmailKey`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EmailLower(String);

impl EmailLower {
    pub fn of(raw: &str) -> Self {
        Self(raw.trim().to_lowercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for EmailLower {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EmailLower(<redacted>)")
    }
}

/// What a reset request looks users up by: the lookup key, and the lower-cased spelling
/// for tables indexed on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailLookup {
    pub key: EmailKey,
    pub lower: EmailLower,
}

impl EmailLookup {
    /// From request input: refused exactly when [`EmailKey::normalise`] refuses it.
    pub fn from_request(raw: &str) -> Result<Self, EmailError> {
        Ok(Self {
            key: EmailKey::normalise(raw)?,
            lower: EmailLower::of(raw),
        })
    }
}

impl From<EmailKey> for EmailLookup {
    /// For a key alone (an outbox item written before the lower spelling was carried, or
    /// an address typed in lower case already): the key is its own lower spelling.
    fn from(key: EmailKey) -> Self {
        let lower = EmailLower(key.as_str().to_owned());
        Self { key, lower }
    }
}

/// An opaque, URL-safe user id (never the e-mail address).
///
/// Two spellings, never ambiguous: a key that is already 1 to 64 characters of
/// `A-Z a-z 0-9 - _` is its own id (so a team's `id` attribute `"42"` or `"u-7f3a"` is the
/// `uid` in links and events as it is); any other key value (an address, a key with dots
/// or slashes, a long one) is `~` followed by its UTF-8 bytes in base64url without padding.
/// [`UserId::from_key`] and [`UserId::key_value`] convert between the two.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "a user id is 1 to 64 characters of A-Z, a-z, 0-9, '-' and '_', or '~' and the base64url \
     of a key of up to 255 bytes"
)]
pub struct UserIdError;

/// Marks the encoded spelling of a [`UserId`] (RFC 3986 unreserved, so links keep it).
const ENCODED_UID_MARK: char = '~';

impl UserId {
    pub const MAX_LEN: usize = 64;
    /// The longest key value an id can carry (longer ones cannot take part in resets).
    pub const MAX_KEY_BYTES: usize = 255;

    /// A fresh random id: 128 bits, base64url without padding (22 characters).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A fresh random id of digits only (18 of them, below 10^18): one a key of type `N`
    /// can hold as well as one of type `S`.
    pub fn generate_numeric() -> Self {
        use rand::Rng as _;
        let n: u64 = rand::rng().random_range(100_000_000_000_000_000..1_000_000_000_000_000_000);
        Self(n.to_string())
    }

    pub fn parse(raw: &str) -> Result<Self, UserIdError> {
        if is_plain_uid(raw) {
            return Ok(Self(raw.to_owned()));
        }
        // The encoded spelling must be the one `from_key` makes for a key that needs it.
        let encoded = raw.strip_prefix(ENCODED_UID_MARK).ok_or(UserIdError)?;
        let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| UserIdError)?;
        let key = String::from_utf8(bytes).map_err(|_| UserIdError)?;
        match Self::from_key(&key) {
            Some(id) if id.0 == raw => Ok(id),
            _ => Err(UserIdError),
        }
    }

    /// The id of a user whose key attribute holds `value` (`None`: empty, or longer than
    /// [`Self::MAX_KEY_BYTES`]).
    pub fn from_key(value: &str) -> Option<Self> {
        if is_plain_uid(value) {
            return Some(Self(value.to_owned()));
        }
        if value.is_empty() || value.len() > Self::MAX_KEY_BYTES {
            return None;
        }
        Some(Self(format!(
            "{ENCODED_UID_MARK}{}",
            URL_SAFE_NO_PAD.encode(value.as_bytes())
        )))
    }

    /// The key attribute's value this id stands for.
    pub fn key_value(&self) -> String {
        match self.0.strip_prefix(ENCODED_UID_MARK) {
            Some(encoded) => URL_SAFE_NO_PAD
                .decode(encoded)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .unwrap_or_default(),
            None => self.0.clone(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_plain_uid(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= UserId::MAX_LEN
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl TryFrom<String> for UserId {
    type Error = UserIdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<UserId> for String {
    fn from(value: UserId) -> Self {
        value.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stored password hash: an argon2id PHC string, or an imported format such as Django's
/// `pbkdf2_sha256$…`, kept as it is until a reset replaces it.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    pub fn new(encoded: impl Into<String>) -> Self {
        Self(encoded.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Django marks accounts that cannot log in with a password by a leading `!`.
    pub fn is_usable(&self) -> bool {
        !self.0.is_empty() && !self.0.starts_with('!')
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

/// A password as typed, NFKC-normalised (so the same password typed on another keyboard
/// still matches). Not yet checked against the policy; see [`crate::policy`].
pub struct CandidatePassword(SecretString);

impl CandidatePassword {
    pub fn new(raw: &str) -> Self {
        Self(SecretString::from(raw.nfkc().collect::<String>()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn into_secret(self) -> SecretString {
        self.0
    }
}

impl fmt::Debug for CandidatePassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CandidatePassword(<redacted>)")
    }
}

/// A user record as the core sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: UserId,
    pub email: EmailAddress,
    pub password_hash: Option<PasswordHash>,
    pub active: bool,
    /// Incremented by one in the same conditional write as every new hash, so the rest of
    /// the system can end each session issued before it. A user item without it is at 0.
    pub credential_version: u64,
    /// The language stored for the user (`USERS_LOCALE_ATTRIBUTE`, or `locale` in
    /// pwreset's own layout): it wins over the one a request asked for.
    pub locale: Option<crate::i18n::Locale>,
}

impl User {
    pub fn email_key(&self) -> EmailKey {
        self.email.key()
    }

    /// The hash a reset token may be bound to: only active users with a usable password
    /// take part in resets at all.
    pub fn resettable_hash(&self) -> Option<&PasswordHash> {
        match &self.password_hash {
            Some(hash) if self.active && hash.is_usable() => Some(hash),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ordinary_addresses_parse_and_keep_their_case() {
        let email = EmailAddress::parse("  Mike@Example.ORG ").expect("valid");
        assert_eq!(email.as_str(), "Mike@Example.ORG");
        assert_eq!(email.key().as_str(), "mike@example.org");
    }

    #[test]
    fn line_breaks_anywhere_are_refused() {
        for raw in ["a@b.c\r\nBcc: x@y.z", "a\n@b.c", "a@b.c\n", "\ra@b.c"] {
            assert_eq!(
                EmailKey::normalise(raw),
                Err(EmailError::ControlCharacter),
                "{raw:?}"
            );
            assert_eq!(
                EmailAddress::parse(raw),
                Err(EmailError::ControlCharacter),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for raw in [
            "",
            "plain",
            "@example.org",
            "a@",
            "a@@b.org",
            "a@b@c.org",
            "a b@c.org",
            ".a@b.org",
            "a..b@c.org",
            "a@b..org",
            "a@-b.org",
            "<a@b.org>",
            "\"a\"@b.org",
        ] {
            assert!(
                EmailKey::normalise(raw).is_err(),
                "{raw:?} should be refused"
            );
        }
        let long = format!("{}@example.org", "a".repeat(250));
        assert!(EmailKey::normalise(&long).is_err());
        let long_local = format!("{}@example.org", "a".repeat(65));
        assert_eq!(EmailKey::normalise(&long_local), Err(EmailError::LocalPart));
    }

    #[test]
    fn fullwidth_and_kelvin_look_alikes_normalise_to_the_plain_key() {
        let plain = EmailKey::normalise("mike@example.org").expect("valid");
        for raw in [
            "ＭＩＫＥ@example.org",
            "MIKE@EXAMPLE.ORG",
            "mi\u{212A}e@example.org",
        ] {
            assert_eq!(EmailKey::normalise(raw).expect("valid"), plain, "{raw}");
        }
    }

    #[test]
    fn dotless_i_does_not_collide_with_ascii_i() {
        // Django's CVE-2019-19844: "mıke".upper() == "MIKE". Case folding keeps them apart.
        let plain = EmailKey::normalise("mike@example.org").expect("valid");
        let dotless = EmailKey::normalise("m\u{131}ke@example.org").expect("valid");
        assert_ne!(plain, dotless);
    }

    #[test]
    fn a_stored_key_must_already_be_normal() {
        assert!(EmailKey::try_from("mike@example.org".to_owned()).is_ok());
        assert!(EmailKey::try_from("Mike@example.org".to_owned()).is_err());
    }

    #[test]
    fn user_ids_are_url_safe_and_bounded() {
        let uid = UserId::generate();
        assert_eq!(uid.as_str().len(), 22);
        assert_eq!(UserId::parse(uid.as_str()), Ok(uid));
        for bad in ["", "a/b", "a b", "a.b", "é", &"a".repeat(65)] {
            assert_eq!(UserId::parse(bad), Err(UserIdError), "{bad:?}");
        }
    }

    #[test]
    fn team_keys_become_ids_that_links_carry_and_come_back() {
        // Safe keys are their own id; every other value is encoded, never mangled.
        for (key, plain) in [
            ("42", true),
            ("u-7f3a_B", true),
            ("mike@example.org", false),
            ("a.b/c d", false),
            ("Gr\u{fc}\u{df}e", false),
            ("~already-marked", false),
            (&"a".repeat(65), false),
        ] {
            let uid = UserId::from_key(key).expect("id");
            assert_eq!(uid.as_str() == key, plain, "{key:?}");
            assert!(
                uid.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_~".contains(&b)),
                "{uid:?}"
            );
            assert_eq!(uid.key_value(), key);
            assert_eq!(UserId::parse(uid.as_str()), Ok(uid));
        }
        assert_eq!(UserId::from_key(""), None);
        assert_eq!(UserId::from_key(&"\u{e9}".repeat(128)), None);
        // An encoded spelling of a key that needs none is not an id: one key, one id.
        let needless = format!("~{}", URL_SAFE_NO_PAD.encode("42"));
        assert_eq!(UserId::parse(&needless), Err(UserIdError));
        for bad in ["~", "~!!", "~wA"] {
            assert_eq!(UserId::parse(bad), Err(UserIdError), "{bad:?}");
        }
        let numeric = UserId::generate_numeric();
        assert_eq!(numeric.as_str().len(), 18);
        assert!(numeric.as_str().bytes().all(|b| b.is_ascii_digit()));
    }

    proptest! {
        #[test]
        fn every_key_round_trips_through_its_id(key in prop_oneof![
            hard_local_part(),
            "[a-z0-9._/+~ -]{1,80}",
            "\\PC{1,60}",
        ]) {
            if let Some(uid) = UserId::from_key(&key) {
                prop_assert_eq!(uid.key_value(), key.clone());
                prop_assert_eq!(UserId::parse(uid.as_str()), Ok(uid));
            } else {
                prop_assert!(key.len() > UserId::MAX_KEY_BYTES);
            }
        }
    }

    #[test]
    fn the_lower_spelling_is_trimmed_lower_case_and_never_printed() {
        let lookup = EmailLookup::from_request("  Mike@Example.ORG ").expect("valid");
        assert_eq!(lookup.lower.as_str(), "mike@example.org");
        assert_eq!(lookup.key.as_str(), "mike@example.org");
        // Lower-casing is not case folding: the key folds the sharp s, the lower form keeps it.
        let sharp = EmailLookup::from_request("Stra\u{df}e@example.org").expect("valid");
        assert_eq!(sharp.lower.as_str(), "stra\u{df}e@example.org");
        assert_eq!(sharp.key.as_str(), "strasse@example.org");
        assert!(!format!("{lookup:?}").contains("mike"));
        assert!(EmailLookup::from_request("no address").is_err());
    }

    #[test]
    fn secrets_and_personal_data_never_show_in_debug_output() {
        let hash = PasswordHash::new("$argon2id$v=19$secret");
        let email = EmailAddress::parse("mike@example.org").expect("valid");
        let password = CandidatePassword::new("correct horse battery staple");
        let shown = format!("{hash:?} {email:?} {:?} {password:?}", email.key());
        assert!(!shown.contains("secret"));
        assert!(!shown.contains("mike"));
        assert!(!shown.contains("horse"));
    }

    #[test]
    fn unusable_or_inactive_users_have_no_resettable_hash() {
        let email = EmailAddress::parse("a@b.org").expect("valid");
        let mut user = User {
            uid: UserId::generate(),
            email,
            password_hash: Some(PasswordHash::new("$argon2id$x")),
            active: true,
            credential_version: 0,
            locale: None,
        };
        assert!(user.resettable_hash().is_some());
        user.active = false;
        assert!(user.resettable_hash().is_none());
        user.active = true;
        user.password_hash = Some(PasswordHash::new("!unusable"));
        assert!(user.resettable_hash().is_none());
        user.password_hash = None;
        assert!(user.resettable_hash().is_none());
    }

    #[test]
    fn keys_of_keys_are_the_same_key_where_one_fold_was_not_closed() {
        // Each of these folded (NFKC, then case fold) to text that NFKC composes again.
        for raw in [
            "stra\u{DF}\u{301}e@example.org",
            "\u{3AA}\u{301}@example.org",
            "\u{1F80}\u{308}@example.org",
            "\u{1E9E}\u{301}@example.org",
            "\u{1C82}\u{308}@example.org",
        ] {
            let key = EmailKey::normalise(raw).expect("a valid address");
            let again = EmailKey::normalise(key.as_str()).expect("a key re-normalises");
            assert_eq!(again.as_str(), key.as_str(), "{raw:?}");
            // The outbox stores keys as text and reads them back through TryFrom.
            assert_eq!(
                EmailKey::try_from(key.as_str().to_owned()).map(|k| k.0),
                Ok(key.0.clone()),
                "{raw:?}"
            );
        }
    }

    /// Characters where normalisation and case folding interact: combining marks (the
    /// Greek iota subscript among them), Greek and polytonic Greek, Cherokee in both cases,
    /// Latin and Armenian ligatures, sharp s, dotted I, Kelvin, full-width letters, plus
    /// plain ASCII so many samples are valid addresses.
    fn hard_char() -> impl Strategy<Value = char> {
        prop_oneof![
            3 => proptest::char::range('a', 'z'),
            1 => proptest::char::range('A', 'Z'),
            2 => proptest::char::range('\u{300}', '\u{36F}'),
            1 => Just('\u{345}'),
            2 => proptest::char::range('\u{370}', '\u{3FF}'),
            2 => proptest::char::range('\u{1F00}', '\u{1FFF}'),
            1 => proptest::char::range('\u{13A0}', '\u{13F5}'),
            1 => proptest::char::range('\u{AB70}', '\u{ABBF}'),
            1 => proptest::char::range('\u{FB00}', '\u{FB06}'),
            1 => proptest::char::range('\u{FB13}', '\u{FB17}'),
            1 => prop::sample::select(vec!['\u{DF}', '\u{1E9E}', '\u{130}', '\u{212A}', '\u{1C82}']),
            1 => proptest::char::range('\u{FF21}', '\u{FF5A}'),
        ]
    }

    /// A local part of hard characters, sometimes one short unit repeated many times.
    fn hard_local_part() -> impl Strategy<Value = String> {
        let drawn = prop::collection::vec(hard_char(), 1..24).prop_map(String::from_iter);
        let repeated = (prop::collection::vec(hard_char(), 1..4), 2usize..30)
            .prop_map(|(unit, times)| unit.iter().cycle().take(unit.len() * times).collect());
        prop_oneof![3 => drawn, 1 => repeated]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn the_key_of_a_key_is_the_same_key(
            local in hard_local_part(),
            domain in prop_oneof![
                Just("example.org".to_owned()),
                hard_local_part().prop_map(|label| format!("{label}.org")),
            ],
        ) {
            let raw = format!("{local}@{domain}");
            if let Ok(key) = EmailKey::normalise(&raw) {
                let again = EmailKey::normalise(key.as_str()).expect("a key re-normalises");
                prop_assert_eq!(again.as_str(), key.as_str());
                prop_assert!(EmailKey::try_from(key.as_str().to_owned()).is_ok());
            }
        }
    }

    proptest! {
        #[test]
        fn normalising_never_panics_and_is_idempotent(raw in "\\PC{0,80}") {
            if let Ok(key) = EmailKey::normalise(&raw) {
                let again = EmailKey::normalise(key.as_str()).expect("a key re-normalises");
                prop_assert_eq!(again, key);
            }
        }

        #[test]
        fn the_ascii_shortcut_folds_as_the_unicode_rounds_do(raw in "[\\x00-\\x7f]{0,80}") {
            prop_assert_eq!(closed_fold(&raw), closed_fold_unicode(&raw));
        }

        #[test]
        fn accepted_keys_never_contain_line_breaks(raw in "[a-zA-Z0-9.\\r\\n@ -]{0,40}") {
            if let Ok(key) = EmailKey::normalise(&raw) {
                prop_assert!(!key.as_str().contains(['\r', '\n']));
                prop_assert_eq!(key.as_str().matches('@').count(), 1);
            }
        }

        #[test]
        fn any_control_character_is_refused(
            prefix in "[a-z]{1,10}",
            control in proptest::char::range('\u{0}', '\u{1f}'),
            suffix in "[a-z]{0,5}@example\\.org",
        ) {
            let raw = format!("{prefix}{control}{suffix}");
            prop_assert_eq!(EmailKey::normalise(&raw), Err(EmailError::ControlCharacter));
        }

        #[test]
        fn case_never_matters_for_ascii_addresses(local in "[a-zA-Z0-9]{1,20}", domain in "[a-zA-Z]{1,10}\\.[a-z]{2,4}") {
            let lower = EmailKey::normalise(&format!("{}@{}", local.to_lowercase(), domain.to_lowercase()));
            let upper = EmailKey::normalise(&format!("{}@{}", local.to_uppercase(), domain.to_uppercase()));
            prop_assert_eq!(lower, upper);
        }
    }
}
