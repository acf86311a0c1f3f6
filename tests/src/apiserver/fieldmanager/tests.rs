//! The field manager against kube-apiserver's observed behaviour.

use super::*;
use serde_json::json;

const T0: &str = "2024-01-01T00:00:00Z";
const T1: &str = "2024-01-01T00:01:00Z";
const T2: &str = "2024-01-01T00:02:00Z";

#[test]
fn scale_managed_fields_round_trip_like_the_scale_handler() {
    let parent = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "managedFields": [
            {"manager": "a", "operation": "Apply", "apiVersion": "apps/v1", "time": T0,
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}, "f:paused": {}}}},
            {"manager": "old", "operation": "Update", "apiVersion": "extensions/v1beta1", "time": T0,
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:minReadySeconds": {}}}},
        ]},
        "spec": {"replicas": 2, "paused": false, "minReadySeconds": 1}});
    let versions = ["apps/v1"];
    let scale_mf = scale_managed_fields(&parent, &versions);
    assert_eq!(
        scale_mf,
        json!([{"manager": "a", "operation": "Apply", "apiVersion": "autoscaling/v1", "time": T0,
                "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}])
    );
    let scale = json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": "web", "uid": "u", "managedFields": scale_mf}, "spec": {"replicas": 2}});

    // A write that leaves spec.replicas with "a": its entry stays whole; entries in an
    // unknown apiVersion are dropped.
    let mut unchanged = parent.clone();
    scale_managed_fields_to_parent(&mut unchanged, &scale, &versions, "apps/v1");
    assert_eq!(
        unchanged["metadata"]["managedFields"],
        json!([parent["metadata"]["managedFields"][0]])
    );

    // A write that moves spec.replicas to "hpa": "a" loses it, "hpa" gets a scale entry.
    let mut moved_scale = scale.clone();
    moved_scale["spec"]["replicas"] = json!(5);
    let moved_scale = record_update_with(
        Some(&scale),
        moved_scale,
        "hpa",
        T1,
        &FieldManagerOptions {
            subresource: Some("scale"),
            status_subresource: Some(false),
            schema: None,
        },
    );
    let mut moved = parent.clone();
    scale_managed_fields_to_parent(&mut moved, &moved_scale, &versions, "apps/v1");
    assert_eq!(
        moved["metadata"]["managedFields"],
        json!([
            {"manager": "a", "operation": "Apply", "apiVersion": "apps/v1", "time": T0,
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:paused": {}}}},
            {"manager": "hpa", "operation": "Update", "apiVersion": "apps/v1",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}},
             "subresource": "scale"},
        ])
    );
}

fn cm(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "cfg", "namespace": "default"}, "data": data})
}

fn apply(live: Option<&Value>, cfg: &Value, manager: &str) -> Value {
    server_side_apply(live, cfg, manager, false, T0).expect("apply succeeds")
}

/// The managedFields entry of `manager` with `operation`.
fn entry<'a>(obj: &'a Value, manager: &str, operation: &str) -> Option<&'a Value> {
    obj.pointer("/metadata/managedFields")?
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
}

fn fields<'a>(obj: &'a Value, manager: &str, operation: &str) -> &'a Value {
    &entry(obj, manager, operation)
        .unwrap_or_else(|| panic!("no {operation} entry for {manager} in {obj:#}"))["fieldsV1"]
}

fn deployment(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [
                    {"name": "app", "image": image, "ports": [{"containerPort": 80}]}
                ]}
            }
        }
    })
}

