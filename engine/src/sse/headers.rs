//! The SSE request headers: case-insensitive lookup, and parsing into [`SseHeaders`] with S3's errors.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use md5::{Digest, Md5};
use zeroize::Zeroizing;

use super::{S3Error, quote};
use crate::keys::EncryptionContext;
use crate::object::ByteRange;

pub(crate) const SSE: &str = "x-amz-server-side-encryption";
pub(crate) const KMS_KEY_ID: &str = "x-amz-server-side-encryption-aws-kms-key-id";
pub(crate) const CONTEXT: &str = "x-amz-server-side-encryption-context";
pub(crate) const BUCKET_KEY: &str = "x-amz-server-side-encryption-bucket-key-enabled";
pub(crate) const C_ALGORITHM: &str = "x-amz-server-side-encryption-customer-algorithm";
pub(crate) const C_KEY: &str = "x-amz-server-side-encryption-customer-key";
pub(crate) const C_KEY_MD5: &str = "x-amz-server-side-encryption-customer-key-md5";
pub(crate) const SRC_C_ALGORITHM: &str =
    "x-amz-copy-source-server-side-encryption-customer-algorithm";
pub(crate) const SRC_C_KEY: &str = "x-amz-copy-source-server-side-encryption-customer-key";
pub(crate) const SRC_C_KEY_MD5: &str = "x-amz-copy-source-server-side-encryption-customer-key-md5";

/// The request headers, as name/value pairs. Names compare case-insensitively (HTTP's rule); the
/// order and any repeats are kept, and a repeated SSE header is refused, not guessed at.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl std::fmt::Debug for Headers {
    /// Shows the names only: the values may hold an SSE-C key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(n, _)| n))
            .finish()
    }
}

impl Drop for Headers {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for (_, v) in &mut self.0 {
            v.zeroize();
        }
    }
}

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Headers from pairs.
    pub fn from_pairs<N: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        Headers(
            pairs
                .into_iter()
                .map(|(n, v)| (n.as_ref().to_owned(), v.as_ref().to_owned()))
                .collect(),
        )
    }

    /// Adds a header.
    pub fn insert(&mut self, name: &str, value: &str) {
        self.0.push((name.to_owned(), value.to_owned()));
    }

    /// The pairs, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The value of `name` (the first, if repeated).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The values of `names` (each at most once: a repeated one is refused), in one pass over the
    /// headers: a header not starting `x-amz-` is passed over after one comparison.
    pub(crate) fn scan<'a, const N: usize>(
        &'a self,
        names: &[&str; N],
    ) -> Result<[Option<&'a str>; N], S3Error> {
        let mut found = [None; N];
        for (n, v) in self.iter() {
            if n.len() < 6 || !n.as_bytes()[..6].eq_ignore_ascii_case(b"x-amz-") {
                continue;
            }
            if let Some(i) = names.iter().position(|want| n.eq_ignore_ascii_case(want)) {
                if found[i].is_some() {
                    return Err(S3Error::invalid_argument(format!(
                        "the header {} is given more than once",
                        names[i]
                    )));
                }
                found[i] = Some(v);
            }
        }
        Ok(found)
    }

    /// True if any header starting with `x-amz-server-side-encryption` (but not the customer-key ones)
    /// is present.
    pub(crate) fn has_sse_or_kms(&self) -> bool {
        [SSE, KMS_KEY_ID, CONTEXT, BUCKET_KEY]
            .iter()
            .any(|h| self.get(h).is_some())
    }
}

/// An SSE-C key from a request: 32 bytes, zeroized on drop, never shown; with the MD5 the client
/// sent (base64), which S3 echoes.
#[derive(Clone)]
pub struct CustomerKey {
    pub(crate) key: Zeroizing<[u8; 32]>,
    pub(crate) md5: String,
}

impl std::fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CustomerKey(..)")
    }
}

impl PartialEq for CustomerKey {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.key.ct_eq(&*other.key))
    }
}

impl CustomerKey {
    /// A key from its 32 bytes (the MD5 is computed).
    pub fn from_bytes(key: &[u8; 32]) -> Self {
        CustomerKey {
            key: Zeroizing::new(*key),
            md5: BASE64.encode(Md5::digest(key)),
        }
    }

    /// The base64 MD5 of the key, as S3's `…-customer-key-MD5` header carries it.
    pub fn md5(&self) -> &str {
        &self.md5
    }

