//! Writing the service's concurrency limits to their sinks: a ConfigMap key,
//! an annotation (on the target or a Service), or any field of any
//! namespaced object by JSON pointer.
//!
//! Every write is a server-side apply, field manager `inflight`, of a
//! partial object holding only the sink's values, so inflight owns those
//! fields and nothing else (other keys of the ConfigMap, other annotations,
//! the rest of a DestinationRule stay with whoever wrote them). Sinks on the
//! same object are applied together in one body: with server-side apply, a
//! field left out of a manager's next apply is given up (and deleted), so
//! two separate applies would undo each other.
//!
//! The object must exist: it is read first (a missing object is the user's
//! to create; an apply would create it half-formed), and the read also checks
//! that a field pointer does not cross a list (an apply of a partial list
//! would replace the whole list).
//!
//! Kinds are resolved through API discovery once per apiVersion+kind (the
//! caller keeps the cache), as `/scale` targets are in [`super::scale`].
use std::collections::HashMap;

use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::gvk::{GroupVersion, GroupVersionKind};
use kube::discovery::{self, Scope};
use serde_json::{Map, Value, json};

use super::FIELD_MANAGER;
use super::scale::ScaleTarget;
use crate::api::sink_pointer;
use crate::api::v1alpha1::{LimitSink, LimitValue};

/// An object that holds one or more sinks, in the policy's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SinkObject {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

impl SinkObject {
    /// `Kind/name` for messages.
    pub fn display(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }
}

/// What a sink sets on its object.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Edit {
    /// `data.<key>`, as a decimal string.
    ConfigMapKey(String),
    /// `metadata.annotations.<key>`, as a decimal string.
    Annotation(String),
    /// The field at these JSON-pointer tokens, as an integer.
    Field(Vec<String>),
}

impl Edit {
    /// The path of the edited field, for messages.
    pub fn path(&self) -> String {
        match self {
            Edit::ConfigMapKey(key) => format!("data.{key}"),
            Edit::Annotation(key) => format!("metadata.annotations[{key}]"),
            Edit::Field(tokens) => format!("/{}", tokens.join("/")),
        }
    }

    fn tokens(&self) -> Vec<&str> {
        match self {
            Edit::ConfigMapKey(key) => vec!["data", key],
            Edit::Annotation(key) => vec!["metadata", "annotations", key],
            Edit::Field(tokens) => tokens.iter().map(String::as_str).collect(),
        }
    }

    fn value(&self, value: u32) -> Value {
        match self {
            Edit::ConfigMapKey(_) | Edit::Annotation(_) => Value::String(value.to_string()),
            Edit::Field(_) => Value::from(value),
        }
    }
}

/// A sink of a policy, resolved: the object, the edit, and which number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedSink {
    pub object: SinkObject,
    pub edit: Edit,
    pub value: LimitValue,
}

impl ResolvedSink {
    /// E.g. `ConfigMap web-limits key maxConcurrency`,
    /// `DestinationRule web /spec/trafficPolicy/...`.
    pub fn describe(&self) -> String {
        let object = &self.object;
        match &self.edit {
            Edit::ConfigMapKey(key) => format!("ConfigMap {} key {key}", object.name),
            Edit::Annotation(key) => {
                format!("{} {} annotation {key}", object.kind, object.name)
            }
            Edit::Field(_) => format!("{} {} {}", object.kind, object.name, self.edit.path()),
        }
    }
}

/// Why a sink could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The object does not exist.
    #[error("{object} not found in namespace {namespace}")]
    NotFound { object: String, namespace: String },
    /// RBAC (or an admission policy) refused the read or the write.
    #[error("forbidden to {verb} {object}: {message}")]
    Forbidden {
        verb: &'static str,
        object: String,
        message: String,
    },
    /// Discovery does not know this apiVersion+kind.
    #[error("the API server serves no kind {kind} in {api_version}")]
    UnknownKind { api_version: String, kind: String },
    /// The sink cannot be written as specified: a cluster-scoped kind, a
    /// pointer crossing a list, a value the API server rejects.
    #[error("{object}: {problem}")]
    Invalid { object: String, problem: String },
    /// Anything else (network, 5xx...): retried at the next tick.
    #[error("writing {object}: {source}")]
    Api {
        object: String,
        #[source]
        source: kube::Error,
    },
}

