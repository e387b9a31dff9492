//! `ssekit policy check`: evaluates a bucket policy for one request, as the S3 layer does.

use std::path::Path;
use std::process::ExitCode;

use crate::escape::escape;
use ssekit::engine::sse::policy::{Decision, Policy};
use ssekit::engine::sse::{Headers, evaluate_policy};

/// Prints `Allow` or `Deny` and the statement that decided; exit 0 for Allow, 1 for Deny, 2 when the
/// policy or the flags are unusable.
#[allow(clippy::too_many_arguments)]
pub fn check(
    path: &Path,
    action: &str,
    resource: &str,
    principal: &str,
    secure: bool,
    headers: &[String],
    default_allow: bool,
) -> ExitCode {
    let fail = |msg: String| {
        eprintln!("ssekit: {}", escape(&msg));
        ExitCode::from(2)
    };
    let text = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return fail(format!("{}: {e}", path.display())),
    };
    let Ok(text) = String::from_utf8(text) else {
        return fail(format!("{}: not UTF-8", path.display()));
    };
    let policy = match Policy::parse(&text) {
        Ok(p) => p,
        Err(e) => return fail(format!("{}: {} ({e})", path.display(), e.s3_code())),
    };
    let mut h = Headers::new();
    for pair in headers {
        let Some((n, v)) = pair.split_once(':') else {
            return fail(format!("--header `{pair}` must be NAME:VALUE"));
        };
        h.insert(n.trim(), v.trim());
    }
    let eval = evaluate_policy(&policy, action, resource, principal, secure, &h, &[]);
    let which = |i: Option<usize>| match (i, eval.sid) {
        (Some(i), Some(sid)) => format!("statement {i} `{}`", escape(sid)),
        (Some(i), None) => format!("statement {i} (no Sid)"),
        (None, _) => String::new(),
    };
    let allowed = eval.allowed(default_allow);
    match eval.decision {
        Decision::ExplicitDeny => println!("Deny: {}", which(eval.statement)),
        Decision::Allow => println!("Allow: {}", which(eval.statement)),
        Decision::NoMatch => println!(
            "{}: no statement applies (the default, --default {})",
            if allowed { "Allow" } else { "Deny" },
            if default_allow { "allow" } else { "deny" }
        ),
    }
    if allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
