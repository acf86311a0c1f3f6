//! The routes, the headers every answer carries, and the page handlers.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State as AxumState};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use kube::api::Api;
use sealsync_core::GitSync;

use super::cache::{access_of, Access};
use super::html::{self, Section};
use super::state::State;
use super::{actions, live, page_gitsync, page_gitsyncs, page_keys};

/// No inline script or style, nothing from elsewhere, no framing, forms only to us.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Everything a handler needs: the shared state and the `Host` values we answer.
#[derive(Debug, Clone)]
pub struct App {
    pub state: Arc<State>,
    pub hosts: Arc<Vec<String>>,
}

/// The router.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/", get(gitsyncs_page))
        .route(
            "/gitsyncs",
            get(|| async { axum::response::Redirect::to("/") }),
        )
        .route("/gitsyncs/{namespace}/{name}", get(gitsync_page))
        .route("/gitsyncs/{namespace}/{name}/{action}", post(actions::act))
        .route("/keys", get(keys_page))
        .route("/live/gitsyncs", get(live::gitsyncs))
        .route("/live/gitsyncs/{namespace}/{name}", get(live::gitsync))
        .route("/live/keys", get(live::keys))
        .route("/static/ui.css", get(css))
        .route("/static/live.js", get(script))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// Refuses a foreign `Host`, then adds the security headers to every answer. The referrer
/// policy is `same-origin`, not `no-referrer`: with the latter, browsers send `Origin: null`
/// on form posts, and the actions could not tell our own forms from anyone else's.
async fn guard(AxumState(app): AxumState<App>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mut response = if app.hosts.contains(&host) {
        next.run(request).await
    } else {
        (
            StatusCode::MISDIRECTED_REQUEST,
            "sealsync ui answers only requests addressed to its own address\n",
        )
            .into_response()
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// An HTML answer.
pub fn html_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/ui.css"),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/live.js"),
    )
        .into_response()
}

async fn not_found(AxumState(app): AxumState<App>) -> Response {
    html_response(
        StatusCode::NOT_FOUND,
        html::page(
            "Not found",
            Section::GitSyncs,
            &app.state.context,
            "",
            "",
            &html::notice(
                "empty",
                "No such page. GitSyncs are listed at /, keys at /keys.",
            ),
        ),
    )
}

/// What the last action did, as `?done=` names it: a fixed set, never text from the URL.
#[derive(Debug, serde::Deserialize)]
pub struct Done {
    done: Option<String>,
}

fn done_flash(done: &Done) -> String {
    match done.done.as_deref() {
        Some("sync") => html::flash(true, "A reconcile was asked for."),
        Some("suspend") => html::flash(true, "Suspended: it is neither synced nor healed."),
        Some("resume") => html::flash(true, "Resumed; a reconcile was asked for."),
        _ => String::new(),
    }
}

async fn gitsyncs_page(AxumState(app): AxumState<App>) -> Response {
    let main = page_gitsyncs::render(&app.state);
    html_response(
        StatusCode::OK,
        html::page(
            "GitSyncs",
            Section::GitSyncs,
            &app.state.context,
            "/live/gitsyncs",
            "",
            &main,
        ),
    )
}

async fn keys_page(AxumState(app): AxumState<App>) -> Response {
    let main = page_keys::render(&app.state);
    html_response(
        StatusCode::OK,
        html::page(
            "Sealing keys",
            Section::Keys,
            &app.state.context,
            "/live/keys",
            "",
            &main,
        ),
    )
}

async fn gitsync_page(
    AxumState(app): AxumState<App>,
    Path((namespace, name)): Path<(String, String)>,
    Query(done): Query<Done>,
) -> Response {
    gitsync_response(&app, &namespace, &name, StatusCode::OK, &done_flash(&done)).await
}

/// The page of one GitSync with `flash` above it, or why it cannot be shown.
pub async fn gitsync_response(
    app: &App,
    namespace: &str,
    name: &str,
    status: StatusCode,
    flash: &str,
) -> Response {
    let title = format!("{namespace}/{name}");
    let page = |status, flash: &str, main: &str| {
        html_response(
            status,
            html::page(
                &title,
                Section::GitSyncs,
                &app.state.context,
                &format!("/live{}", html::gitsync_path(namespace, name)),
                flash,
                main,
            ),
        )
    };
    match find(&app.state, namespace, name).await {
        Ok(gs) => {
            let view = app
                .state
                .views
                .view_for(&app.state.client, &gs, &app.state.changes)
                .await;
            page(status, flash, &page_gitsync::render(&app.state, &gs, &view))
        }
        Err(lookup) => {
            let (code, main) = lookup_failure(&lookup, namespace, name);
            page(code, flash, &main)
        }
    }
}

/// Why a GitSync could not be looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    NotFound,
    Forbidden(String),
    Failed(String),
}

/// The status and content that say why a GitSync cannot be shown.
pub fn lookup_failure(lookup: &Lookup, namespace: &str, name: &str) -> (StatusCode, String) {
    match lookup {
        Lookup::NotFound => (
            StatusCode::NOT_FOUND,
            html::notice("empty", &format!("GitSync {namespace}/{name} not found.")),
        ),
        Lookup::Forbidden(why) => (
            StatusCode::FORBIDDEN,
            html::notice(
                "forbidden",
                &format!("forbidden: you may not read GitSync {namespace}/{name} ({why})."),
            ),
        ),
        Lookup::Failed(why) => (
            StatusCode::BAD_GATEWAY,
            html::notice(
                "error",
                &format!("GitSync {namespace}/{name} could not be read: {why}"),
            ),
        ),
    }
}

/// One GitSync: from the watched list when it covers the namespace, else read now with the
/// user's credentials.
pub async fn find(state: &State, namespace: &str, name: &str) -> Result<Arc<GitSync>, Lookup> {
    if !is_object_name(namespace) || !is_object_name(name) {
        return Err(Lookup::NotFound);
    }
    let covered = match &state.scope {
        super::state::Scope::All => true,
        super::state::Scope::Namespace { name: ns, .. } => ns == namespace,
    };
    if covered {
        let cached = state.gitsyncs.read(|listing| {
            (listing.access == Access::Ready).then(|| {
                listing
                    .items
                    .get(&(namespace.to_owned(), name.to_owned()))
                    .cloned()
            })
        });
        match cached {
            Some(Some(gs)) => return Ok(gs),
            Some(None) => return Err(Lookup::NotFound),
            None => {}
        }
    }
    let api: Api<GitSync> = Api::namespaced(state.client.clone(), namespace);
    match api.get_opt(name).await {
        Ok(Some(gs)) => Ok(Arc::new(gs)),
        Ok(None) => Err(Lookup::NotFound),
        Err(error) => Err(match access_of(&error) {
            Access::Forbidden(why) => Lookup::Forbidden(why),
            Access::Failed(why) => Lookup::Failed(why),
            Access::Loading | Access::Ready => Lookup::Failed(error.to_string()),
        }),
    }
}

/// Whether `name` may name a namespace or a GitSync (a DNS subdomain): anything else is not
/// sent to the API server at all.
pub fn is_object_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !name.starts_with(['-', '.'])
}
