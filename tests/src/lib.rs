//! The sealsync end-to-end harness.
//!
//! - [`apiserver`]: an in-process Kubernetes API test server, faithful enough for kubectl and
//!   kube-rs (see `tests/TESTCLUSTER.md` for what it models and what it does not).
//! - [`kubeapiserver`]: the real kube-apiserver and etcd (built by `scripts/kube-apiserver.sh`)
//!   behind a fault-injecting proxy.
//! - [`git`]: temporary bare repositories served over `git daemon` and smart HTTP.
//! - [`openbao`]: a real `bao server -dev` on a free loopback port, with KV and auth helpers.
//! - [`browser`]: headless Chromium driven over WebDriver, for the web view.
//! - [`bins`]: the workspace's own binaries (CLI, controller), for tests that run them.
//! - [`controller`]: the controller as a real process against a test cluster.
//! - [`kubectl`]: `kubectl` run against a test cluster.
//! - [`interop`]: the real `sops` and `kubeseal`, built from their Go modules.
//! - [`signing`]: SSH and OpenPGP keys that sign commits and tags as git does.
//! - [`process`]: child processes that are stopped even when a test panics, and free ports.

pub mod apiserver;
pub mod bins;
pub mod browser;
pub mod controller;
pub mod git;
pub mod interop;
pub mod kubeapiserver;
pub mod kubectl;
pub mod openbao;
pub mod process;
pub mod signing;
