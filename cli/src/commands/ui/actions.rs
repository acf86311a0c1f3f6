//! The buttons: `sync`, `suspend` and `resume`, posted as forms. Each must carry the
//! process's CSRF token and come from our own origin; the write is then made with the user's
//! credentials, so the API server's authorization decides, as it does for the CLI.

use axum::extract::{Form, Path, State as AxumState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use kube::api::Api;
use sealsync_core::GitSync;

use super::cache::{access_of, Access};
use super::html;
use super::server::{find, gitsync_response, App};
use crate::gitsync_actions;

/// The form fields.
#[derive(Debug, serde::Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /gitsyncs/<namespace>/<name>/<action>`.
pub async fn act(
    AxumState(app): AxumState<App>,
    Path((namespace, name, action)): Path<(String, String, String)>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    if !same_origin(&headers, &app.hosts) || !token_matches(&form.csrf, &app.state.csrf) {
        return (
            StatusCode::FORBIDDEN,
            "refused: the form did not come from this sealsync ui (CSRF check); reload the page\n",
        )
            .into_response();
    }
    if !matches!(action.as_str(), "sync" | "suspend" | "resume") {
        return (StatusCode::NOT_FOUND, "no such action\n").into_response();
    }
    let gs = match find(&app.state, &namespace, &name).await {
        Ok(gs) => gs,
        Err(_) => {
            return gitsync_response(&app, &namespace, &name, StatusCode::NOT_FOUND, "").await
        }
    };
    let api: Api<GitSync> = Api::namespaced(app.state.client.clone(), &namespace);
    let result = match action.as_str() {
        "sync" if gs.spec.suspend => {
            return gitsync_response(
                &app,
                &namespace,
                &name,
                StatusCode::CONFLICT,
                &html::flash(false, "Not synced: it is suspended. Resume it first."),
            )
            .await
        }
        "sync" => gitsync_actions::request_reconcile(&api, &name)
            .await
            .map(|_| ()),
        "suspend" => gitsync_actions::set_suspended(&api, &name, true)
            .await
            .map(|_| ()),
        _ => match gitsync_actions::set_suspended(&api, &name, false).await {
            Ok(_) => gitsync_actions::request_reconcile(&api, &name)
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => Redirect::to(&format!(
            "{}?done={action}",
            html::gitsync_path(&namespace, &name)
        ))
        .into_response(),
        Err(error) => {
            let (status, why) = match access_of(&error) {
                Access::Forbidden(why) => (StatusCode::FORBIDDEN, format!("forbidden: {why}")),
                Access::Failed(why) => (StatusCode::BAD_GATEWAY, why),
                Access::Loading | Access::Ready => (StatusCode::BAD_GATEWAY, error.to_string()),
            };
            gitsync_response(
                &app,
                &namespace,
                &name,
                status,
                &html::flash(false, &format!("The {action} was refused: {why}")),
            )
            .await
        }
    }
}

/// Whether the browser says the form came from one of our own origins. `Origin` is sent with
/// every cross-origin POST; `Sec-Fetch-Site` by every current browser.
fn same_origin(headers: &HeaderMap, hosts: &[String]) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site != "same-origin" {
            return false;
        }
    }
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(origin) => origin
            .strip_prefix("http://")
            .is_some_and(|host| hosts.iter().any(|h| h == host)),
    }
}

/// Compares the tokens without an early exit on the first differing byte.
fn token_matches(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    if a.len() != b.len() || a.is_empty() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_own_origin_may_post() {
        let hosts = vec!["127.0.0.1:7480".to_owned()];
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, v.parse().expect("value"));
            }
            h
        };
        assert!(same_origin(
            &with(&[("origin", "http://127.0.0.1:7480")]),
            &hosts
        ));
        assert!(!same_origin(
            &with(&[("origin", "http://evil.example")]),
            &hosts
        ));
        assert!(!same_origin(&with(&[("origin", "null")]), &hosts));
        assert!(!same_origin(
            &with(&[("sec-fetch-site", "cross-site")]),
            &hosts
        ));
        assert!(same_origin(&with(&[]), &hosts));
    }

    #[test]
    fn tokens_must_match_exactly() {
        assert!(token_matches("abc", "abc"));
        assert!(!token_matches("abd", "abc"));
        assert!(!token_matches("", ""));
        assert!(!token_matches("ab", "abc"));
    }
}
