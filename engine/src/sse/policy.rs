//! Bucket policies: an S3 bucket-policy JSON document parsed into a [`Policy`] and evaluated against a
//! [`PolicyRequest`] as AWS IAM evaluates resource-based policies: an applicable explicit `Deny` wins,
//! then an applicable `Allow`, else nothing applies and the caller's default decides.
//!
//! Parsing fails closed: an element, operator or value this module does not understand is refused
//! with a [`PolicyError`] (S3's `400 MalformedPolicy`), never skipped. Evaluation allocates nothing.
//! What is supported, and the choices made where AWS is ambiguous, are in docs/POLICY.md.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Largest accepted policy document, in bytes: S3's limit for bucket policies (20 KiB).
pub const MAX_POLICY_BYTES: usize = 20 * 1024;

/// Deepest accepted nesting of JSON arrays and objects. A valid policy needs 6 (document, `Statement`
/// array, statement, `Condition`, operator, value array).
pub const MAX_NESTING: usize = 8;

/// Condition key: the request's raw `x-amz-server-side-encryption` header (`AES256`, `aws:kms`,
/// `aws:kms:dsse`, or whatever the client sent).
pub const KEY_SSE: &str = "s3:x-amz-server-side-encryption";
/// Condition key: the request's raw `x-amz-server-side-encryption-aws-kms-key-id` header.
pub const KEY_SSE_KMS_KEY_ID: &str = "s3:x-amz-server-side-encryption-aws-kms-key-id";
/// Condition key: the request's raw `x-amz-server-side-encryption-customer-algorithm` header (SSE-C).
pub const KEY_SSE_CUSTOMER_ALGORITHM: &str = "s3:x-amz-server-side-encryption-customer-algorithm";
/// Condition key: `"true"` when the request came over TLS, `"false"` otherwise.
pub const KEY_SECURE_TRANSPORT: &str = "aws:SecureTransport";
/// Condition key: the ARN of the calling principal (absent for anonymous requests).
pub const KEY_PRINCIPAL_ARN: &str = "aws:PrincipalArn";
/// Condition key: the friendly name of the calling IAM user (absent for roles and anonymous callers).
pub const KEY_USERNAME: &str = "aws:username";

/// A policy document that is not accepted. Every variant is S3's `400 MalformedPolicy`
/// ([`PolicyError::s3_code`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyError {
    /// The document is longer than [`MAX_POLICY_BYTES`].
    TooLarge {
        /// Its length in bytes.
        len: usize,
    },
    /// Arrays and objects nest deeper than [`MAX_NESTING`].
    TooDeep,
    /// Not a JSON document (or one with a duplicated member name): the parser's message.
    Json(String),
    /// JSON, but not a policy this module accepts.
    Invalid {
        /// Where, e.g. `Statement[1].Condition.StringLike`.
        at: String,
        /// Why, e.g. `unknown condition operator`.
        reason: String,
    },
}

impl PolicyError {
    /// The S3 error code for a PutBucketPolicy carrying this document: always `MalformedPolicy`.
    pub fn s3_code(&self) -> &'static str {
        "MalformedPolicy"
    }

    fn invalid(at: &str, reason: impl Into<String>) -> Self {
        PolicyError::Invalid {
            at: at.to_owned(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::TooLarge { len } => write!(
                f,
                "the policy is {len} bytes; bucket policies are at most {MAX_POLICY_BYTES} bytes"
            ),
            PolicyError::TooDeep => write!(
                f,
                "the policy nests arrays and objects deeper than {MAX_NESTING} levels"
            ),
            PolicyError::Json(m) => write!(f, "the policy is not valid JSON: {m}"),
            PolicyError::Invalid { at, reason } => {
                if at.is_empty() {
                    write!(f, "invalid policy: {reason}")
                } else {
                    write!(f, "invalid policy at {at}: {reason}")
                }
            }
        }
    }
}

impl std::error::Error for PolicyError {}

/// The policy language version named by `Version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// `2012-10-17`, the current language (policy variables exist; this module refuses them).
    V2012_10_17,
    /// `2008-10-17`, the original language, also what a document without `Version` gets.
    V2008_10_17,
}

/// What the policy says about a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// An `Allow` statement applies and no `Deny` statement does.
    Allow,
    /// A `Deny` statement applies: refused whatever else says.
    ExplicitDeny,
    /// No statement applies: the caller's default decides.
    NoMatch,
}

/// The outcome of [`Policy::evaluate`]: the decision and the statement that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Evaluation<'p> {
    /// The decision.
    pub decision: Decision,
    /// The deciding statement's index in `Statement` (the first applicable `Deny`, else the first
    /// applicable `Allow`); `None` for [`Decision::NoMatch`].
    pub statement: Option<usize>,
    /// The deciding statement's `Sid`, if it has one.
    pub sid: Option<&'p str>,
}

