//! From a changed target (a Deployment or StatefulSet) back to the policies
//! that reference it, so a change to the target re-triggers them at once
//! (we `.watches()` the targets with this mapper; we do not own them, so no
//! `.owns()`).
use kube::core::DeserializeGuard;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use super::conflict::TargetKey;
use crate::api::v1alpha1::ConcurrencyPolicy;

/// A policy as the controller watches it: a malformed object deserializes
/// to an error instead of stalling the watch.
pub type GuardedPolicy = DeserializeGuard<ConcurrencyPolicy>;

/// The policies (among `policies`) whose targetRef names `target`.
/// Malformed policies are skipped: their target is unknown.
pub fn policies_targeting<'a>(
    policies: impl IntoIterator<Item = &'a GuardedPolicy>,
    target: &TargetKey,
) -> Vec<ObjectRef<GuardedPolicy>> {
    policies
        .into_iter()
        .filter_map(|guarded| {
            let policy = guarded.0.as_ref().ok()?;
            TargetKey::of_policy(policy)
                .same_object(target)
                .then(|| ObjectRef::from_obj(guarded))
        })
        .collect()
}

/// The key of a typed object (Deployment, StatefulSet...) as a target.
pub fn target_key_of<K>(object: &K) -> TargetKey
where
    K: Resource<DynamicType = ()>,
{
    TargetKey::new(
        &object.namespace().unwrap_or_default(),
        Some(&K::api_version(&())),
        &K::kind(&()),
        &object.name_any(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::v1alpha1::ConcurrencyPolicySpec;
    use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
    use kube::api::ObjectMeta;
    use kube::core::error_boundary::InvalidObject;

    fn policy(ns: &str, name: &str, kind: &str, target: &str) -> GuardedPolicy {
        let spec: ConcurrencyPolicySpec = serde_json::from_value(serde_json::json!({
            "targetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target},
            "maxReplicas": 10,
            "metrics": {"inFlight": {"query": "sum(x)"}},
            "target": {"concurrencyPerPod": 10},
        }))
        .unwrap();
        let mut p = ConcurrencyPolicy::new(name, spec);
        p.metadata.namespace = Some(ns.into());
        DeserializeGuard(Ok(p))
    }

    fn deployment(ns: &str, name: &str) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            ..Deployment::default()
        }
    }

    fn names(refs: &[ObjectRef<GuardedPolicy>]) -> Vec<String> {
        let mut v: Vec<String> = refs.iter().map(|r| r.name.clone()).collect();
        v.sort();
        v
    }

    #[test]
    fn a_deployment_maps_to_the_policies_that_target_it() {
        let policies = [
            policy("shop", "web-a", "Deployment", "web"),
            policy("shop", "web-b", "Deployment", "web"),
            policy("shop", "api", "Deployment", "api"),
            policy("other", "web-elsewhere", "Deployment", "web"),
            policy("shop", "web-sts", "StatefulSet", "web"),
        ];
        let refs = policies_targeting(&policies, &target_key_of(&deployment("shop", "web")));
        assert_eq!(names(&refs), vec!["web-a", "web-b"]);
        assert!(refs.iter().all(|r| r.namespace.as_deref() == Some("shop")));
    }

    #[test]
    fn a_statefulset_maps_by_kind() {
        let policies = [
            policy("shop", "web-a", "Deployment", "web"),
            policy("shop", "web-sts", "StatefulSet", "web"),
        ];
        let sts = StatefulSet {
            metadata: ObjectMeta {
                namespace: Some("shop".into()),
                name: Some("web".into()),
                ..ObjectMeta::default()
            },
            ..StatefulSet::default()
        };
        assert_eq!(
            names(&policies_targeting(&policies, &target_key_of(&sts))),
            vec!["web-sts"]
        );
    }

    #[test]
    fn malformed_policies_are_skipped() {
        let bad = DeserializeGuard(Err(InvalidObject {
            error: "bad".into(),
            metadata: ObjectMeta {
                namespace: Some("shop".into()),
                name: Some("broken".into()),
                ..ObjectMeta::default()
            },
        }));
        let policies = [bad, policy("shop", "ok", "Deployment", "web")];
        assert_eq!(
            names(&policies_targeting(
                &policies,
                &target_key_of(&deployment("shop", "web"))
            )),
            vec!["ok"]
        );
    }

    #[test]
    fn nothing_targets_an_unrelated_deployment() {
        let policies = [policy("shop", "web-a", "Deployment", "web")];
        assert!(
            policies_targeting(&policies, &target_key_of(&deployment("shop", "db"))).is_empty()
        );
    }
}
