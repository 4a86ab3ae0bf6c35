//! The programmatic manager lives in the crate's library (`src/programmatic_manager.rs`) so the
//! load benchmark drives calls with the same code.

pub use integration_tests::programmatic_manager::*;
