//! Reading manifests: one bounded YAML and JSON reader for the CLI and the controller, so that
//! both accept exactly the same inputs, and the conversions between a manifest tree and the
//! typed Secret and SealedSecret of `sealsync-crypto`.

mod error;
mod read;
mod sealed;
mod secret;

pub use error::ManifestError;
pub use read::{read_documents, wipe_value, Document, Limits};
pub use sealed::{sealed_from_manifest, sealed_to_manifest};
pub(crate) use secret::decode_data_value;
pub use secret::{secret_from_manifest, secret_to_manifest};
