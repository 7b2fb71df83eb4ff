//! Two autoscalers on one object fight: each undoes the other's changes.
//! Before acting, a policy checks whether a HorizontalPodAutoscaler or
//! another ConcurrencyPolicy already targets the same object. The rule is
//! deterministic, so every replica of the operator reaches the same answer:
//! an HPA always wins (inflight steps aside), and among policies the oldest
//! (by creation time, then name) wins; the newer ones are blocked.
use std::fmt;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::actuate::scale::split_api_version;
use crate::api::v1alpha1::ConcurrencyPolicy;

/// The object an autoscaler targets, within one namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TargetKey {
    pub namespace: String,
    /// API group (the version does not matter: apps/v1 and apps/v1beta2
    /// name the same Deployment). `None` matches any group (an HPA may omit
    /// the apiVersion).
    pub group: Option<String>,
    pub kind: String,
    pub name: String,
}

impl TargetKey {
    pub fn new(namespace: &str, api_version: Option<&str>, kind: &str, name: &str) -> Self {
        TargetKey {
            namespace: namespace.to_string(),
            group: api_version.map(|v| split_api_version(v).0.to_string()),
            kind: kind.to_string(),
            name: name.to_string(),
        }
    }

    /// Whether two keys name the same object.
    pub fn same_object(&self, other: &TargetKey) -> bool {
        let groups_match = match (&self.group, &other.group) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        groups_match
            && self.namespace == other.namespace
            && self.kind == other.kind
            && self.name == other.name
    }

    /// The key of a policy's target.
    pub fn of_policy(policy: &ConcurrencyPolicy) -> Self {
        let target = &policy.spec.target_ref;
        TargetKey::new(
            &policy.namespace().unwrap_or_default(),
            Some(&target.api_version),
            &target.kind,
            &target.name,
        )
    }

    /// The key of an HPA's target.
    pub fn of_hpa(hpa: &HorizontalPodAutoscaler) -> Self {
        let target = &hpa.spec.scale_target_ref;
        TargetKey::new(
            &hpa.namespace().unwrap_or_default(),
            target.api_version.as_deref(),
            &target.kind,
            &target.name,
        )
    }
}

/// A ConcurrencyPolicy's claim on its target, with what orders claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyClaim {
    pub name: String,
    pub uid: Option<String>,
    pub created: Option<Timestamp>,
    pub target: TargetKey,
}

impl PolicyClaim {
    pub fn of(policy: &ConcurrencyPolicy) -> Self {
        PolicyClaim {
            name: policy.name_any(),
            uid: policy.uid(),
            created: policy.creation_timestamp().map(|t| t.0),
            target: TargetKey::of_policy(policy),
        }
    }

    /// Older first; an object without a creation time (not yet persisted)
    /// sorts last; ties break on name, then uid.
    fn order_key(&self) -> (bool, Option<Timestamp>, &str, Option<&str>) {
        (
            self.created.is_none(),
            self.created,
            &self.name,
            self.uid.as_deref(),
        )
    }

    fn is_same_policy(&self, other: &PolicyClaim) -> bool {
        self.name == other.name && self.target.namespace == other.target.namespace
    }
}

/// Who holds the target instead of this policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blocker {
    Hpa { name: String },
    OlderPolicy { name: String },
}

impl Blocker {
    pub fn reason(&self) -> &'static str {
        match self {
            Blocker::Hpa { .. } => "HPAConflict",
            Blocker::OlderPolicy { .. } => "PolicyConflict",
        }
    }
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blocker::Hpa { name } => write!(
                f,
                "HorizontalPodAutoscaler {name} already scales this target; not acting (delete the HPA or this policy)"
            ),
            Blocker::OlderPolicy { name } => write!(
                f,
                "ConcurrencyPolicy {name} is older and already scales this target; not acting"
            ),
        }
    }
}

