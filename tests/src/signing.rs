//! Keys that sign commits and tags the way people do: SSH keys made by `ssh-keygen` (git's
//! `gpg.format ssh`) and OpenPGP keys made by GnuPG in a throwaway home (git's default).
//!
//! A [`GitSigner`] gives the `git -c …` options that make `git commit -S` and `git tag -s` sign
//! with it, and the entry a keys Secret holds to trust it. GnuPG runs through a small wrapper
//! script that names its home (the harness clears git's environment), and can fake the clock,
//! which is how a key that has expired by now still signs: it signs at a time when it was valid.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

/// A signing key and how git uses it.
#[derive(Debug)]
pub struct GitSigner {
    /// The directory that holds the key (and GnuPG's home).
    dir: TempDir,
    kind: Kind,
    /// The fingerprint the controller reports: `SHA256:…` for SSH, the signing (sub)key's
    /// uppercase hex fingerprint for OpenPGP.
    fingerprint: String,
}

#[derive(Debug)]
enum Kind {
    Ssh {
        private_key: PathBuf,
    },
    OpenPgp {
        /// The wrapper git runs as `gpg.program`.
        program: PathBuf,
        /// The primary key's fingerprint.
        primary: String,
        /// The key git signs with (`user.signingkey`, with `!` to force that subkey).
        signing_key: String,
    },
}

/// How an OpenPGP key is made.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenPgpOptions {
    /// Sign with a signing subkey (RSA) rather than the primary key (Ed25519).
    pub signing_subkey: bool,
    /// Make the key on 2020-06-01, valid for one year: expired now, and signing as of then.
    pub expired: bool,
}

impl GitSigner {
    /// A new Ed25519 SSH key; `comment` names its owner.
    pub fn ssh(comment: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("sealsync-ssh-signer-")
            .tempdir()
            .context("creating the SSH key directory")?;
        let private_key = dir.path().join("id_ed25519");
        run(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
                .arg(&private_key),
            "ssh-keygen (a signing key)",
        )?;
        let listed = run(
            Command::new("ssh-keygen")
                .arg("-lf")
                .arg(private_key.with_extension("pub")),
            "ssh-keygen -l",
        )?;
        let fingerprint = listed
            .split_whitespace()
            .nth(1)
            .context("ssh-keygen -l printed no fingerprint")?
            .to_owned();
        Ok(Self {
            dir,
            kind: Kind::Ssh { private_key },
            fingerprint,
        })
    }

