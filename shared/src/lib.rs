//! `pwreset-core`: everything pwreset does, whatever the entry point.
//!
//! The Lambda binaries and the `pwreset serve` dev server are thin wiring around the use
//! cases in [`service`] and the routers in [`http`]; all behaviour lives and is tested here.

pub mod adapters;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod hashing;
pub mod http;
pub mod i18n;
#[cfg(feature = "aws")]
pub mod lambda;
pub mod mail;
pub mod metrics;
pub mod policy;
pub mod ports;
pub mod service;
pub mod token;

/// The crates whose log events are ours. Everything else (the Lambda runtime, the AWS SDK,
/// hyper, rustls) is capped at `DEBUG` whatever `RUST_LOG` says: at `TRACE` the Lambda
/// runtime logs every raw event body, new passwords and reset tokens included, and the SDK
/// logs request bodies that hold password hashes and mail text.
pub const OWN_LOG_TARGETS: &[&str] = &[
    "pwreset_core",
    "pwreset",
    "request_reset",
    "confirm_reset",
    "send_reset_email",
];

/// Whether an event may be logged at all: any level for our own targets, at most `DEBUG`
/// for every dependency. Both the Lambda functions and `pwreset serve` filter with it, on
/// top of `RUST_LOG`, so no configuration can turn on a dependency's trace output.
pub fn log_event_allowed(target: &str, level: &tracing::Level) -> bool {
    let crate_name = target.split("::").next().unwrap_or_default();
    *level <= tracing::Level::DEBUG || OWN_LOG_TARGETS.contains(&crate_name)
}

#[cfg(test)]
mod log_tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn dependencies_never_log_at_trace_and_our_crates_may() {
        for dependency in [
            "lambda_runtime::layers::api_response",
            "aws_smithy_runtime",
            "hyper",
        ] {
            assert!(
                !log_event_allowed(dependency, &Level::TRACE),
                "{dependency}"
            );
            assert!(log_event_allowed(dependency, &Level::DEBUG), "{dependency}");
        }
        for ours in ["pwreset_core::service", "pwreset::serve", "confirm_reset"] {
            assert!(log_event_allowed(ours, &Level::TRACE), "{ours}");
        }
        // A dependency whose name merely starts like ours is not ours.
        assert!(!log_event_allowed("pwreset_corex", &Level::TRACE));
    }
}
