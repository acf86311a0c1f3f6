//! The cases of the differential kubectl suite: what users of kubectl and GitOps tools do
//! every day, each in a namespace of its own (`{ns}` in arguments and manifests).
//!
//! A case is a list of steps; each step is one kubectl run whose exit code and output are
//! compared between the two servers. A case agrees when every step does.

/// One kubectl run: arguments, and a manifest on stdin (`-f -`) when given.
pub struct Step {
    pub args: &'static str,
    pub stdin: Option<&'static str>,
    /// Whether only the exit code is compared: for `kubectl wait`, whose output depends on
    /// whether the object was already gone, which is timing, not behaviour.
    pub exit_code_only: bool,
    /// Whether the step is retried (for up to 30 s) until it succeeds: for what kube-apiserver
    /// publishes asynchronously, such as a new CRD's OpenAPI definitions.
    pub eventually: bool,
}

/// A named case.
pub struct Case {
    pub name: &'static str,
    pub steps: Vec<Step>,
}

fn run(args: &'static str) -> Step {
    Step {
        args,
        stdin: None,
        exit_code_only: false,
        eventually: false,
    }
}

fn with(args: &'static str, stdin: &'static str) -> Step {
    Step {
        args,
        stdin: Some(stdin),
        exit_code_only: false,
        eventually: false,
    }
}