#[test]
fn apply_create_sets_object_and_apply_entry() {
    let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": "default", "labels": {"app": "x"}},
        "data": {"a": "1"}});
    let out = apply(None, &cfg, "kubectl");
    assert_eq!(out["data"], json!({"a": "1"}));
    assert_eq!(out["metadata"]["labels"], json!({"app": "x"}));
    let mf = out["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields");
    assert_eq!(mf.len(), 1);
    assert_eq!(
        mf[0],
        json!({"manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "time": T0,
               "fieldsType": "FieldsV1",
               "fieldsV1": {"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {"f:app": {}}}}})
    );
}

#[test]
fn apply_create_requires_type_and_name() {
    for bad in [
        json!({"kind": "ConfigMap", "metadata": {"name": "x"}}),
        json!({"apiVersion": "v1", "metadata": {"name": "x"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}),
        json!("not an object"),
    ] {
        assert!(matches!(
            server_side_apply(None, &bad, "m", false, T0),
            Err(FieldManagerError::Invalid(_))
        ));
    }
    let with_mf = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "x", "managedFields": []}});
    assert_eq!(
        server_side_apply(None, &with_mf, "m", false, T0),
        Err(FieldManagerError::BadRequest(
            "metadata.managedFields must be nil".into()
        ))
    );
}

#[test]
fn deployment_fields_v1_encoding_matches_upstream() {
    let out = apply(None, &deployment(2, "nginx:1"), "kubectl");
    assert_eq!(
        *fields(&out, "kubectl", "Apply"),
        json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {
                        ".": {}, "f:image": {}, "f:name": {},
                        "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                            ".": {}, "f:containerPort": {}
                        }}
                    }}}
                }
            }
        })
    );
}

#[test]
fn reapply_without_a_field_removes_it() {
    let first = apply(None, &cm(json!({"a": "1", "b": "2"})), "m1");
    let second = apply(Some(&first), &cm(json!({"a": "1"})), "m1");
    assert_eq!(second["data"], json!({"a": "1"}));
    assert_eq!(
        *fields(&second, "m1", "Apply"),
        json!({"f:data": {"f:a": {}}})
    );
    // Dropping the last key drops the map, as the built-in types drop an empty map.
    let third = apply(
        Some(&second),
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}}),
        "m1",
    );
    assert!(third.get("data").is_none(), "{third:#}");
    assert!(third.pointer("/metadata/managedFields").is_none());
}

#[test]
fn same_value_is_shared_and_survives_one_owner_leaving() {
    let a = apply(None, &cm(json!({"k": "v", "x": "1"})), "m1");
    let b = apply(Some(&a), &cm(json!({"k": "v"})), "m2");
    assert_eq!(
        *fields(&b, "m1", "Apply"),
        json!({"f:data": {"f:k": {}, "f:x": {}}})
    );
    assert_eq!(*fields(&b, "m2", "Apply"), json!({"f:data": {"f:k": {}}}));
    // m1 stops applying k: m2 still owns it, so only ownership is released.
    let c = apply(Some(&b), &cm(json!({"x": "1"})), "m1");
    assert_eq!(c["data"], json!({"k": "v", "x": "1"}));
    assert_eq!(*fields(&c, "m1", "Apply"), json!({"f:data": {"f:x": {}}}));
}

#[test]
fn conflicting_value_reports_manager_and_path() {
    let a = apply(None, &cm(json!({"key": "one"})), "m1");
    let err = server_side_apply(Some(&a), &cm(json!({"key": "two"})), "other", false, T1)
        .expect_err("conflict");
    assert_eq!(
        err,
        FieldManagerError::Conflict(vec![FieldConflict {
            manager: "m1".into(),
            field: ".data.key".into(),
            printed_manager: "\"m1\"".into(),
        }])
    );
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"m1\": .data.key"
    );
}

#[test]
fn several_conflicts_are_grouped_by_manager() {
    let a = apply(None, &cm(json!({"a": "1", "b": "1"})), "zeta");
    let b = apply(Some(&a), &cm(json!({"c": "1"})), "alpha");
    let err = server_side_apply(
        Some(&b),
        &cm(json!({"a": "2", "b": "2", "c": "2"})),
        "me",
        false,
        T1,
    )
    .expect_err("conflicts");
    assert_eq!(
        err.to_string(),
        "Apply failed with 3 conflicts: conflicts with \"alpha\":\n- .data.c\n\
         conflicts with \"zeta\":\n- .data.a\n- .data.b"
    );
    assert_eq!(
        err.conflict_pairs()[0],
        ("\"alpha\"".to_string(), ".data.c".to_string())
    );
}

