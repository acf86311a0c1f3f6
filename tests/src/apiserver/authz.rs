//! Authentication, impersonation and RBAC authorization, as kube-apiserver does them for the
//! users the embedded server knows:
//!
//! - the admin token of its kubeconfigs: `sealsync-testcluster-admin` in `system:masters`;
//! - service-account tokens it issued (TokenRequest): `system:serviceaccount:NS:NAME`, while the
//!   service account exists with the uid the token names;
//! - `Impersonate-User` and `Impersonate-Group` headers, allowed when the requester may
//!   `impersonate` that user, service account or group.
//!
//! Anything else that presents a token gets 401. A request with no token at all is taken as
//! the admin (a real server would take it as `system:anonymous`): the raw-HTTP fidelity tests
//! talk to the server without one.
//!
//! Authorization follows the RBAC authorizer: `system:masters` may do anything; everyone else
//! gets what the Roles and ClusterRoles bound to them allow (by user, group or service
//! account; verbs, API groups, resources, `resource/subresource`, resource names and
//! non-resource URLs, with `*`), plus what kube-apiserver's bootstrap roles give every
//! authenticated user: discovery, and reviewing their own access and identity.

use std::collections::BTreeMap;

use hyper::HeaderMap;
use serde_json::{json, Value};

use super::error::ApiError;
use super::server::Shared;
use super::store::{ObjKey, Store};

/// The admin's user name, on both test servers.
pub const ADMIN_USER: &str = "sealsync-testcluster-admin";

/// Who is making a request.
#[derive(Debug, Clone, PartialEq)]
pub struct UserInfo {
    /// `username`.
    pub username: String,
    /// `uid` (empty when unknown).
    pub uid: String,
    /// `groups`.
    pub groups: Vec<String>,
    /// `extra`.
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// The admin of the server's kubeconfigs.
    pub fn admin() -> Self {
        UserInfo {
            username: ADMIN_USER.to_owned(),
            uid: String::new(),
            groups: vec![
                "system:masters".to_owned(),
                "system:authenticated".to_owned(),
            ],
            extra: BTreeMap::new(),
        }
    }

    /// The user of a service account, with the groups kube-apiserver gives it.
    pub fn service_account(namespace: &str, name: &str, uid: &str) -> Self {
        UserInfo {
            username: format!("system:serviceaccount:{namespace}:{name}"),
            uid: uid.to_owned(),
            groups: vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".to_owned(),
            ],
            extra: BTreeMap::new(),
        }
    }

    fn is_admin(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }

    /// `userInfo` as the review APIs print it.
    pub fn to_json(&self) -> Value {
        let mut out = json!({"username": self.username, "groups": self.groups});
        if !self.uid.is_empty() {
            out["uid"] = json!(self.uid);
        }
        if !self.extra.is_empty() {
            out["extra"] = json!(self.extra);
        }
        out
    }

    /// `(namespace, name)` when this user is a service account.
    fn service_account_parts(&self) -> Option<(&str, &str)> {
        self.username
            .strip_prefix("system:serviceaccount:")?
            .split_once(':')
    }
}

/// What a request asks to do, as the authorizer sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributes {
    /// `get`, `list`, `create`, `impersonate`, …
    pub verb: String,
    /// The API group ("" for core).
    pub group: String,
    /// The plural resource; empty for a non-resource request.
    pub resource: String,
    /// The subresource, if any.
    pub subresource: String,
    /// The namespace ("" for cluster scope).
    pub namespace: String,
    /// The object's name ("" for lists and creates without one).
    pub name: String,
    /// The URL path of a non-resource request.
    pub path: String,
}

