//! `/gitsyncs/<namespace>/<name>`: one GitSync, its objects as a tree (namespace → kind →
//! object), its conditions and Events, and the buttons for `sync`, `suspend` and `resume`.

use std::collections::{BTreeMap, HashMap, HashSet};

use kube::ResourceExt;
use sealsync_core::health::Health;
use sealsync_core::GitSync;

use super::cache::Access;
use super::html::{self, badge, esc, Parts, Tone};
use super::objects_view::ObjectsView;
use super::page_gitsyncs::{last_sync, ready_badge, ready_of, source};
use super::state::State;

/// The most objects one page lists; the rest are counted.
const MAX_SHOWN: usize = 20_000;
/// The most Events listed.
const MAX_EVENTS: usize = 30;

/// The content of a GitSync's page.
pub fn render(state: &State, gs: &GitSync, view: &ObjectsView) -> Parts {
    let namespace = gs.namespace().unwrap_or_default();
    let name = gs.name_any();
    let status = gs.status.clone().unwrap_or_default();
    let (_, reason, message) = ready_of(gs);
    let events = state.events_of(&namespace, &name);
    let events_access = state.events_in(&namespace).read(|l| l.access.clone());
    let mut out = format!(
        "<h1>GitSync <span class=\"ns\">{}/</span>{}</h1>\n",
        esc(&namespace),
        esc(&name)
    );
    out.push_str(&format!(
        "<dl class=\"summary\">\n\
         <dt>Ready</dt><dd class=\"ready\">{ready} <span class=\"reason\">{reason}</span></dd>\n\
         <dt>Message</dt><dd class=\"message\">{message}</dd>\n\
         <dt>Source</dt><dd>{source}</dd>\n\
         <dt>Applied revision</dt><dd class=\"applied\">{applied}</dd>\n\
         <dt>Attempted revision</dt><dd class=\"attempted\">{attempted}</dd>\n\
         <dt>Last sync</dt><dd>{last}</dd>\n\
         <dt>Drift corrections</dt><dd class=\"drift\">{drift}</dd>\n\
         <dt>Self-heal</dt><dd>{heal}</dd>\n</dl>\n",
        ready = ready_badge(gs),
        reason = esc(&reason),
        message = esc(&message),
        source = source(gs),
        applied = html::revision(&gs.spec.url, status.last_applied_revision.as_deref()),
        attempted = html::revision(&gs.spec.url, status.last_attempted_revision.as_deref()),
        last = html::time(last_sync(gs, events.first().map(|e| e.last.as_str())).as_deref()),
        drift = match &status.last_drift_correction {
            Some(at) if status.drift_corrections > 0 => format!(
                "{} <span class=\"quiet\">(last {})</span>",
                status.drift_corrections,
                html::time(Some(at))
            ),
            _ => status.drift_corrections.to_string(),
        },
        heal = if gs.spec.self_heal { "on" } else { "off" },
    ));
    let summary = out;
    let mut out = String::from(
        "<section aria-labelledby=\"events\">\n<h2 id=\"events\">Recent events</h2>\n",
    );
    match events_access {
        Access::Forbidden(why) => {
            out.push_str(&html::notice("forbidden", &format!("forbidden: {why}")));
        }
        Access::Failed(why) => out.push_str(&html::notice(
            "error",
            &format!("Events could not be read: {why}"),
        )),
        _ if events.is_empty() => out.push_str(&html::notice("empty", "No recent events.")),
        _ => {
            out.push_str(
                "<table class=\"events\"><thead><tr><th scope=\"col\">Last seen</th>\
                 <th scope=\"col\">Type</th><th scope=\"col\">Reason</th>\
                 <th scope=\"col\">Message</th><th scope=\"col\">Count</th></tr></thead><tbody>\n",
            );
            for event in events.iter().take(MAX_EVENTS) {
                out.push_str(&format!(
                    "<tr data-reason=\"{reason}\"><td>{time}</td><td>{kind}</td><td>{reason}</td>\
                     <td class=\"message\">{message}</td><td>{count}</td></tr>\n",
                    time = html::time(Some(&event.last)),
                    kind = if event.warning {
                        badge("Warning", Tone::Bad)
                    } else {
                        badge("Normal", Tone::Quiet)
                    },
                    reason = esc(&event.reason),
                    message = esc(&event.message),
                    count = event.count,
                ));
            }
            out.push_str("</tbody></table>\n");
        }
    }
    out.push_str("</section>\n");
    Parts(vec![
        ("summary", summary),
        ("actions", actions(state, gs)),
        ("objects", objects(gs, view)),
        ("conditions", conditions(gs)),
        ("sealed", sealed_files(gs)),
        ("events", out),
    ])
}

