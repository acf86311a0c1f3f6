//! For in-process tests: an engine on the embedded test API server, and the objects a test
//! revision is made of.

use std::sync::Arc;
use std::time::Duration;

use sealsync_core::render::Manifest;
use serde_json::{json, Value as Json};
use tokio::sync::RwLock;

use super::apply::Resolver;
use super::engine::{Engine, Pass, SyncFailure, Synced, Target};
use super::object::SyncObject;
use super::resolve::Login;
use super::restarts::ChecksumKey;
use crate::keys::KeyRing;
use crate::support::metrics::Metrics;
use crate::support::testing::TestApi;
use crate::support::{Actor, Clients, Settings, SyncKey, TrustedNamespaces};
use crate::vault::{Defaults, Vault};

/// An engine that acts as the controller (every namespace trusted), with no keys and no Vault.
pub(crate) fn test_engine(api: &TestApi) -> Engine {
    let settings = Arc::new(Settings {
        namespace: "sealsync-system".to_owned(),
        data_dir: api.dir.path().to_owned(),
        apply_concurrency: 4,
        renderer: sealsync_core::renderer::Renderer::new(
            sealsync_core::renderer::Renderer::beside_current_exe(),
            api.dir.path().join("render"),
            sealsync_core::renderer::RendererLimits::default(),
        ),
        render_slots: Arc::new(tokio::sync::Semaphore::new(1)),
        ready_timeout: Duration::from_secs(20),
        recovery_recipients_file: None,
        peer_recipients_file: None,
        key_rotation_period: None,
        retire_unused_after: None,
        default_service_account: None,
        trusted_namespaces: TrustedNamespaces::All,
        require_verified_sources: false,
    });
    Engine {
        clients: Clients::new(api.client.clone(), api.config.clone()),
        keys: Arc::new(RwLock::new(KeyRing::default())),
        vault: Arc::new(Vault::new(Defaults::default())),
        checksum_key: Arc::new(ChecksumKey::from_bytes(&[7; 32])),
        metrics: Arc::new(Metrics::default()),
        settings,
        health: crate::health::HealthWatches::new(api.client.clone(), Arc::new(Metrics::default())),
    }
}

/// A target in `apps`, with self-heal on and plaintext Secrets allowed.
pub(crate) fn test_target<'a>(key: &'a SyncKey, actor: &'a Actor) -> Target<'a> {
    Target {
        key,
        default_namespace: "apps",
        actor,
        force: false,
        allow_plaintext: true,
        self_heal: true,
        progress: None,
    }
}

/// A whole revision, as the full reconcile runs it, with no Vault.
pub(crate) fn revision_pass() -> Pass<'static> {
    Pass::Revision {
        login: Login::Spec {
            vault: None,
            service_account: None,
        },
        restart_all: false,
        keep_manifests: true,
        carried: None,
        deadline: tokio::time::Instant::now() + Duration::from_secs(60),
        run_hooks: true,
        custom: &[],
    }
}

/// An object as rendered from `file`.
pub(crate) fn rendered(file: &str, object: Json) -> SyncObject {
    SyncObject::rendered(
        Manifest {
            file: file.to_owned(),
            document: "document 1".to_owned(),
            object,
        },
        true,
    )
}

pub(crate) fn namespace(name: &str) -> Json {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

pub(crate) fn configmap(namespace: &str, name: &str, data: Json) -> Json {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace}, "data": data})
}

/// Runs `objects` as a whole revision in `apps`, as the controller itself, with no CRDs of
/// the revision to consult.
pub(crate) async fn run_revision(
    engine: &Engine,
    key: &SyncKey,
    objects: Vec<SyncObject>,
) -> Result<Synced, SyncFailure> {
    engine
        .run(
            &test_target(key, &Actor::Controller),
            revision_pass(),
            objects,
            &mut Resolver::default(),
            &[],
        )
        .await
}
