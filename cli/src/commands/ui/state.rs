//! The state of a running `sealsync ui`: the client with the user's credentials, the watched
//! lists, the open object views and the token that guards the actions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Event;
use kube::api::Api;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use sealsync_core::{GitSync, SealingKey};

use super::cache::{self, Changes, Watched};
use super::objects_view::Views;

/// The longest Event message kept, in bytes: a page shows notes, not logs.
const MAX_EVENT_MESSAGE: usize = 2048;
/// The most GitSyncs, Events and SealingKeys kept: bounds the view's memory whatever the
/// cluster holds (the API server keeps Events for an hour by default).
const MAX_GITSYNCS: usize = 10_000;
const MAX_EVENTS: usize = 20_000;
const MAX_KEYS: usize = 1_000;
/// The most namespaces outside the scope followed at once, and for how long after a page
/// last showed one.
const MAX_OTHER_NAMESPACES: usize = 20;
const OTHER_IDLE: Duration = Duration::from_secs(60);
/// A namespace shown this recently is on an open page (live pages render every 5 s).
const IN_USE: Duration = Duration::from_secs(10);
/// The most Events kept for one other namespace.
const MAX_OTHER_EVENTS: usize = 2_000;

/// Where the lists of a namespace come from.
enum Other {
    /// The main lists cover it.
    Covered,
    /// Lists of its own.
    Followed(Arc<Lists>),
    /// None: too many are followed already.
    NotFollowed(String),
}

/// The GitSyncs of a scope and the Events about them, watched.
#[derive(Debug)]
struct Lists {
    gitsyncs: Arc<Watched<Arc<GitSync>>>,
    events: Arc<Watched<EventRow>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    last_used: Mutex<Instant>,
}

impl Lists {
    fn start(
        gitsync_api: Api<GitSync>,
        event_api: Api<Event>,
        changes: &Changes,
        max_events: usize,
    ) -> Lists {
        let gitsyncs = Arc::new(Watched::default());
        let events = Arc::new(Watched::default());
        let tasks = vec![
            cache::spawn_watch(
                gitsync_api,
                watcher::Config::default(),
                gitsyncs.clone(),
                changes.clone(),
                keep_gitsync,
                cache::Bound {
                    max: MAX_GITSYNCS,
                    age: None,
                },
            ),
            cache::spawn_watch(
                event_api,
                watcher::Config::default().fields("involvedObject.kind=GitSync"),
                events.clone(),
                changes.clone(),
                keep_event,
                cache::Bound {
                    max: max_events,
                    age: Some(|row: &EventRow| row.last.as_str()),
                },
            ),
        ];
        Lists {
            gitsyncs,
            events,
            tasks,
            last_used: Mutex::new(Instant::now()),
        }
    }

    /// Hands the watch tasks over (the main lists live as long as the state).
    fn take_tasks(self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut this = self;
        std::mem::take(&mut this.tasks)
    }

    fn touch(&self) {
        if let Ok(mut at) = self.last_used.lock() {
            *at = Instant::now();
        }
    }

    fn last_used(&self) -> Instant {
        self.last_used
            .lock()
            .map(|at| *at)
            .unwrap_or_else(|_| Instant::now())
    }
}

impl Drop for Lists {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Where GitSyncs (and their Events) are read from.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Every namespace.
    All,
    /// One namespace; `why` says why not all (the refusal of a wider list), if that is why.
    Namespace { name: String, why: Option<String> },
}

/// One Event about a GitSync, as a page shows it.
#[derive(Debug, Clone)]
pub struct EventRow {
    /// The GitSync's namespace and name.
    pub gitsync: (String, String),
    pub warning: bool,
    pub reason: String,
    pub message: String,
    /// How many times it happened (a series counts each).
    pub count: u32,
    /// When it last happened, RFC 3339.
    pub last: String,
}

