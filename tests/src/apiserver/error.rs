//! Errors: [`ApiError`] is what the HTTP layer turns into a `Status` object, and
//! [`TestClusterError`] is what the library API returns.

use serde_json::{json, Value};

use super::resources::ResourceDef;

/// Errors from the library API (start-up, kubeconfig writing, real-cluster mode).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestClusterError {
    /// Binding or serving failed.
    #[error("test API server I/O error while {context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Key generation or signing failed.
    #[error("token signing key error: {0}")]
    Crypto(String),
    /// The kubeconfig could not be produced.
    #[error("kubeconfig error: {0}")]
    Kubeconfig(String),
    /// The operation needs the in-process server but another cluster is in use.
    #[error("{0} is only available on the embedded test server, not on this cluster")]
    RealCluster(&'static str),
    /// The real kube-apiserver or etcd did not start (or is not built).
    #[error("kube-apiserver: {0}")]
    KubeApiServer(String),
}

impl TestClusterError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// One `details.causes` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// e.g. `FieldValueInvalid`, `FieldManagerConflict`.
    pub reason: String,
    /// Human readable message.
    pub message: String,
    /// Field path, e.g. `metadata.name` or `.spec.replicas`.
    pub field: String,
}

/// An error the server answers with a `Status` object.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `reason` of the Status (may be empty).
    pub reason: String,
    /// `message` of the Status.
    pub message: String,
    /// `details`, when the real server sends them.
    pub details: Option<Value>,
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

fn details(def: &ResourceDef, name: &str) -> Value {
    let mut d = serde_json::Map::new();
    d.insert("name".into(), json!(name));
    if !def.group.is_empty() {
        d.insert("group".into(), json!(def.group));
    }
    d.insert("kind".into(), json!(def.plural));
    Value::Object(d)
}

impl ApiError {
    /// A Status with no details.
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.to_string(),
            message: message.into(),
            details: None,
        }
    }

    /// 404 for an object of `def`.
    pub fn not_found(def: &ResourceDef, name: &str) -> Self {
        Self {
            code: 404,
            reason: "NotFound".into(),
            message: format!("{} \"{}\" not found", def.qualified(), name),
            details: Some(details(def, name)),
        }
    }

    /// 404 for a missing namespace, worded as kube-apiserver does.
    pub fn namespace_not_found(ns: &str) -> Self {
        Self {
            code: 404,
            reason: "NotFound".into(),
            message: format!("namespaces \"{ns}\" not found"),
            details: Some(json!({"name": ns, "kind": "namespaces"})),
        }
    }

    /// 404 for a path that names no known resource.
    pub fn page_not_found() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    /// 409 AlreadyExists.
    pub fn already_exists(def: &ResourceDef, name: &str) -> Self {
        Self {
            code: 409,
            reason: "AlreadyExists".into(),
            message: format!("{} \"{}\" already exists", def.qualified(), name),
            details: Some(details(def, name)),
        }
    }

    /// 409 Conflict for a stale resourceVersion.
    pub fn stale(def: &ResourceDef, name: &str) -> Self {
        Self::conflict(
            def,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 409 Conflict "Operation cannot be fulfilled".
    pub fn conflict(def: &ResourceDef, name: &str, why: &str) -> Self {
        Self {
            code: 409,
            reason: "Conflict".into(),
            message: format!(
                "Operation cannot be fulfilled on {} \"{}\": {}",
                def.qualified(),
                name,
                why
            ),
            details: Some(details(def, name)),
        }
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
        .with_details(json!({}))
    }

    /// 422 Invalid with causes; `kind` is e.g. `ConfigMap` or `Deployment.apps`.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> Self {
        let joined = causes
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect::<Vec<_>>();
        let list = if joined.len() == 1 {
            joined.join("")
        } else {
            format!("[{}]", joined.join(", "))
        };
        let short_kind = kind.split('.').next().unwrap_or(kind);
        let mut d = serde_json::Map::new();
        d.insert("name".into(), json!(name));
        if !group.is_empty() {
            d.insert("group".into(), json!(group));
        }
        d.insert("kind".into(), json!(short_kind));
        d.insert("causes".into(), causes_json(&causes));
        Self {
            code: 422,
            reason: "Invalid".into(),
            message: format!("{kind} \"{name}\" is invalid: {list}"),
            details: Some(Value::Object(d)),
        }
    }

    /// 500 InternalError.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
        )
        .with_details(json!({"causes": [{"message": message.to_string()}]}))
    }

    /// 410 Expired, as watch and continue tokens report it.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 413 RequestEntityTooLarge.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(content_type: &str, accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
        .with_details(json!({"causes": [{"reason": "UnexpectedHeader", "message": format!("unsupported media type {content_type:?}"), "field": "Content-Type"}]}))
    }

    /// Replaces `details`.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The `Status` object for this error.
    pub fn status(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("kind".into(), json!("Status"));
        m.insert("apiVersion".into(), json!("v1"));
        m.insert("metadata".into(), json!({}));
        m.insert("status".into(), json!("Failure"));
        m.insert("message".into(), json!(self.message));
        if !self.reason.is_empty() {
            m.insert("reason".into(), json!(self.reason));
        }
        if let Some(d) = &self.details {
            m.insert("details".into(), d.clone());
        }
        m.insert("code".into(), json!(self.code));
        Value::Object(m)
    }

    /// The Status reason kube-apiserver uses for a bare HTTP status code.
    pub fn reason_for_code(code: u16) -> &'static str {
        match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            406 => "NotAcceptable",
            409 => "Conflict",
            410 => "Expired",
            413 => "RequestEntityTooLarge",
            415 => "UnsupportedMediaType",
            422 => "Invalid",
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "",
        }
    }
}

fn causes_json(causes: &[Cause]) -> Value {
    Value::Array(
        causes
            .iter()
            .map(|c| {
                let mut m = serde_json::Map::new();
                if !c.reason.is_empty() {
                    m.insert("reason".into(), json!(c.reason));
                }
                m.insert("message".into(), json!(c.message));
                if !c.field.is_empty() {
                    m.insert("field".into(), json!(c.field));
                }
                Value::Object(m)
            })
            .collect(),
    )
}

/// The 409 kube-apiserver sends when server-side apply meets fields owned by other managers.
/// `message` is the whole message (`fieldmanager::conflict_message`); `conflicts` holds
/// (printed manager, field) pairs, where the printed manager is already in kube-apiserver's
/// form, e.g. `"kubectl-client-side-apply" using v1`.
pub fn apply_conflict(message: String, conflicts: &[(String, String)]) -> ApiError {
    let causes: Vec<Cause> = conflicts
        .iter()
        .map(|(manager, field)| Cause {
            reason: "FieldManagerConflict".into(),
            message: format!("conflict with {manager}"),
            field: field.clone(),
        })
        .collect();
    ApiError {
        code: 409,
        reason: "Conflict".into(),
        message,
        details: Some(json!({"causes": causes_json(&causes)})),
    }
}
