//! Request routing and the REST verbs (get, list, create, update, patch, delete,
//! deletecollection); watch lives in `watch.rs`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use super::error::{apply_conflict, ApiError, ApiResult};
use super::fieldmanager::{self, FieldManagerError, FieldManagerOptions, TypeSchema};
use super::kinds;
use super::patch::{self, PatchError};
use super::resources::{str_list, ResourceDef};
use super::selectors::{FieldSelector, LabelSelector};
use super::server::Shared;
use super::store::{ObjKey, Store};
use super::{control, discovery, openapi, scale, table, tokens, watch};

/// kube-apiserver's request body limit (3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// The current time as kube-apiserver stamps it (RFC 3339, seconds, UTC).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A JSON response with the headers kube-apiserver sends.
pub fn json_response(code: u16, body: &Value) -> Response<Body> {
    json_response_typed(code, body, "application/json")
}

/// A JSON response with an explicit Content-Type.
pub fn json_response_typed(code: u16, body: &Value, content_type: &str) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    add_common_headers(resp.headers_mut());
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(CONTENT_TYPE, v);
    }
    resp
}

/// Headers every kube-apiserver response carries.
pub fn add_common_headers(h: &mut HeaderMap) {
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        h.insert("audit-id", v);
    }
}

/// The Status response for an error.
pub fn error_response(e: &ApiError) -> Response<Body> {
    let mut resp = json_response(e.code, &e.status());
    if e.code == 429 {
        resp.headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
    }
    resp
}

fn text_response(code: u16, body: &str) -> Response<Body> {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    add_common_headers(resp.headers_mut());
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// A parsed request, body already read.
#[derive(Debug)]
pub struct Req {
    /// HTTP method.
    pub method: Method,
    /// Decoded path segments.
    pub segments: Vec<String>,
    /// The raw path.
    pub path: String,
    /// Query parameters (last value wins, except `dryRun` which is checked for "All").
    pub query: HashMap<String, String>,
    /// Whether any `dryRun` value is `All`.
    pub dry_run: bool,
    /// Request headers.
    pub headers: HeaderMap,
    /// Request body.
    pub body: Bytes,
}

impl Req {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn q(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    fn q_bool(&self, name: &str) -> bool {
        matches!(self.q(name), Some("true") | Some("1"))
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads the request, applies faults and dispatches it.
pub async fn handle(shared: Arc<Shared>, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let method = parts.method.clone();
    tracing::debug!(
        method = %method,
        uri = %parts.uri,
        content_type = ?parts.headers.get(CONTENT_TYPE),
        accept = ?parts.headers.get("accept"),
        user_agent = ?parts.headers.get("user-agent"),
        "request"
    );

    if path.starts_with(control::PREFIX) {
        let body = match read_body(body).await {
            Ok(b) => b,
            Err(e) => return error_response(&e),
        };
        return control::handle(&shared, &method, &path, &body).await;
    }

    let delay = shared.faults.latency_for(method.as_str(), &path);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(err) = shared.faults.take_failure(method.as_str(), &path) {
        return error_response(&err);
    }

    let body = match read_body(body).await {
        Ok(b) => b,
        Err(e) => return error_response(&e),
    };
    let mut query = HashMap::new();
    let mut dry_run = false;
    if let Some(q) = parts.uri.query() {
        if let Ok(axum::extract::Query(pairs)) =
            axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        {
            for (k, v) in pairs {
                if k == "dryRun" && v == "All" {
                    dry_run = true;
                }
                query.insert(k, v);
            }
        } else {
            return error_response(&ApiError::bad_request(format!(
                "invalid query string {q:?}"
            )));
        }
    }
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let req = Req {
        method,
        segments,
        path,
        query,
        dry_run,
        headers: parts.headers,
        body,
    };
    match route(&shared, req).await {
        Ok(resp) => resp,
        Err(e) => error_response(&e),
    }
}

async fn read_body(body: hyper::body::Incoming) -> ApiResult<Bytes> {
    match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(ApiError::too_large(MAX_BODY))
            } else {
                Err(ApiError::bad_request(format!(
                    "error reading request body: {e}"
                )))
            }
        }
    }
}

/// What a resource URL addresses.
#[derive(Debug, Clone)]
pub struct Target {
    /// The resource.
    pub def: ResourceDef,
    /// The version in the URL.
    pub version: String,
    /// Namespace from the URL.
    pub namespace: Option<String>,
    /// Object name from the URL.
    pub name: Option<String>,
    /// Subresource from the URL.
    pub sub: Option<String>,
    /// Whether the legacy `/watch/` prefix was used.
    pub watch_prefix: bool,
}

impl Target {
    /// The store key of object `name` of this target.
    pub fn key(&self, name: &str) -> ObjKey {
        ObjKey::new(&self.def, self.namespace.as_deref().unwrap_or(""), name)
    }

    /// The URL's apiVersion.
    pub fn api_version(&self) -> String {
        self.def.api_version(&self.version)
    }
}

async fn route(shared: &Arc<Shared>, req: Req) -> ApiResult<Response<Body>> {
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let accept = req.header("accept").to_string();
    let defs = shared.lock().resources();
    match segs.as_slice() {
        [] => Ok(json_response(
            200,
            &json!({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version", "/openid/v1/jwks", "/.well-known/openid-configuration"]}),
        )),
        ["version"] => Ok(json_response(200, &discovery::version())),
        ["healthz"] | ["livez"] | ["readyz"] => Ok(text_response(200, "ok")),
        [".well-known", "openid-configuration"] => Ok(json_response(
            200,
            &shared.tokens.openid_configuration(&shared.url),
        )),
        ["openid", "v1", "jwks"] => Ok(json_response_typed(
            200,
            &shared.tokens.jwks(),
            "application/jwk-set+json",
        )),
        // An empty OpenAPI v2 document (a zero-length protobuf message is a valid empty
        // Document). kubectl falls back to v2 client-side validation for kinds the v3
        // documents do not cover (a CR whose CRD is applied in the same run); with no
        // schemas, that validation accepts them, as it does for schema-less kinds on a real
        // server.
        ["openapi", "v2"] => {
            let mut resp = Response::new(Body::empty());
            add_common_headers(resp.headers_mut());
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                ),
            );
            Ok(resp)
        }
        ["openapi", "v3"] => Ok(json_response(200, &openapi::index(&defs))),
        ["openapi", "v3", "api", "v1"] => openapi::group_version(&defs, "", "v1")
            .map(|d| json_response(200, &d))
            .ok_or_else(ApiError::page_not_found),
        ["openapi", "v3", "apis", group, version] => openapi::group_version(&defs, group, version)
            .map(|d| json_response(200, &d))
            .ok_or_else(ApiError::page_not_found),
        ["api"] => {
            if discovery::wants_aggregated(&accept) {
                Ok(json_response_typed(
                    200,
                    &discovery::aggregated(&defs, true),
                    discovery::AGGREGATED_V2,
                ))
            } else {
                Ok(json_response(
                    200,
                    &discovery::api_versions(&shared.addr.to_string()),
                ))
            }
        }
        ["apis"] => {
            if discovery::wants_aggregated(&accept) {
                Ok(json_response_typed(
                    200,
                    &discovery::aggregated(&defs, false),
                    discovery::AGGREGATED_V2,
                ))
            } else {
                Ok(json_response(200, &discovery::api_group_list(&defs)))
            }
        }
        ["api", "v1"] => discovery::resource_list(&defs, "", "v1")
            .map(|d| json_response(200, &d))
            .ok_or_else(ApiError::page_not_found),
        ["apis", group] => discovery::api_group_doc(&defs, group)
            .map(|d| json_response(200, &d))
            .ok_or_else(ApiError::page_not_found),
        ["apis", group, version] => discovery::resource_list(&defs, group, version)
            .map(|d| json_response(200, &d))
            .ok_or_else(ApiError::page_not_found),
        ["api", "v1", rest @ ..] => {
            let t = resolve(&defs, "", "v1", rest)?;
            dispatch(shared, &req, t).await
        }
        ["apis", group, version, rest @ ..] => {
            let t = resolve(&defs, group, version, rest)?;
            dispatch(shared, &req, t).await
        }
        _ => Err(ApiError::page_not_found()),
    }
}

fn resolve(defs: &[ResourceDef], group: &str, version: &str, rest: &[&str]) -> ApiResult<Target> {
    let (watch_prefix, rest) = match rest {
        ["watch", tail @ ..] => (true, tail),
        _ => (false, rest),
    };
    let ns_subresource = group.is_empty()
        && rest.len() == 3
        && rest[0] == "namespaces"
        && matches!(rest[2], "status" | "finalize");
    let (namespace, tail) = match rest {
        ["namespaces", ns, tail @ ..] if !tail.is_empty() && !ns_subresource => {
            (Some(ns.to_string()), tail)
        }
        _ => (None, rest),
    };
    let (plural, name, sub) = match tail {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(n.to_string()), None),
        [p, n, s] => (*p, Some(n.to_string()), Some(s.to_string())),
        _ => return Err(ApiError::page_not_found()),
    };
    let def = defs
        .iter()
        .find(|d| d.is(group, plural) && d.versions.iter().any(|v| v == version))
        .ok_or_else(ApiError::page_not_found)?;
    if namespace.is_some() && !def.namespaced {
        return Err(ApiError::page_not_found());
    }
    if namespace.is_none() && def.namespaced && name.is_some() {
        return Err(ApiError::page_not_found());
    }
    if let Some(s) = &sub {
        let ok = (s == "status" && def.status)
            || (s == "scale" && def.scale)
            || (s == "token" && def.is("", "serviceaccounts"))
            || (s == "finalize" && def.is("", "namespaces"));
        if !ok {
            return Err(ApiError::page_not_found());
        }
    }
    Ok(Target {
        def: def.clone(),
        version: version.to_string(),
        namespace,
        name,
        sub,
        watch_prefix,
    })
}

