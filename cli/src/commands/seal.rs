//! `sealsync seal`: a Secret in, a SealedSecret out.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args as ClapArgs;
use rayon::prelude::*;
use sealsync_core::manifest::{
    read_documents, sealed_from_manifest, sealed_to_manifest, secret_from_manifest, Limits,
};
use sealsync_crypto::{validate_data_key, PlainSecret, Recipient, Scope, SealedSecret, SecretData};
use zeroize::Zeroizing;

use crate::error::{CliError, CliResult};
use crate::fsio;
use crate::habits::Habits;
use crate::output::{self, Format};
use crate::recipients::{pick_scope, RecipientArgs};
use crate::splice;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Secret manifests to seal (YAML or JSON, multi-document); directories are read
    /// recursively. Reads stdin when neither this nor --from-* is given.
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR")]
    pub files: Vec<PathBuf>,
    /// Name of the Secret to build from --from-literal/--from-file.
    #[arg(long)]
    pub name: Option<String>,
    /// Namespace of the Secret; must match the manifest's when it has one.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Type of the Secret to build from --from-literal/--from-file (default Opaque).
    #[arg(long = "type", value_name = "TYPE")]
    pub type_: Option<String>,
    /// A value as KEY=VALUE. Repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    pub from_literal: Vec<String>,
    /// A value from a file, as KEY=PATH or PATH (the key is the file name). Repeatable.
    #[arg(long, value_name = "[KEY=]PATH")]
    pub from_file: Vec<String>,
    /// Seal for the namespace and name the Secret has once kustomize or Helm renders it
    /// (`sealsync render` shows them), as NAMESPACE/NAME: an overlay's `namespace:` and
    /// `namePrefix:` move it there. The sealed file keeps the Secret's own name for the
    /// overlay to change, that namespace, and the identity in the annotation
    /// `sealsync.dev/rendered-as` (for `sealsync reseal`). One Secret at a time.
    #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with = "merge_into")]
    pub rendered_as: Option<String>,
    /// Where the sealed values may be opened: strict (this name in this namespace),
    /// namespace (any name in this namespace) or cluster (anywhere). Default: the
    /// .sealsync.yaml rule's scope, else strict.
    #[arg(long, value_enum)]
    pub scope: Option<ScopeArg>,
    #[command(flatten)]
    pub recipients: RecipientArgs,
    /// The path to match against .sealsync.yaml rules (default: the -w or --merge-into file,
    /// else each input file).
    #[arg(long, value_name = "PATH")]
    pub rules_path: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Yaml)]
    pub output: Format,
    /// Write the output to FILE atomically instead of stdout.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// Add or replace values in this sealed file, in place, without decrypt access; values
    /// not given keep their lines byte for byte.
    #[arg(long, value_name = "FILE", conflicts_with = "write")]
    pub merge_into: Option<PathBuf>,
    #[command(flatten)]
    pub habits: Habits,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ScopeArg {
    Strict,
    Namespace,
    Cluster,
}

impl From<ScopeArg> for Scope {
    fn from(s: ScopeArg) -> Self {
        match s {
            ScopeArg::Strict => Scope::Strict,
            ScopeArg::Namespace => Scope::Namespace,
            ScopeArg::Cluster => Scope::Cluster,
        }
    }
}

/// One plain Secret and where it came from.
pub(crate) struct Input {
    pub(crate) secret: PlainSecret,
    /// `file: document N (Secret ns/name)`, for messages.
    pub(crate) place: String,
    /// The path matched against .sealsync.yaml when no better one is given.
    pub(crate) rules_path: Option<PathBuf>,
    /// The scope it had in the format it came from (a Bitnami SealedSecret's), which a
    /// `--scope` flag overrides and which overrides the .sealsync.yaml rule's.
    pub(crate) scope: Option<Scope>,
}