    /// A new OpenPGP key for `name <email>`, made by GnuPG.
    pub fn openpgp(name: &str, email: &str, options: OpenPgpOptions) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("sealsync-gpg-signer-")
            .tempdir()
            .context("creating the GnuPG home")?;
        let home = dir.path().join("gnupg");
        std::fs::create_dir(&home).context("creating the GnuPG home")?;
        set_mode(&home, 0o700)?;
        let program = dir.path().join("gpg-for-git");
        let faked = if options.expired {
            "--faked-system-time 20200601T000000! "
        } else {
            ""
        };
        std::fs::write(
            &program,
            format!(
                "#!/bin/sh\nexec gpg --homedir '{}' --batch --pinentry-mode loopback --passphrase '' {faked}\"$@\"\n",
                home.display()
            ),
        )
        .context("writing the gpg wrapper")?;
        set_mode(&program, 0o755)?;
        let gpg = |args: &[&str]| -> Result<String> {
            let mut cmd = Command::new(&program);
            cmd.args(args);
            run(&mut cmd, &format!("gpg {}", args.join(" ")))
        };
        // An expired key is made, and signs, on the wrapper's faked clock (2020-06-01).
        let expiry = if options.expired { "1y" } else { "never" };
        let user_id = format!("{name} <{email}>");
        gpg(&["--quick-gen-key", &user_id, "ed25519", "sign,cert", expiry])?;
        let primary = fingerprints(&gpg(&["--list-keys", "--with-colons", email])?)
            .into_iter()
            .next()
            .context("GnuPG listed no key")?;
        let signing_key = if options.signing_subkey {
            gpg(&["--quick-add-key", &primary, "rsa3072", "sign", expiry])?;
            fingerprints(&gpg(&["--list-keys", "--with-colons", &primary])?)
                .into_iter()
                .nth(1)
                .context("GnuPG listed no subkey")?
        } else {
            primary.clone()
        };
        Ok(Self {
            dir,
            fingerprint: signing_key.clone(),
            kind: Kind::OpenPgp {
                program,
                primary,
                signing_key,
            },
        })
    }

    /// The fingerprint the controller reports for this key's signatures.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The `git -c` options that make `commit -S` and `tag -s` sign with this key.
    pub fn git_options(&self) -> Vec<String> {
        match &self.kind {
            Kind::Ssh { private_key } => vec![
                "-c".to_owned(),
                "gpg.format=ssh".to_owned(),
                "-c".to_owned(),
                format!("user.signingkey={}", private_key.display()),
            ],
            Kind::OpenPgp {
                program,
                signing_key,
                ..
            } => vec![
                "-c".to_owned(),
                "gpg.format=openpgp".to_owned(),
                "-c".to_owned(),
                format!("gpg.program={}", program.display()),
                "-c".to_owned(),
                format!("user.signingkey={signing_key}!"),
            ],
        }
    }

    /// The keys-Secret entry that trusts this key: (`NAME.sshpub`, its public key line) or
    /// (`NAME.asc`, its armored public key).
    pub fn trusted_entry(&self, name: &str) -> Result<(String, Vec<u8>)> {
        match &self.kind {
            Kind::Ssh { private_key } => {
                let public = std::fs::read(private_key.with_extension("pub"))
                    .context("reading the SSH public key")?;
                Ok((format!("{name}.sshpub"), public))
            }
            Kind::OpenPgp { primary, .. } => {
                Ok((format!("{name}.asc"), self.export_public(primary)?))
            }
        }
    }

    /// Revokes the signing subkey and returns the key as exported after that (the armored
    /// public key with the revocation), for a keys Secret that learns of the revocation.
    pub fn revoke_signing_subkey(&self) -> Result<Vec<u8>> {
        let Kind::OpenPgp {
            program,
            primary,
            signing_key,
        } = &self.kind
        else {
            bail!("only an OpenPGP key has subkeys");
        };
        if signing_key == primary {
            bail!("this key signs with its primary key");
        }
        let listed = fingerprints(&self.gpg(program, &["--list-keys", "--with-colons", primary])?);
        let index = listed
            .iter()
            .position(|f| f == signing_key)
            .context("the signing subkey is not listed")?;
        // gpg's edit menu, answered on stdin: select the subkey, revoke it for no stated
        // reason, confirm, save.
        let script = format!("key {index}\nrevkey\ny\n0\n\ny\nsave\n");
        let mut child = Command::new(program)
            .args([
                "--command-fd",
                "0",
                "--status-fd",
                "2",
                "--edit-key",
                primary,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("running gpg --edit-key")?;
        use std::io::Write as _;
        child
            .stdin
            .take()
            .context("gpg stdin")?
            .write_all(script.as_bytes())
            .context("answering gpg --edit-key")?;
        let out = child.wait_with_output().context("waiting for gpg")?;
        if !out.status.success() {
            bail!(
                "gpg --edit-key revkey failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let after = self.gpg(program, &["--list-keys", "--with-colons", primary])?;
        if !after.lines().any(|l| l.starts_with("sub:r:")) {
            bail!("gpg did not revoke the subkey");
        }
        self.export_public(primary)
    }

    fn export_public(&self, primary: &str) -> Result<Vec<u8>> {
        let Kind::OpenPgp { program, .. } = &self.kind else {
            bail!("not an OpenPGP key");
        };
        Ok(self
            .gpg(program, &["--armor", "--export", primary])?
            .into_bytes())
    }

    fn gpg(&self, program: &Path, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new(program);
        cmd.args(args);
        run(&mut cmd, &format!("gpg {}", args.join(" ")))
    }

    /// Where the key lives.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The fingerprints (`fpr` records) of a `--with-colons` listing, primary key first.
fn fingerprints(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter(|l| l.starts_with("fpr:"))
        .filter_map(|l| l.split(':').nth(9).map(str::to_owned))
        .collect()
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}

fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.stdin(Stdio::null()).output().with_context(|| {
        format!("running {what} (install it with scripts/ensure-test-tools.sh)")
    })?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