#[test]
fn force_takes_ownership() {
    let a = apply(None, &cm(json!({"key": "one", "other": "x"})), "m1");
    let b =
        server_side_apply(Some(&a), &cm(json!({"key": "two"})), "m2", true, T1).expect("forced");
    assert_eq!(b["data"], json!({"key": "two", "other": "x"}));
    assert_eq!(
        *fields(&b, "m1", "Apply"),
        json!({"f:data": {"f:other": {}}})
    );
    assert_eq!(*fields(&b, "m2", "Apply"), json!({"f:data": {"f:key": {}}}));
    // When the loser owned nothing else its entry disappears.
    let c =
        server_side_apply(Some(&b), &cm(json!({"other": "y"})), "m2", true, T2).expect("forced");
    assert!(entry(&c, "m1", "Apply").is_none());
}

#[test]
fn scale_then_apply_conflicts_with_the_update_manager() {
    let applied = apply(None, &deployment(1, "nginx:1"), "kubectl");
    // `kubectl scale` writes through the scale subresource.
    let mut scaled = applied.clone();
    scaled["spec"]["replicas"] = json!(3);
    let scaled = record_update(Some(&applied), scaled, "kubectl", Some("scale"), T1);
    assert_eq!(
        entry(&scaled, "kubectl", "Update").expect("scale entry")["subresource"],
        "scale"
    );
    // The applier no longer owns replicas.
    assert!(fields(&scaled, "kubectl", "Apply")
        .pointer("/f:spec/f:replicas")
        .is_none());
    let err = server_side_apply(
        Some(&scaled),
        &deployment(1, "nginx:1"),
        "kubectl",
        false,
        T2,
    )
    .expect_err("conflict");
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" \
         using apps/v1: .spec.replicas"
    );
    // Applying the value the updater set is no conflict.
    let ok = server_side_apply(
        Some(&scaled),
        &deployment(3, "nginx:1"),
        "kubectl",
        false,
        T2,
    )
    .expect("same value");
    assert_eq!(ok["spec"]["replicas"], 3);
}

#[test]
fn edit_then_apply_conflict_names_update_manager_with_version() {
    let applied = apply(None, &deployment(1, "nginx:1"), "kubectl");
    let mut edited = applied.clone();
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    let edited = record_update(Some(&applied), edited, "kubectl-edit", None, T1);
    assert_eq!(
        *fields(&edited, "kubectl-edit", "Update"),
        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
            "k:{\"name\":\"app\"}": {"f:image": {}}}}}}})
    );
    let err = server_side_apply(
        Some(&edited),
        &deployment(1, "nginx:3"),
        "kubectl",
        false,
        T2,
    )
    .expect_err("conflict");
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using apps/v1: \
         .spec.template.spec.containers[name=\"app\"].image"
    );
    let forced = server_side_apply(
        Some(&edited),
        &deployment(1, "nginx:3"),
        "kubectl",
        true,
        T2,
    )
    .expect("forced");
    assert!(entry(&forced, "kubectl-edit", "Update").is_none());
    assert_eq!(
        forced["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:3"
    );
}

#[test]
fn labels_are_owned_per_key() {
    let with_labels = |labels: Value| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "cfg", "labels": labels}})
    };
    let a = apply(None, &with_labels(json!({"a": "1"})), "m1");
    let b = apply(Some(&a), &with_labels(json!({"b": "2"})), "m2");
    assert_eq!(b["metadata"]["labels"], json!({"a": "1", "b": "2"}));
    let c = apply(Some(&b), &with_labels(json!({"c": "3"})), "m1");
    assert_eq!(c["metadata"]["labels"], json!({"b": "2", "c": "3"}));
    let err = server_side_apply(Some(&c), &with_labels(json!({"b": "9"})), "m1", false, T1)
        .expect_err("conflict");
    assert_eq!(
        err.conflict_pairs(),
        vec![("\"m2\"".to_string(), ".metadata.labels.b".to_string())]
    );
}

