//! `sealsync check`: a pre-commit style scan for plaintext Secrets, broken or tampered sealed
//! and SOPS files, and files whose recipients differ from what `.sealsync.yaml` requires.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args as ClapArgs;
use sealsync_core::manifest::{
    read_documents, sealed_from_manifest, secret_from_manifest, Limits, ManifestError,
};
use sealsync_core::sops::{check_document, is_sops_document, open_file, SopsError};
use sealsync_core::vaultref::{reference_outside_secret, secret_values, ValueError};
use sealsync_core::Chain;
use sealsync_crypto::{
    validate_data_key, Identity, KeyId, OpenOptions, SealedSecret, LAST_APPLIED_ANNOTATION,
};
use serde_yaml::Value;

use crate::commands::{check_open_budget, load_identities};
use crate::error::CliResult;
use crate::fsio;
use crate::output;
use crate::rules::RulesCache;
use sealsync_core::renderer::Engine;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Files or directories to check (recursively). Default: the current directory.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Also open every sealed value with this identity, to prove it decrypts (nothing is
    /// printed). Repeatable.
    #[arg(short = 'i', long = "identity", value_name = "IDENTITY_FILE")]
    pub identities: Vec<PathBuf>,
}

/// One finding: file, document, field, what is wrong.
struct Problem {
    file: String,
    document: String,
    field: String,
    message: String,
}

pub fn run(args: Args) -> CliResult<ExitCode> {
    let identities = if args.identities.is_empty() {
        Vec::new()
    } else {
        load_identities(&args.identities)?
    };
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    let files = fsio::expand_paths(&paths)?;
    let mut rules_cache = RulesCache::default();
    let mut problems = Vec::new();
    let mut charts = BTreeSet::new();
    for file in &files {
        check_file(
            file,
            None,
            &identities,
            (&mut rules_cache, &mut charts),
            &mut problems,
        )?;
    }
    for chart in &charts {
        check_rendered_chart(chart, &identities, &mut rules_cache, &mut problems)?;
    }
    let mut report = String::new();
    for p in &problems {
        report.push_str(&format!(
            "{}: {}: {}: {}\n",
            p.file, p.document, p.field, p.message
        ));
    }
    output::write_stdout(&report)?;
    if problems.is_empty() {
        eprintln!("checked {} file(s): no problems", files.len());
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "checked {} file(s): {} problem(s); seal plaintext Secrets with `sealsync seal`, \
             and run `sealsync reseal` for files on the wrong keys",
            files.len(),
            problems.len()
        );
        Ok(ExitCode::FAILURE)
    }
}

/// Helm charts rendered with default values, as the controller would render them, so that
/// what their templates yield is checked: a template is not YAML until it is rendered.
fn check_rendered_chart(
    chart: &Path,
    identities: &[Identity],
    rules_cache: &mut RulesCache,
    problems: &mut Vec<Problem>,
) -> CliResult<()> {
    let options = crate::repository::EngineOptions {
        namespace: "default".to_owned(),
        ..Default::default()
    };
    let rendered = match crate::repository::render_path(chart, Engine::Helm, &options) {
        Ok(rendered) => rendered,
        Err(e) => {
            problems.push(Problem {
                file: chart.display().to_string(),
                document: "-".to_owned(),
                field: "-".to_owned(),
                message: format!("the chart's templates are not checked: {}", e.message()),
            });
            return Ok(());
        }
    };
    let root = crate::repository::root_of(chart);
    let chart_path = crate::repository::relative_to(&root, chart)?;
    for manifest in &rendered {
        if is_secret_without_values(&manifest.object) {
            // What its values will be comes from elsewhere (sealed values, a cluster Secret):
            // nothing of it is in Git.
            continue;
        }
        // The template's path as given on the command line, for the report and the rules.
        let template = manifest
            .file
            .strip_prefix(&chart_path)
            .map(|rest| chart.join(rest.trim_start_matches('/')))
            .unwrap_or_else(|| chart.join(&manifest.file));
        let yaml = serde_yaml::to_string(&manifest.object)
            .map_err(|e| crate::error::CliError::new(format!("{}: {e}", manifest.location())))?;
        let text = zeroize::Zeroizing::new(yaml);
        check_file(
            &template,
            Some(text),
            identities,
            (rules_cache, &mut BTreeSet::new()),
            problems,
        )?;
    }
    Ok(())
}

