//! Argon2id password hashing (OWASP parameters), always off the async executor.
//!
//! Every argon2id call needs 19 MiB of working memory. Allocated afresh per call, glibc served
//! it from per-thread malloc arenas that kept it (`pwreset serve` grew ~19 MiB per reset), so
//! the working memory comes from a small pool instead: at most one buffer per core, allocated
//! on first use and reused for every hash and verification after that.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash as Phc, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, PasswordVerifier as _, Version};
use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use unicode_normalization::UnicodeNormalization as _;

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

impl From<argon2::password_hash::Error> for HashError {
    fn from(e: argon2::password_hash::Error) -> Self {
        Self::Argon2(e.to_string())
    }
}

/// Hashes and verifies passwords on tokio's blocking pool. Clones share one pool of
/// working memory.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    params: Params,
    dummy: Arc<OnceLock<String>>,
    pool: Arc<BlockPool>,
}

impl Default for PasswordHasher {
    fn default() -> Self {
        Self::owasp()
    }
}

impl PasswordHasher {
    pub fn owasp() -> Self {
        // Hashing is CPU-bound: more hashes at once than cores only adds memory and latency.
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        Self::with_concurrency(cores)
    }

    /// The OWASP parameters with at most `concurrency` hashes (and buffers) at a time.
    fn with_concurrency(concurrency: usize) -> Self {
        let params = match Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None) {
            Ok(params) => params,
            Err(_) => unreachable!("the OWASP parameters are within argon2's bounds"),
        };
        Self {
            pool: Arc::new(BlockPool::new(params.block_count(), concurrency.max(1))),
            params,
            dummy: Arc::new(OnceLock::new()),
        }
    }

    /// Hashes on the blocking pool: 19 MiB of memory-hard work must never stall the
    /// executor that serves other requests. What is hashed is the password's NFKC form
    /// ([`normalised`]), as [`Self::verify`] checks it.
    pub async fn hash(&self, password: SecretString) -> Result<PasswordHash, HashError> {
        let mut lease = self.pool.lease().await?;
        let params = self.params.clone();
        tokio::task::spawn_blocking(move || {
            hash_now(params, &normalised(&password), lease.blocks())
        })
        .await
        .map_err(|e| HashError::Join(e.to_string()))?
    }

    /// Verifies a password, as the user typed it, against a stored hash: the password is
    /// NFKC-normalised first, exactly as a reset normalises it before hashing, so a
    /// password with compatibility characters (full-width letters, ligatures) signs in as
    /// typed. With no hash (unknown user, unusable password), checks against a dummy hash
    /// so the answer takes as long either way.
    pub async fn verify(
        &self,
        password: SecretString,
        stored: Option<PasswordHash>,
    ) -> Result<bool, HashError> {
        let mut lease = self.pool.lease().await?;
        let params = self.params.clone();
        let dummy = Arc::clone(&self.dummy);
        tokio::task::spawn_blocking(move || {
            let usable = stored.filter(PasswordHash::is_usable);
            let encoded = match &usable {
                Some(hash) => hash.as_str().to_owned(),
                None => dummy
                    .get_or_init(|| {
                        let dummy_password = SecretString::from("dummy password for timing");
                        hash_now(params, &dummy_password, lease.blocks())
                            .map(|h| h.as_str().to_owned())
                            .unwrap_or_default()
                    })
                    .clone(),
            };
            let matches = verify_now(&normalised(&password), &encoded, &mut lease);
            Ok(matches && usable.is_some())
        })
        .await
        .map_err(|e| HashError::Join(e.to_string()))?
    }

    #[cfg(test)]
    fn buffers_allocated(&self) -> usize {
        self.pool.allocated.load(Ordering::SeqCst)
    }
}

/// The form every password is hashed and verified in: Unicode NFKC, the normalisation a
/// reset applies ([`crate::domain::CandidatePassword`]). A sign-in written in another language
/// verifies pwreset's hashes by normalising the same way first (Python
/// `unicodedata.normalize("NFKC", pw)`, JavaScript `pw.normalize("NFKC")`, Java
/// `Normalizer.normalize(pw, Normalizer.Form.NFKC)`), then UTF-8.
pub fn normalised(password: &SecretString) -> SecretString {
    SecretString::from(password.expose_secret().nfkc().collect::<String>())
}