    /// The three request headers that carry this key (for clients and tests).
    pub fn headers(&self) -> [(&'static str, String); 3] {
        [
            (C_ALGORITHM, "AES256".to_owned()),
            (C_KEY, BASE64.encode(*self.key)),
            (C_KEY_MD5, self.md5.clone()),
        ]
    }

    /// The same headers for the source of a copy.
    pub fn copy_source_headers(&self) -> [(&'static str, String); 3] {
        let [a, k, m] = self.headers();
        [
            (SRC_C_ALGORITHM, a.1),
            (SRC_C_KEY, k.1),
            (SRC_C_KEY_MD5, m.1),
        ]
    }
}

/// The SSE headers of a request, parsed and checked as S3 checks them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SseHeaders {
    /// `x-amz-server-side-encryption`: `AES256`, `aws:kms` or `aws:kms:dsse`.
    pub algorithm: Option<crate::sse::DefaultAlgorithm>,
    /// `…-aws-kms-key-id`.
    pub kms_key_id: Option<String>,
    /// `…-context`, decoded: the caller's encryption context.
    pub context: Option<EncryptionContext>,
    /// `…-bucket-key-enabled`.
    pub bucket_key: Option<bool>,
    /// The SSE-C key (`…-customer-algorithm`, `…-customer-key`, `…-customer-key-MD5`).
    pub customer_key: Option<CustomerKey>,
    /// The copy source's SSE-C key (`x-amz-copy-source-server-side-encryption-customer-*`).
    pub copy_source_key: Option<CustomerKey>,
}

impl SseHeaders {
    /// Parses and checks the SSE headers of `headers` for a write, in S3's order: SSE-C against
    /// `x-amz-server-side-encryption`, SSE-C's algorithm, key and MD5, then the SSE value, the KMS key
    /// id and context, and the bucket-key flag. `secure` is whether the request came over TLS (an
    /// SSE-C key over plain HTTP is refused before it is looked at).
    ///
    /// # Errors
    ///
    /// S3's: 400 InvalidArgument, InvalidEncryptionAlgorithmError or InvalidRequest.
    pub fn parse(headers: &Headers, secure: bool) -> Result<Self, S3Error> {
        let [
            sse,
            kms_key_id,
            context,
            bucket_key,
            c_alg,
            c_key,
            c_md5,
            s_alg,
            s_key,
            s_md5,
        ] = headers.scan(&[
            SSE,
            KMS_KEY_ID,
            CONTEXT,
            BUCKET_KEY,
            C_ALGORITHM,
            C_KEY,
            C_KEY_MD5,
            SRC_C_ALGORITHM,
            SRC_C_KEY,
            SRC_C_KEY_MD5,
        ])?;
        if sse.is_some() && (c_alg.is_some() || c_key.is_some() || c_md5.is_some()) {
            return Err(S3Error::invalid_argument(format!(
                "Server Side Encryption with Customer provided key is incompatible with the encryption method specified ({SSE})"
            )));
        }
        let customer_key = customer_key_values(
            [c_alg, c_key, c_md5],
            [C_ALGORITHM, C_KEY, C_KEY_MD5],
            secure,
        )?;
        let copy_source_key = customer_key_values(
            [s_alg, s_key, s_md5],
            [SRC_C_ALGORITHM, SRC_C_KEY, SRC_C_KEY_MD5],
            secure,
        )?;
        let algorithm = match sse {
            None => None,
            Some(v) => Some(crate::sse::DefaultAlgorithm::from_s3(v).ok_or_else(|| {
                S3Error::invalid_argument(format!(
                    "the encryption method specified is not supported: {SSE} must be AES256, aws:kms or aws:kms:dsse, not `{}`",
                    quote(v)
                ))
            })?),
        };
        use crate::sse::DefaultAlgorithm as A;
        let kms = matches!(algorithm, Some(A::AwsKms | A::AwsKmsDsse));
        if kms_key_id.is_some() && !kms {
            return Err(S3Error::invalid_argument(format!(
                "Server Side Encryption with AWS KMS managed key requires HTTP header {SSE} : aws:kms (the header {KMS_KEY_ID} was given)"
            )));
        }
        if context.is_some() && !kms {
            return Err(S3Error::invalid_argument(format!(
                "the header {CONTEXT} requires {SSE} : aws:kms or aws:kms:dsse"
            )));
        }
        if let Some(id) = kms_key_id
            && (id.is_empty() || id.len() > 2048 || id.chars().any(char::is_control))
        {
            return Err(S3Error::invalid_argument(format!(
                "invalid {KMS_KEY_ID}: `{}`",
                quote(id)
            )));
        }
        let context = context.map(parse_context).transpose()?;
        let bucket_key = match bucket_key {
            None => None,
            Some(v) if v.eq_ignore_ascii_case("true") => Some(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Some(false),
            Some(v) => {
                return Err(S3Error::invalid_argument(format!(
                    "{BUCKET_KEY} must be true or false, not `{}`",
                    quote(v)
                )));
            }
        };
        if bucket_key == Some(true) && algorithm == Some(A::AwsKmsDsse) {
            return Err(S3Error::invalid_argument(
                "S3 Bucket Keys are not supported for DSSE-KMS (aws:kms:dsse)",
            ));
        }
        Ok(SseHeaders {
            algorithm,
            kms_key_id: kms_key_id.map(str::to_owned),
            context,
            bucket_key,
            customer_key,
            copy_source_key,
        })
    }
}

/// Parses one group of SSE-C headers (the object's, or a copy source's), if any is present.
pub(crate) fn customer_key_group(
    headers: &Headers,
    names: [&str; 3],
    secure: bool,
) -> Result<Option<CustomerKey>, S3Error> {
    customer_key_values(headers.scan(&names)?, names, secure)
}

/// [`customer_key_group`] on values already found.
fn customer_key_values(
    [alg, key, md5]: [Option<&str>; 3],
    [alg_name, key_name, md5_name]: [&str; 3],
    secure: bool,
) -> Result<Option<CustomerKey>, S3Error> {
    if alg.is_none() && key.is_none() && md5.is_none() {
        return Ok(None);
    }
    if !secure {
        return Err(S3Error::invalid_request(
            "Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection.",
        ));
    }
    let Some(alg) = alg else {
        return Err(S3Error::invalid_argument(format!(
            "Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption algorithm ({alg_name})."
        )));
    };
    if alg != "AES256" {
        return Err(S3Error::new(
            "InvalidEncryptionAlgorithmError",
            400,
            format!(
                "The encryption request you specified is not valid. The valid value is AES256 (got `{}`).",
                quote(alg)
            ),
        ));
    }
    let Some(key) = key else {
        return Err(S3Error::invalid_argument(format!(
            "Requests specifying Server Side Encryption with Customer provided keys must provide an appropriate secret key ({key_name})."
        )));
    };
    let bytes = Zeroizing::new(BASE64.decode(key.trim()).map_err(|_| {
        S3Error::invalid_argument(format!(
            "The secret key was invalid for the specified algorithm ({key_name} is not base64)."
        ))
    })?);
    let bytes: &[u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        S3Error::invalid_argument(format!(
            "The secret key was invalid for the specified algorithm ({key_name} must be 32 bytes, got {}).",
            bytes.len()
        ))
    })?;
    let ck = CustomerKey::from_bytes(bytes);
    let Some(md5) = md5 else {
        return Err(S3Error::invalid_argument(format!(
            "Requests specifying Server Side Encryption with Customer provided keys must provide the client calculated MD5 of the secret key ({md5_name})."
        )));
    };
    let given = BASE64.decode(md5.trim()).ok();
    let ours = BASE64.decode(&ck.md5).expect("our own base64");
    if given.as_deref() != Some(ours.as_slice()) {
        return Err(S3Error::invalid_argument(format!(
            "The calculated MD5 hash of the key did not match the hash that was provided ({md5_name})."
        )));
    }
    Ok(Some(ck))
}

/// Decodes `x-amz-server-side-encryption-context`: base64 of a JSON object whose values are strings.
/// Keys starting `aws:` are S3's own and refused.
fn parse_context(v: &str) -> Result<EncryptionContext, S3Error> {
    let bad = || {
        S3Error::invalid_argument(format!(
            "The header '{CONTEXT}' shall be Base64-encoded UTF-8 string holding JSON which represents a string-string map"
        ))
    };
    if v.len() > 16 * 1024 {
        return Err(bad());
    }
    let json = BASE64.decode(v.trim()).map_err(|_| bad())?;
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&json).map_err(|_| bad())?;
    let mut ctx = EncryptionContext::new();
    for (k, val) in &map {
        let serde_json::Value::String(s) = val else {
            return Err(bad());
        };
        if k.len() >= 4 && k.as_bytes()[..4].eq_ignore_ascii_case(b"aws:") {
            return Err(S3Error::invalid_argument(format!(
                "encryption context keys starting with aws: are reserved (`{}`)",
                quote(k)
            )));
        }
        ctx.insert(k, s)
            .map_err(|e| S3Error::invalid_argument(format!("{CONTEXT}: {e}")))?;
    }
    Ok(ctx)
}

/// Parses an HTTP `Range` header as S3 does: one `bytes=` range; anything S3 ignores (another unit,
/// several ranges, a malformed one) is `None`, and the whole object is returned.
pub fn parse_range_header(v: &str) -> Option<ByteRange> {
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    ByteRange::parse(spec.trim()).ok()
}
