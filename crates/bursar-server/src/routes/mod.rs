//! HTTP handlers, one module per surface.

pub mod health;
pub mod listing;
pub mod models;
pub mod schema;
