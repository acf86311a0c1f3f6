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

use super::html::Parts;
use super::server::{gitsync_main, lookup_failure, App};
use super::{page_gitsyncs, page_keys};

/// Changes closer together than this are sent as one.
const COALESCE: Duration = Duration::from_millis(100);
/// Between the parts of a `parts` event.
const PART_SEPARATOR: &str = "\n<!--sealsync-part-->\n";
/// Pages are also rendered this often without a change: it keeps an open page's object view
/// in use, and shows what a failed list could not report.
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
            match gitsync_main(&app.state, &namespace, &name).await {
                Ok(main) => main,
                Err(lookup) => Parts::one(lookup_failure(&lookup, &namespace, &name).1),
            }
        }
    })
}

fn stream<F, Fut>(app: App, render: F) -> Sse<impl Stream<Item = Result<Event, Infallible>>>
where
    F: Fn(App) -> Fut + Send + 'static,
    Fut: Future<Output = Parts> + Send,
{
    let changes = app.state.changes.subscribe();
    let stopping = app.state.stopping.subscribe();
    let initial = (
        app,
        changes,
        stopping,
        render,
        Vec::<(&'static str, u64)>::new(),
        true,
    );
    let events = futures::stream::unfold(
        initial,
        |(app, mut changes, mut stopping, render, mut last, mut first)| async move {
            loop {
                if *stopping.borrow() {
                    return None;
                }
                if !first {
                    tokio::select! {
                        changed = changes.changed() => {
                            if changed.is_err() {
                                return None;
                            }
                            tokio::time::sleep(COALESCE).await;
                        }
                        _ = stopping.changed() => return None,
                        () = tokio::time::sleep(TICK) => {}
                    }
                }
                first = false;
                changes.borrow_and_update();
                let parts = tokio::select! {
                    parts = render(app.clone()) => parts,
                    _ = stopping.changed() => return None,
                };
                let digests: Vec<(&'static str, u64)> = parts
                    .0
                    .iter()
                    .map(|(id, html)| (*id, digest(html)))
                    .collect();
                let same_parts = digests.len() == last.len()
                    && digests.iter().zip(&last).all(|(a, b)| a.0 == b.0);
                let event = if !same_parts {
                    Some(Event::default().event("main").data(parts.html()))
                } else {
                    // Only the parts that changed, as `id` newline `content`, separated by a
                    // comment no cluster text can hold (`<` is always escaped).
                    let changed: Vec<String> = parts
                        .0
                        .iter()
                        .zip(digests.iter().zip(&last))
                        .filter(|(_, (now, before))| now.1 != before.1)
                        .map(|((id, html), _)| format!("{id}\n{html}"))
                        .collect();
                    (!changed.is_empty()).then(|| {
                        Event::default()
                            .event("parts")
                            .data(changed.join(PART_SEPARATOR))
                    })
                };
                last = digests;
                if let Some(event) = event {
                    return Some((Ok(event), (app, changes, stopping, render, last, first)));
                }
            }
        },
    );
    Sse::new(events).keep_alive(KeepAlive::default())
}

fn digest(html: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    html.hash(&mut hasher);
    hasher.finish()
}