impl Evaluation<'_> {
    /// Whether the request may go on: `Allow` yes, `ExplicitDeny` no, `NoMatch` as `default_allow`
    /// (e.g. whether the caller's identity policies or the bucket owner rule allow it).
    pub fn allowed(&self, default_allow: bool) -> bool {
        match self.decision {
            Decision::Allow => true,
            Decision::ExplicitDeny => false,
            Decision::NoMatch => default_allow,
        }
    }
}

/// A request's condition keys and their values, as policies see them.
///
/// Keys compare ASCII-case-insensitively. A key may have several values. Implemented by
/// [`ConditionContext`] (owned), by arrays and slices of `(key, value)` pairs (borrowed:
/// `&[(KEY_SSE, "AES256")]`), and by `()` (no keys at all).
pub trait ConditionValues: fmt::Debug {
    /// `None` when `key` (given in ASCII lower case) is absent; otherwise `Some(true)` as soon as
    /// `pred` returns true for one of its values, `Some(false)` if it returns true for none.
    fn any_value(&self, key: &str, pred: &mut dyn FnMut(&str) -> bool) -> Option<bool>;
}

impl ConditionValues for () {
    fn any_value(&self, _key: &str, _pred: &mut dyn FnMut(&str) -> bool) -> Option<bool> {
        None
    }
}

impl ConditionValues for [(&str, &str)] {
    fn any_value(&self, key: &str, pred: &mut dyn FnMut(&str) -> bool) -> Option<bool> {
        let mut present = false;
        for (k, v) in self {
            if k.eq_ignore_ascii_case(key) {
                present = true;
                if pred(v) {
                    return Some(true);
                }
            }
        }
        present.then_some(false)
    }
}

impl ConditionValues for Vec<(&str, &str)> {
    fn any_value(&self, key: &str, pred: &mut dyn FnMut(&str) -> bool) -> Option<bool> {
        self[..].any_value(key, pred)
    }
}

impl<const N: usize> ConditionValues for [(&str, &str); N] {
    fn any_value(&self, key: &str, pred: &mut dyn FnMut(&str) -> bool) -> Option<bool> {
        self[..].any_value(key, pred)
    }
}

/// An owned set of condition keys and values for a request. Keys are stored in ASCII lower case, so
/// lookups are case-insensitive; a key inserted twice has two values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConditionContext {
    entries: Vec<(String, String)>,
}

impl ConditionContext {
    /// No keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a value for `key` (kept alongside any values it already has).
    pub fn insert(&mut self, key: &str, value: &str) -> &mut Self {
        self.entries
            .push((key.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// [`ConditionContext::insert`] by value, for building in one expression.
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.insert(key, value);
        self
    }

    /// Removes every value of `key`.
    pub fn remove(&mut self, key: &str) {
        self.entries.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
    }

    /// The values of `key`, in insertion order.
    pub fn get<'s>(&'s self, key: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.entries
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// Number of (key, value) entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl ConditionValues for ConditionContext {
    fn any_value(&self, key: &str, pred: &mut dyn FnMut(&str) -> bool) -> Option<bool> {
        let mut present = false;
        for (k, v) in &self.entries {
            // Stored lower case; `key` is lower case by contract, but a caller's own key may not be.
            if k.eq_ignore_ascii_case(key) {
                present = true;
                if pred(v) {
                    return Some(true);
                }
            }
        }
        present.then_some(false)
    }
}

/// A request as a bucket policy sees it.
#[derive(Clone, Copy, Debug)]
pub struct PolicyRequest<'a> {
    /// The caller: an ARN such as `arn:aws:iam::111122223333:user/alice` or
    /// `arn:aws:sts::111122223333:assumed-role/r/s`, a canonical user id or service name, or `"*"`
    /// or `""` for an anonymous request.
    pub principal: &'a str,
    /// The action, e.g. `s3:PutObject`.
    pub action: &'a str,
    /// The resource, e.g. `arn:aws:s3:::bucket/key` or `arn:aws:s3:::bucket`.
    pub resource: &'a str,
    /// The request's condition keys (see the `KEY_*` constants), filled from the raw request.
    pub conditions: &'a dyn ConditionValues,
}

/// A parsed bucket policy: immutable, cheap to share (`Send + Sync`), evaluated without allocating.
#[derive(Clone, Debug)]
pub struct Policy {
    version: Version,
    id: Option<String>,
    statements: Vec<Statement>,
}

impl Policy {
    /// Parses and validates a bucket-policy document.
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] for a document over [`MAX_POLICY_BYTES`], nested deeper than
    /// [`MAX_NESTING`], that is not JSON, or that has an element, operator or value this module does
    /// not accept (see docs/POLICY.md).
    pub fn parse(json: &str) -> Result<Policy, PolicyError> {
        if json.len() > MAX_POLICY_BYTES {
            return Err(PolicyError::TooLarge { len: json.len() });
        }
        check_nesting(json.as_bytes())?;
        let doc: Json = serde_json::from_str(json).map_err(|e| PolicyError::Json(e.to_string()))?;
        parse_document(doc)
    }