pub fn run(args: Args) -> CliResult<ExitCode> {
    args.habits.refuse("seal")?;
    check_namespace_flag(args.namespace.as_deref())?;
    if let Some(path) = args.write.as_deref().or(args.merge_into.as_deref()) {
        // Before any work: a bad target should not cost a seal.
        fsio::writable_target(path)?;
    }
    let mut inputs = gather_inputs(&args)?;
    let original = match &args.rendered_as {
        Some(identity) => Some(seal_for_rendered(identity, &mut inputs)?),
        None => None,
    };
    if let Some(target) = &args.merge_into {
        return merge_into(&args, target, inputs);
    }
    let fixed_rules_path = args.rules_path.clone().or_else(|| args.write.clone());
    let mut docs = seal_inputs(
        &inputs,
        args.scope.map(Scope::from),
        &args.recipients,
        fixed_rules_path.as_deref(),
    )?;
    if let (Some(own_name), Some(identity)) = (original, &args.rendered_as) {
        let (namespace, name) = identity.split_once('/').unwrap_or_default();
        for doc in &mut docs {
            crate::rendered_as::mark(doc, &own_name, namespace, name);
        }
    }
    emit(&docs, args.output, args.write.as_deref())
}

/// Seals each of `inputs` to the recipients `-r` gives, else the .sealsync.yaml rule for
/// `fixed_rules_path` or the input's own path, in the scope `scope_flag` gives, else the
/// input's own, else the rule's: the SealedSecret manifests, in order.
pub(crate) fn seal_inputs(
    inputs: &[Input],
    scope_flag: Option<Scope>,
    recipients: &RecipientArgs,
    fixed_rules_path: Option<&Path>,
) -> CliResult<Vec<serde_yaml::Value>> {
    let mut resolver = recipients.resolver()?;
    let mut jobs: Vec<(&Input, Vec<Recipient>, Scope)> = Vec::with_capacity(inputs.len());
    for input in inputs {
        let match_path = fixed_rules_path.or(input.rules_path.as_deref());
        let resolved = resolver.resolve(match_path)?;
        let scope = pick_scope(scope_flag.or(input.scope), &resolved);
        jobs.push((input, resolved.recipients, scope));
    }
    // Each Secret needs its own age wrap (X25519 per recipient): spread them over the cores.
    let sealed: Vec<CliResult<serde_yaml::Value>> = jobs
        .par_iter()
        .map(|(input, recipients, scope)| {
            check_namespace(&input.secret, *scope, &input.place)?;
            SealedSecret::seal(&input.secret, *scope, recipients)
                .map(|s| sealed_to_manifest(&s))
                .map_err(|e| CliError::from_crypto(&e).context(&input.place))
        })
        .collect();
    sealed.into_iter().collect()
}

/// `--rendered-as NAMESPACE/NAME`: the one Secret is sealed for that identity. Returns the
/// Secret's own name, which the sealed file keeps (with the identity in an annotation).
fn seal_for_rendered(identity: &str, inputs: &mut [Input]) -> CliResult<String> {
    let invalid = || {
        CliError::new(format!("--rendered-as {identity:?}: not NAMESPACE/NAME"))
            .with_hint("`sealsync render PATH` shows the namespace and name a rendered Secret has")
    };
    let (namespace, name) = identity.split_once('/').ok_or_else(invalid)?;
    if !sealsync_crypto::is_dns_label(namespace) || !sealsync_crypto::is_object_name(name) {
        return Err(invalid());
    }
    let [input] = inputs else {
        return Err(CliError::new(format!(
            "--rendered-as seals one Secret, and {} were given",
            inputs.len()
        ))
        .with_hint("seal the Secrets one at a time"));
    };
    input.secret.namespace = Some(namespace.to_owned());
    Ok(std::mem::replace(&mut input.secret.name, name.to_owned()))
}

