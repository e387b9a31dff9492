//! ssekit's encryption engine: everything that runs without an HSM or a network.
//!
//! - [`aead`]: AES-256-GCM dispatched at run time to the best instructions the CPU has, and a parallel
//!   form that spreads one message over all cores.

pub mod aead;
pub mod audit;
pub mod keys;
pub mod object;
pub mod sse;
