//! Argon2id password hashing (OWASP parameters), always off the async executor, and
//! verification of every stored format pwreset reads ([`verify`]).
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

/// What a reset writes (`HASH_FORMAT`): the same argon2id hash either way, spelled the way
/// the team's sign-in reads it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HashFormat {
    /// The PHC string, `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`: what argon2
    /// libraries in every language verify.
    #[default]
    Phc,
    /// `argon2$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`: what Django's
    /// `Argon2PasswordHasher` stores and verifies (with argon2-cffi installed).
    Django,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected phc or django")]
pub struct HashFormatSyntax;

impl std::str::FromStr for HashFormat {
    type Err = HashFormatSyntax;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.trim() {
            "phc" => Ok(Self::Phc),
            "django" => Ok(Self::Django),
            _ => Err(HashFormatSyntax),
        }
    }
}

/// Hashes and verifies passwords on tokio's blocking pool. Clones share one pool of
/// working memory.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    params: Params,
    format: HashFormat,
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
            format: HashFormat::Phc,
            dummy: Arc::new(OnceLock::new()),
        }
    }

    /// The same hasher, writing new hashes in `format` (verification reads every format).
    pub fn writing(self, format: HashFormat) -> Self {
        Self { format, ..self }
    }

    /// Hashes on the blocking pool: 19 MiB of memory-hard work must never stall the
    /// executor that serves other requests. What is hashed is the password's NFKC form
    /// ([`normalised`]), as [`Self::verify`] checks it.
    pub async fn hash(&self, password: SecretString) -> Result<PasswordHash, HashError> {
        let mut lease = self.pool.lease().await?;
        let params = self.params.clone();
        let phc = tokio::task::spawn_blocking(move || {
            hash_now(params, &normalised(&password), lease.blocks())
        })
        .await
        .map_err(|e| HashError::Join(e.to_string()))??;
        Ok(match self.format {
            HashFormat::Phc => phc,
            HashFormat::Django => {
                PasswordHash::new(format!("{DJANGO_ARGON2_PREFIX}{}", phc.as_str()))
            }
        })
    }

    /// Verifies a password, as the user typed it, against a stored hash in any format
    /// [`verify`] reads: the password is NFKC-normalised first, exactly as a reset
    /// normalises it before hashing, so a password with compatibility characters
    /// (full-width letters, ligatures) signs in as typed. With no hash (unknown user,
    /// unusable password), checks against a dummy hash so the answer takes as long either
    /// way.
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
            let matches = verify_now(&normalised(&password), &encoded, Some(&mut lease));
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

/// Verifies a password, as the user typed it, against a stored hash in any format pwreset
/// reads: PHC argon2id or argon2i (`$argon2id$v=19$…`), Django's `argon2$argon2id$…`,
/// Django's `pbkdf2_sha256$<iterations>$<salt>$<hash>` and bcrypt `$2a$` / `$2b$` / `$2y$`.
/// The password is NFKC-normalised first, exactly as a reset normalises it before hashing
/// ([`normalised`]). Anything else — an unusable `!…` hash, an unknown or malformed format,
/// a work factor beyond the bounds below — does not verify.
///
/// This is the function a Rust sign-in calls. It blocks for as long as the hash takes
/// (argon2id at pwreset's parameters: tens of milliseconds; Django's pbkdf2 at a million
/// iterations: longer), so call it from a blocking thread (`tokio::task::spawn_blocking`),
/// never on an async executor.
pub fn verify(password: &SecretString, stored: &PasswordHash) -> bool {
    stored.is_usable() && verify_now(&normalised(password), stored.as_str(), None)
}

