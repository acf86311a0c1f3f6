//! Masking Secret values for display, as Flux and Argo CD mask them in diffs.

use serde_json::Value as Json;

/// What a masked value prints as.
pub const MASK: &str = "***";

/// Replaces every value under `data` and `stringData` of a `v1` Secret with [`MASK`], and
/// drops kubectl's last-applied copy, which repeats them. Values that hold Vault references
/// are shown as they are: a reference names a path, not a value. Other objects are left as
/// they are.
pub fn mask_secret(object: &mut Json) {
    let is_secret = object["apiVersion"] == "v1" && object["kind"] == "Secret";
    if !is_secret {
        return;
    }
    let references: Vec<(&'static str, String)> = crate::vaultref::secret_values(object)
        .map(|v| {
            v.references
                .into_iter()
                .map(|r| (r.source.field(), r.key))
                .collect()
        })
        .unwrap_or_default();
    for field in ["data", "stringData"] {
        if let Some(Json::Object(values)) = object.get_mut(field) {
            for (key, value) in values.iter_mut() {
                if references.iter().any(|(f, k)| *f == field && k == key) {
                    continue;
                }
                crate::render::wipe_json(value);
                *value = Json::String(MASK.to_owned());
            }
        }
    }
    if let Some(Json::Object(annotations)) = object
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
    {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// A URL as it may be shown in a status, an Event, a log line or an error: user info is
/// replaced by `***`, and so is every query value and the fragment, since tokens travel there
/// (`?access_token=…`, `?private_token=…`). Query names stay, so the URL is still recognisable.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let (rest, fragment) = match rest.split_once('#') {
        Some((rest, _)) => (rest, Some(MASK)),
        None => (rest, None),
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(i) => before_query.split_at(i),
        None => (before_query, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("{MASK}@{host}"),
        None => authority.to_owned(),
    };
    let mut out = String::with_capacity(url.len());
    if let Some(scheme) = scheme {
        out.push_str(scheme);
        out.push_str("://");
    }
    out.push_str(&authority);
    out.push_str(path);
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) => format!("{name}={MASK}"),
                None if pair.is_empty() => String::new(),
                None => MASK.to_owned(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// `text` with every occurrence of `url` replaced by its redacted form.
pub fn redact_url_in(text: &str, url: &str) -> String {
    if url.is_empty() {
        return text.to_owned();
    }
    let mut out = text.replace(url, &redact_url(url));
    // Errors may quote the URL in another form (normalised, or only its query).
    let tail = url.find(['?', '#']).map(|i| &url[i..]);
    if let Some(tail) = tail.filter(|t| t.len() > 1) {
        let redacted = redact_url(&format!("x://h{tail}"));
        out = out.replace(tail, redacted.trim_start_matches("x://h"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_user_info_query_values_and_fragments() {
        assert_eq!(
            redact_url("https://git.example/org/app.git?access_token=canary-1&ref=x"),
            "https://git.example/org/app.git?access_token=***&ref=***"
        );
        assert_eq!(
            redact_url("https://user:canary-2@git.example/app.git"),
            "https://***@git.example/app.git"
        );
        assert_eq!(
            redact_url("git://git.example/app.git#canary-3"),
            "git://git.example/app.git#***"
        );
        assert_eq!(
            redact_url("https://git.example/app.git"),
            "https://git.example/app.git"
        );
        assert_eq!(
            redact_url("https://git.example?canary-4"),
            "https://git.example?***"
        );
        assert_eq!(
            redact_url_in(
                "GET /r.git?t=canary-6 failed",
                "https://h:443/r.git?t=canary-6"
            ),
            "GET /r.git?t=*** failed"
        );
        let text = "fetching https://h/r.git?t=canary-5: refused";
        assert_eq!(
            redact_url_in(text, "https://h/r.git?t=canary-5"),
            "fetching https://h/r.git?t=***: refused"
        );
    }

    #[test]
    fn masks_secret_values_only() {
        let mut secret = serde_json::json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"a": "aHVudGVyMg=="}, "stringData": {"b": "hunter2"}
        });
        mask_secret(&mut secret);
        assert_eq!(secret["data"]["a"], MASK);
        assert_eq!(secret["stringData"]["b"], MASK);
        let mut cm =
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "x"}});
        mask_secret(&mut cm);
        assert_eq!(cm["data"]["a"], "x");
    }

    #[test]
    fn references_are_shown_unresolved() {
        let mut secret = serde_json::json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "stringData": {"a": "ref+vault://secret/db#password", "b": "hunter2"}
        });
        mask_secret(&mut secret);
        assert_eq!(secret["stringData"]["a"], "ref+vault://secret/db#password");
        assert_eq!(secret["stringData"]["b"], MASK);
    }
}
