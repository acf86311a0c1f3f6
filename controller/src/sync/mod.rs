//! The sync engine: the stages a revision goes through, one module each.

pub(crate) mod apply;
pub(crate) mod decrypt;
pub(crate) mod error;
pub(crate) mod fetch;
pub(crate) mod inventory;
pub(crate) mod prepare;
pub(crate) mod prune;
pub(crate) mod restarts;
