//! `sealsync-controller`: runs in the cluster with its service account, or anywhere with
//! `--kubeconfig`. The wiring is in the library's `app` module.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    sealsync_controller::run(sealsync_controller::Args::parse()).await
}
