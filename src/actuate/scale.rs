//! Reading and patching a target's `/scale` subresource, whatever its kind:
//! Deployments, StatefulSets, or any custom resource that declares a scale
//! subresource. The kind is resolved through API discovery (once per
//! apiVersion+kind, then cached), and every write goes through the dynamic
//! API with the field manager `inflight`.
//!
//! We patch `/scale` only (never the whole object), so inflight never takes
//! ownership of fields it does not manage.
use std::collections::HashMap;
use std::sync::RwLock;

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::gvk::{GroupVersion, GroupVersionKind};
use kube::discovery::{self, Scope};
use serde_json::json;

use super::FIELD_MANAGER;

/// How many times a scale patch is retried when the API server answers 409
/// Conflict (someone else wrote `/scale` between our read and our write).
/// Three attempts cover the realistic race with a human `kubectl scale`
/// without stalling the reconcile loop.
const MAX_CONFLICT_ATTEMPTS: u32 = 3;

/// The object a policy scales: its `targetRef` resolved into the policy's
/// namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ScaleTarget {
    /// `apps/v1`, `v1`, `example.com/v1beta1`...
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

impl ScaleTarget {
    /// The API group of the target (empty for the core group).
    pub fn group(&self) -> &str {
        split_api_version(&self.api_version).0
    }

    /// `Kind/name` for messages.
    pub fn display(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }
}

/// Split `group/version` into its parts; the core group has no slash.
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}

/// What the controller needs to know about the target at one tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetState {
    /// `spec.replicas` as `/scale` reports it.
    pub spec_replicas: u32,
    /// `status.replicas` as `/scale` reports it (pods that exist).
    pub status_replicas: u32,
    /// Pods that are Ready (`status.readyReplicas` of the object; see
    /// [`ready_replicas`]).
    pub ready_replicas: u32,
    /// The label selector of the target's pods, as `/scale` reports it.
    pub selector: Option<String>,
    /// The target object's uid.
    pub uid: Option<String>,
}

/// The result of a successful scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScaleOutcome {
    /// `spec.replicas` just before our write.
    pub previous: u32,
    /// `spec.replicas` now.
    pub replicas: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    /// The targetRef's apiVersion is not `group/version` or `version`.
    #[error("targetRef.apiVersion {0:?} is not a valid apiVersion")]
    InvalidApiVersion(String),
    /// Discovery does not know this apiVersion+kind.
    #[error("the API server serves no kind {kind} in {api_version}")]
    UnknownKind { api_version: String, kind: String },
    /// The kind exists but has no `/scale` subresource.
    #[error("{kind} ({api_version}) has no /scale subresource")]
    NoScaleSubresource { api_version: String, kind: String },
    /// Cluster-scoped kinds cannot be targets (a policy is namespaced).
    #[error("{kind} is cluster-scoped; a ConcurrencyPolicy can only target namespaced kinds")]
    ClusterScoped { kind: String },
    /// The named object does not exist.
    #[error("{kind}/{name} not found in namespace {namespace}")]
    TargetNotFound {
        kind: String,
        name: String,
        namespace: String,
    },
    /// Every attempt to patch `/scale` met a 409 Conflict.
    #[error("scaling {target} met {attempts} conflicting writes in a row")]
    ConflictRetriesExhausted { target: String, attempts: u32 },
    /// Any other API error (network, 5xx, RBAC...).
    #[error("Kubernetes API error on {target}: {source}")]
    Api {
        target: String,
        #[source]
        source: kube::Error,
    },
}

impl ScaleError {
    /// True when the user has to change something (the targetRef, or create
    /// the target); false when retrying later may succeed on its own.
    pub fn is_users_fault(&self) -> bool {
        match self {
            ScaleError::InvalidApiVersion(_)
            | ScaleError::UnknownKind { .. }
            | ScaleError::NoScaleSubresource { .. }
            | ScaleError::ClusterScoped { .. }
            | ScaleError::TargetNotFound { .. } => true,
            ScaleError::ConflictRetriesExhausted { .. } | ScaleError::Api { .. } => false,
        }
    }

    /// A short CamelCase label for metrics and condition reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            ScaleError::InvalidApiVersion(_) => "InvalidTargetRef",
            ScaleError::UnknownKind { .. } => "UnknownTargetKind",
            ScaleError::NoScaleSubresource { .. } => "NoScaleSubresource",
            ScaleError::ClusterScoped { .. } => "InvalidTargetRef",
            ScaleError::TargetNotFound { .. } => "TargetNotFound",
            ScaleError::ConflictRetriesExhausted { .. } => "ScaleConflict",
            ScaleError::Api { .. } => "ApiError",
        }
    }
}

