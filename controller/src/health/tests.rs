use super::*;

fn observed(generation: Option<i64>, resource_version: Option<u64>) -> Observed {
    Observed {
        resource_version,
        generation,
        uid: "u-1".to_owned(),
        health: Health::Current,
    }
}

#[test]
fn an_object_counts_once_the_watch_has_seen_the_applied_state() {
    let applied = Fingerprint::Generation {
        generation: 4,
        metadata: 0,
        uid: "u-1".to_owned(),
    };
    // The watch still holds the object before the apply: its old status says nothing.
    assert!(!reached(Some(&applied), &observed(Some(3), Some(90))));
    assert!(reached(Some(&applied), &observed(Some(4), Some(91))));
    assert!(reached(Some(&applied), &observed(Some(5), Some(99))));
    // A recreated object: the watch still holds the one before, at a higher generation.
    let recreated = Fingerprint::Generation {
        generation: 1,
        metadata: 0,
        uid: "u-2".to_owned(),
    };
    assert!(!reached(Some(&recreated), &observed(Some(3), Some(100))));
    let applied = Fingerprint::Version("120".to_owned());
    assert!(!reached(Some(&applied), &observed(None, Some(119))));
    assert!(reached(Some(&applied), &observed(None, Some(120))));
    // A resourceVersion that is not a number cannot be compared: the event is taken.
    let opaque = Fingerprint::Version("abc".to_owned());
    assert!(reached(Some(&opaque), &observed(None, Some(1))));
    assert!(reached(None, &observed(None, None)));
}

#[test]
fn secrets_and_other_always_current_kinds_are_never_watched() {
    let is_watched = |r: &ApiResource| HealthWatches::judged_by(r, &[]).is_some();
    let resource = |group: &str, kind: &str| ApiResource {
        group: group.to_owned(),
        version: "v1".to_owned(),
        api_version: if group.is_empty() {
            "v1".to_owned()
        } else {
            format!("{group}/v1")
        },
        kind: kind.to_owned(),
        plural: format!("{}s", kind.to_lowercase()),
    };
    assert!(!is_watched(&resource("", "Secret")));
    assert!(!is_watched(&resource("", "ConfigMap")));
    assert!(!is_watched(&resource(
        "rbac.authorization.k8s.io",
        "RoleBinding"
    )));
    assert!(is_watched(&resource("apps", "Deployment")));
    assert!(is_watched(&resource("", "Pod")));
    assert!(is_watched(&resource("example.com", "Widget")));
}

#[test]
fn the_status_lists_failed_objects_first_and_at_most_fifty() {
    let resource = ApiResource {
        group: "batch".to_owned(),
        version: "v1".to_owned(),
        api_version: "batch/v1".to_owned(),
        kind: "Job".to_owned(),
        plural: "jobs".to_owned(),
    };
    let awaited: Vec<Awaited> = (0..60)
        .map(|i| Awaited {
            resource: resource.clone(),
            namespace: Some("shop".to_owned()),
            name: format!("job-{i:02}"),
            applied: None,
            foreign: None,
            custom: None,
        })
        .collect();
    let judged: Vec<(&Awaited, Judged)> = awaited
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let j = if i == 59 {
                Judged::Failed("the Job failed".to_owned())
            } else {
                Judged::InProgress("InProgress", "the Job is not complete".to_owned())
            };
            (a, j)
        })
        .collect();
    let list = listed(&judged, true);
    assert_eq!(list.len(), MAX_LISTED);
    assert_eq!(list[0].name, "job-59");
    assert_eq!(list[0].status, "Failed");
    assert_eq!(list[0].describe(), "Job shop/job-59");
    assert_eq!(list[1].status, "InProgress");
}

#[test]
fn expressions_make_a_kind_watched_but_never_secrets() {
    let exprs = compile_custom(&[
        sealsync_core::HealthCheckExpr {
            api_version: "v1".to_owned(),
            kind: "ConfigMap".to_owned(),
            current: "has(self.data.ready)".to_owned(),
            in_progress: None,
            failed: None,
        },
        sealsync_core::HealthCheckExpr {
            api_version: "v1".to_owned(),
            kind: "Secret".to_owned(),
            current: "true".to_owned(),
            in_progress: None,
            failed: None,
        },
    ])
    .expect("compiles");
    let core = |kind: &str| ApiResource {
        group: String::new(),
        version: "v1".to_owned(),
        api_version: "v1".to_owned(),
        kind: kind.to_owned(),
        plural: format!("{}s", kind.to_lowercase()),
    };
    assert!(matches!(
        HealthWatches::judged_by(&core("ConfigMap"), &exprs),
        Some(Some(_))
    ));
    assert!(HealthWatches::judged_by(&core("Secret"), &exprs).is_none());
    assert!(matches!(
        HealthWatches::judged_by(&core("Pod"), &exprs),
        Some(None)
    ));
}
