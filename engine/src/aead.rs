//! AES-256-GCM (NIST SP 800-38D) with 96-bit nonces and 128-bit tags, dispatched once, at key
//! construction, to the fastest backend this CPU has, and a parallel form that spreads one GCM message
//! over all cores with output byte-identical to the single-threaded one.
//!
//! ```
//! use ssekit_engine::aead::Aes256Gcm;
//!
//! let gcm = Aes256Gcm::new(&[7u8; 32]);
//! let nonce = [1u8; 12];
//! let mut buf = b"every byte at rest".to_vec();
//! let tag = gcm.seal_in_place(&nonce, b"bucket/key", &mut buf);
//! gcm.open_in_place(&nonce, b"bucket/key", &mut buf, &tag).unwrap();
//! assert_eq!(buf, b"every byte at rest");
//! ```
//!
//! # Backends
//!
//! | [`Backend`] | name | needs | what it is |
//! |---|---|---|---|
//! | `Portable` | `portable` | nothing | RustCrypto `aes` + `ctr` + `ghash` composed into GCM; the reference, and the ARMv8 path |
//! | `AesNiClmul` | `aesni` | x86-64 AES-NI, PCLMULQDQ, AVX | stitched kernel, 8 blocks in flight |
//! | `VaesAvx2` | `vaes-avx2` | the above and VAES, VPCLMULQDQ, AVX2 | stitched kernel on 256-bit registers, 16 blocks in flight |
//! | `VaesAvx512` | `vaes-avx512` | VAES, VPCLMULQDQ, AVX-512 | not built yet: never available |
//!
//! The environment variable `SSEKIT_BACKEND` (one of the names above) makes [`Aes256Gcm::new`] use that
//! backend when this CPU has it; tests and benchmarks use it to pin one.
//!
//! # Limits
//!
//! A message holds at most [`MAX_MESSAGE_LEN`] bytes (2^39 - 256 bits, SP 800-38D section 5.2.1.1).
//! [`Aes256Gcm::try_seal_in_place`] reports a longer one as [`Error::MessageTooLong`];
//! [`Aes256Gcm::seal_in_place`] panics on it (its signature has no room for an error).

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroize;

mod parallel;
mod portable;
#[cfg(target_arch = "x86_64")]
mod x86;

/// The longest plaintext (and so ciphertext) one GCM message may hold: 2^39 - 256 bits.
pub const MAX_MESSAGE_LEN: u64 = (1 << 36) - 32;

/// Length of a GCM nonce (IV) in bytes: ssekit uses 96-bit nonces only.
pub const NONCE_LEN: usize = 12;

/// Length of a GCM authentication tag in bytes.
pub const TAG_LEN: usize = 16;

/// An AES-256-GCM implementation, named after the instructions it needs.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// RustCrypto's `aes`, `ctr` and `ghash` composed into GCM. Runs everywhere.
    Portable,
    /// Stitched AES-NI + PCLMULQDQ kernel on 128-bit registers.
    AesNiClmul,
    /// VAES + VPCLMULQDQ on 256-bit registers (AVX2).
    VaesAvx2,
    /// VAES + VPCLMULQDQ on 512-bit registers (AVX-512).
    VaesAvx512,
}

impl Backend {
    /// Every backend, fastest first.
    const ALL: [Backend; 4] = [
        Backend::VaesAvx512,
        Backend::VaesAvx2,
        Backend::AesNiClmul,
        Backend::Portable,
    ];

    /// The fastest backend this CPU can run.
    pub fn detect() -> Backend {
        Self::ALL
            .into_iter()
            .find(|b| b.is_available())
            .unwrap_or(Backend::Portable)
    }

    /// Every backend this CPU can run, fastest first; always ends with [`Backend::Portable`].
    pub fn available() -> Vec<Backend> {
        Self::ALL.into_iter().filter(|b| b.is_available()).collect()
    }

    /// Whether this CPU can run this backend (and this build contains it).
    pub fn is_available(self) -> bool {
        match self {
            Backend::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Backend::AesNiClmul => x86::AesNiClmulCpu::detect().is_some(),
            #[cfg(target_arch = "x86_64")]
            Backend::VaesAvx2 => x86::VaesAvx2Cpu::detect().is_some(),
            _ => false,
        }
    }