/// Whether `me` must stand aside, and for whom. `hpas` are the targets of
/// the HPAs in the namespace (name, target); `policies` are all policies
/// in the namespace (this one may be among them: it is skipped).
pub fn find_blocker<'a>(
    me: &PolicyClaim,
    hpas: impl IntoIterator<Item = (&'a str, &'a TargetKey)>,
    policies: impl IntoIterator<Item = &'a PolicyClaim>,
) -> Option<Blocker> {
    let mut hpa_names: Vec<&str> = hpas
        .into_iter()
        .filter(|(_, target)| target.same_object(&me.target))
        .map(|(name, _)| name)
        .collect();
    hpa_names.sort_unstable();
    if let Some(name) = hpa_names.first() {
        return Some(Blocker::Hpa {
            name: (*name).to_string(),
        });
    }
    policies
        .into_iter()
        .filter(|other| !other.is_same_policy(me) && other.target.same_object(&me.target))
        .filter(|other| other.order_key() < me.order_key())
        .min_by(|a, b| a.order_key().cmp(&b.order_key()))
        .map(|older| Blocker::OlderPolicy {
            name: older.name.clone(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(api_version: Option<&str>, kind: &str, name: &str) -> TargetKey {
        TargetKey::new("shop", api_version, kind, name)
    }

    fn claim(name: &str, created: i64, target: TargetKey) -> PolicyClaim {
        PolicyClaim {
            name: name.into(),
            uid: Some(format!("uid-{name}")),
            created: Some(Timestamp::from_second(created).unwrap()),
            target,
        }
    }

    #[test]
    fn targets_match_on_group_kind_name_namespace_not_version() {
        let a = key(Some("apps/v1"), "Deployment", "web");
        assert!(a.same_object(&key(Some("apps/v1beta2"), "Deployment", "web")));
        assert!(a.same_object(&key(None, "Deployment", "web")));
        assert!(!a.same_object(&key(Some("apps/v1"), "StatefulSet", "web")));
        assert!(!a.same_object(&key(Some("apps/v1"), "Deployment", "api")));
        assert!(!a.same_object(&key(Some("example.com/v1"), "Deployment", "web")));
        assert!(!a.same_object(&TargetKey::new(
            "other",
            Some("apps/v1"),
            "Deployment",
            "web"
        )));
    }

    #[test]
    fn an_hpa_on_the_same_target_blocks() {
        let me = claim("web", 100, key(Some("apps/v1"), "Deployment", "web"));
        let hpa_target = key(Some("apps/v1"), "Deployment", "web");
        let other_target = key(Some("apps/v1"), "Deployment", "api");
        assert_eq!(
            find_blocker(
                &me,
                [("api-hpa", &other_target), ("web-hpa", &hpa_target)],
                []
            ),
            Some(Blocker::Hpa {
                name: "web-hpa".into()
            })
        );
        assert_eq!(find_blocker(&me, [("api-hpa", &other_target)], []), None);
    }

    #[test]
    fn the_older_policy_wins_and_the_newer_is_blocked() {
        let target = key(Some("apps/v1"), "Deployment", "web");
        let old = claim("first", 100, target.clone());
        let new = claim("second", 200, target.clone());
        let all = [old.clone(), new.clone()];
        assert_eq!(find_blocker(&old, [], &all), None);
        assert_eq!(
            find_blocker(&new, [], &all),
            Some(Blocker::OlderPolicy {
                name: "first".into()
            })
        );
    }

    #[test]
    fn same_creation_time_breaks_ties_by_name() {
        let target = key(Some("apps/v1"), "Deployment", "web");
        let a = claim("alpha", 100, target.clone());
        let b = claim("beta", 100, target.clone());
        let all = [b.clone(), a.clone()];
        assert_eq!(find_blocker(&a, [], &all), None);
        assert_eq!(
            find_blocker(&b, [], &all),
            Some(Blocker::OlderPolicy {
                name: "alpha".into()
            })
        );
    }

    #[test]
    fn the_oldest_of_several_is_named() {
        let target = key(Some("apps/v1"), "Deployment", "web");
        let all = [
            claim("c", 300, target.clone()),
            claim("b", 200, target.clone()),
            claim("a", 100, target.clone()),
        ];
        assert_eq!(
            find_blocker(&all[0], [], &all),
            Some(Blocker::OlderPolicy { name: "a".into() })
        );
    }

    #[test]
    fn policies_on_other_targets_do_not_block() {
        let me = claim("new", 200, key(Some("apps/v1"), "Deployment", "web"));
        let other = claim("old", 100, key(Some("apps/v1"), "Deployment", "api"));
        assert_eq!(find_blocker(&me, [], &[other, me.clone()]), None);
    }

    #[test]
    fn blocker_message_names_the_holder() {
        let b = Blocker::Hpa { name: "web".into() };
        assert!(b.to_string().contains("HorizontalPodAutoscaler web"));
        assert_eq!(b.reason(), "HPAConflict");
    }
}
