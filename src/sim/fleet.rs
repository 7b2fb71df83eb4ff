//! The pods of the simulated workload and the metrics pipeline that reports
//! on them.
//!
//! Pod lifecycle: a pod exists (and costs) from the moment the autoscaler
//! requests it; it becomes Ready `startup_secs` later. On a scale-down the
//! ReplicaSet deletes pods that are not Ready first, the newest first, then
//! Ready ones; a deleted pod costs nothing more (its drain is not billed) and
//! takes no new requests at once (the service model lets it finish what it
//! was serving).
//!
//! Metrics: Prometheus scrapes the pods every `scrape_interval_secs`; a
//! query returns the latest scrape, with its timestamp, until the next one.
use std::collections::VecDeque;

use super::peers::Scrape;

/// Pods requested, starting and ready.
#[derive(Clone, Debug)]
pub struct Fleet {
    startup_secs: f64,
    ready: u32,
    /// Pods still starting: (time they become Ready, how many), oldest first.
    starting: VecDeque<(f64, u32)>,
    starting_count: u32,
}

impl Fleet {
    /// A fleet with `ready` pods already Ready.
    pub fn new(ready: u32, startup_secs: f64) -> Self {
        Fleet {
            startup_secs: startup_secs.max(0.0),
            ready,
            starting: VecDeque::new(),
            starting_count: 0,
        }
    }

    /// Pods that are Ready.
    pub fn ready(&self) -> u32 {
        self.ready
    }

    /// Pods requested (`spec.replicas`): Ready plus starting.
    pub fn requested(&self) -> u32 {
        self.ready + self.starting_count
    }

    /// Pods requested but not Ready yet.
    pub fn starting(&self) -> u32 {
        self.starting_count
    }

    /// Moves the pods whose start-up is over at `now` to Ready.
    pub fn advance(&mut self, now: f64) {
        while let Some(&(at, n)) = self.starting.front() {
            if at > now + 1e-9 {
                break;
            }
            self.starting.pop_front();
            self.starting_count -= n;
            self.ready += n;
        }
    }

    /// Sets `spec.replicas` to `replicas` at `now`.
    pub fn set_replicas(&mut self, replicas: u32, now: f64) {
        let requested = self.requested();
        if replicas > requested {
            let n = replicas - requested;
            let at = now + self.startup_secs;
            match self.starting.back_mut() {
                Some((last, count)) if (*last - at).abs() < 1e-9 => *count += n,
                _ => self.starting.push_back((at, n)),
            }
            self.starting_count += n;
            if self.startup_secs == 0.0 {
                self.advance(now);
            }
            return;
        }
        let mut remove = requested - replicas;
        while remove > 0 {
            let Some((_, count)) = self.starting.back_mut() else {
                break;
            };
            let n = remove.min(*count);
            *count -= n;
            self.starting_count -= n;
            remove -= n;
            if *count == 0 {
                self.starting.pop_back();
            }
        }
        self.ready -= remove.min(self.ready);
    }
}

/// Prometheus scraping the service every `interval_secs` from time 0.
#[derive(Clone, Debug)]
pub struct Scraper {
    interval_secs: f64,
    next: f64,
    latest: Option<Scrape>,
    /// Arrivals counted since the latest scrape, and its time.
    arrivals: f64,
    since: f64,
}

impl Scraper {
    pub fn new(interval_secs: f64) -> Self {
        Scraper {
            interval_secs: interval_secs.max(f64::MIN_POSITIVE),
            next: 0.0,
            latest: None,
            arrivals: 0.0,
            since: 0.0,
        }
    }

    /// Offers the gauges at `now` and the requests that arrived since the
    /// previous offer (a counter); the gauges and the counter's rate since
    /// the previous scrape are kept when a scrape is due.
    pub fn offer(&mut self, now: f64, in_flight: f64, queue_depth: f64, ready: u32, arrived: f64) {
        self.arrivals += arrived;
        if now + 1e-9 < self.next {
            return;
        }
        let elapsed = now - self.since;
        let arrival_rate = if elapsed > 0.0 {
            self.arrivals / elapsed
        } else {
            0.0
        };
        self.arrivals = 0.0;
        self.since = now;
        while self.next <= now + 1e-9 {
            self.next += self.interval_secs;
        }
        self.latest = Some(Scrape {
            timestamp: now,
            in_flight,
            queue_depth,
            ready,
            arrival_rate,
        });
    }

    /// What a query returns now: the latest scrape.
    pub fn latest(&self) -> Option<Scrape> {
        self.latest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_become_ready_after_startup_and_cost_from_the_request() {
        let mut f = Fleet::new(2, 30.0);
        f.set_replicas(5, 10.0);
        assert_eq!((f.ready(), f.requested(), f.starting()), (2, 5, 3));
        f.advance(39.0);
        assert_eq!(f.ready(), 2);
        f.advance(40.0);
        assert_eq!((f.ready(), f.requested(), f.starting()), (5, 5, 0));
    }

    #[test]
    fn scale_down_removes_the_newest_starting_pods_first() {
        let mut f = Fleet::new(4, 30.0);
        f.set_replicas(6, 0.0); // 2 ready at 30
        f.set_replicas(9, 10.0); // 3 ready at 40
        f.set_replicas(5, 20.0); // removes the 3 newest and 1 of the older
        assert_eq!((f.ready(), f.starting()), (4, 1));
        f.advance(30.0);
        assert_eq!((f.ready(), f.starting()), (5, 0));
        f.advance(40.0);
        assert_eq!(f.ready(), 5);
        f.set_replicas(6, 41.0);
        f.set_replicas(2, 42.0);
        assert_eq!((f.ready(), f.requested()), (2, 2));
    }

    #[test]
    fn zero_startup_is_ready_at_once() {
        let mut f = Fleet::new(1, 0.0);
        f.set_replicas(3, 5.0);
        assert_eq!(f.ready(), 3);
    }

    #[test]
    fn scrapes_are_held_until_the_next_interval() {
        let mut s = Scraper::new(5.0);
        assert_eq!(s.latest(), None);
        s.offer(0.0, 10.0, 1.0, 2, 0.0);
        for t in 1..5 {
            s.offer(f64::from(t), 99.0, 99.0, 9, 100.0);
        }
        let held = s.latest().unwrap();
        assert_eq!((held.timestamp, held.in_flight, held.ready), (0.0, 10.0, 2));
        s.offer(5.0, 20.0, 0.0, 3, 100.0);
        assert_eq!(s.latest().unwrap().timestamp, 5.0);
        assert_eq!(s.latest().unwrap().in_flight, 20.0);
        // 5 x 100 arrivals in the 5 s since the scrape at 0.
        assert_eq!(s.latest().unwrap().arrival_rate, 100.0);
    }
}
