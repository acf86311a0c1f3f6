//! `sealsync keys generate`: an offline identity, like `age-keygen`.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::process::ExitCode;

use sealsync_crypto::Identity;

use crate::error::CliResult;
use crate::fsio;
use crate::output;

use super::GenerateArgs;

pub fn run(args: GenerateArgs) -> CliResult<ExitCode> {
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

pub fn created_stamp() -> String {
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
