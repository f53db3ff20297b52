//! E-mail parsing and the lookup key (NFKC, Unicode case fold, trim, validation): run on
//! every `POST /password-reset` before anything else.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pwreset_core::domain::{EmailAddress, EmailKey};

const INPUTS: [(&str, &str); 4] = [
    ("ascii", "Alice.Smith@Example.org"),
    ("fullwidth", "\u{ff41}lice@example.org"),
    ("dotless-i", "al\u{131}ce@example.org"),
    ("malformed", "alice@@example..org"),
];

fn email(c: &mut Criterion) {
    for (name, raw) in INPUTS {
        c.bench_function(&format!("email/parse ({name})"), |b| {
            b.iter(|| EmailAddress::parse(black_box(raw)));
        });
        c.bench_function(&format!("email/normalise key ({name})"), |b| {
            b.iter(|| EmailKey::normalise(black_box(raw)));
        });
    }
}

criterion_group!(benches, email);
criterion_main!(benches);
