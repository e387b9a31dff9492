//! The `ssekit` command line: `put`, `get`, `inspect`, `rewrap`, `key …` and `bench`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use commands::KeyCommand;
use rand::RngCore;
use ssekit::aead::{Aes256Gcm, Backend};
use ssekit::keys::{KeyProvider, KeySpec};

mod audit_cmd;
mod commands;
mod escape;
mod pipe;
mod policy_cmd;
mod providers;
mod sse_cmd;

#[derive(Parser)]
#[command(
    name = "ssekit",
    version,
    about = "Amazon-S3-style server-side encryption engine"
)]
struct Cli {
    /// Home directory: keyring, config.json (default: $SSEKIT_HOME, else $XDG_DATA_HOME/ssekit,
    /// else ~/.local/share/ssekit). Refused unless it and everything in it are yours alone.
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,
    #[command(flatten)]
    providers: providers::ProviderFlags,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Seal a file (`-` = stdin) into an object file (`-` = stdout) under a key of the chosen provider.
    Put {
        /// Plaintext to seal.
        input: String,
        /// Object file to write.
        output: String,
        /// Key to wrap the data key under (default: `default`, created on first use).
        #[arg(long)]
        key_id: Option<String>,
        /// Encryption context pair the data key's wrap is bound to (repeatable).
        #[arg(long = "context", value_name = "KEY=VALUE")]
        context: Vec<String>,
        /// Seal as an S3 multipart object: parts of SIZE bytes (suffix K, M or G for KiB, MiB, GiB),
        /// each its own message, numbered from 1; the last part is shorter. Needs a file input.
        #[arg(long, value_name = "SIZE")]
        part_size: Option<String>,
        /// S3 encryption: with any of these, the object is sealed as S3 would for a PUT with the
        /// matching headers (--context pairs become the SSE-KMS encryption context).
        #[command(flatten)]
        sse: sse_cmd::SseFlags,
    },
    /// Open an object file (`-` = stdin) into a plaintext file (`-` = stdout); its data key is
    /// unwrapped by the provider that wrapped it.
    Get {
        /// Object file to open.
        input: String,
        /// Plaintext to write.
        output: String,
        /// Only bytes START-END (inclusive, as in HTTP), START- or -COUNT.
        #[arg(long, value_name = "START-END", allow_hyphen_values = true)]
        range: Option<String>,
        /// Expected encryption context pair (repeatable); the object's must match.
        #[arg(long = "context", value_name = "KEY=VALUE")]
        context: Vec<String>,
        /// S3 flags, as S3's GET takes them: --sse-c-key-file for an SSE-C object (--sse and the
        /// KMS flags are refused on reads, as S3 refuses those headers).
        #[command(flatten)]
        sse: sse_cmd::SseFlags,
    },
    /// Print an object's metadata (never key material).
    Inspect {
        /// Object file.
        input: String,
        /// As JSON.
        #[arg(long)]
        json: bool,
        /// S3 flags, as S3's HEAD takes them: with any, the object's SSE-C key is checked and the
        /// response headers S3 sends are printed.
        #[command(flatten)]
        sse: sse_cmd::SseFlags,
    },
    /// Move objects' wrapped keys to their key's newest version, touching only metadata.
    Rewrap {
        /// Object files, rewritten in place.
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// Manage the chosen provider's keys.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Bucket policies.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Print the AES-256-GCM backend this CPU gets and its seal/open throughput on one core and on
    /// all, then seal and open a sample object through the local keyring.
    Bench(BenchArgs),
    /// Check audit logs (hash-chained records of key provider calls).
    #[command(subcommand)]
    Audit(audit_cmd::AuditCmd),
}

#[derive(Subcommand)]
enum PolicyCmd {
    /// Evaluate a bucket policy for one request, as the S3 layer does (the SSE condition keys from
    /// the raw headers, before they are validated): prints Allow or Deny and the statement that
    /// decided; exit 0 for Allow, 1 for Deny, 2 for an unusable policy.
    Check {
        /// The policy JSON.
        policy: PathBuf,
        /// The IAM action, e.g. s3:PutObject.
        #[arg(long)]
        action: String,
        /// The resource ARN, e.g. arn:aws:s3:::bucket/key.
        #[arg(long)]
        resource: String,
        /// The caller (an IAM ARN; default: anonymous).
        #[arg(long, default_value = "*")]
        principal: String,
        /// The request came over TLS (aws:SecureTransport true).
        #[arg(long)]
        secure: bool,
        /// A request header NAME:VALUE (repeatable), e.g. x-amz-server-side-encryption:AES256.
        #[arg(long = "header", value_name = "NAME:VALUE")]
        headers: Vec<String>,
        /// What a policy's silence means: allow (the server's own authorization stands: the S3
        /// layer's default) or deny (IAM's implicit deny).
        #[arg(long, default_value = "allow", value_parser = ["allow", "deny"])]
        default: String,
    },
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Create a key.
    Create {
        /// Its id (default: generated).
        #[arg(long)]
        id: Option<String>,
        /// Free text.
        #[arg(long, default_value = "")]
        description: String,
        /// Rotate automatically every N days.
        #[arg(long, value_name = "N")]
        rotation_days: Option<u32>,
    },
    /// List keys.
    List {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Describe a key.
    Describe {
        /// Key id.
        id: String,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make a new version the one new wraps use.
    Rotate {
        /// Key id.
        id: String,
    },
    /// Enable a disabled key.
    Enable {
        /// Key id.
        id: String,
    },
    /// Disable a key.
    Disable {
        /// Key id.
        id: String,
    },
    /// Schedule a key's destruction in 7 to 30 days.
    ScheduleDeletion {
        /// Key id.
        id: String,
        /// Days until destruction (7..=30).
        #[arg(long)]
        days: u32,
    },
    /// Cancel a scheduled destruction (the key comes back disabled).
    CancelDeletion {
        /// Key id.
        id: String,
    },
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
    // Needs no home and no provider.
    if let Command::Policy(PolicyCmd::Check {
        policy,
        action,
        resource,
        principal,
        secure,
        headers,
        default,
    }) = &cli.command
    {
        return policy_cmd::check(
            policy,
            action,
            resource,
            principal,
            *secure,
            headers,
            default == "allow",
        );
    }
    // Checking an audit log needs no home and no provider.
    if let Command::Audit(cmd) = cli.command {
        return audit_cmd::run(cmd);
    }
    let ps = match commands::home(cli.home)
        .and_then(|home| providers::Providers::new(home, cli.providers))
    {
        Ok(ps) => ps,
        Err(msg) => {
            eprintln!("ssekit: {}", escape::escape(&msg));
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Put {
            input,
            output,
            key_id,
            context,
            part_size,
            sse,
        } => commands::put(
            &ps,
            &input,
            &output,
            key_id.as_deref(),
            &context,
            part_size.as_deref(),
            &sse,
        ),
        Command::Get {
            input,
            output,
            range,
            context,
            sse,
        } => commands::get(&ps, &input, &output, range.as_deref(), &context, &sse),
        Command::Inspect { input, json, sse } => commands::inspect(&ps, &input, json, &sse),
        Command::Rewrap { files } => commands::rewrap(&ps, &files),
        Command::Key(k) => commands::key(
            &ps,
            match k {
                KeyCmd::Create {
                    id,
                    description,
                    rotation_days,
                } => KeyCommand::Create(KeySpec {
                    id,
                    description,
                    rotation_period_days: rotation_days,
                }),
                KeyCmd::List { json } => KeyCommand::List { json },
                KeyCmd::Describe { id, json } => KeyCommand::Describe { id, json },
                KeyCmd::Rotate { id } => KeyCommand::Rotate(id),
                KeyCmd::Enable { id } => KeyCommand::Enable(id),
                KeyCmd::Disable { id } => KeyCommand::Disable(id),
                KeyCmd::ScheduleDeletion { id, days } => KeyCommand::ScheduleDeletion { id, days },
                KeyCmd::CancelDeletion { id } => KeyCommand::CancelDeletion(id),
            },
        ),
        Command::Bench(args) => bench(ps.home(), &args),
        Command::Policy(_) => unreachable!("answered before the home is opened"),
        Command::Audit(_) => unreachable!("`audit` returns before the home is resolved"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            // Messages quote object metadata, config values and key services' answers.
            eprintln!("ssekit: {}", escape::escape(&msg));
            ExitCode::FAILURE
        }
    }
}

fn names(bs: &[Backend]) -> String {
    bs.iter().map(Backend::name).collect::<Vec<_>>().join(", ")
}

fn bench(home: &std::path::Path, args: &BenchArgs) -> Result<(), String> {
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
    sample_object(home, &pool, &buf, budget)
}

/// Seals and opens `data` as an object whose data key is wrapped by the local keyring's `default`
/// key: the path `ssekit put`/`get` take, in memory.
fn sample_object(
    home: &std::path::Path,
    pool: &rayon::ThreadPool,
    data: &[u8],
    budget: Duration,
) -> Result<(), String> {
    use ssekit::keys::EncryptionContext;
    use ssekit::object;
    let ring = commands::keyring(home)?;
    ring.ensure_key(commands::DEFAULT_KEY)
        .map_err(|e| e.to_string())?;
    let ctx = EncryptionContext::from_pairs([("bucket", "bench"), ("key", "sample")])
        .map_err(|e| e.to_string())?;
    let (dek, wrapped) = ring
        .generate_data_key(commands::DEFAULT_KEY, &ctx)
        .map_err(|e| e.to_string())?;
    let mut sealed = vec![0u8; object::sealed_len(data.len() as u64) as usize];
    let seal_rate = measure(budget, data.len(), || {
        let start = Instant::now();
        pool.install(|| object::seal_into(&dek, data, &mut sealed))
            .expect("seal");
        start.elapsed()
    });
    let mut meta =
        object::ObjectMeta::new(object::SseMode::SseS3, ctx.clone(), vec![wrapped.clone()]);
    meta.size = data.len() as u64;
    meta.authenticate(&dek).map_err(|e| e.to_string())?;
    let dek = ring.unwrap(&wrapped, &ctx).map_err(|e| e.to_string())?;
    let mut opened = vec![0u8; data.len()];
    let mut ok = true;
    let open_rate = measure(budget, data.len(), || {
        let start = Instant::now();
        ok &= pool
            .install(|| {
                meta.verify(&dek)
                    .and_then(|v| v.open_into(&sealed, &mut opened))
            })
            .is_ok();
        start.elapsed()
    });
    if !ok || opened != data {
        return Err("the sample object did not open to what was sealed: this is a bug".into());
    }
    println!(
        "{:<24} seal {seal_rate:>6.2} GB/s   open {open_rate:>6.2} GB/s   (object format, key `{}` v{} in {})",
        "object (all threads)",
        wrapped.key_id,
        wrapped.key_version,
        home.display()
    );
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
