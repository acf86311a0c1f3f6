//! The Argo CD health check shipped for SealedSecret resources (`deploy/argocd/`), run in
//! gopher-lua, the Lua Argo CD runs health checks in (`glua`, built by
//! `scripts/interop-tools.sh`), over each state the controller's status can be in.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn the_health_check_reads_each_state_of_a_sealed_secret_resource() {
    let glua = sealsync_tests::interop::tools_dir()
        .expect("interop tools")
        .join("glua");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/argocd");
    let out = Command::new(&glua)
        .arg("health_test.lua")
        .current_dir(&dir)
        .output()
        .expect("run glua");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok ")).count(),
        7,
        "{stdout}"
    );
}