/// What kind of hash `stored` is, in words, for an operator (`pwreset user show`): never
/// the hash itself.
pub fn describe(stored: &PasswordHash) -> &'static str {
    if !stored.is_usable() {
        return "none (unusable: only a reset can set one)";
    }
    let encoded = stored.as_str();
    match Stored::parse(encoded) {
        Some(Stored::Argon2(phc)) if encoded.starts_with(DJANGO_ARGON2_PREFIX) => {
            match Algorithm::try_from(phc.algorithm) {
                Ok(Algorithm::Argon2i) => "argon2i (Django's spelling)",
                _ => "argon2id (Django's spelling)",
            }
        }
        Some(Stored::Argon2(phc)) => match Algorithm::try_from(phc.algorithm) {
            Ok(Algorithm::Argon2i) => "argon2i (PHC)",
            _ => "argon2id (PHC)",
        },
        Some(Stored::DjangoPbkdf2Sha256 { .. }) => "pbkdf2_sha256 (Django)",
        Some(Stored::Bcrypt(_)) => "bcrypt",
        None => "an unknown format (it does not verify; a reset replaces it)",
    }
}

/// Django's PBKDF2 hashers have used 1,000,000 iterations or fewer (5.2) and 1,200,000 (6.0);
/// a stored count beyond this is a corrupt item, not a hash worth a minute of CPU.
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
/// bcrypt cost 16 is about five seconds per check on a server core; deployed hashes use 10–14.
const MAX_BCRYPT_COST: u32 = 16;

/// A stored hash, recognised by its prefix.
enum Stored<'a> {
    /// A PHC argon2 string; Django's `argon2` prefix already removed. (Boxed: parsed, it
    /// is ten times the size of the other variants.)
    Argon2(Box<Phc<'a>>),
    DjangoPbkdf2Sha256 {
        iterations: u32,
        salt: &'a str,
        hash: &'a str,
    },
    Bcrypt(&'a str),
}

impl<'a> Stored<'a> {
    fn parse(encoded: &'a str) -> Option<Self> {
        if let Some(phc) = encoded.strip_prefix(DJANGO_ARGON2_PREFIX) {
            return Self::argon2(phc);
        }
        if encoded.starts_with("$argon2") {
            return Self::argon2(encoded);
        }
        if let Some(rest) = encoded.strip_prefix("pbkdf2_sha256$") {
            let mut parts = rest.splitn(3, '$');
            let iterations = parts.next()?.parse().ok()?;
            let (salt, hash) = (parts.next()?, parts.next()?);
            return (1..=MAX_PBKDF2_ITERATIONS).contains(&iterations).then_some(
                Self::DjangoPbkdf2Sha256 {
                    iterations,
                    salt,
                    hash,
                },
            );
        }
        if ["$2a$", "$2b$", "$2y$"]
            .iter()
            .any(|p| encoded.starts_with(p))
        {
            let cost: u32 = encoded.get(4..6)?.parse().ok()?;
            return (cost <= MAX_BCRYPT_COST).then_some(Self::Bcrypt(encoded));
        }
        None
    }

    fn argon2(phc: &'a str) -> Option<Self> {
        let parsed = Phc::new(phc).ok()?;
        // argon2d is side-channel prone and never a password hash anyone stores.
        match Algorithm::try_from(parsed.algorithm).ok()? {
            Algorithm::Argon2id | Algorithm::Argon2i => Some(Self::Argon2(Box::new(parsed))),
            Algorithm::Argon2d => None,
        }
    }
}

/// What Django's `Argon2PasswordHasher` puts in front of the PHC string it stores.
const DJANGO_ARGON2_PREFIX: &str = "argon2";

/// `password` is already NFKC. Argon2 runs in the pool's memory when a lease is given.
fn verify_now(password: &SecretString, encoded: &str, lease: Option<&mut Lease>) -> bool {
    let password = password.expose_secret().as_bytes();
    match Stored::parse(encoded) {
        Some(Stored::Argon2(phc)) => verify_phc(password, &phc, lease),
        Some(Stored::DjangoPbkdf2Sha256 {
            iterations,
            salt,
            hash,
        }) => verify_django_pbkdf2(password, iterations, salt, hash),
        // The crate compares in constant time and truncates at 72 bytes, as every bcrypt does.
        Some(Stored::Bcrypt(encoded)) => bcrypt::verify(password, encoded).unwrap_or(false),
        None => false,
    }
}

/// Django: `base64(pbkdf2_hmac("sha256", password, salt.encode(), iterations))`, 32 bytes.
fn verify_django_pbkdf2(password: &[u8], iterations: u32, salt: &str, hash: &str) -> bool {
    use base64::Engine as _;
    use subtle::ConstantTimeEq as _;
    let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(hash) else {
        return false;
    };
    if expected.is_empty() || expected.len() > 64 {
        return false;
    }
    let mut computed = vec![0u8; expected.len()];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt.as_bytes(), iterations, &mut computed);
    computed.ct_eq(&expected).into()
}