    /// Evaluates the policy against `req`: the first applicable `Deny` statement decides
    /// ([`Decision::ExplicitDeny`]), else the first applicable `Allow` ([`Decision::Allow`]), else
    /// [`Decision::NoMatch`]. A statement applies when its principal, action, resource and every
    /// condition match.
    pub fn evaluate<'p>(&'p self, req: &PolicyRequest<'_>) -> Evaluation<'p> {
        let mut allow: Option<usize> = None;
        for (i, st) in self.statements.iter().enumerate() {
            if st.effect == Effect::Allow && allow.is_some() {
                // An Allow is already found; only a Deny can change the outcome now.
                continue;
            }
            if st.applies(req) {
                match st.effect {
                    Effect::Deny => return self.outcome(Decision::ExplicitDeny, i),
                    Effect::Allow => allow = Some(i),
                }
            }
        }
        match allow {
            Some(i) => self.outcome(Decision::Allow, i),
            None => Evaluation {
                decision: Decision::NoMatch,
                statement: None,
                sid: None,
            },
        }
    }

    fn outcome(&self, decision: Decision, i: usize) -> Evaluation<'_> {
        Evaluation {
            decision,
            statement: Some(i),
            sid: self.statements.get(i).and_then(|s| s.sid.as_deref()),
        }
    }

    /// The document's `Version` (2008-10-17 when it has none).
    pub fn version(&self) -> Version {
        self.version
    }

    /// The document's `Id`, if any.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// Number of statements (at least one).
    pub fn len(&self) -> usize {
        self.statements.len()
    }

    /// Always false: a policy has at least one statement.
    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    /// The `Sid` of statement `index`, if it exists and has one.
    pub fn sid(&self, index: usize) -> Option<&str> {
        self.statements.get(index).and_then(|s| s.sid.as_deref())
    }
}

impl FromStr for Policy {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Policy::parse(s)
    }
}

/// Matches `text` against `pattern`, where `*` matches any run of characters (also none) and `?`
/// exactly one, case-sensitively: IAM's wildcard matching for `Resource` and `StringLike`. Runs in
/// O(|pattern| · |text|) at worst (no backtracking beyond the last `*`).
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    glob(pattern, text, false, &mut 0)
}

/// [`wildcard_match`] that also returns the number of steps the matcher took, for tests that bound
/// its work on hostile patterns.
#[doc(hidden)]
pub fn wildcard_match_counted(pattern: &str, text: &str) -> (bool, u64) {
    let mut steps = 0;
    let m = glob(pattern, text, false, &mut steps);
    (m, steps)
}

// ---------------------------------------------------------------------------------------------
// Matching

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

/// A wildcard pattern, sorted at parse time into the cheap common shapes.
#[derive(Clone, Debug)]
enum Pattern {
    /// `*`.
    Any,
    /// No wildcard.
    Exact(String),
    /// `prefix*` with no other wildcard.
    Prefix(String),
    /// Anything else.
    Glob(String),
}

impl Pattern {
    fn new(p: &str) -> Pattern {
        if p.bytes().all(|b| b == b'*') && !p.is_empty() {
            return Pattern::Any;
        }
        let wild = |b: u8| b == b'*' || b == b'?';
        match p.bytes().position(wild) {
            None => Pattern::Exact(p.to_owned()),
            Some(i) if i + 1 == p.len() && p.as_bytes()[i] == b'*' => {
                Pattern::Prefix(p[..i].to_owned())
            }
            Some(_) => Pattern::Glob(p.to_owned()),
        }
    }

    /// `fold`: ASCII-case-insensitive (actions).
    fn matches(&self, text: &str, fold: bool) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Exact(p) => {
                if fold {
                    p.eq_ignore_ascii_case(text)
                } else {
                    p == text
                }
            }
            Pattern::Prefix(p) => match text.as_bytes().get(..p.len()) {
                Some(head) if fold => head.eq_ignore_ascii_case(p.as_bytes()),
                Some(head) => head == p.as_bytes(),
                None => false,
            },
            Pattern::Glob(p) => glob(p, text, fold, &mut 0),
        }
    }
}

/// The character at byte offset `i` of `s` (always a boundary here) and its length.
fn char_at(s: &str, i: usize) -> Option<(char, usize)> {
    s.get(i..)
        .and_then(|t| t.chars().next())
        .map(|c| (c, c.len_utf8()))
}

