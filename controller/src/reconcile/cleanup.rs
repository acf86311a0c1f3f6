//! A deleted GitSync: its objects pruned when `spec.prune` is on, its repository, Vault
//! session, watches and webhook forgotten; and the report of objects prune left in place.

use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::ResourceExt;
use sealsync_core::GitSync;

use super::{applied_inventory, forget_vault, Shared};
use crate::status;
use crate::sync::apply::Resolver;
use crate::sync::error::Error;
use crate::sync::prune;

/// A warning Event for the objects prune left in place, each with the reason.
pub(super) async fn report_orphaned(ctx: &Shared, gs: &GitSync, orphaned: &[String]) {
    if orphaned.is_empty() {
        return;
    }
    for what in orphaned {
        tracing::warn!(object = %what, "left in place by prune");
    }
    status::event(
        &ctx.recorder,
        gs,
        true,
        "PruneSkipped",
        format!(
            "{} object(s) left in place and dropped from the inventory: {}",
            orphaned.len(),
            orphaned.join("; ")
        ),
    )
    .await;
}

/// The bare repository and the inventory ConfigMaps of a deleted GitSync go with it.
async fn remove_stored(gs: &GitSync, ctx: &Shared) {
    if let Some(uid) = gs.uid() {
        let _ = std::fs::remove_dir_all(ctx.settings.data_dir.join(uid));
    }
    ctx.inventories.remove(gs).await;
}

/// Deletes every object of a deleted GitSync's inventory when `spec.prune` is on.
pub(super) async fn cleanup(gs: Arc<GitSync>, ctx: &Shared) -> Result<Action, Error> {
    // Deleting the inventory below must not look like drift.
    ctx.healer
        .forget(&(gs.namespace().unwrap_or_default(), gs.name_any()));
    forget_vault(ctx, &(gs.namespace().unwrap_or_default(), gs.name_any()));
    ctx.engine
        .health
        .forget(&(gs.namespace().unwrap_or_default(), gs.name_any()));
    ctx.webhooks
        .unregister(&gs.namespace().unwrap_or_default(), &gs.name_any());
    ctx.fetch_gate
        .forget(&(gs.namespace().unwrap_or_default(), gs.name_any()));
    ctx.files
        .forget(&(gs.namespace().unwrap_or_default(), gs.name_any()));
    ctx.status
        .forget(&(gs.namespace().unwrap_or_default(), gs.name_any()));
    if !gs.spec.prune {
        remove_stored(&gs, ctx).await;
        return Ok(Action::await_change());
    }
    let namespace = gs.namespace().unwrap_or_default();
    let name = gs.name_any();
    let entries = applied_inventory(
        &gs,
        ctx,
        "the deleted GitSync's objects are left in place: delete them by hand",
    )
    .await?
    .entries
    .clone();
    let client = match ctx
        .settings
        .actor(&namespace, gs.spec.service_account_name.as_deref())
        .and_then(|actor| {
            ctx.engine
                .clients
                .client_as(&actor)
                .map_err(|e| e.to_string())
        }) {
        Ok(client) => client,
        Err(e) => {
            // Nothing was ever applied as an invalid service account; pruning as the
            // controller instead could delete what the GitSync's account may not.
            tracing::warn!(error = %e, "not pruning the deleted GitSync's objects");
            remove_stored(&gs, ctx).await;
            return Ok(Action::await_change());
        }
    };
    let mut resolver = Resolver::default();
    let scope = prune::PruneScope {
        owner_namespace: &namespace,
        owner_name: &name,
        controller_namespace: &ctx.settings.namespace,
    };
    let result = prune::prune(&client, &mut resolver, entries, scope).await;
    report_orphaned(ctx, &gs, &result.orphaned).await;
    match result.error {
        Some(e) => Err(Error::Prune(e)),
        None => {
            remove_stored(&gs, ctx).await;
            Ok(Action::await_change())
        }
    }
}
