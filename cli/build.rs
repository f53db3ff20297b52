//! Turns the repository's `openapi.yaml` (the contract, kept by hand) into the JSON that
//! `pwreset serve` answers at `GET /openapi.json`. A spec that does not parse fails the
//! build, so the served document is always the one in the repository.

use std::path::Path;

fn main() {
    // Read when the script runs, not when it was compiled: a build script compiled in one
    // checkout can be reused by another sharing the target directory.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let spec = Path::new(&manifest_dir).join("../openapi.yaml");
    println!("cargo::rerun-if-changed={}", spec.display());
    let yaml = std::fs::read_to_string(&spec)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", spec.display()));
    let value: serde_json::Value = serde_norway::from_str(&yaml)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", spec.display()));
    let json = serde_json::to_string(&value).expect("a parsed document serialises");
    let out =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("openapi.json");
    std::fs::write(&out, json).unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}
