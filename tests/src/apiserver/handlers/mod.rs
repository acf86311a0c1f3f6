//! Request routing and the REST verbs: get, create and update here; `list` in `listing`,
//! `patch` in `patching`, `delete` and `deletecollection` in `deleting`; watch in `watch.rs`.

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

mod deleting;
mod listing;
mod patching;

pub use deleting::*;
pub use listing::*;
pub(crate) use patching::*;

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
    json_bytes_response(
        code,
        serde_json::to_vec(body).unwrap_or_default(),
        content_type,
    )
}

/// A response whose JSON body is already serialized.
pub fn json_bytes_response(code: u16, bytes: Vec<u8>, content_type: &str) -> Response<Body> {
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
    /// Query parameters (last value wins, except `dryRun` which is checked for "All").
    pub query: HashMap<String, String>,
    /// Whether any `dryRun` value is `All`.
    pub dry_run: bool,
    /// Request headers.
    pub headers: HeaderMap,
    /// Request body.
    pub body: Bytes,
    /// Who makes the request (after impersonation).
    pub user: super::authz::UserInfo,
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

    shared.faults.count(method.as_str(), parts.uri.query());
    let delay = shared.faults.latency_for(method.as_str(), &path);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(err) = shared.faults.take_failure(method.as_str(), &path) {
        return error_response(&err);
    }

    let user = match super::authz::authenticate(&shared, &parts.headers) {
        Ok(user) => user,
        Err(e) => return error_response(&e),
    };
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
        query,
        dry_run,
        headers: parts.headers,
        body,
        user,
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
        ["api", "v1", "namespaces", ns, "services", service, "proxy", rest @ ..] => {
            super::serviceproxy::proxy(shared, &req, ns, service, rest).await
        }
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
        ["openapi", "v2"] => {
            let store = shared.lock();
            let custom = |d: &ResourceDef, v: &str| custom_schema(&store, d, v);
            if accept.contains("protobuf") {
                let body = super::openapi_v2::protobuf_document(&defs, &custom);
                drop(store);
                let mut resp = Response::new(Body::from(body));
                add_common_headers(resp.headers_mut());
                resp.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static(
                        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                    ),
                );
                Ok(resp)
            } else {
                Ok(json_response(
                    200,
                    &super::openapi_v2::json_document(&defs, &custom),
                ))
            }
        }
        ["openapi", "v3"] => {
            let store = shared.lock();
            let custom = |d: &ResourceDef, v: &str| custom_schema(&store, d, v);
            Ok(json_response(200, &openapi::index(&defs, &custom)))
        }
        ["openapi", "v3", "api", "v1"] => {
            let store = shared.lock();
            let custom = |d: &ResourceDef, v: &str| custom_schema(&store, d, v);
            openapi::group_version(&defs, "", "v1", &custom)
                .map(|d| json_response(200, &d))
                .ok_or_else(ApiError::page_not_found)
        }
        ["openapi", "v3", "apis", group, version] => {
            let store = shared.lock();
            let custom = |d: &ResourceDef, v: &str| custom_schema(&store, d, v);
            openapi::group_version(&defs, group, version, &custom)
                .map(|d| json_response(200, &d))
                .ok_or_else(ApiError::page_not_found)
        }
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
    let deprecated = t.def.is("", "endpoints");
    let mut response = dispatch_verb(shared, req, t).await?;
    if deprecated {
        // kube-apiserver's deprecation warning for the v1 Endpoints API.
        response.headers_mut().append(
            "warning",
            HeaderValue::from_static(
                "299 - \"v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice\"",
            ),
        );
    }
    Ok(response)
}