/// The forms for the actions; the API server decides whether the user may take them.
fn actions(state: &State, gs: &GitSync) -> String {
    let base = html::gitsync_path(&gs.namespace().unwrap_or_default(), &gs.name_any());
    let form = |action: &str, label: &str, disabled: bool| {
        format!(
            "<form method=\"post\" action=\"{base}/{action}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button type=\"submit\" name=\"action\" value=\"{action}\"{disabled}>{label}</button></form>",
            base = esc(&base),
            csrf = esc(&state.csrf),
            disabled = if disabled { " disabled" } else { "" },
        )
    };
    format!(
        "<section aria-labelledby=\"actions\" class=\"actions\">\n<h2 id=\"actions\">Actions</h2>\n{}{}\n\
         <p class=\"hint\">Each action is sent with your own credentials; the API server decides.</p>\n</section>\n",
        form("sync", "Sync now", gs.spec.suspend),
        if gs.spec.suspend {
            form("resume", "Resume", false)
        } else {
            form("suspend", "Suspend", false)
        }
    )
}

/// The objects as a tree: namespace → kind → object, each with its state and marks.
fn objects(gs: &GitSync, view: &ObjectsView) -> String {
    let mut out =
        String::from("<section aria-labelledby=\"objects\">\n<h2 id=\"objects\">Objects</h2>\n");
    let entries = match &view.entries {
        Err(access) => {
            let class = match access {
                Access::Forbidden(_) => "forbidden",
                _ => "error",
            };
            out.push_str(&html::notice(
                class,
                &format!(
                    "The objects cannot be shown: {}",
                    access.reason().unwrap_or("unknown")
                ),
            ));
            out.push_str("</section>\n");
            return out;
        }
        Ok(entries) if entries.is_empty() => {
            out.push_str(&html::notice("empty", "No objects applied yet."));
            out.push_str("</section>\n");
            return out;
        }
        Ok(entries) => entries.len(),
    };
    let status = gs.status.clone().unwrap_or_default();
    let sealed: HashSet<&str> = status
        .sealed_secrets
        .iter()
        .map(|s| s.secret.as_str())
        .collect();
    let from_vault: HashSet<&str> = status.vault_secrets.iter().map(String::as_str).collect();
    let verdicts: HashMap<(Option<&str>, &str, &str), &sealsync_core::UnhealthyObject> = status
        .health
        .iter()
        .map(|u| {
            (
                (u.namespace.as_deref(), u.kind.as_str(), u.name.as_str()),
                u,
            )
        })
        .collect();
    // namespace → kind → rows
    let mut tree: BTreeMap<Option<&str>, BTreeMap<&str, Vec<String>>> = BTreeMap::new();
    let mut shown = 0usize;
    for (group, (names, group_state)) in &view.groups {
        let group_state = match group_state.read() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let ns = group.namespace.as_deref();
        if shown >= MAX_SHOWN {
            break;
        }
        let rows = tree.entry(ns).or_default().entry(&group.kind).or_default();
        for object in names {
            if shown >= MAX_SHOWN {
                break;
            }
            shown += 1;
            let state = match &group_state.access {
                Access::Loading => badge("Loading", Tone::Quiet),
                Access::Forbidden(_) => badge("Unknown: forbidden", Tone::Quiet),
                Access::Failed(why) => {
                    format!("{} {}", badge("Unknown", Tone::Quiet), esc(why))
                }
                Access::Ready => match group_state.health.get(object) {
                    Some(Health::Current) => badge("Current", Tone::Good),
                    Some(Health::InProgress(why)) => {
                        format!("{} {}", badge("InProgress", Tone::Busy), esc(why))
                    }
                    Some(Health::Failed(why)) => {
                        format!("{} {}", badge("Failed", Tone::Bad), esc(why))
                    }
                    Some(Health::Terminating) => badge("Terminating", Tone::Busy),
                    Some(_) => badge("Unknown", Tone::Quiet),
                    None => format!(
                        "{} not in the cluster (or no longer labelled as this GitSync's)",
                        badge("Missing", Tone::Bad)
                    ),
                },
            };
            let mut marks = String::new();
            if group.group.is_empty() && group.kind == "Secret" {
                let id = format!("{}/{object}", ns.unwrap_or_default());
                if sealed.contains(id.as_str()) {
                    marks.push_str(
                        " <span class=\"mark sealed\" title=\"Its values were opened from a sealed or SOPS file\">sealed</span>",
                    );
                }
                if from_vault.contains(id.as_str()) {
                    marks.push_str(
                        " <span class=\"mark vault\" title=\"Its values were read from Vault\">Vault</span>",
                    );
                }
            }
            if let Some(verdict) = verdicts.get(&(ns, group.kind.as_str(), object.as_str())) {
                marks.push_str(&format!(
                    " <span class=\"verdict\">at the last wait: {} {}</span>",
                    esc(&verdict.status),
                    esc(&verdict.message)
                ));
            }
            let api = if group.group.is_empty() {
                group.version.clone()
            } else {
                format!("{}/{}", group.group, group.version)
            };
            rows.push(format!(
                "<li class=\"object\" data-object=\"{kind}/{name}\"><span class=\"name\" title=\"{api}\">{name}</span> {state}{marks}</li>\n",
                kind = esc(&group.kind),
                name = esc(object),
                api = esc(&api),
            ));
        }
    }
    out.push_str(&format!(
        "<p class=\"count\">{entries} object(s) in the applied revision.</p>\n"
    ));
    if shown >= MAX_SHOWN && entries > shown {
        out.push_str(&html::notice(
            "partial",
            &format!("Only the first {shown} are listed."),
        ));
    }
    out.push_str("<ul class=\"tree\">\n");
    for (ns, kinds) in &tree {
        let count: usize = kinds.values().map(Vec::len).sum();
        let label = match ns {
            Some(ns) => format!("namespace {ns}"),
            None => "cluster-scoped".to_owned(),
        };
        out.push_str(&format!(
            "<li><details open data-key=\"{key}\"><summary>{label} <span class=\"count\">({count})</span></summary>\n<ul>\n",
            key = esc(&format!("ns:{}", ns.unwrap_or(""))),
            label = esc(&label),
        ));
        for (kind, rows) in kinds {
            out.push_str(&format!(
                "<li><details open data-key=\"{key}\"><summary>{kind} <span class=\"count\">({n})</span></summary>\n<ul>\n",
                key = esc(&format!("kind:{}/{kind}", ns.unwrap_or(""))),
                kind = esc(kind),
                n = rows.len(),
            ));
            for row in rows {
                out.push_str(row);
            }
            out.push_str("</ul></details></li>\n");
        }
        out.push_str("</ul></details></li>\n");
    }
    out.push_str("</ul>\n</section>\n");
    out
}

