//! Watch streams: newline-delimited JSON events over a chunked response, resumable from a
//! resourceVersion within the kept history, 410 Expired beyond it, bookmarks on request.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::Response;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::error::{ApiError, ApiResult};
use super::handlers::{add_common_headers, output, selectors, Req, Target};
use super::selectors::{FieldSelector, LabelSelector};
use super::server::Shared;
use super::store::{Event, EventType};
use super::table;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Render {
    Object,
    Table,
    Partial,
}

struct Filter {
    target: Target,
    labels: LabelSelector,
    fields: FieldSelector,
    name: Option<String>,
    render: Render,
}

impl Filter {
    fn in_scope(&self, ev: &Event) -> bool {
        let (group, plural) =
            super::eventsview::storage_resource(&self.target.def.group, &self.target.def.plural);
        ev.key.group == group
            && ev.key.plural == plural
            && self
                .target
                .namespace
                .as_deref()
                .is_none_or(|ns| ev.key.namespace == ns)
    }

    fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj)
            && self.fields.matches(obj)
            && self
                .name
                .as_deref()
                .is_none_or(|n| obj.pointer("/metadata/name").and_then(Value::as_str) == Some(n))
    }

    fn line(&self, ty: &str, obj: &Value) -> Bytes {
        let out = output(&self.target, obj, false);
        let out = match self.render {
            Render::Object => out,
            Render::Partial => table::partial(&out),
            Render::Table => {
                let rv = out
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                table::to_table(&self.target.def, &[out], &rv, None, None)
            }
        };
        event_line(ty, &out)
    }

    /// The event this watcher sees for a change, if any: a change that moves an object into
    /// or out of the selection is reported as ADDED or DELETED, as kube-apiserver does.
    fn translate(&self, ev: &Event) -> Option<Bytes> {
        if !self.in_scope(ev) {
            return None;
        }
        let object = ev.object.value();
        let now = self.matches(&object);
        let ty = match ev.kind {
            EventType::Added | EventType::Deleted if now => ev.kind.as_str(),
            EventType::Modified => {
                let was = ev.prev.as_ref().is_some_and(|p| self.matches(&p.value()));
                match (was, now) {
                    (true, true) => "MODIFIED",
                    (false, true) => "ADDED",
                    (true, false) => "DELETED",
                    (false, false) => return None,
                }
            }
            _ => return None,
        };
        Some(self.line(ty, &object))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
        if initial_end {
            if let Some(m) = meta.as_object_mut() {
                m.insert(
                    "annotations".into(),
                    json!({"k8s.io/initial-events-end": "true"}),
                );
            }
        }
        event_line(
            "BOOKMARK",
            &json!({"kind": self.target.def.kind, "apiVersion": self.target.api_version(), "metadata": meta}),
        )
    }
}

fn event_line(ty: &str, obj: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": ty, "object": obj})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

fn error_line(e: &ApiError) -> Bytes {
    event_line("ERROR", &e.status())
}

fn stream_response(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<Bytes, Infallible>(b), rx))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    add_common_headers(resp.headers_mut());
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Starts a watch and returns the streaming response.
pub fn serve(shared: &Arc<Shared>, req: &Req, t: &Target) -> ApiResult<Response<Body>> {
    let (labels, fields) = selectors(req, t)?;
    let q = |k: &str| req.query.get(k).map(String::as_str);
    let allow_bookmarks = matches!(q("allowWatchBookmarks"), Some("true") | Some("1"));
    let send_initial = q("sendInitialEvents") == Some("true");
    let timeout = match q("timeoutSeconds").filter(|s| !s.is_empty()) {
        Some(s) => Some(Duration::from_secs(s.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("invalid timeoutSeconds {s:?}"))
        })?)),
        None => None,
    };
    let rv = match q("resourceVersion").filter(|s| !s.is_empty() && *s != "0") {
        Some(s) => Some(s.parse::<u64>().map_err(|_| {
            ApiError::invalid(
                "ListOptions.meta.k8s.io",
                "meta.k8s.io",
                "",
                vec![super::error::Cause {
                    reason: "FieldValueInvalid".into(),
                    message: format!("Invalid value: {s:?}: must be a valid resource version"),
                    field: "resourceVersion".into(),
                }],
            )
        })?),
        None => None,
    };
    if send_initial && !allow_bookmarks {
        return Err(ApiError::invalid(
            "ListOptions.meta.k8s.io",
            "meta.k8s.io",
            "",
            vec![super::error::Cause {
                reason: "FieldValueForbidden".into(),
                message: "Forbidden: sendInitialEvents requires setting allowWatchBookmarks=true"
                    .into(),
                field: "allowWatchBookmarks".into(),
            }],
        ));
    }
    let accept = req
        .headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let render = if table::wants_table(accept) {
        Render::Table
    } else if table::wants_partial(accept) {
        Render::Partial
    } else {
        Render::Object
    };
    let filter = Filter {
        target: t.clone(),
        labels,
        fields,
        name: t.name.clone(),
        render,
    };

    let (tx, out_rx) = mpsc::channel::<Bytes>(64);
    let mut drop_rx = shared.watch_epoch.subscribe();
    let store = shared.lock();
    let mut initial: Vec<Bytes> = Vec::new();
    let (past, events_rx, start_rv) = match rv {
        Some(n) if !send_initial => match store.subscribe_since(n) {
            Some((past, rx)) => (past, rx, n),
            None => {
                let e = ApiError::expired(format!(
                    "too old resource version: {n} ({})",
                    store.compacted()
                ));
                drop(store);
                // kube-apiserver's watch cache answers 200 and sends one ERROR event.
                let _ = tx.try_send(error_line(&e));
                drop(tx);
                return Ok(stream_response(out_rx));
            }
        },
        _ => {
            // No resourceVersion (or "0", or sendInitialEvents): synthetic ADDED events for
            // the current state, then changes from now on.
            for (_, stored) in store.list_stored(&t.def, t.namespace.as_deref(), None) {
                let obj = stored.value();
                if filter.matches(&obj) {
                    initial.push(filter.line("ADDED", &obj));
                }
            }
            (Vec::new(), store.subscribe(), store.rv())
        }
    };
    drop(store);
    if send_initial {
        initial.push(filter.bookmark(start_rv, true));
    }
    let bookmark_every = shared.bookmark_interval;
    tokio::spawn(async move {
        let mut events_rx = events_rx;
        let mut last_rv = start_rv;
        for line in initial {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        for ev in past {
            last_rv = last_rv.max(ev.rv);
            if let Some(line) = filter.translate(&ev) {
                if tx.send(line).await.is_err() {
                    return;
                }
            }
        }
        let deadline = timeout.map(|d| tokio::time::Instant::now() + d);
        let mut bookmarks =
            tokio::time::interval_at(tokio::time::Instant::now() + bookmark_every, bookmark_every);
        loop {
            tokio::select! {
                r = events_rx.recv() => match r {
                    Ok(ev) => {
                        if ev.rv <= last_rv {
                            continue;
                        }
                        last_rv = ev.rv;
                        if let Some(line) = filter.translate(&ev) {
                            if tx.send(line).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let e = ApiError::expired(format!("too old resource version: {last_rv}"));
                        let _ = tx.send(error_line(&e)).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = bookmarks.tick(), if allow_bookmarks => {
                    if tx.send(filter.bookmark(last_rv, false)).await.is_err() {
                        return;
                    }
                }
                _ = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending::<()>().await,
                    }
                } => return,
                _ = drop_rx.changed() => return,
                _ = tx.closed() => return,
            }
        }
    });
    Ok(stream_response(out_rx))
}