/// Everything the handlers share.
pub struct State {
    pub client: Client,
    pub context: String,
    pub scope: Scope,
    pub controller_namespace: String,
    pub gitsyncs: Arc<Watched<Arc<GitSync>>>,
    pub events: Arc<Watched<EventRow>>,
    pub keys: Arc<Watched<Arc<SealingKey>>>,
    pub views: Views,
    /// GitSyncs and Events of namespaces outside `scope`, watched while a page shows them.
    others: Mutex<HashMap<String, Arc<Lists>>>,
    pub changes: Changes,
    /// The token every action form carries; random per process.
    pub csrf: String,
    /// Set once the process is stopping: the live streams end.
    pub stopping: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("context", &self.context)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl Drop for State {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl State {
    /// Starts the watches for `scope`.
    pub fn start(
        client: Client,
        context: String,
        scope: Scope,
        controller_namespace: String,
        csrf: String,
    ) -> Arc<State> {
        let (changes, _) = tokio::sync::watch::channel(0u64);
        let changes: Changes = Arc::new(changes);
        let keys = Arc::new(Watched::default());
        let (gitsync_api, event_api): (Api<GitSync>, Api<Event>) = match &scope {
            Scope::All => (Api::all(client.clone()), Api::all(client.clone())),
            Scope::Namespace { name, .. } => (
                Api::namespaced(client.clone(), name),
                Api::namespaced(client.clone(), name),
            ),
        };
        let main = Lists::start(gitsync_api, event_api, &changes, MAX_EVENTS);
        let (gitsyncs, events) = (main.gitsyncs.clone(), main.events.clone());
        let mut tasks = main.take_tasks();
        tasks.extend([cache::spawn_watch(
            Api::<SealingKey>::namespaced(client.clone(), &controller_namespace),
            watcher::Config::default(),
            keys.clone(),
            changes.clone(),
            keep_key,
            cache::Bound {
                max: MAX_KEYS,
                age: None,
            },
        )]);
        let state = Arc::new(State {
            client,
            context,
            scope,
            controller_namespace,
            gitsyncs,
            events,
            keys,
            views: Views::default(),
            others: Mutex::new(HashMap::new()),
            changes,
            csrf,
            stopping: tokio::sync::watch::channel(false).0,
            tasks,
        });
        // Object views nobody looks at stop their watches.
        let weak = Arc::downgrade(&state);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(15)).await;
                match weak.upgrade() {
                    Some(state) => {
                        state.views.sweep();
                        state.sweep_others();
                    }
                    None => return,
                }
            }
        });
        state
    }

    /// A state with empty lists and no watches, for rendering tests.
    #[cfg(test)]
    pub fn for_tests(scope: Scope) -> State {
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let (changes, _) = tokio::sync::watch::channel(0u64);
        State {
            client: Client::try_from(config).expect("client"),
            context: "test".to_owned(),
            scope,
            controller_namespace: "sealsync-system".to_owned(),
            gitsyncs: Arc::new(Watched::default()),
            events: Arc::new(Watched::default()),
            keys: Arc::new(Watched::default()),
            views: Views::default(),
            others: Mutex::new(HashMap::new()),
            changes: Arc::new(changes),
            csrf: "token".to_owned(),
            stopping: tokio::sync::watch::channel(false).0,
            tasks: Vec::new(),
        }
    }

    /// Ends the live streams.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Whether the GitSyncs and Events of `namespace` are watched.
    pub fn covers(&self, namespace: &str) -> bool {
        match &self.scope {
            Scope::All => true,
            Scope::Namespace { name, .. } => name == namespace,
        }
    }

    /// The watched GitSyncs of `namespace`: the main lists when the scope covers it, else
    /// lists of that namespace alone, started now if need be.
    pub fn gitsyncs_in(&self, namespace: &str) -> Arc<Watched<Arc<GitSync>>> {
        match self.other(namespace) {
            Other::Covered => self.gitsyncs.clone(),
            Other::Followed(lists) => lists.gitsyncs.clone(),
            Other::NotFollowed(why) => Arc::new(Watched::failed(why)),
        }
    }

    /// The watched Events about the GitSyncs of `namespace`, as [`State::gitsyncs_in`].
    pub fn events_in(&self, namespace: &str) -> Arc<Watched<EventRow>> {
        match self.other(namespace) {
            Other::Covered => self.events.clone(),
            Other::Followed(lists) => lists.events.clone(),
            Other::NotFollowed(why) => Arc::new(Watched::failed(why)),
        }
    }

    fn other(&self, namespace: &str) -> Other {
        if self.covers(namespace) {
            return Other::Covered;
        }
        let mut others = match self.others.lock() {
            Ok(others) => others,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !others.contains_key(namespace) && others.len() >= MAX_OTHER_NAMESPACES {
            // The least recently shown namespace gives way, unless every one is on a page
            // now: evicting those would only restart their watches at the next render.
            let oldest = others
                .iter()
                .map(|(ns, lists)| (lists.last_used(), ns))
                .min()
                .filter(|(at, _)| at.elapsed() > IN_USE)
                .map(|(_, ns)| ns.clone());
            match oldest {
                Some(oldest) => {
                    others.remove(&oldest);
                }
                None => {
                    return Other::NotFollowed(format!(
                        "not followed: pages of more than {MAX_OTHER_NAMESPACES} namespaces \
                         outside this view's are open"
                    ))
                }
            }
        }
        let lists = others
            .entry(namespace.to_owned())
            .or_insert_with(|| {
                Arc::new(Lists::start(
                    Api::namespaced(self.client.clone(), namespace),
                    Api::namespaced(self.client.clone(), namespace),
                    &self.changes,
                    MAX_OTHER_EVENTS,
                ))
            })
            .clone();
        lists.touch();
        Other::Followed(lists)
    }

    /// Stops the lists of other namespaces that no page showed for a while.
    fn sweep_others(&self) {
        let mut others = match self.others.lock() {
            Ok(others) => others,
            Err(poisoned) => poisoned.into_inner(),
        };
        others.retain(|_, lists| lists.last_used().elapsed() < OTHER_IDLE);
    }

    /// The Events of one GitSync, newest first.
    pub fn events_of(&self, namespace: &str, name: &str) -> Vec<EventRow> {
        let mut rows: Vec<EventRow> = self.events_in(namespace).read(|listing| {
            listing
                .items
                .values()
                .filter(|row| row.gitsync.0 == namespace && row.gitsync.1 == name)
                .cloned()
                .collect()
        });
        rows.sort_by(|a, b| b.last.cmp(&a.last));
        rows
    }
}

