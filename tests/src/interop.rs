//! The peers of the adoption paths, built from their Go modules by
//! `scripts/interop-tools.sh` (cached outside the repository, built here if missing): the real
//! `sops`, whose files a GitSync decrypts, `kubeseal`, and gopher-lua's `glua`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

/// The directory holding `sops` and `kubeseal`.
pub fn tools_dir() -> Result<PathBuf> {
    static DIR: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut found = DIR.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(dir) = found.as_ref() {
        return Ok(dir.clone());
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/interop-tools.sh");
    let built = Command::new("bash")
        .arg(&script)
        .stdout(Stdio::null())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !built.status.success() {
        bail!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&built.stderr)
        );
    }
    let printed = Command::new("bash")
        .arg(&script)
        .arg("--print-dir")
        .output()
        .with_context(|| format!("running {} --print-dir", script.display()))?;
    let dir = PathBuf::from(String::from_utf8_lossy(&printed.stdout).trim());
    if ["sops", "kubeseal", "glua"]
        .iter()
        .any(|t| !dir.join(t).is_file())
    {
        bail!(
            "{} did not build every tool in {}",
            script.display(),
            dir.display()
        );
    }
    *found = Some(dir.clone());
    Ok(dir)
}

/// A fresh age identity made by Go's `age-keygen`: the identity file's text and its recipient.
pub fn age_keygen() -> Result<(String, String)> {
    let out = Command::new("age-keygen")
        .output()
        .context("running age-keygen (Go age; scripts/ensure-test-tools.sh installs it)")?;
    if !out.status.success() {
        bail!("age-keygen failed");
    }
    let identity = String::from_utf8(out.stdout).context("age-keygen output")?;
    let recipient = identity
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .context("age-keygen printed no public key")?
        .to_owned();
    Ok((identity, recipient))
}

/// The real `sops`, run with an empty configuration unless one is given.
#[derive(Debug)]
pub struct Sops {
    path: PathBuf,
}

impl Sops {
    /// The `sops` of `scripts/interop-tools.sh`.
    pub fn find() -> Result<Self> {
        Ok(Self {
            path: tools_dir()?.join("sops"),
        })
    }

    fn command(&self, dir: &Path) -> Command {
        let mut command = Command::new(&self.path);
        command
            .current_dir(dir)
            .env_remove("SOPS_AGE_KEY")
            .env_remove("SOPS_AGE_KEY_FILE")
            .env_remove("SOPS_AGE_RECIPIENTS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    fn run(mut command: Command, stdin: &str, what: &str) -> Result<String> {
        let mut child = command
            .spawn()
            .with_context(|| format!("starting sops {what}"))?;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(stdin.as_bytes())
            .context("writing to sops")?;
        let out = child.wait_with_output().context("waiting for sops")?;
        if !out.status.success() {
            bail!(
                "sops {what} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8(out.stdout).context("sops output")
    }

    /// `plain` (YAML or JSON, `format`) encrypted to the age `recipients` under the creation
    /// rule lines `rule` (as `.sops.yaml` spells them, e.g. `encrypted_regex: ^(data|stringData)$`),
    /// read from standard input.
    pub fn encrypt(
        &self,
        plain: &str,
        recipients: &[&str],
        rule: &[&str],
        format: &str,
    ) -> Result<String> {
        let dir = tempfile::tempdir().context("tmp")?;
        let mut config = format!("creation_rules:\n  - age: {}\n", recipients.join(","));
        for line in rule {
            config.push_str(&format!("    {line}\n"));
        }
        std::fs::write(dir.path().join(".sops.yaml"), config).context("config")?;
        let mut command = self.command(dir.path());
        command.args([
            "encrypt",
            "--input-type",
            format,
            "--output-type",
            format,
            "--filename-override",
            &format!("secret.{format}"),
            "/dev/stdin",
        ]);
        Self::run(command, plain, "encrypt")
    }

    /// `sops updatekeys -y FILE` after `.sops.yaml` (beside it) lists `recipients`, with the
    /// identity in `identity_file`: the file re-wrapped to exactly those recipients.
    pub fn updatekeys(
        &self,
        file: &Path,
        recipients: &[&str],
        rule: &[&str],
        identity_file: &Path,
    ) -> Result<()> {
        let dir = file.parent().context("file without a directory")?;
        let mut config = format!("creation_rules:\n  - age: {}\n", recipients.join(","));
        for line in rule {
            config.push_str(&format!("    {line}\n"));
        }
        std::fs::write(dir.join(".sops.yaml"), config).context("config")?;
        let mut command = self.command(dir);
        command
            .env("SOPS_AGE_KEY_FILE", identity_file)
            .args(["updatekeys", "-y"])
            .arg(file);
        Self::run(command, "", "updatekeys").map(drop)
    }

    /// `sops decrypt` of `encrypted` with the identity in `identity_file`.
    pub fn decrypt(&self, encrypted: &str, format: &str, identity_file: &Path) -> Result<String> {
        let dir = tempfile::tempdir().context("tmp")?;
        let mut command = self.command(dir.path());
        command.env("SOPS_AGE_KEY_FILE", identity_file).args([
            "decrypt",
            "--input-type",
            format,
            "--output-type",
            format,
            "/dev/stdin",
        ]);
        Self::run(command, encrypted, "decrypt")
    }
}
