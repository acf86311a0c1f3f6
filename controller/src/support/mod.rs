//! Small types and services every layer uses: the reflector cache check, Events, metrics, and
//! reading one key of a Secret.

pub(crate) mod cache;
pub(crate) mod events;
pub(crate) mod metrics;
pub(crate) mod secretkeys;