#[test]
fn containers_merge_by_name() {
    let a = apply(None, &deployment(1, "nginx:1"), "m1");
    let sidecar = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "sidecar", "image": "envoy"}]}}}});
    let b = apply(Some(&a), &sidecar, "m2");
    let names: Vec<&Value> = b["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .map(|c| &c["name"])
        .collect();
    assert_eq!(names, vec!["app", "sidecar"]);
    // m1 re-applies unchanged: the sidecar stays, it is m2's.
    let c = apply(Some(&b), &deployment(1, "nginx:1"), "m1");
    assert_eq!(
        c["spec"]["template"]["spec"]["containers"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    // m2 stops applying its container: it goes.
    let empty = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"}});
    let d = apply(Some(&c), &empty, "m2");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[test]
fn ports_use_the_composite_key_with_protocol_default() {
    let mut d = deployment(1, "nginx:1");
    d["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([
        {"containerPort": 53, "protocol": "UDP"},
        {"containerPort": 53}
    ]);
    let out = apply(None, &d, "m1");
    let ports = out
        .pointer("/metadata/managedFields/0/fieldsV1/f:spec/f:template/f:spec/f:containers")
        .and_then(|c| c.get("k:{\"name\":\"app\"}"))
        .and_then(|c| c.get("f:ports"))
        .expect("ports owned");
    assert_eq!(
        *ports,
        json!({
            "k:{\"containerPort\":53,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}},
            "k:{\"containerPort\":53,\"protocol\":\"UDP\"}":
                {".": {}, "f:containerPort": {}, "f:protocol": {}}
        })
    );
    // Writing the same port twice is a duplicate key.
    d["spec"]["template"]["spec"]["containers"][0]["ports"] =
        json!([{"containerPort": 80}, {"containerPort": 80, "protocol": "TCP"}]);
    let err = server_side_apply(None, &d, "m1", false, T0).expect_err("duplicate");
    assert!(
        err.to_string()
            .contains("duplicate entries for key [containerPort=80,protocol=\"TCP\"]"),
        "{err}"
    );
}

#[test]
fn finalizers_merge_as_a_set() {
    let with = |f: Value| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "cfg", "finalizers": f}})
    };
    let a = apply(None, &with(json!(["a.example/x"])), "m1");
    let b = apply(Some(&a), &with(json!(["b.example/y"])), "m2");
    assert_eq!(
        b["metadata"]["finalizers"],
        json!(["a.example/x", "b.example/y"])
    );
    assert_eq!(
        *fields(&b, "m2", "Apply"),
        json!({"f:metadata": {"f:finalizers": {"v:\"b.example/y\"": {}}}})
    );
    let c = apply(Some(&b), &with(json!([])), "m1");
    assert_eq!(c["metadata"]["finalizers"], json!(["b.example/y"]));
}

#[test]
fn atomic_lists_are_owned_whole() {
    let rb = |subjects: Value| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "rb"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
               "subjects": subjects})
    };
    let a = apply(None, &rb(json!([{"kind": "User", "name": "a"}])), "m1");
    assert_eq!(
        *fields(&a, "m1", "Apply"),
        json!({"f:roleRef": {}, "f:subjects": {}})
    );
    let err = server_side_apply(
        Some(&a),
        &rb(json!([{"kind": "User", "name": "b"}])),
        "m2",
        false,
        T1,
    )
    .expect_err("conflict");
    let fields: Vec<String> = err.conflict_pairs().into_iter().map(|(_, f)| f).collect();
    assert_eq!(fields, vec![".subjects"]);
}

#[test]
fn no_op_apply_keeps_the_time() {
    let a = apply(None, &cm(json!({"k": "v"})), "m1");
    let b = server_side_apply(Some(&a), &cm(json!({"k": "v"})), "m1", false, T2).expect("no-op");
    assert_eq!(entry(&b, "m1", "Apply").expect("entry")["time"], T0);
    let c = server_side_apply(Some(&b), &cm(json!({"k": "w"})), "m1", false, T2).expect("change");
    assert_eq!(entry(&c, "m1", "Apply").expect("entry")["time"], T2);
}

