//! The `GitSync` custom resource (`sealsync.dev/v1`): which repository, revision and path to
//! apply, and what the controller reports back. Field names follow Flux's GitRepository and
//! Kustomization where they mean the same thing, so a Flux user reads them without a manual.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::inventory::InventoryStatus;
use crate::render_spec::{HelmSpec, PostBuildSpec, RenderSpec};

/// The API group of every sealsync resource.
pub const GROUP: &str = "sealsync.dev";

/// Label on every object the controller applies: the name of the GitSync that owns it.
/// Prune deletes only objects that carry both owner labels.
pub const OWNER_NAME_LABEL: &str = "sealsync.dev/gitsync-name";
/// Label on every object the controller applies: the namespace of the GitSync that owns it.
pub const OWNER_NAMESPACE_LABEL: &str = "sealsync.dev/gitsync-namespace";
/// `sealsync.dev/reconcile: disabled` on a live object: the controller leaves it alone.
pub const RECONCILE_ANNOTATION: &str = "sealsync.dev/reconcile";
/// `sealsync.dev/prune: disabled` on a live object: never pruned. On a Namespace or a
/// CustomResourceDefinition, whose deletion deletes everything in it or of its kind,
/// `sealsync.dev/prune: enabled` is needed before prune deletes it; without it such an object is
/// left in place (orphaned) with a warning Event.
pub const PRUNE_ANNOTATION: &str = "sealsync.dev/prune";
/// Set on a GitSync (to any new value, such as the time) to ask for a reconcile now; the
/// controller echoes the value in `status.lastHandledReconcileAt` once it has run. Flux's
/// `reconcile.fluxcd.io/requestedAt` works the same way.
pub const REQUESTED_AT_ANNOTATION: &str = "sealsync.dev/requestedAt";
/// `sealsync.dev/restart-on-secret-change: "true"` on a Deployment, StatefulSet or DaemonSet:
/// its pods restart when a Secret of the same revision that they use changes (`"false"`
/// opts out of `spec.restartOnSecretChange`).
pub const RESTART_ON_SECRET_CHANGE_ANNOTATION: &str = "sealsync.dev/restart-on-secret-change";
/// The pod-template annotation that carries a keyed checksum of the Secrets a workload uses.
pub const SECRET_CHECKSUM_ANNOTATION: &str = "sealsync.dev/secret-checksum";
/// The finalizer that lets the controller prune a deleted GitSync's objects.
pub const FINALIZER: &str = "sealsync.dev/finalizer";
/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "sealsync";