async fn dispatch(shared: &Arc<Shared>, req: &Req, t: Target) -> ApiResult<Response<Body>> {
    let verb = match (&req.method, &t.name, &t.sub) {
        (&Method::GET, _, _) if t.watch_prefix || req.q_bool("watch") => "watch",
        (&Method::GET, None, _) => "list",
        (&Method::GET, Some(_), _) => "get",
        (&Method::POST, None, _) => "create",
        (&Method::POST, Some(_), Some(s)) if s == "token" => "create",
        (&Method::PUT, Some(_), _) => "update",
        (&Method::PATCH, Some(_), _) => "patch",
        (&Method::DELETE, Some(_), None) => "delete",
        (&Method::DELETE, None, None) => "deletecollection",
        _ => return Err(ApiError::method_not_allowed()),
    };
    let sub_ok = match t.sub.as_deref() {
        None => t.def.allows(verb),
        Some("status") | Some("scale") => matches!(verb, "get" | "update" | "patch"),
        Some("finalize") => verb == "update",
        Some("token") => verb == "create",
        Some(_) => false,
    };
    if !sub_ok {
        return Err(ApiError::method_not_allowed());
    }
    match verb {
        "watch" => watch::serve(shared, req, &t),
        "list" => list(shared, req, &t),
        "get" => get(shared, req, &t),
        "create" => {
            if t.sub.as_deref() == Some("token") {
                return tokens::token_request(shared, req, &t);
            }
            if t.def.is("authentication.k8s.io", "tokenreviews") {
                return tokens::token_review(shared, req, &t);
            }
            let obj = parse_body(req)?;
            let (code, out) = create(shared, &t, obj, &manager_for(req), req.dry_run)?;
            Ok(json_response(code, &render_one(&t, &out, req)))
        }
        "update" => update(shared, req, &t),
        "patch" => patch(shared, req, &t),
        "delete" => delete(shared, req, &t),
        "deletecollection" => delete_collection(shared, req, &t),
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// The field manager for a non-apply write: the `fieldManager` parameter, or the part of
/// the User-Agent before the first '/', as kube-apiserver derives it.
pub fn manager_for(req: &Req) -> String {
    if let Some(m) = req.q("fieldManager").filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    let ua = req.header("user-agent");
    let prefix: String = ua
        .split('/')
        .next()
        .unwrap_or_default()
        .chars()
        .take(128)
        .collect();
    prefix
}

/// Parses a JSON or YAML request body into an object.
pub fn parse_body(req: &Req) -> ApiResult<Value> {
    let ct = req.header("content-type").to_ascii_lowercase();
    if ct.contains("protobuf") || ct.contains("cbor") {
        return Err(ApiError::unsupported_media_type(
            &ct,
            &["application/json", "application/yaml"],
        ));
    }
    parse_document(&req.body)
}

pub(super) fn parse_document(body: &[u8]) -> ApiResult<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the body of the request was empty"));
    }
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(json_err) => serde_yaml::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "error decoding request body: {json_err}; as YAML: {e}"
            ))
        })?,
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    Ok(v)
}

