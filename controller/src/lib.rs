//! The sealsync controller: pulls Git, decrypts SealedSecrets in memory, applies every
//! manifest by server-side apply atomically per revision, prunes, and undoes drift.
//!
//! One module per stage; [`reconcile`] runs them in order.

#![warn(unreachable_pub)]

mod apply;
mod cache;
mod callers;
mod context;
mod decrypt;
mod drift;
mod error;
mod events;
mod heal;
mod http;
mod inventory;
mod keys;
mod leader;
mod metrics;
mod prepare;
mod prune;
mod reconcile;
mod restart;
mod rewrap;
mod secretkeys;
mod source;
mod standby;
mod status;
mod vault;
mod webhook;

mod app;

pub use app::{run, Args};
pub(crate) use error::Error;
