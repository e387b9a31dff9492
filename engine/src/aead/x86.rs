//! x86-64 backends and the CPU-feature witnesses that make them sound to call.
//!
//! A witness is a zero-sized value that only `detect()` makes, after `cpufeatures` has confirmed every
//! instruction set the kernel is compiled for; backend constructors take one, so the type system
//! carries the proof that the check ran (ring's approach).

pub(crate) mod aesni_clmul;

cpufeatures::new!(cpuid_aesni_clmul, "aes", "pclmulqdq", "avx");

/// Proof that this CPU has AES-NI, PCLMULQDQ and AVX (whose VEX encodings the kernel is compiled to;
/// AVX implies the SSE levels below it).
#[derive(Clone, Copy, Debug)]
pub(crate) struct AesNiClmulCpu(());

impl AesNiClmulCpu {
    pub(crate) fn detect() -> Option<Self> {
        cpuid_aesni_clmul::get().then_some(AesNiClmulCpu(()))
    }
}
