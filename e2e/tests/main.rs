//! End-to-end tests against the local bed: a real kube-apiserver with etcd,
//! kube-controller-manager, kube-scheduler, kwok fake nodes and a real
//! Prometheus. Run with `make e2e` (or `make cluster-up` then `make e2e-run`).
mod bed;
mod chart_install;
mod controller;
mod harness;
mod limits;
mod operator;
