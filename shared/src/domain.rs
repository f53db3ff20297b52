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

/// An opaque, URL-safe user id (never the e-mail address).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a user id is 1 to 64 characters of A-Z, a-z, 0-9, '-' and '_'")]
pub struct UserIdError;

impl UserId {
    pub const MAX_LEN: usize = 64;

    /// A fresh random id: 128 bits, base64url without padding (22 characters).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn parse(raw: &str) -> Result<Self, UserIdError> {
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(UserIdError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
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