fn conditions(gs: &GitSync) -> String {
    let mut out = String::from(
        "<section aria-labelledby=\"conditions\">\n<h2 id=\"conditions\">Conditions</h2>\n",
    );
    let conditions = gs
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    if conditions.is_empty() {
        out.push_str(&html::notice("empty", "Not reconciled yet."));
    } else {
        out.push_str(
            "<table class=\"conditions\"><thead><tr><th scope=\"col\">Type</th>\
             <th scope=\"col\">Status</th><th scope=\"col\">Reason</th>\
             <th scope=\"col\">Message</th><th scope=\"col\">Since</th></tr></thead><tbody>\n",
        );
        for c in conditions {
            out.push_str(&format!(
                "<tr data-condition=\"{t}\"><td>{t}</td><td>{s}</td><td>{r}</td><td class=\"message\">{m}</td><td>{since}</td></tr>\n",
                t = esc(&c.type_),
                s = esc(&c.status),
                r = esc(&c.reason),
                m = esc(&c.message),
                since = html::time(Some(&super::timestamp(&c.last_transition_time.0))),
            ));
        }
        out.push_str("</tbody></table>\n");
    }
    out.push_str("</section>\n");
    out
}

/// The sealed files of the applied revision and the keys that opened each.
fn sealed_files(gs: &GitSync) -> String {
    let usage = gs
        .status
        .as_ref()
        .map(|s| s.sealed_secrets.as_slice())
        .unwrap_or_default();
    if usage.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<section aria-labelledby=\"sealed\">\n<h2 id=\"sealed\">Sealed files</h2>\n\
         <table class=\"sealed\"><thead><tr><th scope=\"col\">File</th><th scope=\"col\">Secret</th>\
         <th scope=\"col\">Opened with key</th></tr></thead><tbody>\n",
    );
    for u in usage {
        out.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td><code>{}</code></td></tr>\n",
            esc(&u.file),
            esc(&u.secret),
            esc(&u.key_ids.join(", "))
        ));
    }
    out.push_str("</tbody></table>\n</section>\n");
    out
}
