//! Test and benchmark helpers shared by the integration tests and the benchmark binaries.

pub mod bench;
pub mod programmatic_manager;
