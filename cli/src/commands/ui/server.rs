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
use super::html::{self, Parts, Section};
use super::state::State;
use super::{actions, listen, live, page_gitsync, page_gitsyncs, page_keys};

/// No inline script or style, nothing from elsewhere, no framing, forms only to us.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Everything a handler needs.
#[derive(Debug, Clone)]
pub struct App {
    pub state: Arc<State>,
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
        .layer(middleware::from_fn(guard))
        .with_state(app)
}

/// Refuses a foreign `Host`, then adds the security headers to every answer. The referrer
/// policy is `same-origin`, not `no-referrer`: with the latter, browsers send `Origin: null`
/// on form posts, and the actions could not tell our own forms from anyone else's.
async fn guard(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    // Another site may link here (a top-level navigation), but not make the browser fetch
    // pages or streams in the background.
    let fetched_from_elsewhere = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
        && !(request.method() == axum::http::Method::GET
            && headers
                .get("sec-fetch-mode")
                .is_some_and(|v| v.as_bytes() == b"navigate"));
    let mut response = if !listen::host_allowed(host) {
        (
            StatusCode::MISDIRECTED_REQUEST,
            "sealsync ui answers only requests addressed to an IP address or localhost\n",
        )
            .into_response()
    } else if fetched_from_elsewhere {
        (
            StatusCode::FORBIDDEN,
            "sealsync ui refuses requests that other sites make\n",
        )
            .into_response()
    } else {
        next.run(request).await
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
    let main = page_gitsyncs::render(&app.state).html();
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
    let main = page_keys::render(&app.state).html();
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
    match gitsync_main(&app.state, namespace, name).await {
        Ok(main) => page(status, flash, &main.html()),
        Err(lookup) => {
            let (code, main) = lookup_failure(&lookup, namespace, name);
            page(code, flash, &main)
        }
    }
}

/// The content of one GitSync's page, its objects' view started if need be.
pub async fn gitsync_main(state: &State, namespace: &str, name: &str) -> Result<Parts, Lookup> {
    let gs = find(state, namespace, name).await?;
    let view = state
        .views
        .view_for(&state.client, &gs, &state.changes)
        .await;
    Ok(page_gitsync::render(state, &gs, &view))
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
        // What the URL says is echoed only when it could be a name at all.
        Lookup::NotFound if !is_object_name(namespace) || !is_object_name(name) => (
            StatusCode::NOT_FOUND,
            html::notice("empty", "No such GitSync."),
        ),
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

/// One GitSync: from the watched list of its namespace, or, while that cannot be read, read
/// now with the user's credentials.
pub async fn find(state: &State, namespace: &str, name: &str) -> Result<Arc<GitSync>, Lookup> {
    if !is_object_name(namespace) || !is_object_name(name) {
        return Err(Lookup::NotFound);
    }
    let list = state.gitsyncs_in(namespace);
    // A namespace outside the scope is watched from its first page on; its first list is
    // awaited briefly.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while list.read(|l| l.access == Access::Loading) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let cached = list.read(|listing| match &listing.access {
        // Not in the list may mean not yet seen, or beyond the list's bound: asked below.
        Access::Ready => listing
            .items
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
            .map(Ok),
        // Who may not list may still be allowed to get.
        Access::Forbidden(_) | Access::Loading | Access::Failed(_) => None,
    });
    if let Some(found) = cached {
        return found;
    }
    // Not listed (yet): read it now.
    let api: Api<GitSync> = Api::namespaced(state.client.clone(), namespace);
    match api.get_opt(name).await {
        Ok(Some(gs)) => Ok(Arc::new(gs)),
        Ok(None) => Err(Lookup::NotFound),
        Err(error) => Err(match access_of(&error) {
            Access::Forbidden(why) => Lookup::Forbidden(why),
            other => Lookup::Failed(other.reason().unwrap_or("failed").to_owned()),
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
