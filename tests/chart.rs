//! The Helm chart in `charts/inflight`: its CRD is the generated one, its RBAC
//! is exactly least privilege, its Deployment passes the values on as the
//! operator's flags and runs hardened, and its values schema refuses bad input.
//!
//! Everything except the CRD identity check runs `helm` (found through `$HELM`
//! or the tools cache that `make tools` fills), so those tests are ignored by a
//! plain `cargo test` and run by `make test`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_yaml::Value;

const RELEASE: &str = "inflight";
const RELEASE_NS: &str = "inflight-system";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chart_dir() -> PathBuf {
    repo().join("charts/inflight")
}

// ---------------------------------------------------------------------------
// The CRD: the chart ships exactly the file `inflight crd` generates.

#[test]
fn chart_crd_is_the_generated_crd() {
    let generated_path = repo().join("crds/concurrencypolicy.yaml");
    let chart_path = chart_dir().join("crds/concurrencypolicy.yaml");
    let generated = std::fs::read_to_string(&generated_path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; run make crd",
            generated_path.display()
        )
    });
    let in_chart = std::fs::read_to_string(&chart_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}; run make crd", chart_path.display()));
    assert!(
        !generated.trim().is_empty(),
        "crds/concurrencypolicy.yaml is empty; run make crd"
    );
    assert!(
        generated == in_chart,
        "charts/inflight/crds/concurrencypolicy.yaml differs from crds/concurrencypolicy.yaml; run make crd"
    );
    let files: Vec<String> = std::fs::read_dir(chart_dir().join("crds"))
        .expect("read charts/inflight/crds")
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        files,
        vec!["concurrencypolicy.yaml".to_string()],
        "charts/inflight/crds/ must hold only the generated CRD (helm installs every file there)"
    );
}

// ---------------------------------------------------------------------------
// Running helm.

/// The helm binary: `$HELM`, else the symlink `make tools` (e2e/cluster/setup-tools.sh)
/// puts in the tools cache.
fn helm() -> PathBuf {
    // Unset and empty mean the same, as in the shell scripts.
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(path) = var("HELM") {
        return PathBuf::from(path);
    }
    let mut caches = Vec::new();
    if let Some(dir) = var("INFLIGHT_CACHE_DIR") {
        caches.push(PathBuf::from(dir));
    }
    if let Some(dir) = var("XDG_CACHE_HOME") {
        caches.push(PathBuf::from(dir).join("inflight"));
    }
    if let Some(dir) = var("HOME") {
        caches.push(PathBuf::from(dir).join(".cache/inflight"));
    }
    let candidates: Vec<PathBuf> = caches.iter().map(|c| c.join("bin/helm")).collect();
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "helm not found ($HELM is unset, and none of {candidates:?} exists): run `make tools`"
            )
        })
}

/// Runs `helm template` on the chart with extra arguments (`--set ...`).
fn helm_template(args: &[&str]) -> std::process::Output {
    Command::new(helm())
        .args(["template", RELEASE])
        .arg(chart_dir())
        .args(["--namespace", RELEASE_NS])
        .args(args)
        .output()
        .expect("run helm template")
}

/// The rendered manifests; panics with helm's message if rendering fails.
fn render(args: &[&str]) -> Manifests {
    let out = helm_template(args);
    assert!(
        out.status.success(),
        "helm template {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Manifests::parse(&String::from_utf8_lossy(&out.stdout))
}

/// helm's error message; panics if rendering succeeds.
fn render_error(args: &[&str]) -> String {
    let out = helm_template(args);
    assert!(
        !out.status.success(),
        "helm template {args:?} accepted values it should refuse:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

struct Manifests(Vec<Value>);

impl Manifests {
    fn parse(yaml: &str) -> Self {
        let docs = serde_yaml::Deserializer::from_str(yaml)
            .map(|doc| Value::deserialize(doc).expect("helm output is YAML"))
            .filter(|doc| !doc.is_null())
            .collect();
        Manifests(docs)
    }

    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.0
            .iter()
            .filter(|doc| str_at(doc, &["kind"]) == kind)
            .collect()
    }

    fn get(&self, kind: &str, namespace: Option<&str>, name: &str) -> &Value {
        self.find(kind, namespace, name).unwrap_or_else(|| {
            panic!(
                "no {kind} {namespace:?}/{name} rendered; have: {:?}",
                self.names()
            )
        })
    }

    fn find(&self, kind: &str, namespace: Option<&str>, name: &str) -> Option<&Value> {
        self.of_kind(kind).into_iter().find(|doc| {
            str_at(doc, &["metadata", "name"]) == name
                && opt_str_at(doc, &["metadata", "namespace"]) == namespace
        })
    }

    fn names(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|doc| {
                format!(
                    "{} {}/{}",
                    str_at(doc, &["kind"]),
                    opt_str_at(doc, &["metadata", "namespace"]).unwrap_or(""),
                    str_at(doc, &["metadata", "name"])
                )
            })
            .collect()
    }

    fn deployment(&self) -> &Value {
        self.get("Deployment", Some(RELEASE_NS), RELEASE)
    }

    fn container(&self) -> &Value {
        let containers = at(
            self.deployment(),
            &["spec", "template", "spec", "containers"],
        );
        let containers = containers.as_sequence().expect("containers is a list");
        assert_eq!(containers.len(), 1, "one container");
        &containers[0]
    }

    fn args(&self) -> Vec<String> {
        strings(at(self.container(), &["args"]))
    }
}

fn at<'a>(value: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(value, |v, key| {
        v.get(*key)
            .unwrap_or_else(|| panic!("missing {key:?} (path {path:?}) in {v:?}"))
    })
}

