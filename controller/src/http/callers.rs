//! Who may call an endpoint that touches keys: a Kubernetes bearer token checked with a
//! TokenReview, permission checked with a SubjectAccessReview, and a rate limit per caller.
//!
//! The token comes from `Authorization: Bearer` when the controller is called directly, or
//! from `X-Sealsync-Token` when the call goes through the API server's service proxy (which
//! consumes `Authorization` itself and does not pass it on). It is never logged.

use axum::http::HeaderMap;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};
use zeroize::Zeroizing;

use crate::support::ratelimit::KeyedRateLimit;

/// The header that carries the caller's token through the API server's service proxy.
pub(crate) const TOKEN_HEADER: &str = "x-sealsync-token";
/// The longest token accepted; real ones are a few kilobytes at most.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Callers remembered for rate limiting; past this the full buckets are forgotten.
const MAX_CALLERS: usize = 4096;

/// Why a caller was turned away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No token, or one the API server does not accept.
    Unauthenticated(String),
    /// The caller may not do this.
    Forbidden(String),
    /// Too many requests from this caller.
    RateLimited,
    /// The API server could not be asked.
    Unavailable(String),
}

impl Refusal {
    /// A short stable label for metrics.
    pub(crate) fn metric_label(&self) -> &'static str {
        match self {
            Refusal::Unauthenticated(_) => "unauthenticated",
            Refusal::Forbidden(_) => "forbidden",
            Refusal::RateLimited => "rate_limited",
            Refusal::Unavailable(_) => "unavailable",
        }
    }
}

/// The permission a caller needs: a verb on a subresource of `sealingkeys` in the controller's
/// namespace, such as `create` on `sealingkeys/rewrap`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Permission {
    /// The verb.
    pub verb: &'static str,
    /// The subresource of `sealingkeys`.
    pub subresource: &'static str,
}

/// A caller whose token the API server accepted.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The user name.
    pub name: String,
    user: k8s_openapi::api::authentication::v1::UserInfo,
}

/// Checks callers and limits each one's rate.
#[derive(Debug)]
pub(crate) struct Callers {
    buckets: KeyedRateLimit,
}

impl Callers {
    /// Each caller gets `per_second` requests a second (and as many at once).
    pub(crate) fn new(per_second: f64) -> Self {
        Self {
            buckets: KeyedRateLimit::new(per_second, MAX_CALLERS),
        }
    }

    /// The caller once its token is reviewed, its rate checked and its permission confirmed.
    pub(crate) async fn admit(
        &self,
        client: &Client,
        namespace: &str,
        headers: &HeaderMap,
        permission: Permission,
    ) -> Result<Caller, Refusal> {
        let token = bearer_token(headers)?;
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: None,
            },
            ..TokenReview::default()
        };
        let reviewed = Api::<TokenReview>::all(client.clone())
            .create(&PostParams::default(), &review)
            .await;
        drop(review);
        let reviewed = reviewed.map_err(|e| {
            Refusal::Unavailable(format!("the API server could not review the token: {e}"))
        })?;
        let status = reviewed.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            return Err(Refusal::Unauthenticated(
                "the API server does not accept this token".to_owned(),
            ));
        }
        let user = status.user.unwrap_or_default();
        let username = user.username.clone().unwrap_or_default();
        if !self.take(&username) {
            return Err(Refusal::RateLimited);
        }
        let caller = Caller {
            name: username,
            user,
        };
        authorize(client, namespace, &caller, permission).await?;
        Ok(caller)
    }

    fn take(&self, caller: &str) -> bool {
        self.buckets.try_take(caller)
    }
}

/// Whether `caller` may use `permission` in `namespace` (a SubjectAccessReview).
pub(crate) async fn authorize(
    client: &Client,
    namespace: &str,
    caller: &Caller,
    permission: Permission,
) -> Result<(), Refusal> {
    let user = &caller.user;
    let access = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: user.username.clone(),
            groups: user.groups.clone(),
            uid: user.uid.clone(),
            extra: user.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.to_owned()),
                verb: Some(permission.verb.to_owned()),
                group: Some(sealsync_core::GROUP.to_owned()),
                resource: Some("sealingkeys".to_owned()),
                subresource: Some(permission.subresource.to_owned()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let decided = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &access)
        .await
        .map_err(|e| {
            Refusal::Unavailable(format!("the API server could not review the access: {e}"))
        })?;
    if decided.status.is_some_and(|s| s.allowed) {
        Ok(())
    } else {
        Err(Refusal::Forbidden(format!(
            "{} may not {} sealingkeys/{} in namespace {namespace}; a cluster admin grants it with a Role",
            caller.name, permission.verb, permission.subresource
        )))
    }
}

fn bearer_token(headers: &HeaderMap) -> Result<Zeroizing<String>, Refusal> {
    let missing = || {
        Refusal::Unauthenticated(format!(
            "no bearer token: send `Authorization: Bearer TOKEN`, or `{TOKEN_HEADER}: TOKEN` through the API server's service proxy"
        ))
    };
    let from_header = headers
        .get(TOKEN_HEADER)
        .map(|v| v.to_str().map(str::trim))
        .or_else(|| {
            headers.get(axum::http::header::AUTHORIZATION).map(|v| {
                v.to_str().map(|text| {
                    text.strip_prefix("Bearer ")
                        .or_else(|| text.strip_prefix("bearer "))
                        .unwrap_or("")
                        .trim()
                })
            })
        });
    let token = match from_header {
        Some(Ok(token)) if !token.is_empty() => token,
        Some(Err(_)) => {
            return Err(Refusal::Unauthenticated(
                "the token is not ASCII text".to_owned(),
            ))
        }
        _ => return Err(missing()),
    };
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Refusal::Unauthenticated(format!(
            "the token is longer than {MAX_TOKEN_BYTES} bytes"
        )));
    }
    Ok(Zeroizing::new(token.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_either_header_and_junk_is_refused() {
        let mut headers = HeaderMap::new();
        assert!(matches!(
            bearer_token(&headers),
            Err(Refusal::Unauthenticated(_))
        ));
        headers.insert("authorization", "Bearer abc".parse().expect("header"));
        assert_eq!(bearer_token(&headers).expect("token").as_str(), "abc");
        headers.insert(TOKEN_HEADER, "def".parse().expect("header"));
        assert_eq!(bearer_token(&headers).expect("token").as_str(), "def");
        let mut basic = HeaderMap::new();
        basic.insert(
            "authorization",
            "Basic dXNlcjpwYXNz".parse().expect("header"),
        );
        assert!(bearer_token(&basic).is_err());
    }

    #[test]
    fn each_caller_has_a_bucket_of_its_own() {
        let callers = Callers::new(2.0);
        assert!(callers.take("alice"));
        assert!(callers.take("alice"));
        assert!(!callers.take("alice"));
        assert!(callers.take("bob"));
    }
}
