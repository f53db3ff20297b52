//! Adapters behind the ports. `memory` serves `pwreset serve` and the core's tests.

pub mod memory;
