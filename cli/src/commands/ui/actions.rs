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
    if !same_origin(&headers) || !token_matches(&form.csrf, &app.state.csrf) {
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
            Ok(_) => match gitsync_actions::request_reconcile(&api, &name).await {
                Ok(_) => Ok(()),
                // Resumed all the same: the next interval syncs it.
                Err(error) => {
                    let why = access_of(&error).reason().unwrap_or("failed").to_owned();
                    return gitsync_response(
                        &app,
                        &namespace,
                        &name,
                        StatusCode::OK,
                        &html::flash(
                            false,
                            &format!("Resumed, but asking for a reconcile now failed: {why}. It syncs at its next interval."),
                        ),
                    )
                    .await;
                }
            },
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
            let access = access_of(&error);
            let (status, why) = match &access {
                Access::Forbidden(why) => (StatusCode::FORBIDDEN, format!("forbidden: {why}")),
                other => (
                    StatusCode::BAD_GATEWAY,
                    other.reason().unwrap_or("failed").to_owned(),
                ),
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

/// Whether the browser says the form came from this very origin: `Origin` (sent with every
/// cross-origin POST) must be `http://` and the request's own `Host`, and `Sec-Fetch-Site`
/// (sent by every current browser) must say `same-origin`.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site != "same-origin" {
            return false;
        }
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(origin) => origin
            .strip_prefix("http://")
            .is_some_and(|o| !host.is_empty() && o.eq_ignore_ascii_case(host)),
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
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            h.insert("host", "127.0.0.1:7480".parse().expect("value"));
            for (k, v) in pairs {
                h.insert(*k, v.parse().expect("value"));
            }
            h
        };
        assert!(same_origin(&with(&[("origin", "http://127.0.0.1:7480")])));
        assert!(!same_origin(&with(&[("origin", "http://127.0.0.1:9999")])));
        assert!(!same_origin(&with(&[("origin", "http://evil.example")])));
        assert!(!same_origin(&with(&[("origin", "null")])));
        assert!(!same_origin(&with(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&with(&[("sec-fetch-site", "same-site")])));
        assert!(same_origin(&with(&[("sec-fetch-site", "same-origin")])));
        assert!(same_origin(&with(&[])));
    }

    #[test]
    fn tokens_must_match_exactly() {
        assert!(token_matches("abc", "abc"));
        assert!(!token_matches("abd", "abc"));
        assert!(!token_matches("", ""));
        assert!(!token_matches("ab", "abc"));
    }
}