/// The two-pointer wildcard matcher: on a mismatch, go back to just after the last `*` and let it
/// swallow one more character of `text`. Earlier stars never need revisiting, so the work is bounded
/// by |pattern| · |text| steps.
fn glob(pattern: &str, text: &str, fold: bool, steps: &mut u64) -> bool {
    let (mut pi, mut ti) = (0usize, 0usize);
    // (pattern offset just after the last `*`, text offset that star's match ends at)
    let mut star: Option<(usize, usize)> = None;
    while ti < text.len() {
        *steps += 1;
        let Some((tc, tl)) = char_at(text, ti) else {
            return false;
        };
        if let Some((pc, pl)) = char_at(pattern, pi) {
            if pc == '*' {
                star = Some((pi + pl, ti));
                pi += pl;
                continue;
            }
            let same = pc == '?' || pc == tc || (fold && pc.eq_ignore_ascii_case(&tc));
            if same {
                pi += pl;
                ti += tl;
                continue;
            }
        }
        match star {
            Some((sp, st)) => {
                let Some((_, sl)) = char_at(text, st) else {
                    return false;
                };
                star = Some((sp, st + sl));
                pi = sp;
                ti = st + sl;
            }
            None => return false,
        }
    }
    pattern
        .get(pi..)
        .is_some_and(|rest| rest.bytes().all(|b| b == b'*'))
}

#[derive(Clone, Debug)]
enum PrincipalEntry {
    /// `*` (also `{"AWS": "*"}`): everyone, anonymous callers included.
    Any,
    /// A 12-digit account id (any partition) or `arn:PARTITION:iam::ACCOUNT:root`: every principal
    /// of that account.
    Account {
        partition: Option<String>,
        id: String,
    },
    /// Any other ARN, canonical user id or service name: that exact string.
    Exact(String),
}

impl PrincipalEntry {
    fn matches(&self, principal: &str) -> bool {
        let anonymous = principal.is_empty() || principal == "*";
        match self {
            PrincipalEntry::Any => true,
            _ if anonymous => false,
            PrincipalEntry::Exact(p) => p == principal,
            PrincipalEntry::Account { partition, id } => {
                if principal == id {
                    return true;
                }
                arn_parts(principal).is_some_and(|a| {
                    (a.service == "iam" || a.service == "sts")
                        && a.account == id
                        && partition.as_deref().is_none_or(|p| p == a.partition)
                })
            }
        }
    }
}

/// The fields of an ARN, `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
struct Arn<'a> {
    partition: &'a str,
    service: &'a str,
    region: &'a str,
    account: &'a str,
    resource: &'a str,
}

fn arn_parts(arn: &str) -> Option<Arn<'_>> {
    let mut it = arn.splitn(6, ':');
    if it.next()? != "arn" {
        return None;
    }
    Some(Arn {
        partition: it.next()?,
        service: it.next()?,
        region: it.next()?,
        account: it.next()?,
        resource: it.next()?,
    })
}

#[derive(Clone, Debug)]
struct Negatable<T> {
    negated: bool,
    items: Vec<T>,
}

#[derive(Clone, Debug)]
enum Test {
    /// StringEquals / StringNotEquals.
    Equals(Vec<String>),
    /// StringEqualsIgnoreCase / StringNotEqualsIgnoreCase (Unicode lower-case comparison).
    EqualsIgnoreCase(Vec<String>),
    /// StringLike / StringNotLike.
    Like(Vec<Pattern>),
    /// Bool.
    Bool(Vec<bool>),
}

impl Test {
    /// Whether the request value `v` matches one of the policy's values (the positive form).
    fn matches(&self, v: &str) -> bool {
        match self {
            Test::Equals(vals) => vals.iter().any(|p| p == v),
            Test::EqualsIgnoreCase(vals) => vals.iter().any(|p| eq_ignore_case(p, v)),
            Test::Like(pats) => pats.iter().any(|p| p.matches(v, false)),
            Test::Bool(vals) => {
                let b = if v.eq_ignore_ascii_case("true") {
                    true
                } else if v.eq_ignore_ascii_case("false") {
                    false
                } else {
                    return false;
                };
                vals.contains(&b)
            }
        }
    }
}

fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

#[derive(Clone, Debug)]
enum ConditionKind {
    /// `Null`: the values say whether the key must be absent (`true`) or present (`false`).
    Null(Vec<bool>),
    /// Every other operator.
    Compare {
        test: Test,
        negated: bool,
        if_exists: bool,
    },
}

#[derive(Clone, Debug)]
struct Condition {
    /// ASCII lower case.
    key: String,
    kind: ConditionKind,
}