impl SinkError {
    /// The sink's state in status: NotFound, Forbidden, Invalid or Failed.
    pub fn state(&self) -> &'static str {
        match self {
            SinkError::NotFound { .. } => "NotFound",
            SinkError::Forbidden { .. } => "Forbidden",
            SinkError::UnknownKind { .. } | SinkError::Invalid { .. } => "Invalid",
            SinkError::Api { .. } => "Failed",
        }
    }

    /// True when the user has to change something (create the object, grant
    /// RBAC, fix the sink); false when a retry may succeed on its own.
    pub fn is_users_fault(&self) -> bool {
        !matches!(self, SinkError::Api { .. })
    }
}

/// Resolve a sink of a policy whose target is `target` (which also gives
/// the namespace). The schema has checked the shape; what it could not
/// check (one kind set, a valid pointer) is an `Invalid` error here.
pub fn resolve(sink: &LimitSink, target: &ScaleTarget) -> Result<ResolvedSink, SinkError> {
    let namespace = target.namespace.clone();
    let invalid = |problem: &str| SinkError::Invalid {
        object: "sink".into(),
        problem: problem.into(),
    };
    let (object, edit) = match (&sink.config_map, &sink.annotation, &sink.field) {
        (Some(cm), None, None) => (
            SinkObject {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                name: cm.name.clone(),
                namespace,
            },
            Edit::ConfigMapKey(cm.key.clone()),
        ),
        (None, Some(a), None) => {
            let object = match &a.service {
                Some(service) => SinkObject {
                    api_version: "v1".into(),
                    kind: "Service".into(),
                    name: service.clone(),
                    namespace,
                },
                None => SinkObject {
                    api_version: target.api_version.clone(),
                    kind: target.kind.clone(),
                    name: target.name.clone(),
                    namespace,
                },
            };
            (object, Edit::Annotation(a.key.clone()))
        }
        (None, None, Some(f)) => {
            let object = SinkObject {
                api_version: f.api_version.clone(),
                kind: f.kind.clone(),
                name: f.name.clone(),
                namespace,
            };
            let tokens = sink_pointer(&f.pointer).map_err(|problem| SinkError::Invalid {
                object: object.display(),
                problem,
            })?;
            (object, Edit::Field(tokens))
        }
        _ => {
            return Err(invalid(
                "set exactly one of configMap, annotation and field",
            ));
        }
    };
    Ok(ResolvedSink {
        object,
        edit,
        value: sink.value,
    })
}

/// The server-side apply body for one object: apiVersion, kind, name, and
/// each edit's value at its path, nothing else.
pub fn apply_body(object: &SinkObject, edits: &[(Edit, u32)]) -> Value {
    let mut body = json!({
        "apiVersion": object.api_version,
        "kind": object.kind,
        "metadata": {"name": object.name},
    });
    for (edit, value) in edits {
        set_path(&mut body, &edit.tokens(), edit.value(*value));
    }
    body
}

