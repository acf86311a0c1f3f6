use super::*;

fn vars() -> Variables {
    variables_from([
        ("cluster", "prod-eu"),
        ("name", "hello.world.yaml"),
        ("empty", ""),
        ("path", "/usr/local/bin"),
        ("Mixed_1", "Ab"),
        ("greeting", "hello world"),
    ])
    .expect("valid names")
}

fn ok(text: &str) -> String {
    expand(text, &vars()).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn values_lengths_and_cases() {
    for (text, want) in [
        (
            "plain text, $cluster and $ stay",
            "plain text, $cluster and $ stay",
        ),
        ("${cluster}", "prod-eu"),
        ("a-${cluster}-b", "a-prod-eu-b"),
        ("${#cluster}", "7"),
        ("${cluster^}", "Prod-eu"),
        ("${cluster^^}", "PROD-EU"),
        ("${Mixed_1,}", "ab"),
        ("${Mixed_1,,}", "ab"),
        ("$${cluster}", "${cluster}"),
        ("$$cluster", "$cluster"),
        ("cost: $$5", "cost: $5"),
    ] {
        assert_eq!(ok(text), want, "{text}");
    }
}

#[test]
fn every_default_form_applies_when_unset_or_empty() {
    for op in [":=", ":-", "=", "-", ":+", "+", ":?", "?"] {
        assert_eq!(ok(&format!("${{unset{op}d}}")), "d", "{op}");
        assert_eq!(ok(&format!("${{empty{op}d}}")), "d", "{op}");
        assert_eq!(ok(&format!("${{cluster{op}d}}")), "prod-eu", "{op}");
    }
    assert_eq!(ok("${unset:=${cluster^^}}"), "PROD-EU");
    assert_eq!(ok("${unset:=}"), "");
    // A default is not an assignment.
    assert_eq!(ok("${unset:=x}${unset:=y}"), "xy");
}

#[test]
fn substrings_count_from_either_end() {
    for (text, want) in [
        ("${cluster:5}", "eu"),
        ("${cluster:0:4}", "prod"),
        ("${cluster:-2}", "prod-eu"),
        ("${cluster: -2}", "eu"),
        ("${cluster:2:-3}", "od"),
        ("${cluster:40}", ""),
        ("${cluster:5:40}", "eu"),
        ("${cluster:x}", "prod-eu"),
    ] {
        assert_eq!(ok(text), want, "{text}");
    }
}

#[test]
fn trims_and_replacements() {
    for (text, want) in [
        ("${name#*.}", "world.yaml"),
        ("${name##*.}", "yaml"),
        ("${name%.*}", "hello.world"),
        ("${name%%.*}", "hello"),
        ("${path#/*}", "usr/local/bin"),
        // As in Flux (unlike bash), `*` inside a pattern does not cross a '/'.
        ("${path##*/}", "usr/local/bin"),
        ("${path##/*}", ""),
        ("${name#[a-h]}", "ello.world.yaml"),
        ("${name#nomatch}", "hello.world.yaml"),
        ("${greeting/o/0}", "hell0 world"),
        ("${greeting//o/0}", "hell0 w0rld"),
        ("${greeting/#hello/bye}", "bye world"),
        ("${greeting/%world/there}", "hello there"),
        ("${greeting/#world/x}", "hello world"),
        ("${greeting// /}", "helloworld"),
        ("${path//\\//:}", ":usr:local:bin"),
    ] {
        assert_eq!(ok(text), want, "{text}");
    }
}

#[test]
fn a_variable_without_a_value_or_default_fails_naming_it() {
    for text in [
        "${missing}",
        "${#missing}",
        "${missing^^}",
        "${missing/a/b}",
        "${unset:=${missing}}",
    ] {
        let error = expand(text, &vars()).expect_err(text);
        assert_eq!(
            error,
            SubstituteError::NotSet {
                name: "missing".to_owned()
            },
            "{text}"
        );
    }
}

#[test]
fn malformed_expressions_fail() {
    for text in ["${cluster", "${}", "${1abc}", "${cluster!}", "${cluster:=x"] {
        let error = expand(text, &vars()).expect_err(text);
        assert!(
            matches!(error, SubstituteError::Malformed { .. }),
            "{text}: {error}"
        );
    }
}

#[test]
fn names_are_checked_and_newlines_removed() {
    let mut vars = Variables::default();
    for bad in ["1x", "a-b", "app.conf", "", "ä"] {
        assert_eq!(
            vars.insert(bad, "v"),
            Err(SubstituteError::InvalidName {
                name: bad.to_owned()
            })
        );
    }
    vars.insert("_ok9", "line\none\n").expect("valid");
    assert_eq!(vars.get("_ok9"), Some("lineone"));
    assert!(!format!("{vars:?}").contains("line"));
}

#[test]
fn opting_out_and_masking() {
    let object = serde_json::json!({"metadata": {"annotations": {DISABLE_KEY: "disabled"}}});
    assert!(is_disabled(&object));
    let object = serde_json::json!({"metadata": {"labels": {DISABLE_KEY: "disabled"}}});
    assert!(is_disabled(&object));
    assert!(!is_disabled(&serde_json::json!({"metadata": {}})));
    let mut vars = vars();
    vars.insert_secret("token", "s3cr3t-value").expect("valid");
    let values = vars.secret_values();
    assert_eq!(values.len(), 1);
    assert_eq!(
        mask_values("rejected: s3cr3t-value in prod-eu", &values),
        "rejected: *** in prod-eu"
    );
}

#[test]
fn hostile_expressions_are_bounded() {
    let mut vars = vars();
    vars.insert("v", &"a".repeat(2000)).expect("valid");
    // Nesting.
    let deep = "${x:-".repeat(100) + &"}".repeat(100);
    assert!(matches!(
        expand(&deep, &vars),
        Err(SubstituteError::Malformed { .. })
    ));
    // A replacement inside a replacement.
    let error = expand("${v//a/${v//a/${v}}}", &vars).expect_err("too large");
    assert!(
        error.to_string().contains("grows past its limit"),
        "{error}"
    );
    // A pattern that would backtrack.
    vars.insert("w", &"a".repeat(60)).expect("valid");
    let pattern = format!("${{w##{}b}}", "*a".repeat(12));
    assert_eq!(expand(&pattern, &vars).expect("expands"), "a".repeat(60));
}
