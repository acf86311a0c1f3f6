//! Live pages: a server-sent event stream per page that sends the page's content again
//! whenever a watch changed what it shows, within a fraction of a second. The script on the
//! page swaps it in; without script the page is complete as it was served.

use std::collections::hash_map::DefaultHasher;
use std::convert::Infallible;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use axum::extract::{Path, State as AxumState};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;

use super::server::{find, lookup_failure, App};
use super::{page_gitsync, page_gitsyncs, page_keys};

/// Changes closer together than this are sent as one.
const COALESCE: Duration = Duration::from_millis(100);
/// Pages are also rendered this often without a change, for what no watch follows (a
/// GitSync outside the watched namespace).
const TICK: Duration = Duration::from_secs(5);

/// `/live/gitsyncs`.
pub async fn gitsyncs(
    AxumState(app): AxumState<App>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    stream(app, |app| async move { page_gitsyncs::render(&app.state) })
}

/// `/live/keys`.
pub async fn keys(
    AxumState(app): AxumState<App>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    stream(app, |app| async move { page_keys::render(&app.state) })
}

/// `/live/gitsyncs/<namespace>/<name>`.
pub async fn gitsync(
    AxumState(app): AxumState<App>,
    Path((namespace, name)): Path<(String, String)>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    stream(app, move |app| {
        let (namespace, name) = (namespace.clone(), name.clone());
        async move {
            match find(&app.state, &namespace, &name).await {
                Ok(gs) => {
                    let view = app
                        .state
                        .views
                        .view_for(&app.state.client, &gs, &app.state.changes)
                        .await;
                    page_gitsync::render(&app.state, &gs, &view)
                }
                Err(lookup) => lookup_failure(&lookup, &namespace, &name).1,
            }
        }
    })
}

fn stream<F, Fut>(app: App, render: F) -> Sse<impl Stream<Item = Result<Event, Infallible>>>
where
    F: Fn(App) -> Fut + Send + 'static,
    Fut: Future<Output = String> + Send,
{
    let changes = app.state.changes.subscribe();
    let initial = (app, changes, render, None::<u64>, true);
    let events = futures::stream::unfold(
        initial,
        |(app, mut changes, render, mut last, mut first)| async move {
            loop {
                if !first {
                    tokio::select! {
                        changed = changes.changed() => {
                            if changed.is_err() {
                                return None;
                            }
                            tokio::time::sleep(COALESCE).await;
                        }
                        () = tokio::time::sleep(TICK) => {}
                    }
                }
                first = false;
                changes.borrow_and_update();
                let html = render(app.clone()).await.replace('\r', "");
                let digest = {
                    let mut hasher = DefaultHasher::new();
                    html.hash(&mut hasher);
                    hasher.finish()
                };
                if last != Some(digest) {
                    last = Some(digest);
                    let event = Event::default().event("main").data(html);
                    return Some((Ok(event), (app, changes, render, last, first)));
                }
            }
        },
    );
    Sse::new(events).keep_alive(KeepAlive::default())
}
