//! A bucket's configuration as the SSE layer sees it: default encryption and policy.

use serde::{Deserialize, Serialize};

use super::S3Error;
use super::policy::Policy;

/// An `x-amz-server-side-encryption` value (and a bucket default's `SSEAlgorithm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DefaultAlgorithm {
    /// `AES256`: SSE-S3.
    #[serde(rename = "AES256")]
    Aes256,
    /// `aws:kms`: SSE-KMS.
    #[serde(rename = "aws:kms")]
    AwsKms,
    /// `aws:kms:dsse`: DSSE-KMS.
    #[serde(rename = "aws:kms:dsse")]
    AwsKmsDsse,
}

impl DefaultAlgorithm {
    /// Parses S3's name (case-sensitive, as S3 is).
    pub fn from_s3(v: &str) -> Option<Self> {
        match v {
            "AES256" => Some(Self::Aes256),
            "aws:kms" => Some(Self::AwsKms),
            "aws:kms:dsse" => Some(Self::AwsKmsDsse),
            _ => None,
        }
    }

    /// S3's name.
    pub fn s3_name(self) -> &'static str {
        match self {
            Self::Aes256 => "AES256",
            Self::AwsKms => "aws:kms",
            Self::AwsKmsDsse => "aws:kms:dsse",
        }
    }
}

/// A bucket's default encryption (Put/Get/DeleteBucketEncryption): applied when a request names no
/// mode; a request that names one wins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketEncryption {
    /// `SSEAlgorithm`.
    pub algorithm: DefaultAlgorithm,
    /// `KMSMasterKeyID`: the default key of `aws:kms` and `aws:kms:dsse` writes (else `aws/s3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// `BucketKeyEnabled`: SSE-KMS writes use S3 Bucket Keys unless the request says otherwise.
    #[serde(default)]
    pub bucket_key_enabled: bool,
}

impl BucketEncryption {
    /// S3's default for a bucket with no configuration (since January 2023): SSE-S3.
    pub fn s3_default() -> Self {
        BucketEncryption {
            algorithm: DefaultAlgorithm::Aes256,
            kms_key_id: None,
            bucket_key_enabled: false,
        }
    }

    /// Checks a configuration as PutBucketEncryption does.
    ///
    /// # Errors
    ///
    /// 400 InvalidArgument for a KMS key id with `AES256`, or an unusable key id.
    pub fn validate(&self) -> Result<(), S3Error> {
        if let Some(id) = &self.kms_key_id {
            if self.algorithm == DefaultAlgorithm::Aes256 {
                return Err(S3Error::invalid_argument(
                    "a KMSMasterKeyID is allowed only with SSEAlgorithm aws:kms or aws:kms:dsse",
                ));
            }
            if id.is_empty()
                || id.len() > 2048
                || id.chars().any(char::is_control)
                || super::engine::names_engine_root(id)
            {
                return Err(S3Error::invalid_argument(format!(
                    "invalid KMSMasterKeyID `{}`",
                    super::quote(id)
                )));
            }
        }
        Ok(())
    }

    /// The configuration as JSON (how a gateway stores it beside the bucket).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("plain data serializes")
    }

    /// Reads [`BucketEncryption::to_json`]'s form, checked.
    ///
    /// # Errors
    ///
    /// 400 InvalidArgument (MalformedXML would be S3's for its XML form).
    pub fn from_json(json: &str) -> Result<Self, S3Error> {
        let c: Self = serde_json::from_str(json).map_err(|e| {
            S3Error::invalid_argument(format!("bad bucket encryption configuration: {e}"))
        })?;
        c.validate()?;
        Ok(c)
    }
}

/// What the SSE layer needs of a bucket: its default encryption (`None`: S3's default, SSE-S3) and
/// its policy (`None`: no policy).
#[derive(Clone, Debug, Default)]
pub struct BucketConfig {
    /// Default encryption, as PutBucketEncryption set it.
    pub encryption: Option<BucketEncryption>,
    /// The bucket policy, parsed.
    pub policy: Option<Policy>,
}

impl BucketConfig {
    /// The encryption GetBucketEncryption reports: the configured one, else S3's default (SSE-S3).
    pub fn effective_encryption(&self) -> BucketEncryption {
        self.encryption
            .clone()
            .unwrap_or_else(BucketEncryption::s3_default)
    }
}
