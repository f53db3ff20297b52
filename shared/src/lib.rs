//! `pwreset-core`: everything pwreset does, whatever the entry point.
//!
//! The Lambda binaries and the `pwreset serve` dev server are thin wiring around
//! [`service::ResetService`] and [`http::handle`]; all behaviour lives and is tested here.

pub mod adapters;
pub mod config;
pub mod domain;
pub mod hashing;
pub mod http;
#[cfg(feature = "aws")]
pub mod lambda;
pub mod mail;
pub mod policy;
pub mod ports;
pub mod service;
pub mod stream;
pub mod token;
