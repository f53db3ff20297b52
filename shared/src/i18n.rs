//! The languages pwreset speaks: the mails, the reference pages and the policy's reasons,
//! each written for its readers (not word by word), English when nothing else fits.
//!
//! A request asks with `Accept-Language` ([`Locale::negotiate`], RFC 9110 quality values,
//! RFC 4647 lookup by primary subtag); a reset request carries its choice on the outbox
//! item, so the mail speaks the language of the page that asked; a locale stored on the
//! user (`USERS_LOCALE_ATTRIBUTE`) wins over both.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A shipped language.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    #[default]
    En,
    De,
    Fr,
    Es,
}

impl Locale {
    pub const ALL: [Self; 4] = [Self::En, Self::De, Self::Fr, Self::Es];

    /// The BCP 47 tag (`en`, `de`, `fr`, `es`).
    pub fn tag(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::De => "de",
            Self::Fr => "fr",
            Self::Es => "es",
        }
    }

    /// A language tag (`de`, `de-AT`, `FR_ca`, `es-419`) by its primary subtag; `None` for
    /// a language not shipped.
    pub fn from_tag(tag: &str) -> Option<Self> {
        let primary = tag
            .trim()
            .split(['-', '_'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        Self::ALL.into_iter().find(|l| l.tag() == primary)
    }

    /// The best shipped language for an `Accept-Language` value: the highest quality first
    /// (ties in the order given), a `q=0` range never, `*` as English; English when
    /// nothing fits or the header is absent or unreadable.
    pub fn negotiate(accept_language: Option<&str>) -> Self {
        let Some(header) = accept_language else {
            return Self::En;
        };
        let mut best: Option<(u16, Self)> = None;
        // A header this long is not a browser's: read only its start.
        for range in header.split(',').take(32) {
            let mut parts = range.split(';');
            let tag = parts.next().unwrap_or_default().trim();
            let quality = parts
                .find_map(|p| {
                    let p = p.trim();
                    p.strip_prefix("q=").or_else(|| p.strip_prefix("Q="))
                })
                .map_or(Some(1000), parse_quality);
            let (Some(quality), Some(locale)) = (
                quality,
                if tag == "*" {
                    Some(Self::En)
                } else {
                    Self::from_tag(tag)
                },
            ) else {
                continue;
            };
            if quality > 0 && best.is_none_or(|(q, _)| quality > q) {
                best = Some((quality, locale));
            }
        }
        best.map_or(Self::En, |(_, locale)| locale)
    }
}

/// `0`, `0.5`, `1.000` as thousandths; anything else (`2`, `0.5x`, `-1`) is unreadable.
fn parse_quality(raw: &str) -> Option<u16> {
    let raw = raw.trim();
    let (whole, fraction) = raw.split_once('.').unwrap_or((raw, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: u16 = format!("{fraction:0<3}").parse().ok()?;
    match whole {
        "0" => Some(digits),
        "1" if digits == 0 => Some(1000),
        _ => None,
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag())
    }
}

/// A count with its unit, in words, with the language's plural rule: "1 hour",
/// "60 minutes", "1 Stunde", "60 Minuten", "1 heure", "2 días".
pub fn duration_in_words(locale: Locale, seconds: i64) -> String {
    #[derive(Clone, Copy)]
    enum Unit {
        Day,
        Hour,
        Minute,
        Second,
    }
    let (n, unit) = if seconds >= 86_400 && seconds % 86_400 == 0 {
        (seconds / 86_400, Unit::Day)
    } else if seconds >= 3600 && seconds % 3600 == 0 {
        (seconds / 3600, Unit::Hour)
    } else if seconds >= 60 && seconds % 60 == 0 {
        (seconds / 60, Unit::Minute)
    } else {
        (seconds, Unit::Second)
    };
    // English and German: singular for 1 only. French: singular for 0 and 1. Spanish:
    // singular for 1 only (CLDR's "one").
    let one = match locale {
        Locale::Fr => n == 0 || n == 1,
        Locale::En | Locale::De | Locale::Es => n == 1,
    };
    let word = match (locale, unit, one) {
        (Locale::En, Unit::Day, true) => "day",
        (Locale::En, Unit::Day, false) => "days",
        (Locale::En, Unit::Hour, true) => "hour",
        (Locale::En, Unit::Hour, false) => "hours",
        (Locale::En, Unit::Minute, true) => "minute",
        (Locale::En, Unit::Minute, false) => "minutes",
        (Locale::En, Unit::Second, true) => "second",
        (Locale::En, Unit::Second, false) => "seconds",
        (Locale::De, Unit::Day, true) => "Tag",
        (Locale::De, Unit::Day, false) => "Tagen",
        (Locale::De, Unit::Hour, true) => "Stunde",
        (Locale::De, Unit::Hour, false) => "Stunden",
        (Locale::De, Unit::Minute, true) => "Minute",
        (Locale::De, Unit::Minute, false) => "Minuten",
        (Locale::De, Unit::Second, true) => "Sekunde",
        (Locale::De, Unit::Second, false) => "Sekunden",
        (Locale::Fr, Unit::Day, true) => "jour",
        (Locale::Fr, Unit::Day, false) => "jours",
        (Locale::Fr, Unit::Hour, true) => "heure",
        (Locale::Fr, Unit::Hour, false) => "heures",
        (Locale::Fr, Unit::Minute, true) => "minute",
        (Locale::Fr, Unit::Minute, false) => "minutes",
        (Locale::Fr, Unit::Second, true) => "seconde",
        (Locale::Fr, Unit::Second, false) => "secondes",
        (Locale::Es, Unit::Day, true) => "día",
        (Locale::Es, Unit::Day, false) => "días",
        (Locale::Es, Unit::Hour, true) => "hora",
        (Locale::Es, Unit::Hour, false) => "horas",
        (Locale::Es, Unit::Minute, true) => "minuto",
        (Locale::Es, Unit::Minute, false) => "minutos",
        (Locale::Es, Unit::Second, true) => "segundo",
        (Locale::Es, Unit::Second, false) => "segundos",
    };
    format!("{n} {word}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_quality_shipped_language_wins() {
        let cases = [
            (None, Locale::En),
            (Some(""), Locale::En),
            (Some("de"), Locale::De),
            (Some("de-AT,de;q=0.9,en;q=0.8"), Locale::De),
            (Some("fr-CA"), Locale::Fr),
            (Some("es-419,es;q=0.9"), Locale::Es),
            (Some("ja,de;q=0.5"), Locale::De),
            (Some("en;q=0.5,fr;q=0.9"), Locale::Fr),
            (Some("fr;q=0,de;q=0.1"), Locale::De),
            (Some("fr;q=0"), Locale::En),
            (Some("*"), Locale::En),
            (Some("ja, zh"), Locale::En),
            (Some("de;q=2,fr"), Locale::Fr),
            (Some("DE_de"), Locale::De),
            (Some("es;q=0.8, de;q=0.8"), Locale::Es),
            (Some("garbage;;;q=,,,"), Locale::En),
        ];
        for (header, want) in cases {
            assert_eq!(Locale::negotiate(header), want, "{header:?}");
        }
    }

    proptest::proptest! {
        /// Any header at all negotiates to a shipped language, quickly, without panicking.
        #[test]
        fn any_header_negotiates(header in "\\PC{0,300}") {
            let _ = Locale::negotiate(Some(&header));
        }
    }

    #[test]
    fn durations_follow_each_languages_plural_rule() {
        assert_eq!(duration_in_words(Locale::En, 3600), "1 hour");
        assert_eq!(duration_in_words(Locale::En, 5400), "90 minutes");
        assert_eq!(duration_in_words(Locale::De, 3600), "1 Stunde");
        assert_eq!(duration_in_words(Locale::De, 7200), "2 Stunden");
        assert_eq!(duration_in_words(Locale::De, 86_400 * 2), "2 Tagen");
        assert_eq!(duration_in_words(Locale::Fr, 60), "1 minute");
        assert_eq!(duration_in_words(Locale::Fr, 1800), "30 minutes");
        assert_eq!(duration_in_words(Locale::Es, 3600), "1 hora");
        assert_eq!(duration_in_words(Locale::Es, 45), "45 segundos");
    }
}