pub(crate) fn emit(
    docs: &[serde_yaml::Value],
    format: Format,
    write: Option<&Path>,
) -> CliResult<ExitCode> {
    let text = output::render(docs, format)?;
    match write {
        Some(path) => fsio::write_atomic(path, text.as_bytes())?,
        None => output::write_stdout(&text)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn check_namespace(secret: &PlainSecret, scope: Scope, place: &str) -> CliResult<()> {
    if scope != Scope::Cluster && secret.namespace.is_none() {
        return Err(CliError::new(format!(
            "{place}: the Secret has no namespace, and {scope} scope binds one"
        ))
        .with_hint("set metadata.namespace, pass --namespace NS, or seal with --scope cluster"));
    }
    Ok(())
}

fn gather_inputs(args: &Args) -> CliResult<Vec<Input>> {
    let from_flags = !args.from_literal.is_empty() || !args.from_file.is_empty();
    if from_flags {
        if !args.files.is_empty() {
            return Err(
                CliError::new("-f and --from-literal/--from-file cannot be combined")
                    .with_hint("build the Secret from flags, or pass a manifest with -f"),
            );
        }
        return Ok(vec![secret_from_flags(args)?]);
    }
    if args.name.is_some() || args.type_.is_some() {
        return Err(CliError::new("--name and --type build a Secret from --from-literal or --from-file, and none was given")
            .with_hint("add --from-literal KEY=VALUE or --from-file KEY=PATH"));
    }
    let sources: Vec<Option<PathBuf>> = if args.files.is_empty() {
        vec![None]
    } else {
        fsio::expand_paths(&args.files)?
            .into_iter()
            .map(Some)
            .collect()
    };
    let per_file: Vec<CliResult<Vec<Input>>> = sources
        .par_iter()
        .map(|source| read_secrets(source.as_deref(), args.namespace.as_deref()))
        .collect();
    let mut inputs = Vec::new();
    for file_inputs in per_file {
        inputs.extend(file_inputs?);
    }
    if inputs.is_empty() {
        return Err(CliError::new("no Secret found in the input")
            .with_hint("pass a v1 Secret manifest with -f FILE or on stdin"));
    }
    Ok(inputs)
}

fn read_secrets(path: Option<&Path>, namespace_flag: Option<&str>) -> CliResult<Vec<Input>> {
    let source = fsio::display_source(path);
    let text = fsio::read_input(path)?;
    let docs = read_documents(&text, Limits::secrets())
        .map_err(|e| CliError::from_manifest(&e).context(&source))?;
    let mut out = Vec::with_capacity(docs.len());
    for doc in &docs {
        let place = format!("{source}: {}", doc.describe());
        if doc.kind() == Some("SealedSecret") {
            return Err(CliError::new(format!("{place}: is already sealed"))
                .with_hint("to change values, use --merge-into with the sealed file"));
        }
        let mut secret = secret_from_manifest(&doc.value).map_err(|e| {
            let err = CliError::from_manifest(&e).context(&place);
            if doc.kind() != Some("Secret") {
                err.with_hint("seal takes only Secrets: move other objects to their own files")
            } else {
                err
            }
        })?;
        apply_namespace_flag(&mut secret, namespace_flag, &place)?;
        out.push(Input {
            secret,
            place,
            rules_path: path.map(Path::to_path_buf),
            scope: None,
        });
    }
    Ok(out)
}

/// `-n` must be a namespace the API server would accept: a lowercase RFC 1123 label.
fn check_namespace_flag(flag: Option<&str>) -> CliResult<()> {
    let Some(ns) = flag else { return Ok(()) };
    let ok = !ns.is_empty()
        && ns.len() <= 63
        && ns
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !ns.starts_with('-')
        && !ns.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(CliError::new("--namespace: not a valid namespace name")
            .with_hint("a namespace is a lowercase RFC 1123 label: a-z, 0-9 and '-', at most 63"))
    }
}

fn apply_namespace_flag(
    secret: &mut PlainSecret,
    flag: Option<&str>,
    place: &str,
) -> CliResult<()> {
    match (&secret.namespace, flag) {
        (Some(own), Some(flag)) if own != flag => Err(CliError::new(format!(
            "{place}: the Secret's namespace {own:?} does not match --namespace {flag:?}"
        ))
        .with_hint(format!(
            "pass --namespace {own}, or change metadata.namespace"
        ))),
        (None, Some(flag)) => {
            secret.namespace = Some(flag.to_owned());
            Ok(())
        }
        _ => Ok(()),
    }
}

fn split_pair<'a>(flag: &str, arg: &'a str) -> CliResult<(&'a str, &'a str)> {
    arg.split_once('=').ok_or_else(|| {
        CliError::new(format!(
            "{flag} expects KEY=VALUE, got an argument without '='"
        ))
        .with_hint(format!("write {flag} KEY=VALUE"))
    })
}