pub(super) fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

fn meta_mut(obj: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        if let Some(m) = obj.as_object_mut() {
            m.insert("metadata".into(), json!({}));
        }
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        // Only reachable if `obj` itself is not an object, which parse_document rules out.
        _ => unreachable!("request bodies are checked to be JSON objects"),
    }
}

fn finalizers(obj: &Value) -> Vec<String> {
    str_list(obj.pointer("/metadata/finalizers"))
}

/// Checks and fills apiVersion/kind against the URL's resource.
fn check_type(t: &Target, obj: &mut Value) -> ApiResult<()> {
    check_type_is(obj, &t.api_version(), &t.def.kind)
}

/// Fills a missing apiVersion/kind of a written object and refuses other types, as the
/// decoder of the URL's type does.
pub(super) fn check_type_is(obj: &mut Value, want_av: &str, want_kind: &str) -> ApiResult<()> {
    let map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the body of the request must be a JSON object"))?;
    for (field, want, what) in [
        ("apiVersion", want_av, "API version"),
        ("kind", want_kind, "kind"),
    ] {
        match map.get(field).and_then(Value::as_str) {
            None | Some("") => {
                map.insert(field.into(), json!(want));
            }
            Some(have) if have != want => {
                return Err(ApiError::bad_request(format!(
                    "the {what} in the data ({have}) does not match the expected {what} ({want})"
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_namespace(t: &Target, obj: &mut Value) -> ApiResult<()> {
    let url_ns = t.namespace.clone().unwrap_or_default();
    let meta = meta_mut(obj);
    if t.def.namespaced {
        match meta.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != url_ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                meta.insert("namespace".into(), json!(url_ns));
            }
        }
    } else {
        meta.remove("namespace");
    }
    Ok(())
}

fn generate_name(prefix: &str) -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    let max_prefix = 63usize.saturating_sub(5);
    let p: String = prefix.chars().take(max_prefix).collect();
    format!("{p}{suffix}")
}

/// Refuses writes into a missing or terminating namespace.
fn check_namespace_usable(store: &Store, t: &Target, name: &str) -> ApiResult<()> {
    if !t.def.namespaced {
        return Ok(());
    }
    let ns = t.namespace.as_deref().unwrap_or_default();
    match store.get(&ObjKey::namespace(ns)) {
        None => Err(ApiError::namespace_not_found(ns)),
        Some(n) if n.pointer("/metadata/deletionTimestamp").is_some() => {
            let mut d = serde_json::Map::new();
            d.insert("name".into(), json!(name));
            if !t.def.group.is_empty() {
                d.insert("group".into(), json!(t.def.group));
            }
            d.insert("kind".into(), json!(t.def.plural));
            d.insert("causes".into(), json!([{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]));
            Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                    t.def.qualified(),
                    name,
                    ns
                ),
            )
            .with_details(Value::Object(d)))
        }
        Some(_) => Ok(()),
    }
}

fn crd_terminating(store: &Store, def: &ResourceDef) -> bool {
    if !def.custom {
        return false;
    }
    store
        .get(&ObjKey::crd_of(def))
        .is_some_and(|c| c.pointer("/metadata/deletionTimestamp").is_some())
}

/// Creates an object (POST, or server-side apply of a missing object when `applied` is set).
pub fn create(
    shared: &Shared,
    t: &Target,
    mut obj: Value,
    manager: &str,
    dry_run: bool,
) -> ApiResult<(u16, Value)> {
    create_inner(shared, t, &mut obj, manager, dry_run, false)?;
    Ok((201, obj))
}

fn create_inner(
    shared: &Shared,
    t: &Target,
    obj: &mut Value,
    manager: &str,
    dry_run: bool,
    from_apply: bool,
) -> ApiResult<()> {
    check_type(t, obj)?;
    check_namespace(t, obj)?;
    let now = now();
    {
        let meta = meta_mut(obj);
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => {
                    let generated = generate_name(prefix);
                    meta.insert("name".into(), json!(generated));
                }
                _ => {
                    return Err(ApiError::invalid(
                        &t.def.qualified_kind(),
                        &t.def.group,
                        "",
                        vec![super::error::Cause {
                            reason: "FieldValueRequired".into(),
                            message: "Required value: name or generateName is required".into(),
                            field: "metadata.name".into(),
                        }],
                    ));
                }
            }
        }
        for f in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            meta.remove(f);
        }
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(now));
        if t.def.has_generation {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
    }
    let name = meta_str(obj, "name").unwrap_or_default().to_string();
    kinds::validate_name(&t.def, &name)?;
    // Status is owned by controllers: a create through the main resource drops it.
    if t.def.status {
        if let Some(m) = obj.as_object_mut() {
            m.remove("status");
        }
    }
    kinds::on_write(&t.def, obj, None, &now)?;
    let mut store = shared.lock();
    check_namespace_usable(&store, t, &name)?;
    if crd_terminating(&store, &t.def) {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "create not allowed while custom resource definition is terminating",
        ));
    }
    let key = t.key(&name);
    if store.get(&key).is_some() {
        return Err(ApiError::already_exists(&t.def, &name));
    }
    if !from_apply {
        let schema = crd_schema(&store, t);
        *obj = fieldmanager::record_update_with(
            None,
            std::mem::take(obj),
            manager,
            &now,
            &fm_options(t, schema.as_ref()),
        );
    }
    if dry_run {
        return Ok(());
    }
    let stored = store.put(key, std::mem::take(obj), None);
    *obj = (*stored).clone();
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Put,
    Patch,
    Apply,
    /// A write through `/scale`: the caller has merged the Scale's managedFields already.
    Scale,
}

