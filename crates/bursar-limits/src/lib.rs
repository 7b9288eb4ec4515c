//! Admission control: one atomic reserve → settle/release over every scope that applies to a
//! request (key, user, team, team member, organization, end user, per-model budgets; rpm, tpm
//! and parallel-request limits), with an in-memory backend and a Redis backend.
//!
//! This crate is part of the workspace layout from the start so the dependency direction
//! (core → limits → server) is fixed; its implementation arrives with the admission-control
//! issue. It deliberately exports nothing yet.