fn opt_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    at(value, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path:?} is not a string"))
}

fn opt_str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    opt_at(value, path).and_then(Value::as_str)
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .unwrap_or_else(|| panic!("{value:?} is not a list"))
        .iter()
        .map(|v| {
            v.as_str()
                .unwrap_or_else(|| panic!("{v:?} is not a string"))
                .to_string()
        })
        .collect()
}

// ---------------------------------------------------------------------------
// RBAC, flattened into single grants so two rule sets compare exactly.

/// One verb on one resource of one API group (optionally limited to names).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Grant {
    group: String,
    resource: String,
    verb: String,
    names: Vec<String>,
}

fn grant(group: &str, resource: &str, verb: &str, names: &[&str]) -> Grant {
    Grant {
        group: group.into(),
        resource: resource.into(),
        verb: verb.into(),
        names: names.iter().map(|n| n.to_string()).collect(),
    }
}

/// Every combination of `groups x resources x verbs`, limited to `names`.
fn grants(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> Vec<Grant> {
    let mut out = Vec::new();
    for g in groups {
        for r in resources {
            for v in verbs {
                out.push(grant(g, r, v, names));
            }
        }
    }
    out
}

fn role_grants(role: &Value) -> BTreeSet<Grant> {
    let rules = at(role, &["rules"]).as_sequence().expect("rules is a list");
    let mut out = BTreeSet::new();
    for rule in rules {
        assert!(
            rule.get("nonResourceURLs").is_none(),
            "no nonResourceURLs: {rule:?}"
        );
        let groups = strings(at(rule, &["apiGroups"]));
        let resources = strings(at(rule, &["resources"]));
        let verbs = strings(at(rule, &["verbs"]));
        let mut names = rule.get("resourceNames").map(strings).unwrap_or_default();
        names.sort();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
        let resources: Vec<&str> = resources.iter().map(String::as_str).collect();
        let verbs: Vec<&str> = verbs.iter().map(String::as_str).collect();
        out.extend(grants(&groups, &resources, &verbs, &names));
    }
    out
}

/// What the operator needs wherever it watches policies (default scale targets).
fn policy_grants() -> BTreeSet<Grant> {
    [
        grants(
            &["inflight.dev"],
            &["concurrencypolicies"],
            &["get", "list", "watch"],
            &[],
        ),
        grants(
            &["inflight.dev"],
            &["concurrencypolicies/status"],
            &["get", "patch", "update"],
            &[],
        ),
        grants(
            &["apps"],
            &["deployments", "statefulsets"],
            &["get", "list", "watch"],
            &[],
        ),
        grants(
            &["apps"],
            &["deployments/scale", "statefulsets/scale"],
            &["get", "patch", "update"],
            &[],
        ),
        grants(
            &["autoscaling"],
            &["horizontalpodautoscalers"],
            &["get", "list", "watch"],
            &[],
        ),
        grants(
            &["events.k8s.io", ""],
            &["events"],
            &["create", "patch"],
            &[],
        ),
    ]
    .concat()
    .into_iter()
    .collect()
}

fn lease_grants(lease: &str) -> BTreeSet<Grant> {
    let mut out: BTreeSet<Grant> = grants(&["coordination.k8s.io"], &["leases"], &["create"], &[])
        .into_iter()
        .collect();
    out.extend(grants(
        &["coordination.k8s.io"],
        &["leases"],
        &["get", "update", "patch"],
        &[lease],
    ));
    out
}

/// Checks that hold for every value set: no wildcards, no dangerous verbs,
/// targets changed only through `/scale`, Secret access exactly as `secrets`
/// lists it (`("Kind namespace/name", grant)`, none by default), and every
/// binding binds a rendered role to our ServiceAccount.
fn assert_least_privilege(m: &Manifests, secrets: &[(&str, Grant)]) {
    let roles: Vec<&Value> = [m.of_kind("ClusterRole"), m.of_kind("Role")].concat();
    assert!(!roles.is_empty(), "no roles rendered");
    let mut secret_grants = Vec::new();
    for role in &roles {
        for g in role_grants(role) {
            for field in [&g.group, &g.resource, &g.verb] {
                assert!(!field.contains('*'), "wildcard in {g:?}");
            }
            assert!(
                ![
                    "delete",
                    "deletecollection",
                    "escalate",
                    "bind",
                    "impersonate"
                ]
                .contains(&g.verb.as_str()),
                "dangerous verb in {g:?}"
            );
            if ["deployments", "statefulsets"].contains(&g.resource.as_str()) {
                // The one exception: a limit sink annotating named workloads
                // (limitSinks with resourceNames) gets patch on those only.
                let named_sink = g.verb == "patch" && !g.names.is_empty();
                assert!(
                    ["get", "list", "watch"].contains(&g.verb.as_str()) || named_sink,
                    "targets may only be read; changes go through /scale: {g:?}"
                );
            }
            if g.resource == "secrets" {
                let holder = format!(
                    "{} {}/{}",
                    str_at(role, &["kind"]),
                    opt_str_at(role, &["metadata", "namespace"]).unwrap_or(""),
                    str_at(role, &["metadata", "name"])
                );
                secret_grants.push((holder, g));
            }
        }
    }
    secret_grants.sort();
    let mut expected: Vec<(String, Grant)> = secrets
        .iter()
        .map(|(holder, g)| (holder.to_string(), g.clone()))
        .collect();
    expected.sort();
    assert_eq!(secret_grants, expected, "Secret access");
    for binding in [m.of_kind("ClusterRoleBinding"), m.of_kind("RoleBinding")].concat() {
        let role_kind = str_at(binding, &["roleRef", "kind"]);
        let role_name = str_at(binding, &["roleRef", "name"]);
        let namespace = opt_str_at(binding, &["metadata", "namespace"]);
        let role_ns = if role_kind == "ClusterRole" {
            None
        } else {
            namespace
        };
        m.get(role_kind, role_ns, role_name);
        let subjects = at(binding, &["subjects"]).as_sequence().expect("subjects");
        assert_eq!(subjects.len(), 1, "one subject: {binding:?}");
        assert_eq!(str_at(&subjects[0], &["kind"]), "ServiceAccount");
        assert_eq!(str_at(&subjects[0], &["name"]), RELEASE);
        assert_eq!(str_at(&subjects[0], &["namespace"]), RELEASE_NS);
    }
    m.get("ServiceAccount", Some(RELEASE_NS), RELEASE);
}

/// The Roles in a namespace, by name.
fn roles_in(m: &Manifests, namespace: &str) -> Vec<String> {
    let mut names: Vec<String> = m
        .of_kind("Role")
        .into_iter()
        .filter(|r| opt_str_at(r, &["metadata", "namespace"]) == Some(namespace))
        .map(|r| str_at(r, &["metadata", "name"]).to_string())
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------------------
// The tests that render the chart.

#[test]
#[ignore = "needs helm; run by make test"]
fn chart_lints_with_every_value_set() {
    let value_sets: [&[&str]; 5] = [
        &[],
        &["--set-json", r#"watchNamespaces=["shop","batch"]"#],
        &[
            "--set",
            "serviceMonitor.enabled=true",
            "--set",
            "grafanaDashboard.enabled=true",
        ],
        &["--set", "prometheus.authSecret.name=prom-creds"],
        &["--set", "replicaCount=1"],
    ];
    for values in value_sets {
        let out = Command::new(helm())
            .args(["lint", "--strict"])
            .arg(chart_dir())
            .args(["--namespace", RELEASE_NS])
            .args(values)
            .output()
            .expect("run helm lint");
        assert!(
            out.status.success(),
            "helm lint {values:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
#[ignore = "needs helm; run by make test"]
fn default_rbac_is_cluster_wide_and_least_privilege() {
    let m = render(&[]);
    assert_least_privilege(&m, &[]);
    let cluster_role = m.get("ClusterRole", None, RELEASE);
    assert_eq!(role_grants(cluster_role), policy_grants());
    let binding = m.get("ClusterRoleBinding", None, RELEASE);
    assert_eq!(str_at(binding, &["roleRef", "name"]), RELEASE);
    assert_eq!(m.of_kind("ClusterRole").len(), 1);
    // The only Role: the Lease, in the release namespace.
    assert_eq!(m.of_kind("Role").len(), 1);
    let lease_role = m.get("Role", Some(RELEASE_NS), "inflight-leader-election");
    assert_eq!(role_grants(lease_role), lease_grants(RELEASE));
    m.get("RoleBinding", Some(RELEASE_NS), "inflight-leader-election");
}

#[test]
#[ignore = "needs helm; run by make test"]
fn rbac_names_the_generated_crd() {
    let crd_path = repo().join("crds/concurrencypolicy.yaml");
    let crd_text = std::fs::read_to_string(&crd_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}; run make crd", crd_path.display()));
    let crd: Value = serde_yaml::from_str(&crd_text).expect("CRD is YAML");
    assert!(
        crd.is_mapping(),
        "{} holds no CRD; run make crd",
        crd_path.display()
    );
    let group = str_at(&crd, &["spec", "group"]);
    let plural = str_at(&crd, &["spec", "names", "plural"]);
    let m = render(&[]);
    let rbac = role_grants(m.get("ClusterRole", None, RELEASE));
    assert!(
        rbac.contains(&grant(group, plural, "watch", &[])),
        "{rbac:?}"
    );
    assert!(
        rbac.contains(&grant(group, &format!("{plural}/status"), "patch", &[])),
        "{rbac:?}"
    );
}

#[test]
#[ignore = "needs helm; run by make test"]
fn watched_namespaces_get_roles_not_a_cluster_role() {
    let m = render(&["--set-json", r#"watchNamespaces=["shop","batch"]"#]);
    assert_least_privilege(&m, &[]);
    assert!(m.of_kind("ClusterRole").is_empty(), "{:?}", m.names());
    assert!(
        m.of_kind("ClusterRoleBinding").is_empty(),
        "{:?}",
        m.names()
    );
    for namespace in ["shop", "batch"] {
        assert_eq!(roles_in(&m, namespace), vec![RELEASE.to_string()]);
        assert_eq!(
            role_grants(m.get("Role", Some(namespace), RELEASE)),
            policy_grants()
        );
        let binding = m.get("RoleBinding", Some(namespace), RELEASE);
        assert_eq!(str_at(binding, &["roleRef", "kind"]), "Role");
    }
    assert_eq!(
        roles_in(&m, RELEASE_NS),
        vec!["inflight-leader-election".to_string()]
    );
    let args = m.args();
    let namespaces: Vec<&String> = args
        .iter()
        .filter(|a| a.starts_with("--namespace="))
        .collect();
    assert_eq!(namespaces, ["--namespace=shop", "--namespace=batch"]);
}

#[test]
#[ignore = "needs helm; run by make test"]
fn scale_targets_and_limit_sinks_shape_the_rules() {
    let m = render(&[
        "--set-json",
        r#"scaleTargets=[{"apiGroup":"apps","resources":["deployments"]},{"apiGroup":"argoproj.io","resources":["rollouts"]}]"#,
        "--set-json",
        r#"limitSinks=[{"apiGroup":"","resources":["configmaps"]}]"#,
    ]);
    assert_least_privilege(&m, &[]);
    let rbac = role_grants(m.get("ClusterRole", None, RELEASE));
    let expected: BTreeSet<Grant> = policy_grants()
        .into_iter()
        .filter(|g| g.group != "apps")
        .chain(grants(
            &["apps"],
            &["deployments"],
            &["get", "list", "watch"],
            &[],
        ))
        .chain(grants(
            &["apps"],
            &["deployments/scale"],
            &["get", "patch", "update"],
            &[],
        ))
        .chain(grants(
            &["argoproj.io"],
            &["rollouts"],
            &["get", "list", "watch"],
            &[],
        ))
        .chain(grants(
            &["argoproj.io"],
            &["rollouts/scale"],
            &["get", "patch", "update"],
            &[],
        ))
        .chain(grants(&[""], &["configmaps"], &["get", "patch"], &[]))
        .collect();
    assert_eq!(rbac, expected);
}

/// A limit sink is written by server-side apply to an object that must
/// exist: get and patch, nothing else (no create, update, list, delete),
/// narrowed to named objects when the values name them, in every watched
/// namespace's Role.
#[test]
#[ignore = "needs helm; run by make test"]
fn limit_sinks_grant_get_and_patch_on_exactly_what_is_listed() {
    let sinks = r#"limitSinks=[
        {"apiGroup":"","resources":["configmaps"],"resourceNames":["web-limits","api-limits"]},
        {"apiGroup":"networking.istio.io","resources":["destinationrules"]},
        {"apiGroup":"apps","resources":["deployments"],"resourceNames":["web"]}
    ]"#;
    let expected_sinks: BTreeSet<Grant> = [
        grants(
            &[""],
            &["configmaps"],
            &["get", "patch"],
            &["api-limits", "web-limits"],
        ),
        grants(
            &["networking.istio.io"],
            &["destinationrules"],
            &["get", "patch"],
            &[],
        ),
        grants(&["apps"], &["deployments"], &["get", "patch"], &["web"]),
    ]
    .concat()
    .into_iter()
    .collect();
    let m = render(&["--set-json", sinks]);
    assert_least_privilege(&m, &[]);
    let rbac = role_grants(m.get("ClusterRole", None, RELEASE));
    let expected: BTreeSet<Grant> = policy_grants().union(&expected_sinks).cloned().collect();
    assert_eq!(rbac, expected);

    let m = render(&[
        "--set-json",
        sinks,
        "--set-json",
        r#"watchNamespaces=["shop"]"#,
    ]);
    assert_least_privilege(&m, &[]);
    let role = role_grants(m.get("Role", Some("shop"), RELEASE));
    assert_eq!(role, expected);

    // Subresources, wildcards and bad names are refused by the schema.
    for bad in [
        r#"limitSinks=[{"apiGroup":"","resources":["configmaps/status"]}]"#,
        r#"limitSinks=[{"apiGroup":"*","resources":["configmaps"]}]"#,
        r#"limitSinks=[{"apiGroup":"","resources":["configmaps"],"resourceNames":["*"]}]"#,
    ] {
        let err = render_error(&["--set-json", bad]);
        assert!(
            err.contains("values don't meet the specifications of the schema")
                && err.contains("/limitSinks/0/"),
            "{bad}: {err}"
        );
    }
}

#[test]
#[ignore = "needs helm; run by make test"]
fn auth_secret_grants_get_on_that_secret_only() {
    let m = render(&[
        "--set",
        "prometheus.authSecret.name=prom-creds",
        "--set",
        "prometheus.authSecret.namespace=monitoring",
    ]);
    assert_least_privilege(
        &m,
        &[(
            "Role monitoring/inflight-prometheus-auth",
            grant("", "secrets", "get", &["prom-creds"]),
        )],
    );
    assert_eq!(
        roles_in(&m, "monitoring"),
        vec!["inflight-prometheus-auth".to_string()]
    );
    m.get(
        "RoleBinding",
        Some("monitoring"),
        "inflight-prometheus-auth",
    );
    assert!(
        m.args()
            .contains(&"--prometheus-auth-secret=monitoring/prom-creds".to_string()),
        "{:?}",
        m.args()
    );

    // Without a namespace, the Secret is looked up in the release namespace.
    let m = render(&["--set", "prometheus.authSecret.name=prom-creds"]);
    assert_least_privilege(
        &m,
        &[(
            "Role inflight-system/inflight-prometheus-auth",
            grant("", "secrets", "get", &["prom-creds"]),
        )],
    );
    assert!(
        m.args()
            .contains(&format!("--prometheus-auth-secret={RELEASE_NS}/prom-creds")),
        "{:?}",
        m.args()
    );
}

#[test]
#[ignore = "needs helm; run by make test"]
fn policy_prometheus_refs_need_an_explicit_opt_in() {
    let refs = grants(&[""], &["secrets", "configmaps"], &["get"], &[]);
    let m = render(&["--set", "prometheus.allowPolicyRefs=true"]);
    assert_least_privilege(
        &m,
        &[("ClusterRole /inflight", grant("", "secrets", "get", &[]))],
    );
    let expected: BTreeSet<Grant> = policy_grants().into_iter().chain(refs.clone()).collect();
    assert_eq!(role_grants(m.get("ClusterRole", None, RELEASE)), expected);

    let m = render(&[
        "--set",
        "prometheus.allowPolicyRefs=true",
        "--set-json",
        r#"watchNamespaces=["shop"]"#,
    ]);
    assert_least_privilege(
        &m,
        &[("Role shop/inflight", grant("", "secrets", "get", &[]))],
    );
    assert_eq!(role_grants(m.get("Role", Some("shop"), RELEASE)), expected);
}

#[test]
#[ignore = "needs helm; run by make test"]
fn deployment_args_carry_the_values() {
    let m = render(&[]);
    assert_eq!(
        m.args(),
        [
            "run",
            "--prometheus-url=http://prometheus-operated.monitoring.svc:9090",
            "--query-timeout=5s",
            "--sync-period=5s",
            "--metrics-addr=0.0.0.0:8080",
            "--log-format=json",
            "--log-level=info",
            "--leader-election",
            "--lease-name=inflight",
            &format!("--lease-namespace={RELEASE_NS}"),
            "--lease-duration=15s",
            "--identity=$(POD_NAME)",
        ]
    );

    let m = render(&[
        "--set",
        "prometheus.url=https://prom.example.internal:9443/prefix",
        "--set",
        "prometheus.queryTimeout=2s",
        "--set",
        "prometheus.ca.configMap=prom-ca",
        "--set",
        "syncPeriod=1m30s",
        "--set",
        "logFormat=text",
        "--set",
        "logLevel=debug",
        "--set",
        "metrics.port=9100",
        "--set",
        "leaderElection.leaseName=shop-scaler",
        "--set",
        "leaderElection.leaseDuration=30s",
    ]);
    let ca_file = "/etc/inflight/prometheus-ca/ca.crt";
    assert_eq!(
        m.args(),
        [
            "run",
            "--prometheus-url=https://prom.example.internal:9443/prefix",
            "--query-timeout=2s",
            &format!("--prometheus-ca-file={ca_file}"),
            "--sync-period=1m30s",
            "--metrics-addr=0.0.0.0:9100",
            "--log-format=text",
            "--log-level=debug",
            "--leader-election",
            "--lease-name=shop-scaler",
            &format!("--lease-namespace={RELEASE_NS}"),
            "--lease-duration=30s",
            "--identity=$(POD_NAME)",
        ]
    );
    // The CA file comes from the ConfigMap, mounted read-only.
    let mount = &at(m.container(), &["volumeMounts"])[0];
    assert_eq!(str_at(mount, &["name"]), "prometheus-ca");
    assert!(ca_file.starts_with(str_at(mount, &["mountPath"])));
    assert_eq!(at(mount, &["readOnly"]).as_bool(), Some(true));
    let volume = &at(m.deployment(), &["spec", "template", "spec", "volumes"])[0];
    assert_eq!(str_at(volume, &["configMap", "name"]), "prom-ca");
    // The lease Role follows the lease name.
    assert_eq!(
        role_grants(m.get("Role", Some(RELEASE_NS), "inflight-leader-election")),
        lease_grants("shop-scaler")
    );
    // The metrics port is the container's, the probes' and the Service's.
    let port = &at(m.container(), &["ports"])[0];
    assert_eq!(str_at(port, &["name"]), "http-metrics");
    assert_eq!(at(port, &["containerPort"]).as_u64(), Some(9100));
    let service_port = &at(
        m.get("Service", Some(RELEASE_NS), "inflight-metrics"),
        &["spec", "ports"],
    )[0];
    assert_eq!(str_at(service_port, &["name"]), "http-metrics");
    assert_eq!(at(service_port, &["port"]).as_u64(), Some(9100));
    assert_eq!(str_at(service_port, &["targetPort"]), "http-metrics");
}

#[test]
#[ignore = "needs helm; run by make test"]
fn deployment_wiring_pod_identity_probes_and_image() {
    let m = render(&[]);
    let deployment = m.deployment();
    assert_eq!(at(deployment, &["spec", "replicas"]).as_u64(), Some(2));
    assert_eq!(
        str_at(
            deployment,
            &["spec", "template", "spec", "serviceAccountName"]
        ),
        RELEASE
    );
    let env = at(m.container(), &["env"]).as_sequence().expect("env list");
    for (name, field) in [
        ("POD_NAMESPACE", "metadata.namespace"),
        ("POD_NAME", "metadata.name"),
    ] {
        let var = env
            .iter()
            .find(|v| str_at(v, &["name"]) == name)
            .unwrap_or_else(|| panic!("no env {name}"));
        assert_eq!(str_at(var, &["valueFrom", "fieldRef", "fieldPath"]), field);
    }
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(str_at(m.container(), &[probe, "httpGet", "path"]), path);
        assert_eq!(
            str_at(m.container(), &[probe, "httpGet", "port"]),
            "http-metrics"
        );
    }
    // The Service selects the operator's pods.
    let selector = at(
        m.get("Service", Some(RELEASE_NS), "inflight-metrics"),
        &["spec", "selector"],
    );
    assert_eq!(
        selector,
        at(deployment, &["spec", "selector", "matchLabels"])
    );
    // The image tag defaults to the chart's appVersion.
    let chart: Value = serde_yaml::from_str(
        &std::fs::read_to_string(chart_dir().join("Chart.yaml")).expect("read Chart.yaml"),
    )
    .expect("Chart.yaml is YAML");
    assert_eq!(str_at(&chart, &["apiVersion"]), "v2");
    assert_eq!(str_at(&chart, &["name"]), "inflight");
    let app_version = str_at(&chart, &["appVersion"]);
    assert_eq!(
        str_at(m.container(), &["image"]),
        format!("inflight:{app_version}")
    );
    let m = render(&[
        "--set",
        "image.repository=registry.local/inflight",
        "--set",
        "image.tag=dev",
        "--set",
        "image.pullPolicy=Always",
    ]);
    assert_eq!(
        str_at(m.container(), &["image"]),
        "registry.local/inflight:dev"
    );
    assert_eq!(str_at(m.container(), &["imagePullPolicy"]), "Always");
}

#[test]
#[ignore = "needs helm; run by make test"]
fn pod_runs_hardened() {
    let m = render(&[]);
    let pod = at(m.deployment(), &["spec", "template", "spec"]);
    let pod_sc = at(pod, &["securityContext"]);
    assert_eq!(at(pod_sc, &["runAsNonRoot"]).as_bool(), Some(true));
    assert_eq!(at(pod_sc, &["runAsUser"]).as_u64(), Some(65532));
    assert_eq!(
        str_at(pod_sc, &["seccompProfile", "type"]),
        "RuntimeDefault"
    );
    let sc = at(m.container(), &["securityContext"]);
    assert_eq!(at(sc, &["runAsNonRoot"]).as_bool(), Some(true));
    assert_eq!(at(sc, &["runAsUser"]).as_u64(), Some(65532));
    assert_eq!(at(sc, &["readOnlyRootFilesystem"]).as_bool(), Some(true));
    assert_eq!(at(sc, &["allowPrivilegeEscalation"]).as_bool(), Some(false));
    assert_eq!(strings(at(sc, &["capabilities", "drop"])), ["ALL"]);
    assert!(opt_at(sc, &["capabilities", "add"]).is_none());
    assert_eq!(str_at(sc, &["seccompProfile", "type"]), "RuntimeDefault");
    assert!(opt_at(sc, &["privileged"]).is_none_or(|p| p.as_bool() == Some(false)));
    let resources = at(m.container(), &["resources"]);
    assert_eq!(str_at(resources, &["requests", "cpu"]), "50m");
    assert_eq!(str_at(resources, &["requests", "memory"]), "64Mi");
    assert_eq!(str_at(resources, &["limits", "cpu"]), "500m");
    assert_eq!(str_at(resources, &["limits", "memory"]), "256Mi");
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        assert!(opt_at(pod, &[host]).is_none(), "{host} set");
    }
}

#[test]
#[ignore = "needs helm; run by make test"]
fn pdb_only_with_more_than_one_replica() {
    let m = render(&[]);
    let pdb = m.get("PodDisruptionBudget", Some(RELEASE_NS), RELEASE);
    assert_eq!(at(pdb, &["spec", "minAvailable"]).as_u64(), Some(1));
    assert_eq!(
        at(pdb, &["spec", "selector"]),
        at(m.deployment(), &["spec", "selector"])
    );
    let m = render(&["--set", "replicaCount=3"]);
    assert_eq!(at(m.deployment(), &["spec", "replicas"]).as_u64(), Some(3));
    assert_eq!(m.of_kind("PodDisruptionBudget").len(), 1);
    let m = render(&["--set", "replicaCount=1"]);
    assert_eq!(at(m.deployment(), &["spec", "replicas"]).as_u64(), Some(1));
    assert!(
        m.of_kind("PodDisruptionBudget").is_empty(),
        "{:?}",
        m.names()
    );
    assert_least_privilege(&m, &[]);
}

#[test]
#[ignore = "needs helm; run by make test"]
fn leader_election_off_drops_the_lease_and_needs_one_replica() {
    let m = render(&[
        "--set",
        "replicaCount=1",
        "--set",
        "leaderElection.enabled=false",
    ]);
    let args = m.args();
    assert!(
        args.contains(&"--leader-election=false".to_string()),
        "{args:?}"
    );
    assert!(
        !args.iter().any(|a| a == "--leader-election"
            || a.starts_with("--lease-")
            || a.starts_with("--identity")),
        "{args:?}"
    );
    assert!(roles_in(&m, RELEASE_NS).is_empty(), "{:?}", m.names());
    assert_least_privilege(&m, &[]);

    let err = render_error(&["--set", "leaderElection.enabled=false"]);
    assert!(
        err.contains("replicaCount > 1 needs leaderElection.enabled=true"),
        "{err}"
    );
}

/// The operator's metric names as Prometheus stores them (counters with their
/// `_total` suffix), read from the registry `inflight run` serves on /metrics,
/// so a renamed or added metric shows up here without editing this test.
/// Families without a series are not exposed at all: record one of each.
fn operator_metrics() -> BTreeSet<String> {
    let metrics = inflight::telemetry::Metrics::new();
    metrics.observe_reconcile("ok", 0.01);
    metrics.observe_query(0.01, Some("timeout"));
    metrics.record_decision(&inflight::telemetry::DecisionRecord {
        namespace: "shop",
        policy: "checkout",
        reason: "ScaleUp",
        desired_replicas: 3,
        current_replicas: 2,
        demand: Some(20.0),
        in_panic: false,
    });
    metrics.set_leader(true);
    let text = metrics.encode().expect("encode the operator's metrics");
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .map(|rest| {
            let mut words = rest.split_whitespace();
            let name = words.next().expect("# TYPE names a metric");
            match words.next() {
                Some("counter") => format!("{name}_total"),
                _ => name.to_string(),
            }
        })
        .collect()
}

/// `inflight_*` metric names used in a PromQL expression (histogram series
/// suffixes folded onto their family, one of `known`).
fn metric_names(expr: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(start) = rest.find("inflight_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|family| known.contains(*family))
            .unwrap_or(name);
        out.insert(family.to_string());
        rest = &tail[end..];
    }
    out
}

#[test]
#[ignore = "needs helm; run by make test"]
fn monitoring_extras_are_opt_in() {
    let m = render(&[]);
    assert!(m.of_kind("ServiceMonitor").is_empty());
    assert!(m.of_kind("ConfigMap").is_empty());

    let m = render(&[
        "--set",
        "serviceMonitor.enabled=true",
        "--set",
        "grafanaDashboard.enabled=true",
    ]);
    assert_least_privilege(&m, &[]);
    let monitor = m.get("ServiceMonitor", Some(RELEASE_NS), RELEASE);
    assert_eq!(str_at(monitor, &["apiVersion"]), "monitoring.coreos.com/v1");
    let endpoint = &at(monitor, &["spec", "endpoints"])[0];
    assert_eq!(str_at(endpoint, &["port"]), "http-metrics");
    assert_eq!(str_at(endpoint, &["path"]), "/metrics");
    let service = m.get("Service", Some(RELEASE_NS), "inflight-metrics");
    let service_labels = at(service, &["metadata", "labels"])
        .as_mapping()
        .expect("labels");
    for (key, value) in at(monitor, &["spec", "selector", "matchLabels"])
        .as_mapping()
        .expect("matchLabels")
    {
        assert_eq!(service_labels.get(key), Some(value), "selects the Service");
    }

    let dashboard = m.get("ConfigMap", Some(RELEASE_NS), "inflight-dashboard");
    assert_eq!(
        str_at(dashboard, &["metadata", "labels", "grafana_dashboard"]),
        "1"
    );
    let json: serde_json::Value =
        serde_json::from_str(str_at(dashboard, &["data", "inflight.json"]))
            .expect("the dashboard is JSON");
    let panels = json["panels"].as_array().expect("panels");
    let known = operator_metrics();
    for metric in [
        "inflight_panic_mode",
        "inflight_reconciles_total",
        "inflight_leader",
    ] {
        assert!(known.contains(metric), "{metric} not in {known:?}");
    }
    let mut used = BTreeSet::new();
    for panel in panels {
        let targets = panel["targets"].as_array().expect("targets");
        assert!(
            !targets.is_empty(),
            "panel without queries: {}",
            panel["title"]
        );
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            let names = metric_names(expr, &known);
            assert!(!names.is_empty(), "{expr} plots no inflight metric");
            used.extend(names);
        }
    }
    assert_eq!(
        used, known,
        "the dashboard plots exactly the operator's metrics"
    );
}

#[test]
#[ignore = "needs helm; run by make test"]
fn bad_values_are_refused_with_the_schema_message() {
    let cases: [(&[&str], &[&str]); 10] = [
        (&["--set", "replicaCount=0"], &["/replicaCount", "minimum"]),
        (
            &["--set", "logFormat=xml"],
            &["/logFormat", "'json', 'text'"],
        ),
        (
            &["--set", "logLevel=loud"],
            &["/logLevel", "does not match pattern"],
        ),
        (
            &["--set", "leaderElection.leaseDuration=2s"],
            &["/leaderElection/leaseDuration", "does not match pattern"],
        ),
        (
            &["--set", "image.pullPolicy=Sometimes"],
            &["/image/pullPolicy", "'IfNotPresent'"],
        ),
        (
            &["--set-string", "syncPeriod=5"],
            &["/syncPeriod", "does not match pattern"],
        ),
        (
            &["--set", "prometheus.url=prometheus:9090"],
            &["/prometheus/url", "does not match pattern"],
        ),
        (&["--set", "bogus=1"], &["additional properties 'bogus'"]),
        (
            &["--set-json", r#"watchNamespaces=["Not_A_Namespace"]"#],
            &["/watchNamespaces/0", "does not match pattern"],
        ),
        (
            &[
                "--set-json",
                r#"scaleTargets=[{"apiGroup":"*","resources":["*"]}]"#,
            ],
            &["/scaleTargets/0/apiGroup", "/scaleTargets/0/resources/0"],
        ),
    ];
    for (args, expected) in cases {
        let err = render_error(args);
        assert!(
            err.contains("values don't meet the specifications of the schema"),
            "{args:?}: not a schema error:\n{err}"
        );
        for fragment in expected {
            assert!(
                err.contains(fragment),
                "{args:?}: message lacks {fragment:?}:\n{err}"
            );
        }
    }
}

/// The chart's args must parse with the real `inflight run`: clap parses and
/// validates every argument (names and values) before it acts on a trailing
/// `--help`, so success means the chart speaks the operator's CLI.
#[test]
#[ignore = "needs helm; run by make test"]
fn chart_args_parse_with_inflight_run() {
    let value_sets: [&[&str]; 3] = [
        &[],
        &[
            "--set",
            "prometheus.authSecret.name=prom-creds",
            "--set",
            "prometheus.ca.configMap=prom-ca",
            "--set-json",
            r#"watchNamespaces=["shop","batch"]"#,
            "--set",
            "logFormat=text",
            "--set",
            "logLevel=inflight=debug\\,kube=info",
        ],
        &[
            "--set",
            "replicaCount=1",
            "--set",
            "leaderElection.enabled=false",
        ],
    ];
    for values in value_sets {
        let args = render(values).args();
        assert_eq!(args.first().map(String::as_str), Some("run"), "{args:?}");
        let out = Command::new(env!("CARGO_BIN_EXE_inflight"))
            .args(&args)
            .arg("--help")
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .env_remove("INFLIGHT_PROMETHEUS_URL")
            .output()
            .expect("run inflight");
        assert!(
            out.status.success(),
            "`inflight {}` does not accept the chart's arguments:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
