//! Password policy in the style of NIST SP 800-63B-4: length, a strength estimator
//! (zxcvbn, which carries real frequency lists of leaked passwords, names and words), no
//! all-digit passwords, nothing built from the user's own address. No composition rules.

use std::fmt;

use secrecy::SecretString;

use crate::domain::{CandidatePassword, EmailAddress};
use crate::i18n::Locale;

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

/// Why a password was refused: [`WeakPassword::reasons`], each with a stable code and a
/// sentence in every shipped language.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the password does not meet the policy")]
pub struct WeakPassword {
    pub reasons: Vec<Reason>,
}

/// One rule a password broke.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reason {
    /// Over [`MAX_PASSWORD_BYTES`] of normalised UTF-8.
    TooLong {
        max_bytes: usize,
    },
    /// Fewer characters than the minimum.
    TooShort {
        min: usize,
        actual: usize,
    },
    AllDigits,
    /// Built from the address.
    LikeEmail,
    /// The estimator's verdict, with its hint when it has one.
    TooGuessable(Option<zxcvbn::feedback::Warning>),
    /// A change to the current password itself.
    SameAsCurrent,
}

impl Reason {
    /// Every code [`Reason::code`] answers: a frontend that translates itself keys on these.
    pub const CODES: [&'static str; 6] = [
        "too_long",
        "too_short",
        "all_digits",
        "similar_to_email",
        "too_guessable",
        "same_as_current",
    ];

    /// The stable, machine-readable code (`reason_codes` in a `422 weak_password`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLong { .. } => "too_long",
            Self::TooShort { .. } => "too_short",
            Self::AllDigits => "all_digits",
            Self::LikeEmail => "similar_to_email",
            Self::TooGuessable(_) => "too_guessable",
            Self::SameAsCurrent => "same_as_current",
        }
    }

    /// The sentence a user reads, in `locale`.
    pub fn text(&self, locale: Locale) -> String {
        use Locale::{De, En, Es, Fr};
        match (self, locale) {
            (Self::TooLong { max_bytes: n }, En) => format!(
                "Use a shorter password: at most {n} bytes (about {n} letters, fewer with accents or emoji)."
            ),
            (Self::TooLong { max_bytes: n }, De) => format!(
                "Wählen Sie ein kürzeres Passwort: höchstens {n} Bytes (etwa {n} Buchstaben, weniger mit Umlauten, Akzenten oder Emojis)."
            ),
            (Self::TooLong { max_bytes: n }, Fr) => format!(
                "Choisissez un mot de passe plus court : {n} octets au plus (environ {n} lettres, moins avec des accents ou des emojis)."
            ),
            (Self::TooLong { max_bytes: n }, Es) => format!(
                "Elige una contraseña más corta: como máximo {n} bytes (unas {n} letras, menos si lleva tildes o emojis)."
            ),
            (Self::TooShort { min, actual }, En) => {
                format!("Use at least {min} characters (this one has {actual}).")
            }
            (Self::TooShort { min, actual }, De) => {
                format!("Verwenden Sie mindestens {min} Zeichen (dieses hat {actual}).")
            }
            (Self::TooShort { min, actual }, Fr) => {
                format!("Utilisez au moins {min} caractères (celui-ci en compte {actual}).")
            }
            (Self::TooShort { min, actual }, Es) => {
                format!("Usa al menos {min} caracteres (esta tiene {actual}).")
            }
            (Self::AllDigits, En) => "Don't use only digits: add words or other characters.".into(),
            (Self::AllDigits, De) => {
                "Verwenden Sie nicht nur Ziffern: Nehmen Sie Wörter oder andere Zeichen dazu."
                    .into()
            }
            (Self::AllDigits, Fr) => {
                "N'utilisez pas que des chiffres : ajoutez des mots ou d'autres caractères.".into()
            }
            (Self::AllDigits, Es) => {
                "No uses solo números: añade palabras u otros caracteres.".into()
            }
            (Self::LikeEmail, En) => "Don't base your password on your e-mail address.".into(),
            (Self::LikeEmail, De) => {
                "Leiten Sie Ihr Passwort nicht von Ihrer E-Mail-Adresse ab.".into()
            }
            (Self::LikeEmail, Fr) => {
                "Ne construisez pas votre mot de passe à partir de votre adresse e-mail.".into()
            }
            (Self::LikeEmail, Es) => {
                "No bases tu contraseña en tu dirección de correo electrónico.".into()
            }
            (Self::SameAsCurrent, En) => {
                "Choose a password different from your current one.".into()
            }
            (Self::SameAsCurrent, De) => "Wählen Sie ein anderes Passwort als Ihr jetziges.".into(),
            (Self::SameAsCurrent, Fr) => "Choisissez un mot de passe différent de l'actuel.".into(),
            (Self::SameAsCurrent, Es) => "Elige una contraseña distinta de la actual.".into(),
            (Self::TooGuessable(warning), _) => {
                let lead = match locale {
                    En => "This password is too easy to guess",
                    De => "Dieses Passwort ist zu leicht zu erraten",
                    Fr => "Ce mot de passe est trop facile à deviner",
                    Es => "Esta contraseña es demasiado fácil de adivinar",
                };
                match warning {
                    Some(warning) => {
                        let colon = if locale == Fr { " : " } else { ": " };
                        format!("{lead}{colon}{}", warning_text(*warning, locale))
                    }
                    None => {
                        let hint = match locale {
                            En => "Try a few unrelated words together.",
                            De => {
                                "Versuchen Sie es mit einigen Wörtern, die nichts miteinander zu tun haben."
                            }
                            Fr => "Essayez plusieurs mots sans rapport entre eux.",
                            Es => "Prueba con varias palabras sin relación entre sí.",
                        };
                        format!("{lead}. {hint}")
                    }
                }
            }
        }
    }
}

