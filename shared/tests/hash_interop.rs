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
