//! `sealsync keys list|rotate|retire`: the cluster's keys through their `SealingKey`
//! resources. The controller does the work (it alone holds private keys); these commands ask
//! and wait for its answer, so that kubectl users and CLI users see the same rules.

use std::process::ExitCode;
use std::time::Duration;

use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use sealsync_core::{
    parse_duration, KeyState, SealingKey, SealingKeySpec, RETIRE_REQUESTED_AT_ANNOTATION,
};

use super::{ControllerArgs, ListArgs, RetireArgs, RotateArgs};
use crate::cluster;
use crate::error::{CliError, CliResult};
use crate::output;

/// How often the commands look for the controller's answer.
pub(super) const POLL: Duration = Duration::from_millis(250);

fn state(sk: &SealingKey) -> String {
    match sk.status.as_ref().and_then(|s| s.state) {
        Some(state) => state.as_str().to_owned(),
        None => "Pending".to_owned(),
    }
}

fn key_id(sk: &SealingKey) -> Option<&str> {
    sk.status.as_ref().and_then(|s| s.key_id.as_deref())
}

pub(super) async fn list_keys(client: Client, namespace: &str) -> CliResult<Vec<SealingKey>> {
    let api: Api<SealingKey> = Api::namespaced(client, namespace);
    let what = format!("listing the SealingKeys in {namespace}");
    let mut items = match api.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(kube::Error::Api(status)) if status.code == 404 => {
            return Err(CliError::new(format!(
                "{what}: the cluster does not know the SealingKey resource"
            ))
            .with_hint(
                "install sealsync's CRDs (`kubectl apply --server-side -f deploy/crds/`) and a controller that manages keys",
            ))
        }
        Err(e) => return Err(cluster::api_error(&what, e)),
    };
    // Newest first, as the recipients file lists them.
    items.sort_by(|a, b| {
        let created = |sk: &SealingKey| sk.status.as_ref().and_then(|s| s.created.clone());
        created(b)
            .cmp(&created(a))
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
    Ok(items)
}

/// The ids of the keys the controller reports active.
pub(super) async fn active_key_ids(
    client: Client,
    namespace: &str,
) -> CliResult<std::collections::BTreeSet<String>> {
    Ok(list_keys(client, namespace)
        .await?
        .iter()
        .filter_map(|sk| sk.status.as_ref())
        .filter(|s| s.state == Some(KeyState::Active))
        .filter_map(|s| s.key_id.clone())
        .collect())
}

fn no_keys(namespace: &str) -> CliError {
    CliError::new(format!("no SealingKeys in namespace {namespace}")).with_hint(format!(
        "is sealsync-controller running in namespace {namespace}? It creates one SealingKey \
         per key on start. Pass --controller-namespace NS if it runs elsewhere"
    ))
}

pub fn list(args: ListArgs) -> CliResult<ExitCode> {
    let namespace = args.controller_namespace.clone();
    let items = cluster::block_on(async {
        let (client, _) = args.cluster.connect().await?;
        list_keys(client, &namespace).await
    })?;
    if items.is_empty() {
        return Err(no_keys(&namespace));
    }
    if let Some(format) = args.output {
        let docs = items
            .iter()
            .map(|sk| {
                let mut sk = sk.clone();
                sk.metadata.managed_fields = None;
                serde_yaml::to_value(&sk)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CliError::new(format!("cannot render output: {e}")))?;
        output::write_stdout(&output::render(&docs, format)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![[
        "KEY ID",
        "STATE",
        "CURRENT",
        "CREATED",
        "DOCUMENTS",
        "SEALINGKEY",
    ]
    .map(str::to_owned)
    .to_vec()];
    for sk in &items {
        let status = sk.status.clone().unwrap_or_default();
        rows.push(vec![
            status.key_id.clone().unwrap_or_else(|| "-".to_owned()),
            state(sk),
            if status.current { "*" } else { "" }.to_owned(),
            status.created.clone().unwrap_or_default(),
            status.documents.to_string(),
            sk.name_any(),
        ]);
    }
    output::write_stdout(&output::table(&rows))?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn parse_timeout(args: &ControllerArgs) -> CliResult<Duration> {
    parse_duration(&args.timeout).map_err(|e| {
        CliError::new(format!("--timeout: {e}")).with_hint("pass a duration such as 30s or 2m")
    })
}

/// Polls SealingKey `name` until `done` returns a value, or the timeout passes.
async fn wait_for<T>(
    api: &Api<SealingKey>,
    name: &str,
    timeout: Duration,
    mut done: impl FnMut(&SealingKey) -> Option<T>,
) -> CliResult<Option<T>> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let current = api
            .get_opt(name)
            .await
            .map_err(|e| cluster::api_error(&format!("SealingKey {name}"), e))?;
        let Some(current) = current else {
            return Err(CliError::new(format!(
                "SealingKey {name} was deleted while waiting for the controller"
            )));
        };
        if let Some(value) = done(&current) {
            return Ok(Some(value));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(POLL).await;
    }
}

pub fn rotate(args: RotateArgs) -> CliResult<ExitCode> {
    let args = args.controller;
    let wait = parse_timeout(&args)?;
    let namespace = args.controller_namespace.clone();
    let (name, key, previous) = cluster::block_on(async {
        let (client, _) = args.cluster.connect().await?;
        // Right after the controller's first start its SealingKeys may not exist yet: the
        // request is made all the same, and the wait below tells a controller that is not
        // running.
        let existing = list_keys(client.clone(), &namespace).await?;
        let previous: Vec<String> = existing
            .iter()
            .filter(|sk| sk.status.as_ref().and_then(|s| s.state) == Some(KeyState::Active))
            .filter_map(|sk| key_id(sk).map(str::to_owned))
            .collect();
        let api: Api<SealingKey> = Api::namespaced(client, &namespace);
        let request = SealingKey {
            metadata: ObjectMeta {
                generate_name: Some("sealsync-key-".to_owned()),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: SealingKeySpec {},
            status: None,
        };
        let created = api.create(&PostParams::default(), &request).await.map_err(|e| {
            let err = cluster::api_error(&format!("creating a SealingKey in {namespace}"), e);
            match err.hint() {
                Some(h) if h.starts_with("ask the cluster admin") => err.with_hint(
                    "rotating needs `create` on sealingkeys.sealsync.dev in the controller's namespace; ask the cluster admin",
                ),
                _ => err,
            }
        })?;
        let name = created.name_any();
        let key = wait_for(&api, &name, wait, |sk| {
            let status = sk.status.as_ref()?;
            (status.state == Some(KeyState::Active) && status.current)
                .then(|| (status.key_id.clone(), status.recipient.clone()))
        })
        .await?;
        Ok((name, key, previous))
    })?;
    let Some((key_id, recipient)) = key else {
        return Err(CliError::new(format!(
            "sealsync-controller did not generate the key of SealingKey {namespace}/{name} within {}",
            args.timeout
        ))
        .with_hint(format!(
            "is sealsync-controller running in namespace {namespace}? The request stays: the controller generates the key when it runs (see `kubectl -n {namespace} describe sealingkey {name}`)"
        )));
    };
    let key_id = key_id.unwrap_or_default();
    output::write_stdout(&format!("{}\n", recipient.unwrap_or_default()))?;
    let old = if previous.is_empty() {
        "OLD-KEY-ID".to_owned()
    } else {
        previous.join(" and ")
    };
    eprintln!(
        "Generated key {key_id} (SealingKey {name}) inside the cluster; it is now the current key.\n\
         The old keys keep decrypting until they are retired.\n\
         Next:\n  \
         1. sealsync keys fetch -o recipients.txt   (and update the recipients in .sealsync.yaml)\n  \
         2. sealsync reseal --controller PATH...   (re-wraps the sealed files; value lines stay;\n     \
         or offline with a recovery key: sealsync reseal -i RECOVERY_IDENTITY PATH...)\n  \
         3. commit, let the GitSyncs apply, check `sealsync keys list`, then: sealsync keys retire {old}"
    );
    Ok(ExitCode::SUCCESS)
}

pub fn retire(args: RetireArgs) -> CliResult<ExitCode> {
    let wanted = args.key.clone();
    let args = args.controller;
    let wait = parse_timeout(&args)?;
    let namespace = args.controller_namespace.clone();
    cluster::block_on(async {
        let (client, _) = args.cluster.connect().await?;
        let items = list_keys(client.clone(), &namespace).await?;
        let Some(sk) = items
            .iter()
            .find(|sk| key_id(sk) == Some(wanted.as_str()) || sk.name_any() == wanted)
        else {
            return Err(CliError::new(format!(
                "no key with id or SealingKey name {wanted:?} in namespace {namespace}"
            ))
            .with_hint("list the keys with `sealsync keys list`"));
        };
        let name = sk.name_any();
        let shown = key_id(sk).unwrap_or(&name).to_owned();
        if sk.status.as_ref().and_then(|s| s.state) == Some(KeyState::Retired) {
            let at = sk
                .status
                .as_ref()
                .and_then(|s| s.retired.clone())
                .unwrap_or_default();
            eprintln!("Key {shown} is already retired (since {at}).");
            return Ok(ExitCode::SUCCESS);
        }
        let api: Api<SealingKey> = Api::namespaced(client, &namespace);
        let request = request_stamp();
        let patch = serde_json::json!({
            "metadata": {"annotations": {RETIRE_REQUESTED_AT_ANNOTATION: request}}
        });
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| cluster::api_error(&format!("SealingKey {namespace}/{name}"), e))?;
        let decided = wait_for(&api, &name, wait, |sk| {
            let status = sk.status.as_ref()?;
            if status.last_handled_retire_at.as_deref() != Some(request.as_str()) {
                return None;
            }
            let condition = status.condition("Retired")?;
            Some((
                condition.status == "True",
                condition.reason.clone(),
                condition.message.clone(),
            ))
        })
        .await?;
        match decided {
            None => Err(CliError::new(format!(
                "sealsync-controller did not answer the retirement of key {shown} within {}",
                args.timeout
            ))
            .with_hint(format!(
                "is sealsync-controller running in namespace {namespace}? The request stays on SealingKey {name} until the controller decides it"
            ))),
            Some((true, _, message)) => {
                // The controller's message starts with "key …"; as a sentence it starts upper.
                let mut sentence = message;
                if let Some(first) = sentence.get(..1) {
                    sentence = format!("{}{}", first.to_uppercase(), &sentence[1..]);
                }
                eprintln!("{sentence}.");
                Ok(ExitCode::SUCCESS)
            }
            Some((false, reason, message)) => {
                let hint = match reason.as_str() {
                    "CurrentKey" => "rotate first with `sealsync keys rotate`",
                    "InUse" => "`sealsync keys list -o yaml` lists every document that still needs the key",
                    _ => "see `sealsync keys list`",
                };
                Err(CliError::new(format!("retiring key {shown} was refused ({reason}): {message}"))
                    .with_hint(hint))
            }
        }
    })
}

/// A request value that differs from every earlier one: the time, to the nanosecond.
fn request_stamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = super::generate::created_stamp();
    format!(
        "{}.{:09}Z",
        seconds.trim_end_matches('Z'),
        now.subsec_nanos()
    )
}
