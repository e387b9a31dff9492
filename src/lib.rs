#![doc = include_str!("../README.md")]

/// The encryption engine: AES-256-GCM with run-time dispatch and parallel GCM.
pub use ssekit_engine as engine;
pub use ssekit_engine::aead;
pub use ssekit_engine::keys;
pub use ssekit_engine::object;
