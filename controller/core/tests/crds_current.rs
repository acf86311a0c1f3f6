//! The CRDs checked in under `deploy/crds/` are what the Rust types generate. When this fails,
//! run `cargo run -p sealsync-controller --bin crdgen > deploy/crds/sealsync.yaml` and commit.

#[test]
fn checked_in_crds_match_the_types() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/crds/sealsync.yaml"
    );
    let checked_in = std::fs::read_to_string(path).expect("deploy/crds/sealsync.yaml");
    let generated = sealsync_core::crds_yaml().expect("generate");
    assert!(
        checked_in == generated,
        "deploy/crds/sealsync.yaml is stale: run `cargo run -p sealsync-controller --bin crdgen \
         > deploy/crds/sealsync.yaml` and commit the result"
    );
}