/// Applies the manifests at one path of one Git revision to the cluster, atomically per
/// revision, decrypting SealedSecrets on the way.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "sealsync.dev",
    version = "v1",
    kind = "GitSync",
    plural = "gitsyncs",
    shortname = "gs",
    namespaced,
    status = "GitSyncStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.lastAppliedRevision"}"#,
    printcolumn = r#"{"name":"Suspended","type":"boolean","jsonPath":".spec.suspend"}"#,
    printcolumn = r#"{"name":"Message","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct GitSyncSpec {
    /// The repository: `git://`, `http://` or `https://`.
    #[schemars(
        length(max = 2048),
        regex(pattern = r"^(https?|git)://[^/@\s]+(/\S*)?$")
    )]
    pub url: String,
    /// A Secret in the GitSync's namespace with `username` and `password`, or
    /// `bearerToken`, for HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
    /// Which revision: exactly one of branch, tag or commit. Default: the branch `main`.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<GitRef>,
    /// The directory of the repository to apply, recursively. Default: the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub path: Option<String>,
    /// How the path becomes objects: detected by default (kustomize, Helm or a directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub render: Option<RenderSpec>,
    /// Settings for a Helm chart at the path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<HelmSpec>,
    /// Variables substituted into the objects of a directory or kustomize path (`${var}`,
    /// `${var:=default}`), as Flux's post-build substitution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_build: Option<PostBuildSpec>,
    /// How often to fetch, re-apply and undo drift: a duration such as `30s`, `5m` or `1h`.
    #[schemars(length(max = 40), regex(pattern = r"^([0-9]{1,9}(ms|s|m|h))+$"))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s')").message("must be at least 1s"))]
    pub interval: String,
    /// How long one reconcile may take. Default: the interval, at most 10 minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 40), regex(pattern = r"^([0-9]{1,9}(ms|s|m|h))+$"))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s')").message("must be at least 1s"))]
    pub timeout: Option<String>,
    /// Delete objects that a new revision no longer has. Default: true.
    #[serde(default = "default_true")]
    pub prune: bool,
    /// Undo manual edits and deletions of applied objects. Default: true.
    #[serde(default = "default_true")]
    pub self_heal: bool,
    /// Stop reconciling; the cluster keeps what was last applied.
    #[serde(default)]
    pub suspend: bool,
    /// The namespace of namespaced objects whose manifests name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub target_namespace: Option<String>,
    /// Delete and recreate an object whose immutable fields changed. Without it such a change
    /// fails the revision with an error that names the object.
    #[serde(default)]
    pub force: bool,
    /// Apply plain Secrets with values found in Git. Default: false, and such a Secret fails
    /// the revision with a message to seal it.
    #[serde(default)]
    pub allow_plaintext_secrets: bool,
    /// A push webhook: `POST /hook/<path>` on the controller reconciles this GitSync (and the
    /// others in its namespace that follow the same repository and branch) at once. The path
    /// is derived from the Secret's token, so it cannot be guessed, and is reported in
    /// `status.webhookPath`. GitHub's `X-Hub-Signature-256` and GitLab's `X-Gitlab-Token`
    /// are checked against the same token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookSpec>,
    /// Restart every Deployment, StatefulSet and DaemonSet of the revision when a Secret of
    /// the revision that its pods use changes (in Git or in Vault): the controller sets the
    /// pod-template annotation `sealsync.dev/secret-checksum`. A workload opts in on its own
    /// with the annotation `sealsync.dev/restart-on-secret-change: "true"` (and out with
    /// `"false"`). Default: false.
    #[serde(default)]
    pub restart_on_secret_change: bool,
    /// The service account, in the GitSync's namespace, that the GitSync acts as: Vault's
    /// Kubernetes login presents a token of it. Default: `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub service_account_name: Option<String>,
    /// Where Vault (or OpenBao) is and how to log in, to resolve the references
    /// (`ref+vault://PATH#KEY`, `<path:MOUNT/data/PATH#KEY>`) that Secrets in Git hold. Unset
    /// fields take the controller's `VAULT_ADDR`, `VAULT_NAMESPACE` and `VAULT_CACERT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<VaultSpec>,
    /// Ready only once every applied object is healthy (kstatus's rules: a Deployment rolled
    /// out, a Job complete, a CRD established, a custom resource's `Ready` condition), within
    /// `spec.timeout`. Default: false, and Ready means applied.
    #[serde(default)]
    pub wait: bool,
    /// Objects to wait for when `wait` is off, as Flux's `healthChecks`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub health_checks: Vec<crate::HealthCheckRef>,
    /// Health of kinds the built-in rules do not know, or judged otherwise, by CEL
    /// expressions (Flux's `healthCheckExprs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub health_check_exprs: Vec<crate::HealthCheckExpr>,
    /// GitSyncs to wait for: this one is reconciled only once each is Ready at the revision it
    /// last tried (Flux's `dependsOn`). A cycle is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub depends_on: Vec<crate::DependencyRef>,
    /// `keep` (the default) leaves a revision that does not become healthy applied and retries
    /// it; `rollback` applies the last healthy revision again, from Git, and does not retry the
    /// failed one until a new commit or `sealsync sync`.
    #[serde(default)]
    pub on_health_failure: crate::HealthFailurePolicy,
    /// Accept only revisions signed by a trusted key: checked after the fetch and before
    /// anything is rendered, decrypted, resolved from Vault or applied. A revision that fails
    /// is reported `VerificationFailed`; the applied revision stays applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<crate::VerifySpec>,
}