/// Argon2 working memory, reused across calls. Each hash holds a permit for its whole run,
/// so no more buffers ever exist than there are permits.
#[derive(Debug)]
struct BlockPool {
    block_count: usize,
    permits: Arc<Semaphore>,
    free: Mutex<Vec<Vec<Block>>>,
    /// Buffers allocated so far (tests check it never exceeds the permits).
    allocated: AtomicUsize,
}

impl BlockPool {
    fn new(block_count: usize, permits: usize) -> Self {
        Self {
            block_count,
            permits: Arc::new(Semaphore::new(permits)),
            free: Mutex::new(Vec::with_capacity(permits)),
            allocated: AtomicUsize::new(0),
        }
    }

    /// Waits (asynchronously, before taking a blocking thread) for a turn to hash.
    async fn lease(self: &Arc<Self>) -> Result<Lease, HashError> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|e| HashError::Join(e.to_string()))?;
        Ok(Lease {
            pool: Arc::clone(self),
            blocks: None,
            _permit: permit,
        })
    }

    fn take(&self) -> Vec<Block> {
        let reused = self
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        reused.unwrap_or_else(|| {
            self.allocated.fetch_add(1, Ordering::SeqCst);
            vec![Block::new(); self.block_count]
        })
    }

    fn give_back(&self, blocks: Vec<Block>) {
        self.free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(blocks);
    }
}

/// A turn to hash: a permit and, once asked for, one of the pool's buffers. Dropping it
/// returns the buffer before the permit, so the next lease finds it instead of allocating.
/// A buffer comes back even from a panicked hash: argon2 writes every block before it reads
/// it, so leftovers from an earlier call never affect a result.
struct Lease {
    pool: Arc<BlockPool>,
    blocks: Option<Vec<Block>>,
    _permit: OwnedSemaphorePermit,
}

impl Lease {
    fn blocks(&mut self) -> &mut [Block] {
        self.blocks.get_or_insert_with(|| self.pool.take())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(blocks) = self.blocks.take() {
            self.pool.give_back(blocks);
        }
    }
}

fn hash_now(
    params: Params,
    password: &SecretString,
    blocks: &mut [Block],
) -> Result<PasswordHash, HashError> {
    hash_with_salt(params, password, &SaltString::generate(&mut OsRng), blocks)
}

/// What `Argon2::hash_password` produces, computed in the given (pooled) memory.
fn hash_with_salt(
    params: Params,
    password: &SecretString,
    salt: &SaltString,
    blocks: &mut [Block],
) -> Result<PasswordHash, HashError> {
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let raw_salt = salt.decode_b64(&mut salt_bytes)?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let output_len = argon2
        .params()
        .output_len()
        .unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let hash = Output::init_with(output_len, |out| {
        Ok(argon2.hash_password_into_with_memory(
            password.expose_secret().as_bytes(),
            raw_salt,
            out,
            blocks,
        )?)
    })?;
    let phc = Phc {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon2.params())?,
        salt: Some(salt.as_salt()),
        hash: Some(hash),
    };
    Ok(PasswordHash::new(phc.to_string()))
}

/// Argon2 PHC strings verify with the parameters they carry. Nothing else verifies: hashes
/// imported in another format (Django's `pbkdf2_sha256$…` or `argon2$…`) never match, so
/// such a user signs in only after a reset has replaced the hash with argon2id.
fn verify_now(password: &SecretString, encoded: &str, lease: &mut Lease) -> bool {
    if !encoded.starts_with('$') {
        return false;
    }
    match Phc::new(encoded) {
        Ok(parsed) => verify_phc(password.expose_secret().as_bytes(), &parsed, lease),
        Err(_) => false,
    }
}

