//! The API surfaces clients call, one module per format; each hands its calls to the
//! data-plane pipeline (`crate::pipeline`).

pub mod openai;