/// A sealed document as it was sealed: a file sealed for its rendered identity
/// (`--rendered-as`) is opened as that identity.
fn sealed_as_sealed(value: &Value) -> Result<SealedSecret, ManifestError> {
    let sealed_as = crate::rendered_as::as_sealed(value);
    sealed_from_manifest(sealed_as.as_ref().unwrap_or(value))
}

/// A `v1` Secret whose values are all empty, as a chart renders one whose values it is given
/// at install time.
fn is_secret_without_values(object: &serde_json::Value) -> bool {
    object["apiVersion"] == "v1"
        && object["kind"] == "Secret"
        && ["data", "stringData"].iter().all(|field| {
            object[field]
                .as_object()
                .is_none_or(|values| values.values().all(|v| v.as_str() == Some("")))
        })
}

/// Checks one file, read from disk, or `rendered` from a chart template.
fn check_file(
    file: &Path,
    rendered: Option<zeroize::Zeroizing<String>>,
    identities: &[Identity],
    (rules_cache, charts): (&mut RulesCache, &mut BTreeSet<PathBuf>),
    problems: &mut Vec<Problem>,
) -> CliResult<()> {
    let place = match &rendered {
        Some(_) => format!("{} (rendered)", file.display()),
        None => file.display().to_string(),
    };
    let mut problem = |document: String, field: &str, message: String| {
        problems.push(Problem {
            file: place.clone(),
            document,
            field: field.to_owned(),
            message,
        })
    };
    // One unreadable, binary or huge file is a finding; the scan goes on.
    let read = match rendered {
        Some(text) => Ok(text),
        None => fsio::read_input(Some(file)),
    };
    let text = match read {
        Ok(text) => text,
        Err(e) => {
            problem("-".to_owned(), "-", format!("not checked: {}", e.message()));
            return Ok(());
        }
    };
    let docs = match read_documents(&text, Limits::default()) {
        Ok(docs) => docs,
        // Other YAML (Helm templates, CI configs) is not ours to judge; a file that
        // mentions Secrets but does not parse may hide one, so that one is reported.
        // A chart's template: checked once the chart is rendered.
        Err(_) if fsio::chart_of_template(file).is_some() => {
            charts.extend(fsio::chart_of_template(file));
            return Ok(());
        }
        Err(e) if might_hold_secrets(&text) => {
            problem(
                "-".to_owned(),
                "-",
                format!("not a readable manifest: {}", Chain(&e)),
            );
            return Ok(());
        }
        Err(_) => return Ok(()),
    };
    let kustomization = is_kustomization_file(file);
    // Opening costs a trial per identity and recipient stanza: bound it per file.
    let parsed: Vec<Option<Result<SealedSecret, ManifestError>>> = docs
        .iter()
        .map(|d| (d.kind() == Some("SealedSecret")).then(|| sealed_as_sealed(&d.value)))
        .collect();
    let stanzas: usize = parsed
        .iter()
        .flatten()
        .flatten()
        .map(SealedSecret::stanza_count)
        .sum();
    let identities = if identities.is_empty() {
        identities
    } else if let Err(e) = check_open_budget(stanzas.saturating_mul(2), identities.len(), &place) {
        let why = e
            .message()
            .trim_start_matches(&format!("{place}: "))
            .to_owned();
        problem("-".to_owned(), "-", format!("not opened: {why}"));
        &[]
    } else {
        identities
    };
    let mut opened_secrets = Vec::new();
    let mut sops_documents: Vec<(&Value, String)> = Vec::new();
    for (doc, parsed) in docs.iter().zip(parsed) {
        let at = doc.describe();
        if let Some(field) = last_applied_secret(&doc.value) {
            problem(
                at.clone(),
                &field,
                "holds kubectl's last-applied copy of a Secret, values included: remove the \
                 annotation (`sealsync seal` never writes it)"
                    .to_owned(),
            );
        }
        if kustomization || doc.kind() == Some("Kustomization") {
            for (field, message) in secret_generators(&doc.value) {
                problem(at.clone(), &field, message);
            }
        }
        {
            // In a SealedSecret only the template can hold one: the values are ciphertext.
            let json = serde_json::to_value(&doc.value).unwrap_or_default();
            if let Some(field) = reference_outside_secret(&json) {
                problem(
                    at.clone(),
                    &field,
                    "holds a Vault reference, which the controller resolves only in the data and \
                     stringData of a v1 Secret (anywhere else the value would be stored \
                     unencrypted): move it into a Secret"
                        .to_owned(),
                );
            }
        }
        if is_sops_document(&doc.value) {
            // Encrypted by sops: its values are ciphertext, checked as sops wrote them; with
            // -i the file's MAC is checked below, over all its SOPS documents.
            match check_document(&doc.value, &at) {
                Ok(plaintext) if !plaintext.is_empty() => problem(
                    at.clone(),
                    &plaintext.join(", "),
                    "plaintext Secret values that the file's SOPS rule leaves unencrypted: \
                     encrypt them (widen the rule and run `sops encrypt` again) or seal them"
                        .to_owned(),
                ),
                Ok(_) => {}
                Err(e) => problem(
                    at.clone(),
                    e.field().unwrap_or("sops"),
                    sops_message(&e, &at),
                ),
            }
            sops_documents.push((&doc.value, at));
            continue;
        }
        match doc.kind() {
            Some("Secret") => {
                // What seal would refuse (a `stringdata` typo, a number, a value in an
                // annotation) is a finding too: the values are in Git either way.
                if let Err(e) = secret_from_manifest(&doc.value) {
                    let (field, reason) = match e.malformed_at() {
                        Some((location, reason)) => (location.to_owned(), reason.to_owned()),
                        None => ("-".to_owned(), Chain(&e).to_string()),
                    };
                    problem(at.clone(), &field, format!("not a valid Secret: {reason}"));
                }
                // Values that hold Vault references are not plaintext: the controller resolves
                // them during the sync.
                let json = serde_json::to_value(&doc.value).unwrap_or_default();
                // A malformed reference is the finding: the controller refuses the revision for
                // it alone.
                let references = match secret_values(&json) {
                    Ok(values) => Some(values.references),
                    Err(ValueError::Malformed { field, source }) => {
                        problem(
                            at.clone(),
                            &field,
                            format!("malformed Vault reference: {source}"),
                        );
                        None
                    }
                    Err(e) => {
                        problem(at.clone(), "-", Chain(&e).to_string());
                        None
                    }
                };
                let fields: &[&str] = if references.is_some() {
                    &["data", "stringData"]
                } else {
                    &[]
                };
                let references = references.unwrap_or_default();
                for &field in fields {
                    let Some(map) = doc.value.get(field).and_then(|v| v.as_mapping()) else {
                        continue;
                    };
                    let literal: Vec<_> = map
                        .iter()
                        .filter(|(k, _)| {
                            !references
                                .iter()
                                .any(|r| r.source.field() == field && k.as_str() == Some(&r.key))
                        })
                        .collect();
                    if literal.is_empty() {
                        continue;
                    }
                    problem(
                        at.clone(),
                        field,
                        format!(
                            "plaintext Secret values ({}): seal them with `sealsync seal`",
                            // A key without a value may be a value typed without ': '.
                            key_list(
                                literal
                                    .iter()
                                    .map(|(k, v)| k.as_str().filter(|_| !v.is_null()))
                            )
                        ),
                    );
                }
            }
            Some("SealedSecret") => {
                let sealed = match parsed.unwrap_or_else(|| sealed_as_sealed(&doc.value)) {
                    Ok(s) => s,
                    Err(e) => {
                        match e.malformed_at() {
                            Some((location, reason)) => {
                                problem(at.clone(), location, format!("malformed: {reason}"))
                            }
                            None => problem(at.clone(), "spec", Chain(&e).to_string()),
                        }
                        continue;
                    }
                };
                if let Some(rules) = rules_cache.for_path(file)? {
                    match rules.resolve(file) {
                        Ok(resolved) => {
                            let wanted: BTreeSet<KeyId> = resolved
                                .recipients
                                .iter()
                                .map(|r| r.key_id().clone())
                                .collect();
                            for (i, env) in sealed.envelopes().iter().enumerate() {
                                let listed: BTreeSet<KeyId> =
                                    env.recipients.iter().cloned().collect();
                                if listed != wanted {
                                    let missing: Vec<&str> =
                                        wanted.difference(&listed).map(KeyId::as_str).collect();
                                    let extra: Vec<&str> =
                                        listed.difference(&wanted).map(KeyId::as_str).collect();
                                    problem(
                                        at.clone(),
                                        &format!("spec.envelopes[{i}].recipients"),
                                        format!(
                                            "recipients differ from {} (missing: {}; not listed there: {}): run `sealsync reseal`",
                                            resolved.source,
                                            list_or_none(&missing),
                                            list_or_none(&extra)
                                        ),
                                    );
                                }
                            }
                        }
                        Err(e) => problem(at.clone(), "-", e.message().to_owned()),
                    }
                }
                match sealed.verify_recipients(identities) {
                    Ok(mismatches) => {
                        for m in mismatches {
                            problem(
                                at.clone(),
                                "spec.envelopes",
                                format!(
                                    "{m}: the listed key ids are not the keys it is wrapped \
                                     to; run `sealsync reseal`"
                                ),
                            );
                        }
                    }
                    Err(e) => problem(at.clone(), "spec.envelopes", Chain(&e).to_string()),
                }
                if !identities.is_empty() {
                    match sealed.open(identities, &OpenOptions::default()) {
                        Ok(opened) => {
                            let exposed = exposed_value(&doc.value, &opened.secret);
                            opened_secrets.push((at.clone(), opened.secret));
                            if let Some((field, key)) = exposed {
                                problem(
                                    at.clone(),
                                    &field,
                                    format!(
                                        "holds the value of data key {key:?} in plaintext or \
                                         base64: remove it; values belong only in \
                                         spec.encryptedData"
                                    ),
                                );
                            }
                        }
                        Err(e) => problem(at.clone(), "spec.encryptedData", Chain(&e).to_string()),
                    }
                }
            }
            _ => {}
        }
    }
    if !identities.is_empty() && !sops_documents.is_empty() {
        let located: Vec<(&Value, &str)> = sops_documents
            .iter()
            .map(|(d, at)| (*d, at.as_str()))
            .collect();
        if let Err(e) = open_file(&located, identities) {
            let at = e.location().to_owned();
            problem(
                at.clone(),
                e.field().unwrap_or("sops"),
                sops_message(&e, &at),
            );
        }
    }
    // Anywhere else in the file (a comment, another document) an opened value is exposed too.
    // The sealed lines hold only ciphertext, so a match is always a leak.
    for (at, secret) in &opened_secrets {
        let finder = secret.value_finder();
        for (n, line) in text.lines().enumerate() {
            if let Some(key) = finder.find(line) {
                problem(
                    at.clone(),
                    &format!("line {}", n + 1),
                    format!(
                        "the file holds the value of data key {key:?} in plaintext or base64 \
                         outside the sealed values: remove it"
                    ),
                );
                break;
            }
        }
    }
    Ok(())
}

