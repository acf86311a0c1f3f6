//! The sync engine (`engine`) and the stages it runs, one module each: `fetch`, `decrypt`,
//! `tree` (the files of a commit), `build` and `checkout` (kustomize and Helm), `resolve` (Vault), `restarts`, `plan` (with `prepare` and `inventory`), `apply` (in `sequence`: `hooks` and `waves`), `prune`.
//! The full reconcile, a drift correction and a Vault refresh all run their objects through
//! [`engine::Engine::run`].

pub(crate) mod apply;
pub(crate) mod build;
pub(crate) mod capabilities;
pub(crate) mod charts;
pub(crate) mod checkout;
pub(crate) mod decrypt;
pub(crate) mod engine;
pub(crate) mod error;
pub(crate) mod fetch;
pub(crate) mod helm_values;
pub(crate) mod hooks;
pub(crate) mod inventory;
pub(crate) mod object;
pub(crate) mod plan;
pub(crate) mod prepare;
pub(crate) mod progress;
pub(crate) mod prune;
pub(crate) mod remote;
pub(crate) mod resolve;
pub(crate) mod restarts;
pub(crate) mod sealedfile;
pub(crate) mod sequence;
pub(crate) mod sops;
pub(crate) mod substitute;
#[cfg(test)]
pub(crate) mod testing;
pub(crate) mod tree;
pub(crate) mod verify;
pub(crate) mod waves;