    /// The backend's name as `SSEKIT_BACKEND` and the CLI spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Portable => "portable",
            Backend::AesNiClmul => "aesni",
            Backend::VaesAvx2 => "vaes-avx2",
            Backend::VaesAvx512 => "vaes-avx512",
        }
    }

    /// The backend [`Aes256Gcm::new`] uses when `SSEKIT_BACKEND` holds `forced` (`None` or empty: not
    /// set).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownBackend`] for a name that is no backend, [`Error::BackendUnavailable`] for one
    /// this CPU lacks.
    pub fn select(forced: Option<&str>) -> Result<Backend, Error> {
        match forced {
            None | Some("") => Ok(Backend::detect()),
            Some(name) => {
                let b = Backend::from_name(name).ok_or(Error::UnknownBackend)?;
                if b.is_available() {
                    Ok(b)
                } else {
                    Err(Error::BackendUnavailable(b))
                }
            }
        }
    }

    /// The backend called `name` (see [`Backend::name`]), whether or not this CPU has it.
    pub fn from_name(name: &str) -> Option<Backend> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What can go wrong in this module.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The ciphertext, the AAD, the nonce or the tag is not what the key sealed. Deliberately says
    /// nothing more; the buffer has been zeroed.
    Authentication,
    /// The message is longer than [`MAX_MESSAGE_LEN`].
    MessageTooLong,
    /// The output buffer of a copying call is not as long as its input.
    LengthMismatch,
    /// This CPU (or this build) lacks the instructions the backend needs.
    BackendUnavailable(Backend),
    /// `SSEKIT_BACKEND` names no backend.
    UnknownBackend,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Authentication => f.write_str("authentication failed"),
            Error::MessageTooLong => write!(
                f,
                "message longer than the AES-GCM limit of {MAX_MESSAGE_LEN} bytes"
            ),
            Error::LengthMismatch => f.write_str("output buffer length differs from the input's"),
            Error::BackendUnavailable(b) => {
                write!(f, "this CPU cannot run the AES-GCM backend `{b}`")
            }
            Error::UnknownBackend => {
                f.write_str("SSEKIT_BACKEND must be one of portable, aesni, vaes-avx2, vaes-avx512")
            }
        }
    }
}

impl std::error::Error for Error {}

/// The GHASH accumulator as a backend keeps it, in the backend's own representation. The parallel code
/// only moves it around, XORs two together and asks the backend to multiply it by a power of H.
pub(crate) type GhashState = [u8; 16];

/// The primitives each backend supplies; the GCM composition (AAD, lengths, tag, parallel split) is
/// written once, in this module and `parallel`, over them.
pub(crate) trait GcmKernel: Sync {
    /// `state` absorbs `data`, the last block zero-padded (SP 800-38D GHASH over padded input).
    fn ghash(&self, state: GhashState, data: &[u8]) -> GhashState;
    /// Encrypts `buf` in CTR mode starting at counter block `nonce ‖ be32(counter)` and absorbs the
    /// ciphertext into `state`.
    fn encrypt(
        &self,
        nonce: &[u8; NONCE_LEN],
        counter: u32,
        state: GhashState,
        buf: &mut [u8],
    ) -> GhashState;
    /// Absorbs the ciphertext in `buf` into `state`, then decrypts it as [`GcmKernel::encrypt`] encrypts.
    fn decrypt(
        &self,
        nonce: &[u8; NONCE_LEN],
        counter: u32,
        state: GhashState,
        buf: &mut [u8],
    ) -> GhashState;
    /// [`GcmKernel::encrypt`] reading `src` and writing the result to `dst` (the same length), so a
    /// caller that wants the output elsewhere makes one pass over memory rather than two. The default
    /// copies, then encrypts in place.
    fn encrypt_copy(
        &self,
        nonce: &[u8; NONCE_LEN],
        counter: u32,
        state: GhashState,
        src: &[u8],
        dst: &mut [u8],
    ) -> GhashState {
        dst.copy_from_slice(src);
        self.encrypt(nonce, counter, state, dst)
    }
    /// [`GcmKernel::decrypt`] from `src` into `dst`, as [`GcmKernel::encrypt_copy`].
    fn decrypt_copy(
        &self,
        nonce: &[u8; NONCE_LEN],
        counter: u32,
        state: GhashState,
        src: &[u8],
        dst: &mut [u8],
    ) -> GhashState {
        dst.copy_from_slice(src);
        self.decrypt(nonce, counter, state, dst)
    }
    /// `H^n` in the backend's representation (lengths are public: this need not be constant-time in
    /// `n`).
    fn h_pow(&self, n: u64) -> GhashState;
    /// The field product `a · b`; with `b = h_pow(n)` it moves a partial digest past `n` more blocks.
    fn mul(&self, a: &GhashState, b: &GhashState) -> GhashState;
    /// Messages shorter than this stay on the calling thread in the `par_*` calls: handing work to the
    /// pool and back costs about 8–10 µs, so splitting pays once one core needs roughly 20 µs (measured
    /// per backend, docs/BENCHMARKS.md).
    fn min_parallel_len(&self) -> usize {
        128 * 1024
    }
    /// Absorbs the length block and returns `GHASH ⊕ E(K, J0)`.
    fn tag(
        &self,
        nonce: &[u8; NONCE_LEN],
        state: GhashState,
        aad_len: u64,
        msg_len: u64,
    ) -> [u8; TAG_LEN];
}

