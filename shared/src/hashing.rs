//! Argon2id password hashing (OWASP parameters), always off the async executor.

use std::sync::{Arc, OnceLock};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash as Phc, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use secrecy::{ExposeSecret as _, SecretString};

use crate::domain::PasswordHash;

/// OWASP's argon2id recommendation: 19 MiB, two passes, one lane.
pub const MEMORY_KIB: u32 = 19_456;
pub const ITERATIONS: u32 = 2;
pub const PARALLELISM: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("hashing failed: {0}")]
    Argon2(String),
    #[error("the hashing task did not finish: {0}")]
    Join(String),
}

/// Hashes and verifies passwords on tokio's blocking pool.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    params: Params,
    dummy: Arc<OnceLock<String>>,
}

impl Default for PasswordHasher {
    fn default() -> Self {
        Self::owasp()
    }
}

impl PasswordHasher {
    pub fn owasp() -> Self {
        let params = match Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None) {
            Ok(params) => params,
            Err(_) => unreachable!("the OWASP parameters are within argon2's bounds"),
        };
        Self {
            params,
            dummy: Arc::new(OnceLock::new()),
        }
    }

    fn argon2(params: Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }

    /// Hashes on the blocking pool: 19 MiB of memory-hard work must never stall the
    /// executor that serves other requests.
    pub async fn hash(&self, password: SecretString) -> Result<PasswordHash, HashError> {
        let params = self.params.clone();
        tokio::task::spawn_blocking(move || hash_now(params, &password))
            .await
            .map_err(|e| HashError::Join(e.to_string()))?
    }

    /// Verifies a password against a stored hash. With no hash (unknown user, unusable
    /// password), checks against a dummy hash so the answer takes as long either way.
    pub async fn verify(
        &self,
        password: SecretString,
        stored: Option<PasswordHash>,
    ) -> Result<bool, HashError> {
        let params = self.params.clone();
        let dummy = Arc::clone(&self.dummy);
        tokio::task::spawn_blocking(move || {
            let usable = stored.filter(PasswordHash::is_usable);
            let encoded = match &usable {
                Some(hash) => hash.as_str().to_owned(),
                None => dummy
                    .get_or_init(|| {
                        hash_now(params, &SecretString::from("dummy password for timing"))
                            .map(|h| h.as_str().to_owned())
                            .unwrap_or_default()
                    })
                    .clone(),
            };
            let matches = verify_now(&password, &encoded);
            Ok(matches && usable.is_some())
        })
        .await
        .map_err(|e| HashError::Join(e.to_string()))?
    }
}

fn hash_now(params: Params, password: &SecretString) -> Result<PasswordHash, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    PasswordHasher::argon2(params)
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|phc| PasswordHash::new(phc.to_string()))
        .map_err(|e| HashError::Argon2(e.to_string()))
}

/// Argon2 PHC strings verify with the parameters they carry; other formats (imported
/// Django hashes) are handled by [`crate::hashing::verify_imported`].
fn verify_now(password: &SecretString, encoded: &str) -> bool {
    if encoded.starts_with('$') {
        return match Phc::new(encoded) {
            Ok(parsed) => Argon2::default()
                .verify_password(password.expose_secret().as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        };
    }
    verify_imported(password, encoded)
}

/// Hash formats imported from elsewhere. Unknown formats never match.
pub fn verify_imported(_password: &SecretString, _encoded: &str) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_phc_with_the_owasp_parameters() {
        let hasher = PasswordHasher::owasp();
        let hash = hasher
            .hash(SecretString::from("violin kettle mango"))
            .await
            .expect("hash");
        assert!(
            hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            hash.as_str()
        );
        assert!(
            hasher
                .verify(
                    SecretString::from("violin kettle mango"),
                    Some(hash.clone())
                )
                .await
                .expect("verify")
        );
        assert!(
            !hasher
                .verify(SecretString::from("violin kettle mangO"), Some(hash))
                .await
                .expect("verify")
        );
    }

    #[tokio::test]
    async fn the_same_password_hashes_differently_each_time() {
        let hasher = PasswordHasher::owasp();
        let a = hasher.hash(SecretString::from("same")).await.expect("hash");
        let b = hasher.hash(SecretString::from("same")).await.expect("hash");
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn no_hash_and_unusable_hashes_never_verify() {
        let hasher = PasswordHasher::owasp();
        assert!(
            !hasher
                .verify(SecretString::from("x"), None)
                .await
                .expect("verify")
        );
        assert!(
            !hasher
                .verify(SecretString::from("x"), Some(PasswordHash::new("!x")))
                .await
                .expect("verify")
        );
        // Even the dummy's own password does not log anyone in.
        assert!(
            !hasher
                .verify(SecretString::from("dummy password for timing"), None)
                .await
                .expect("verify")
        );
    }
}
