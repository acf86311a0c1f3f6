//! Service-account tokens: ES256 JWTs shaped like kube-apiserver's, the TokenRequest
//! subresource, TokenReview, and the OIDC discovery documents.

use axum::body::Body;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use hyper::Response;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _};
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult, TestClusterError};
use super::handlers::{json_response, now, parse_body, Req, Target};
use super::resources::str_list;
use super::server::Shared;
use super::store::ObjKey;

/// DER prefix of a P-256 SubjectPublicKeyInfo for an uncompressed point.
const P256_SPKI_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Signs and verifies service-account tokens.
pub struct TokenIssuer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    public: Vec<u8>,
    kid: String,
    issuer: String,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenIdentity {
    /// Service account namespace.
    pub namespace: String,
    /// Service account name.
    pub name: String,
    /// Service account uid.
    pub uid: String,
    /// Token audiences.
    pub audiences: Vec<String>,
    /// Token id.
    pub jti: String,
}

impl TokenIssuer {
    /// A fresh P-256 key; tokens name `issuer` as `iss`.
    pub fn new(issuer: &str) -> Result<Self, TestClusterError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| TestClusterError::Crypto("generating a P-256 key failed".into()))?;
        let key = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .map_err(|_| TestClusterError::Crypto("loading the generated P-256 key failed".into()))?;
        let public = key.public_key().as_ref().to_vec();
        // kube-apiserver's key id: base64url(SHA-256(DER SubjectPublicKeyInfo)).
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(&public);
        let kid = B64URL.encode(ring::digest::digest(&ring::digest::SHA256, &spki).as_ref());
        Ok(Self {
            key,
            rng,
            public,
            kid,
            issuer: issuer.to_string(),
        })
    }

    /// The `iss` of issued tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Signs a token for a service account.
    pub fn issue(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        audiences: &[String],
        expiration_secs: i64,
    ) -> Result<(String, i64), TestClusterError> {
        let iat = chrono::Utc::now().timestamp();
        let exp = iat + expiration_secs;
        let jti = uuid::Uuid::new_v4().to_string();
        let header = json!({"alg": "ES256", "kid": self.kid});
        let claims = json!({
            "aud": audiences,
            "exp": exp,
            "iat": iat,
            "iss": self.issuer,
            "jti": jti,
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": name, "uid": uid},
            },
            "nbf": iat,
            "sub": format!("system:serviceaccount:{namespace}:{name}"),
        });
        let signing_input = format!(
            "{}.{}",
            B64URL.encode(serde_json::to_vec(&header).unwrap_or_default()),
            B64URL.encode(serde_json::to_vec(&claims).unwrap_or_default())
        );
        let sig = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| TestClusterError::Crypto("signing a token failed".into()))?;
        Ok((
            format!("{signing_input}.{}", B64URL.encode(sig.as_ref())),
            exp,
        ))
    }

    /// Checks signature, issuer and validity window, returning the claims' identity.
    pub fn verify(&self, token: &str) -> Result<TokenIdentity, String> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not a JWT".into());
        };
        let header: Value = B64URL
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or("malformed header")?;
        if header.get("alg").and_then(Value::as_str) != Some("ES256") {
            return Err("unexpected signing algorithm".into());
        }
        let sig = B64URL.decode(s).map_err(|_| "malformed signature")?;
        let pk =
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &self.public);
        pk.verify(format!("{h}.{c}").as_bytes(), &sig)
            .map_err(|_| "invalid signature".to_string())?;
        let claims: Value = B64URL
            .decode(c)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or("malformed claims")?;
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err("unexpected issuer".into());
        }
        let t = chrono::Utc::now().timestamp();
        let leeway = 60;
        if claims
            .get("exp")
            .and_then(Value::as_i64)
            .is_none_or(|e| t > e + leeway)
        {
            return Err("token has expired".into());
        }
        if claims
            .get("nbf")
            .and_then(Value::as_i64)
            .is_some_and(|n| t + leeway < n)
        {
            return Err("token is not valid yet".into());
        }
        let k = claims
            .get("kubernetes.io")
            .ok_or("not a service account token")?;
        let s = |p: &str| k.pointer(p).and_then(Value::as_str).map(str::to_string);
        let audiences = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        };
        Ok(TokenIdentity {
            namespace: s("/namespace").ok_or("missing namespace claim")?,
            name: s("/serviceaccount/name").ok_or("missing service account claim")?,
            uid: s("/serviceaccount/uid").unwrap_or_default(),
            audiences,
            jti: claims
                .get("jti")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        })
    }

    /// `/openid/v1/jwks`.
    pub fn jwks(&self) -> Value {
        let x = self.public.get(1..33).unwrap_or_default();
        let y = self.public.get(33..65).unwrap_or_default();
        json!({"keys": [{
            "use": "sig",
            "kty": "EC",
            "kid": self.kid,
            "crv": "P-256",
            "alg": "ES256",
            "x": B64URL.encode(x),
            "y": B64URL.encode(y),
        }]})
    }

    /// `/.well-known/openid-configuration`.
    pub fn openid_configuration(&self, server_url: &str) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{server_url}/openid/v1/jwks"),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        })
    }
}