/// What `Argon2::verify_password` does, recomputed in pooled memory when the hash's
/// parameters need as many blocks as the pool's buffers hold. Hashes made with another
/// memory cost still verify, in memory argon2 allocates for them.
fn verify_phc(password: &[u8], phc: &Phc<'_>, lease: &mut Lease) -> bool {
    let (Some(salt), Some(expected)) = (phc.salt, &phc.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(version), Ok(params)) = (
        Algorithm::try_from(phc.algorithm),
        phc.version.map(Version::try_from).transpose(),
        Params::try_from(phc),
    ) else {
        return false;
    };
    if params.block_count() != lease.pool.block_count {
        return Argon2::default().verify_password(password, phc).is_ok();
    }
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let Ok(raw_salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let argon2 = Argon2::new(algorithm, version.unwrap_or_default(), params);
    let blocks = lease.blocks();
    Output::init_with(expected.len(), |out| {
        Ok(argon2.hash_password_into_with_memory(password, raw_salt, out, blocks)?)
    })
    // `Output`'s equality is constant-time.
    .is_ok_and(|computed| computed == *expected)
}

#[cfg(test)]
mod tests {
    use argon2::PasswordHasher as _;
    use tokio::task::JoinSet;

    use super::*;

    /// The argon2 crate on its own, at the OWASP parameters.
    fn plain_argon2() -> Argon2<'static> {
        let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None).expect("params");
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }

    /// `hash` verifies for "violin kettle mango" and not for the same with one letter's
    /// case changed.
    async fn verifies_only_the_right_password(hasher: &PasswordHasher, hash: &PasswordHash) {
        let verify = |password: &'static str| {
            hasher.verify(SecretString::from(password), Some(hash.clone()))
        };
        assert!(
            verify("violin kettle mango").await.expect("verify"),
            "right"
        );
        assert!(
            !verify("violin kettle mangO").await.expect("verify"),
            "wrong"
        );
    }

    #[tokio::test]
    async fn a_password_with_compatibility_characters_verifies_as_typed() {
        let hasher = PasswordHasher::owasp();
        // Full-width letters and the "fi" ligature: what a reset hashes is the NFKC form.
        let typed = "\u{FF56}\u{FF49}\u{FF4F}\u{FF4C}\u{FF49}\u{FF4E} \u{FB01}ddle kettle";
        let reset_hash = hasher
            .hash(crate::domain::CandidatePassword::new(typed).into_secret())
            .await
            .expect("hash");
        for attempt in [typed, "violin fiddle kettle"] {
            assert!(
                hasher
                    .verify(SecretString::from(attempt), Some(reset_hash.clone()))
                    .await
                    .expect("verify"),
                "{attempt:?}"
            );
        }
        assert!(
            !hasher
                .verify(
                    SecretString::from("violin fiddle kettles"),
                    Some(reset_hash)
                )
                .await
                .expect("verify")
        );
    }

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
        verifies_only_the_right_password(&hasher, &hash).await;
    }

    #[tokio::test]
    async fn the_phc_string_has_the_same_shape_as_the_argon2_crates() {
        let pooled = PasswordHasher::owasp()
            .hash(SecretString::from("violin kettle mango"))
            .await
            .expect("hash");
        let salt = SaltString::generate(&mut OsRng);
        let plain = plain_argon2()
            .hash_password(b"violin kettle mango", &salt)
            .expect("hash")
            .to_string();
        let shape = |phc: &str| phc.split('$').map(str::len).collect::<Vec<_>>();
        // "", "argon2id", "v=19", "m=19456,t=2,p=1", 22 characters of salt, 43 of hash.
        assert_eq!(shape(pooled.as_str()), vec![0, 8, 4, 15, 22, 43]);
        assert_eq!(shape(pooled.as_str()), shape(&plain));
    }

    #[tokio::test]
    async fn a_pooled_hash_verifies_with_the_argon2_crate() {
        let hash = PasswordHasher::owasp()
            .hash(SecretString::from("violin kettle mango"))
            .await
            .expect("hash");
        let parsed = Phc::new(hash.as_str()).expect("a PHC string");
        assert!(
            plain_argon2()
                .verify_password(b"violin kettle mango", &parsed)
                .is_ok()
        );
        assert!(
            plain_argon2()
                .verify_password(b"violin kettle mangO", &parsed)
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_hash_from_the_argon2_crate_verifies_through_the_pool() {
        let salt = SaltString::generate(&mut OsRng);
        let hash = PasswordHash::new(
            plain_argon2()
                .hash_password(b"violin kettle mango", &salt)
                .expect("hash")
                .to_string(),
        );
        let hasher = PasswordHasher::owasp();
        verifies_only_the_right_password(&hasher, &hash).await;
        // Recomputed in the pool's buffer, not in memory argon2 allocated.
        assert_eq!(hasher.buffers_allocated(), 1);
    }

    #[test]
    fn a_reused_buffer_hashes_exactly_like_a_fresh_one() {
        let salt = SaltString::generate(&mut OsRng);
        let expected = plain_argon2()
            .hash_password(b"violin kettle mango", &salt)
            .expect("hash")
            .to_string();
        let params = plain_argon2().params().clone();
        let mut blocks = vec![Block::new(); params.block_count()];
        // Leftovers from an earlier call must not leak into the next result.
        for block in &mut blocks {
            block.as_mut().fill(0xA5A5_A5A5_A5A5_A5A5);
        }
        let password = SecretString::from("violin kettle mango");
        for _ in 0..2 {
            let hash = hash_with_salt(params.clone(), &password, &salt, &mut blocks).expect("hash");
            assert_eq!(hash.as_str(), expected);
        }
    }

    #[tokio::test]
    async fn hashes_with_another_memory_cost_still_verify() {
        let params = Params::new(4096, 3, 1, None).expect("params");
        let salt = SaltString::generate(&mut OsRng);
        let hash = PasswordHash::new(
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_password(b"violin kettle mango", &salt)
                .expect("hash")
                .to_string(),
        );
        let hasher = PasswordHasher::owasp();
        verifies_only_the_right_password(&hasher, &hash).await;
    }

    #[tokio::test]
    async fn repeated_hashes_and_verifications_reuse_one_buffer() {
        let hasher = PasswordHasher::owasp();
        for i in 0..4 {
            let password = format!("violin kettle mango {i}");
            let hash = hasher
                .hash(SecretString::from(password.clone()))
                .await
                .expect("hash");
            assert!(
                hasher
                    .verify(SecretString::from(password), Some(hash))
                    .await
                    .expect("verify")
            );
            assert!(
                !hasher
                    .verify(SecretString::from("x"), None)
                    .await
                    .expect("verify")
            );
        }
        assert_eq!(hasher.buffers_allocated(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_hashes_never_hold_more_buffers_than_permits() {
        let permits = 2;
        let hasher = PasswordHasher::with_concurrency(permits);
        let mut tasks = JoinSet::new();
        for i in 0..16 {
            let hasher = hasher.clone();
            tasks.spawn(async move {
                let password = format!("violin kettle mango {i}");
                let hash = hasher
                    .hash(SecretString::from(password.clone()))
                    .await
                    .expect("hash");
                (password, hash)
            });
        }
        let hashes = tasks.join_all().await;
        assert_eq!(hashes.len(), 16);
        assert!(
            hasher.buffers_allocated() <= permits,
            "{} buffers for {permits} permits",
            hasher.buffers_allocated()
        );
        for (password, hash) in hashes {
            assert!(
                hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
                "{}",
                hash.as_str()
            );
            let parsed = Phc::new(hash.as_str()).expect("a PHC string");
            assert!(
                plain_argon2()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            );
        }
    }

    #[test]
    fn the_pool_allows_one_hash_per_core() {
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        assert_eq!(
            PasswordHasher::owasp().pool.permits.available_permits(),
            cores
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
    async fn a_django_argon2_hash_does_not_verify_until_a_reset_replaces_it() {
        // Django's argon2 format is "argon2" before a PHC string; here a right one.
        let salt = SaltString::generate(&mut OsRng);
        let phc = plain_argon2()
            .hash_password(b"violin kettle mango", &salt)
            .expect("hash")
            .to_string();
        let hasher = PasswordHasher::owasp();
        let verifies = |encoded: String| {
            hasher.verify(
                SecretString::from("violin kettle mango"),
                Some(PasswordHash::new(encoded)),
            )
        };
        assert!(
            verifies(phc.clone()).await.expect("verify"),
            "the PHC string itself"
        );
        assert!(!verifies(format!("argon2{phc}")).await.expect("verify"));
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