fn secret_from_flags(args: &Args) -> CliResult<Input> {
    // With --merge-into the sealed file already names the Secret.
    let name = match (&args.name, &args.merge_into) {
        (Some(name), _) => name.clone(),
        (None, Some(_)) => String::new(),
        (None, None) => {
            return Err(
                CliError::new("--from-literal/--from-file need the Secret's --name")
                    .with_hint("add --name NAME (and --namespace NS)"),
            )
        }
    };
    let mut data = SecretData::new();
    let mut insert = |key: &str, value: Zeroizing<Vec<u8>>, flag: &str| -> CliResult<()> {
        if validate_data_key(key).is_err() {
            return Err(
                // Not echoed: what was meant as a key may be a value.
                CliError::new(format!("{flag}: the key is not a valid data key"))
                    .with_hint("data keys consist of letters, digits, '-', '_' and '.'"),
            );
        }
        if data.insert(key.to_owned(), value).is_some() {
            return Err(
                CliError::new(format!("{flag}: data key {key:?} is given twice"))
                    .with_hint("give each key once"),
            );
        }
        Ok(())
    };
    for literal in &args.from_literal {
        let (key, value) = split_pair("--from-literal", literal)?;
        insert(
            key,
            Zeroizing::new(value.as_bytes().to_vec()),
            "--from-literal",
        )?;
    }
    for spec in &args.from_file {
        let (key, path) = match spec.split_once('=') {
            Some((k, p)) => (k.to_owned(), PathBuf::from(p)),
            None => {
                let path = PathBuf::from(spec);
                let key = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (key, path)
            }
        };
        let bytes = read_value_file(&path)?;
        insert(&key, bytes, "--from-file")?;
    }
    Ok(Input {
        secret: PlainSecret {
            name,
            namespace: args.namespace.clone(),
            type_: Some(args.type_.clone().unwrap_or_else(|| "Opaque".to_owned())),
            data,
            ..PlainSecret::default()
        },
        place: "--from-literal/--from-file".to_owned(),
        rules_path: None,
        scope: None,
    })
}

fn read_value_file(path: &Path) -> CliResult<Zeroizing<Vec<u8>>> {
    use std::io::Read;
    let place = path.display().to_string();
    let limit = sealsync_crypto::MAX_SECRET_BYTES as u64;
    let mut buf = Zeroizing::new(Vec::new());
    std::fs::File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_end(&mut buf))
        .map_err(|e| fsio::io_error(&place, "read", &e).context("--from-file"))?;
    if buf.len() as u64 > limit {
        return Err(CliError::new(format!(
            "--from-file: {place} is larger than a Secret may be (1 MiB)"
        ))
        .with_hint("Kubernetes refuses Secrets over 1 MiB; store large files elsewhere"));
    }
    Ok(buf)
}

