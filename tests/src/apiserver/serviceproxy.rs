//! The service proxy subresource (`/api/v1/namespaces/NS/services/[SCHEME:]NAME[:PORT]/proxy/…`)
//! as kube-apiserver serves it: the caller needs the verb on `services/proxy`; the request goes
//! to the first address of the Service's Endpoints on the named port, without the caller's
//! `Authorization` header (kube-apiserver consumes it); the answer comes back as it is.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::authz::{authorize, forbidden, Attributes};
use super::error::{ApiError, ApiResult};
use super::handlers::Req;
use super::server::Shared;
use super::store::ObjKey;

/// The largest answer passed back.
const MAX_ANSWER: usize = 64 * 1024 * 1024;
/// Headers never forwarded: the caller's credentials and hop-by-hop headers.
const DROPPED: &[&str] = &[
    "authorization",
    "host",
    "connection",
    "proxy-authorization",
    "impersonate-user",
    "impersonate-group",
    "impersonate-uid",
    "transfer-encoding",
];

fn unavailable(message: String) -> ApiError {
    ApiError::new(503, "ServiceUnavailable", message)
}

/// Proxies `req` to the Service `service` (`[SCHEME:]NAME[:PORT]`) of `namespace`.
pub async fn proxy(
    shared: &Arc<Shared>,
    req: &Req,
    namespace: &str,
    service: &str,
    rest: &[&str],
) -> ApiResult<Response<Body>> {
    let parts: Vec<&str> = service.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [name] => ("http", *name, ""),
        [name, port] => ("http", *name, *port),
        [scheme, name, port] => (*scheme, *name, *port),
        _ => {
            return Err(ApiError::bad_request(format!(
                "invalid service request {service:?}"
            )))
        }
    };
    let verb = match req.method {
        Method::GET | Method::HEAD | Method::OPTIONS => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => return Err(ApiError::method_not_allowed()),
    };
    let attrs = Attributes::resource(
        verb,
        "",
        "services",
        Some("proxy"),
        Some(namespace),
        Some(name),
    );
    if !authorize(&shared.lock(), &req.user, &attrs).allowed {
        return Err(forbidden(&req.user, &attrs));
    }
    if scheme != "http" && !scheme.is_empty() {
        return Err(unavailable(format!(
            "the test server proxies to http only, not {scheme:?}"
        )));
    }
    let (address, target_port) = endpoint(shared, namespace, name, port)?;
    let mut path = format!("/{}", rest.join("/"));
    if !req.query.is_empty() {
        let query: Vec<String> = req
            .query
            .iter()
            .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
            .collect();
        path = format!("{path}?{}", query.join("&"));
    }
    let uri: hyper::Uri = format!("http://{address}:{target_port}{path}")
        .parse()
        .map_err(|e| ApiError::bad_request(format!("invalid proxy path: {e}")))?;
    let mut builder = hyper::Request::builder()
        .method(req.method.clone())
        .uri(uri);
    for (header, value) in &req.headers {
        if !DROPPED.contains(&header.as_str()) && !header.as_str().starts_with("x-remote-") {
            builder = builder.header(header, value);
        }
    }
    let request = builder
        .body(Full::new(req.body.clone()))
        .map_err(|e| ApiError::internal(format!("building the proxied request: {e}")))?;
    let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let answer = tokio::time::timeout(Duration::from_secs(60), client.request(request))
        .await
        .map_err(|_| {
            unavailable(format!(
                "error trying to reach service: timeout ({address}:{target_port})"
            ))
        })?
        .map_err(|e| unavailable(format!("error trying to reach service: {e}")))?;
    let (parts, body) = answer.into_parts();
    let bytes = http_body_util::Limited::new(body, MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| unavailable(format!("error reading the service's answer: {e}")))?
        .to_bytes();
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = parts.status;
    for (header, value) in &parts.headers {
        if !matches!(
            header.as_str(),
            "connection" | "transfer-encoding" | "content-length"
        ) {
            response.headers_mut().insert(header, value.clone());
        }
    }
    Ok(response)
}

/// The first ready address of the Service's Endpoints and the port named (or numbered) `port`.
fn endpoint(
    shared: &Arc<Shared>,
    namespace: &str,
    name: &str,
    port: &str,
) -> ApiResult<(String, i64)> {
    let store = shared.lock();
    let defs = store.resources();
    let def = defs
        .iter()
        .find(|d| d.group.is_empty() && d.plural == "endpoints")
        .ok_or_else(|| ApiError::internal("no endpoints resource"))?;
    let none = || unavailable(format!("no endpoints available for service \"{name}\""));
    let endpoints = store
        .get(&ObjKey::new(def, namespace, name))
        .ok_or_else(none)?;
    let subsets = endpoints["subsets"].as_array().cloned().unwrap_or_default();
    let pods = defs
        .iter()
        .find(|d| d.group.is_empty() && d.plural == "pods")
        .ok_or_else(|| ApiError::internal("no pods resource"))?;
    for subset in &subsets {
        let ports = subset["ports"].as_array().cloned().unwrap_or_default();
        let found = ports.iter().find(|p| {
            port.is_empty()
                || p["name"].as_str() == Some(port)
                || p["port"].as_i64().map(|n| n.to_string()).as_deref() == Some(port)
        });
        let Some(found) = found.and_then(|p| p["port"].as_i64()) else {
            continue;
        };
        // As kube-apiserver does, only addresses of pods: the address names a pod of the
        // namespace whose status lists that IP.
        let addresses = subset["addresses"].as_array().cloned().unwrap_or_default();
        for address in &addresses {
            let Some(ip) = address["ip"].as_str() else {
                continue;
            };
            let target = &address["targetRef"];
            if target["kind"].as_str() != Some("Pod")
                || target["namespace"]
                    .as_str()
                    .is_some_and(|ns| ns != namespace)
            {
                continue;
            }
            let Some(pod_name) = target["name"].as_str() else {
                continue;
            };
            let Some(pod) = store.get(&ObjKey::new(pods, namespace, pod_name)) else {
                continue;
            };
            let pod_ips = pod["status"]["podIPs"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if pod_ips.iter().any(|p| p["ip"].as_str() == Some(ip)) {
                return Ok((ip.to_owned(), found));
            }
        }
    }
    Err(none())
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
