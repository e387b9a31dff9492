//! The hash-chained audit log of every key provider call (placeholder, filled in by the audit work).
