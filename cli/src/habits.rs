//! Flags and words that kubeseal and sops users type out of habit. Each is accepted by the
//! parser only to be refused with the sealsync equivalent, rather than with clap's generic
//! "unexpected argument".

use clap::Args as ClapArgs;

use crate::error::{CliError, CliResult};

/// Hidden arguments of `seal` and `unseal` that other tools have.
#[derive(Debug, Clone, Default, ClapArgs)]
pub struct Habits {
    /// A manifest given without -f, as `kubeseal < s.yaml` users might.
    #[arg(hide = true, value_name = "FILE")]
    pub positional: Vec<String>,
    /// kubeseal's output format flag.
    #[arg(long, hide = true, num_args = 0..=1, value_name = "FORMAT")]
    pub format: Option<Option<String>>,
    /// kubeseal's certificate flag.
    #[arg(long, hide = true, num_args = 0..=1, value_name = "FILE")]
    pub cert: Option<Option<String>>,
    /// kubeseal's raw mode.
    #[arg(long, hide = true)]
    pub raw: bool,
    /// kubeseal's recovery mode.
    #[arg(long, hide = true)]
    pub recovery_unseal: bool,
    /// kubeseal's private key flag for recovery.
    #[arg(long, hide = true, num_args = 0..=1, value_name = "FILE")]
    pub recovery_private_key: Option<Option<String>>,
}

impl Habits {
    /// Refuses any habit that was used, naming what to type instead. `command` is `seal` or
    /// `unseal`.
    pub fn refuse(&self, command: &str) -> CliResult<()> {
        if let Some(first) = self.positional.first() {
            let hint = if first.starts_with("age1") {
                format!("recipients go after -r: `sealsync {command} -r age1…`")
            } else {
                format!("give the file with -f: `sealsync {command} -f FILE` (or pipe it to stdin)")
            };
            return Err(
                CliError::new(format!("sealsync {command} takes no positional arguments"))
                    .with_hint(hint),
            );
        }
        if self.format.is_some() {
            return Err(
                CliError::new("--format is kubeseal's flag").with_hint("use -o yaml or -o json")
            );
        }
        if self.cert.is_some() {
            return Err(CliError::new("--cert is kubeseal's flag").with_hint(
                "sealsync seals to age recipients: -r age1… (repeatable), --recipients-file FILE, \
                 or the rules of .sealsync.yaml",
            ));
        }
        if self.raw {
            return Err(CliError::new("--raw is kubeseal's flag").with_hint(
                "seal single values with `sealsync seal --name NAME -n NS --from-literal KEY=VALUE`, \
                 or add one to a sealed file with `--merge-into FILE --from-literal KEY=VALUE`",
            ));
        }
        if self.recovery_unseal || self.recovery_private_key.is_some() {
            return Err(CliError::new("--recovery-unseal is kubeseal's flag").with_hint(
                "open sealed files with `sealsync unseal -i IDENTITY_FILE -f FILE` (a recovery key \
                 or a cluster key backup)",
            ));
        }
        Ok(())
    }
}

/// `sops decrypt FILE` / `sops -d FILE` and `sops encrypt` habits, as subcommand words.
pub fn refuse_sops_word(word: &str) -> CliError {
    match word {
        "decrypt" => CliError::new("sealsync has no `decrypt`").with_hint(
            "open sealed files with `sealsync unseal -i IDENTITY_FILE -f FILE` (SOPS_AGE_KEY_FILE \
             and SEALSYNC_AGE_KEY_FILE are read when -i is absent)",
        ),
        _ => CliError::new("sealsync has no `encrypt`")
            .with_hint("seal a Secret with `sealsync seal -f secret.yaml -w secret.sealed.yaml`"),
    }
}