#[test]
fn record_update_on_create_owns_new_maps_itself() {
    let created = record_update(None, cm(json!({"a": "1"})), "kubectl-create", None, T0);
    assert_eq!(
        created["metadata"]["managedFields"],
        json!([{"manager": "kubectl-create", "operation": "Update", "apiVersion": "v1",
                "time": T0, "fieldsType": "FieldsV1",
                "fieldsV1": {"f:data": {".": {}, "f:a": {}}}}])
    );
    // Deployment: spec is a value struct (no "."), labels a new map (".").
    let d = record_update(None, deployment(1, "nginx"), "kubectl-create", None, T0);
    let f = fields(&d, "kubectl-create", "Update");
    assert!(f.pointer("/f:spec/.").is_none(), "{f:#}");
    assert!(f.pointer("/f:metadata/f:labels/.").is_some(), "{f:#}");
}

#[test]
fn record_update_moves_changed_fields_and_drops_removed_ones() {
    let a = apply(None, &cm(json!({"a": "1", "b": "2"})), "applier");
    let mut edited = a.clone();
    edited["data"] = json!({"a": "changed", "c": "3"});
    let out = record_update(Some(&a), edited, "kubectl-edit", None, T1);
    // `b` was removed (gone from every set), `a` moved to the editor, `c` is the editor's.
    assert!(entry(&out, "applier", "Apply").is_none(), "{out:#}");
    assert_eq!(
        *fields(&out, "kubectl-edit", "Update"),
        json!({"f:data": {"f:a": {}, "f:c": {}}})
    );
    // An update that changes nothing leaves managedFields alone.
    let same = record_update(Some(&out), out.clone(), "other", None, T2);
    assert_eq!(
        same["metadata"]["managedFields"],
        out["metadata"]["managedFields"]
    );
}

#[test]
fn managed_fields_are_sorted_apply_first_then_by_time() {
    let a = record_update(None, cm(json!({"a": "1"})), "zz-creator", None, T0);
    let b =
        server_side_apply(Some(&a), &cm(json!({"b": "1"})), "applier", false, T1).expect("apply");
    let mut c = b.clone();
    c["data"]["c"] = json!("1");
    let c = record_update(Some(&b), c, "aa-late", None, T2);
    let order: Vec<(&Value, &Value)> = c["metadata"]["managedFields"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| (&e["manager"], &e["operation"]))
        .collect();
    assert_eq!(
        order,
        vec![
            (&json!("applier"), &json!("Apply")),
            (&json!("zz-creator"), &json!("Update")),
            (&json!("aa-late"), &json!("Update")),
        ]
    );
}

#[test]
fn apply_and_update_of_one_manager_are_separate_entries() {
    let a = apply(None, &cm(json!({"a": "1"})), "tool");
    let mut b = a.clone();
    b["data"]["b"] = json!("2");
    let b = record_update(Some(&a), b, "tool", None, T1);
    assert!(entry(&b, "tool", "Apply").is_some());
    assert!(entry(&b, "tool", "Update").is_some());
    // Apply and Update entries are different managers, so the applier conflicts with
    // the fields its own update took.
    let err = server_side_apply(
        Some(&b),
        &cm(json!({"a": "1", "b": "3"})),
        "tool",
        false,
        T2,
    )
    .expect_err("conflict with own update entry");
    assert_eq!(err.conflict_pairs()[0].0, "\"tool\" using v1");
}

