//! `/`: every GitSync the user may see, one row each.

use std::collections::HashMap;

use sealsync_core::GitSync;

use super::cache::Access;
use super::html::{self, badge, esc, Parts, Tone};
use super::state::{Scope, State};

/// `(status, reason, message)` of a GitSync's Ready condition.
pub fn ready_of(gs: &GitSync) -> (String, String, String) {
    gs.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        .unwrap_or_else(|| {
            (
                "Unknown".to_owned(),
                "Pending".to_owned(),
                "waiting to be reconciled".to_owned(),
            )
        })
}

/// The Ready badge: ready, failed, reconciling or suspended.
pub fn ready_badge(gs: &GitSync) -> String {
    if gs.spec.suspend {
        return badge("Suspended", Tone::Quiet);
    }
    let reconciling = gs.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Reconciling" && c.status == "True")
    });
    match ready_of(gs).0.as_str() {
        "True" => badge("Ready", Tone::Good),
        "False" => badge("Failed", Tone::Bad),
        _ if reconciling => badge("Reconciling", Tone::Busy),
        _ => badge("Unknown", Tone::Busy),
    }
}

/// The source as `url` (credentials hidden), the ref and the path.
pub fn source(gs: &GitSync) -> String {
    let r = gs.spec.git_ref.clone().unwrap_or_default();
    let reference = match (r.branch, r.tag, r.commit) {
        (Some(b), _, _) => format!("branch {b}"),
        (_, Some(t), _) => format!("tag {t}"),
        (_, _, Some(c)) => format!("commit {}", c.get(..12).unwrap_or(&c)),
        _ => "branch main".to_owned(),
    };
    let path = gs
        .spec
        .path
        .as_deref()
        .filter(|p| !p.is_empty() && *p != ".")
        .map(|p| format!(" · <span class=\"path\">{}</span>", esc(p)))
        .unwrap_or_default();
    format!(
        "<span class=\"url\">{}</span><br><span class=\"ref\">{}</span>{path}",
        esc(&html::display_url(&gs.spec.url)),
        esc(&reference)
    )
}

/// When the GitSync was last reconciled: the newest of its Events and its conditions.
pub fn last_sync(gs: &GitSync, newest_event: Option<&str>) -> Option<String> {
    let condition = gs.status.as_ref().and_then(|s| {
        s.conditions
            .iter()
            .map(|c| super::timestamp(&c.last_transition_time.0))
            .max()
    });
    match (condition, newest_event) {
        (Some(c), Some(e)) => Some(if e > c.as_str() { e.to_owned() } else { c }),
        (c, e) => c.or_else(|| e.map(str::to_owned)),
    }
}

/// The content of `/`.
pub fn render(state: &State) -> Parts {
    let mut out = String::from("<h1>GitSyncs</h1>\n");
    if let Scope::Namespace { name, why } = &state.scope {
        match why {
            Some(why) => out.push_str(&html::notice(
                "forbidden",
                &format!(
                    "Listing GitSyncs in every namespace is forbidden ({why}); showing namespace {name} only."
                ),
            )),
            None => out.push_str(&html::notice("scope", &format!("Namespace {name} only."))),
        }
    }
    // Per GitSync: the newest Event.
    let mut newest: HashMap<(String, String), String> = HashMap::new();
    let events_access = state.events.read(|listing| {
        for row in listing.items.values() {
            let last = newest.entry(row.gitsync.clone()).or_default();
            if row.last > *last {
                last.clone_from(&row.last);
            }
        }
        listing.access.clone()
    });
    state.gitsyncs.read(|listing| {
        match &listing.access {
            Access::Loading => out.push_str(&html::notice("loading", "Loading GitSyncs…")),
            Access::Forbidden(why) => {
                out.push_str(&html::notice(
                    "forbidden",
                    &format!("forbidden: you may not list GitSyncs here ({why})."),
                ));
                return;
            }
            Access::Failed(why) => out.push_str(&html::notice(
                "error",
                &format!("GitSyncs could not be read: {why}. What is shown may be stale."),
            )),
            Access::Ready => {}
        }
        if listing.items.is_empty() && listing.access == Access::Ready {
            out.push_str(&html::notice("empty", "No GitSyncs found."));
            return;
        }
        if let Access::Forbidden(_) = events_access {
            out.push_str(&html::notice(
                "forbidden",
                "Events are forbidden to you: last sync times may be older than shown.",
            ));
        }
        out.push_str(
            "<table class=\"gitsyncs\">\n<caption class=\"visually-hidden\">GitSyncs</caption>\n\
             <thead><tr><th scope=\"col\">Namespace</th><th scope=\"col\">Name</th>\
             <th scope=\"col\">Ready</th><th scope=\"col\">Reason</th><th scope=\"col\">Source</th>\
             <th scope=\"col\">Applied</th><th scope=\"col\">Attempted</th>\
             <th scope=\"col\">Last sync</th><th scope=\"col\">Drift corrections</th>\
             <th scope=\"col\">Health</th></tr></thead>\n<tbody>\n",
        );
        for ((namespace, name), gs) in &listing.items {
            let key = (namespace.clone(), name.clone());
            let (ready, reason, message) = ready_of(gs);
            let status = gs.status.clone().unwrap_or_default();
            let attempted = match (
                &status.last_attempted_revision,
                &status.last_applied_revision,
            ) {
                (Some(a), Some(b)) if a == b => "<span class=\"quiet\">same</span>".to_owned(),
                (a, _) => html::revision(&gs.spec.url, a.as_deref()),
            };
            let health = if !status.health.is_empty() {
                badge(&format!("{} not healthy", status.health.len()), Tone::Bad)
            } else if gs.spec.wait || !gs.spec.health_checks.is_empty() {
                match (&status.last_healthy_revision, &status.last_applied_revision) {
                    (Some(h), Some(a)) if h == a => badge("Healthy", Tone::Good),
                    _ => badge("Unknown", Tone::Quiet),
                }
            } else {
                "<span class=\"quiet\">not waited for</span>".to_owned()
            };
            let drift = status.drift_corrections.to_string();
            out.push_str(&format!(
                "<tr data-gitsync=\"{ns}/{n}\"><td>{ns}</td>\
                 <th scope=\"row\"><a href=\"{href}\">{n}</a></th>\
                 <td class=\"ready\">{ready}</td><td class=\"reason\" title=\"{msg}\">{reason}{why}</td>\
                 <td class=\"source\">{source}</td><td class=\"applied\">{applied}</td>\
                 <td class=\"attempted\">{attempted}</td><td>{last}</td>\
                 <td class=\"drift\">{drift}</td><td>{health}</td></tr>\n",
                ns = esc(namespace),
                n = esc(name),
                href = esc(&html::gitsync_path(namespace, name)),
                ready = ready_badge(gs),
                msg = esc(&message),
                reason = esc(&reason),
                why = if ready == "False" {
                    format!("<br><span class=\"message\">{}</span>", esc(&clip(&message, 200)))
                } else {
                    String::new()
                },
                source = source(gs),
                applied = html::revision(&gs.spec.url, status.last_applied_revision.as_deref()),
                last = html::time(last_sync(gs, newest.get(&key).map(String::as_str)).as_deref()),
            ));
        }
        out.push_str("</tbody>\n</table>\n");
    });
    Parts::one(out)
}

/// `text` cut to about `max` bytes on a character boundary, with an ellipsis when cut.
fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}
