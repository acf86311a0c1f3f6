//! `kubectl` as a user runs it against a test cluster: its own kubeconfig and discovery cache,
//! no `KUBECONFIG` from the environment, stdin fed when given.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `kubectl --kubeconfig KUBECONFIG --cache-dir CACHE ARGS` in `dir` (the repository
/// root when `None`, so that paths like `deploy/` resolve); returns the exit code and stdout
/// followed by stderr.
pub fn run(
    kubeconfig: &Path,
    cache: &Path,
    args: &[&str],
    stdin: Option<&str>,
    dir: Option<&Path>,
) -> (i32, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .current_dir(dir.unwrap_or(&root))
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    let mut pipe = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        pipe.write_all(text.as_bytes()).expect("stdin");
    }
    drop(pipe);
    let out = child.wait_with_output().expect("kubectl");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