#[test]
fn status_is_ignored_on_the_main_resource() {
    let mut d = deployment(1, "nginx");
    d["status"] = json!({"replicas": 5});
    let out = apply(None, &d, "m1");
    assert!(out.get("status").is_none());
    assert!(fields(&out, "m1", "Apply").get("f:status").is_none());
    // The status subresource owns status and nothing else.
    let mut s = out.clone();
    s["status"] = json!({"replicas": 1});
    s["spec"]["replicas"] = json!(7);
    let after = record_update_with(
        Some(&out),
        s,
        "controller",
        T1,
        &FieldManagerOptions {
            subresource: Some("status"),
            ..FieldManagerOptions::default()
        },
    );
    assert_eq!(
        *fields(&after, "controller", "Update"),
        json!({"f:status": {".": {}, "f:replicas": {}}})
    );
    // Applying status through /status.
    let status_apply = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"}, "status": {"replicas": 2}, "spec": {"replicas": 9}});
    let out2 = server_side_apply_with(
        Some(&after),
        &status_apply,
        "ctl",
        true,
        T2,
        &FieldManagerOptions {
            subresource: Some("status"),
            ..FieldManagerOptions::default()
        },
    )
    .expect("status apply");
    assert_eq!(out2["status"]["replicas"], 2);
    // /status leaves the spec as it was (7, written by the status update above).
    assert_eq!(out2["spec"]["replicas"], after["spec"]["replicas"]);
    let e = entry(&out2, "ctl", "Apply").expect("entry");
    assert_eq!(e["subresource"], "status");
    assert_eq!(e["fieldsV1"], json!({"f:status": {"f:replicas": {}}}));
}

#[test]
fn first_apply_to_untracked_object_conflicts_with_before_first_apply() {
    let live = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg", "uid": "u1", "resourceVersion": "5"},
        "data": {"a": "1"}});
    let err = server_side_apply(Some(&live), &cm(json!({"a": "2"})), "m1", false, T1)
        .expect_err("conflict");
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"before-first-apply\" using v1: .data.a"
    );
    let ok = server_side_apply(
        Some(&live),
        &cm(json!({"a": "1", "b": "2"})),
        "m1",
        false,
        T1,
    )
    .expect("shared");
    assert!(entry(&ok, "before-first-apply", "Update").is_some());
    assert_eq!(ok["metadata"]["uid"], "u1");
    assert_eq!(ok["metadata"]["resourceVersion"], "5");
}

#[test]
fn kubectl_takes_over_from_client_side_apply() {
    let mut created = deployment(1, "nginx:1");
    let last = go_json(&created);
    created["metadata"]["annotations"] = json!({LAST_APPLIED: format!("{last}\n")});
    let created = record_update(None, created, "kubectl-client-side-apply", None, T0);
    // Another manager must not take replicas silently...
    assert!(server_side_apply(
        Some(&created),
        &deployment(4, "nginx:1"),
        "other",
        false,
        T1
    )
    .is_err());
    // ...but `kubectl apply --server-side` may, for fields the annotation recorded.
    let out = server_side_apply(
        Some(&created),
        &deployment(4, "nginx:1"),
        "kubectl",
        false,
        T1,
    )
    .expect("migration");
    assert_eq!(out["spec"]["replicas"], 4);
    let ann = out["metadata"]["annotations"][LAST_APPLIED]
        .as_str()
        .expect("annotation kept");
    let recorded: Value = serde_json::from_str(ann).expect("json");
    assert_eq!(recorded["spec"]["replicas"], 4);
    assert!(ann.ends_with('\n'));
}