/// Sets `value` at `tokens`, creating objects on the way (replacing a
/// non-object in the way: the body is ours, built only from edits).
fn set_path(body: &mut Value, tokens: &[&str], value: Value) {
    let Some((last, parents)) = tokens.split_last() else {
        return;
    };
    let mut at = body;
    for token in parents {
        if !at.is_object() {
            *at = Value::Object(Map::new());
        }
        let Some(object) = at.as_object_mut() else {
            return;
        };
        at = object
            .entry((*token).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if !at.is_object() {
        *at = Value::Object(Map::new());
    }
    if let Some(object) = at.as_object_mut() {
        object.insert((*last).to_string(), value);
    }
}

/// Whether an edit can be applied to the live object: every parent on its
/// path that exists must be an object (not a list, not a scalar), since a
/// partial apply cannot address a list item.
pub fn check_edit(live: &Value, edit: &Edit) -> Result<(), String> {
    let tokens = edit.tokens();
    let Some((_, parents)) = tokens.split_last() else {
        return Err("empty path".into());
    };
    let mut at = live;
    for (depth, token) in parents.iter().enumerate() {
        match at.get(*token) {
            None | Some(Value::Null) => return Ok(()),
            Some(Value::Object(_)) => at = &at[*token],
            Some(other) => {
                let kind = if other.is_array() {
                    "a list"
                } else {
                    "not an object"
                };
                return Err(format!(
                    "{} is {kind}; a sink can only set fields of objects",
                    pointer_of(&tokens[..=depth])
                ));
            }
        }
    }
    Ok(())
}

fn pointer_of(tokens: &[&str]) -> String {
    let escaped: Vec<String> = tokens
        .iter()
        .map(|t| t.replace('~', "~0").replace('/', "~1"))
        .collect();
    format!("/{}", escaped.join("/"))
}

/// Discovery results by (apiVersion, kind), kept by the caller (per policy)
/// so a kind is looked up once. Only successes are kept: a CRD installed
/// after a failed lookup is found on the next try.
pub type ResourceCache = HashMap<(String, String), ApiResource>;

/// Writes sinks. Cheap to create (a client clone).
pub struct SinkWriter {
    client: Client,
}

/// What one write did, per edit (in the order given).
pub type EditResults = Vec<Result<(), SinkError>>;

impl SinkWriter {
    pub fn new(client: Client) -> Self {
        SinkWriter { client }
    }

    /// Apply `edits` to `object` in one server-side apply. The object must
    /// exist. An edit whose path crosses a list is left out (its result is
    /// `Invalid`); the others are applied. A failure of the read or the
    /// apply is every edit's result.
    pub async fn write(
        &self,
        cache: &mut ResourceCache,
        object: &SinkObject,
        edits: &[(Edit, u32)],
    ) -> Result<EditResults, SinkError> {
        let resource = self.resolve(cache, object).await?;
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &object.namespace, &resource);
        let live = api
            .get_opt(&object.name)
            .await
            .map_err(|e| api_error(object, "get", e))?
            .ok_or_else(|| not_found(object))?;
        let live = serde_json::to_value(&live).map_err(|e| SinkError::Invalid {
            object: object.display(),
            problem: format!("cannot read the object: {e}"),
        })?;
        let mut results = Vec::with_capacity(edits.len());
        let mut valid = Vec::with_capacity(edits.len());
        for (edit, value) in edits {
            match check_edit(&live, edit) {
                Ok(()) => {
                    valid.push((edit.clone(), *value));
                    results.push(Ok(()));
                }
                Err(problem) => results.push(Err(SinkError::Invalid {
                    object: object.display(),
                    problem,
                })),
            }
        }
        if valid.is_empty() {
            return Ok(results);
        }
        let body = apply_body(object, &valid);
        api.patch(
            &object.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|e| api_error(object, "patch", e))?;
        Ok(results)
    }

    /// The API resource of the object's kind: built in for ConfigMaps and
    /// Services, discovered (and cached) for anything else.
    async fn resolve(
        &self,
        cache: &mut ResourceCache,
        object: &SinkObject,
    ) -> Result<ApiResource, SinkError> {
        match (object.api_version.as_str(), object.kind.as_str()) {
            ("v1", "ConfigMap") => return Ok(ApiResource::erase::<ConfigMap>(&())),
            ("v1", "Service") => return Ok(ApiResource::erase::<Service>(&())),
            _ => {}
        }
        let key = (object.api_version.clone(), object.kind.clone());
        if let Some(found) = cache.get(&key) {
            return Ok(found.clone());
        }
        let gv: GroupVersion = object.api_version.parse().map_err(|_| SinkError::Invalid {
            object: object.display(),
            problem: format!("{:?} is not a valid apiVersion", object.api_version),
        })?;
        let gvk = GroupVersionKind::gvk(&gv.group, &gv.version, &object.kind);
        let unknown = || SinkError::UnknownKind {
            api_version: object.api_version.clone(),
            kind: object.kind.clone(),
        };
        let (resource, caps) = match discovery::pinned_kind(&self.client, &gvk).await {
            Ok(found) => found,
            Err(kube::Error::Discovery(_)) => return Err(unknown()),
            Err(kube::Error::Api(status)) if status.code == 404 => return Err(unknown()),
            Err(e) => return Err(api_error(object, "discover", e)),
        };
        if caps.scope != Scope::Namespaced {
            return Err(SinkError::Invalid {
                object: object.display(),
                problem: format!(
                    "{} is cluster-scoped; a sink must be a namespaced object",
                    object.kind
                ),
            });
        }
        cache.insert(key, resource.clone());
        Ok(resource)
    }
}

fn not_found(object: &SinkObject) -> SinkError {
    SinkError::NotFound {
        object: object.display(),
        namespace: object.namespace.clone(),
    }
}

fn api_error(object: &SinkObject, verb: &'static str, source: kube::Error) -> SinkError {
    match &source {
        kube::Error::Api(status) if status.code == 404 => not_found(object),
        kube::Error::Api(status) if status.code == 403 => SinkError::Forbidden {
            verb,
            object: object.display(),
            message: status.message.clone(),
        },
        kube::Error::Api(status) if status.code == 422 || status.code == 400 => {
            SinkError::Invalid {
                object: object.display(),
                problem: status.message.clone(),
            }
        }
        _ => SinkError::Api {
            object: object.display(),
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::v1alpha1::{AnnotationSink, ConfigMapSink, FieldSink};

    fn target() -> ScaleTarget {
        ScaleTarget {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "web".into(),
            namespace: "shop".into(),
        }
    }

    fn sink(value: LimitValue) -> LimitSink {
        LimitSink {
            config_map: None,
            annotation: None,
            field: None,
            value,
        }
    }

    fn field(pointer: &str) -> LimitSink {
        LimitSink {
            field: Some(FieldSink {
                api_version: "networking.istio.io/v1".into(),
                kind: "DestinationRule".into(),
                name: "web".into(),
                pointer: pointer.into(),
            }),
            ..sink(LimitValue::Total)
        }
    }

    #[test]
    fn config_map_sinks_set_one_key_as_a_string() {
        let s = LimitSink {
            config_map: Some(ConfigMapSink {
                name: "web-limits".into(),
                key: "maxConcurrency".into(),
            }),
            ..sink(LimitValue::PerPod)
        };
        let r = resolve(&s, &target()).unwrap();
        assert_eq!(r.describe(), "ConfigMap web-limits key maxConcurrency");
        assert_eq!(r.object.namespace, "shop");
        assert_eq!(
            apply_body(&r.object, &[(r.edit.clone(), 12)]),
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "web-limits"},
                "data": {"maxConcurrency": "12"},
            })
        );
    }

    #[test]
    fn annotations_go_on_the_target_or_a_service() {
        let on_target = LimitSink {
            annotation: Some(AnnotationSink {
                key: "example.com/max-concurrency".into(),
                service: None,
            }),
            ..sink(LimitValue::Total)
        };
        let r = resolve(&on_target, &target()).unwrap();
        assert_eq!(
            (r.object.api_version.as_str(), r.object.kind.as_str()),
            ("apps/v1", "Deployment")
        );
        assert_eq!(
            apply_body(&r.object, &[(r.edit.clone(), 48)]),
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "annotations": {"example.com/max-concurrency": "48"}},
            })
        );
        let on_service = LimitSink {
            annotation: Some(AnnotationSink {
                key: "limit".into(),
                service: Some("web-svc".into()),
            }),
            ..sink(LimitValue::Total)
        };
        let r = resolve(&on_service, &target()).unwrap();
        assert_eq!(r.object.display(), "Service/web-svc");
        assert_eq!(r.describe(), "Service web-svc annotation limit");
    }

    #[test]
    fn field_sinks_build_a_partial_object_from_the_pointer() {
        let r = resolve(
            &field("/spec/trafficPolicy/connectionPool/http/http2MaxRequests"),
            &target(),
        )
        .unwrap();
        assert_eq!(
            apply_body(&r.object, &[(r.edit.clone(), 60)]),
            json!({
                "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                "metadata": {"name": "web"},
                "spec": {"trafficPolicy": {"connectionPool": {"http": {"http2MaxRequests": 60}}}},
            })
        );
        assert_eq!(
            r.describe(),
            "DestinationRule web /spec/trafficPolicy/connectionPool/http/http2MaxRequests"
        );
        // Escapes: ~1 is a slash inside a key, ~0 a tilde.
        let r = resolve(&field("/spec/a~1b/c~0d"), &target()).unwrap();
        assert_eq!(
            r.edit,
            Edit::Field(vec!["spec".into(), "a/b".into(), "c~d".into()])
        );
        assert_eq!(
            apply_body(&r.object, &[(r.edit.clone(), 1)])["spec"],
            json!({"a/b": {"c~d": 1}})
        );
    }

    #[test]
    fn bad_sinks_are_invalid() {
        for pointer in [
            "/metadata/annotations/x",
            "/status/x",
            "spec/x",
            "/spec//x",
            "/spec/~2",
        ] {
            let err = resolve(&field(pointer), &target()).unwrap_err();
            assert_eq!(err.state(), "Invalid", "{pointer}: {err}");
        }
        let err = resolve(&sink(LimitValue::PerPod), &target()).unwrap_err();
        assert!(err.to_string().contains("exactly one"), "{err}");
    }

    #[test]
    fn several_edits_on_one_object_share_one_body() {
        let object = SinkObject {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "limits".into(),
            namespace: "shop".into(),
        };
        let body = apply_body(
            &object,
            &[
                (Edit::ConfigMapKey("perPod".into()), 12),
                (Edit::ConfigMapKey("total".into()), 48),
            ],
        );
        assert_eq!(body["data"], json!({"perPod": "12", "total": "48"}));
    }

    #[test]
    fn an_edit_may_not_cross_a_list_or_a_scalar() {
        let live = json!({
            "spec": {
                "trafficPolicy": {"connectionPool": {"http": {"http2MaxRequests": 10}}},
                "subsets": [{"name": "v1"}],
                "host": "web",
            }
        });
        let edit = |p: &str| Edit::Field(sink_pointer(p).unwrap());
        assert_eq!(
            check_edit(
                &live,
                &edit("/spec/trafficPolicy/connectionPool/http/http2MaxRequests")
            ),
            Ok(())
        );
        // Missing parents are created by the apply.
        assert_eq!(check_edit(&live, &edit("/spec/circuitBreaker/max")), Ok(()));
        let err = check_edit(&live, &edit("/spec/subsets/0/limit")).unwrap_err();
        assert!(err.contains("/spec/subsets is a list"), "{err}");
        let err = check_edit(&live, &edit("/spec/host/x")).unwrap_err();
        assert!(err.contains("/spec/host is not an object"), "{err}");
        assert_eq!(
            check_edit(&json!({}), &Edit::ConfigMapKey("k".into())),
            Ok(())
        );
    }

    #[test]
    fn error_states_and_fault() {
        let e = SinkError::NotFound {
            object: "ConfigMap/x".into(),
            namespace: "shop".into(),
        };
        assert_eq!((e.state(), e.is_users_fault()), ("NotFound", true));
        assert_eq!(e.to_string(), "ConfigMap/x not found in namespace shop");
        let e = SinkError::Forbidden {
            verb: "patch",
            object: "ConfigMap/x".into(),
            message: "no".into(),
        };
        assert_eq!((e.state(), e.is_users_fault()), ("Forbidden", true));
        let e = SinkError::UnknownKind {
            api_version: "a/v1".into(),
            kind: "K".into(),
        };
        assert_eq!(e.state(), "Invalid");
    }
}
