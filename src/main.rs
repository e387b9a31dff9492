//! The `ssekit` command line. For now it has `bench`; later issues add put/get/inspect/rewrap/key.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use rand::RngCore;
use ssekit::aead::{Aes256Gcm, Backend};

#[derive(Parser)]
#[command(
    name = "ssekit",
    version,
    about = "Amazon-S3-style server-side encryption engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the AES-256-GCM backend this CPU gets and its seal/open throughput on one core and on all.
    Bench(BenchArgs),
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Buffer size in bytes, with an optional K, M or G suffix (powers of 1024).
    #[arg(long, default_value = "64M", value_parser = parse_size)]
    size: usize,
    /// Measure this backend instead of the detected one (portable, aesni, vaes-avx2, vaes-avx512).
    #[arg(long)]
    backend: Option<String>,
    /// Seconds to spend on each measurement (each runs at least one pass).
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// Threads for the parallel rows (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

fn parse_size(s: &str) -> Result<usize, String> {
    let (digits, mult) = match s.char_indices().last() {
        Some((i, 'K' | 'k')) => (&s[..i], 1 << 10),
        Some((i, 'M' | 'm')) => (&s[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a size like 4096, 64K, 16M or 1G"))?;
    n.checked_mul(mult)
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("`{s}` is not a usable size"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => bench(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("ssekit: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn names(bs: &[Backend]) -> String {
    bs.iter().map(Backend::name).collect::<Vec<_>>().join(", ")
}

fn bench(args: &BenchArgs) -> Result<(), String> {
    let available = Backend::available();
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(key.as_mut());
    let gcm = match &args.backend {
        Some(name) => {
            let b = Backend::from_name(name).ok_or_else(|| {
                format!(
                    "unknown backend `{name}`; choose one of: {}",
                    names(&available)
                )
            })?;
            Aes256Gcm::with_backend(&key, b)
                .map_err(|e| format!("{e}; this CPU has: {}", names(&available)))?
        }
        None => Aes256Gcm::from_env(&key).map_err(|e| {
            format!(
                "{e} (from SSEKIT_BACKEND); unset it or choose one of: {}",
                names(&available)
            )
        })?,
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| format!("cannot start {threads} threads: {e}"))?;
    let budget = Duration::from_secs_f64(args.seconds.max(0.0));

    println!(
        "backend: {} (this CPU has: {})",
        gcm.backend(),
        names(&available)
    );
    println!(
        "buffer: {} bytes, AES-256-GCM, 96-bit nonce, 16-byte tag",
        args.size
    );
    let nonce = [0u8; 12];
    let mut buf = vec![0x5au8; args.size];
    let mut row = |label: &str,
                   seal: &dyn Fn(&mut [u8]) -> [u8; 16],
                   open: &dyn Fn(&mut [u8], &[u8; 16]) -> bool|
     -> Result<(), String> {
        let seal_rate = measure(budget, args.size, || {
            let start = Instant::now();
            seal(&mut buf);
            start.elapsed()
        });
        // Open needs a valid (ciphertext, tag) pair each time: seal once, copy it back in before each
        // open (not timed), time the open.
        let mut sealed = buf.clone();
        let tag = seal(&mut sealed);
        let mut ok = true;
        let open_rate = measure(budget, args.size, || {
            buf.copy_from_slice(&sealed);
            let start = Instant::now();
            ok &= open(&mut buf, &tag);
            start.elapsed()
        });
        if !ok {
            return Err(format!(
                "{label}: open rejected a message it sealed: this is a bug"
            ));
        }
        println!("{label:<24} seal {seal_rate:>6.2} GB/s   open {open_rate:>6.2} GB/s");
        Ok(())
    };
    row(
        "one core",
        &|b| gcm.seal_in_place(&nonce, b"", b),
        &|b, t| gcm.open_in_place(&nonce, b"", b, t).is_ok(),
    )?;
    row(
        &format!("{threads} threads (par_*)"),
        &|b| pool.install(|| gcm.par_seal_in_place(&nonce, b"", b)),
        &|b, t| pool.install(|| gcm.par_open_in_place(&nonce, b"", b, t).is_ok()),
    )?;
    Ok(())
}

/// GB/s (10^9 bytes per second) over `len` bytes of the work `pass` times (it returns how long its
/// timed part took), repeated until `budget` of timed work has passed.
fn measure(budget: Duration, len: usize, mut pass: impl FnMut() -> Duration) -> f64 {
    pass(); // warm up: page in the buffer, spin up the pool
    let mut spent = Duration::ZERO;
    let mut passes = 0u64;
    while passes == 0 || spent < budget {
        spent += pass();
        passes += 1;
    }
    (len as f64 * passes as f64) / spent.as_secs_f64() / 1e9
}
