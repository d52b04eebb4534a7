//! engine (being written).

pub mod login;
pub mod pull;
pub mod push;
