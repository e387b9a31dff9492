//! S3 server-side encryption semantics: SSE-S3, SSE-KMS, DSSE-KMS and SSE-C request headers in, a
//! typed plan or S3's error out; stored object metadata in, S3's response headers out; bucket default
//! encryption, bucket policies and S3 Bucket Keys. Independent of any HTTP crate.

pub mod policy;