impl Mode {
    /// Whether the caller has computed managedFields (server-side apply, scale), so the update
    /// must neither record an Update nor fall back to the stored managedFields.
    fn fields_recorded(self) -> bool {
        matches!(self, Mode::Apply | Mode::Scale)
    }
}

/// The schema of a custom resource's version from its CRD (None for built-in kinds, which the
/// field manager knows).
pub(super) fn crd_schema(store: &Store, t: &Target) -> Option<TypeSchema> {
    if !t.def.custom {
        return None;
    }
    store
        .get(&ObjKey::crd_of(&t.def))
        .and_then(|crd| TypeSchema::from_crd(&crd, &t.version))
}

/// Field-manager options for a write to `t`: its subresource, whether the kind has a status
/// subresource (so the main resource ignores `.status` and `/status` everything else), and the
/// CRD schema of custom resources.
pub(super) fn fm_options<'a>(
    t: &'a Target,
    schema: Option<&'a TypeSchema>,
) -> FieldManagerOptions<'a> {
    FieldManagerOptions {
        subresource: t.sub.as_deref(),
        status_subresource: Some(t.def.status),
        schema,
    }
}

fn strip_times(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(mf) = v
        .get_mut("metadata")
        .and_then(|m| m.get_mut("managedFields"))
        .and_then(Value::as_array_mut)
    {
        for e in mf.iter_mut() {
            if let Some(e) = e.as_object_mut() {
                e.remove("time");
            }
        }
    }
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    v
}

fn spec_part(def: &ResourceDef, obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        if def.status {
            m.remove("status");
        }
    }
    v
}

/// Applies an update to a stored object: server-owned metadata, status subresource rules,
/// finalizers, generation, managedFields and no-op detection. Returns the HTTP code and
/// the resulting object.
pub(super) fn commit_update(
    store: &mut Store,
    t: &Target,
    old: &Arc<Value>,
    mut new: Value,
    mode: Mode,
    manager: &str,
    dry_run: bool,
) -> ApiResult<(u16, Value)> {
    let name = meta_str(old, "name").unwrap_or_default().to_string();
    let old_rv = meta_str(old, "resourceVersion")
        .unwrap_or_default()
        .to_string();
    if let Some(rv) = meta_str(&new, "resourceVersion") {
        if !rv.is_empty() && rv != old_rv {
            return Err(ApiError::stale(&t.def, &name));
        }
    }
    if mode == Mode::Put && t.def.is("", "namespaces") && t.sub.is_none() {
        // `spec.finalizers` of a namespace only change through /finalize.
        if let (Some(m), Some(f)) = (new.as_object_mut(), old.pointer("/spec/finalizers")) {
            let spec = m.entry("spec").or_insert_with(|| json!({}));
            if let Some(s) = spec.as_object_mut() {
                s.insert("finalizers".into(), f.clone());
            }
        }
    }
    let now = now();
    let sub = t.sub.as_deref();
    if sub == Some("status") {
        // A status write changes only status (and the managedFields that track it).
        let mut merged = (**old).clone();
        let status = new.get("status").cloned();
        let mf = new.pointer("/metadata/managedFields").cloned();
        if let Some(m) = merged.as_object_mut() {
            match status {
                Some(s) => m.insert("status".into(), s),
                None => m.remove("status"),
            };
        }
        if mode.fields_recorded() {
            if let Some(mf) = mf {
                meta_mut(&mut merged).insert("managedFields".into(), mf);
            }
        }
        new = merged;
    } else {
        check_type(t, &mut new)?;
        if t.def.status {
            if let Some(m) = new.as_object_mut() {
                match old.get("status") {
                    Some(s) => m.insert("status".into(), s.clone()),
                    None => m.remove("status"),
                };
            }
        }
        let meta = meta_mut(&mut new);
        for f in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "namespace",
            "name",
        ] {
            match old.get("metadata").and_then(|m| m.get(f)) {
                Some(v) => meta.insert(f.into(), v.clone()),
                None => meta.remove(f),
            };
        }
        if !mode.fields_recorded() && !meta.contains_key("managedFields") {
            if let Some(mf) = old.pointer("/metadata/managedFields") {
                meta.insert("managedFields".into(), mf.clone());
            }
        }
    }
    meta_mut(&mut new).insert("resourceVersion".into(), json!(old_rv));

    if old.pointer("/metadata/deletionTimestamp").is_some() {
        let before = finalizers(old);
        let added: Vec<String> = finalizers(&new)
            .into_iter()
            .filter(|f| !before.contains(f))
            .collect();
        if !added.is_empty() {
            return Err(ApiError::invalid(
                &t.def.qualified_kind(),
                &t.def.group,
                &name,
                vec![super::error::Cause {
                    reason: "FieldValueForbidden".into(),
                    message: format!(
                        "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                        added.iter().map(|f| format!("{f:?}")).collect::<Vec<_>>().join(", ")
                    ),
                    field: "metadata.finalizers".into(),
                }],
            ));
        }
    }

    kinds::on_write(&t.def, &mut new, Some(old), &now)?;

    if t.def.has_generation && spec_part(&t.def, &new) != spec_part(&t.def, old) {
        let g = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        meta_mut(&mut new).insert("generation".into(), json!(g + 1));
    }

    if !mode.fields_recorded() {
        let schema = crd_schema(store, t);
        new = fieldmanager::record_update_with(
            Some(old),
            new,
            manager,
            &now,
            &fm_options(t, schema.as_ref()),
        );
    }

    if strip_times(&new) == strip_times(old) {
        return Ok((200, (**old).clone()));
    }

    let finished =
        new.pointer("/metadata/deletionTimestamp").is_some() && finalizers(&new).is_empty();
    if dry_run {
        return Ok((200, new));
    }
    let key = t.key(&name);
    if finished {
        // The last finalizer is gone: the object is deleted now. kube-apiserver answers the
        // update with the object and watchers see DELETED.
        let stored = store.put(key.clone(), new, Some(Arc::clone(old)));
        let last = remove_and_cascade(store, &key).unwrap_or(stored);
        return Ok((200, (*last).clone()));
    }
    let stored = store.put(key, new, Some(Arc::clone(old)));
    Ok((200, (*stored).clone()))
}

