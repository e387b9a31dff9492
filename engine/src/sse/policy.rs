//! Bucket policies: parsing and evaluation (placeholder, filled in by the policy work).
