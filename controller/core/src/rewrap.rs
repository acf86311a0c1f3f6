//! The wire types of the controller's `POST /v1/rewrap`, shared by the CLI (the client) and
//! the controller (the server), with the limits both keep to.

use serde::{Deserialize, Serialize};

/// The largest request body the controller reads.
pub const MAX_BODY: usize = 4 * 1024 * 1024;
/// The most documents one request may carry.
pub const MAX_DOCUMENTS: usize = 500;

/// What a caller sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewrapRequest {
    /// Sealed documents, each a YAML or JSON text of one SealedSecret.
    pub documents: Vec<String>,
    /// The recipients to wrap to (`age1…`). Empty: the cluster's non-retired keys and its
    /// recovery recipients.
    #[serde(default)]
    pub recipients: Vec<String>,
}

/// What the controller answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewrapResponse {
    /// The documents, re-wrapped, in the order sent, as YAML.
    pub documents: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_with_an_unknown_field_is_refused_and_recipients_default_to_none() {
        let request: RewrapRequest =
            serde_json::from_str(r#"{"documents": ["a"]}"#).expect("request");
        assert!(request.recipients.is_empty());
        assert!(serde_json::from_str::<RewrapRequest>(r#"{"documents": [], "extra": 1}"#).is_err());
    }
}