/// An unparseable file is reported when it could hide a Secret or a key; other YAML (Helm
/// templates, CI configuration) is not ours to judge.
fn might_hold_secrets(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    [
        "secret",
        "stringdata",
        "age-secret-key",
        "password",
        "token",
    ]
    .iter()
    .any(|w| lower.contains(w))
}

fn list_or_none(ids: &[&str]) -> String {
    if ids.is_empty() {
        "none".to_owned()
    } else {
        ids.join(", ")
    }
}

/// Data key names for a message: valid names as they are, anything else (which may be a value
/// typed in the wrong place) only counted.
fn key_list<'a>(keys: impl Iterator<Item = Option<&'a str>>) -> String {
    let mut shown = Vec::new();
    let mut hidden = 0;
    for key in keys {
        match key {
            Some(k) if validate_data_key(k).is_ok() => shown.push(k.to_owned()),
            _ => hidden += 1,
        }
    }
    if hidden > 0 {
        shown.push(format!("{hidden} key(s) that are not valid names"));
    }
    shown.join(", ")
}

fn is_kustomization_file(file: &Path) -> bool {
    matches!(
        file.file_name().and_then(|n| n.to_str()),
        Some("kustomization.yaml" | "kustomization.yml" | "Kustomization")
    )
}

/// kustomize's `secretGenerator` turns literals, env files and files into Secrets at build
/// time: each is plaintext in Git.
fn secret_generators(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(generators) = doc.get("secretGenerator").and_then(Value::as_sequence) else {
        return out;
    };
    for (i, generator) in generators.iter().enumerate() {
        let at = format!("secretGenerator[{i}]");
        if let Some(literals) = generator.get("literals").and_then(Value::as_sequence) {
            if !literals.is_empty() {
                let keys = key_list(
                    literals
                        .iter()
                        .map(|l| l.as_str().and_then(|l| l.split_once('=').map(|(k, _)| k))),
                );
                out.push((
                    format!("{at}.literals"),
                    format!(
                        "plaintext Secret values ({keys}): seal them with `sealsync seal \
                         --from-literal` and commit the sealed file instead"
                    ),
                ));
            }
        }
        for (field, what) in [("envs", "env file"), ("files", "file"), ("env", "env file")] {
            let listed: Vec<&Value> = match generator.get(field) {
                Some(Value::Sequence(items)) => items.iter().collect(),
                Some(v @ Value::String(_)) => vec![v],
                _ => Vec::new(),
            };
            if !listed.is_empty() {
                out.push((
                    format!("{at}.{field}"),
                    format!(
                        "builds a Secret from {} plaintext {what}(s) in the repository: seal \
                         them with `sealsync seal --from-file` instead",
                        listed.len()
                    ),
                ));
            }
        }
    }
    out
}

