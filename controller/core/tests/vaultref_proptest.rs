//! Properties of the Vault reference parser over generated values: it never panics, every
//! well-formed reference written in either syntax reads back as written, and literal text
//! around references is kept byte for byte.

use proptest::prelude::*;
use sealsync_core::vaultref::{parse, RefSyntax, Segment, VaultRef};

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-z0-9][a-z0-9_.-]{0,11}", 1..4)
        .prop_filter("no dot segments", |segs| {
            segs.iter().all(|s| s != "." && s != "..")
        })
        .prop_map(|segs| segs.join("/"))
}

fn reference() -> impl Strategy<Value = VaultRef> {
    (
        path(),
        "[A-Za-z0-9_.-]{1,20}",
        prop::option::of(1u64..1000),
        any::<bool>(),
    )
        .prop_map(|(path, key, version, avp)| VaultRef {
            path,
            key,
            version,
            syntax: if avp { RefSyntax::Avp } else { RefSyntax::Vals },
        })
}

fn write(r: &VaultRef) -> String {
    match (r.syntax, r.version) {
        (RefSyntax::Avp, None) => format!("<path:{}#{}>", r.path, r.key),
        (RefSyntax::Avp, Some(v)) => format!("<path:{}#{}#{v}>", r.path, r.key),
        (_, None) => format!("ref+vault://{}#{}+", r.path, r.key),
        (_, Some(v)) => format!("ref+vault://{}?version={v}#{}+", r.path, r.key),
    }
}

proptest! {
    #[test]
    fn never_panics(text in ".{0,300}") {
        let _ = parse(&text);
    }

    #[test]
    fn references_between_literals_read_back(
        pieces in prop::collection::vec(("[a-zA-Z0-9 :@/=.-]{0,12}", reference()), 1..5),
        tail in "[a-zA-Z0-9 :@/=.-]{0,12}",
    ) {
        let mut text = String::new();
        for (literal, r) in &pieces {
            text.push_str(literal);
            text.push_str(&write(r));
        }
        text.push_str(&tail);
        let segments = parse(&text).expect("well-formed references parse");
        let refs: Vec<&VaultRef> = segments
            .iter()
            .filter_map(|s| match s { Segment::Ref(r) => Some(r), _ => None })
            .collect();
        let want: Vec<&VaultRef> = pieces.iter().map(|(_, r)| r).collect();
        prop_assert_eq!(refs, want);
        let literal: String = segments
            .iter()
            .filter_map(|s| match s { Segment::Literal(t) => Some(t.as_str()), _ => None })
            .collect();
        let want_literal: String =
            pieces.iter().map(|(l, _)| l.as_str()).chain([tail.as_str()]).collect();
        prop_assert_eq!(literal, want_literal);
    }
}
