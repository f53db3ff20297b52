//! Password policy in the style of NIST SP 800-63B-4: length, a strength estimator
//! (zxcvbn, which carries real frequency lists of leaked passwords, names and words), no
//! all-digit passwords, nothing built from the user's own address. No composition rules.

use std::fmt;

use secrecy::SecretString;

use crate::domain::{CandidatePassword, EmailAddress};

pub const DEFAULT_MIN_LENGTH: usize = 12;
/// Passwords must be accepted up to at least 64 characters, so the minimum cannot exceed it.
pub const MAX_MIN_LENGTH: usize = 64;
/// Above this many bytes of normalised UTF-8 a password is refused before hashing (hash DoS).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// zxcvbn's matching is superlinear; a prefix this long already tells weak from strong.
const ESTIMATOR_PREFIX_CHARS: usize = 100;
/// zxcvbn score (0–4) a password needs: 3 = "safely unguessable: moderate protection from
/// offline slow-hash scenario" (argon2id is exactly that).
const MIN_SCORE: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    min_length: usize,
}

/// A password that passed the policy: the only kind the service hashes on a reset.
pub struct AcceptedPassword(SecretString);

impl AcceptedPassword {
    pub fn into_secret(self) -> SecretString {
        self.0
    }
}

impl fmt::Debug for AcceptedPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AcceptedPassword(<redacted>)")
    }
}

/// Why a password was refused, each reason a sentence a user understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the password does not meet the policy")]
pub struct WeakPassword {
    pub reasons: Vec<String>,
}

impl PasswordPolicy {
    /// `min_length` is clamped to 1..=64 by configuration parsing; see [`crate::config`].
    pub fn new(min_length: usize) -> Self {
        Self {
            min_length: min_length.clamp(1, MAX_MIN_LENGTH),
        }
    }

    pub fn min_length(&self) -> usize {
        self.min_length
    }

    pub fn check(
        &self,
        candidate: CandidatePassword,
        email: &EmailAddress,
    ) -> Result<AcceptedPassword, WeakPassword> {
        let password = candidate.expose();
        // The byte cap comes first and alone: nothing else may spend time on a huge input.
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(WeakPassword {
                reasons: vec![format!(
                    "Use a shorter password: at most {MAX_PASSWORD_BYTES} bytes (about {MAX_PASSWORD_BYTES} letters, fewer with accents or emoji)."
                )],
            });
        }
        let mut reasons = Vec::new();
        let length = password.chars().count();
        if length < self.min_length {
            reasons.push(format!(
                "Use at least {} characters (this one has {length}).",
                self.min_length
            ));
        }
        if !password.is_empty() && password.chars().all(|c| c.is_ascii_digit()) {
            reasons.push("Don't use only digits: add words or other characters.".to_owned());
        }
        if resembles_email(password, email) {
            reasons.push("Don't base your password on your e-mail address.".to_owned());
        }
        if reasons.is_empty() {
            if let Some(reason) = estimator_verdict(password, email) {
                reasons.push(reason);
            }
        }
        if reasons.is_empty() {
            Ok(AcceptedPassword(candidate.into_secret()))
        } else {
            Err(WeakPassword { reasons })
        }
    }
}

/// The reason a password change gives when the new password is the current one.
pub const SAME_AS_CURRENT: &str = "Choose a password different from your current one.";

impl PasswordPolicy {
    /// [`Self::check`] for a change: also refuses the current password itself (both
    /// compared in their NFKC form, as they are hashed).
    pub fn check_change(
        &self,
        candidate: CandidatePassword,
        current: &CandidatePassword,
        email: &EmailAddress,
    ) -> Result<AcceptedPassword, WeakPassword> {
        let same = candidate.expose() == current.expose();
        match (self.check(candidate, email), same) {
            (Ok(accepted), false) => Ok(accepted),
            (Ok(_), true) => Err(WeakPassword {
                reasons: vec![SAME_AS_CURRENT.to_owned()],
            }),
            (Err(mut weak), true) => {
                weak.reasons.insert(0, SAME_AS_CURRENT.to_owned());
                Err(weak)
            }
            (Err(weak), false) => Err(weak),
        }
    }
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self::new(DEFAULT_MIN_LENGTH)
    }
}

fn fold(text: &str) -> String {
    caseless::default_case_fold_str(text)
}