/// First counter value used for data with a 96-bit nonce: J0 = nonce ‖ 1 is reserved for the tag.
const FIRST_DATA_COUNTER: u32 = 2;

/// The dispatched key: a closed enum, chosen once at construction.
#[allow(
    clippy::large_enum_variant,
    reason = "one per key, never moved in a hot path; boxing would add a pointer chase per call"
)]
enum Kernel {
    Portable(portable::Key),
    #[cfg(target_arch = "x86_64")]
    AesNiClmul(x86::aesni_clmul::Key),
    #[cfg(target_arch = "x86_64")]
    VaesAvx2(x86::vaes_avx2::Key),
}

impl Kernel {
    fn get(&self) -> &dyn GcmKernel {
        match self {
            Kernel::Portable(k) => k,
            #[cfg(target_arch = "x86_64")]
            Kernel::AesNiClmul(k) => k,
            #[cfg(target_arch = "x86_64")]
            Kernel::VaesAvx2(k) => k,
        }
    }
}

/// An AES-256-GCM key bound to one backend. `Send + Sync`: share one across threads. The key schedule
/// and the powers of H are zeroized when it is dropped.
pub struct Aes256Gcm {
    kernel: Kernel,
    backend: Backend,
}

impl fmt::Debug for Aes256Gcm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aes256Gcm")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Aes256Gcm {
    /// A key on the fastest backend this CPU has, or on the one `SSEKIT_BACKEND` names.
    ///
    /// # Panics
    ///
    /// If `SSEKIT_BACKEND` is set to an unknown name or to a backend this CPU lacks: a forced backend
    /// is a test or benchmark setting, and silently measuring another one would be worse. Use
    /// [`Aes256Gcm::from_env`] to get that as an error instead.
    pub fn new(key: &[u8; 32]) -> Self {
        match Self::from_env(key) {
            Ok(k) => k,
            Err(e) => panic!("SSEKIT_BACKEND: {e}"),
        }
    }

    /// As [`Aes256Gcm::new`], with a bad `SSEKIT_BACKEND` reported as an error.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownBackend`] or [`Error::BackendUnavailable`].
    pub fn from_env(key: &[u8; 32]) -> Result<Self, Error> {
        let forced = std::env::var("SSEKIT_BACKEND").ok();
        Self::with_backend(key, Backend::select(forced.as_deref())?)
    }

    /// A key on backend `b`.
    ///
    /// # Errors
    ///
    /// [`Error::BackendUnavailable`] if this CPU (or this build) lacks `b`.
    pub fn with_backend(key: &[u8; 32], b: Backend) -> Result<Self, Error> {
        let kernel = match b {
            Backend::Portable => Kernel::Portable(portable::Key::new(key)),
            #[cfg(target_arch = "x86_64")]
            Backend::AesNiClmul => {
                let cpu = x86::AesNiClmulCpu::detect().ok_or(Error::BackendUnavailable(b))?;
                Kernel::AesNiClmul(x86::aesni_clmul::Key::new(key, cpu))
            }
            #[cfg(target_arch = "x86_64")]
            Backend::VaesAvx2 => {
                let cpu = x86::VaesAvx2Cpu::detect().ok_or(Error::BackendUnavailable(b))?;
                Kernel::VaesAvx2(x86::vaes_avx2::Key::new(key, cpu))
            }
            _ => return Err(Error::BackendUnavailable(b)),
        };
        Ok(Aes256Gcm { kernel, backend: b })
    }

    /// The backend this key runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Encrypts `buf` in place and returns the tag.
    ///
    /// # Panics
    ///
    /// If `buf` is longer than [`MAX_MESSAGE_LEN`]; [`Aes256Gcm::try_seal_in_place`] returns an error
    /// instead.
    pub fn seal_in_place(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        match self.try_seal_in_place(nonce, aad, buf) {
            Ok(tag) => tag,
            Err(e) => panic!("seal_in_place: {e}"),
        }
    }

    /// Encrypts `buf` in place and returns the tag.
    ///
    /// # Errors
    ///
    /// [`Error::MessageTooLong`] if `buf` is longer than [`MAX_MESSAGE_LEN`]; `buf` is then untouched.
    pub fn try_seal_in_place(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; 16], Error> {
        check_len(buf.len())?;
        let k = self.kernel.get();
        let state = k.ghash([0; 16], aad);
        let state = k.encrypt(nonce, FIRST_DATA_COUNTER, state, buf);
        Ok(k.tag(nonce, state, aad.len() as u64, buf.len() as u64))
    }

    /// Checks `tag` and decrypts `buf` in place.
    ///
    /// # Errors
    ///
    /// [`Error::Authentication`] if the tag does not match (the buffer is then all zeros: no plaintext
    /// is released), [`Error::MessageTooLong`] if `buf` is longer than [`MAX_MESSAGE_LEN`] (`buf`
    /// untouched).
    pub fn open_in_place(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<(), Error> {
        check_len(buf.len())?;
        let k = self.kernel.get();
        let state = k.ghash([0; 16], aad);
        let state = k.decrypt(nonce, FIRST_DATA_COUNTER, state, buf);
        let expected = k.tag(nonce, state, aad.len() as u64, buf.len() as u64);
        verify_or_wipe(expected, tag, buf)
    }

    /// Encrypts `plaintext` into `out` (the same length) and returns the tag: the same bytes as
    /// [`Aes256Gcm::seal_in_place`], in one pass over memory where the backend fuses the copy (VAES).
    ///
    /// # Errors
    ///
    /// [`Error::LengthMismatch`] if `out` is not as long as `plaintext`, [`Error::MessageTooLong`] if
    /// it is longer than [`MAX_MESSAGE_LEN`]; `out` is then untouched.
    pub fn seal_into(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<[u8; 16], Error> {
        check_copy(plaintext.len(), out.len())?;
        let k = self.kernel.get();
        let state = k.ghash([0; 16], aad);
        let state = k.encrypt_copy(nonce, FIRST_DATA_COUNTER, state, plaintext, out);
        Ok(k.tag(nonce, state, aad.len() as u64, out.len() as u64))
    }

    /// Checks `tag` and decrypts `ciphertext` into `out` (the same length).
    ///
    /// # Errors
    ///
    /// [`Error::Authentication`] if the tag does not match (`out` is then all zeros),
    /// [`Error::LengthMismatch`] or [`Error::MessageTooLong`] as in [`Aes256Gcm::seal_into`] (`out`
    /// untouched).
    pub fn open_into(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; 16],
        out: &mut [u8],
    ) -> Result<(), Error> {
        check_copy(ciphertext.len(), out.len())?;
        let k = self.kernel.get();
        let state = k.ghash([0; 16], aad);
        let state = k.decrypt_copy(nonce, FIRST_DATA_COUNTER, state, ciphertext, out);
        let expected = k.tag(nonce, state, aad.len() as u64, out.len() as u64);
        verify_or_wipe(expected, tag, out)
    }

    /// [`Aes256Gcm::seal_in_place`] spread over the current rayon thread pool. The output is
    /// byte-identical to the single-threaded call; short messages run on the calling thread.
    ///
    /// # Panics
    ///
    /// If `buf` is longer than [`MAX_MESSAGE_LEN`].
    pub fn par_seal_in_place(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        match self.par_seal_in_place_chunked(
            nonce,
            aad,
            buf,
            parallel::auto_chunk_len(self.kernel.get(), buf.len()),
        ) {
            Ok(tag) => tag,
            Err(e) => panic!("par_seal_in_place: {e}"),
        }
    }

    /// [`Aes256Gcm::open_in_place`] spread over the current rayon thread pool.
    ///
    /// # Errors
    ///
    /// As [`Aes256Gcm::open_in_place`].
    pub fn par_open_in_place(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<(), Error> {
        self.par_open_in_place_chunked(
            nonce,
            aad,
            buf,
            tag,
            parallel::auto_chunk_len(self.kernel.get(), buf.len()),
        )
    }

    /// [`Aes256Gcm::par_seal_in_place`] with the work cut into pieces of `chunk_len` bytes (rounded up
    /// to a multiple of 16), one rayon task each; `chunk_len >= buf.len()` runs on the calling thread.
    /// For callers that tune the split to their own pool, and for tests.
    ///
    /// # Errors
    ///
    /// [`Error::MessageTooLong`] if `buf` is longer than [`MAX_MESSAGE_LEN`] (`buf` untouched).
    pub fn par_seal_in_place_chunked(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        chunk_len: usize,
    ) -> Result<[u8; 16], Error> {
        check_len(buf.len())?;
        Ok(parallel::seal(
            self.kernel.get(),
            nonce,
            aad,
            buf,
            chunk_len,
        ))
    }

    /// [`Aes256Gcm::par_open_in_place`] with an explicit split, as in
    /// [`Aes256Gcm::par_seal_in_place_chunked`].
    ///
    /// # Errors
    ///
    /// As [`Aes256Gcm::open_in_place`].
    pub fn par_open_in_place_chunked(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; 16],
        chunk_len: usize,
    ) -> Result<(), Error> {
        check_len(buf.len())?;
        let expected = parallel::open(self.kernel.get(), nonce, aad, buf, chunk_len);
        verify_or_wipe(expected, tag, buf)
    }
}