impl Condition {
    /// For a key with several values in the request, a `Deny` statement's condition holds if it holds
    /// for any one of them, an `Allow` statement's only if it holds for all of them: whichever
    /// reading refuses more (docs/POLICY.md).
    fn holds(&self, ctx: &dyn ConditionValues, effect: Effect) -> bool {
        match &self.kind {
            ConditionKind::Null(vals) => {
                let present = ctx.any_value(&self.key, &mut |_| true).is_some();
                vals.contains(&!present)
            }
            ConditionKind::Compare {
                test,
                negated,
                if_exists,
            } => {
                let negated = *negated;
                let one = |v: &str| test.matches(v) != negated;
                let r = match effect {
                    Effect::Deny => ctx.any_value(&self.key, &mut |v| one(v)),
                    Effect::Allow => ctx.any_value(&self.key, &mut |v| !one(v)).map(|b| !b),
                };
                match r {
                    Some(b) => b,
                    // Absent: IfExists forms hold; negated operators hold; positive ones do not.
                    None => *if_exists || negated,
                }
            }
        }
    }
}

#[derive(Clone, Debug)]
struct Statement {
    sid: Option<String>,
    effect: Effect,
    principal: Negatable<PrincipalEntry>,
    action: Negatable<Pattern>,
    resource: Negatable<Pattern>,
    conditions: Vec<Condition>,
}