/// Vault settings of a GitSync. At most one login method may be set; with none, the
/// controller's own `VAULT_TOKEN` is used, and only with the controller's `VAULT_ADDR`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultSpec {
    /// The server, such as `https://vault.example:8200`. Default: the controller's
    /// `VAULT_ADDR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https?://[^/@\s]+(/\S*)?$"))]
    pub address: Option<String>,
    /// The Vault Enterprise or OpenBao namespace. Default: the controller's `VAULT_NAMESPACE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// How often the references are read again, so that a value changed in Vault reaches the
    /// cluster without a commit: a duration such as `5m` or `1h`. Default: `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 40), regex(pattern = r"^([0-9]{1,9}(ms|s|m|h))+$"))]
    pub refresh_interval: Option<String>,
    /// PEM certificates of the CAs that sign the server's certificate, base64-encoded like
    /// every Kubernetes `caBundle`. Default: the controller's `VAULT_CACERT`, else the
    /// system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// The KV version (1 or 2) of every mount the references name. Default: found out per
    /// mount from `sys/internal/ui/mounts`, as vals does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 2))]
    pub kv_version: Option<u8>,
    /// Log in with a token kept in a Secret (key default `token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<VaultTokenAuth>,
    /// Log in with AppRole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_role: Option<VaultAppRoleAuth>,
    /// Log in with a token of the GitSync's service account, requested for each login
    /// through the TokenRequest API (Vault checks it with a TokenReview).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<VaultKubernetesAuth>,
}

/// Token login.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultTokenAuth {
    /// The Secret, in the GitSync's namespace, that holds the token (key default `token`).
    pub secret_ref: KeyedSecretRef,
}

/// AppRole login.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultAppRoleAuth {
    /// Where the AppRole method is mounted. Default: `approle`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount: Option<String>,
    /// The role id.
    pub role_id: String,
    /// The Secret, in the GitSync's namespace, that holds the secret id (key default: the
    /// first of `secretId`, `secret-id` and `secret_id` it holds).
    pub secret_ref: KeyedSecretRef,
}

/// Kubernetes login.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultKubernetesAuth {
    /// Where the Kubernetes method is mounted. Default: `kubernetes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount: Option<String>,
    /// The Vault role.
    pub role: String,
    /// The audience of the requested token, when the Vault role requires one. Default: the
    /// API server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

/// The webhook of a GitSync.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSpec {
    /// The Secret (in the GitSync's namespace) and key that hold the webhook's token.
    pub secret_ref: KeyedSecretRef,
}

/// A key of a Secret in the GitSync's own namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct KeyedSecretRef {
    /// The Secret's name.
    #[schemars(
        length(max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
    /// The key. Default: `token` (for AppRole, the first of `secretId`, `secret-id` and
    /// `secret_id` the Secret holds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Only the GitSync's own namespace may be named: a GitSync never reads another
    /// namespace's Secret, and a reference to one is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub namespace: Option<String>,
}

fn default_true() -> bool {
    true
}

/// A Secret in the GitSync's own namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretRef {
    /// The Secret's name.
    #[schemars(
        length(max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
    /// Only the GitSync's own namespace may be named: a GitSync never reads another
    /// namespace's Secret, and a reference to one is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub namespace: Option<String>,
}

/// Exactly one of `branch`, `tag` or `commit`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
#[x_kube(validation = Rule::new("(has(self.branch) ? 1 : 0) + (has(self.tag) ? 1 : 0) + (has(self.commit) ? 1 : 0) == 1").message("set exactly one of branch, tag and commit"))]
#[serde(rename_all = "camelCase")]
pub struct GitRef {
    /// A branch, followed as it moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub branch: Option<String>,
    /// A tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub tag: Option<String>,
    /// A full 40-hex-digit commit id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-f]{40}$"))]
    pub commit: Option<String>,
}

/// Which revision a [`GitRef`] names, once checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Revision {
    /// A branch name.
    Branch(String),
    /// A tag name.
    Tag(String),
    /// A commit id (40 lowercase hex digits).
    Commit(String),
}

