//! The ready replica count of one Deployment, from a watch on the API server.
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::watch;

/// `status.readyReplicas`, 0 when absent.
pub fn ready_replicas(deployment: &Deployment) -> u32 {
    deployment
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .and_then(|r| u32::try_from(r).ok())
        .unwrap_or(0)
}

/// Watches `namespace/name` (a field selector on `metadata.name`) and sends
/// its ready replicas on every change: 0 while it does not exist. Watch
/// errors are logged and retried with backoff; returns only when every
/// receiver is gone.
pub async fn watch_deployment(
    client: Client,
    namespace: String,
    name: String,
    tx: watch::Sender<u32>,
) {
    let api: Api<Deployment> = Api::namespaced(client, &namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher(api, config).default_backoff().boxed();
    let mut seen_in_listing = false;
    while let Some(event) = events.next().await {
        let ready = match event {
            Ok(watcher::Event::Init) => {
                seen_in_listing = false;
                continue;
            }
            Ok(watcher::Event::InitApply(d)) => {
                seen_in_listing = true;
                ready_replicas(&d)
            }
            Ok(watcher::Event::InitDone) => {
                if seen_in_listing {
                    continue;
                }
                tracing::warn!(%namespace, deployment = %name, "deployment not found; 0 ready replicas");
                0
            }
            Ok(watcher::Event::Apply(d)) => ready_replicas(&d),
            Ok(watcher::Event::Delete(_)) => {
                tracing::warn!(%namespace, deployment = %name, "deployment deleted; 0 ready replicas");
                0
            }
            Err(error) => {
                tracing::warn!(%error, "watching the deployment; retrying");
                continue;
            }
        };
        let changed = tx.send_if_modified(|current| {
            let changed = *current != ready;
            *current = ready;
            changed
        });
        if changed {
            tracing::info!(ready, "ready replicas");
        }
        if tx.is_closed() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DeploymentStatus;

    #[test]
    fn ready_replicas_default_to_zero() {
        let mut d = Deployment::default();
        assert_eq!(ready_replicas(&d), 0);
        d.status = Some(DeploymentStatus::default());
        assert_eq!(ready_replicas(&d), 0);
        d.status = Some(DeploymentStatus {
            ready_replicas: Some(3),
            ..Default::default()
        });
        assert_eq!(ready_replicas(&d), 3);
        d.status = Some(DeploymentStatus {
            ready_replicas: Some(-1),
            ..Default::default()
        });
        assert_eq!(ready_replicas(&d), 0);
    }
}
