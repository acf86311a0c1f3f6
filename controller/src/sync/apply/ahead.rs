//! Validation ahead of time: before the first wave of a revision is written, every object of
//! the later waves that the API server can judge already is dry-run, so that an invalid
//! object in wave 2 stops the revision before waves 0 and 1 are written. An object whose
//! kind or namespace an earlier wave creates cannot be judged yet, nor can a refusal that an
//! earlier wave's RBAC may lift: those wait for their turn.

use futures::stream::{self, StreamExt};
use kube::api::Patch;
use kube::Client;

use super::{
    api_error, is_schema_mismatch, object_api, patch_params, transient, ApplyError, Desired,
    Resolver,
};

fn is_mismatch(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if is_schema_mismatch(status))
}

type Check<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), ApplyError>> + Send + 'a>>;

/// Dry-runs `objects` (bounded by `concurrency`); the first refusal that cannot be lifted by
/// an earlier wave.
pub(crate) async fn validate_ahead(
    client: &Client,
    resolver: &mut Resolver,
    objects: &[&Desired],
    concurrency: usize,
) -> Result<(), ApplyError> {
    let mut judged = Vec::with_capacity(objects.len());
    for d in objects {
        // A kind an earlier wave's CRD serves is not served yet: judged in its turn.
        if let Some(resolved) = resolver
            .resolve(client, d.api_version(), d.kind())
            .await
            .map_err(|e| transient(&d.location, &e))?
        {
            judged.push((*d, resolved));
        }
    }
    // Boxed up front, as the apply's writes are: a lazily mapped stream of borrowing futures
    // trips the compiler's higher-ranked Send check inside the controller runtime.
    let checks: Vec<Check<'_>> = judged
        .into_iter()
        .map(|(d, resolved)| {
            let client = client.clone();
            Box::pin(async move {
                let api = object_api(&client, Some(resolved), d)?;
                match api
                    .patch(d.name(), &patch_params(true), &Patch::Apply(&d.object))
                    .await
                {
                    Ok(_) => Ok(()),
                    // The server cannot fit it to its schema (a 500 from server-side apply).
                    Err(e @ kube::Error::Api(_)) if is_mismatch(&e) => Err(api_error(d, e)),
                    Err(kube::Error::Api(status))
                        if matches!(status.code, 404 | 403 | 409 | 429) || status.code >= 500 =>
                    {
                        // Its namespace is not there yet, an earlier wave may grant the right, or
                        // the server is busy: its turn will tell.
                        Ok(())
                    }
                    Err(kube::Error::Api(status))
                        if status.code == 422 && status.message.contains("immutable") =>
                    {
                        // `spec.force` may recreate it; its turn will tell.
                        Ok(())
                    }
                    Err(e @ kube::Error::Api(_)) => Err(api_error(d, e)),
                    Err(_) => Ok(()),
                }
            }) as Check<'_>
        })
        .collect();
    let results: Vec<Result<(), ApplyError>> = stream::iter(checks)
        .buffered(concurrency.max(1))
        .collect()
        .await;
    results.into_iter().collect()
}