fn check_len(len: usize) -> Result<(), Error> {
    if len as u64 > MAX_MESSAGE_LEN {
        return Err(Error::MessageTooLong);
    }
    Ok(())
}

fn check_copy(input: usize, output: usize) -> Result<(), Error> {
    if input != output {
        return Err(Error::LengthMismatch);
    }
    check_len(input)
}

/// Constant-time tag check; on failure the decrypted buffer is zeroed before the error is returned.
///
/// The wipe is a plain `fill`: the buffer belongs to the caller, who reads it after we return, so the
/// compiler cannot drop the stores (which `zeroize`'s volatile byte-at-a-time writes guard against for
/// memory about to be freed) and a memset runs at memory speed.
fn verify_or_wipe(mut expected: [u8; 16], tag: &[u8; 16], buf: &mut [u8]) -> Result<(), Error> {
    let ok: bool = expected.ct_eq(tag).into();
    expected.zeroize();
    if ok {
        Ok(())
    } else {
        buf.fill(0);
        Err(Error::Authentication)
    }
}

/// The GHASH length block `be64(aad bits) ‖ be64(message bits)`.
pub(crate) fn length_block(aad_len: u64, msg_len: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(aad_len * 8).to_be_bytes());
    b[8..].copy_from_slice(&(msg_len * 8).to_be_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_limit_is_sp800_38d() {
        assert_eq!(MAX_MESSAGE_LEN * 8, (1u64 << 39) - 256);
        assert!(check_len(MAX_MESSAGE_LEN as usize).is_ok());
        assert_eq!(
            check_len(MAX_MESSAGE_LEN as usize + 1),
            Err(Error::MessageTooLong)
        );
    }

    #[test]
    fn names_round_trip() {
        for b in Backend::ALL {
            assert_eq!(Backend::from_name(b.name()), Some(b));
        }
        assert_eq!(Backend::from_name("AESNI"), None);
    }

    #[test]
    fn copying_calls_check_lengths_and_leave_output_untouched() {
        for b in Backend::available() {
            let gcm = Aes256Gcm::with_backend(&[3; 32], b).unwrap();
            let mut out = vec![0x55u8; 99];
            assert_eq!(
                gcm.seal_into(&[0; 12], b"", &[1; 100], &mut out),
                Err(Error::LengthMismatch)
            );
            assert_eq!(
                gcm.open_into(&[0; 12], b"", &[1; 100], &[0; 16], &mut out),
                Err(Error::LengthMismatch)
            );
            assert!(out.iter().all(|&x| x == 0x55));
        }
    }

    #[test]
    fn failed_open_zeroes_the_buffer() {
        let gcm = Aes256Gcm::with_backend(&[3; 32], Backend::Portable).unwrap();
        let mut buf = vec![0x55u8; 100];
        let mut tag = gcm.seal_in_place(&[0; 12], b"", &mut buf);
        tag[0] ^= 1;
        assert_eq!(
            gcm.open_in_place(&[0; 12], b"", &mut buf, &tag),
            Err(Error::Authentication)
        );
        assert!(buf.iter().all(|&b| b == 0));
    }
}
