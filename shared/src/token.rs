//! One-time reset tokens: an issue time and an HMAC-SHA256 over the user's id, stored
//! e-mail address, current password hash and that issue time.
//!
//! The token is bound to the current hash, so it dies the moment any password change lands
//! (the conditional write in the store makes that atomic). Keys rotate: the first key signs,
//! every key verifies.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use secrecy::{ExposeSecret as _, SecretSlice};
use sha2::Sha256;

use crate::domain::{EmailAddress, PasswordHash, UserId};

type HmacSha256 = Hmac<Sha256>;

const VERSION: u8 = 1;
const MAC_LEN: usize = 32;
const TOKEN_BYTES: usize = 1 + 8 + MAC_LEN;
/// Longest encoded token we even try to decode.
const MAX_TOKEN_CHARS: usize = 128;
/// Tokens "issued" further than this in the future are forgeries or clock trouble.
const MAX_CLOCK_SKEW_SECS: i64 = 60;
pub const MIN_KEY_BYTES: usize = 32;

/// The HMAC keys from `TOKEN_KEYS`; the first signs, all verify.
#[derive(Clone)]
pub struct TokenKeys(Vec<SecretSlice<u8>>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenKeysError {
    #[error("no key given")]
    Empty,
    #[error("key {0} is not valid base64")]
    NotBase64(usize),
    #[error("key {position} is {len} bytes; each key needs at least {MIN_KEY_BYTES}", position = .0, len = .1)]
    TooShort(usize, usize),
}

impl TokenKeys {
    /// Parses comma-separated base64 (standard or URL-safe alphabet, padding optional).
    pub fn parse(csv: &str) -> Result<Self, TokenKeysError> {
        let mut keys = Vec::new();
        for (index, part) in csv.split(',').map(str::trim).enumerate() {
            let position = index + 1;
            if part.is_empty() {
                return Err(TokenKeysError::NotBase64(position));
            }
            let unpadded = part.trim_end_matches('=');
            let bytes = STANDARD
                .decode(part)
                .or_else(|_| URL_SAFE.decode(part))
                .or_else(|_| URL_SAFE_NO_PAD.decode(unpadded))
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(unpadded))
                .map_err(|_| TokenKeysError::NotBase64(position))?;
            if bytes.len() < MIN_KEY_BYTES {
                return Err(TokenKeysError::TooShort(position, bytes.len()));
            }
            keys.push(SecretSlice::from(bytes));
        }
        if keys.is_empty() {
            return Err(TokenKeysError::Empty);
        }
        Ok(Self(keys))
    }

    /// One fresh random key (the dev server's default: links die with the process).
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; MIN_KEY_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self(vec![SecretSlice::from(bytes)])
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn signing_key(&self) -> &SecretSlice<u8> {
        // Construction guarantees at least one key.
        &self.0[0]
    }
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenKeys({} keys, <redacted>)", self.0.len())
    }
}

/// What a token is bound to.
#[derive(Debug, Clone, Copy)]
pub struct TokenSubject<'a> {
    pub uid: &'a UserId,
    pub email: &'a EmailAddress,
    pub password_hash: &'a PasswordHash,
}

/// An encoded token as it travels in a link. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ResetToken(String);

impl ResetToken {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ResetToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResetToken(<redacted>)")
    }
}

/// A token's decoded parts: it has the right shape, nothing more is known yet.
#[derive(Clone, Copy)]
pub struct ParsedToken {
    issued_at: i64,
    mac: [u8; MAC_LEN],
}

impl fmt::Debug for ParsedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ParsedToken(<redacted>)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    #[error("the link is not valid")]
    Invalid,
    #[error("the link has expired")]
    Expired,
}