/// The annotation path when the document carries kubectl's last-applied copy of a Secret
/// with values, on itself or in a SealedSecret's template.
fn last_applied_secret(doc: &Value) -> Option<String> {
    let places = [
        (
            "metadata.annotations",
            doc.get("metadata").and_then(|m| m.get("annotations")),
        ),
        (
            "spec.template.metadata.annotations",
            doc.get("spec")
                .and_then(|s| s.get("template"))
                .and_then(|t| t.get("metadata"))
                .and_then(|m| m.get("annotations")),
        ),
    ];
    for (field, annotations) in places {
        let Some(copy) = annotations
            .and_then(|a| a.get(LAST_APPLIED_ANNOTATION))
            .and_then(Value::as_str)
        else {
            continue;
        };
        let parsed: Option<serde_json::Value> = serde_json::from_str(copy).ok();
        let holds_values = match &parsed {
            Some(v) => {
                v.get("kind").and_then(|k| k.as_str()) == Some("Secret")
                    && ["data", "stringData"].iter().any(|f| {
                        v.get(f)
                            .and_then(|d| d.as_object())
                            .is_some_and(|d| !d.is_empty())
                    })
            }
            // Unparseable: it cannot be told apart from a copy with values.
            None => true,
        };
        if holds_values || doc.get("kind").and_then(Value::as_str) == Some("SealedSecret") {
            return Some(format!("{field}.{LAST_APPLIED_ANNOTATION:?}"));
        }
    }
    None
}

