//! x86-64 backends and the CPU-feature witnesses that make them sound to call.
//!
//! A witness is a zero-sized value that only `detect()` makes, after `cpufeatures` has confirmed every
//! instruction set the kernel is compiled for; backend constructors take one, so the type system
//! carries the proof that the check ran (ring's approach).

/// The stitched schedule both kernels use: AES round r = 1..=8 each followed by the GHASH product of
/// block (or block pair) r - 1, the reduction after round 9 (its inputs are ready by then and its
/// latency hides under rounds 10..=13), then the last four full rounds. `$round` and `$hash` are the
/// caller's macros for one round on all registers and one product; evaluates to `$reduce`'s value.
/// Measured alternatives (all hashing first, later, fewer pins) are in docs/BENCHMARKS.md: none faster.
macro_rules! stitched_schedule {
    ($round:ident, $hash:ident, $reduce:expr) => {{
        $round!(1);
        $hash!(0);
        $round!(2);
        $hash!(1);
        $round!(3);
        $hash!(2);
        $round!(4);
        $hash!(3);
        $round!(5);
        $hash!(4);
        $round!(6);
        $hash!(5);
        $round!(7);
        $hash!(6);
        $round!(8);
        $hash!(7);
        $round!(9);
        let acc = $reduce;
        $round!(10);
        $round!(11);
        $round!(12);
        $round!(13);
        acc
    }};
}

pub(crate) mod aesni_clmul;
pub(crate) mod vaes_avx2;

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

/// Proof that this CPU has VAES, VPCLMULQDQ and AVX2 (with the OS saving 256-bit state), besides what
/// [`AesNiClmulCpu`] proves.
///
/// VAES and VPCLMULQDQ are checked with the standard library's detection, not `cpufeatures`: that crate
/// (0.2 and 0.3) counts them present only when the OS saves AVX-512 state, which would hide them on CPUs
/// such as Zen 3 that have them on 256-bit registers only.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VaesAvx2Cpu(AesNiClmulCpu);

impl VaesAvx2Cpu {
    pub(crate) fn detect() -> Option<Self> {
        let narrow = AesNiClmulCpu::detect()?;
        let wide = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("vaes")
            && std::arch::is_x86_feature_detected!("vpclmulqdq");
        wide.then_some(VaesAvx2Cpu(narrow))
    }

    /// The 128-bit backend's witness: everything it needs is part of this one.
    pub(crate) fn narrow(self) -> AesNiClmulCpu {
        self.0
    }
}