/// What `Argon2::verify_password` does, recomputed in pooled memory when there is a lease
/// and the hash's parameters need as many blocks as the pool's buffers hold. Hashes made
/// with another memory cost (Django's default is 100 MiB) still verify, in memory argon2
/// allocates for them.
fn verify_phc(password: &[u8], phc: &Phc<'_>, lease: Option<&mut Lease>) -> bool {
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
    let Some(lease) = lease.filter(|l| l.pool.block_count == params.block_count()) else {
        return Argon2::default().verify_password(password, phc).is_ok();
    };
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

    /// Hashes made by the other side's own code: Django 5.2.19's `make_password`
    /// (PBKDF2PasswordHasher, Argon2PasswordHasher with argon2-cffi 25.1.0 at Django's
    /// defaults), argon2-cffi directly, and Python's bcrypt 5.0.0 (`hashpw`, cost 5). The live
    /// round trip against those libraries is `shared/tests/hash_interop.rs`.
    const FOREIGN: [(&str, &str); 6] = [
        (
            "django pbkdf2_sha256, fixed salt",
            "pbkdf2_sha256$1000000$seasalt$XpsV61vJcCAUCZ86ck8J2nexJq43H9YLqcib5awro/4=",
        ),
        (
            "django argon2id at Django's costs",
            "argon2$argon2id$v=19$m=102400,t=2,p=8$VEpPTWtGRGFlVERLTjY5aXZxNTVONA$JopRZ4T59uXLFcYntwDgqS5HZ1Dz3CTeW9NNm5eMHio",
        ),
        (
            "phc argon2i",
            "$argon2i$v=19$m=8192,t=2,p=1$f+MlKb8UAMSwMTJnBfDLuw$a/S+X+RoNdMkDN5MPHObgPm0zf/T9adUTH5VCfjf+QE",
        ),
        (
            "bcrypt $2b$",
            "$2b$05$Sd3x./HFh6UM8G7ZnJjbOeXy8wwL79mSriLtqYVNBuuVaONSIRi1C",
        ),
        (
            "bcrypt $2a$",
            "$2a$05$AinG.HEALi4QtVmplexu0u0.aOHbPl6J7SI0hx2GQOPq9YJLV5S2u",
        ),
        (
            // The same hash as the $2b$ one under the $2y$ tag PHP writes (the tags name
            // one algorithm; $2y$ marks hashes from PHP's fixed implementation).
            "bcrypt $2y$",
            "$2y$05$Sd3x./HFh6UM8G7ZnJjbOeXy8wwL79mSriLtqYVNBuuVaONSIRi1C",
        ),
    ];

    #[tokio::test]
    async fn hashes_other_libraries_made_verify_for_the_right_password_only() {
        let hasher = PasswordHasher::owasp();
        for (what, encoded) in FOREIGN {
            let stored = PasswordHash::new(encoded);
            assert!(
                verify(&SecretString::from("violin kettle mango"), &stored),
                "{what}: right password"
            );
            assert!(
                !verify(&SecretString::from("violin kettle mangO"), &stored),
                "{what}: wrong password"
            );
            // The pooled path the service uses reads the same formats.
            verifies_only_the_right_password(&hasher, &stored).await;
        }
    }

    #[test]
    fn a_django_pbkdf2_hash_of_a_non_ascii_password_verifies() {
        // make_password("lètmein café", None, "pbkdf2_sha256"), Django 5.2.19 (NFC text,
        // which NFKC leaves as it is).
        let stored = PasswordHash::new(
            "pbkdf2_sha256$1000000$4nAxQ2oPK0vyJ8VPaLLAyk$qkqJfHLUAVSIPMNwkuyLdQHO0B4Dh3xpnO/WlsUW+yo=",
        );
        assert!(verify(&SecretString::from("lètmein café"), &stored));
        assert!(!verify(&SecretString::from("letmein cafe"), &stored));
    }

    #[test]
    fn malformed_unknown_and_unbounded_hashes_never_verify() {
        let right = SecretString::from("violin kettle mango");
        for encoded in [
            "",
            "!unusable",
            "!pbkdf2_sha256$1000000$seasalt$XpsV61vJcCAUCZ86ck8J2nexJq43H9YLqcib5awro/4=",
            "violin kettle mango",
            "md5$seasalt$0123456789abcdef",
            "pbkdf2_sha1$1000000$seasalt$XpsV61vJcCAUCZ86ck8J2nexJq43H9YLqcib5awro/4=",
            "pbkdf2_sha256$seasalt$XpsV61vJcCAUCZ86ck8J2nexJq43H9YLqcib5awro/4=",
            "pbkdf2_sha256$0$seasalt$XpsV61vJcCAUCZ86ck8J2nexJq43H9YLqcib5awro/4=",
            "pbkdf2_sha256$4000000000$seasalt$XpsV61vJcCAUCZ86ck8J2nexJq43H9YLqcib5awro/4=",
            "pbkdf2_sha256$1000000$seasalt$not base64!",
            "pbkdf2_sha256$1000000$seasalt$",
            "argon2$argon2d$v=19$m=8192,t=1,p=1$jL+TM4/1MQrXfzt5zkaMGA$M64+TAX3PHxkgPRgf5k++MosBWoeJ5BsxfBOAyjLERs",
            "$argon2d$v=19$m=8192,t=1,p=1$jL+TM4/1MQrXfzt5zkaMGA$M64+TAX3PHxkgPRgf5k++MosBWoeJ5BsxfBOAyjLERs",
            "$argon2id$v=19$m=19456,t=2,p=1$nosalt",
            "argon2$$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
            "$2b$31$Sd3x./HFh6UM8G7ZnJjbOeXy8wwL79mSriLtqYVNBuuVaONSIRi1C",
            "$2b$05$tooshort",
            "$2x$05$Sd3x./HFh6UM8G7ZnJjbOeXy8wwL79mSriLtqYVNBuuVaONSIRi1C",
        ] {
            assert!(!verify(&right, &PasswordHash::new(encoded)), "{encoded:?}");
        }
    }

    #[tokio::test]
    async fn the_django_format_is_the_same_hash_behind_djangos_prefix() {
        let hasher = PasswordHasher::owasp().writing(HashFormat::Django);
        let hash = hasher
            .hash(SecretString::from("violin kettle mango"))
            .await
            .expect("hash");
        let phc = hash
            .as_str()
            .strip_prefix("argon2$argon2id$v=19$m=19456,t=2,p=1$")
            .expect("Django's argon2 prefix and pwreset's parameters");
        assert_eq!(phc.split('$').count(), 2, "salt and hash: {phc}");
        verifies_only_the_right_password(&hasher, &hash).await;
        assert!(verify(&SecretString::from("violin kettle mango"), &hash));
        let plain = PasswordHasher::owasp()
            .hash(SecretString::from("violin kettle mango"))
            .await
            .expect("hash");
        assert!(
            plain
                .as_str()
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
        );
    }

    #[test]
    fn hash_formats_parse_by_name_only() {
        assert_eq!("phc".parse(), Ok(HashFormat::Phc));
        assert_eq!(" django ".parse(), Ok(HashFormat::Django));
        for bad in ["", "PHC", "argon2", "bcrypt", "django2"] {
            assert_eq!(bad.parse::<HashFormat>(), Err(HashFormatSyntax), "{bad:?}");
        }
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
    async fn a_django_argon2_hash_verifies_as_its_phc_string_does() {
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
        assert!(verifies(format!("argon2{phc}")).await.expect("verify"));
        // The prefix is Django's exactly, not any text before a PHC string.
        assert!(!verifies(format!("argon3{phc}")).await.expect("verify"));
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