/// The estimator's hint in `locale` (zxcvbn's own English words for English).
fn warning_text(warning: zxcvbn::feedback::Warning, locale: Locale) -> String {
    use zxcvbn::feedback::Warning as W;
    let text = match locale {
        Locale::En => {
            let mut text = warning.to_string();
            if !text.ends_with('.') {
                text.push('.');
            }
            return text;
        }
        Locale::De => match warning {
            W::StraightRowsOfKeysAreEasyToGuess => {
                "Tastenreihen wie „asdf“ sind leicht zu erraten."
            }
            W::ShortKeyboardPatternsAreEasyToGuess => {
                "Kurze Tastaturmuster sind leicht zu erraten."
            }
            W::RepeatsLikeAaaAreEasyToGuess => "Wiederholungen wie „aaa“ sind leicht zu erraten.",
            W::RepeatsLikeAbcAbcAreOnlySlightlyHarderToGuess => {
                "Wiederholungen wie „abcabcabc“ sind kaum schwerer zu erraten als „abc“."
            }
            W::ThisIsATop10Password => "Es gehört zu den 10 häufigsten Passwörtern.",
            W::ThisIsATop100Password => "Es gehört zu den 100 häufigsten Passwörtern.",
            W::ThisIsACommonPassword => "Es ist ein sehr häufiges Passwort.",
            W::ThisIsSimilarToACommonlyUsedPassword => {
                "Es ähnelt einem häufig verwendeten Passwort."
            }
            W::SequencesLikeAbcAreEasyToGuess => "Folgen wie abc oder 6543 sind leicht zu erraten.",
            W::RecentYearsAreEasyToGuess => {
                "Jahreszahlen der letzten Jahre sind leicht zu erraten."
            }
            W::AWordByItselfIsEasyToGuess => "Ein einzelnes Wort ist leicht zu erraten.",
            W::DatesAreOftenEasyToGuess => "Datumsangaben sind oft leicht zu erraten.",
            W::NamesAndSurnamesByThemselvesAreEasyToGuess => {
                "Vor- und Nachnamen allein sind leicht zu erraten."
            }
            W::CommonNamesAndSurnamesAreEasyToGuess => {
                "Häufige Vor- und Nachnamen sind leicht zu erraten."
            }
        },
        Locale::Fr => match warning {
            W::StraightRowsOfKeysAreEasyToGuess => {
                "Les rangées de touches comme « azerty » sont faciles à deviner."
            }
            W::ShortKeyboardPatternsAreEasyToGuess => {
                "Les petits motifs de clavier sont faciles à deviner."
            }
            W::RepeatsLikeAaaAreEasyToGuess => {
                "Les répétitions comme « aaa » sont faciles à deviner."
            }
            W::RepeatsLikeAbcAbcAreOnlySlightlyHarderToGuess => {
                "Les répétitions comme « abcabcabc » ne sont guère plus difficiles à deviner que « abc »."
            }
            W::ThisIsATop10Password => "C'est l'un des 10 mots de passe les plus courants.",
            W::ThisIsATop100Password => "C'est l'un des 100 mots de passe les plus courants.",
            W::ThisIsACommonPassword => "C'est un mot de passe très courant.",
            W::ThisIsSimilarToACommonlyUsedPassword => {
                "Il ressemble à un mot de passe très répandu."
            }
            W::SequencesLikeAbcAreEasyToGuess => {
                "Les suites comme abc ou 6543 sont faciles à deviner."
            }
            W::RecentYearsAreEasyToGuess => "Les années récentes sont faciles à deviner.",
            W::AWordByItselfIsEasyToGuess => "Un mot seul est facile à deviner.",
            W::DatesAreOftenEasyToGuess => "Les dates sont souvent faciles à deviner.",
            W::NamesAndSurnamesByThemselvesAreEasyToGuess => {
                "Un prénom ou un nom seul est facile à deviner."
            }
            W::CommonNamesAndSurnamesAreEasyToGuess => {
                "Les prénoms et noms courants sont faciles à deviner."
            }
        },
        Locale::Es => match warning {
            W::StraightRowsOfKeysAreEasyToGuess => {
                "Las filas de teclas seguidas, como «asdf», son fáciles de adivinar."
            }
            W::ShortKeyboardPatternsAreEasyToGuess => {
                "Los patrones cortos de teclado son fáciles de adivinar."
            }
            W::RepeatsLikeAaaAreEasyToGuess => {
                "Las repeticiones como «aaa» son fáciles de adivinar."
            }
            W::RepeatsLikeAbcAbcAreOnlySlightlyHarderToGuess => {
                "Las repeticiones como «abcabcabc» apenas son más difíciles de adivinar que «abc»."
            }
            W::ThisIsATop10Password => "Es una de las 10 contraseñas más comunes.",
            W::ThisIsATop100Password => "Es una de las 100 contraseñas más comunes.",
            W::ThisIsACommonPassword => "Es una contraseña muy común.",
            W::ThisIsSimilarToACommonlyUsedPassword => "Se parece a una contraseña muy usada.",
            W::SequencesLikeAbcAreEasyToGuess => {
                "Las secuencias como abc o 6543 son fáciles de adivinar."
            }
            W::RecentYearsAreEasyToGuess => "Los años recientes son fáciles de adivinar.",
            W::AWordByItselfIsEasyToGuess => "Una palabra sola es fácil de adivinar.",
            W::DatesAreOftenEasyToGuess => "Las fechas suelen ser fáciles de adivinar.",
            W::NamesAndSurnamesByThemselvesAreEasyToGuess => {
                "Un nombre o un apellido solo es fácil de adivinar."
            }
            W::CommonNamesAndSurnamesAreEasyToGuess => {
                "Los nombres y apellidos comunes son fáciles de adivinar."
            }
        },
    };
    text.to_owned()
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
                reasons: vec![Reason::TooLong {
                    max_bytes: MAX_PASSWORD_BYTES,
                }],
            });
        }
        let mut reasons = Vec::new();
        let length = password.chars().count();
        if length < self.min_length {
            reasons.push(Reason::TooShort {
                min: self.min_length,
                actual: length,
            });
        }
        if !password.is_empty() && password.chars().all(|c| c.is_ascii_digit()) {
            reasons.push(Reason::AllDigits);
        }
        if resembles_email(password, email) {
            reasons.push(Reason::LikeEmail);
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
                reasons: vec![Reason::SameAsCurrent],
            }),
            (Err(mut weak), true) => {
                weak.reasons.insert(0, Reason::SameAsCurrent);
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

fn estimator_verdict(password: &str, email: &EmailAddress) -> Option<Reason> {
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
    Some(Reason::TooGuessable(
        estimate.feedback().and_then(|f| f.warning()),
    ))
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

    /// The reasons as an English reader sees them.
    fn reasons(password: &str) -> Vec<String> {
        check(password)
            .err()
            .map(|w| w.reasons.iter().map(|r| r.text(Locale::En)).collect())
            .unwrap_or_default()
    }

    #[test]
    fn every_reason_speaks_every_language_and_has_a_listed_code() {
        use zxcvbn::feedback::Warning as W;
        let mut all = vec![
            Reason::TooLong { max_bytes: 1024 },
            Reason::TooShort { min: 12, actual: 3 },
            Reason::AllDigits,
            Reason::LikeEmail,
            Reason::SameAsCurrent,
            Reason::TooGuessable(None),
        ];
        all.extend(
            [
                W::StraightRowsOfKeysAreEasyToGuess,
                W::ShortKeyboardPatternsAreEasyToGuess,
                W::RepeatsLikeAaaAreEasyToGuess,
                W::RepeatsLikeAbcAbcAreOnlySlightlyHarderToGuess,
                W::ThisIsATop10Password,
                W::ThisIsATop100Password,
                W::ThisIsACommonPassword,
                W::ThisIsSimilarToACommonlyUsedPassword,
                W::SequencesLikeAbcAreEasyToGuess,
                W::RecentYearsAreEasyToGuess,
                W::AWordByItselfIsEasyToGuess,
                W::DatesAreOftenEasyToGuess,
                W::NamesAndSurnamesByThemselvesAreEasyToGuess,
                W::CommonNamesAndSurnamesAreEasyToGuess,
            ]
            .map(|w| Reason::TooGuessable(Some(w))),
        );
        let mut codes = std::collections::BTreeSet::new();
        for reason in all {
            assert!(Reason::CODES.contains(&reason.code()), "{reason:?}");
            codes.insert(reason.code());
            let english = reason.text(Locale::En);
            assert!(english.ends_with('.'), "{english}");
            for locale in [Locale::De, Locale::Fr, Locale::Es] {
                let text = reason.text(locale);
                assert!(text.ends_with('.'), "{locale}: {text}");
                assert_ne!(text, english, "{reason:?} is not translated into {locale}");
            }
        }
        assert_eq!(
            codes.len(),
            Reason::CODES.len(),
            "every listed code is used"
        );
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
        assert_eq!(
            err,
            [Reason::TooShort {
                min: 20,
                actual: 19
            }]
        );
        assert!(err[0].text(Locale::En).contains("at least 20"), "{err:?}");
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