impl ParsedToken {
    pub fn parse(raw: &str) -> Result<Self, TokenRejection> {
        if raw.is_empty() || raw.len() > MAX_TOKEN_CHARS {
            return Err(TokenRejection::Invalid);
        }
        // Decoded on the stack: MAX_TOKEN_CHARS characters are at most 96 bytes.
        let mut buffer = [0u8; MAX_TOKEN_CHARS / 4 * 3];
        let len = URL_SAFE_NO_PAD
            .decode_slice(raw, &mut buffer)
            .map_err(|_| TokenRejection::Invalid)?;
        let bytes = &buffer[..len];
        if bytes.len() != TOKEN_BYTES || bytes[0] != VERSION {
            return Err(TokenRejection::Invalid);
        }
        let mut issued = [0u8; 8];
        issued.copy_from_slice(&bytes[1..9]);
        let mut mac = [0u8; MAC_LEN];
        mac.copy_from_slice(&bytes[9..]);
        Ok(Self {
            issued_at: i64::from_be_bytes(issued),
            mac,
        })
    }
}

/// Signs and verifies tokens with a lifetime.
#[derive(Debug, Clone)]
pub struct TokenSigner {
    keys: TokenKeys,
    lifetime_secs: i64,
}

impl TokenSigner {
    pub fn new(keys: TokenKeys, lifetime_secs: u64) -> Self {
        Self {
            keys,
            lifetime_secs: i64::try_from(lifetime_secs).unwrap_or(i64::MAX),
        }
    }

    pub fn lifetime_secs(&self) -> i64 {
        self.lifetime_secs
    }

