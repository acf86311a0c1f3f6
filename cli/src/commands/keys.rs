//! `sealsync keys`: offline identities.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args as ClapArgs, Subcommand};
use sealsync_crypto::Identity;

use crate::error::CliResult;
use crate::fsio;
use crate::output;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate an offline identity (for recovery or break-glass) and print its recipient.
    Generate(GenerateArgs),
    /// Print the cluster's recipients (like `kubeseal --fetch-cert`), ready for
    /// --recipients-file or .sealsync.yaml.
    Fetch(FetchArgs),
}

#[derive(Debug, ClapArgs)]
pub struct FetchArgs {
    /// The namespace sealsync-controller runs in.
    #[arg(long, value_name = "NS", default_value = "sealsync-system")]
    pub controller_namespace: String,
    /// Write the recipients to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub cluster: crate::cluster::ClusterArgs,
}

#[derive(Debug, ClapArgs)]
pub struct GenerateArgs {
    /// Write the identity to FILE (mode 0600; refuses to overwrite) and print the recipient
    /// on stdout. Without it the identity goes to stdout, like age-keygen.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub fn run(cmd: Command) -> CliResult<ExitCode> {
    match cmd {
        Command::Generate(args) => generate(args),
        Command::Fetch(args) => fetch(args),
    }
}

/// The ConfigMap the controller publishes its recipients in, and its key.
const PUBLIC_KEYS_CONFIGMAP: &str = "sealsync-public-keys";
const RECIPIENTS_KEY: &str = "recipients.txt";

fn fetch(args: FetchArgs) -> CliResult<ExitCode> {
    use crate::cluster;
    use crate::error::CliError;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::Api;

    let namespace = args.controller_namespace.clone();
    let text = cluster::block_on(async {
        let (client, _) = args.cluster.connect().await?;
        let what = format!("ConfigMap {namespace}/{PUBLIC_KEYS_CONFIGMAP}");
        let configmaps: Api<ConfigMap> = Api::namespaced(client, &namespace);
        let cm = configmaps
            .get_opt(PUBLIC_KEYS_CONFIGMAP)
            .await
            .map_err(|e| cluster::api_error(&what, e))?
            .ok_or_else(|| {
                CliError::new(format!("{what} not found")).with_hint(format!(
                    "is sealsync-controller running in namespace {namespace}? Pass \
                     --controller-namespace NS if it runs elsewhere"
                ))
            })?;
        cm.data
            .and_then(|mut d| d.remove(RECIPIENTS_KEY))
            .ok_or_else(|| {
                CliError::new(format!("{what} has no {RECIPIENTS_KEY}"))
                    .with_hint("restart sealsync-controller: it publishes its recipients on start")
            })
    })?;
    // Never pass on something that is not a recipients file (it could be anything written
    // into the ConfigMap by hand).
    let recipients = sealsync_crypto::parse_recipients_file(&text).map_err(|e| {
        CliError::from_crypto(&e).context(format!("ConfigMap {namespace}/{PUBLIC_KEYS_CONFIGMAP}"))
    })?;
    if recipients.is_empty() {
        return Err(CliError::new(format!(
            "ConfigMap {namespace}/{PUBLIC_KEYS_CONFIGMAP} lists no recipients"
        ))
        .with_hint("restart sealsync-controller: it publishes its recipients on start"));
    }
    match args.output {
        Some(path) => {
            fsio::write_atomic(&path, text.as_bytes())?;
            eprintln!(
                "Wrote {} recipient(s) of the cluster to {}",
                recipients.len(),
                path.display()
            );
        }
        None => output::write_stdout(&text)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn generate(args: GenerateArgs) -> CliResult<ExitCode> {
    let identity = Identity::generate();
    let recipient = identity.recipient();
    let secret = identity.to_secret_string();
    let created = created_stamp();
    let body = zeroize::Zeroizing::new(format!(
        "# created: {created}\n# public key: {}\n# key id: {}\n{}\n",
        recipient.as_str(),
        recipient.key_id(),
        secret.as_str()
    ));
    match args.output {
        Some(path) => {
            let place = path.display().to_string();
            // create_new: never clobber an existing key; 0600 from the first byte written.
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| fsio::io_error(&place, "create", &e))?;
            file.write_all(body.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| fsio::io_error(&place, "write", &e))?;
            output::write_stdout(&format!("{}\n", recipient.as_str()))?;
            eprintln!(
                "Wrote identity {} (key id {}) to {place}",
                recipient.as_str(),
                recipient.key_id()
            );
        }
        None => {
            eprintln!("Public key: {}", recipient.as_str());
            output::write_stdout(&body)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn created_stamp() -> String {
    // RFC 3339 in UTC without pulling in a date crate.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20_779), (2026, 11, 22));
    }
}
