//! `/keys`: the cluster's SealingKeys with their state, and what each opens (the usage the
//! controller reports). Only the status is read: a key's Secret is never asked for.

use sealsync_core::KeyState;

use super::cache::Access;
use super::html::{self, badge, esc, Parts, Tone};
use super::state::State;

/// The content of `/keys`.
pub fn render(state: &State) -> Parts {
    let mut out = format!(
        "<h1>Sealing keys</h1>\n<p class=\"scope\">SealingKeys of namespace <code>{}</code>.</p>\n",
        esc(&state.controller_namespace)
    );
    state.keys.read(|listing| {
        match &listing.access {
            Access::Loading => {
                out.push_str(&html::notice("loading", "Loading SealingKeys…"));
                return;
            }
            Access::Forbidden(why) => {
                out.push_str(&html::notice(
                    "forbidden",
                    &format!("forbidden: you may not list SealingKeys here ({why})."),
                ));
                return;
            }
            Access::Failed(why) => out.push_str(&html::notice(
                "error",
                &format!("SealingKeys could not be read: {why}. What is shown may be stale."),
            )),
            Access::Ready => {}
        }
        if listing.items.is_empty() {
            out.push_str(&html::notice(
                "empty",
                "No SealingKeys: is sealsync-controller installed in this namespace?",
            ));
            return;
        }
        // The current key first, then the newest.
        let mut keys: Vec<_> = listing.items.values().collect();
        keys.sort_by(|a, b| {
            let (sa, sb) = (a.status.clone().unwrap_or_default(), b.status.clone().unwrap_or_default());
            sb.current.cmp(&sa.current).then(sb.created.cmp(&sa.created))
        });
        out.push_str(
            "<table class=\"keys\"><caption class=\"visually-hidden\">Sealing keys</caption>\n\
             <thead><tr><th scope=\"col\">Key</th><th scope=\"col\">Key ID</th>\
             <th scope=\"col\">State</th><th scope=\"col\">Created</th><th scope=\"col\">Retired</th>\
             <th scope=\"col\">Documents</th><th scope=\"col\">Used by</th></tr></thead><tbody>\n",
        );
        for key in keys {
            let status = key.status.clone().unwrap_or_default();
            let state_badge = match status.state {
                Some(KeyState::Active) if status.current => badge("Active, current", Tone::Good),
                Some(KeyState::Active) => badge("Active", Tone::Good),
                Some(KeyState::Retired) => badge("Retired", Tone::Quiet),
                Some(KeyState::Missing) => badge("Missing", Tone::Bad),
                _ => badge("Unknown", Tone::Quiet),
            };
            let mut used = String::new();
            if status.used_by.is_empty() {
                used.push_str(match &status.unused_since {
                    Some(_) => "<span class=\"quiet\">nothing synced needs it</span>",
                    None => "<span class=\"quiet\">none</span>",
                });
                if let Some(since) = &status.unused_since {
                    used.push_str(&format!(" since {}", html::time(Some(since))));
                }
            } else {
                used.push_str("<ul class=\"uses\">");
                for u in &status.used_by {
                    let link = match u.git_sync.split_once('/') {
                        Some((ns, name)) if !u.file.ends_with("(resource)") => format!(
                            "<a href=\"{}\">{}</a>",
                            esc(&html::gitsync_path(ns, name)),
                            esc(&u.git_sync)
                        ),
                        _ => esc(&u.git_sync),
                    };
                    used.push_str(&format!(
                        "<li>{link}: <code>{}</code> → {}</li>",
                        esc(&u.file),
                        esc(&u.secret)
                    ));
                }
                if (status.documents as usize) > status.used_by.len() {
                    used.push_str(&format!(
                        "<li class=\"quiet\">and {} more</li>",
                        status.documents as usize - status.used_by.len()
                    ));
                }
                used.push_str("</ul>");
            }
            let name = key.metadata.name.clone().unwrap_or_default();
            out.push_str(&format!(
                "<tr data-key=\"{name}\"><th scope=\"row\">{name}</th><td><code>{id}</code></td>\
                 <td>{state_badge}</td><td>{created}</td><td>{retired}</td><td>{docs}</td><td>{used}</td></tr>\n",
                name = esc(&name),
                id = esc(status.key_id.as_deref().unwrap_or("")),
                created = html::time(status.created.as_deref()),
                retired = match &status.retired {
                    Some(r) => html::time(Some(r)),
                    None => "<span class=\"quiet\">—</span>".to_owned(),
                },
                docs = status.documents,
            ));
        }
        out.push_str("</tbody></table>\n");
    });
    Parts::one(out)
}