/// POST .../serviceaccounts/NAME/token.
pub fn token_request(shared: &Shared, req: &Req, t: &Target) -> ApiResult<Response<Body>> {
    let name = t.name.clone().unwrap_or_default();
    let ns = t.namespace.clone().unwrap_or_default();
    let body = parse_body(req)?;
    let mut audiences = str_list(body.pointer("/spec/audiences"));
    if audiences.is_empty() {
        audiences = vec![shared.tokens.issuer().to_string()];
    }
    let expiration = body
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(3600);
    if expiration < 600 {
        return Err(ApiError::bad_request(
            "spec.expirationSeconds: Invalid value: may not specify a duration less than 10 minutes",
        ));
    }
    let sa = shared
        .lock()
        .get(&ObjKey::new(&t.def, &ns, &name))
        .ok_or_else(|| ApiError::not_found(&t.def, &name))?;
    let uid = sa
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (token, exp) = shared
        .tokens
        .issue(&ns, &name, uid, &audiences, expiration)
        .map_err(ApiError::internal)?;
    let exp_ts = chrono::DateTime::from_timestamp(exp, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    Ok(json_response(
        201,
        &json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": now()},
            "spec": {"audiences": audiences, "expirationSeconds": expiration, "boundObjectRef": null},
            "status": {"token": token, "expirationTimestamp": exp_ts},
        }),
    ))
}

/// POST /apis/authentication.k8s.io/v1/tokenreviews.
pub fn token_review(shared: &Shared, req: &Req, _t: &Target) -> ApiResult<Response<Body>> {
    let body = parse_body(req)?;
    let token = body
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let requested = str_list(body.pointer("/spec/audiences"));
    let mut spec = json!({"token": token});
    if !requested.is_empty() {
        spec["audiences"] = json!(requested);
    }
    let status = review(shared, &token, &requested);
    Ok(json_response(
        201,
        &json!({
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": spec,
            "status": status,
        }),
    ))
}

fn review(shared: &Shared, token: &str, requested: &[String]) -> Value {
    // kube-apiserver omits `authenticated` when false (omitempty).
    let fail = |why: &str| json!({"user": {}, "error": format!("[invalid bearer token, {why}]")});
    if token.is_empty() {
        return fail("token is empty");
    }
    let default_aud = vec![shared.tokens.issuer().to_string()];
    let wanted: &[String] = if requested.is_empty() {
        &default_aud
    } else {
        requested
    };
    if token == shared.admin_token {
        return json!({
            "authenticated": true,
            "user": {"username": super::authz::ADMIN_USER, "groups": ["system:masters", "system:authenticated"]},
            "audiences": wanted,
        });
    }
    let id = match shared.tokens.verify(token) {
        Ok(id) => id,
        Err(e) => return fail(&e),
    };
    let matched: Vec<String> = wanted
        .iter()
        .filter(|a| id.audiences.contains(a))
        .cloned()
        .collect();
    if matched.is_empty() {
        return fail("token audiences is invalid for the target audiences");
    }
    let store = shared.lock();
    let Some(sa_def) = store.find("", "serviceaccounts").cloned() else {
        return fail("service accounts are not served");
    };
    match store.get(&ObjKey::new(&sa_def, &id.namespace, &id.name)) {
        None => {
            return fail(&format!(
                "service account {}/{} has been deleted",
                id.namespace, id.name
            ))
        }
        Some(sa) => {
            let uid = sa
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if uid != id.uid {
                return fail(&format!(
                    "service account UID ({}) does not match claim ({})",
                    uid, id.uid
                ));
            }
        }
    }
    json!({
        "authenticated": true,
        "user": {
            "username": format!("system:serviceaccount:{}:{}", id.namespace, id.name),
            "uid": id.uid,
            "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{}", id.namespace), "system:authenticated"],
            "extra": {"authentication.kubernetes.io/credential-id": [format!("JTI={}", id.jti)]},
        },
        "audiences": matched,
    })
}