    pub fn sign(&self, subject: TokenSubject<'_>, issued_at: i64) -> ResetToken {
        let mac = mac_for(self.keys.signing_key(), subject, issued_at);
        let mut bytes = Vec::with_capacity(TOKEN_BYTES);
        bytes.push(VERSION);
        bytes.extend_from_slice(&issued_at.to_be_bytes());
        bytes.extend_from_slice(&mac);
        ResetToken(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Checks the MAC first (under every key, in constant time), then the time: a forged
    /// token is `Invalid` even when it also looks old. Returns when the token expires.
    pub fn verify(
        &self,
        subject: TokenSubject<'_>,
        token: &ParsedToken,
        now: i64,
    ) -> Result<i64, TokenRejection> {
        let mut matched = false;
        for key in &self.keys.0 {
            let mut mac = keyed(key);
            feed(&mut mac, subject, token.issued_at);
            // `verify_slice` compares in constant time. Check every key, so the time taken
            // does not say which key signed.
            matched |= mac.verify_slice(&token.mac).is_ok();
        }
        if !matched {
            return Err(TokenRejection::Invalid);
        }
        if token.issued_at > now.saturating_add(MAX_CLOCK_SKEW_SECS) {
            return Err(TokenRejection::Invalid);
        }
        let expires_at = token.issued_at.saturating_add(self.lifetime_secs);
        if now > expires_at {
            return Err(TokenRejection::Expired);
        }
        Ok(expires_at)
    }

    /// The same work as a real check, against nothing: used when the uid is unknown so an
    /// unknown uid costs what a known one does.
    pub fn verify_against_nothing(&self, token: &ParsedToken) {
        let uid = UserId::parse("nobody").unwrap_or_else(|_| UserId::generate());
        let email = EmailAddress::parse("nobody@invalid.invalid");
        let hash = PasswordHash::new("!");
        if let Ok(email) = email {
            let subject = TokenSubject {
                uid: &uid,
                email: &email,
                password_hash: &hash,
            };
            let _ = self.verify(subject, token, token.issued_at);
        }
    }
}

fn keyed(key: &SecretSlice<u8>) -> HmacSha256 {
    // HMAC accepts keys of any length; this cannot fail.
    match <HmacSha256 as Mac>::new_from_slice(key.expose_secret()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

fn feed(mac: &mut HmacSha256, subject: TokenSubject<'_>, issued_at: i64) {
    // Domain-separated and length-prefixed, so no two different subjects feed the same bytes.
    mac.update(b"pwreset/reset-token/v1\0");
    for field in [
        subject.uid.as_str(),
        subject.email.as_str(),
        subject.password_hash.as_str(),
    ] {
        mac.update(&(field.len() as u64).to_be_bytes());
        mac.update(field.as_bytes());
    }
    mac.update(&issued_at.to_be_bytes());
}

fn mac_for(key: &SecretSlice<u8>, subject: TokenSubject<'_>, issued_at: i64) -> [u8; MAC_LEN] {
    let mut mac = keyed(key);
    feed(&mut mac, subject, issued_at);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_800_000_000;

    fn key(byte: u8) -> String {
        STANDARD.encode([byte; 32])
    }

    struct Fixture {
        uid: UserId,
        email: EmailAddress,
        hash: PasswordHash,
    }

    impl Fixture {
        fn new() -> Self {
            Self {
                uid: UserId::parse("u1").expect("valid"),
                email: EmailAddress::parse("mike@example.org").expect("valid"),
                hash: PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$abc$def"),
            }
        }
        fn subject(&self) -> TokenSubject<'_> {
            TokenSubject {
                uid: &self.uid,
                email: &self.email,
                password_hash: &self.hash,
            }
        }
    }

    fn signer(keys: &str) -> TokenSigner {
        TokenSigner::new(TokenKeys::parse(keys).expect("keys"), 3600)
    }

    fn check(
        signer: &TokenSigner,
        subject: TokenSubject<'_>,
        token: &str,
        now: i64,
    ) -> Result<i64, TokenRejection> {
        signer.verify(subject, &ParsedToken::parse(token)?, now)
    }

    #[test]
    fn a_fresh_token_verifies_and_says_when_it_expires() {
        let f = Fixture::new();
        let s = signer(&key(1));
        let token = s.sign(f.subject(), NOW);
        assert_eq!(
            check(&s, f.subject(), token.as_str(), NOW + 10),
            Ok(NOW + 3600)
        );
        assert!(
            token
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }

    #[test]
    fn a_token_expires_after_its_lifetime() {
        let f = Fixture::new();
        let s = signer(&key(1));
        let token = s.sign(f.subject(), NOW);
        assert!(check(&s, f.subject(), token.as_str(), NOW + 3600).is_ok());
        assert_eq!(
            check(&s, f.subject(), token.as_str(), NOW + 3601),
            Err(TokenRejection::Expired)
        );
    }

    #[test]
    fn a_token_dies_when_the_password_hash_changes() {
        let f = Fixture::new();
        let s = signer(&key(1));
        let token = s.sign(f.subject(), NOW);
        let mut changed = Fixture::new();
        changed.hash = PasswordHash::new("$argon2id$v=19$other");
        assert_eq!(
            check(&s, changed.subject(), token.as_str(), NOW),
            Err(TokenRejection::Invalid)
        );
    }

    #[test]
    fn a_token_for_one_user_does_not_work_for_another() {
        let f = Fixture::new();
        let s = signer(&key(1));
        let token = s.sign(f.subject(), NOW);
        let mut other = Fixture::new();
        other.uid = UserId::parse("u2").expect("valid");
        assert_eq!(
            check(&s, other.subject(), token.as_str(), NOW),
            Err(TokenRejection::Invalid)
        );
        let mut moved = Fixture::new();
        moved.email = EmailAddress::parse("mike@example.net").expect("valid");
        assert_eq!(
            check(&s, moved.subject(), token.as_str(), NOW),
            Err(TokenRejection::Invalid)
        );
    }

    #[test]
    fn a_forged_token_is_invalid_even_when_it_also_looks_expired() {
        let f = Fixture::new();
        let s = signer(&key(1));
        let attacker = signer(&key(9));
        let forged = attacker.sign(f.subject(), NOW - 100_000);
        assert_eq!(
            check(&s, f.subject(), forged.as_str(), NOW),
            Err(TokenRejection::Invalid)
        );
    }

    #[test]
    fn rotation_keeps_old_links_alive_until_the_key_is_removed() {
        let f = Fixture::new();
        let old = signer(&key(1));
        let token = old.sign(f.subject(), NOW);
        let rotated = signer(&format!("{},{}", key(2), key(1)));
        assert!(check(&rotated, f.subject(), token.as_str(), NOW).is_ok());
        // New tokens are signed with the new first key…
        let fresh = rotated.sign(f.subject(), NOW);
        assert!(check(&signer(&key(2)), f.subject(), fresh.as_str(), NOW).is_ok());
        // …and once the old key is gone, its tokens die.
        let retired = signer(&key(2));
        assert_eq!(
            check(&retired, f.subject(), token.as_str(), NOW),
            Err(TokenRejection::Invalid)
        );
    }

    #[test]
    fn tokens_from_the_future_are_refused() {
        let f = Fixture::new();
        let s = signer(&key(1));
        let token = s.sign(f.subject(), NOW + 3600);
        assert_eq!(
            check(&s, f.subject(), token.as_str(), NOW),
            Err(TokenRejection::Invalid)
        );
    }

    #[test]
    fn short_or_malformed_keys_are_refused() {
        assert_eq!(
            TokenKeys::parse("").err(),
            Some(TokenKeysError::NotBase64(1))
        );
        assert_eq!(
            TokenKeys::parse("not base64!").err(),
            Some(TokenKeysError::NotBase64(1))
        );
        assert_eq!(
            TokenKeys::parse(&STANDARD.encode([0u8; 16])).err(),
            Some(TokenKeysError::TooShort(1, 16))
        );
        assert_eq!(
            TokenKeys::parse(&format!("{},", key(1))).err(),
            Some(TokenKeysError::NotBase64(2))
        );
        let urlsafe = URL_SAFE_NO_PAD.encode([0xfb; 40]);
        assert_eq!(TokenKeys::parse(&urlsafe).map(|k| k.len()), Ok(1));
    }

    #[test]
    fn keys_never_show_in_debug_output() {
        let keys = TokenKeys::parse(&key(0x41)).expect("keys");
        assert!(!format!("{keys:?}").contains(&key(0x41)));
        let f = Fixture::new();
        let token = signer(&key(1)).sign(f.subject(), NOW);
        assert!(!format!("{token:?}").contains(token.as_str()));
    }

    proptest! {
        #[test]
        fn any_single_character_change_invalidates_a_token(position in 0usize..55, replacement in "[A-Za-z0-9_-]") {
            let f = Fixture::new();
            let s = signer(&key(1));
            let token = s.sign(f.subject(), NOW).as_str().to_owned();
            let mut chars: Vec<char> = token.chars().collect();
            let position = position % chars.len();
            let replacement = replacement.chars().next().expect("one char");
            prop_assume!(chars[position] != replacement);
            chars[position] = replacement;
            let tampered: String = chars.into_iter().collect();
            // The last character carries only 2 significant bits; a change there may decode
            // to the same bytes (base64 padding bits), which is not tampering.
            if let Ok(parsed) = ParsedToken::parse(&tampered) {
                let original = ParsedToken::parse(&token).expect("valid");
                if parsed.mac == original.mac && parsed.issued_at == original.issued_at {
                    return Ok(());
                }
            }
            prop_assert!(check(&s, f.subject(), &tampered, NOW).is_err());
        }

        #[test]
        fn arbitrary_text_never_verifies_or_panics(raw in "\\PC{0,200}") {
            let f = Fixture::new();
            let s = signer(&key(1));
            prop_assert!(check(&s, f.subject(), &raw, NOW).is_err());
        }

        #[test]
        fn sign_then_verify_round_trips(uid in "[A-Za-z0-9_-]{1,64}", issued in 0i64..4_000_000_000, hash in "\\PC{1,100}") {
            let f = Fixture { uid: UserId::parse(&uid).expect("valid"), email: EmailAddress::parse("a@b.org").expect("valid"), hash: PasswordHash::new(hash) };
            let s = signer(&key(3));
            let token = s.sign(f.subject(), issued);
            prop_assert_eq!(check(&s, f.subject(), token.as_str(), issued), Ok(issued + 3600));
        }
    }
}