async fn dispatch_verb(shared: &Arc<Shared>, req: &Req, t: Target) -> ApiResult<Response<Body>> {
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
    let attrs = super::authz::Attributes::resource(
        verb,
        &t.def.group,
        &t.def.plural,
        t.sub.as_deref(),
        t.namespace.as_deref(),
        t.name.as_deref(),
    );
    if !super::authz::authorize(&shared.lock(), &req.user, &attrs).allowed {
        return Err(super::authz::forbidden(&req.user, &attrs));
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
            if let Some(response) = reviews(shared, req, &t)? {
                return Ok(response);
            }
            let obj = parse_body(req)?;
            strict_fields(shared, req, &t, &obj)?;
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

/// The access and identity reviews: answered from the request, never stored.
fn reviews(shared: &Arc<Shared>, req: &Req, t: &Target) -> ApiResult<Option<Response<Body>>> {
    use super::authz;
    let kind = match (t.def.group.as_str(), t.def.plural.as_str()) {
        ("authorization.k8s.io", "selfsubjectaccessreviews") => "SelfSubjectAccessReview",
        ("authorization.k8s.io", "subjectaccessreviews") => "SubjectAccessReview",
        ("authorization.k8s.io", "localsubjectaccessreviews") => "LocalSubjectAccessReview",
        ("authentication.k8s.io", "selfsubjectreviews") => {
            return Ok(Some(json_response(
                201,
                &json!({
                    "kind": "SelfSubjectReview",
                    "apiVersion": "authentication.k8s.io/v1",
                    "metadata": {"creationTimestamp": null},
                    "status": {"userInfo": req.user.to_json()},
                }),
            )));
        }
        _ => return Ok(None),
    };
    let mut body = parse_body(req)?;
    let subject = if kind == "SelfSubjectAccessReview" {
        req.user.clone()
    } else {
        authz::review_subject(&body["spec"])
    };
    if kind == "LocalSubjectAccessReview" {
        if let Some(ns) = &t.namespace {
            body["spec"]["resourceAttributes"]["namespace"] = json!(ns);
        }
    }
    let store = shared.lock();
    Ok(Some(json_response(
        201,
        &authz::access_review(&store, kind, &subject, &body),
    )))
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
    if ct.contains("protobuf") {
        return super::protobuf::decode(&req.body, &ct);
    }
    if ct.contains("cbor") {
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

/// Turns an object written through a view (events.k8s.io Events) into its stored form.
fn into_storage(t: &Target, obj: &mut Value) {
    if super::eventsview::is_view(&t.def.group, &t.def.plural) {
        *obj = super::eventsview::to_storage(std::mem::take(obj));
    }
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
    into_storage(t, obj);
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
                    kinds::validate_generate_name(&t.def, prefix, &generated)?;
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
    apply_schema(&store, t, &name, obj)?;
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

/// The schema a write to `t` is checked against: a custom resource's version's
/// `openAPIV3Schema` from its CRD, or a built-in kind's schema.
pub(super) fn object_schema(store: &Store, t: &Target) -> Option<std::borrow::Cow<'static, Value>> {
    if !t.def.custom {
        return super::builtin_schemas::for_resource(&t.def.group, &t.def.plural)
            .map(std::borrow::Cow::Borrowed);
    }
    custom_schema(store, &t.def, &t.version).map(std::borrow::Cow::Owned)
}

/// The `openAPIV3Schema` of one version of a custom resource, from its CRD.
fn custom_schema(store: &Store, def: &ResourceDef, version: &str) -> Option<Value> {
    let crd = store.get(&ObjKey::crd_of(def))?;
    let served = crd
        .pointer("/spec/versions")?
        .as_array()?
        .iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(version))?;
    served
        .pointer("/schema/openAPIV3Schema")
        .or_else(|| crd.pointer("/spec/validation/openAPIV3Schema"))
        .cloned()
}

/// Prunes the fields the schema does not declare, as kube-apiserver's decoder drops them; a
/// custom resource also gets its schema's defaults and is validated against it. (Built-in
/// kinds are validated by hand-written Go in kube-apiserver, not by their schemas.)
fn apply_schema(store: &Store, t: &Target, name: &str, obj: &mut Value) -> ApiResult<()> {
    // The stored form of a view's objects follows the schema of its storage.
    let (group, plural) = super::eventsview::storage_resource(&t.def.group, &t.def.plural);
    let schema = if (group, plural) != (t.def.group.as_str(), t.def.plural.as_str()) {
        super::builtin_schemas::for_resource(group, plural).map(std::borrow::Cow::Borrowed)
    } else {
        object_schema(store, t)
    };
    let Some(schema) = schema else {
        return Ok(());
    };
    super::crdschema::prune(&schema, obj);
    if !t.def.custom {
        return Ok(());
    }
    super::crdschema::apply_defaults(&schema, obj);
    let causes = super::crdschema::validate(&schema, obj);
    if causes.is_empty() {
        Ok(())
    } else {
        Err(kinds::invalid(&t.def, name, causes))
    }
}

/// Under `fieldValidation=Strict`, an object with fields its schema does not declare is
/// refused, naming every one (kube-apiserver's strict decoding error).
pub(super) fn strict_fields(shared: &Shared, req: &Req, t: &Target, obj: &Value) -> ApiResult<()> {
    if req.q("fieldValidation") != Some("Strict") {
        return Ok(());
    }
    let Some(schema) = object_schema(&shared.lock(), t) else {
        return Ok(());
    };
    let unknown = super::crdschema::prune(&schema, &mut obj.clone());
    if unknown.is_empty() {
        return Ok(());
    }
    let fields: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field {f:?}"))
        .collect();
    Err(ApiError::bad_request(format!(
        "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
        fields.join(", "),
        kind = t.def.kind,
        version = t.version,
    )))
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
        into_storage(t, &mut new);
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
    if t.sub.is_none() {
        apply_schema(store, t, &name, &mut new)?;
    }

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
    let mut out = if super::eventsview::is_view(&t.def.group, &t.def.plural) {
        super::eventsview::to_view(obj)
    } else {
        obj.clone()
    };
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
    if t.sub.is_none() {
        strict_fields(shared, req, t, &new)?;
    }
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
