//! kustomize overlays and Helm charts kept in Git, rendered by the real engines
//! (`sealsync-renderer`, built from the pinned kustomize and Helm modules) inside the real
//! controller, over several revisions, with sealed secrets inside. Everything the repository
//! holds (Namespaces included) comes from Git.

mod controller_common;

use controller_common::*;
use serde_json::json;

const PLATFORM: &str = "platform";
const CANARY: &str = "canary-r3nd3r-7f1d";

fn namespace_yaml(name: &str) -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n")
}

fn configmap(name: &str, value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: {value}\n")
}

async fn value_of(env: &Env, namespace: &str, name: &str) -> Option<String> {
    env.get("v1", "ConfigMap", Some(namespace), name)
        .await
        .and_then(|c| c.data["data"]["value"].as_str().map(str::to_owned))
}

fn ready_condition(status: &serde_json::Value) -> (String, String) {
    let c = condition(status, "Ready").cloned().unwrap_or_default();
    (
        c["reason"].as_str().unwrap_or_default().to_owned(),
        c["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// No canary in the controller's log, the GitSyncs' statuses or the events.
async fn assert_no_canary(env: &Env, names: &[&str]) {
    assert!(
        !env.controller.log().contains(CANARY),
        "the log holds the canary"
    );
    for name in names {
        let status = env.gitsync_status(PLATFORM, name).await.to_string();
        assert!(!status.contains(CANARY), "{name}'s status holds the canary");
    }
    assert!(!events_json(env, PLATFORM).await.contains(CANARY));
}

/// The files of an overlay repository: a base, and an overlay per environment that declares
/// its Namespace, prefixes names and holds that environment's sealed Secret.
fn overlay_tree(env: &Env, revision: usize) -> Vec<(String, String)> {
    let mut files = vec![
        (
            "base/kustomization.yaml".to_owned(),
            "resources:\n- app.yaml\nconfigMapGenerator:\n- name: settings\n  literals:\n  - mode=base\n".to_owned(),
        ),
        ("base/app.yaml".to_owned(), configmap("app", &format!("r{revision}"))),
    ];
    for environment in ["staging", "prod"] {
        files.push((
            format!("overlays/{environment}/kustomization.yaml"),
            format!(
                "namespace: {environment}\nnamePrefix: {environment}-\nresources:\n- namespace.yaml\n- ../../base\n- db.sealed.yaml\npatches:\n- patch: |-\n    - op: add\n      path: /data/environment\n      value: {environment}\n  target:\n    kind: ConfigMap\n    name: app\n"
            ),
        ));
        files.push((
            format!("overlays/{environment}/namespace.yaml"),
            namespace_yaml(environment),
        ));
        // Sealed, as a user does after `sealsync render` showed it, for the identity the
        // overlay gives it (namespace and prefixed name); the file keeps the name `db`.
        let secret = format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: {CANARY}-{environment}\n"
        );
        let rendered_as = format!("{environment}/{environment}-db");
        files.push((
            format!("overlays/{environment}/db.sealed.yaml"),
            env.seal_with(&secret, &["--rendered-as", &rendered_as]),
        ));
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlay_per_environment_with_a_sealed_secret_syncs_over_revisions() {
    let env = Env::start(&[PLATFORM]).await;
    let first = env
        .repo
        .commit_tree(&overlay_tree(&env, 1), "overlays")
        .expect("commit");
    for environment in ["staging", "prod"] {
        env.apply_gitsync(
            PLATFORM,
            environment,
            json!({"interval": "1h", "path": format!("overlays/{environment}")}),
        )
        .await;
    }
    for environment in ["staging", "prod"] {
        env.wait_applied(PLATFORM, environment, &first).await;
        let name = format!("{environment}-app");
        let app = env
            .get("v1", "ConfigMap", Some(environment), &name)
            .await
            .expect("the overlay's ConfigMap");
        assert_eq!(app.data["data"]["value"], "r1");
        assert_eq!(app.data["data"]["environment"], environment);
        let db = env
            .get(
                "v1",
                "Secret",
                Some(environment),
                &format!("{environment}-db"),
            )
            .await
            .expect("the sealed Secret, opened");
        assert_eq!(
            secret_value(&db, "password"),
            format!("{CANARY}-{environment}")
        );
        // Key usage names the sealed file of the repository, not the kustomization.
        let status = env.gitsync_status(PLATFORM, environment).await;
        assert_eq!(
            status["sealedSecrets"][0]["file"],
            format!("overlays/{environment}/db.sealed.yaml"),
            "{status}"
        );
        // configMapGenerator's hashed name, as kustomize build gives it.
        let generated = env
            .list_names("v1", "ConfigMap", Some(environment))
            .await
            .into_iter()
            .filter(|n| n.starts_with(&format!("{environment}-settings-")))
            .count();
        assert_eq!(generated, 1);
    }

    // A change in the base reaches both environments; a file that moves within the base
    // is the same object.
    let mut second_tree = overlay_tree(&env, 2);
    second_tree.retain(|(p, _)| p != "base/app.yaml");
    second_tree.push(("base/apps/app.yaml".to_owned(), configmap("app", "r2")));
    second_tree[0].1 = second_tree[0].1.replace("- app.yaml", "- apps/app.yaml");
    let second = env
        .repo
        .commit_tree(&second_tree, "move the app")
        .expect("commit");
    for environment in ["staging", "prod"] {
        env.annotate_gitsync(PLATFORM, environment, "sealsync.dev/requestedAt", "2")
            .await;
    }
    for environment in ["staging", "prod"] {
        env.wait_applied(PLATFORM, environment, &second).await;
        assert_eq!(
            value_of(&env, environment, &format!("{environment}-app"))
                .await
                .as_deref(),
            Some("r2")
        );
    }

    // The base drops the generator: its ConfigMap is pruned, the rest stays.
    let mut third_tree = second_tree.clone();
    third_tree[0].1 = "resources:\n- apps/app.yaml\n".to_owned();
    let third = env
        .repo
        .commit_tree(&third_tree, "no generator")
        .expect("commit");
    env.annotate_gitsync(PLATFORM, "prod", "sealsync.dev/requestedAt", "3")
        .await;
    env.wait_applied(PLATFORM, "prod", &third).await;
    let left: Vec<String> = env
        .list_names("v1", "ConfigMap", Some("prod"))
        .await
        .into_iter()
        .filter(|n| n.starts_with("prod-settings-"))
        .collect();
    assert!(left.is_empty(), "not pruned: {left:?}");
    assert!(env
        .get("v1", "Secret", Some("prod"), "prod-db")
        .await
        .is_some());
    assert_no_canary(&env, &["staging", "prod"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_secret_an_overlay_moved_fails_naming_both_identities() {
    let env = Env::start(&[PLATFORM]).await;
    // Sealed for `dev/db`; the overlay moves it to `prod/prod-db`.
    let files = vec![
        (
            "overlay/kustomization.yaml".to_owned(),
            "namespace: prod\nnamePrefix: prod-\nresources:\n- ns.yaml\n- cm.yaml\n- db.sealed.yaml\n".to_owned(),
        ),
        ("overlay/ns.yaml".to_owned(), namespace_yaml("prod")),
        ("overlay/cm.yaml".to_owned(), configmap("app", "one")),
        (
            "overlay/db.sealed.yaml".to_owned(),
            env.seal(&secret_yaml("dev", "db", "password", CANARY)),
        ),
    ];
    let commit = env.repo.commit_tree(&files, "moved").expect("commit");
    env.apply_gitsync(PLATFORM, "moved", json!({"path": "overlay"}))
        .await;
    let status = env.wait_failed(PLATFORM, "moved", &commit).await;
    let (reason, message) = ready_condition(&status);
    assert_eq!(reason, "DecryptionFailed", "{message}");
    // It names the file to reseal, both identities, and how to seal for the rendered one.
    for needle in [
        "overlay/db.sealed.yaml",
        "\"dev\"",
        "\"prod\"",
        "sealsync seal --rendered-as prod/prod-db",
    ] {
        assert!(message.contains(needle), "{needle} missing from: {message}");
    }
    // Nothing of the revision was applied.
    assert!(env.get("v1", "Namespace", None, "prod").await.is_none());
    assert_no_canary(&env, &["moved"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_overlays_fail_to_render_and_the_last_revision_stays() {
    let env = Env::start(&[PLATFORM]).await;
    let good = vec![
        (
            "app/kustomization.yaml".to_owned(),
            "namespace: platform\nresources:\n- cm.yaml\n".to_owned(),
        ),
        ("app/cm.yaml".to_owned(), configmap("kept", "good")),
    ];
    let first = env.repo.commit_tree(&good, "good").expect("commit");
    env.apply_gitsync(PLATFORM, "hostile", json!({"path": "app"}))
        .await;
    env.wait_applied(PLATFORM, "hostile", &first).await;

    let with = |kustomization: &str| {
        let mut files = good.clone();
        files[0].1 = kustomization.to_owned();
        files
    };
    type Case = (&'static str, Vec<(String, String)>, &'static str);
    let cases: Vec<Case> = vec![
        ("a resource outside the repository", with("resources:\n- ../../../../etc/passwd\n"), "outside the repository"),
        ("a base outside the repository", with("resources:\n- ../../../../etc\n"), "outside the repository"),
        (
            "a secretGenerator",
            with("resources:\n- cm.yaml\nsecretGenerator:\n- name: s\n  literals:\n  - password=plain\n"),
            "secretGenerator",
        ),
        (
            "a remote base",
            with("resources:\n- https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v5.0.0\n"),
            "vendor it into the repository",
        ),
        (
            "a remote file",
            with("resources:\n- https://raw.githubusercontent.com/kubernetes-sigs/kustomize/master/examples/wordpress/wordpress/service.yaml\n"),
            "vendor it into the repository",
        ),
        (
            "an exec plugin",
            {
                let mut files = with("resources:\n- cm.yaml\ngenerators:\n- gen.yaml\n");
                files.push((
                    "app/gen.yaml".to_owned(),
                    "apiVersion: someteam.example.com/v1\nkind: ChartInflator\nmetadata:\n  name: x\n".to_owned(),
                ));
                files
            },
            "plugins",
        ),
        (
            "a KRM function",
            {
                let mut files = with("resources:\n- cm.yaml\ntransformers:\n- fn.yaml\n");
                files.push((
                    "app/fn.yaml".to_owned(),
                    "apiVersion: example.com/v1\nkind: Fn\nmetadata:\n  name: x\n  annotations:\n    config.kubernetes.io/function: |\n      exec:\n        path: /bin/sh\n".to_owned(),
                ));
                files
            },
            "plugins",
        ),
        ("a helmCharts field", with("helmCharts:\n- name: x\n  repo: https://example.com\n"), "helmCharts"),
    ];
    for (what, files, needle) in cases {
        let commit = env.repo.commit_tree(&files, what).expect("commit");
        env.annotate_gitsync(PLATFORM, "hostile", "sealsync.dev/requestedAt", what)
            .await;
        let status = env.wait_failed(PLATFORM, "hostile", &commit).await;
        let (reason, message) = ready_condition(&status);
        assert_eq!(reason, "RenderFailed", "{what}: {message}");
        assert!(message.contains(needle), "{what}: {message}");
        // Paths are relative to the repository: the controller's directories never show.
        assert!(
            !message.contains("render-") && !message.contains("/tmp"),
            "{what} names a host path: {message}"
        );
        assert!(
            status["lastAppliedRevision"]
                .as_str()
                .is_some_and(|r| r.ends_with(&first)),
            "{what}: {status}"
        );
        assert_eq!(
            value_of(&env, PLATFORM, "kept").await.as_deref(),
            Some("good"),
            "{what}"
        );
    }

    // Symbolic links: to the host's files, to the controller's data, and out of the
    // repository by `..`; each refused before the renderer runs.
    for (what, target) in [
        ("a link to /etc/passwd", "/etc/passwd"),
        (
            "a link to the service account token",
            "/var/run/secrets/kubernetes.io/serviceaccount/token",
        ),
        ("a link out of the repository", "../../../../etc/hostname"),
    ] {
        env.repo
            .commit_tree(&with("resources:\n- cm.yaml\n- linked.yaml\n"), what)
            .expect("commit");
        let commit = env
            .repo
            .commit_symlinks(&[("app/linked.yaml", target)], what)
            .expect("link");
        env.annotate_gitsync(PLATFORM, "hostile", "sealsync.dev/requestedAt", what)
            .await;
        let status = env.wait_failed(PLATFORM, "hostile", &commit).await;
        let (reason, message) = ready_condition(&status);
        assert_eq!(reason, "RenderFailed", "{what}: {message}");
        assert!(
            message.contains("app/linked.yaml: a symbolic link"),
            "{what}: {message}"
        );
    }
    // A link inside the repository is followed as a copy.
    env.repo
        .commit_tree(&with("resources:\n- linked.yaml\n"), "in-repo link")
        .expect("commit");
    let commit = env
        .repo
        .commit_symlinks(&[("app/linked.yaml", "cm.yaml")], "in-repo link")
        .expect("link");
    env.annotate_gitsync(PLATFORM, "hostile", "sealsync.dev/requestedAt", "in-repo")
        .await;
    env.wait_applied(PLATFORM, "hostile", &commit).await;
    assert_eq!(
        value_of(&env, PLATFORM, "kept").await.as_deref(),
        Some("good")
    );
}

/// A chart of the repository's own: templates, a values file per environment, inline values,
/// a sealed Secret among the templates, and a test hook that is left out.
fn chart_files(env: &Env) -> Vec<(String, String)> {
    vec![
        (
            "charts/web/Chart.yaml".to_owned(),
            "apiVersion: v2\nname: web\nversion: 1.2.3\nappVersion: \"4.5\"\n".to_owned(),
        ),
        (
            "charts/web/values.yaml".to_owned(),
            "replicas: 1\ncolour: blue\nextra: {}\n".to_owned(),
        ),
        ("charts/web/values-prod.yaml".to_owned(), "replicas: 3\n".to_owned()),
        (
            "charts/web/templates/_helpers.tpl".to_owned(),
            "{{- define \"web.fullname\" -}}{{ .Release.Name }}-{{ .Chart.Name }}{{- end -}}\n".to_owned(),
        ),
        (
            "charts/web/templates/config.yaml".to_owned(),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ include \"web.fullname\" . }}\n  labels:\n    app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}\ndata:\n  replicas: {{ .Values.replicas | quote }}\n  colour: {{ .Values.colour }}\n  namespace: {{ .Release.Namespace }}\n  lookup: {{ lookup \"v1\" \"Namespace\" \"\" \"kube-system\" | len | quote }}\n  kube: {{ .Capabilities.KubeVersion.Version }}\n  gitsyncs: {{ .Capabilities.APIVersions.Has \"sealsync.dev/v1/GitSync\" | quote }}\n  monitoring: {{ .Capabilities.APIVersions.Has \"monitoring.coreos.com/v1\" | quote }}\n".to_owned(),
        ),
        (
            "charts/web/templates/db.sealed.yaml".to_owned(),
            env.seal(&secret_yaml("platform", "shop-web-db", "password", CANARY)),
        ),
        (
            "charts/web/templates/tests/check.yaml".to_owned(),
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Release.Name }}-check\n  annotations:\n    helm.sh/hook: test\nspec:\n  containers:\n  - name: c\n    image: busybox\n".to_owned(),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chart_in_the_repository_renders_with_values_files_and_sealed_secrets() {
    let env = Env::start(&[PLATFORM]).await;
    let first = env
        .repo
        .commit_tree(&chart_files(&env), "chart")
        .expect("commit");
    env.apply_gitsync(
        PLATFORM,
        "shop",
        json!({
            "interval": "2s",
            "path": "charts/web",
            "helm": {"valuesFiles": ["values-prod.yaml"], "values": {"colour": "green"}},
        }),
    )
    .await;
    env.wait_applied(PLATFORM, "shop", &first).await;
    let config = env
        .get("v1", "ConfigMap", Some(PLATFORM), "shop-web")
        .await
        .expect("the chart's ConfigMap");
    assert_eq!(config.data["data"]["replicas"], "3");
    assert_eq!(config.data["data"]["colour"], "green");
    assert_eq!(config.data["data"]["namespace"], PLATFORM);
    // `lookup` sees nothing, as in `helm template`.
    assert_eq!(config.data["data"]["lookup"], "0");
    // `.Capabilities` is this cluster's: its version and the kinds it serves (the CRDs too).
    let kube = config.data["data"]["kube"].as_str().unwrap_or_default();
    assert!(kube.starts_with("v1."), "{kube}");
    assert_eq!(config.data["data"]["gitsyncs"], "true");
    assert_eq!(config.data["data"]["monitoring"], "false");
    let db = env
        .get("v1", "Secret", Some(PLATFORM), "shop-web-db")
        .await
        .expect("the sealed Secret, opened");
    assert_eq!(secret_value(&db, "password"), CANARY);
    assert!(env
        .get("v1", "Pod", Some(PLATFORM), "shop-check")
        .await
        .is_none());

    // An unchanged poll renders nothing: the commit is known.
    let renders = || {
        metric_value(
            &env,
            "sealsync_renders_total{engine=\"helm\",result=\"success\"}",
        )
    };
    let before = renders();
    assert!(before >= 1.0);
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert_eq!(renders(), before, "{}", env.controller.log_tail(20));

    // A template error fails the revision and keeps the last one.
    let mut broken = chart_files(&env);
    broken.push((
        "charts/web/templates/broken.yaml".to_owned(),
        "{{ .Values.missing.field }}\n".to_owned(),
    ));
    let commit = env.repo.commit_tree(&broken, "broken").expect("commit");
    let status = env.wait_failed(PLATFORM, "shop", &commit).await;
    let (reason, message) = ready_condition(&status);
    assert_eq!(reason, "RenderFailed", "{message}");
    assert!(message.contains("broken.yaml"), "{message}");
    assert!(env
        .get("v1", "ConfigMap", Some(PLATFORM), "shop-web")
        .await
        .is_some());

    // A values file outside the repository is refused.
    env.apply_gitsync(
        PLATFORM,
        "shop",
        json!({"path": "charts/web", "helm": {"valuesFiles": ["../../../etc/passwd"]}}),
    )
    .await;
    wait_for_value(
        "the values file to be refused",
        std::time::Duration::from_secs(60),
        || async {
            let status = env.gitsync_status(PLATFORM, "shop").await;
            let (_, message) = ready_condition(&status);
            message.contains("spec.helm.valuesFiles").then_some(())
        },
        || env.controller.log_tail(20),
    )
    .await;
    assert_no_canary(&env, &["shop"]).await;
}

/// A chart whose template loops `count` times, each step building a longer string.
fn heavy_chart(count: u64) -> Vec<(String, String)> {
    vec![
        (
            "heavy/Chart.yaml".to_owned(),
            "apiVersion: v2\nname: heavy\nversion: 0.1.0\n".to_owned(),
        ),
        (
            "heavy/templates/cm.yaml".to_owned(),
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: heavy\ndata:\n  value: \"{{{{- $s := \"x\" }}}}{{{{- range until {count} }}}}{{{{- $s = print $s $s }}}}{{{{- end }}}}{{{{ len $s }}}}\"\n"
            ),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_render_past_its_time_or_memory_is_killed_and_the_last_revision_stays() {
    let env = Env::start_with(
        &[PLATFORM],
        &[
            "--render-timeout=3s".to_owned(),
            "--render-memory-mib=96".to_owned(),
        ],
        &[],
    )
    .await;
    // Twelve doublings: a 4 KiB string, quickly.
    let first = env
        .repo
        .commit_tree(&heavy_chart(12), "light")
        .expect("commit");
    env.apply_gitsync(PLATFORM, "heavy", json!({"path": "heavy"}))
        .await;
    env.wait_applied(PLATFORM, "heavy", &first).await;
    assert_eq!(
        value_of(&env, PLATFORM, "heavy").await.as_deref(),
        Some("4096")
    );

    // Thirty doublings: a string of 1 GiB, which passes 96 MiB long before it is built.
    let commit = env
        .repo
        .commit_tree(&heavy_chart(30), "heavy")
        .expect("commit");
    let status = env.wait_failed(PLATFORM, "heavy", &commit).await;
    let (reason, message) = ready_condition(&status);
    assert_eq!(reason, "RenderFailed", "{message}");
    assert!(
        message.contains("heavy with helm: the memory in bytes exceeds the limit of 100663296")
            || message.contains("heavy with helm: the time in seconds exceeds the limit of 3"),
        "{message}"
    );
    assert_eq!(
        value_of(&env, PLATFORM, "heavy").await.as_deref(),
        Some("4096")
    );

    // A template that never ends is stopped at the wall-clock limit.
    let mut endless = heavy_chart(12);
    endless[1].1 = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: heavy\ndata:\n  value: \"{{- range until 100000 }}{{- range until 100000 }}{{- end }}{{- end }}\"\n".to_owned();
    let commit = env.repo.commit_tree(&endless, "endless").expect("commit");
    let status = env.wait_failed(PLATFORM, "heavy", &commit).await;
    let (reason, message) = ready_condition(&status);
    assert_eq!(reason, "RenderFailed", "{message}");
    assert!(
        message.contains("heavy with helm: the time in seconds exceeds the limit of 3"),
        "{message}"
    );
    // The controller goes on: a good revision applies.
    let last = env
        .repo
        .commit_tree(&heavy_chart(13), "light again")
        .expect("commit");
    env.wait_applied(PLATFORM, "heavy", &last).await;
    assert_eq!(
        value_of(&env, PLATFORM, "heavy").await.as_deref(),
        Some("8192")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_build_substitution_serves_one_overlay_to_many_clusters() {
    let env = Env::start(&[PLATFORM]).await;
    // What a cluster's administrator keeps beside the GitSync, not in Git.
    apply_yaml(
        &env.client,
        &configmap_yaml(PLATFORM, "cluster-vars", "region", "us-east-1"),
    )
    .await;
    apply_yaml(
        &env.client,
        &secret_yaml(PLATFORM, "cluster-secrets", "db_host", CANARY),
    )
    .await;
    let files = vec![
        (
            "app/kustomization.yaml".to_owned(),
            "namespace: platform\nresources:\n- settings.yaml\n- script.yaml\n".to_owned(),
        ),
        (
            "app/settings.yaml".to_owned(),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings-${cluster_name}\ndata:\n  cluster: ${cluster_name^^}\n  region: ${region}\n  tier: ${tier:=standard}\n  host: ${db_host}\n  api: ${api_key}\n  price: $$5\n".to_owned(),
        ),
        (
            "app/script.yaml".to_owned(),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: script\n  annotations:\n    kustomize.toolkit.fluxcd.io/substitute: disabled\ndata:\n  run: echo ${HOME}\n".to_owned(),
        ),
        (
            "app/vars.sealed.yaml".to_owned(),
            env.seal(&secret_yaml(PLATFORM, "vars", "api_key", "key-from-a-sealed-file")),
        ),
    ];
    let commit = env.repo.commit_tree(&files, "substituted").expect("commit");
    env.apply_gitsync(
        PLATFORM,
        "subst",
        json!({
            "path": "app",
            "postBuild": {
                "substitute": {"cluster_name": "prod"},
                "substituteFrom": [
                    {"kind": "ConfigMap", "name": "cluster-vars"},
                    {"kind": "Secret", "name": "cluster-secrets"},
                    {"kind": "ConfigMap", "name": "not-there", "optional": true},
                    {"kind": "Sealed", "path": "vars.sealed.yaml"},
                ],
            },
        }),
    )
    .await;
    env.wait_applied(PLATFORM, "subst", &commit).await;
    let settings = env
        .get("v1", "ConfigMap", Some(PLATFORM), "settings-prod")
        .await
        .expect("the substituted name");
    assert_eq!(settings.data["data"]["cluster"], "PROD");
    assert_eq!(settings.data["data"]["region"], "us-east-1");
    assert_eq!(settings.data["data"]["tier"], "standard");
    assert_eq!(settings.data["data"]["host"], CANARY);
    assert_eq!(settings.data["data"]["price"], "$5");
    assert_eq!(settings.data["data"]["api"], "key-from-a-sealed-file");
    let script = env
        .get("v1", "ConfigMap", Some(PLATFORM), "script")
        .await
        .expect("the opted-out object");
    assert_eq!(script.data["data"]["run"], "echo ${HOME}");

    // A variable changed beside the GitSync takes effect at the next interval, no commit.
    apply_yaml(
        &env.client,
        &configmap_yaml(PLATFORM, "cluster-vars", "region", "ap-south-1"),
    )
    .await;
    wait_for_value(
        "the new region",
        std::time::Duration::from_secs(60),
        || async {
            let region = env
                .get("v1", "ConfigMap", Some(PLATFORM), "settings-prod")
                .await
                .and_then(|c| c.data["data"]["region"].as_str().map(str::to_owned));
            (region.as_deref() == Some("ap-south-1")).then_some(())
        },
        || env.controller.log_tail(20),
    )
    .await;

    // A variable that is not set fails the revision, naming the variable; the last revision
    // stays.
    let mut broken = files.clone();
    broken[1].1 = broken[1].1.replace("${region}", "${zone}");
    let commit = env
        .repo
        .commit_tree(&broken, "unset variable")
        .expect("commit");
    let status = env.wait_failed(PLATFORM, "subst", &commit).await;
    let (reason, message) = ready_condition(&status);
    assert_eq!(reason, "RenderFailed", "{message}");
    assert!(message.contains("\"zone\" is not set"), "{message}");
    assert!(env
        .get("v1", "ConfigMap", Some(PLATFORM), "settings-prod")
        .await
        .is_some());

    if !env.cluster.is_real() {
        // The embedded server does not validate label values.
        assert_no_canary(&env, &["subst"]).await;
        return;
    }
    // The API server refuses a value from a Secret and quotes it: no message shows it.
    let mut refused = files.clone();
    refused[1].1 = refused[1].1.replace(
        "metadata:\n",
        "metadata:\n  labels:\n    host: ${db_host}!!\n",
    );
    let commit = env
        .repo
        .commit_tree(&refused, "invalid label")
        .expect("commit");
    let status = env.wait_failed(PLATFORM, "subst", &commit).await;
    let (reason, message) = ready_condition(&status);
    assert_ne!(reason, "RenderFailed", "{message}");
    assert!(message.contains("***!!"), "{message}");
    assert_no_canary(&env, &["subst"]).await;
}

/// A Secret whose key `values.yaml` holds Helm values, as a user seals it.
fn values_secret(namespace: &str, values: &str) -> String {
    let indented: String = values.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: web-values\n  namespace: {namespace}\nstringData:\n  values.yaml: |\n{indented}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_helm_values_are_opened_in_memory_and_never_leave_it() {
    let env = Env::start(&[PLATFORM]).await;
    // A token kept in the cluster, merged at a path.
    apply_yaml(
        &env.client,
        &secret_yaml(PLATFORM, "web-token", "token", "tok-4d1f9"),
    )
    .await;
    let sealed_values = env.seal(&values_secret(
        PLATFORM,
        &format!("db:\n  password: {CANARY}\n  host: db.internal\n"),
    ));
    let mut files = vec![
        (
            "charts/web/Chart.yaml".to_owned(),
            "apiVersion: v2\nname: web\nversion: 0.1.0\n".to_owned(),
        ),
        (
            "charts/web/values.yaml".to_owned(),
            "db:\n  host: localhost\n  password: \"\"\napi:\n  token: \"\"\n".to_owned(),
        ),
        (
            "charts/web/templates/secret.yaml".to_owned(),
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}-db\nstringData:\n  password: {{ .Values.db.password | quote }}\n  token: {{ .Values.api.token | quote }}\n".to_owned(),
        ),
        (
            "charts/web/templates/config.yaml".to_owned(),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\ndata:\n  host: {{ .Values.db.host }}\n".to_owned(),
        ),
        ("charts/web/values.sealed.yaml".to_owned(), sealed_values),
    ];
    let first = env
        .repo
        .commit_tree(&files, "chart with sealed values")
        .expect("commit");
    env.apply_gitsync(
        PLATFORM,
        "web",
        json!({
            "path": "charts/web",
            "helm": {"valuesFrom": [
                {"kind": "Sealed", "path": "values.sealed.yaml"},
                {"kind": "Secret", "name": "web-token", "valuesKey": "token", "targetPath": "api.token"},
                {"kind": "ConfigMap", "name": "absent", "optional": true},
            ]},
        }),
    )
    .await;
    env.wait_applied(PLATFORM, "web", &first).await;
    let db = env
        .get("v1", "Secret", Some(PLATFORM), "web-db")
        .await
        .expect("the Secret the chart renders");
    assert_eq!(secret_value(&db, "password"), CANARY);
    assert_eq!(secret_value(&db, "token"), "tok-4d1f9");
    assert_eq!(
        value_of_key(&env, "web-config", "host").await.as_deref(),
        Some("db.internal")
    );
    // The sealed values file counts as a use of the key that opened it.
    let status = env.gitsync_status(PLATFORM, "web").await;
    let files_using: Vec<&str> = status["sealedSecrets"]
        .as_array()
        .map(|u| u.iter().filter_map(|e| e["file"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        files_using.contains(&"charts/web/values.sealed.yaml"),
        "{status}"
    );

    // A template that fails quoting a sealed value: the message masks it.
    files.push((
        "charts/web/templates/check.yaml".to_owned(),
        "{{ if .Values.db.password }}{{ fail (printf \"refusing %s\" .Values.db.password) }}{{ end }}\n".to_owned(),
    ));
    let commit = env
        .repo
        .commit_tree(&files, "a failing template")
        .expect("commit");
    let status = env.wait_failed(PLATFORM, "web", &commit).await;
    let (reason, message) = ready_condition(&status);
    assert_eq!(reason, "RenderFailed", "{message}");
    assert!(message.contains("refusing ***"), "{message}");
    files.pop();

    // A plaintext password in the chart's own values.yaml is plaintext in Git: refused.
    files[1].1 =
        "db:\n  host: localhost\n  password: in-git-plain\napi:\n  token: \"\"\n".to_owned();
    files.pop();
    let commit = env
        .repo
        .commit_tree(&files, "plaintext in values.yaml")
        .expect("commit");
    env.apply_gitsync(PLATFORM, "web", json!({"path": "charts/web"}))
        .await;
    let status = env.wait_failed(PLATFORM, "web", &commit).await;
    let (reason, message) = ready_condition(&status);
    assert_eq!(reason, "DecryptionFailed", "{message}");
    assert!(message.contains("plaintext Secret"), "{message}");
    assert!(!message.contains("in-git-plain"), "{message}");

    // Values sealed for another namespace cannot become this chart's values.
    files[1].1 = "db:\n  host: localhost\n  password: \"\"\napi:\n  token: \"\"\n".to_owned();
    files.push((
        "charts/web/values.sealed.yaml".to_owned(),
        env.seal(&values_secret(
            "other-team",
            &format!("db:\n  password: {CANARY}\n"),
        )),
    ));
    let commit = env
        .repo
        .commit_tree(&files, "values of another namespace")
        .expect("commit");
    env.apply_gitsync(
        PLATFORM,
        "web",
        json!({"path": "charts/web", "helm": {"valuesFrom": [{"kind": "Sealed", "path": "values.sealed.yaml"}]}}),
    )
    .await;
    let status = env.wait_failed(PLATFORM, "web", &commit).await;
    let (_, message) = ready_condition(&status);
    assert!(
        message.contains("sealed for namespace \"other-team\""),
        "{message}"
    );
    assert_eq!(
        secret_value(
            &env.get("v1", "Secret", Some(PLATFORM), "web-db")
                .await
                .expect("kept"),
            "password"
        ),
        CANARY
    );

    assert_no_canary(&env, &["web"]).await;
    // Nothing under the controller's data directory holds a value: sealed values reach the
    // renderer through its standard input only.
    assert_no_canary_in_dir(env.controller.data_dir());
}

async fn value_of_key(env: &Env, name: &str, key: &str) -> Option<String> {
    env.get("v1", "ConfigMap", Some(PLATFORM), name)
        .await
        .and_then(|c| c.data["data"][key].as_str().map(str::to_owned))
}

fn assert_no_canary_in_dir(dir: &std::path::Path) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                assert!(
                    !bytes.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()),
                    "{} holds the canary",
                    path.display()
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charts_render_in_isolation_and_archives_are_bounded() {
    let env = Env::start(&[PLATFORM]).await;
    let chart = vec![
        (
            "charts/web/Chart.yaml".to_owned(),
            "apiVersion: v2\nname: web\nversion: 0.1.0\n".to_owned(),
        ),
        ("charts/web/values.yaml".to_owned(), "colour: none\n".to_owned()),
        (
            "charts/web/templates/cm.yaml".to_owned(),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  colour: {{ .Values.colour }}\n".to_owned(),
        ),
    ];
    let first = env.repo.commit_tree(&chart, "one chart").expect("commit");
    // Two GitSyncs render the same chart at once, each with its own values: neither sees the
    // other's (each render has a copy of the tree of its own, and values only on stdin).
    for (name, colour) in [("red", "red"), ("blue", "blue")] {
        env.apply_gitsync(
            PLATFORM,
            name,
            json!({"path": "charts/web", "helm": {"values": {"colour": colour}}}),
        )
        .await;
    }
    for name in ["red", "blue"] {
        env.wait_applied(PLATFORM, name, &first).await;
        assert_eq!(
            value_of_key(&env, name, "colour").await.as_deref(),
            Some(name)
        );
    }

    // A dependency archive that expands past the bound (a gzip bomb) fails the render.
    let dir = tempfile::tempdir().expect("tmp");
    let script = "mkdir -p bomb/templates && printf 'apiVersion: v2\\nname: bomb\\nversion: 0.1.0\\n' > bomb/Chart.yaml && head -c 67108864 /dev/zero > bomb/templates/zeros.yaml && tar -czf bomb-0.1.0.tgz bomb";
    let made = std::process::Command::new("bash")
        .args(["-c", script])
        .current_dir(dir.path())
        .status()
        .expect("tar");
    assert!(made.success());
    let bomb = std::fs::read(dir.path().join("bomb-0.1.0.tgz")).expect("archive");
    assert!(bomb.len() < 1024 * 1024, "{} bytes", bomb.len());
    let commit = env
        .repo
        .commit_files(&[("charts/web/charts/bomb-0.1.0.tgz", bomb)], "a bomb")
        .expect("commit");
    let status = env.wait_failed(PLATFORM, "red", &commit).await;
    let (reason, message) = ready_condition(&status);
    assert_eq!(reason, "RenderFailed", "{message}");
    assert!(
        message.contains("larger than the maximum size"),
        "{message}"
    );
    assert_eq!(
        value_of_key(&env, "red", "colour").await.as_deref(),
        Some("red")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helm_pre_install_hook_job_completes_before_the_rest_and_is_recreated_for_a_new_template()
{
    let env = Env::start(&[PLATFORM]).await;
    let chart = |version: &str| {
        vec![
            (
                "chart/Chart.yaml".to_owned(),
                "apiVersion: v2\nname: app\nversion: 0.1.0\n".to_owned(),
            ),
            ("chart/values.yaml".to_owned(), format!("version: \"{version}\"\n")),
            (
                "chart/templates/migrate.yaml".to_owned(),
                "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n    helm.sh/hook: pre-install,pre-upgrade\n    helm.sh/hook-weight: \"-5\"\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: migrate\n        image: busybox:1.36\n        args: [\"migrate\", \"--to\", {{ .Values.version | quote }}]\n".to_owned(),
            ),
            (
                "chart/templates/cm.yaml".to_owned(),
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  version: {{ .Values.version | quote }}\n".to_owned(),
            ),
        ]
    };
    // The migration's version once its Job exists; the chart's other objects wait for it.
    let migrating = |version: &'static str| {
        let env = &env;
        async move {
            wait_for(
                &format!("the hook Job for version {version}"),
                std::time::Duration::from_secs(60),
                || async {
                    env.get("batch/v1", "Job", Some(PLATFORM), "migrate")
                        .await
                        .is_some_and(|job| {
                            job.data["spec"]["template"]["spec"]["containers"][0]["args"][2]
                                == version
                        })
                },
            )
            .await;
        }
    };
    let first = env.repo.commit_tree(&chart("1"), "v1").expect("commit");
    env.apply_gitsync(PLATFORM, "hooks", json!({"path": "chart"}))
        .await;
    // A pre-install hook runs first, as in Helm: nothing else is applied until it completes.
    migrating("1").await;
    assert_eq!(value_of_key(&env, "app", "version").await, None);
    finish_job(&env, PLATFORM, "migrate", "Complete").await;
    env.wait_applied(PLATFORM, "hooks", &first).await;
    assert_eq!(
        value_of_key(&env, "app", "version").await.as_deref(),
        Some("1")
    );
    // A Job's template is immutable: Helm deletes a hook before creating it again (its default
    // policy), and so does sealsync, instead of failing the revision.
    let second = env.repo.commit_tree(&chart("2"), "v2").expect("commit");
    migrating("2").await;
    assert_eq!(
        value_of_key(&env, "app", "version").await.as_deref(),
        Some("1")
    );
    finish_job(&env, PLATFORM, "migrate", "Complete").await;
    env.wait_applied(PLATFORM, "hooks", &second).await;
    assert_eq!(
        value_of_key(&env, "app", "version").await.as_deref(),
        Some("2")
    );
}

/// A chart repository served over HTTP from a directory: `index.yaml` and archives.
struct ChartRepo {
    dir: tempfile::TempDir,
    port: u16,
    _server: sealsync_tests::process::ChildGuard,
    entries: Vec<String>,
}

impl ChartRepo {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path().join("charts")).expect("dir");
        let port = sealsync_tests::process::free_loopback_port().expect("port");
        let server = sealsync_tests::process::ChildGuard::spawn(
            "chart-repository",
            std::process::Command::new("python3")
                .args([
                    "-m",
                    "http.server",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--directory",
                ])
                .arg(dir.path()),
        )
        .expect("http.server");
        let repo = Self {
            dir,
            port,
            _server: server,
            entries: Vec::new(),
        };
        repo.write_index();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        repo
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/charts", self.port)
    }

    /// Packages a chart `name` at `version` whose ConfigMap says its version; `digest`
    /// overrides the digest the index lists.
    fn add(&mut self, name: &str, version: &str, digest: Option<&str>) {
        let work = tempfile::tempdir().expect("tmp");
        let chart = work.path().join(name);
        std::fs::create_dir_all(chart.join("templates")).expect("dir");
        std::fs::write(
            chart.join("Chart.yaml"),
            format!("apiVersion: v2\nname: {name}\nversion: {version}\n"),
        )
        .expect("write");
        std::fs::write(chart.join("values.yaml"), "greeting: hello\n").expect("write");
        std::fs::write(
            chart.join("templates/cm.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-{{ .Chart.Name }}\ndata:\n  version: {{ .Chart.Version | quote }}\n  greeting: {{ .Values.greeting | quote }}\n",
        )
        .expect("write");
        let archive = format!("{name}-{version}.tgz");
        let made = std::process::Command::new("tar")
            .args(["-czf"])
            .arg(self.dir.path().join("charts").join(&archive))
            .arg("-C")
            .arg(work.path())
            .arg(name)
            .status()
            .expect("tar");
        assert!(made.success());
        let bytes = std::fs::read(self.dir.path().join("charts").join(&archive)).expect("read");
        let digest = digest.map(str::to_owned).unwrap_or_else(|| {
            ring::digest::digest(&ring::digest::SHA256, &bytes)
                .as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        });
        self.entries.push(format!(
            "  - name: {name}\n    version: {version}\n    urls: [{archive}]\n    digest: {digest}\n"
        ));
        self.write_index();
    }

    fn write_index(&self) {
        let mut by_name: std::collections::BTreeMap<String, String> = Default::default();
        for entry in &self.entries {
            let name = entry
                .lines()
                .next()
                .and_then(|l| l.split(": ").nth(1))
                .unwrap_or_default()
                .to_owned();
            by_name.entry(name).or_default().push_str(entry);
        }
        let mut index = String::from("apiVersion: v1\nentries:\n");
        for (name, entries) in by_name {
            index.push_str(&format!("  {name}:\n{entries}"));
        }
        std::fs::write(self.dir.path().join("charts/index.yaml"), index).expect("index");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charts_from_a_chart_repository_resolve_their_versions_as_helm_does() {
    let env = Env::start(&[PLATFORM]).await;
    let mut repo = ChartRepo::start();
    for version in ["1.0.0", "1.2.0", "2.0.0", "2.1.0-rc.1"] {
        repo.add("web", version, None);
    }
    // The values of the remote chart are in Git, sealed.
    let sealed_values = env.seal(&values_secret(PLATFORM, &format!("greeting: {CANARY}\n")));
    let files = vec![
        ("deploy/web/values.sealed.yaml".to_owned(), sealed_values),
        // A chart of the repository whose dependency is pinned by Chart.lock.
        (
            "umbrella/Chart.yaml".to_owned(),
            format!(
                "apiVersion: v2\nname: umbrella\nversion: 0.1.0\ndependencies:\n- name: web\n  version: ^1.0.0\n  repository: {}\n",
                repo.url()
            ),
        ),
        (
            "umbrella/Chart.lock".to_owned(),
            format!(
                "dependencies:\n- name: web\n  version: 1.0.0\n  repository: {}\ndigest: sha256:0\ngenerated: \"2026-01-01T00:00:00Z\"\n",
                repo.url()
            ),
        ),
        (
            "umbrella/templates/cm.yaml".to_owned(),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: umbrella\ndata:\n  a: b\n".to_owned(),
        ),
    ];
    let commit = env
        .repo
        .commit_tree(&files, "values and an umbrella")
        .expect("commit");
    env.apply_gitsync(
        PLATFORM,
        "remote",
        json!({
            "path": "deploy/web",
            "helm": {
                "chart": {"repository": repo.url(), "name": "web", "version": "^1.0"},
                "valuesFrom": [{"kind": "Sealed", "path": "values.sealed.yaml"}],
            },
        }),
    )
    .await;
    env.apply_gitsync(PLATFORM, "umbrella", json!({"path": "umbrella"}))
        .await;
    env.wait_applied(PLATFORM, "remote", &commit).await;
    // `^1.0`: the newest 1.x release, never a 2.x or a prerelease.
    assert_eq!(
        value_of_key(&env, "remote-web", "version").await.as_deref(),
        Some("1.2.0")
    );
    assert_eq!(
        value_of_key(&env, "remote-web", "greeting")
            .await
            .as_deref(),
        Some(CANARY)
    );
    env.wait_applied(PLATFORM, "umbrella", &commit).await;
    // Chart.lock's version, not the newest the range allows.
    assert_eq!(
        value_of_key(&env, "umbrella-web", "version")
            .await
            .as_deref(),
        Some("1.0.0")
    );

    // An archive that does not match the index's digest is refused; the last revision stays.
    repo.add(
        "web",
        "1.3.0",
        Some("0000000000000000000000000000000000000000000000000000000000000000"),
    );
    let commit = env.repo.commit_tree(&files, "again").expect("commit");
    let status = env.wait_failed(PLATFORM, "remote", &commit).await;
    let (reason, message) = ready_condition(&status);
    assert_eq!(reason, "RenderFailed", "{message}");
    assert!(message.contains("SHA-256"), "{message}");
    assert_eq!(
        value_of_key(&env, "remote-web", "version").await.as_deref(),
        Some("1.2.0")
    );
    assert_no_canary(&env, &["remote", "umbrella"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_bases_are_fetched_only_when_allowed() {
    let env = Env::start(&[PLATFORM]).await;
    // A platform team's bases, in a repository of their own, released by tag.
    let bases = env.git.create_repo("bases").expect("repo");
    let v1 = bases
        .commit_files(
            &[
                ("base/kustomization.yaml", "resources:\n- cm.yaml\n"),
                ("base/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\ndata:\n  release: v1\n"),
            ],
            "v1",
        )
        .expect("commit");
    bases.create_tag("v1", &v1).expect("tag");
    bases
        .commit_files(
            &[("base/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\ndata:\n  release: main\n")],
            "after v1",
        )
        .expect("commit");
    let overlay = format!(
        "namespace: platform\nnamePrefix: app-\nresources:\n- {}//base?ref=v1\n- local.yaml\n",
        bases.http_url()
    );
    let files = vec![
        ("app/kustomization.yaml".to_owned(), overlay),
        ("app/local.yaml".to_owned(), configmap("local", "here")),
    ];
    let commit = env
        .repo
        .commit_tree(&files, "an overlay of a remote base")
        .expect("commit");

    // Not allowed: the render fails and says how to allow it or what to do instead.
    env.apply_gitsync(PLATFORM, "remote-base", json!({"path": "app"}))
        .await;
    let status = env.wait_failed(PLATFORM, "remote-base", &commit).await;
    let (reason, message) = ready_condition(&status);
    assert_eq!(reason, "RenderFailed", "{message}");
    assert!(
        message.contains("vendor it into the repository"),
        "{message}"
    );
    assert!(env
        .get("v1", "ConfigMap", Some(PLATFORM), "app-local")
        .await
        .is_none());

    // Allowed: the base is fetched at its tag, with the source's bounds.
    env.apply_gitsync(
        PLATFORM,
        "remote-base",
        json!({"path": "app", "render": {"kustomize": {"allowRemoteBases": true}}}),
    )
    .await;
    env.wait_applied(PLATFORM, "remote-base", &commit).await;
    assert_eq!(
        value_of_key(&env, "app-shared", "release").await.as_deref(),
        Some("v1")
    );
    assert_eq!(
        value_of_key(&env, "app-local", "value").await.as_deref(),
        Some("here")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chart_schema_cannot_reach_files_or_urls_and_delete_hooks_are_left_out() {
    let env = Env::start(&[PLATFORM]).await;
    let mut files = vec![
        (
            "chart/Chart.yaml".to_owned(),
            "apiVersion: v2\nname: app\nversion: 0.1.0\n".to_owned(),
        ),
        ("chart/values.yaml".to_owned(), "replicas: 2\n".to_owned()),
        (
            "chart/values.schema.json".to_owned(),
            "{\"type\": \"object\", \"properties\": {\"replicas\": {\"type\": \"integer\", \"minimum\": 1}}}".to_owned(),
        ),
        (
            "chart/templates/cm.yaml".to_owned(),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  replicas: {{ .Values.replicas | quote }}\n".to_owned(),
        ),
        (
            "chart/templates/cleanup.yaml".to_owned(),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cleanup\n  annotations:\n    helm.sh/hook: pre-delete\ndata:\n  drop: everything\n".to_owned(),
        ),
    ];
    let first = env
        .repo
        .commit_tree(&files, "a chart with a schema")
        .expect("commit");
    env.apply_gitsync(PLATFORM, "schema", json!({"path": "chart"}))
        .await;
    env.wait_applied(PLATFORM, "schema", &first).await;
    assert_eq!(
        value_of_key(&env, "app", "replicas").await.as_deref(),
        Some("2")
    );
    // A pre-delete hook is never applied.
    assert!(env
        .get("v1", "ConfigMap", Some(PLATFORM), "cleanup")
        .await
        .is_none());

    // Values against the schema: refused, as by helm template.
    files[1].1 = "replicas: 0\n".to_owned();
    let commit = env
        .repo
        .commit_tree(&files, "zero replicas")
        .expect("commit");
    let status = env.wait_failed(PLATFORM, "schema", &commit).await;
    let (reason, message) = ready_condition(&status);
    assert_eq!(reason, "RenderFailed", "{message}");
    assert!(message.contains("values.schema.json"), "{message}");

    // A schema that points at a host file or a URL is not followed.
    files[1].1 = "replicas: 2\n".to_owned();
    for reference in [
        "file:///var/run/secrets/kubernetes.io/serviceaccount/token",
        "file:///etc/passwd",
        "http://169.254.169.254/latest/meta-data/",
    ] {
        files[2].1 = format!("{{\"$ref\": \"{reference}\"}}");
        let commit = env.repo.commit_tree(&files, reference).expect("commit");
        let status = env.wait_failed(PLATFORM, "schema", &commit).await;
        let (reason, message) = ready_condition(&status);
        assert_eq!(reason, "RenderFailed", "{reference}: {message}");
        assert!(message.contains("are not loaded"), "{reference}: {message}");
        assert!(!message.contains("root:"), "{message}");
    }
}