/// A manifest built at run time (too large to write out), kept for the whole run.
fn generated(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

/// Waits for something that happens asynchronously on kube-apiserver's side (garbage
/// collection, namespace clean-up): only the exit code counts.
fn settle(args: &'static str) -> Step {
    Step {
        args,
        stdin: None,
        exit_code_only: true,
        eventually: false,
    }
}

/// A step that succeeds once the server has caught up: retried until it exits 0.
fn eventually(args: &'static str) -> Step {
    Step {
        args,
        stdin: None,
        exit_code_only: false,
        eventually: true,
    }
}

fn case(name: &'static str, steps: Vec<Step>) -> Case {
    Case { name, steps }
}

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: {ns}\n  labels: {app: demo, tier: backend}\ndata:\n  mode: blue\n";
const CM_GREEN: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: {ns}\n  labels: {app: demo, tier: backend}\ndata:\n  mode: green\n";
const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: {ns}\n  labels: {app: web}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - name: app\n        image: nginx:1.27\n        ports: [{containerPort: 80}]\n";
const DEPLOY_SIDECAR: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: {ns}\n  labels: {app: web}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - name: app\n        image: nginx:1.28\n        ports: [{containerPort: 80}]\n      - name: sidecar\n        image: busybox\n";
const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: {ns}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n";
const SECRET_STRING_DATA: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\n  namespace: {ns}\nstringData:\n  user: admin\n";
const SECRET_BAD_BASE64: &str =
    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: bad\n  namespace: {ns}\ndata:\n  k: '!!!'\n";
const CM_TYPO: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\n  namespace: {ns}\ndatta:\n  a: b\n";
const CM_BAD_NAME: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n  namespace: {ns}\n";
const DEPLOY_NO_SELECTOR: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: broken\n  namespace: {ns}\nspec:\n  template:\n    metadata: {labels: {app: x}}\n    spec:\n      containers: [{name: app, image: nginx}]\n";
const CM_IMMUTABLE: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: frozen\n  namespace: {ns}\nimmutable: true\ndata:\n  k: one\n";
const CM_IMMUTABLE_CHANGED: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: frozen\n  namespace: {ns}\nimmutable: true\ndata:\n  k: two\n";
const OWNER: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owner\n  namespace: {ns}\ndata:\n  k: v\n";
const DEPENDENT: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dependent\n  namespace: {ns}\n  ownerReferences:\n  - {apiVersion: v1, kind: ConfigMap, name: owner, uid: '{uid:configmap/owner}'}\ndata:\n  k: v\n";
const DANGLING: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dangling\n  namespace: {ns}\n  ownerReferences:\n  - {apiVersion: v1, kind: ConfigMap, name: gone, uid: 0b7a2c1e-0000-4000-8000-000000000000}\n";
const EVENT_CORE: &str = "apiVersion: v1\nkind: Event\nmetadata:\n  name: started\n  namespace: {ns}\ninvolvedObject: {kind: ConfigMap, name: settings, namespace: {ns}}\nreason: Started\nmessage: all good\ntype: Normal\nsource: {component: tester}\n";
const EVENT_NEW: &str = "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata:\n  name: synced\n  namespace: {ns}\nregarding: {kind: ConfigMap, name: settings, namespace: {ns}}\nreason: Synced\nnote: applied revision 1\ntype: Normal\naction: Apply\nreportingController: sealsync.dev/test\nreportingInstance: test-1\neventTime: '2026-01-01T00:00:00.000000Z'\n";
const SERVICE_NO_PORTS: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: portless\n  namespace: {ns}\nspec:\n  selector: {app: web}\n";
const JOB_ALWAYS: &str = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: forever\n  namespace: {ns}\nspec:\n  template:\n    spec:\n      containers: [{name: main, image: busybox}]\n";
const POD_BAD_PORT: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: badport\n  namespace: {ns}\nspec:\n  containers:\n  - {name: App, image: nginx, ports: [{containerPort: 70000}]}\n  - {name: sidecar, ports: [{containerPort: 81, protocol: HTTP}]}\n";
const CORE_KINDS: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: {ns}}\nspec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data, namespace: {ns}}\nspec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n---\napiVersion: v1\nkind: ResourceQuota\nmetadata: {name: small, namespace: {ns}}\nspec: {hard: {pods: \"2\"}}\n---\napiVersion: v1\nkind: LimitRange\nmetadata: {name: limits, namespace: {ns}}\nspec: {limits: [{type: Container, default: {cpu: 100m}}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: {ns}}\nspec: {containers: [{name: main, image: busybox}]}\n---\napiVersion: v1\nkind: Endpoints\nmetadata: {name: web2, namespace: {ns}}\nsubsets: [{addresses: [{ip: 10.1.2.3}], ports: [{port: 80}]}]\n---\napiVersion: v1\nkind: ReplicationController\nmetadata: {name: rc, namespace: {ns}}\nspec: {replicas: 1, selector: {app: rc}, template: {metadata: {labels: {app: rc}}, spec: {containers: [{name: main, image: busybox}]}}}\n";
const OTHER_KINDS: &str = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: once, namespace: {ns}}\nspec: {template: {spec: {restartPolicy: Never, containers: [{name: main, image: busybox}]}}}\n---\napiVersion: batch/v1\nkind: CronJob\nmetadata: {name: nightly, namespace: {ns}}\nspec: {schedule: \"*/5 * * * *\", jobTemplate: {spec: {template: {spec: {restartPolicy: Never, containers: [{name: main, image: busybox}]}}}}}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: viewer, namespace: {ns}}\nrules: [{apiGroups: [\"\"], resources: [configmaps], verbs: [get]}]\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web, namespace: {ns}}\nspec: {rules: [{host: example.com, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}}]}\n---\napiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: leader, namespace: {ns}}\nspec: {holderIdentity: me}\n---\napiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: rs, namespace: {ns}}\nspec: {replicas: 1, selector: {matchLabels: {app: rs}}, template: {metadata: {labels: {app: rs}}, spec: {containers: [{name: main, image: busybox}]}}}\n---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: ss, namespace: {ns}}\nspec: {replicas: 1, serviceName: web, selector: {matchLabels: {app: ss}}, template: {metadata: {labels: {app: ss}}, spec: {containers: [{name: main, image: busybox}]}}}\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: ds, namespace: {ns}}\nspec: {selector: {matchLabels: {app: ds}}, template: {metadata: {labels: {app: ds}}, spec: {containers: [{name: main, image: busybox}]}}}\n";
const CRD: &str = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: gadgets{n}.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n  names: {plural: gadgets{n}, singular: gadget{n}, kind: Gadget{n}}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    additionalPrinterColumns:\n    - {name: Size, type: integer, jsonPath: .spec.size}\n    schema:\n      openAPIV3Schema:\n        type: object\n        properties:\n          spec:\n            type: object\n            required: [size]\n            properties:\n              size: {type: integer, minimum: 1}\n              color: {type: string, default: blue}\n";
const GADGET: &str = "apiVersion: example.com/v1\nkind: Gadget{n}\nmetadata:\n  name: g1\n  namespace: {ns}\nspec:\n  size: 3\n  extra: dropped\n";
const GADGET_INVALID: &str = "apiVersion: example.com/v1\nkind: Gadget{n}\nmetadata:\n  name: g2\n  namespace: {ns}\nspec:\n  size: 0\n";
const GADGET_MISSING: &str = "apiVersion: example.com/v1\nkind: Gadget{n}\nmetadata:\n  name: g3\n  namespace: {ns}\nspec:\n  color: red\n";
const JOB: &str = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: once\n  namespace: {ns}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: busybox}]\n";
const LIST: &str = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: one, namespace: {ns}}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: two, namespace: {ns}}\n";
const GENERATE_NAME: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  generateName: gen-\n  namespace: {ns}\n";
const ROLE: &str = "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: reader\n  namespace: {ns}\nrules:\n- apiGroups: ['']\n  resources: [configmaps]\n  verbs: [get, list]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: reader\n  namespace: {ns}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}\nsubjects:\n- {kind: ServiceAccount, name: bot, namespace: {ns}}\n";
const SA: &str =
    "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: bot\n  namespace: {ns}\n";

