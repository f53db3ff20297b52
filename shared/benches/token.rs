//! Token sign and verify (HMAC-SHA256 over uid, stored address, password hash and issue
//! time): the per-request cost of a link, without any I/O.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pwreset_core::domain::{EmailAddress, PasswordHash, UserId};
use pwreset_core::token::{ParsedToken, TokenKeys, TokenSigner, TokenSubject};

const NOW: i64 = 1_790_000_000;
const HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";

fn token(c: &mut Criterion) {
    let uid = UserId::generate();
    let Ok(email) = EmailAddress::parse("alice@example.org") else {
        panic!("a valid address");
    };
    let hash = PasswordHash::new(HASH);
    let subject = TokenSubject {
        uid: &uid,
        email: &email,
        password_hash: &hash,
    };
    let one_key = TokenSigner::new(TokenKeys::generate(), 3600);
    let signed = one_key.sign(subject, NOW);
    let Ok(parsed) = ParsedToken::parse(signed.as_str()) else {
        panic!("a token we signed parses");
    };

    c.bench_function("token/sign", |b| {
        b.iter(|| one_key.sign(black_box(subject), black_box(NOW)));
    });
    c.bench_function("token/parse", |b| {
        b.iter(|| ParsedToken::parse(black_box(signed.as_str())));
    });
    c.bench_function("token/verify (valid)", |b| {
        b.iter(|| one_key.verify(black_box(subject), black_box(&parsed), black_box(NOW + 60)));
    });
    // A well-formed token under a key this signer does not hold: the MAC check fails.
    let stranger = TokenSigner::new(TokenKeys::generate(), 3600).sign(subject, NOW);
    let Ok(forged) = ParsedToken::parse(stranger.as_str()) else {
        panic!("a token we signed parses");
    };
    c.bench_function("token/verify (forged)", |b| {
        b.iter(|| one_key.verify(black_box(subject), black_box(&forged), black_box(NOW)));
    });
}

criterion_group!(benches, token);
criterion_main!(benches);
