//! GAIA's native hot path.
//!
//! The algorithms live in plain Rust modules ([`hashing`], [`scheduler`], [`tensor`]) that build and test without
//! Python (`cargo test`). The PyO3 bindings (`gaia_native._gaia_native`) sit behind the `python`
//! cargo feature, which maturin enables (see `pyproject.toml`).

pub mod hashing;
pub mod scheduler;
pub mod tensor;

#[cfg(feature = "python")]
mod python;