impl Attributes {
    /// Resource attributes.
    pub fn resource(
        verb: &str,
        group: &str,
        resource: &str,
        subresource: Option<&str>,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> Self {
        Attributes {
            verb: verb.to_owned(),
            group: group.to_owned(),
            resource: resource.to_owned(),
            subresource: subresource.unwrap_or_default().to_owned(),
            namespace: namespace.unwrap_or_default().to_owned(),
            name: name.unwrap_or_default().to_owned(),
            path: String::new(),
        }
    }

    /// Reads `spec.resourceAttributes` or `spec.nonResourceAttributes` of a review.
    pub fn from_review(spec: &Value) -> Self {
        let text = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
        if let Some(r) = spec.get("resourceAttributes").filter(|v| v.is_object()) {
            Attributes {
                verb: text(r, "verb"),
                group: text(r, "group"),
                resource: text(r, "resource"),
                subresource: text(r, "subresource"),
                namespace: text(r, "namespace"),
                name: text(r, "name"),
                path: String::new(),
            }
        } else {
            let n = &spec["nonResourceAttributes"];
            Attributes {
                verb: text(n, "verb"),
                path: text(n, "path"),
                ..Attributes::default()
            }
        }
    }
}

/// The authorizer's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// Why, when a binding allowed it (kube-apiserver's wording).
    pub reason: String,
}

/// `Bearer TOKEN` of the Authorization header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn unauthorized() -> ApiError {
    ApiError::new(401, "Unauthorized", "Unauthorized")
}

/// The user a request's credentials name, then the user it impersonates (if it may).
pub fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<UserInfo, ApiError> {
    let user = match bearer(headers) {
        None => UserInfo::admin(),
        Some(token) if token == shared.admin_token => UserInfo::admin(),
        Some(token) => {
            let id = shared.tokens.verify(token).map_err(|_| unauthorized())?;
            if !id.audiences.iter().any(|a| a == shared.tokens.issuer()) {
                return Err(unauthorized());
            }
            let store = shared.lock();
            let def = store.find("", "serviceaccounts").ok_or_else(unauthorized)?;
            let live = store
                .get(&ObjKey::new(def, &id.namespace, &id.name))
                .ok_or_else(unauthorized)?;
            if live.pointer("/metadata/uid").and_then(Value::as_str) != Some(id.uid.as_str()) {
                return Err(unauthorized());
            }
            UserInfo::service_account(&id.namespace, &id.name, &id.uid)
        }
    };
    impersonate(shared, user, headers)
}

fn header_values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

fn impersonate(
    shared: &Shared,
    requester: UserInfo,
    headers: &HeaderMap,
) -> Result<UserInfo, ApiError> {
    let users = header_values(headers, "impersonate-user");
    let groups = header_values(headers, "impersonate-group");
    let Some(username) = users.first().copied() else {
        if groups.is_empty() {
            return Ok(requester);
        }
        return Err(ApiError::internal(format!(
            "requested {:?} without impersonating a user",
            groups
        )));
    };
    let store = shared.lock();
    let target = match username
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
    {
        Some((namespace, name)) => Attributes::resource(
            "impersonate",
            "",
            "serviceaccounts",
            None,
            Some(namespace),
            Some(name),
        ),
        None => Attributes::resource("impersonate", "", "users", None, None, Some(username)),
    };
    if !authorize(&store, &requester, &target).allowed {
        return Err(forbidden(&requester, &target));
    }
    for group in &groups {
        let attrs = Attributes::resource("impersonate", "", "groups", None, None, Some(group));
        if !authorize(&store, &requester, &attrs).allowed {
            return Err(forbidden(&requester, &attrs));
        }
    }
    let mut user = UserInfo {
        username: username.to_owned(),
        uid: String::new(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        extra: BTreeMap::new(),
    };
    if user.groups.is_empty() {
        if let Some((namespace, _)) = user.service_account_parts() {
            user.groups = vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{namespace}"),
            ];
        }
    }
    if username != "system:anonymous" && !user.groups.iter().any(|g| g == "system:authenticated") {
        user.groups.push("system:authenticated".to_owned());
    }
    Ok(user)
}

/// kube-apiserver's 403 for a denied request.
pub fn forbidden(user: &UserInfo, attrs: &Attributes) -> ApiError {
    let resource = if attrs.subresource.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}/{}", attrs.resource, attrs.subresource)
    };
    let scope = if attrs.namespace.is_empty() {
        "at the cluster scope".to_owned()
    } else {
        format!("in the namespace \"{}\"", attrs.namespace)
    };
    let subject = if attrs.name.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{} \"{}\"", attrs.resource, attrs.name)
    };
    let message = format!(
        "{subject} is forbidden: User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
        user.username, attrs.verb, attrs.group
    );
    let mut details = json!({"kind": attrs.resource});
    if !attrs.name.is_empty() {
        details["name"] = json!(attrs.name);
    }
    if !attrs.group.is_empty() {
        details["group"] = json!(attrs.group);
    }
    ApiError::new(403, "Forbidden", message).with_details(details)
}

