//! The `sealsync-controller` binary as a user starts it. (Also makes `cargo test --workspace`
//! build the binary, which the end-to-end suites in `tests/` run as a process.)

use std::process::Command;

fn controller() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sealsync-controller"))
}

#[test]
fn help_lists_the_documented_flags() {
    let out = controller().arg("--help").output().expect("run");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--kubeconfig",
        "--context",
        "--namespace",
        "--http-addr",
        "--data-dir",
        "--apply-concurrency",
        "--full-resync-period",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
}

#[test]
fn a_missing_kubeconfig_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let missing = dir.path().join("nope.yaml");
    let out = controller()
        .arg("--kubeconfig")
        .arg(&missing)
        .args(["--http-addr", "127.0.0.1:0"])
        .env_remove("KUBECONFIG")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("reading the kubeconfig"), "{err}");
    assert!(err.contains("nope.yaml"), "{err}");
}

#[test]
fn a_bad_full_resync_period_is_refused_with_the_expected_form() {
    let out = controller()
        .args(["--full-resync-period", "soon"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--full-resync-period"), "{err}");
}
