//! Plain data and pure rules shared by every Bursar crate: money, durations, key material,
//! roles, and the LiteLLM-compatible `config.yaml` model. Nothing in here performs I/O
//! (the config loader takes the YAML text and an environment lookup as inputs).

pub mod access;
pub mod callbacks;
pub mod config;
pub mod duration;
pub mod keys;
pub mod models;
pub mod money;
pub mod policy;
pub mod pricing;
pub mod roles;
pub mod text;
pub mod time;

pub use money::NanoUsd;