/// What kube-apiserver's bootstrap ClusterRoles (`system:discovery`, `system:basic-user`,
/// `system:public-info-viewer`) give every authenticated user.
fn bootstrap_allows(user: &UserInfo, attrs: &Attributes) -> bool {
    if !user.groups.iter().any(|g| g == "system:authenticated") {
        return false;
    }
    if attrs.resource.is_empty() {
        const DISCOVERY: &[&str] = &[
            "/api",
            "/api/*",
            "/apis",
            "/apis/*",
            "/version",
            "/version/",
            "/healthz",
            "/livez",
            "/readyz",
            "/openapi",
            "/openapi/*",
            "/.well-known/openid-configuration",
            "/openid/v1/jwks",
        ];
        return attrs.verb == "get" && DISCOVERY.iter().any(|u| url_matches(u, &attrs.path));
    }
    attrs.verb == "create"
        && attrs.namespace.is_empty()
        && matches!(
            (attrs.group.as_str(), attrs.resource.as_str()),
            (
                "authorization.k8s.io",
                "selfsubjectaccessreviews" | "selfsubjectrulesreviews"
            ) | ("authentication.k8s.io", "selfsubjectreviews")
        )
}

fn url_matches(rule: &str, path: &str) -> bool {
    match rule.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => rule == path,
    }
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn rule_allows(rule: &Value, attrs: &Attributes) -> bool {
    let has = |field: &str, want: &str| {
        strings(&rule[field])
            .iter()
            .any(|v| *v == "*" || *v == want)
    };
    if !has("verbs", &attrs.verb) {
        return false;
    }
    if attrs.resource.is_empty() {
        return strings(&rule["nonResourceURLs"])
            .iter()
            .any(|u| url_matches(u, &attrs.path));
    }
    let resource = if attrs.subresource.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}/{}", attrs.resource, attrs.subresource)
    };
    let resources = strings(&rule["resources"]);
    let resource_ok = resources.iter().any(|r| {
        *r == "*"
            || *r == resource
            || (attrs.subresource.is_empty() && *r == attrs.resource)
            || r.strip_prefix("*/").is_some_and(|s| s == attrs.subresource)
    });
    let names = strings(&rule["resourceNames"]);
    let name_ok =
        names.is_empty() || (!attrs.name.is_empty() && names.contains(&attrs.name.as_str()));
    has("apiGroups", &attrs.group) && resource_ok && name_ok
}