/// Reads and writes `/scale` on any scalable kind. One per process; cheap to
/// share behind an `Arc`.
pub struct Scaler {
    client: Client,
    /// Discovery results by (apiVersion, kind). Only successes are cached:
    /// a CRD installed after a failed lookup is found on the next tick.
    resources: RwLock<HashMap<(String, String), ApiResource>>,
}

impl Scaler {
    pub fn new(client: Client) -> Self {
        Scaler {
            client,
            resources: RwLock::new(HashMap::new()),
        }
    }

    /// Resolve the target's kind to its API resource (plural name), checking
    /// that it is namespaced and has a `/scale` subresource.
    pub async fn resolve(&self, target: &ScaleTarget) -> Result<ApiResource, ScaleError> {
        let key = (target.api_version.clone(), target.kind.clone());
        if let Some(found) = self.cached(&key) {
            return Ok(found);
        }
        let gv: GroupVersion = target
            .api_version
            .parse()
            .map_err(|_| ScaleError::InvalidApiVersion(target.api_version.clone()))?;
        let gvk = GroupVersionKind::gvk(&gv.group, &gv.version, &target.kind);
        let (resource, caps) = match discovery::pinned_kind(&self.client, &gvk).await {
            Ok(found) => found,
            Err(kube::Error::Discovery(_)) => return Err(unknown_kind(target)),
            Err(kube::Error::Api(status)) if status.code == 404 => {
                return Err(unknown_kind(target));
            }
            Err(source) => {
                return Err(ScaleError::Api {
                    target: target.display(),
                    source,
                });
            }
        };
        if caps.scope != Scope::Namespaced {
            return Err(ScaleError::ClusterScoped {
                kind: target.kind.clone(),
            });
        }
        if !caps
            .subresources
            .iter()
            .any(|(sub, _)| sub.plural == "scale")
        {
            return Err(ScaleError::NoScaleSubresource {
                api_version: target.api_version.clone(),
                kind: target.kind.clone(),
            });
        }
        if let Ok(mut cache) = self.resources.write() {
            cache.insert(key, resource.clone());
        }
        Ok(resource)
    }

    fn cached(&self, key: &(String, String)) -> Option<ApiResource> {
        self.resources.read().ok()?.get(key).cloned()
    }

    async fn api(&self, target: &ScaleTarget) -> Result<Api<DynamicObject>, ScaleError> {
        let resource = self.resolve(target).await?;
        Ok(Api::namespaced_with(
            self.client.clone(),
            &target.namespace,
            &resource,
        ))
    }

    /// Read the target's replicas (from `/scale`) and ready pods (from the
    /// object's status).
    pub async fn read(&self, target: &ScaleTarget) -> Result<TargetState, ScaleError> {
        let api = self.api(target).await?;
        let object = api
            .get(&target.name)
            .await
            .map_err(|e| api_error(target, e))?;
        let scale = api
            .get_scale(&target.name)
            .await
            .map_err(|e| api_error(target, e))?;
        let spec_replicas = scale.spec.and_then(|s| s.replicas).unwrap_or(0);
        let (status_replicas, selector) = scale
            .status
            .map(|s| (s.replicas, s.selector))
            .unwrap_or((0, None));
        let status_replicas = non_negative(status_replicas);
        Ok(TargetState {
            spec_replicas: non_negative(spec_replicas),
            status_replicas,
            ready_replicas: ready_replicas(
                target.group(),
                &target.kind,
                object.data.get("status"),
                status_replicas,
            ),
            selector,
            uid: object.metadata.uid,
        })
    }

    /// Set the target's `spec.replicas` through `/scale`. The patch carries
    /// the resourceVersion we read, so a concurrent write makes it fail with
    /// 409 Conflict instead of silently overwriting; we then read again and
    /// retry, a bounded number of times.
    pub async fn scale(
        &self,
        target: &ScaleTarget,
        replicas: u32,
    ) -> Result<ScaleOutcome, ScaleError> {
        let api = self.api(target).await?;
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        };
        for _ in 0..MAX_CONFLICT_ATTEMPTS {
            let current = api
                .get_scale(&target.name)
                .await
                .map_err(|e| api_error(target, e))?;
            let previous = non_negative(current.spec.and_then(|s| s.replicas).unwrap_or(0));
            if previous == replicas {
                return Ok(ScaleOutcome { previous, replicas });
            }
            let patch = scale_patch(current.metadata.resource_version.as_deref(), replicas);
            match api
                .patch_scale(&target.name, &params, &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(ScaleOutcome { previous, replicas }),
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    tracing::debug!(target = %target.display(), "conflict on /scale, retrying");
                }
                Err(e) => return Err(api_error(target, e)),
            }
        }
        Err(ScaleError::ConflictRetriesExhausted {
            target: target.display(),
            attempts: MAX_CONFLICT_ATTEMPTS,
        })
    }
}

