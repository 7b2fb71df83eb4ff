//! Leader election on a coordination.k8s.io/v1 Lease (through
//! `kube-lease-manager`), so two replicas can run and only one acts. The
//! controller runs only while this replica holds the Lease, and stops at once
//! when it loses it, or when it has not renewed the Lease within its duration
//! (see [`super::renewal`]: the manager alone does not report that).
use std::time::{Duration, SystemTime};

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::renewal::{self, LeaseRecord, ReadFuture, Timing};

/// Where and how to hold the Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    /// Validity of the Lease without renewal.
    pub duration: Duration,
}

impl LeaseConfig {
    /// Lease duration and renewal margin in whole seconds. The holder renews
    /// a third of the duration before expiry (5s for the default 15s), which
    /// tolerates that much clock skew and API latency. Always
    /// `0 < grace < duration`, as the lease manager requires.
    pub fn seconds(&self) -> (u64, u64) {
        let duration = self.duration.as_secs().max(2);
        let grace = (duration / 3).clamp(1, duration - 1);
        (duration, grace)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("cannot set up the leader-election Lease {namespace}/{name}: {source}")]
    Setup {
        namespace: String,
        name: String,
        #[source]
        source: LeaseManagerError,
    },
    #[error("the leader-election task stopped")]
    Stopped,
    #[error("releasing the Lease failed: {0}")]
    Release(#[source] LeaseManagerError),
}

/// This replica's standing: always the leader (election disabled) or
/// following a Lease.
pub enum Leadership {
    Always,
    Lease(LeaseElection),
}

impl Leadership {
    /// Wait until this replica leads.
    pub async fn acquired(&mut self) -> Result<(), LeaderError> {
        match self {
            Leadership::Always => Ok(()),
            Leadership::Lease(lease) => lease.wait_for(true).await,
        }
    }

    /// Resolve when this replica stops leading (never, without election).
    pub async fn lost(&mut self) -> Result<(), LeaderError> {
        match self {
            Leadership::Always => std::future::pending().await,
            Leadership::Lease(lease) => lease.wait_for(false).await,
        }
    }

    /// Give the Lease up (if held), so a standby takes over at once rather
    /// than after the Lease expires.
    pub async fn release(self) -> Result<(), LeaderError> {
        match self {
            Leadership::Always => Ok(()),
            Leadership::Lease(lease) => lease.release().await,
        }
    }
}

/// A running election: the lease manager's background task and its state
/// channel, and the guard that turns that state into "may act" only while
/// the Lease is provably renewed.
pub struct LeaseElection {
    state: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, LeaseManagerError>>,
    leading: watch::Receiver<bool>,
    guard: JoinHandle<()>,
}

impl LeaseElection {
    /// Create (or reuse) the Lease and start competing for it.
    pub async fn start(client: Client, config: &LeaseConfig) -> Result<Self, LeaderError> {
        let (duration, grace) = config.seconds();
        let leases: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
        let manager = LeaseManagerBuilder::new(client, &config.name)
            .with_namespace(&config.namespace)
            .with_identity(&config.identity)
            .with_duration(duration)
            .with_grace(grace)
            .build()
            .await
            .map_err(|source| LeaderError::Setup {
                namespace: config.namespace.clone(),
                name: config.name.clone(),
                source,
            })?;
        let (state, task) = manager.watch().await;
        let (leading_tx, leading) = watch::channel(false);
        let name = config.name.clone();
        let read_lease = move || -> ReadFuture {
            let (leases, name) = (leases.clone(), name.clone());
            Box::pin(async move {
                leases
                    .get_opt(&name)
                    .await
                    .map(|lease| lease.as_ref().map(LeaseRecord::of))
                    .map_err(|e| e.to_string())
            })
        };
        let timing = Timing::new(Duration::from_secs(duration), Duration::from_secs(grace));
        let guard = tokio::spawn(renewal::guard(
            state.clone(),
            read_lease,
            config.identity.clone(),
            timing,
            SystemTime::now,
            leading_tx,
        ));
        Ok(LeaseElection {
            state,
            task,
            leading,
            guard,
        })
    }

    async fn wait_for(&mut self, leading: bool) -> Result<(), LeaderError> {
        self.leading
            .wait_for(|now| *now == leading)
            .await
            .map(|_| ())
            .map_err(|_| LeaderError::Stopped)
    }

    /// Close the state channel; the manager's task then releases the Lease
    /// and ends.
    pub async fn release(self) -> Result<(), LeaderError> {
        // The guard holds a receiver of the manager's channel too.
        self.guard.abort();
        let _ = self.guard.await;
        drop(self.leading);
        drop(self.state);
        match self.task.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(LeaderError::Release(e)),
            Err(_) => Err(LeaderError::Stopped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(secs: u64) -> LeaseConfig {
        LeaseConfig {
            name: "inflight".into(),
            namespace: "default".into(),
            identity: "me".into(),
            duration: Duration::from_secs(secs),
        }
    }

    #[test]
    fn grace_is_a_third_of_the_duration_and_always_valid() {
        assert_eq!(config(15).seconds(), (15, 5));
        assert_eq!(config(4).seconds(), (4, 1));
        for secs in 0..100 {
            let (duration, grace) = config(secs).seconds();
            assert!(grace > 0 && grace < duration, "{secs}: {duration} {grace}");
        }
    }

    #[tokio::test]
    async fn without_election_this_replica_always_leads() {
        let mut leadership = Leadership::Always;
        leadership.acquired().await.unwrap();
        let lost = tokio::time::timeout(Duration::from_millis(10), leadership.lost()).await;
        assert!(lost.is_err(), "an always-leader never loses");
    }
}