impl Statement {
    fn applies(&self, req: &PolicyRequest<'_>) -> bool {
        let action = self
            .action
            .items
            .iter()
            .any(|p| p.matches(req.action, true));
        if action == self.action.negated {
            return false;
        }
        let resource = self
            .resource
            .items
            .iter()
            .any(|p| p.matches(req.resource, false));
        if resource == self.resource.negated {
            return false;
        }
        let principal = self
            .principal
            .items
            .iter()
            .any(|p| p.matches(req.principal));
        if principal == self.principal.negated {
            return false;
        }
        self.conditions
            .iter()
            .all(|c| c.holds(req.conditions, self.effect))
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing

/// Refuses nesting deeper than [`MAX_NESTING`] before the JSON parser recurses into it.
fn check_nesting(bytes: &[u8]) -> Result<(), PolicyError> {
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(PolicyError::TooDeep);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// A JSON value that keeps object members in order and refuses duplicated member names (which
/// `serde_json::Value` would silently collapse to the last one).
#[derive(Debug)]
enum Json {
    Null,
    Bool(bool),
    Int(String),
    Float,
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Int(_) | Json::Float => "a number",
            Json::Str(_) => "a string",
            Json::Arr(_) => "an array",
            Json::Obj(_) => "an object",
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Int(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Int(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, _v: f64) -> Result<Json, E> {
        Ok(Json::Float)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut v = Vec::new();
        while let Some(x) = seq.next_element()? {
            v.push(x);
        }
        Ok(Json::Arr(v))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut v: Vec<(String, Json)> = Vec::new();
        while let Some((k, x)) = map.next_entry::<String, Json>()? {
            v.push((k, x));
        }
        let mut names: Vec<&str> = v.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(de::Error::custom(format_args!(
                "duplicate member `{}`",
                w[0].escape_debug()
            )));
        }
        Ok(Json::Obj(v))
    }
}

fn parse_document(doc: Json) -> Result<Policy, PolicyError> {
    let Json::Obj(members) = doc else {
        return Err(PolicyError::invalid(
            "",
            format!("the document must be a JSON object, not {}", doc.kind()),
        ));
    };
    let mut version = None;
    let mut id = None;
    let mut statement = None;
    for (k, v) in members {
        match k.as_str() {
            "Version" => version = Some(v),
            "Id" => id = Some(v),
            "Statement" => statement = Some(v),
            _ => {
                return Err(PolicyError::invalid(
                    "",
                    format!("unknown policy element `{}`", k.escape_debug()),
                ));
            }
        }
    }
    let version = match version {
        None => Version::V2008_10_17,
        Some(Json::Str(s)) if s == "2012-10-17" => Version::V2012_10_17,
        Some(Json::Str(s)) if s == "2008-10-17" => Version::V2008_10_17,
        Some(Json::Str(s)) => {
            return Err(PolicyError::invalid(
                "Version",
                format!(
                    "unknown version `{}` (2012-10-17 or 2008-10-17)",
                    s.escape_debug()
                ),
            ));
        }
        Some(other) => return Err(wrong_type("Version", "a string", &other)),
    };
    let id = match id {
        None => None,
        Some(Json::Str(s)) => Some(s),
        Some(other) => return Err(wrong_type("Id", "a string", &other)),
    };
    let items = match statement {
        None => return Err(PolicyError::invalid("", "missing `Statement`")),
        Some(Json::Arr(a)) => a,
        Some(o @ Json::Obj(_)) => vec![o],
        Some(other) => {
            return Err(wrong_type(
                "Statement",
                "an object or an array of objects",
                &other,
            ));
        }
    };
    if items.is_empty() {
        return Err(PolicyError::invalid(
            "Statement",
            "a policy needs at least one statement",
        ));
    }
    let statements = items
        .into_iter()
        .enumerate()
        .map(|(i, s)| parse_statement(&format!("Statement[{i}]"), s, version))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Policy {
        version,
        id,
        statements,
    })
}

fn wrong_type(at: &str, want: &str, got: &Json) -> PolicyError {
    PolicyError::invalid(at, format!("must be {want}, not {}", got.kind()))
}

/// Takes exactly one of `plain`/`not` (e.g. `Action`/`NotAction`) from a statement's elements.
fn one_of(
    at: &str,
    plain: (&str, Option<Json>),
    not: (&str, Option<Json>),
) -> Result<(bool, Json), PolicyError> {
    match (plain.1, not.1) {
        (Some(v), None) => Ok((false, v)),
        (None, Some(v)) => Ok((true, v)),
        (Some(_), Some(_)) => Err(PolicyError::invalid(
            at,
            format!("a statement has `{}` or `{}`, not both", plain.0, not.0),
        )),
        (None, None) => Err(PolicyError::invalid(
            at,
            format!("a statement needs `{}` or `{}`", plain.0, not.0),
        )),
    }
}

fn parse_statement(at: &str, st: Json, version: Version) -> Result<Statement, PolicyError> {
    let Json::Obj(members) = st else {
        return Err(wrong_type(at, "an object", &st));
    };
    let (mut sid, mut effect, mut cond) = (None, None, None);
    let (mut pr, mut npr, mut ac, mut nac, mut re, mut nre) = (None, None, None, None, None, None);
    for (k, v) in members {
        let slot = match k.as_str() {
            "Sid" => &mut sid,
            "Effect" => &mut effect,
            "Principal" => &mut pr,
            "NotPrincipal" => &mut npr,
            "Action" => &mut ac,
            "NotAction" => &mut nac,
            "Resource" => &mut re,
            "NotResource" => &mut nre,
            "Condition" => &mut cond,
            _ => {
                return Err(PolicyError::invalid(
                    at,
                    format!("unknown statement element `{}`", k.escape_debug()),
                ));
            }
        };
        *slot = Some(v);
    }
    let sid = match sid {
        None => None,
        Some(Json::Str(s)) => Some(s),
        Some(other) => return Err(wrong_type(&format!("{at}.Sid"), "a string", &other)),
    };
    let effect = match effect {
        None => return Err(PolicyError::invalid(at, "a statement needs an `Effect`")),
        Some(Json::Str(s)) if s == "Allow" => Effect::Allow,
        Some(Json::Str(s)) if s == "Deny" => Effect::Deny,
        Some(Json::Str(s)) => {
            return Err(PolicyError::invalid(
                &format!("{at}.Effect"),
                format!("`{}` is neither `Allow` nor `Deny`", s.escape_debug()),
            ));
        }
        Some(other) => return Err(wrong_type(&format!("{at}.Effect"), "a string", &other)),
    };

    let (negated, v) = one_of(at, ("Principal", pr), ("NotPrincipal", npr))?;
    let pat = format!(
        "{at}.{}",
        if negated { "NotPrincipal" } else { "Principal" }
    );
    let principal = Negatable {
        negated,
        items: parse_principal(&pat, v)?,
    };

    let (negated, v) = one_of(at, ("Action", ac), ("NotAction", nac))?;
    let aat = format!("{at}.{}", if negated { "NotAction" } else { "Action" });
    let mut actions = Vec::new();
    for a in strings(&aat, v)? {
        if a != "*" && !a.contains(':') {
            return Err(PolicyError::invalid(
                &aat,
                format!(
                    "action `{}` is not `*` or `service:action`",
                    a.escape_debug()
                ),
            ));
        }
        actions.push(Pattern::new(&a));
    }
    let action = Negatable {
        negated,
        items: actions,
    };

    let (negated, v) = one_of(at, ("Resource", re), ("NotResource", nre))?;
    let rat = format!("{at}.{}", if negated { "NotResource" } else { "Resource" });
    let mut resources = Vec::new();
    for r in strings(&rat, v)? {
        if r != "*" && !r.starts_with("arn:") {
            return Err(PolicyError::invalid(
                &rat,
                format!("resource `{}` is not `*` or an ARN", r.escape_debug()),
            ));
        }
        refuse_policy_variables(&rat, &r, version)?;
        resources.push(Pattern::new(&r));
    }
    let resource = Negatable {
        negated,
        items: resources,
    };

    let conditions = match cond {
        None => Vec::new(),
        Some(c) => parse_conditions(&format!("{at}.Condition"), c, version)?,
    };
    Ok(Statement {
        sid,
        effect,
        principal,
        action,
        resource,
        conditions,
    })
}

/// `${...}` is a policy variable in a 2012-10-17 policy; this module does not substitute them, and
/// treating one literally would match something else than the author meant.
fn refuse_policy_variables(at: &str, s: &str, version: Version) -> Result<(), PolicyError> {
    if version == Version::V2012_10_17 && s.contains("${") {
        return Err(PolicyError::invalid(
            at,
            format!(
                "policy variables (`${{...}}`) are not supported: `{}`",
                s.escape_debug()
            ),
        ));
    }
    Ok(())
}

/// A string or a non-empty array of strings.
fn strings(at: &str, v: Json) -> Result<Vec<String>, PolicyError> {
    let items = match v {
        Json::Str(s) => vec![s],
        Json::Arr(a) if a.is_empty() => {
            return Err(PolicyError::invalid(at, "an empty array matches nothing"));
        }
        Json::Arr(a) => a
            .into_iter()
            .map(|x| match x {
                Json::Str(s) => Ok(s),
                other => Err(wrong_type(at, "a string", &other)),
            })
            .collect::<Result<_, _>>()?,
        other => return Err(wrong_type(at, "a string or an array of strings", &other)),
    };
    if items.iter().any(String::is_empty) {
        return Err(PolicyError::invalid(at, "an empty string"));
    }
    Ok(items)
}

fn parse_principal(at: &str, v: Json) -> Result<Vec<PrincipalEntry>, PolicyError> {
    let members = match v {
        Json::Str(s) if s == "*" => return Ok(vec![PrincipalEntry::Any]),
        Json::Str(s) => {
            return Err(PolicyError::invalid(
                at,
                format!(
                    "a principal string must be `*`; `{}` belongs in {{\"AWS\": ...}}",
                    s.escape_debug()
                ),
            ));
        }
        Json::Obj(m) if m.is_empty() => {
            return Err(PolicyError::invalid(at, "an empty principal"));
        }
        Json::Obj(m) => m,
        other => return Err(wrong_type(at, "`*` or an object", &other)),
    };
    let mut out = Vec::new();
    for (kind, v) in members {
        let kat = format!("{at}.{kind}");
        let aws = match kind.as_str() {
            "AWS" => true,
            "CanonicalUser" | "Service" => false,
            _ => {
                return Err(PolicyError::invalid(
                    at,
                    format!(
                        "unsupported principal type `{}` (AWS, CanonicalUser or Service)",
                        kind.escape_debug()
                    ),
                ));
            }
        };
        for s in strings(&kat, v)? {
            out.push(principal_entry(&kat, &s, aws)?);
        }
    }
    Ok(out)
}

fn principal_entry(at: &str, s: &str, aws: bool) -> Result<PrincipalEntry, PolicyError> {
    if aws && s == "*" {
        return Ok(PrincipalEntry::Any);
    }
    if s.contains(['*', '?']) {
        return Err(PolicyError::invalid(
            at,
            format!(
                "wildcards are not allowed in a principal (only a bare `*`): `{}`",
                s.escape_debug()
            ),
        ));
    }
    if !aws {
        return Ok(PrincipalEntry::Exact(s.to_owned()));
    }
    let account_id = |a: &str| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit());
    if account_id(s) {
        return Ok(PrincipalEntry::Account {
            partition: None,
            id: s.to_owned(),
        });
    }
    if let Some(a) = arn_parts(s) {
        if a.service == "iam"
            && a.region.is_empty()
            && account_id(a.account)
            && a.resource == "root"
        {
            return Ok(PrincipalEntry::Account {
                partition: Some(a.partition.to_owned()),
                id: a.account.to_owned(),
            });
        }
        return Ok(PrincipalEntry::Exact(s.to_owned()));
    }
    Err(PolicyError::invalid(
        at,
        format!(
            "`{}` is neither an ARN nor a 12-digit account id",
            s.escape_debug()
        ),
    ))
}

fn parse_conditions(at: &str, v: Json, version: Version) -> Result<Vec<Condition>, PolicyError> {
    let Json::Obj(ops) = v else {
        return Err(wrong_type(at, "an object", &v));
    };
    let mut out = Vec::new();
    for (op, block) in ops {
        let oat = format!("{at}.{op}");
        let (base, if_exists) = match op.strip_suffix("IfExists") {
            Some(b) => (b, true),
            None => (op.as_str(), false),
        };
        #[derive(Clone, Copy)]
        enum Base {
            Equals,
            EqualsIc,
            Like,
            Bool,
            Null,
        }
        let (b, negated) = match base {
            "StringEquals" => (Base::Equals, false),
            "StringNotEquals" => (Base::Equals, true),
            "StringEqualsIgnoreCase" => (Base::EqualsIc, false),
            "StringNotEqualsIgnoreCase" => (Base::EqualsIc, true),
            "StringLike" => (Base::Like, false),
            "StringNotLike" => (Base::Like, true),
            "Bool" => (Base::Bool, false),
            "Null" if !if_exists => (Base::Null, false),
            _ => {
                return Err(PolicyError::invalid(
                    at,
                    format!("unsupported condition operator `{}`", op.escape_debug()),
                ));
            }
        };
        let Json::Obj(keys) = block else {
            return Err(wrong_type(&oat, "an object of condition keys", &block));
        };
        if keys.is_empty() {
            return Err(PolicyError::invalid(
                &oat,
                "an operator with no condition keys",
            ));
        }
        let mut seen: Vec<String> = Vec::new();
        for (key, vals) in keys {
            let kat = format!("{oat}.{key}");
            if key.is_empty() {
                return Err(PolicyError::invalid(&oat, "an empty condition key"));
            }
            let lower = key.to_ascii_lowercase();
            if seen.contains(&lower) {
                // Two spellings of one key: JSON allows it, but which would win is unclear.
                return Err(PolicyError::invalid(
                    &oat,
                    format!("condition key `{}` appears twice", key.escape_debug()),
                ));
            }
            seen.push(lower.clone());
            let vals = condition_values(&kat, vals)?;
            for v in &vals {
                refuse_policy_variables(&kat, v, version)?;
            }
            let bools = |vals: Vec<String>| -> Result<Vec<bool>, PolicyError> {
                vals.iter()
                    .map(|v| {
                        if v.eq_ignore_ascii_case("true") {
                            Ok(true)
                        } else if v.eq_ignore_ascii_case("false") {
                            Ok(false)
                        } else {
                            Err(PolicyError::invalid(
                                &kat,
                                format!("`{}` is neither true nor false", v.escape_debug()),
                            ))
                        }
                    })
                    .collect()
            };
            let kind = match b {
                Base::Null => ConditionKind::Null(bools(vals)?),
                Base::Bool => ConditionKind::Compare {
                    test: Test::Bool(bools(vals)?),
                    negated,
                    if_exists,
                },
                Base::Equals => ConditionKind::Compare {
                    test: Test::Equals(vals),
                    negated,
                    if_exists,
                },
                Base::EqualsIc => ConditionKind::Compare {
                    test: Test::EqualsIgnoreCase(vals),
                    negated,
                    if_exists,
                },
                Base::Like => ConditionKind::Compare {
                    test: Test::Like(vals.iter().map(|v| Pattern::new(v)).collect()),
                    negated,
                    if_exists,
                },
            };
            out.push(Condition { key: lower, kind });
        }
    }
    Ok(out)
}

/// A string, boolean or integer, or a non-empty array of them; booleans and integers become their
/// JSON text (`true` → `"true"`), as AWS does.
fn condition_values(at: &str, v: Json) -> Result<Vec<String>, PolicyError> {
    let one = |x: Json| match x {
        Json::Str(s) => Ok(s),
        Json::Bool(b) => Ok(b.to_string()),
        Json::Int(n) => Ok(n),
        Json::Float => Err(PolicyError::invalid(
            at,
            "a non-integer number (write it as a string)",
        )),
        other => Err(wrong_type(at, "a string, boolean or integer", &other)),
    };
    match v {
        Json::Arr(a) if a.is_empty() => Err(PolicyError::invalid(
            at,
            "an empty array of condition values",
        )),
        Json::Arr(a) => a.into_iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_sort_into_shapes() {
        assert!(matches!(Pattern::new("*"), Pattern::Any));
        assert!(matches!(Pattern::new("**"), Pattern::Any));
        assert!(matches!(Pattern::new("s3:GetObject"), Pattern::Exact(_)));
        assert!(matches!(
            Pattern::new("arn:aws:s3:::b/*"),
            Pattern::Prefix(_)
        ));
        assert!(matches!(Pattern::new("s3:*Object"), Pattern::Glob(_)));
        assert!(matches!(Pattern::new("a?*"), Pattern::Glob(_)));
    }

    #[test]
    fn glob_agrees_with_shapes() {
        for (p, t) in [
            ("arn:aws:s3:::b/*", "arn:aws:s3:::b/k"),
            ("arn:aws:s3:::b/*", "arn:aws:s3:::b"),
            ("s3:Get*", "S3:GETOBJECT"),
            ("abc", "ABC"),
            ("*", ""),
        ] {
            for fold in [false, true] {
                assert_eq!(
                    Pattern::new(p).matches(t, fold),
                    glob(p, t, fold, &mut 0),
                    "{p} {t} {fold}"
                );
            }
        }
    }

    #[test]
    fn glob_question_mark_is_one_character_not_one_byte() {
        assert!(glob("a?c", "aéc", false, &mut 0));
        assert!(!glob("a??c", "aéc", false, &mut 0));
    }
}