fn unknown_kind(target: &ScaleTarget) -> ScaleError {
    ScaleError::UnknownKind {
        api_version: target.api_version.clone(),
        kind: target.kind.clone(),
    }
}

fn api_error(target: &ScaleTarget, source: kube::Error) -> ScaleError {
    match &source {
        kube::Error::Api(status) if status.code == 404 => ScaleError::TargetNotFound {
            kind: target.kind.clone(),
            name: target.name.clone(),
            namespace: target.namespace.clone(),
        },
        _ => ScaleError::Api {
            target: target.display(),
            source,
        },
    }
}

/// The merge patch for `/scale`: the new replicas, guarded by the
/// resourceVersion we read when we have one.
pub fn scale_patch(resource_version: Option<&str>, replicas: u32) -> serde_json::Value {
    match resource_version {
        Some(rv) => json!({
            "metadata": {"resourceVersion": rv},
            "spec": {"replicas": replicas},
        }),
        None => json!({"spec": {"replicas": replicas}}),
    }
}

fn non_negative(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

/// Ready pods of a target, from its `status`.
///
/// The workload kinds of `apps` omit `status.readyReplicas` when it is zero,
/// so a missing field there means 0. A custom resource may have no notion of
/// readiness at all: when it reports no `readyReplicas`, the pods that exist
/// (`/scale`'s `status.replicas`) are the best we know.
pub fn ready_replicas(
    group: &str,
    kind: &str,
    status: Option<&serde_json::Value>,
    scale_status_replicas: u32,
) -> u32 {
    let reported = status
        .and_then(|s| s.get("readyReplicas"))
        .and_then(serde_json::Value::as_u64)
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    let omits_zero = group == "apps" && matches!(kind, "Deployment" | "StatefulSet" | "ReplicaSet");
    match reported {
        Some(n) => n,
        None if omits_zero => 0,
        None => scale_status_replicas,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_version_splits_into_group_and_version() {
        assert_eq!(split_api_version("apps/v1"), ("apps", "v1"));
        assert_eq!(split_api_version("v1"), ("", "v1"));
        assert_eq!(
            split_api_version("example.com/v1beta1"),
            ("example.com", "v1beta1")
        );
    }

    #[test]
    fn ready_replicas_reads_status_field() {
        let status = json!({"replicas": 5, "readyReplicas": 3});
        assert_eq!(ready_replicas("apps", "Deployment", Some(&status), 5), 3);
        assert_eq!(ready_replicas("example.com", "Worker", Some(&status), 5), 3);
    }

    #[test]
    fn ready_replicas_missing_means_zero_for_apps_kinds() {
        let status = json!({"replicas": 4});
        assert_eq!(ready_replicas("apps", "Deployment", Some(&status), 4), 0);
        assert_eq!(ready_replicas("apps", "StatefulSet", None, 4), 0);
    }

    #[test]
    fn ready_replicas_falls_back_to_existing_pods_for_custom_kinds() {
        let status = json!({"replicas": 4});
        assert_eq!(ready_replicas("example.com", "Worker", Some(&status), 4), 4);
        assert_eq!(ready_replicas("example.com", "Worker", None, 2), 2);
    }

    #[test]
    fn scale_patch_carries_resource_version_when_known() {
        assert_eq!(
            scale_patch(Some("42"), 7),
            json!({"metadata": {"resourceVersion": "42"}, "spec": {"replicas": 7}})
        );
        assert_eq!(scale_patch(None, 0), json!({"spec": {"replicas": 0}}));
    }

    #[test]
    fn user_errors_are_told_apart_from_transient_ones() {
        assert!(ScaleError::InvalidApiVersion("a/b/c".into()).is_users_fault());
        assert!(
            ScaleError::TargetNotFound {
                kind: "Deployment".into(),
                name: "x".into(),
                namespace: "y".into()
            }
            .is_users_fault()
        );
        assert!(
            !ScaleError::ConflictRetriesExhausted {
                target: "Deployment/x".into(),
                attempts: 3
            }
            .is_users_fault()
        );
    }
}
