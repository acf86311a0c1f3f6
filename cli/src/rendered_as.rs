//! Sealed files sealed for the identity kustomize or Helm gives them (`sealsync seal
//! --rendered-as`): the file keeps its own name for the overlay to change, and names the
//! identity it was sealed for in an annotation, so that `sealsync reseal` can open and re-wrap
//! it. The annotation only says which identity to try; the binding itself is authenticated
//! inside the ciphertext, so a wrong annotation makes the file fail to open, nothing more.

use serde_yaml::Value;

/// The annotation on the SealedSecret that names the identity it was sealed for.
pub const ANNOTATION: &str = "sealsync.dev/rendered-as";

/// Marks a sealed document, sealed for `namespace/name`, with the file's own `own_name`.
pub fn mark(doc: &mut Value, own_name: &str, namespace: &str, name: &str) {
    let Some(metadata) = doc.get_mut("metadata").and_then(Value::as_mapping_mut) else {
        return;
    };
    metadata.insert("name".into(), own_name.into());
    let annotations = metadata
        .entry("annotations".into())
        .or_insert_with(|| Value::Mapping(Default::default()));
    if let Some(annotations) = annotations.as_mapping_mut() {
        annotations.insert(ANNOTATION.into(), format!("{namespace}/{name}").into());
    }
}

/// The document as it was sealed (name and namespace of the annotation), if it is marked.
pub fn as_sealed(doc: &Value) -> Option<Value> {
    let identity = doc
        .get("metadata")?
        .get("annotations")?
        .get(ANNOTATION)?
        .as_str()?;
    let (namespace, name) = identity.split_once('/')?;
    let mut copy = doc.clone();
    let metadata = copy.get_mut("metadata")?.as_mapping_mut()?;
    metadata.insert("name".into(), name.into());
    metadata.insert("namespace".into(), namespace.into());
    Some(copy)
}

/// `sealed` (the re-wrapped form of [`as_sealed`]'s copy) with the file's own name back.
pub fn restore(sealed: &mut Value, original: &Value) {
    let own = original
        .get("metadata")
        .and_then(|m| m.get("name"))
        .cloned();
    if let (Some(own), Some(metadata)) = (
        own,
        sealed.get_mut("metadata").and_then(Value::as_mapping_mut),
    ) {
        metadata.insert("name".into(), own);
    }
}
