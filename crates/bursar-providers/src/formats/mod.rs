//! The wire formats Bursar serves, as the types translating adapters read and write.

pub mod chat;
pub mod completions;