/// A GitSync without what a page never shows (managed fields, annotations but ours).
fn keep_gitsync(mut gs: GitSync) -> Option<Arc<GitSync>> {
    gs.metadata.managed_fields = None;
    if let Some(annotations) = gs.metadata.annotations.as_mut() {
        annotations.retain(|k, _| k.starts_with("sealsync.dev/"));
    }
    Some(Arc::new(gs))
}

fn keep_key(mut key: SealingKey) -> Option<Arc<SealingKey>> {
    key.metadata.managed_fields = None;
    key.metadata.annotations = None;
    Some(Arc::new(key))
}

fn keep_event(event: Event) -> Option<EventRow> {
    let involved = &event.involved_object;
    if involved.kind.as_deref() != Some("GitSync") {
        return None;
    }
    let gitsync = (
        involved
            .namespace
            .clone()
            .or_else(|| event.namespace())
            .unwrap_or_default(),
        involved.name.clone().unwrap_or_default(),
    );
    let series = event.series.as_ref();
    let count = series
        .and_then(|s| s.count)
        .or(event.count)
        .and_then(|c| u32::try_from(c).ok())
        .unwrap_or(1)
        .max(1);
    let last = series
        .and_then(|s| s.last_observed_time.as_ref())
        .map(|t| super::timestamp(&t.0))
        .or_else(|| {
            event
                .last_timestamp
                .as_ref()
                .map(|t| super::timestamp(&t.0))
        })
        .or_else(|| event.event_time.as_ref().map(|t| super::timestamp(&t.0)))
        .or_else(|| {
            event
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| super::timestamp(&t.0))
        })
        .unwrap_or_default();
    let mut message = event.message.unwrap_or_default();
    if message.len() > MAX_EVENT_MESSAGE {
        let mut cut = MAX_EVENT_MESSAGE;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    Some(EventRow {
        gitsync,
        warning: event.type_.as_deref() == Some("Warning"),
        reason: event.reason.unwrap_or_default(),
        message,
        count,
        last,
    })
}
