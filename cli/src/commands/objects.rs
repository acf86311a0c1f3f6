//! The objects of one GitSync and the health of each, read from the cluster as `sealsync
//! status NAME` shows them: the inventory the status records, then one list per kind and
//! namespace, by the owner labels. Kinds that are healthy once they exist (Secrets among
//! them) are listed by metadata only: no value is read to judge them. The built-in rules
//! judge; `spec.healthCheckExprs` are the controller's, whose verdict `status.health` shows.

use std::collections::BTreeMap;

use kube::api::{Api, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use kube::{Client, ResourceExt};
use sealsync_core::health::{health_of, healthy_once_it_exists, Health};
use sealsync_core::{GitSync, OWNER_NAMESPACE_LABEL, OWNER_NAME_LABEL};

use crate::cluster;
use crate::error::CliResult;
use crate::output;

/// The table of every object of `gs` with its health, or a line saying why there is none.
pub async fn health_table(client: &Client, gs: &GitSync) -> CliResult<String> {
    let namespace = gs.namespace().unwrap_or_default();
    let name = gs.name_any();
    let Some(recorded) = gs.status.as_ref().and_then(|s| s.inventory.as_ref()) else {
        return Ok(format!("\n{namespace}/{name}: no objects applied yet\n"));
    };
    let inventory = match sealsync_core::inventory_read::read(
        client,
        &namespace,
        &gs.uid().unwrap_or_default(),
        recorded,
    )
    .await
    {
        Ok(inventory) => inventory,
        Err(e) => {
            return Ok(format!(
                "\n{namespace}/{name}: objects not shown: {}\n",
                sealsync_core::Chain(&e)
            ))
        }
    };
    // (group, version, kind, namespace) → names.
    let mut groups: BTreeMap<(String, String, String, Option<String>), Vec<String>> =
        BTreeMap::new();
    for entry in &inventory.entries {
        let Some((ns, object, group, kind)) = entry.parts() else {
            continue;
        };
        groups
            .entry((
                group.to_owned(),
                entry.v.clone(),
                kind.to_owned(),
                ns.map(str::to_owned),
            ))
            .or_default()
            .push(object.to_owned());
    }
    let selector = format!("{OWNER_NAME_LABEL}={name},{OWNER_NAMESPACE_LABEL}={namespace}");
    let mut rows = vec![["KIND", "OBJECT", "HEALTH", "MESSAGE"]
        .map(str::to_owned)
        .to_vec()];
    for ((group, version, kind, ns), names) in groups {
        let gvk = GroupVersionKind::gvk(&group, &version, &kind);
        let shown = |object: &str| match &ns {
            Some(ns) => format!("{ns}/{object}"),
            None => object.to_owned(),
        };
        let healths = match kube::discovery::pinned_kind(client, &gvk).await {
            Ok((resource, _)) => {
                let api: Api<DynamicObject> = match &ns {
                    Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
                    None => Api::all_with(client.clone(), &resource),
                };
                let params = ListParams::default().labels(&selector).limit(500);
                match list_health(&api, params, (&group, &version, &kind)).await {
                    Ok(healths) => healths,
                    // What the user may not list is said per object, the rest is shown.
                    Err(kube::Error::Api(status)) if status.code == 403 => {
                        for object in &names {
                            rows.push(vec![
                                kind.clone(),
                                shown(object),
                                "Unknown".to_owned(),
                                format!("cannot list {kind} objects here: forbidden"),
                            ]);
                        }
                        continue;
                    }
                    Err(e) => {
                        return Err(cluster::api_error(&format!("listing {kind} objects"), e))
                    }
                }
            }
            Err(_) => BTreeMap::new(),
        };
        for object in names {
            let (status, message) = match healths.get(&object) {
                Some(Health::Current) => ("Current".to_owned(), String::new()),
                Some(Health::InProgress(why)) => ("InProgress".to_owned(), why.clone()),
                Some(Health::Failed(why)) => ("Failed".to_owned(), why.clone()),
                Some(Health::Terminating) => ("Terminating".to_owned(), String::new()),
                Some(_) => ("Unknown".to_owned(), String::new()),
                None => (
                    "NotFound".to_owned(),
                    "not in the cluster (or no longer labelled as this GitSync's)".to_owned(),
                ),
            };
            rows.push(vec![kind.clone(), shown(&object), status, message]);
        }
    }
    Ok(format!(
        "\n{namespace}/{name}: {} object(s)\n{}",
        rows.len() - 1,
        output::table(&rows)
    ))
}

/// The health of each object `api` lists, by name, a page of 500 at a time.
async fn list_health(
    api: &Api<DynamicObject>,
    mut params: ListParams,
    (group, version, kind): (&str, &str, &str),
) -> Result<BTreeMap<String, Health>, kube::Error> {
    let mut healths = BTreeMap::new();
    loop {
        let next = if healthy_once_it_exists(group, kind) {
            let page = api.list_metadata(&params).await?;
            for meta in page.items {
                let health = if meta.metadata.deletion_timestamp.is_some() {
                    Health::Terminating
                } else {
                    Health::Current
                };
                healths.insert(meta.name_any(), health);
            }
            page.metadata.continue_
        } else {
            let page = api.list(&params).await?;
            judge_page(page.items, (group, version, kind), &mut healths);
            page.metadata.continue_
        };
        match next.filter(|token| !token.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(healths),
        }
    }
}

/// The health of each object of a page, by the built-in rules.
fn judge_page(
    objects: Vec<DynamicObject>,
    (group, version, kind): (&str, &str, &str),
    healths: &mut BTreeMap<String, Health>,
) {
    for object in objects {
        // List items may lack apiVersion and kind; the rules go by them.
        let mut json = serde_json::to_value(&object).unwrap_or_default();
        json["apiVersion"] = serde_json::json!(if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        });
        json["kind"] = serde_json::json!(kind);
        healths.insert(object.name_any(), health_of(&json));
    }
}