/// The first place outside `spec.encryptedData` that holds one of the opened values.
fn exposed_value(doc: &Value, secret: &sealsync_crypto::PlainSecret) -> Option<(String, String)> {
    let finder = secret.value_finder();
    let mut found = None;
    walk_strings(doc, &mut String::new(), &mut |path, text| {
        if found.is_none()
            && path != "spec.encryptedData"
            && !path.starts_with("spec.encryptedData.")
        {
            if let Some(key) = finder.find(text) {
                // A key of the document may itself be the value: then not even the path can
                // be printed.
                let shown = if finder.find(path).is_some() {
                    "a field name of the document".to_owned()
                } else {
                    path.to_owned()
                };
                found = Some((shown, key.to_owned()));
            }
        }
    });
    found
}

fn walk_strings(value: &Value, path: &mut String, visit: &mut dyn FnMut(&str, &str)) {
    match value {
        Value::String(s) => visit(path, s),
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk_strings(item, path, visit);
                path.truncate(len);
            }
        }
        Value::Mapping(map) => {
            for (i, (k, v)) in map.iter().enumerate() {
                let len = path.len();
                let segment = match k.as_str() {
                    Some(k) if k.len() <= 253 && !k.contains(char::is_whitespace) => k.to_owned(),
                    _ => format!("[#{}]", i + 1),
                };
                if !path.is_empty() && !segment.starts_with('[') {
                    path.push('.');
                }
                path.push_str(&segment);
                if let Some(key) = k.as_str() {
                    visit(path, key);
                }
                walk_strings(v, path, visit);
                path.truncate(len);
            }
        }
        Value::Tagged(t) => walk_strings(&t.value, path, visit),
        _ => {}
    }
}

/// A SOPS error as `check` reports it, after the file and document: no key given opens it, or
/// what the file holds wrong.
fn sops_message(error: &SopsError, at: &str) -> String {
    let message = match error {
        SopsError::Key { .. } => Chain(error).to_string(),
        _ => error.with_given_keys(),
    };
    message
        .strip_prefix(&format!("{at}: "))
        .unwrap_or(&message)
        .to_owned()
}