/// A `GitSync` spec that cannot be acted on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpecError {
    /// `spec.ref` sets more than one of branch, tag and commit.
    #[error("spec.ref: set exactly one of branch, tag or commit")]
    AmbiguousRef,
    /// `spec.ref.commit` is not a full commit id.
    #[error("spec.ref.commit: a commit is 40 lowercase hex digits")]
    BadCommit,
    /// A ref name Git would refuse.
    #[error("spec.ref.{field}: not a valid Git ref name")]
    BadRefName {
        /// `branch` or `tag`.
        field: &'static str,
    },
}

impl SpecError {
    /// A short stable label, for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            SpecError::AmbiguousRef => "ambiguous_ref",
            SpecError::BadCommit => "bad_commit",
            SpecError::BadRefName { .. } => "bad_ref_name",
        }
    }
}

impl GitSyncSpec {
    /// Refuses references to Secrets of a namespace other than the GitSync's own: a tenant
    /// must not read, through the controller, what its own RBAC keeps from it.
    pub fn check_secret_namespaces(&self, own_namespace: &str) -> Result<(), String> {
        let mut refs: Vec<(&str, Option<&str>)> = Vec::new();
        if let Some(r) = &self.secret_ref {
            refs.push(("spec.secretRef", r.namespace.as_deref()));
        }
        if let Some(w) = &self.webhook {
            refs.push(("spec.webhook.secretRef", w.secret_ref.namespace.as_deref()));
        }
        if let Some(v) = &self.verify {
            refs.push(("spec.verify.secretRef", v.secret_ref.namespace.as_deref()));
        }
        if let Some(v) = &self.vault {
            if let Some(t) = &v.token {
                refs.push((
                    "spec.vault.token.secretRef",
                    t.secret_ref.namespace.as_deref(),
                ));
            }
            if let Some(a) = &v.app_role {
                refs.push((
                    "spec.vault.appRole.secretRef",
                    a.secret_ref.namespace.as_deref(),
                ));
            }
        }
        for (field, namespace) in refs {
            match namespace {
                Some(ns) if !ns.is_empty() && ns != own_namespace => {
                    return Err(format!(
                        "{field}.namespace: {ns:?} is another namespace; a GitSync may only use Secrets of its own namespace ({own_namespace:?}): copy the Secret there"
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The revision to follow: `spec.ref`, or the branch `main` when it is absent or empty.
    pub fn revision(&self) -> Result<Revision, SpecError> {
        let r = self.git_ref.clone().unwrap_or_default();
        match (r.branch, r.tag, r.commit) {
            (None, None, None) => Ok(Revision::Branch("main".to_owned())),
            (Some(b), None, None) => check_ref_name(&b, "branch").map(|()| Revision::Branch(b)),
            (None, Some(t), None) => check_ref_name(&t, "tag").map(|()| Revision::Tag(t)),
            (None, None, Some(c)) => {
                if c.len() == 40 && c.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    Ok(Revision::Commit(c))
                } else {
                    Err(SpecError::BadCommit)
                }
            }
            _ => Err(SpecError::AmbiguousRef),
        }
    }
}

/// The rules of `git check-ref-format` that matter for names typed into a spec.
fn check_ref_name(name: &str, field: &'static str) -> Result<(), SpecError> {
    let bad = name.is_empty()
        || name.len() > 255
        || name.starts_with('/')
        || name.ends_with('/')
        || name.ends_with('.')
        || name.ends_with(".lock")
        || name.contains("..")
        || name.contains("//")
        || name.contains("@{")
        || name.starts_with('-')
        || name
            .bytes()
            .any(|b| b < 0x20 || b == 0x7f || b" ~^:?*[\\".contains(&b));
    if bad {
        Err(SpecError::BadRefName { field })
    } else {
        Ok(())
    }
}

/// What the controller reports. Written only through the status subresource.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitSyncStatus {
    /// `Ready`, `Reconciling` and `Stalled`, in the kstatus style.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The last revision tried, as `<branch>@sha1:<40 hex>` (Flux's form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_revision: Option<String>,
    /// The last revision applied in full, as `<branch>@sha1:<40 hex>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_revision: Option<String>,
    /// Every object the last applied revision holds, for pruning: listed here, or (for a
    /// large revision) kept in ConfigMaps that this names and vouches for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<InventoryStatus>,
    /// Each SealedSecret of the last applied revision and the keys that actually opened it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sealed_secrets: Vec<SealedSecretUsage>,
    /// The Secrets of the last applied revision whose values were read from Vault, as
    /// `namespace/name`: what a view marks as Vault-backed (never the values or paths).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vault_secrets: Vec<String>,
    /// How many manual changes self-heal has undone since the GitSync was created.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub drift_corrections: u64,
    /// When self-heal last undid one (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drift_correction: Option<String>,
    /// The value of the `sealsync.dev/requestedAt` annotation the last reconcile handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
    /// The path of the push webhook (`/hook/<hex>`), once its Secret has been read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_path: Option<String>,
    /// The objects that were not healthy when the last revision was waited for (at most 50).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health: Vec<crate::UnhealthyObject>,
    /// The last revision that was applied and found healthy (or applied, without a wait).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_healthy_revision: Option<String>,
    /// With `onHealthFailure: rollback`, the revision that did not become healthy: the last
    /// healthy one is applied instead until a new commit, a new spec or `sealsync sync`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_revision: Option<String>,
    /// With `spec.verify`, the last revision whose signatures were verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_revision: Option<String>,
    /// Who signed `verifiedRevision`: the commit, the tag, or both.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verified_signers: Vec<crate::RevisionSigner>,
    /// Who signed `lastAppliedRevision`, when it was verified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applied_signers: Vec<crate::RevisionSigner>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Which keys opened one SealedSecret: what a security team reads to see whether an old key
/// is still in use before it is retired.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretUsage {
    /// The file in the repository, relative to the root.
    pub file: String,
    /// The Secret it became, as `namespace/name`.
    pub secret: String,
    /// The key ids that actually opened it (authenticated by opening, unlike the ids the
    /// file lists).
    pub key_ids: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(git_ref: Option<GitRef>) -> GitSyncSpec {
        GitSyncSpec {
            url: "git://example/repo".to_owned(),
            secret_ref: None,
            git_ref,
            path: None,
            render: None,
            helm: None,
            post_build: None,
            interval: "1m".to_owned(),
            timeout: None,
            prune: true,
            self_heal: true,
            suspend: false,
            target_namespace: None,
            force: false,
            allow_plaintext_secrets: false,
            webhook: None,
            restart_on_secret_change: false,
            service_account_name: None,
            vault: None,
            wait: false,
            health_checks: Vec::new(),
            health_check_exprs: Vec::new(),
            depends_on: Vec::new(),
            on_health_failure: Default::default(),
            verify: None,
        }
    }

    #[test]
    fn exactly_one_ref() {
        assert_eq!(spec(None).revision(), Ok(Revision::Branch("main".into())));
        let both = GitRef {
            branch: Some("main".into()),
            tag: Some("v1".into()),
            commit: None,
        };
        assert_eq!(spec(Some(both)).revision(), Err(SpecError::AmbiguousRef));
        let short = GitRef {
            commit: Some("abc".into()),
            ..GitRef::default()
        };
        assert_eq!(spec(Some(short)).revision(), Err(SpecError::BadCommit));
        let bad = GitRef {
            branch: Some("a..b".into()),
            ..GitRef::default()
        };
        assert_eq!(
            spec(Some(bad)).revision(),
            Err(SpecError::BadRefName { field: "branch" })
        );
    }

    #[test]
    fn defaults_follow_flux() {
        let gs: GitSyncSpec =
            serde_json::from_str(r#"{"url":"git://h/r","interval":"5m"}"#).expect("spec");
        assert!(gs.prune && gs.self_heal && !gs.suspend && !gs.force);
        assert!(!gs.allow_plaintext_secrets);
    }
}
