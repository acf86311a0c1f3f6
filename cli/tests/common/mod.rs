//! Helpers shared by the process-level CLI tests: run the real `sealsync` binary.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// The binary, without the identity variables a developer may have set.
pub fn sealsync() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sealsync"));
    cmd.env_remove("SEALSYNC_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY_FILE");
    cmd
}

pub fn run(cmd: &mut Command, stdin: Option<&str>) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sealsync");
    let mut pipe = child.stdin.take().expect("stdin");
    if let Some(input) = stdin {
        // A refused input may be refused before it is read whole.
        let _ = pipe.write_all(input.as_bytes());
    }
    drop(pipe);
    child.wait_with_output().expect("wait")
}

pub fn all_output(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn ok(out: &Output) -> String {
    assert!(out.status.success(), "failed: {}", all_output(out));
    String::from_utf8(out.stdout.clone()).expect("utf8")
}
