//! The sealsync controller: pulls Git, decrypts SealedSecrets in memory, applies every
//! manifest by server-side apply atomically per revision, prunes, and undoes drift.
//!
//! One module per stage; [`reconcile`] runs them in order.

pub mod apply;
pub mod cache;
pub mod callers;
pub mod context;
pub mod decrypt;
pub mod drift;
pub mod error;
pub mod events;
pub mod heal;
pub mod http;
pub mod inventory;
pub mod keys;
pub mod leader;
pub mod metrics;
pub mod prepare;
pub mod prune;
pub mod reconcile;
pub mod restart;
pub mod rewrap;
pub mod secretkeys;
pub mod source;
pub mod standby;
pub mod status;
pub mod vault;
pub mod webhook;

pub use error::Error;
