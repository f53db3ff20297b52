//! Hash interop proven with the other side's own code (`testkit/interop/hashes.py`, run with the
//! tool cache's Python: Django 5.2's `check_password`/`make_password`, argon2-cffi and
//! bcrypt, installed by `scripts/install-tools`):
//! - what the hasher writes in the Django format passes Django's `check_password`, and
//!   the default PHC string passes argon2-cffi, for the password's NFKC form — the rule a
//!   sign-in in another language applies;
//! - pwreset's `verify` accepts hashes Django and bcrypt made, for the right password only.

use pwreset_core::domain::PasswordHash;
use pwreset_core::hashing::{self, HashFormat, PasswordHasher};
use pwreset_testkit::interop::hashes_py;
use secrecy::SecretString;
use serde_json::json;
use unicode_normalization::UnicodeNormalization as _;

/// Plain ASCII, Greek with accents, a combining mark, a ligature and full-width letters
/// (the last three change under NFKC), and a long repeat.
const PASSWORDS: [&str; 5] = [
    "violin kettle mango",
    "Ωραίο πρωινό στην Αθήνα",
    "cafe\u{0301} au lait, s'il vous plaît",
    "\u{FB01}ddle \u{FF56}\u{FF49}\u{FF4F}\u{FF4C}\u{FF49}\u{FF4E} kettle",
    "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz1",
];

fn nfkc(password: &str) -> String {
    password.nfkc().collect()
}

#[tokio::test]
async fn django_and_argon2_cffi_verify_what_a_reset_writes() {
    let django = PasswordHasher::owasp().writing(HashFormat::Django);
    let phc = PasswordHasher::owasp();
    let mut checks = Vec::new();
    let mut expected = Vec::new();
    for password in PASSWORDS {
        for hasher in [&django, &phc] {
            let hash = hasher
                .hash(SecretString::from(password))
                .await
                .expect("hash");
            // The sign-in normalises as the reset did; the typed form (when NFKC changes
            // it) and a wrong password do not verify.
            checks.push(json!([nfkc(password), hash.as_str()]));
            expected.push(true);
            checks.push(json!([format!("{password}!"), hash.as_str()]));
            expected.push(false);
            if nfkc(password) != password {
                checks.push(json!([password, hash.as_str()]));
                expected.push(false);
            }
        }
    }
    let answer = hashes_py(&json!({ "check": checks }));
    let checked = answer["checked"].as_array().expect("checked");
    assert_eq!(checked.len(), checks.len());
    for ((check, result), want) in checks.iter().zip(checked).zip(&expected) {
        let encoded = check[1].as_str().expect("hash");
        if encoded.starts_with("argon2$") {
            assert_eq!(
                result["django"],
                json!(want),
                "Django check_password on {check}"
            );
        } else {
            assert_eq!(result["argon2_cffi"], json!(want), "argon2-cffi on {check}");
            // Django reads bare PHC strings as no format it knows.
            assert_eq!(result["django"], json!(false), "{check}");
        }
    }
}

#[tokio::test]
async fn verify_accepts_hashes_django_and_bcrypt_made() {
    // The other side hashes the NFKC form, as the documented rule says a sign-in must.
    let request: Vec<String> = PASSWORDS.iter().map(|p| nfkc(p)).collect();
    let answer = hashes_py(&json!({ "make": request }));
    let made = answer["made"].as_array().expect("made");
    assert_eq!(made.len(), PASSWORDS.len());
    let hasher = PasswordHasher::owasp();
    for (typed, hashes) in PASSWORDS.iter().zip(made) {
        for format in ["django_pbkdf2_sha256", "django_argon2", "bcrypt_2b"] {
            let encoded = hashes[format].as_str().expect("hash");
            let stored = PasswordHash::new(encoded);
            let right = SecretString::from(*typed);
            let wrong = SecretString::from(format!("{typed}!"));
            assert!(hashing::verify(&right, &stored), "{format} for {typed:?}");
            assert!(
                !hashing::verify(&wrong, &stored),
                "{format}, wrong password"
            );
            // The pooled path the service and the dev login use.
            assert!(
                hasher
                    .verify(right, Some(stored.clone()))
                    .await
                    .expect("verify"),
                "{format} for {typed:?}, pooled"
            );
            assert!(
                !hasher.verify(wrong, Some(stored)).await.expect("verify"),
                "{format}, wrong password, pooled"
            );
        }
    }
}

/// The e-mail key a sign-up in another language must write for `USERS_EMAIL_MATCH=key`:
/// Python's `email_key` (the README's recipe, in `hashes.py`) gives exactly
/// `EmailKey::normalise` on addresses where a naive lower-case would not (sharp s, final
/// sigma, full-width letters, ligatures, combining marks, the Kelvin sign, dotted I, a
/// title-case digraph, surrounding spaces, a long repeat), each local part at two domains.
#[test]
fn email_key_in_python_is_the_key_pwreset_looks_up() {
    use pwreset_core::domain::EmailKey;
    const LOCAL: [&str; 14] = [
        "Ada",
        "STRASSE",
        "Stra\u{DF}e",
        "Stra\u{DF}\u{301}e",
        "\u{39F}\u{394}\u{3A5}\u{3A3}\u{3A3}\u{395}\u{3A5}\u{3A3}",
        "\u{3BF}\u{3B4}\u{3C5}\u{3C3}\u{3C3}\u{3B5}\u{3CD}\u{3C2}",
        "\u{FF41}\u{FF44}\u{FF41}",
        "\u{FB01}ddle.\u{FB03}",
        "cafe\u{301}",
        "\u{212A}elvin",
        "\u{130}stanbul",
        "\u{1C5}ungla",
        "  padded ",
        "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
    ];
    const DOMAIN: [&str; 2] = ["Example.ORG", "\u{FF25}xample.org "];
    let addresses: Vec<String> = LOCAL
        .iter()
        .flat_map(|local| DOMAIN.iter().map(move |domain| format!("{local}@{domain}")))
        .collect();
    let answer = hashes_py(&json!({ "email_keys": addresses }));
    let keys = answer["email_keys"].as_array().expect("email_keys");
    assert_eq!(keys.len(), addresses.len());
    let mut normalised = 0;
    for (address, python) in addresses.iter().zip(keys) {
        let python = python.as_str().expect("key");
        match EmailKey::normalise(address) {
            Ok(key) => {
                normalised += 1;
                assert_eq!(key.as_str(), python, "key of {address:?}");
            }
            // pwreset also refuses what is not an address; Python's key must not be one
            // pwreset would accept either.
            Err(error) => assert!(
                EmailKey::normalise(python).is_err(),
                "{address:?} refused ({error:?}) but its Python key {python:?} is accepted"
            ),
        }
    }
    // The hard cases must really be compared, not all refused.
    assert!(normalised >= 24, "only {normalised} addresses normalised");
}