#[test]
fn crd_schema_list_types_are_honoured() {
    let crd = json!({"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {
    "type": "object",
    "properties": {"spec": {"type": "object", "properties": {
        "items": {"type": "array", "x-kubernetes-list-type": "map",
                  "x-kubernetes-list-map-keys": ["id"],
                  "items": {"type": "object", "properties": {
                      "id": {"type": "string"}, "v": {"type": "string"}}}},
        "tags": {"type": "array", "x-kubernetes-list-type": "set",
                 "items": {"type": "string"}},
        "plain": {"type": "array", "items": {"type": "string"}}
    }}}}}}]}});
    let schema = TypeSchema::from_crd(&crd, "v1").expect("version");
    let opts = FieldManagerOptions {
        schema: Some(&schema),
        ..FieldManagerOptions::default()
    };
    let cr = |spec: Value| {
        json!({"apiVersion": "example.com/v1", "kind": "Widget",
               "metadata": {"name": "w"}, "spec": spec})
    };
    let a = server_side_apply_with(
        None,
        &cr(json!({"items": [{"id": "a", "v": "1"}], "tags": ["x"], "plain": ["p"]})),
        "m1",
        false,
        T0,
        &opts,
    )
    .expect("create");
    let b = server_side_apply_with(
        Some(&a),
        &cr(json!({"items": [{"id": "b", "v": "2"}], "tags": ["y"]})),
        "m2",
        false,
        T1,
        &opts,
    )
    .expect("merge");
    assert_eq!(b["spec"]["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(b["spec"]["tags"], json!(["x", "y"]));
    // Without a schema, CRD lists are atomic: m2's list conflicts with m1's.
    let a = server_side_apply(
        None,
        &cr(json!({"items": [{"id": "a", "v": "1"}]})),
        "m1",
        false,
        T0,
    )
    .expect("create");
    let err = server_side_apply(
        Some(&a),
        &cr(json!({"items": [{"id": "b", "v": "2"}]})),
        "m2",
        false,
        T1,
    )
    .expect_err("atomic");
    assert_eq!(err.conflict_pairs()[0].1, ".spec.items");
}

#[test]
fn update_managers_are_capped_at_ten() {
    let mut obj = record_update(None, cm(json!({"k0": "x"})), "u0", None, T0);
    for i in 1..=11 {
        let mut next = obj.clone();
        next["data"][format!("k{i}")] = json!("x");
        let t = format!("2024-01-01T00:{i:02}:00Z");
        obj = record_update(Some(&obj), next, &format!("u{i}"), None, &t);
    }
    let entries = obj["metadata"]["managedFields"]
        .as_array()
        .expect("entries");
    assert_eq!(entries.len(), 10);
    let ancient = entries
        .iter()
        .find(|e| e["manager"] == ANCIENT_CHANGES)
        .expect("bucket");
    assert_eq!(
        ancient["fieldsV1"],
        json!({"f:data": {".": {}, "f:k0": {}, "f:k1": {}, "f:k2": {}}}),
        "{obj:#}"
    );
}

#[test]
fn fields_v1_round_trips() {
    let v = json!({"f:metadata": {"f:labels": {".": {}, "f:a": {}}},
        "f:spec": {"f:containers": {"k:{\"name\":\"x\"}": {".": {}, "f:image": {}}},
                   "f:finalizers": {"v:\"a\"": {}}, "f:list": {"i:0": {}}}});
    let set = FieldSet::from_fields_v1(&v);
    assert_eq!(set.to_fields_v1(), v);
    assert!(set.has(&[
        Pe::Field("spec".into()),
        Pe::Field("containers".into()),
        Pe::Key(vec![("name".into(), json!("x"))]),
    ]));
}

#[test]
fn list_merge_keeps_live_order_and_inserts_new_items_after_predecessors() {
    let list = ListNode {
        ssa: ListType::Map(vec![("name".into(), None)]),
        smp: SmpStrategy::Replace,
        item: Node::Any,
    };
    let node = Node::List(Box::new(list));
    let items = |names: &[&str]| Value::Array(names.iter().map(|n| json!({"name": n})).collect());
    let merged = merge_values(&node, &items(&["a", "b", "c"]), &items(&["b", "x", "c"]));
    assert_eq!(merged, items(&["a", "b", "x", "c"]));
    let merged = merge_values(&node, &items(&["a", "b"]), &items(&["b", "a"]));
    assert_eq!(merged, items(&["b", "a"]));
}

#[test]
fn builtin_status_subresources() {
    assert!(has_status_subresource("apps/v1", "Deployment"));
    assert!(has_status_subresource("v1", "Namespace"));
    assert!(!has_status_subresource("v1", "ConfigMap"));
    assert!(!has_status_subresource("example.com/v1", "Widget"));
}