fn merge_into(args: &Args, target: &Path, inputs: Vec<Input>) -> CliResult<ExitCode> {
    let place = target.display().to_string();
    let [input] = inputs.as_slice() else {
        return Err(CliError::new(format!(
            "--merge-into takes one Secret, the input has {}",
            inputs.len()
        ))
        .with_hint("merge one Secret at a time"));
    };
    let match_path = args
        .rules_path
        .clone()
        .unwrap_or_else(|| target.to_path_buf());
    let resolved = args.recipients.resolver()?.resolve(Some(&match_path))?;
    // Held until the new file is in place: a concurrent merge waits, then reads our result.
    let locked = fsio::LockedFile::open(target)?;
    let docs = read_documents(&locked.text, Limits::secrets())
        .map_err(|e| CliError::from_manifest(&e).context(&place))?;
    let [doc] = docs.as_slice() else {
        return Err(CliError::new(format!(
            "{place}: --merge-into needs a file with exactly one SealedSecret, found {} documents",
            docs.len()
        ))
        .with_hint("split the file, or seal into a new file with -w"));
    };
    let mut sealed = sealed_from_manifest(&doc.value)
        .map_err(|e| CliError::from_manifest(&e).context(format!("{place}: {}", doc.describe())))?;
    let meta = sealed.metadata();
    if !input.secret.name.is_empty() && input.secret.name != meta.name {
        return Err(CliError::new(format!(
            "{}: the Secret is named {:?} but {place} holds {:?}",
            input.place, input.secret.name, meta.name
        ))
        .with_hint("merge into the sealed file of the same Secret"));
    }
    if let (Some(given), Some(own)) = (&input.secret.namespace, &meta.namespace) {
        if given != own {
            return Err(CliError::new(format!(
                "{}: the Secret is in namespace {given:?} but {place} is sealed for {own:?}",
                input.place
            ))
            .with_hint("merge into the sealed file of the same Secret"));
        }
    }
    if let Some(flag) = args.scope.map(Scope::from) {
        if flag != sealed.scope() {
            return Err(CliError::new(format!(
                "--scope {flag} differs from the scope {} that {place} is sealed with",
                sealed.scope()
            ))
            .with_hint("drop --scope, or seal a new file to change the scope"));
        }
    }
    refuse_mixed_recipients(&sealed, &resolved.recipients, &resolved.source, &place)?;
    // The file's template metadata is plaintext: a new value must not already sit there.
    let template = sealed.template().metadata.clone();
    let probe = PlainSecret {
        labels: template.labels,
        annotations: template.annotations,
        data: input.secret.data.clone(),
        ..PlainSecret::default()
    };
    if let Some((field, key)) = probe.value_in_metadata() {
        return Err(CliError::new(format!(
            "{place}: spec.template.{field} holds the value given for data key {key:?}"
        ))
        .with_hint("remove it from the template first; values belong only in encryptedData"));
    }
    sealed
        .merge(&input.secret.data, &resolved.recipients)
        .map_err(|e| CliError::from_crypto(&e).context(&place))?;
    let new_value = sealed_to_manifest(&sealed);
    let text = match splice::splice(
        &locked.text,
        &[&doc.value],
        std::slice::from_ref(&new_value),
    ) {
        Some(text) if args.output == Format::Yaml => zeroize::Zeroizing::new(text),
        // A JSON file stays JSON, whatever -o says.
        _ if target.extension().and_then(|e| e.to_str()) == Some("json") => {
            output::render(&[new_value], Format::Json)?
        }
        _ => output::render(&[new_value], args.output)?,
    };
    fsio::write_atomic(target, text.as_bytes())?;
    drop(locked);
    Ok(ExitCode::SUCCESS)
}

/// A merge adds an envelope wrapped to today's recipients. If the file's other envelopes are
/// wrapped to other keys, no single key could open the result any more: refuse, and say how to
/// move the file to one set of keys first.
fn refuse_mixed_recipients(
    sealed: &SealedSecret,
    recipients: &[Recipient],
    source: &str,
    place: &str,
) -> CliResult<()> {
    use std::collections::BTreeSet;
    let wanted: BTreeSet<&str> = recipients.iter().map(|r| r.key_id().as_str()).collect();
    for env in sealed.envelopes() {
        let listed: BTreeSet<&str> = env.recipients.iter().map(|k| k.as_str()).collect();
        if listed != wanted {
            let fmt = |set: &BTreeSet<&str>| set.iter().copied().collect::<Vec<_>>().join(", ");
            return Err(CliError::new(format!(
                "{place}: is sealed to key id(s) {}, but {source} gives key id(s) {}; merging \
                 would leave values that no single key opens, so nothing was changed",
                fmt(&listed),
                fmt(&wanted)
            ))
            .with_hint(format!(
                "re-wrap the file to the new keys first (`sealsync reseal -i IDENTITY_FILE \
                 {place}`), or pass the file's own recipients with -r"
            )));
        }
    }
    Ok(())
}