/// Too similar: the address, its mailbox name or its domain name make up most of it, or
/// the password is a piece of the address.
fn resembles_email(password: &str, email: &EmailAddress) -> bool {
    let password: String = fold(password)
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect();
    if password.is_empty() {
        return false;
    }
    let address = fold(email.as_str());
    let compact_address: String = address.chars().filter(|c| c.is_alphanumeric()).collect();
    if compact_address.contains(&password) {
        return true;
    }
    let local: String = fold(email.local_part())
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect();
    // A mailbox name of 4+ characters covering half the password or more.
    local.chars().count() >= 4 && password.contains(&local) && local.len() * 2 >= password.len()
}

fn estimator_verdict(password: &str, email: &EmailAddress) -> Option<String> {
    let prefix: String = password.chars().take(ESTIMATOR_PREFIX_CHARS).collect();
    let local = email.local_part().to_owned();
    let domain = email
        .as_str()
        .rsplit('@')
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut inputs: Vec<&str> = vec![email.as_str(), &local, &domain];
    inputs.extend(
        local
            .split(|c: char| !c.is_alphanumeric())
            .filter(|p| p.len() >= 3),
    );
    let estimate = zxcvbn::zxcvbn(&prefix, &inputs);
    if (estimate.score() as u8) >= MIN_SCORE {
        return None;
    }
    let mut reason = String::from("This password is too easy to guess");
    match estimate.feedback().and_then(|f| f.warning()) {
        Some(warning) => {
            reason.push_str(": ");
            reason.push_str(&warning.to_string());
            if !reason.ends_with('.') {
                reason.push('.');
            }
        }
        None => reason.push_str(". Try a few unrelated words together."),
    }
    Some(reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn email() -> EmailAddress {
        EmailAddress::parse("mike.jones@example.org").expect("valid")
    }

    fn check(password: &str) -> Result<AcceptedPassword, WeakPassword> {
        PasswordPolicy::default().check(CandidatePassword::new(password), &email())
    }

    fn reasons(password: &str) -> Vec<String> {
        check(password).err().map(|w| w.reasons).unwrap_or_default()
    }

    #[test]
    fn a_long_passphrase_is_accepted() {
        assert!(check("correct horse battery staple violin").is_ok());
        assert!(check("Tr0ub4dor&3-blue-kettle-mango").is_ok());
    }

    #[test]
    fn a_short_password_says_how_long_it_must_be() {
        let reasons = reasons("kX9#vq");
        assert!(
            reasons.iter().any(|r| r.contains("at least 12 characters")),
            "{reasons:?}"
        );
    }

    #[test]
    fn common_passwords_are_refused_even_when_long_enough() {
        for weak in [
            "password1234",
            "qwertyuiopasdf",
            "iloveyou12345",
            "aaaaaaaaaaaaaaaa",
            "abcdefghijklmnop",
        ] {
            assert!(check(weak).is_err(), "{weak} should be refused");
        }
    }

    #[test]
    fn all_digit_passwords_are_refused() {
        let reasons = reasons("83920174659203");
        assert!(
            reasons.iter().any(|r| r.contains("only digits")),
            "{reasons:?}"
        );
    }

    #[test]
    fn passwords_built_from_the_email_are_refused() {
        for similar in [
            "mike.jones@example.org",
            "mikejonesexample",
            "MikeJones2024!!",
            "example.org",
        ] {
            let reasons = reasons(similar);
            assert!(
                reasons.iter().any(|r| r.contains("e-mail")),
                "{similar}: {reasons:?}"
            );
        }
    }

    #[test]
    fn sixty_four_characters_and_more_are_accepted() {
        let long = "violin kettle mango quartz ".repeat(4);
        assert!(long.len() >= 64);
        assert!(check(&long).is_ok());
        let very_long: String = (0..40).map(|i| format!("word{i}-")).collect();
        assert!(very_long.len() > 256 && very_long.len() <= MAX_PASSWORD_BYTES);
        assert!(check(&very_long).is_ok());
    }

    #[test]
    fn more_than_1024_bytes_is_refused_with_one_reason() {
        let huge = "x".repeat(MAX_PASSWORD_BYTES + 1);
        let reasons = reasons(&huge);
        assert_eq!(reasons.len(), 1);
        assert!(reasons[0].contains("1024"));
        // Exactly at the cap is judged on its merits, not refused for length.
        let at_cap: String = "quartz-violin-"
            .repeat(80)
            .chars()
            .take(MAX_PASSWORD_BYTES)
            .collect();
        assert!(!self::reasons(&at_cap).iter().any(|r| r.contains("1024")));
    }

    #[test]
    fn the_byte_cap_counts_normalised_utf8() {
        // "ﬃ" (U+FB03, 3 bytes) becomes "ffi" under NFKC; 342 of them are 1026 bytes after.
        let ligatures = "\u{FB03}".repeat(342);
        assert!(ligatures.len() <= MAX_PASSWORD_BYTES + 2);
        let reasons = reasons(&ligatures);
        assert!(reasons[0].contains("1024"), "{reasons:?}");
    }

    #[test]
    fn the_minimum_length_is_configurable_and_counts_characters() {
        let policy = PasswordPolicy::new(20);
        let err = policy
            .check(CandidatePassword::new("violin-kettle-mango"), &email())
            .err()
            .map(|w| w.reasons)
            .unwrap_or_default();
        assert!(err.iter().any(|r| r.contains("at least 20")), "{err:?}");
        // Twelve accented characters are twelve characters, not 24 bytes.
        let accents = "éàüöçñåøßþðæ";
        assert_eq!(accents.chars().count(), 12);
        assert!(!reasons(accents).iter().any(|r| r.contains("at least")));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn no_input_panics_and_every_refusal_has_a_reason(raw in "\\PC{0,300}") {
            match check(&raw) {
                Ok(_) => prop_assert!(CandidatePassword::new(&raw).expose().chars().count() >= 12),
                Err(weak) => prop_assert!(!weak.reasons.is_empty()),
            }
        }

        #[test]
        fn digit_strings_are_always_refused(digits in "[0-9]{1,64}") {
            prop_assert!(check(&digits).is_err());
        }

        /// Keyboard walks and repeats are where zxcvbn's guess counting overflowed (a panic
        /// in debug builds, a wrapped count in release): long strings over a few adjacent
        /// keys of one row, shifted and unshifted, and of the keypad.
        #[test]
        fn long_keyboard_walks_and_repeats_get_a_verdict_never_a_panic(
            password in keyboard_walk(),
        ) {
            match check(&password) {
                Ok(_) => prop_assert!(password.chars().count() >= DEFAULT_MIN_LENGTH),
                Err(weak) => prop_assert!(!weak.reasons.is_empty()),
            }
        }
    }

    /// 28 to 300 characters drawn from 1 to 4 neighbouring keys of one keyboard row (with
    /// its shifted twin mixed in half the time), or one short unit repeated.
    fn keyboard_walk() -> impl Strategy<Value = String> {
        const ROWS: &[(&str, &str)] = &[
            ("`1234567890-=", "~!@#$%^&*()_+"),
            ("qwertyuiop[]\\", "QWERTYUIOP{}|"),
            ("asdfghjkl;'", "ASDFGHJKL:\""),
            ("zxcvbnm,./", "ZXCVBNM<>?"),
            ("7894561230", "7894561230"),
            ("/*-+.", "/*-+."),
        ];
        let keys = (0..ROWS.len(), 0usize..10, 1usize..=4, any::<bool>()).prop_map(
            |(row, start, width, shifted)| {
                let (plain, upper) = ROWS[row];
                let plain: Vec<char> = plain.chars().collect();
                let upper: Vec<char> = upper.chars().collect();
                let start = start % (plain.len() - width + 1);
                let mut keys: Vec<char> = plain[start..start + width].to_vec();
                if shifted {
                    keys.extend(&upper[start..start + width]);
                }
                keys
            },
        );
        let drawn = keys.prop_flat_map(|keys| {
            prop::collection::vec(prop::sample::select(keys), 28..=300)
                .prop_map(|chars| chars.into_iter().collect::<String>())
        });
        let repeated = (keys_unit(), 28usize..=300)
            .prop_map(|(unit, len)| unit.chars().cycle().take(len).collect::<String>());
        prop_oneof![drawn, repeated]
    }

    fn keys_unit() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "qw", "as", "45", "12", "Wq", "!1", "qaz", "zaq", "4561",
        ])
        .prop_map(str::to_owned)
    }

    #[test]
    fn the_walks_that_overflowed_the_estimator_get_a_verdict() {
        for password in [
            "qw".repeat(20),
            "45".repeat(20),
            "Wq".repeat(45),
            "45245245245245245245245245245".to_owned(),
        ] {
            assert!(
                check(&password).is_err_and(|weak| !weak.reasons.is_empty()),
                "{password}"
            );
        }
    }
}