fn get(shared: &Shared, req: &Req, t: &Target) -> ApiResult<Response<Body>> {
    let name = t.name.clone().unwrap_or_default();
    let obj = shared
        .lock()
        .get(&t.key(&name))
        .ok_or_else(|| ApiError::not_found(&t.def, &name))?;
    if t.sub.as_deref() == Some("scale") {
        return Ok(json_response(200, &scale::scale_of(&obj)));
    }
    Ok(json_response(200, &render_one(t, &obj, req)))
}

/// The object as the client asked for it: apiVersion of the URL's version, as a Table or
/// PartialObjectMetadata when the Accept header asks.
fn render_one(t: &Target, obj: &Value, req: &Req) -> Value {
    let accept = req.header("accept");
    let out = output(t, obj, false);
    if table::wants_table(accept) {
        let rv = meta_str(obj, "resourceVersion")
            .unwrap_or_default()
            .to_string();
        return table::to_table(&t.def, &[out], &rv, None, req.q("includeObject"));
    }
    if table::wants_partial(accept) {
        return table::partial(&out);
    }
    out
}

/// An object as served at the target's version. Built-in list items carry no
/// apiVersion/kind, as typed lists from kube-apiserver do.
pub fn output(t: &Target, obj: &Value, list_item: bool) -> Value {
    let mut out = obj.clone();
    if let Some(m) = out.as_object_mut() {
        if list_item && !t.def.custom {
            m.remove("apiVersion");
            m.remove("kind");
        } else {
            // Insert at the front is not possible with the map type; key order is not
            // significant to clients.
            m.insert("apiVersion".into(), json!(t.api_version()));
            m.insert("kind".into(), json!(t.def.kind));
        }
    }
    out
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    v: String,
    rv: u64,
    start: String,
}

fn decode_continue(token: &str) -> ApiResult<(u64, String, String)> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token:?}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(token))
        .map_err(|_| bad())?;
    let tok: ContinueToken = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let (ns, name) = tok.start.split_once('/').ok_or_else(bad)?;
    Ok((tok.rv, ns.to_string(), name.to_string()))
}

fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    let tok = ContinueToken {
        v: "meta.k8s.io/v1".into(),
        rv,
        start: format!("{ns}/{name}"),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&tok).unwrap_or_default())
}

/// Parses labelSelector and fieldSelector from the query.
pub fn selectors(req: &Req, t: &Target) -> ApiResult<(LabelSelector, FieldSelector)> {
    let ls = LabelSelector::parse(req.q("labelSelector").unwrap_or_default())
        .map_err(ApiError::bad_request)?;
    let fs = FieldSelector::parse(
        req.q("fieldSelector").unwrap_or_default(),
        &t.def.group,
        &t.def.plural,
    )
    .map_err(ApiError::bad_request)?;
    Ok((ls, fs))
}

