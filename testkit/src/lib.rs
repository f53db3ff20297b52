//! What pwreset's tests and its bench driver share, in one place: starting a process on a
//! free loopback port and stopping it by PID, the emulators (moto, aws-ses-v2-local,
//! dynalite) and readers of what they hold, SDK clients pointed at them, the `pwreset
//! serve` harness, and the uid and token of a reset link in a mail.
//!
//! Independent of `pwreset-core` (its own tests use this crate): where a helper needs the
//! core, the caller passes the core's piece in (the adapters' client settings, the table
//! creator, the outbox key prefix).

pub mod aws;
pub mod dev_server;
pub mod emulators;
pub mod fault_proxy;
pub mod interop;
pub mod mail;
pub mod net;
pub mod outbox;
pub mod paths;
pub mod process;
pub mod ses_store;
