//! The sealsync controller: pulls Git, decrypts SealedSecrets in memory, applies every
//! manifest by server-side apply atomically per revision, prunes, and undoes drift.
//!
//! The folders are its layers, each importing only from those below it:
//! - `app`: the wiring (flags, start-up, the loops it runs);
//! - `reconcile`: one GitSync's reconcile, driving the sync engine;
//! - `refresh`, `heal`: Vault refreshes and drift corrections, through the same engine;
//! - `health`: whether applied objects are healthy, from watches that keep no object;
//! - `http` (health, metrics, keys, rewrap, webhooks) and `leader` (leadership and shards);
//! - `sync`: the sync engine and its stages (fetch, render, decrypt, resolve, restarts,
//!   prepare, plan, apply, prune);
//! - `status`: the one writer of GitSync status;
//! - `vault` and `keys`: the Vault client and the cluster keys;
//! - `support`: small shared types (sync keys, fingerprints, actors, metrics, events).

#![warn(unreachable_pub)]

mod app;
mod heal;
mod health;
mod http;
mod keys;
mod leader;
mod notify;
mod reconcile;
mod refresh;
mod resources;
mod status;
mod support;
mod sync;
mod vault;

pub use app::{run, Args};
pub(crate) use sync::error::Error;