/// Every case.
pub fn all() -> Vec<Case> {
    vec![
        case("get namespaces by name", vec![run("get namespace default kube-system -o name")]),
        case("get a missing object", vec![run("get configmap nope -n {ns}")]),
        case("delete a missing object", vec![run("delete configmap nope -n {ns}")]),
        case("empty list message", vec![run("get configmaps -n {ns}")]),
        case(
            "create from a file, then get as JSON",
            vec![with("create -f -", CM), run("get configmap settings -n {ns} -o jsonpath={.data}")],
        ),
        case("create twice: AlreadyExists", vec![with("create -f -", CM), with("create -f -", CM)]),
        case(
            "create configmap --from-literal (protobuf body)",
            vec![run("create configmap lit -n {ns} --from-literal=a=b"), run("get configmap lit -n {ns} -o jsonpath={.data.a}")],
        ),
        case(
            "create secret generic (protobuf body)",
            vec![run("create secret generic s1 -n {ns} --from-literal=k=v"), run("get secret s1 -n {ns} -o jsonpath={.type}/{.data.k}")],
        ),
        case("create namespace (protobuf body)", vec![run("create namespace {ns}-made")]),
        case("create serviceaccount and a token", vec![run("create serviceaccount robot -n {ns}"), run("get serviceaccount robot -n {ns} -o name")]),
        case(
            "client-side apply records last-applied",
            vec![with("apply -f -", CM), run("get configmap settings -n {ns} -o jsonpath={.metadata.annotations}")],
        ),
        case("client-side apply twice: unchanged", vec![with("apply -f -", CM), with("apply -f -", CM)]),
        case(
            "server-side apply then managedFields",
            vec![with("apply --server-side -f -", CM), run("get configmap settings -n {ns} -o jsonpath={.metadata.managedFields[*].manager}/{.metadata.managedFields[*].operation}")],
        ),
        case(
            "server-side apply conflict between managers",
            vec![with("apply --server-side --field-manager=alice -f -", CM), with("apply --server-side --field-manager=bob -f -", CM_GREEN)],
        ),
        case(
            "server-side apply --force-conflicts",
            vec![with("apply --server-side --field-manager=alice -f -", CM), with("apply --server-side --field-manager=bob --force-conflicts -f -", CM_GREEN), run("get configmap settings -n {ns} -o jsonpath={.data.mode}")],
        ),
        case(
            "server dry-run writes nothing",
            vec![with("apply --server-side --dry-run=server -f -", CM), run("get configmap settings -n {ns}")],
        ),
        case(
            "diff --server-side exit codes",
            vec![with("apply --server-side -f -", CM), with("diff --server-side -f -", CM), with("diff --server-side -f -", CM_GREEN)],
        ),
        case(
            "replace",
            vec![with("create -f -", CM), with("replace -f -", CM_GREEN), run("get configmap settings -n {ns} -o jsonpath={.data.mode}")],
        ),
        case(
            "merge and JSON patches",
            vec![
                with("create -f -", CM),
                run("patch configmap settings -n {ns} --type=merge -p {\"data\":{\"mode\":\"red\"}}"),
                run("patch configmap settings -n {ns} --type=json -p [{\"op\":\"add\",\"path\":\"/data/size\",\"value\":\"2\"}]"),
                run("patch configmap settings -n {ns} --type=json -p [{\"op\":\"test\",\"path\":\"/data/size\",\"value\":\"3\"}]"),
                run("get configmap settings -n {ns} -o jsonpath={.data}"),
            ],
        ),
        case(
            "strategic merge patch of containers",
            vec![
                with("create -f -", DEPLOY),
                run("patch deployment web -n {ns} -p {\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"app\",\"image\":\"nginx:1.28\"}]}}}}"),
                run("get deployment web -n {ns} -o jsonpath={.spec.template.spec.containers[*].image}"),
            ],
        ),
        case(
            "label and annotate",
            vec![
                with("create -f -", CM),
                run("label configmap settings -n {ns} tier=front"),
                run("label configmap settings -n {ns} tier=front --overwrite"),
                run("annotate configmap settings -n {ns} note=hello"),
                run("get configmap settings -n {ns} -o jsonpath={.metadata.labels.tier}/{.metadata.annotations.note}"),
            ],
        ),
        case(
            "label and field selectors",
            vec![
                with("create -f -", CM),
                with("create -f -", LIST),
                run("get configmaps -n {ns} -l app=demo -o name"),
                run("get configmaps -n {ns} -l 'tier in (backend,front)' -o name"),
                run("get configmaps -n {ns} --field-selector metadata.name=one -o name"),
                run("get configmaps -n {ns} --field-selector data.mode=blue -o name"),
            ],
        ),
        case("a List kind is applied item by item", vec![with("apply -f -", LIST), run("get configmaps -n {ns} -o name")]),
        case("generateName", vec![with("create -f - -o jsonpath={.metadata.generateName}", GENERATE_NAME)]),
        case("scale a deployment", vec![with("create -f -", DEPLOY), run("scale deployment web -n {ns} --replicas=3"), run("get deployment web -n {ns} -o jsonpath={.spec.replicas}")]),
        case(
            "deployment defaults",
            vec![with("create -f -", DEPLOY), run("get deployment web -n {ns} -o jsonpath={.spec.strategy.type}/{.spec.revisionHistoryLimit}/{.spec.progressDeadlineSeconds}/{.spec.template.spec.restartPolicy}/{.spec.template.spec.containers[0].imagePullPolicy}/{.spec.template.spec.containers[0].terminationMessagePath}")],
        ),
        case(
            "service defaults",
            vec![with("create -f -", SERVICE), run("get service web -n {ns} -o jsonpath={.spec.type}/{.spec.sessionAffinity}/{.spec.ports[0].protocol}/{.spec.ports[0].targetPort}/{.spec.ipFamilyPolicy}")],
        ),
        case("job defaults", vec![with("create -f -", JOB), run("get job once -n {ns} -o jsonpath={.spec.backoffLimit}/{.spec.completions}/{.spec.parallelism}")]),
        case("secret stringData folds into data", vec![with("create -f -", SECRET_STRING_DATA), run("get secret creds -n {ns} -o jsonpath={.type}/{.data.user}/{.stringData}")]),
        case("secret with bad base64", vec![with("create -f -", SECRET_BAD_BASE64)]),
        case("unknown field with --validate=strict", vec![with("create --validate=strict -f -", CM_TYPO)]),
        case("unknown field with --validate=false is dropped", vec![with("create --validate=false -f -", CM_TYPO), run("get configmap typo -n {ns} -o jsonpath={.datta}")]),
        case("unknown field in a server-side apply", vec![with("apply --server-side --validate=false -f -", CM_TYPO)]),
        case("an invalid name", vec![with("create -f -", CM_BAD_NAME)]),
        case("a required field missing", vec![with("create -f -", DEPLOY_NO_SELECTOR)]),
        case("an immutable ConfigMap", vec![with("create -f -", CM_IMMUTABLE), with("apply -f -", CM_IMMUTABLE_CHANGED)]),
        case(
            "a CRD, a custom resource, printer columns and pruning",
            vec![
                with("apply --server-side -f -", CRD),
                run("wait --for=condition=Established crd/gadgets{n}.example.com --timeout=30s"),
                with("apply --server-side -f -", GADGET),
                run("get gadgets{n} -n {ns}"),
                run("get gadgets{n} g1 -n {ns} -o jsonpath={.spec}"),
            ],
        ),
        case(
            "custom resource schema validation",
            vec![
                with("apply --server-side -f -", CRD),
                run("wait --for=condition=Established crd/gadgets{n}.example.com --timeout=30s"),
                with("create -f -", GADGET_INVALID),
                with("create -f -", GADGET_MISSING),
            ],
        ),
        case("auth can-i as the admin", vec![run("auth can-i list secrets -n {ns}")]),
        case(
            "auth can-i as a service account, before and after a binding",
            vec![
                with("create -f -", SA),
                run("auth can-i list configmaps -n {ns} --as=system:serviceaccount:{ns}:bot"),
                with("create -f -", ROLE),
                run("auth can-i list configmaps -n {ns} --as=system:serviceaccount:{ns}:bot"),
                run("auth can-i delete configmaps -n {ns} --as=system:serviceaccount:{ns}:bot"),
            ],
        ),
        case("impersonation is authorized", vec![run("get configmaps -n {ns} --as=system:serviceaccount:{ns}:nobody")]),
        case("auth whoami", vec![run("auth whoami -o jsonpath={.status.userInfo.username}")]),
        case("api-resources of apps", vec![run("api-resources --api-group=apps -o name")]),
        case("api-resources of the core group, namespaced", vec![run("api-resources --api-group= --namespaced=true -o name")]),
        case("explain", vec![run("explain configmap.data")]),
        case("explain a nested field", vec![run("explain deployment.spec.template.spec.containers.ports")]),
        case("explain an object", vec![run("explain service.spec")]),
        case("explain recursively", vec![run("explain configmap --recursive")]),
        case("explain from OpenAPI v2", vec![run("explain deployment.spec.strategy --output=plaintext-openapiv2")]),
        case(
            "explain a custom resource from OpenAPI v2",
            vec![
                with("apply --server-side -f -", CRD),
                run("wait --for=condition=Established crd/gadgets{n}.example.com --timeout=30s"),
                eventually("explain gadgets{n}.spec --output=plaintext-openapiv2"),
            ],
        ),
        case(
            "client-side apply merges containers by name (strategic merge keys from OpenAPI v2)",
            vec![
                with("apply -f -", DEPLOY),
                with("apply -f -", DEPLOY_SIDECAR),
                run("get deployment web -n {ns} -o jsonpath={.spec.template.spec.containers[*].name}"),
            ],
        ),
        case(
            "explain a custom resource",
            vec![
                with("apply --server-side -f -", CRD),
                run("wait --for=condition=Established crd/gadgets{n}.example.com --timeout=30s"),
                eventually("explain gadgets{n}.spec"),
            ],
        ),
        case(
            "dependents are collected with their owner",
            vec![
                with("create -f -", OWNER),
                with("create -f -", DEPENDENT),
                run("delete configmap owner -n {ns}"),
                settle("wait --for=delete configmap/dependent -n {ns} --timeout=30s"),
                run("get configmaps -n {ns} -o name"),
            ],
        ),
        case(
            "orphaned dependents stay without the reference",
            vec![
                with("create -f -", OWNER),
                with("create -f -", DEPENDENT),
                run("delete configmap owner -n {ns} --cascade=orphan"),
                settle("wait --for=delete configmap/owner -n {ns} --timeout=30s"),
                run("get configmap dependent -n {ns} -o jsonpath={.metadata.name}:{.metadata.ownerReferences}"),
            ],
        ),
        case(
            "foreground deletion takes the dependents first",
            vec![
                with("create -f -", OWNER),
                with("create -f -", DEPENDENT),
                run("delete configmap owner -n {ns} --cascade=foreground"),
                run("get configmaps -n {ns} -o name"),
            ],
        ),
        case(
            "a dangling owner reference is collected",
            vec![
                with("create -f -", DANGLING),
                settle("wait --for=delete configmap/dangling -n {ns} --timeout=30s"),
            ],
        ),
        case(
            "a deleted namespace goes with its contents",
            vec![
                with("create -f -", CM),
                run("delete namespace {ns} --wait=false"),
                settle("wait --for=delete namespace/{ns} --timeout=60s"),
                run("get configmaps -n {ns} -o name"),
            ],
        ),
        case(
            "an Event written through one group is read through the other",
            vec![
                with("create -f -", EVENT_CORE),
                with("create -f -", EVENT_NEW),
                run("get events.v1.events.k8s.io started -n {ns} -o jsonpath={.note}/{.regarding.name}/{.deprecatedSource.component}"),
                run("get events.v1. synced -n {ns} -o jsonpath={.message}/{.involvedObject.kind}/{.reportingComponent}"),
                run("get events -n {ns} --field-selector=reason=Synced -o name"),
            ],
        ),
        case("a Service without ports", vec![with("create -f -", SERVICE_NO_PORTS)]),
        case(
            "a ConfigMap over 1 MiB",
            vec![with(
                "create -f -",
                generated(format!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\n  namespace: {{ns}}\ndata:\n  blob: {}\n",
                    "a".repeat(1_100_000)
                )),
            )],
        ),
        case(
            "a Secret over 1 MiB",
            vec![with(
                "create -f -",
                generated(format!(
                    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: big\n  namespace: {{ns}}\ndata:\n  blob: {}\n",
                    "YWFh".repeat(370_000)
                )),
            )],
        ),
        case(
            "annotations over 256 KiB",
            vec![with(
                "create -f -",
                generated(format!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: noted\n  namespace: {{ns}}\n  annotations:\n    note: {}\n",
                    "n".repeat(270_000)
                )),
            )],
        ),
        case(
            "a ConfigMap key that is not a config key",
            vec![with("create -f -", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keys\n  namespace: {ns}\ndata:\n  'bad key!': x\n  good: fine\n")],
        ),
        case("a Job whose pods restart Always", vec![with("create -f -", JOB_ALWAYS)]),
        case("containers with bad names, images and ports", vec![with("create -f -", POD_BAD_PORT)]),
        case("pods are served", vec![run("get pods -n {ns}")]),
        case("replicasets are served", vec![run("get replicasets -n {ns}")]),
        case("events of both groups", vec![run("get events -n {ns}"), run("get events.events.k8s.io -n {ns}")]),
        case("a table of ConfigMaps", vec![with("create -f -", CM), run("get configmaps -n {ns} --no-headers -o custom-columns=NAME:.metadata.name,DATA:.data.mode")]),
        case("wide deployments", vec![with("create -f -", DEPLOY), run("get deployments -n {ns} -o wide")]),
        case(
            "tables of core kinds",
            vec![
                with("create -f -", CORE_KINDS),
                run("get services,pods,pvc,endpoints,rc,quota,limitranges -n {ns}"),
                run("get services,pods,pvc,endpoints,rc -n {ns} -o wide"),
            ],
        ),
        case(
            "tables of workload, batch, rbac, networking and coordination kinds",
            vec![
                with("create -f -", OTHER_KINDS),
                run("get jobs,cronjobs,replicasets,statefulsets,daemonsets,roles,rolebindings,ingresses,leases -n {ns}"),
                run("get jobs,cronjobs,replicasets,statefulsets,daemonsets,rolebindings -n {ns} -o wide"),
            ],
        ),
        case("raw paging", vec![with("create -f -", LIST), run("get --raw /api/v1/namespaces/{ns}/configmaps?limit=1")]),
        case(
            "create deployment (protobuf body)",
            vec![
                run("create deployment web -n {ns} --image=nginx:1.27 --replicas=2 --port=80"),
                run("get deployment web -n {ns} -o jsonpath={.spec.replicas}/{.spec.selector.matchLabels}/{.spec.template.spec.containers[0].ports[0].containerPort}/{.spec.strategy.type}/{.spec.template.spec.containers[0].imagePullPolicy}"),
            ],
        ),
        case(
            "create job and cronjob (protobuf body)",
            vec![
                run("create job once -n {ns} --image=busybox -- echo hi"),
                run("get job once -n {ns} -o jsonpath={.spec.template.spec.containers[0].command}/{.spec.template.spec.restartPolicy}/{.spec.backoffLimit}"),
                run("create cronjob nightly -n {ns} --image=busybox --schedule='*/5 * * * *'"),
            ],
        ),
        case(
            "create service clusterip (protobuf body)",
            vec![
                run("create service clusterip web -n {ns} --tcp=80:8080"),
                run("get service web -n {ns} -o jsonpath={.spec.ports[0].port}/{.spec.ports[0].targetPort}/{.spec.selector}/{.spec.type}"),
            ],
        ),
        case(
            "create quota (protobuf body)",
            vec![run("create quota small -n {ns} --hard=pods=2,configmaps=5"), run("get quota small -n {ns} -o jsonpath={.spec.hard}")],
        ),
        case(
            "create role and rolebinding (protobuf body)",
            vec![
                run("create role viewer -n {ns} --verb=get,list --resource=configmaps"),
                run("create rolebinding viewer -n {ns} --role=viewer --serviceaccount={ns}:bot"),
                run("get rolebinding viewer -n {ns} -o jsonpath={.roleRef.name}/{.subjects[0].kind}/{.subjects[0].name}"),
                run("auth can-i list configmaps -n {ns} --as=system:serviceaccount:{ns}:bot"),
            ],
        ),
        case(
            "create clusterrole and clusterrolebinding (protobuf body)",
            vec![
                run("create clusterrole ns-reader-{n} --verb=get --resource=namespaces"),
                run("create clusterrolebinding ns-reader-{n} --clusterrole=ns-reader-{n} --user=alice-{n}"),
                run("auth can-i get namespaces --as=alice-{n}"),
                run("auth can-i delete namespaces --as=alice-{n}"),
            ],
        ),
        case("delete reports", vec![with("create -f -", CM), run("delete configmap settings -n {ns}"), run("get configmap settings -n {ns}")]),
    ]
}