fn list(shared: &Shared, req: &Req, t: &Target) -> ApiResult<Response<Body>> {
    let (ls, fs) = selectors(req, t)?;
    let limit: usize = match req.q("limit") {
        Some(l) if !l.is_empty() => l
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?
            .max(0) as usize,
        _ => 0,
    };
    let store = shared.lock();
    let (list_rv, after) = match req.q("continue").filter(|c| !c.is_empty()) {
        Some(c) => {
            let (rv, ns, name) = decode_continue(c)?;
            if rv < store.compacted() {
                return Err(ApiError::expired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list."));
            }
            (rv, Some((ns, name)))
        }
        None => (store.rv(), None),
    };
    let all = store.list(
        &t.def,
        t.namespace.as_deref(),
        after.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
    );
    drop(store);
    let matching: Vec<(ObjKey, Arc<Value>)> = all
        .into_iter()
        .filter(|(_, o)| ls.matches(o) && fs.matches(o))
        .collect();
    let total = matching.len();
    let take = if limit > 0 { limit.min(total) } else { total };
    let mut meta = serde_json::Map::new();
    meta.insert("resourceVersion".into(), json!(list_rv.to_string()));
    if take < total {
        if let Some((k, _)) = matching.get(take.saturating_sub(1)) {
            meta.insert(
                "continue".into(),
                json!(encode_continue(list_rv, &k.namespace, &k.name)),
            );
            meta.insert("remainingItemCount".into(), json!(total - take));
        }
    }
    let items: Vec<Value> = matching[..take]
        .iter()
        .map(|(_, o)| output(t, o, true))
        .collect();
    let accept = req.header("accept");
    if table::wants_table(accept) {
        let full: Vec<Value> = matching[..take]
            .iter()
            .map(|(_, o)| output(t, o, false))
            .collect();
        let cont = meta
            .get("continue")
            .and_then(Value::as_str)
            .map(str::to_string);
        return Ok(json_response(
            200,
            &table::to_table(
                &t.def,
                &full,
                &list_rv.to_string(),
                cont.as_deref(),
                req.q("includeObject"),
            ),
        ));
    }
    if table::wants_partial(accept) {
        let full: Vec<Value> = matching[..take]
            .iter()
            .map(|(_, o)| table::partial(&output(t, o, false)))
            .collect();
        return Ok(json_response(
            200,
            &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": Value::Object(meta), "items": full}),
        ));
    }
    Ok(json_response(
        200,
        &json!({
            "kind": t.def.list_kind(),
            "apiVersion": t.api_version(),
            "metadata": Value::Object(meta),
            "items": items,
        }),
    ))
}

fn update(shared: &Shared, req: &Req, t: &Target) -> ApiResult<Response<Body>> {
    let name = t.name.clone().unwrap_or_default();
    let mut new = parse_body(req)?;
    match meta_str(&new, "name") {
        Some(n) if n != name => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        _ => {}
    }
    if t.sub.as_deref() == Some("scale") {
        return scale::write(shared, req, t, scale::Change::Replace(new));
    }
    if t.sub.is_none() {
        check_type(t, &mut new)?;
    }
    check_namespace(t, &mut new)?;
    let manager = manager_for(req);
    let mut store = shared.lock();
    let old = store
        .get(&t.key(&name))
        .ok_or_else(|| ApiError::not_found(&t.def, &name))?;
    let (code, out) = if t.sub.as_deref() == Some("finalize") {
        // Namespace finalize: only spec.finalizers changes.
        let mut merged = (*old).clone();
        if let (Some(m), Some(f)) = (merged.as_object_mut(), new.pointer("/spec/finalizers")) {
            let spec = m.entry("spec").or_insert_with(|| json!({}));
            if let Some(s) = spec.as_object_mut() {
                s.insert("finalizers".into(), f.clone());
            }
        }
        let nt = Target {
            sub: None,
            ..t.clone()
        };
        commit_update(
            &mut store,
            &nt,
            &old,
            merged,
            Mode::Patch,
            &manager,
            req.dry_run,
        )?
    } else {
        commit_update(&mut store, t, &old, new, Mode::Put, &manager, req.dry_run)?
    };
    drop(store);
    Ok(json_response(code, &render_one(t, &out, req)))
}

// The catch-all arms keep this compiling when the patch engineer adds variants.
#[allow(unreachable_patterns)]
pub(super) fn patch_error(e: PatchError) -> ApiError {
    match e {
        PatchError::Malformed(m) => ApiError::bad_request(m),
        PatchError::Failed(m) => ApiError::new(422, "Invalid", m),
        other => ApiError::internal(other),
    }
}

/// The HTTP error for a field-manager error: 409 with kube-apiserver's conflict message and
/// `FieldManagerConflict` causes, 400 for a bad request, 422 for an invalid configuration.
// The catch-all arm keeps this compiling when the field-manager engineer adds variants.
#[allow(unreachable_patterns)]
pub(super) fn fm_error(e: FieldManagerError, t: &Target, name: &str) -> ApiError {
    match e {
        FieldManagerError::Conflict(_) => apply_conflict(e.to_string(), &e.conflict_pairs()),
        FieldManagerError::BadRequest(m) => ApiError::bad_request(m),
        FieldManagerError::Invalid(m) => ApiError::invalid(
            &t.def.qualified_kind(),
            &t.def.group,
            name,
            vec![super::error::Cause {
                reason: "FieldValueInvalid".into(),
                message: m,
                field: String::new(),
            }],
        ),
        other => ApiError::internal(other),
    }
}

const PATCH_TYPES_BUILTIN: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
    "application/strategic-merge-patch+json",
];

fn patch(shared: &Shared, req: &Req, t: &Target) -> ApiResult<Response<Body>> {
    let name = t.name.clone().unwrap_or_default();
    let ct = req
        .header("content-type")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let accepted: &[&str] = if t.def.custom {
        &PATCH_TYPES_BUILTIN[..3]
    } else {
        PATCH_TYPES_BUILTIN
    };
    if !accepted.contains(&ct.as_str()) {
        return Err(ApiError::unsupported_media_type(&ct, accepted));
    }
    let apply = ct == "application/apply-patch+yaml";
    let force = req.q("force");
    if apply {
        if req.q("fieldManager").is_none_or(str::is_empty) {
            return Err(patch_options_invalid(
                "FieldValueRequired",
                "fieldManager",
                "Required value: is required for apply patch",
            ));
        }
    } else if force.is_some() {
        return Err(patch_options_invalid(
            "FieldValueForbidden",
            "force",
            "Forbidden: may not be specified for non-apply patch",
        ));
    }
    let manager = manager_for(req);
    if t.sub.as_deref() == Some("scale") {
        let change = if apply {
            scale::Change::Apply {
                applied: parse_document(&req.body)?,
                force: force == Some("true"),
            }
        } else {
            scale::Change::Patch {
                content_type: ct,
                patch: patch_document(req)?,
            }
        };
        return scale::write(shared, req, t, change);
    }
    if apply {
        return apply_patch(shared, req, t, &name, &manager, force == Some("true"));
    }
    let patch_doc = patch_document(req)?;
    let mut store = shared.lock();
    let old = store
        .get(&t.key(&name))
        .ok_or_else(|| ApiError::not_found(&t.def, &name))?;
    let base = apply_patch_document(
        &ct,
        &output(t, &old, false),
        &patch_doc,
        &t.api_version(),
        &t.def.kind,
        &name,
    )?;
    let (code, out) = commit_update(
        &mut store,
        t,
        &old,
        base,
        Mode::Patch,
        &manager,
        req.dry_run,
    )?;
    drop(store);
    Ok(json_response(code, &render_one(t, &out, req)))
}

