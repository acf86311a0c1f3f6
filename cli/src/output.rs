//! `-o yaml|json` output of manifests, in the kubectl manner.

use std::io::Write;

use clap::ValueEnum;
use serde_yaml::Value;
use zeroize::Zeroizing;

use crate::error::{CliError, CliResult};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// YAML; several documents are separated by `---`.
    #[default]
    Yaml,
    /// JSON; several documents become a `v1` `List`, as kubectl prints them.
    Json,
}

/// Renders documents. The buffer is wiped on drop because unseal passes plaintext through it.
pub fn render(docs: &[Value], format: Format) -> CliResult<Zeroizing<String>> {
    let fail = |e: &dyn std::fmt::Display| CliError::new(format!("cannot render output: {e}"));
    let mut out = Zeroizing::new(String::new());
    match format {
        Format::Yaml => {
            for (i, doc) in docs.iter().enumerate() {
                if i > 0 {
                    out.push_str("---\n");
                }
                out.push_str(&serde_yaml::to_string(doc).map_err(|e| fail(&e))?);
            }
        }
        Format::Json => {
            let json = if docs.len() == 1 {
                serde_json::to_string_pretty(&docs[0])
            } else {
                serde_json::to_string_pretty(&serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "List",
                    "items": docs,
                }))
            }
            .map_err(|e| fail(&e))?;
            out.push_str(&json);
            out.push('\n');
        }
    }
    Ok(out)
}

pub fn write_stdout(text: &str) -> CliResult<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        // A closed pipe (`| head`) is not an error worth a message.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::new(format!("cannot write to stdout: {e}"))),
    }
}

/// Rows as a kubectl-style table: columns padded to their widest cell, three spaces apart,
/// the last column unpadded. The first row is the header.
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if i + 1 == columns {
                    cell.clone()
                } else {
                    format!("{cell:<width$}", width = widths[i])
                }
            })
            .collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}
