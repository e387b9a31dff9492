//! Bucket policies: parsing and evaluation (placeholder, filled in by the policy work).

/// A parsed bucket policy (placeholder).
#[derive(Clone, Debug)]
pub struct Policy;
