//! `list`: paging with continue tokens, selectors and tables.

use super::*;

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct ContinueToken {
    pub(crate) v: String,
    pub(crate) rv: u64,
    pub(crate) start: String,
}

pub(crate) fn decode_continue(token: &str) -> ApiResult<(u64, String, String)> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token:?}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(token))
        .map_err(|_| bad())?;
    let tok: ContinueToken = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let (ns, name) = tok.start.split_once('/').ok_or_else(bad)?;
    Ok((tok.rv, ns.to_string(), name.to_string()))
}

pub(crate) fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
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

pub(crate) fn list(shared: &Shared, req: &Req, t: &Target) -> ApiResult<Response<Body>> {
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
    let all = store.list_stored(
        &t.def,
        t.namespace.as_deref(),
        after.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
    );
    drop(store);
    let accept = req.header("accept");
    let as_table = table::wants_table(accept);
    let as_partial = table::wants_partial(accept);
    // Objects are parsed one at a time and a plain list is serialized as it goes, so a large
    // list costs its response body, not a parsed copy of every object.
    let mut total = 0usize;
    let mut last_taken: Option<ObjKey> = None;
    let mut parsed: Vec<Value> = Vec::new();
    let mut items = Vec::<u8>::new();
    for (key, stored) in all {
        let object = stored.value();
        if !(ls.matches(&object) && fs.matches(&object)) {
            continue;
        }
        total += 1;
        if limit > 0 && total > limit {
            continue;
        }
        last_taken = Some(key);
        if as_table || as_partial {
            parsed.push(output(t, &object, false));
        } else {
            if !items.is_empty() {
                items.push(b',');
            }
            // Serializing a Value cannot fail.
            let _ = serde_json::to_writer(&mut items, &output(t, &object, true));
        }
    }
    let take = if limit > 0 { limit.min(total) } else { total };
    let mut meta = serde_json::Map::new();
    meta.insert("resourceVersion".into(), json!(list_rv.to_string()));
    if take < total {
        if let Some(k) = &last_taken {
            meta.insert(
                "continue".into(),
                json!(encode_continue(list_rv, &k.namespace, &k.name)),
            );
            meta.insert("remainingItemCount".into(), json!(total - take));
        }
    }
    if as_table {
        let cont = meta
            .get("continue")
            .and_then(Value::as_str)
            .map(str::to_string);
        return Ok(json_response(
            200,
            &table::to_table(
                &t.def,
                &parsed,
                &list_rv.to_string(),
                cont.as_deref(),
                req.q("includeObject"),
            ),
        ));
    }
    if as_partial {
        let full: Vec<Value> = parsed.iter().map(table::partial).collect();
        return Ok(json_response(
            200,
            &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": Value::Object(meta), "items": full}),
        ));
    }
    let head = json!({
        "kind": t.def.list_kind(),
        "apiVersion": t.api_version(),
        "metadata": Value::Object(meta),
    });
    // `{...head...}` with `"items":[...]` spliced in before the closing brace.
    let mut body = serde_json::to_vec(&head).unwrap_or_default();
    body.pop();
    body.extend_from_slice(b",\"items\":[");
    body.append(&mut items);
    body.extend_from_slice(b"]}");
    Ok(json_bytes_response(200, body, "application/json"))
}
