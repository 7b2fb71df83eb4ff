//! Acting on the world: the target's `/scale` subresource, and the
//! service's own concurrency-limit sinks.
pub mod limits;
pub mod scale;

/// The field manager inflight uses for every write it makes (scale patches,
/// status, leases), so `kubectl get -o yaml --show-managed-fields` tells
/// whose change it was.
pub const FIELD_MANAGER: &str = "inflight";
