//! Acting only while the Lease is provably ours.
//!
//! `kube-lease-manager` reports a change of holder, but when the leader
//! cannot reach the API server to renew, it logs the error and retries, and
//! its state channel keeps saying "leader". The Lease expires meanwhile, a
//! standby takes over, and two replicas act at once until the old leader
//! reaches the API server again.
//!
//! This guard closes that gap with a local deadline. It reads the Lease
//! (a GET, which the leader's RBAC already allows) a little after each
//! renewal is due, and this replica leads only while the manager says so
//! *and* the last renewal it saw (`spec.renewTime + leaseDurationSeconds`,
//! written with this process' own clock) has not expired. When renewals stop
//! being seen, the replica stops acting when its Lease expires, which is
//! when a standby may take over; when they are seen again (and the Lease is
//! still ours), it acts again.
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::coordination::v1::Lease;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, warn};

/// What one read of the Lease says about who holds it, and until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRecord {
    pub holder: Option<String>,
    /// `spec.renewTime`: the holder's clock at its last renewal.
    pub renewed: Option<SystemTime>,
    /// `spec.leaseDurationSeconds`.
    pub duration: Option<Duration>,
}

impl LeaseRecord {
    pub fn of(lease: &Lease) -> Self {
        let spec = lease.spec.as_ref();
        LeaseRecord {
            holder: spec.and_then(|s| s.holder_identity.clone()),
            renewed: spec
                .and_then(|s| s.renew_time.as_ref())
                .map(|t| SystemTime::from(t.0)),
            duration: spec
                .and_then(|s| s.lease_duration_seconds)
                .and_then(|d| u64::try_from(d).ok())
                .map(Duration::from_secs),
        }
    }

    /// How much longer this record proves that `identity` holds the Lease,
    /// at `now`; `None` when it does not (another holder, no renewal, or
    /// already expired).
    pub fn held_for(&self, identity: &str, now: SystemTime) -> Option<Duration> {
        if self.holder.as_deref() != Some(identity) {
            return None;
        }
        let expires = self.renewed?.checked_add(self.duration?)?;
        expires.duration_since(now).ok().filter(|d| !d.is_zero())
    }
}

/// When the guard reads the Lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// The holder renews this long before its Lease expires; the guard
    /// looks for the renewal half-way through it.
    pub grace: Duration,
    /// Between reads while a renewal is due but not seen yet, or while this
    /// replica claims the Lease without proof.
    pub poll: Duration,
    /// Give up on one read after this long (the deadline still applies
    /// while a read hangs).
    pub read_timeout: Duration,
}

impl Timing {
    /// For a Lease of `duration` renewed `grace` before expiry.
    pub fn new(duration: Duration, grace: Duration) -> Self {
        Timing {
            grace,
            poll: (grace / 4).max(MIN_POLL),
            read_timeout: duration,
        }
    }

    /// The next read: half-way through the grace before the proven expiry
    /// (the renewal is due at its start), or one poll from now when that
    /// point has passed or nothing is proven.
    pub fn next_read(&self, proven_until: Option<Instant>, now: Instant) -> Instant {
        proven_until
            .and_then(|until| until.checked_sub(self.grace / 2))
            .filter(|at| *at > now)
            .unwrap_or(now + self.poll)
    }
}

/// Reads at most this often: a Lease read is a GET on the API server.
const MIN_POLL: Duration = Duration::from_millis(100);

/// Reads the Lease; `Ok(None)` when it does not exist.
pub type ReadFuture = Pin<Box<dyn Future<Output = Result<Option<LeaseRecord>, String>> + Send>>;

enum Wake {
    ClaimChanged,
    ManagerStopped,
    Read(Result<Result<Option<LeaseRecord>, String>, tokio::time::error::Elapsed>),
    Timer,
}

