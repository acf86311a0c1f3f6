//! Kubernetes API test server.

pub mod fieldmanager;
pub mod patch;