/// The body of a non-apply patch.
fn patch_document(req: &Req) -> ApiResult<Value> {
    serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
}

/// Applies a JSON, merge or strategic merge patch (by content type) to `base`, an object of
/// `api_version`/`kind` named `name`, and checks that the result is still that object.
pub(super) fn apply_patch_document(
    content_type: &str,
    base: &Value,
    patch_doc: &Value,
    api_version: &str,
    kind: &str,
    name: &str,
) -> ApiResult<Value> {
    let patched = match content_type {
        "application/json-patch+json" => patch::json_patch(base, patch_doc),
        "application/merge-patch+json" => patch::json_merge_patch(base, patch_doc),
        _ => patch::strategic_merge_patch(base, patch_doc, api_version, kind),
    }
    .map_err(patch_error)?;
    if !patched.is_object() {
        return Err(ApiError::bad_request(
            "the patched object is not a JSON object",
        ));
    }
    match meta_str(&patched, "name") {
        Some(n) if n == name => Ok(patched),
        other => Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            other.unwrap_or_default()
        ))),
    }
}

fn patch_options_invalid(reason: &str, field: &str, message: &str) -> ApiError {
    ApiError {
        code: 422,
        reason: "Invalid".into(),
        message: format!("PatchOptions.meta.k8s.io \"\" is invalid: {field}: {message}"),
        details: Some(json!({
            "group": "meta.k8s.io",
            "kind": "PatchOptions",
            "causes": [{"reason": reason, "message": message, "field": field}],
        })),
    }
}

fn apply_patch(
    shared: &Shared,
    req: &Req,
    t: &Target,
    name: &str,
    manager: &str,
    force: bool,
) -> ApiResult<Response<Body>> {
    let applied = parse_document(&req.body)?;
    check_applied(t, &applied, &req.body, name, &t.api_version(), &t.def.kind)?;
    let now = now();
    let mut store = shared.lock();
    let live = store.get(&t.key(name));
    if let (Some(rv), Some(live)) = (meta_str(&applied, "resourceVersion"), &live) {
        if !rv.is_empty() && Some(rv) != meta_str(live, "resourceVersion") {
            return Err(ApiError::stale(&t.def, name));
        }
    }
    let live_out = live.as_ref().map(|l| output(t, l, false));
    let schema = crd_schema(&store, t);
    let merged = fieldmanager::server_side_apply_with(
        live_out.as_ref(),
        &applied,
        manager,
        force,
        &now,
        &fm_options(t, schema.as_ref()),
    )
    .map_err(|e| fm_error(e, t, name))?;
    let (code, out) = match live {
        None => {
            if t.sub.is_some() {
                return Err(ApiError::not_found(&t.def, name));
            }
            drop(store);
            let mut obj = merged;
            create_inner(shared, t, &mut obj, manager, req.dry_run, true)?;
            (201, obj)
        }
        Some(old) => {
            let r = commit_update(
                &mut store,
                t,
                &old,
                merged,
                Mode::Apply,
                manager,
                req.dry_run,
            )?;
            drop(store);
            r
        }
    };
    Ok(json_response(code, &render_one(t, &out, req)))
}