/// Publishes on `leading` whether this replica may act: while `claimed`
/// (the lease manager's state) is true and the Lease, as last read, is
/// held by `identity` and not expired. Returns when the manager's channel
/// closes (the manager stopped).
pub async fn guard(
    mut claimed: watch::Receiver<bool>,
    mut read_lease: impl FnMut() -> ReadFuture,
    identity: String,
    timing: Timing,
    clock: impl Fn() -> SystemTime,
    leading: watch::Sender<bool>,
) {
    let mut proven_until: Option<Instant> = None;
    let mut next_read = Instant::now();
    let mut reading: Option<Pin<Box<tokio::time::Timeout<ReadFuture>>>> = None;
    loop {
        let claims = *claimed.borrow_and_update();
        let now = Instant::now();
        let proven = proven_until.is_some_and(|until| now < until);
        publish(&leading, claims && proven, claims);
        if !claims {
            proven_until = None;
            reading = None;
        } else if reading.is_none() && now >= next_read {
            reading = Some(Box::pin(tokio::time::timeout(
                timing.read_timeout,
                read_lease(),
            )));
        }
        let timer = match (claims, reading.is_some(), proven_until) {
            (false, _, _) => None,
            // Reading: wake at the deadline, if one is still ahead.
            (true, true, until) => until.filter(|u| *u > now),
            (true, false, Some(until)) if until > now => Some(until.min(next_read)),
            (true, false, _) => Some(next_read),
        };
        let wake = tokio::select! {
            changed = claimed.changed() => match changed {
                Ok(()) => Wake::ClaimChanged,
                Err(_) => Wake::ManagerStopped,
            },
            result = async {
                match reading.as_mut() {
                    Some(read) => read.await,
                    None => std::future::pending().await,
                }
            } => Wake::Read(result),
            () = async {
                match timer {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => Wake::Timer,
        };
        match wake {
            Wake::ManagerStopped => return,
            Wake::ClaimChanged | Wake::Timer => {}
            Wake::Read(result) => {
                reading = None;
                let now = Instant::now();
                match result {
                    Ok(Ok(record)) => {
                        proven_until = record
                            .and_then(|r| r.held_for(&identity, clock()))
                            .map(|left| now + left);
                    }
                    Ok(Err(e)) => debug!(error = %e, "cannot read the Lease"),
                    Err(_) => debug!(timeout = ?timing.read_timeout, "reading the Lease timed out"),
                }
                next_read = timing.next_read(proven_until, now);
            }
        }
    }
}

/// Send the new state when it changed, saying why when the Lease, not the
/// manager, took leadership away.
fn publish(leading: &watch::Sender<bool>, now: bool, claims: bool) {
    leading.send_if_modified(|was| {
        if *was == now {
            return false;
        }
        if *was && claims {
            warn!("the Lease was not renewed within its duration: stopped acting until it is");
        }
        *was = now;
        true
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    const ME: &str = "me";

    fn record(holder: &str, renewed: SystemTime, secs: u64) -> LeaseRecord {
        LeaseRecord {
            holder: Some(holder.into()),
            renewed: Some(renewed),
            duration: Some(Duration::from_secs(secs)),
        }
    }

    #[test]
    fn a_record_proves_a_hold_until_renewal_plus_duration() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let r = record(ME, t0, 4);
        assert_eq!(r.held_for(ME, t0), Some(Duration::from_secs(4)));
        assert_eq!(
            r.held_for(ME, t0 + Duration::from_secs(3)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(r.held_for(ME, t0 + Duration::from_secs(4)), None);
        assert_eq!(r.held_for("other", t0), None);
        let unrenewed = LeaseRecord {
            renewed: None,
            ..r.clone()
        };
        assert_eq!(unrenewed.held_for(ME, t0), None);
    }

    #[test]
    fn reads_are_due_half_way_through_the_grace() {
        let timing = Timing::new(Duration::from_secs(15), Duration::from_secs(5));
        let now = Instant::now();
        let until = now + Duration::from_secs(15);
        assert_eq!(
            timing.next_read(Some(until), now),
            until - Duration::from_millis(2500)
        );
        // Past that point (the renewal is late), or without proof: poll.
        let late = until - Duration::from_secs(1);
        assert_eq!(timing.next_read(Some(until), late), late + timing.poll);
        assert_eq!(timing.next_read(None, now), now + timing.poll);
        assert_eq!(timing.poll, Duration::from_millis(1250));
    }

    /// A fake API server: the Lease as last written, a switch to make reads
    /// fail, and a count of reads. Its clock follows tokio's (paused) time.
    struct Fake {
        lease: Arc<Mutex<Option<LeaseRecord>>>,
        down: Arc<Mutex<bool>>,
        reads: Arc<Mutex<u32>>,
        base: (Instant, SystemTime),
    }

    impl Fake {
        fn new() -> Fake {
            Fake {
                lease: Arc::default(),
                down: Arc::default(),
                reads: Arc::default(),
                base: (
                    Instant::now(),
                    SystemTime::UNIX_EPOCH + Duration::from_secs(1_000),
                ),
            }
        }

        fn clock(&self) -> impl Fn() -> SystemTime + use<> {
            let (instant, system) = self.base;
            move || system + instant.elapsed()
        }

        /// The holder renews now.
        fn renew(&self, holder: &str, secs: u64) {
            *self.lease.lock().unwrap() = Some(record(holder, self.clock()(), secs));
        }

        fn reader(&self) -> impl FnMut() -> ReadFuture + use<> {
            let (lease, down, reads) = (self.lease.clone(), self.down.clone(), self.reads.clone());
            move || {
                let (lease, down, reads) = (lease.clone(), down.clone(), reads.clone());
                Box::pin(async move {
                    *reads.lock().unwrap() += 1;
                    if *down.lock().unwrap() {
                        Err("connection refused".to_string())
                    } else {
                        Ok(lease.lock().unwrap().clone())
                    }
                })
            }
        }
    }

    struct Running {
        claimed: watch::Sender<bool>,
        leading: watch::Receiver<bool>,
        task: tokio::task::JoinHandle<()>,
    }

    fn start(fake: &Fake, secs: u64, grace: u64) -> Running {
        let (claimed, claimed_rx) = watch::channel(false);
        let (leading_tx, leading) = watch::channel(false);
        let timing = Timing::new(Duration::from_secs(secs), Duration::from_secs(grace));
        let task = tokio::spawn(guard(
            claimed_rx,
            fake.reader(),
            ME.into(),
            timing,
            fake.clock(),
            leading_tx,
        ));
        Running {
            claimed,
            leading,
            task,
        }
    }

    async fn settle() {
        // Let the guard run everything that is ready (paused time: no
        // timer fires while other tasks can still make progress).
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    async fn advance(d: Duration) {
        tokio::time::sleep(d).await;
        settle().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_that_stops_renewing_stops_acting_when_its_lease_expires() {
        let fake = Fake::new();
        let mut g = start(&fake, 4, 1);
        fake.renew(ME, 4);
        g.claimed.send(true).unwrap();
        settle().await;
        assert!(*g.leading.borrow_and_update(), "a fresh hold leads");

        // The API server goes away; the manager keeps claiming (the gap).
        *fake.down.lock().unwrap() = true;
        advance(Duration::from_millis(3900)).await;
        assert!(*g.leading.borrow(), "still within the lease duration");
        advance(Duration::from_millis(200)).await;
        assert!(
            !*g.leading.borrow(),
            "4s without a renewal: must stop acting although the manager still claims"
        );
        assert!(*g.claimed.borrow());

        // Back, and the manager renewed: act again.
        *fake.down.lock().unwrap() = false;
        fake.renew(ME, 4);
        advance(Duration::from_millis(400)).await;
        assert!(*g.leading.borrow(), "renewed again: leads again");
        g.task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn regular_renewals_keep_the_lead_without_gaps() {
        let fake = Fake::new();
        let mut g = start(&fake, 4, 1);
        fake.renew(ME, 4);
        g.claimed.send(true).unwrap();
        settle().await;
        assert!(*g.leading.borrow_and_update());
        // The manager renews 1s before expiry, every 3s, for a minute.
        for _ in 0..20 {
            advance(Duration::from_secs(3)).await;
            fake.renew(ME, 4);
        }
        settle().await;
        assert!(*g.leading.borrow());
        assert!(
            !g.leading.has_changed().unwrap(),
            "never stopped leading in between"
        );
        let reads = *fake.reads.lock().unwrap();
        assert!(
            reads <= 25,
            "about one read per renewal, not a busy loop: {reads}"
        );
        g.task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn another_holder_or_no_claim_means_not_leading() {
        let fake = Fake::new();
        let g = start(&fake, 4, 1);
        fake.renew("other", 4);
        g.claimed.send(true).unwrap();
        advance(Duration::from_millis(500)).await;
        assert!(!*g.leading.borrow(), "the Lease names another holder");

        fake.renew(ME, 4);
        advance(Duration::from_millis(500)).await;
        assert!(*g.leading.borrow());
        g.claimed.send(false).unwrap();
        settle().await;
        assert!(!*g.leading.borrow(), "the manager lost the Lease");
        let reads = *fake.reads.lock().unwrap();
        advance(Duration::from_secs(30)).await;
        assert_eq!(
            *fake.reads.lock().unwrap(),
            reads,
            "no reads while not claiming"
        );
        g.task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn the_guard_ends_with_the_manager() {
        let fake = Fake::new();
        let g = start(&fake, 4, 1);
        drop(g.claimed);
        tokio::time::timeout(Duration::from_secs(1), g.task)
            .await
            .expect("the guard returns once the manager's channel closes")
            .unwrap();
    }
}
