//! Key providers for ssekit backed by key devices: an HSM over PKCS#11 ([`Pkcs11Provider`]) and AWS
//! KMS or any server speaking its API ([`KmsProvider`]). Both implement the engine's
//! [`KeyProvider`](ssekit_engine::keys::KeyProvider); put them under the engine's
//! [`CachingProvider`](ssekit_engine::keys::CachingProvider) (on by default in the CLI) so repeated
//! reads and small writes do not each cost a device call.

mod kms;
mod pkcs11;

pub use kms::{ALG_KMS, KMS_PROVIDER, KmsConfig, KmsProvider};
pub use pkcs11::{
    ALG_HSM_GCM, ALG_KWP_HMAC, Binding, PROVIDER, Pkcs11Config, Pkcs11Provider, binding_data,
};