/// The request checks kube-apiserver makes on an applied configuration before server-side
/// apply: type (`want_av`/`want_kind`), name and namespace against the URL. (The field manager
/// refuses `metadata.managedFields` itself.)
pub(super) fn check_applied(
    t: &Target,
    applied: &Value,
    body: &[u8],
    name: &str,
    want_av: &str,
    want_kind: &str,
) -> ApiResult<()> {
    let av = applied
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = applied
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if av.is_empty() || kind.is_empty() {
        return Err(ApiError::bad_request(format!(
            "error decoding YAML: Object 'Kind' is missing in '{}'",
            String::from_utf8_lossy(body)
                .chars()
                .take(200)
                .collect::<String>()
        )));
    }
    if av != want_av {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({want_av})"
        )));
    }
    if kind != want_kind {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({want_kind})"
        )));
    }
    match meta_str(applied, "name") {
        Some(n) if n == name => {}
        other => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                other.unwrap_or_default()
            )))
        }
    }
    if t.def.namespaced {
        if let Some(ns) = meta_str(applied, "namespace") {
            if !ns.is_empty() && Some(ns) != t.namespace.as_deref() {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
    }
    Ok(())
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteOptions {
    #[serde(default)]
    dry_run: Vec<String>,
    #[serde(default)]
    preconditions: Option<Preconditions>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Preconditions {
    uid: Option<String>,
    resource_version: Option<String>,
}

fn delete_options(req: &Req) -> ApiResult<(DeleteOptions, bool)> {
    let opts: DeleteOptions = if req.body.iter().all(u8::is_ascii_whitespace) {
        DeleteOptions::default()
    } else {
        serde_json::from_slice(&req.body)
            .or_else(|_| serde_yaml::from_slice(&req.body))
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
    };
    let dry = req.dry_run || opts.dry_run.iter().any(|d| d == "All");
    Ok((opts, dry))
}

/// Removes an object and finishes whatever was waiting for it: a terminating namespace that
/// is now empty, or a terminating CRD with no objects left.
pub fn remove_and_cascade(store: &mut Store, key: &ObjKey) -> Option<Arc<Value>> {
    let last = store.remove(key)?;
    if !key.namespace.is_empty() {
        let ns_key = ObjKey::namespace(&key.namespace);
        if store
            .get(&ns_key)
            .is_some_and(|n| n.pointer("/metadata/deletionTimestamp").is_some())
            && store.keys_in_namespace(&key.namespace).is_empty()
        {
            store.remove(&ns_key);
        }
    }
    if let Some(def) = store.find(&key.group, &key.plural).cloned() {
        if def.custom && crd_terminating(store, &def) && store.list(&def, None, None).is_empty() {
            let crd_key = ObjKey::crd_of(&def);
            if let Some(crd) = store.get(&crd_key) {
                if finalizers(&crd).is_empty() {
                    store.remove(&crd_key);
                }
            }
        }
    }
    Some(last)
}

/// Deletes one stored object (used by DELETE, deletecollection and cascades). Returns
/// (deleted now, resulting object).
fn delete_one(
    store: &mut Store,
    def: &ResourceDef,
    key: &ObjKey,
    dry_run: bool,
) -> Option<(bool, Value)> {
    let old = store.get(key)?;
    let now = now();
    let is_ns = def.is("", "namespaces");
    let is_crd = def.is("apiextensions.k8s.io", "customresourcedefinitions");
    let mut pending = !finalizers(&old).is_empty();
    if is_ns {
        pending = pending || !store.keys_in_namespace(&key.name).is_empty();
    }
    let crd_def = if is_crd {
        resources_for_crd(store, &old)
    } else {
        None
    };
    if let Some(cd) = &crd_def {
        pending = pending || !store.list(cd, None, None).is_empty();
    }
    if !pending {
        if dry_run {
            return Some((true, (*old).clone()));
        }
        let last = remove_and_cascade(store, key)?;
        return Some((true, (*last).clone()));
    }
    let mut new = (*old).clone();
    if old.pointer("/metadata/deletionTimestamp").is_none() {
        let meta = meta_mut(&mut new);
        meta.insert("deletionTimestamp".into(), json!(now));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        if def.has_generation {
            let g = meta.get("generation").and_then(Value::as_i64).unwrap_or(0);
            meta.insert("generation".into(), json!(g + 1));
        }
        if is_ns {
            if let Some(m) = new.as_object_mut() {
                m.insert("status".into(), json!({"phase": "Terminating"}));
            }
        }
        if dry_run {
            return Some((false, new));
        }
        let stored = store.put(key.clone(), new, Some(Arc::clone(&old)));
        new = (*stored).clone();
    } else if dry_run {
        return Some((false, new));
    }
    // Stand-in for the namespace and CRD-cleanup controllers: delete the contents now.
    if is_ns {
        for k in store.keys_in_namespace(&key.name) {
            if let Some(d) = store.find(&k.group, &k.plural).cloned() {
                delete_one(store, &d, &k, false);
            }
        }
    }
    if let Some(cd) = crd_def {
        for (k, _) in store.list(&cd, None, None) {
            delete_one(store, &cd, &k, false);
        }
    }
    match store.get(key) {
        Some(o) => Some((false, (*o).clone())),
        None => Some((true, new)),
    }
}

fn resources_for_crd(store: &Store, crd: &Value) -> Option<ResourceDef> {
    let group = crd.pointer("/spec/group").and_then(Value::as_str)?;
    let plural = crd.pointer("/spec/names/plural").and_then(Value::as_str)?;
    store.find(group, plural).cloned()
}

fn delete(shared: &Shared, req: &Req, t: &Target) -> ApiResult<Response<Body>> {
    let name = t.name.clone().unwrap_or_default();
    let (opts, dry) = delete_options(req)?;
    let key = t.key(&name);
    let mut store = shared.lock();
    let old = store
        .get(&key)
        .ok_or_else(|| ApiError::not_found(&t.def, &name))?;
    if let Some(p) = &opts.preconditions {
        if let Some(uid) = p.uid.as_deref().filter(|u| !u.is_empty()) {
            let actual = meta_str(&old, "uid").unwrap_or_default();
            if uid != actual {
                return Err(ApiError::conflict(
                    &t.def,
                    &name,
                    &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"),
                ));
            }
        }
        if let Some(rv) = p.resource_version.as_deref().filter(|r| !r.is_empty()) {
            let actual = meta_str(&old, "resourceVersion").unwrap_or_default();
            if rv != actual {
                return Err(ApiError::conflict(
                    &t.def,
                    &name,
                    &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"),
                ));
            }
        }
    }
    let (deleted, obj) = delete_one(&mut store, &t.def, &key, dry)
        .ok_or_else(|| ApiError::not_found(&t.def, &name))?;
    drop(store);
    if deleted && !t.def.return_deleted_object {
        let mut details = serde_json::Map::new();
        details.insert("name".into(), json!(name));
        if !t.def.group.is_empty() {
            details.insert("group".into(), json!(t.def.group));
        }
        details.insert("kind".into(), json!(t.def.plural));
        details.insert(
            "uid".into(),
            json!(meta_str(&obj, "uid").unwrap_or_default()),
        );
        return Ok(json_response(
            200,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": Value::Object(details)}),
        ));
    }
    Ok(json_response(200, &render_one(t, &obj, req)))
}

fn delete_collection(shared: &Shared, req: &Req, t: &Target) -> ApiResult<Response<Body>> {
    let (ls, fs) = selectors(req, t)?;
    let (_, dry) = delete_options(req)?;
    let mut store = shared.lock();
    let keys: Vec<ObjKey> = store
        .list(&t.def, t.namespace.as_deref(), None)
        .into_iter()
        .filter(|(_, o)| ls.matches(o) && fs.matches(o))
        .map(|(k, _)| k)
        .collect();
    let mut items = Vec::new();
    for k in keys {
        if let Some((_, obj)) = delete_one(&mut store, &t.def, &k, dry) {
            items.push(output(t, &obj, true));
        }
    }
    let rv = store.rv();
    drop(store);
    Ok(json_response(
        200,
        &json!({"kind": t.def.list_kind(), "apiVersion": t.api_version(), "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
    ))
}