fn subject_matches(subject: &Value, user: &UserInfo, binding_namespace: &str) -> Option<String> {
    let name = subject["name"].as_str()?;
    match subject["kind"].as_str()? {
        "User" if name == user.username => Some(format!("User \"{name}\"")),
        "Group" if user.groups.iter().any(|g| g == name) => Some(format!("Group \"{name}\"")),
        "ServiceAccount" => {
            let namespace = subject["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_namespace);
            (user.service_account_parts() == Some((namespace, name)))
                .then(|| format!("ServiceAccount \"{name}/{namespace}\""))
        }
        _ => None,
    }
}

/// Decides a request as the RBAC authorizer does.
pub fn authorize(store: &Store, user: &UserInfo, attrs: &Attributes) -> Decision {
    if user.is_admin() || bootstrap_allows(user, attrs) {
        return Decision {
            allowed: true,
            reason: String::new(),
        };
    }
    let objects = |group: &str, plural: &str, namespace: Option<&str>| {
        store
            .find(group, plural)
            .map(|def| store.list(def, namespace, None))
            .unwrap_or_default()
    };
    let role_rules = |kind: &str, name: &str, namespace: &str| -> Vec<Value> {
        let (plural, ns) = if kind == "ClusterRole" {
            ("clusterroles", "")
        } else {
            ("roles", namespace)
        };
        store
            .find("rbac.authorization.k8s.io", plural)
            .and_then(|def| store.get(&ObjKey::new(def, ns, name)))
            .and_then(|role| role["rules"].as_array().cloned())
            .unwrap_or_default()
    };
    let mut bindings = objects("rbac.authorization.k8s.io", "clusterrolebindings", None);
    if !attrs.namespace.is_empty() {
        bindings.extend(objects(
            "rbac.authorization.k8s.io",
            "rolebindings",
            Some(&attrs.namespace),
        ));
    }
    for (key, binding) in bindings {
        let Some(subject) = binding["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|s| subject_matches(s, user, &key.namespace))
        else {
            continue;
        };
        let kind = binding["roleRef"]["kind"].as_str().unwrap_or_default();
        let role = binding["roleRef"]["name"].as_str().unwrap_or_default();
        if role_rules(kind, role, &key.namespace)
            .iter()
            .any(|rule| rule_allows(rule, attrs))
        {
            let via = if key.namespace.is_empty() {
                format!("ClusterRoleBinding \"{}\"", key.name)
            } else {
                format!("RoleBinding \"{}/{}\"", key.name, key.namespace)
            };
            return Decision {
                allowed: true,
                reason: format!("RBAC: allowed by {via} of {kind} \"{role}\" to {subject}"),
            };
        }
    }
    Decision {
        allowed: false,
        reason: String::new(),
    }
}

/// The answer to a SelfSubjectAccessReview, SubjectAccessReview or
/// LocalSubjectAccessReview: the request echoed with `status`.
pub fn access_review(store: &Store, kind: &str, user: &UserInfo, request: &Value) -> Value {
    let attrs = Attributes::from_review(&request["spec"]);
    let decision = authorize(store, user, &attrs);
    let mut status = json!({"allowed": decision.allowed});
    if !decision.reason.is_empty() {
        status["reason"] = json!(decision.reason);
    }
    let mut metadata = request["metadata"].clone();
    if !metadata.is_object() {
        metadata = json!({});
    }
    metadata["creationTimestamp"] = Value::Null;
    json!({
        "kind": kind,
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": metadata,
        "spec": request["spec"],
        "status": status,
    })
}

/// The user a SubjectAccessReview names in its spec.
pub fn review_subject(spec: &Value) -> UserInfo {
    UserInfo {
        username: spec["user"].as_str().unwrap_or_default().to_owned(),
        uid: spec["uid"].as_str().unwrap_or_default().to_owned(),
        groups: strings(&spec["groups"])
            .into_iter()
            .map(str::to_owned)
            .collect(),
        extra: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_like_rbac() {
        let rule = json!({"apiGroups": [""], "resources": ["configmaps", "pods/log"], "verbs": ["get", "list"]});
        let get = |resource: &str, sub: Option<&str>| {
            Attributes::resource("get", "", resource, sub, Some("ns"), Some("x"))
        };
        assert!(rule_allows(&rule, &get("configmaps", None)));
        assert!(rule_allows(&rule, &get("pods", Some("log"))));
        assert!(!rule_allows(&rule, &get("pods", None)));
        assert!(!rule_allows(&rule, &get("configmaps", Some("status"))));
        let named =
            json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"], "resourceNames": ["x"]});
        assert!(rule_allows(&named, &get("secrets", None)));
        let list = Attributes::resource("list", "", "secrets", None, Some("ns"), None);
        assert!(!rule_allows(&named, &list));
    }

    #[test]
    fn forbidden_messages_read_like_kube_apiserver() {
        let user = UserInfo::service_account("fc1", "bot", "u");
        let list = Attributes::resource("list", "", "configmaps", None, Some("fc1"), None);
        assert_eq!(
            forbidden(&user, &list).message,
            "configmaps is forbidden: User \"system:serviceaccount:fc1:bot\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"fc1\""
        );
        let get =
            Attributes::resource("get", "apps", "deployments", Some("scale"), None, Some("w"));
        assert_eq!(
            forbidden(&user, &get).message,
            "deployments \"w\" is forbidden: User \"system:serviceaccount:fc1:bot\" cannot get resource \"deployments/scale\" in API group \"apps\" at the cluster scope"
        );
    }
}
