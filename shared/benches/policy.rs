//! The password policy check (NFKC, length and byte caps, all-digit, e-mail similarity,
//! the strength estimator): run on every confirm before the hash.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pwreset_core::domain::{CandidatePassword, EmailAddress};
use pwreset_core::policy::PasswordPolicy;

fn policy(c: &mut Criterion) {
    let Ok(email) = EmailAddress::parse("alice@example.org") else {
        panic!("a valid address");
    };
    let policy = PasswordPolicy::default();
    let long = "x".repeat(2000);
    let cases = [
        ("strong passphrase", "violin kettle mango quartz"),
        ("common", "password123456"),
        ("too short", "short"),
        ("all digits", "123456789012345"),
        ("like the e-mail", "alice@example.org1"),
        ("over 1024 bytes", long.as_str()),
    ];
    for (name, password) in cases {
        c.bench_function(&format!("policy/check ({name})"), |b| {
            b.iter(|| policy.check(CandidatePassword::new(black_box(password)), &email));
        });
    }
}

criterion_group!(benches, policy);
criterion_main!(benches);
