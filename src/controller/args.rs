//! The flags of `inflight run`. The Helm chart passes these names: keep them.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, ValueEnum};

/// Flags of `inflight run`.
#[derive(Args, Clone, Debug)]
pub struct RunArgs {
    /// Path to a kubeconfig file. Without it: $KUBECONFIG, ~/.kube/config,
    /// or the in-cluster service account.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// The Prometheus that policies query when they don't name one
    /// (spec.metrics.prometheus.address), e.g. http://prometheus:9090.
    #[arg(long, env = "INFLIGHT_PROMETHEUS_URL", value_name = "URL")]
    pub prometheus_url: Option<String>,

    /// A Secret (NAMESPACE/NAME) with credentials for --prometheus-url: key
    /// `token` for a bearer token, or `username` and `password`.
    #[arg(long, value_name = "NAMESPACE/NAME", value_parser = parse_namespaced_name)]
    pub prometheus_auth_secret: Option<NamespacedName>,

    /// A PEM file with the CA that signed --prometheus-url's certificate.
    #[arg(long, value_name = "PATH")]
    pub prometheus_ca_file: Option<PathBuf>,

    /// Give up on a Prometheus query after this long (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = parse_duration)]
    pub query_timeout: Duration,

    /// How often to evaluate each policy, unless its spec.syncPeriod says
    /// otherwise.
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = parse_positive_duration)]
    pub sync_period: Duration,

    /// Only watch policies in this namespace (repeat for several). Default:
    /// all namespaces.
    #[arg(long = "namespace", value_name = "NS")]
    pub namespaces: Vec<String>,

    /// Address of the HTTP server for /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080", value_name = "ADDR")]
    pub metrics_addr: SocketAddr,

    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log level or tracing filter (e.g. info, debug, inflight=debug,kube=info).
    #[arg(long, default_value = "info", value_name = "FILTER")]
    pub log_level: String,

    /// Elect a leader through a Lease so several replicas can run and only
    /// one acts. --leader-election=false to disable.
    #[arg(
        long,
        default_value_t = true,
        action = ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub leader_election: bool,

    /// Name of the Lease used for leader election.
    #[arg(long, default_value = "inflight", value_name = "NAME")]
    pub lease_name: String,

    /// Namespace of the Lease.
    #[arg(
        long,
        env = "POD_NAMESPACE",
        default_value = "default",
        value_name = "NS"
    )]
    pub lease_namespace: String,

    /// How long a leader's Lease is valid without renewal; a standby takes
    /// over within about this long after the leader dies.
    #[arg(long, default_value = "15s", value_name = "DURATION", value_parser = parse_lease_duration)]
    pub lease_duration: Duration,

    /// This replica's identity in the Lease. Default: hostname and pid.
    #[arg(long, env = "POD_NAME", value_name = "ID")]
    pub identity: Option<String>,
}

/// Text or JSON logs.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// `namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespacedName {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for NamespacedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl RunArgs {
    /// The identity for the Lease: --identity, $POD_NAME, or hostname-pid.
    pub fn identity(&self) -> String {
        match &self.identity {
            Some(id) if !id.is_empty() => id.clone(),
            _ => {
                let host = hostname::get()
                    .ok()
                    .and_then(|h| h.into_string().ok())
                    .unwrap_or_else(|| "inflight".to_string());
                format!("{host}-{}", std::process::id())
            }
        }
    }
}

/// Parse a duration such as `5s`, `500ms`, `2m`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!("{s:?} is not a duration ({e}); use a number with a unit, e.g. 5s, 500ms, 2m")
    })
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("{s:?} must be greater than zero"));
    }
    Ok(d)
}

/// Leases are counted in whole seconds, and renewal needs a margin.
fn parse_lease_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(MIN_LEASE_SECS) {
        return Err(format!(
            "{s:?} is too short for a lease; use at least {MIN_LEASE_SECS}s"
        ));
    }
    Ok(d)
}

/// The lease is renewed a grace period before it expires; below this, renewals
/// would race with expiry.
pub const MIN_LEASE_SECS: u64 = 4;

fn parse_namespaced_name(s: &str) -> Result<NamespacedName, String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(NamespacedName {
                namespace: ns.to_string(),
                name: name.to_string(),
            })
        }
        _ => Err(format!("{s:?} is not NAMESPACE/NAME")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn parse(args: &[&str]) -> Result<RunArgs, clap::Error> {
        let mut all = vec!["inflight"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).map(|c| c.run)
    }

    #[test]
    fn defaults_match_the_contract() {
        // Only assert on fields without an env fallback, so the test does
        // not depend on the environment it runs in.
        let args = parse(&[]).unwrap();
        assert_eq!(args.query_timeout, Duration::from_secs(5));
        assert_eq!(args.sync_period, Duration::from_secs(5));
        assert!(args.namespaces.is_empty());
        assert_eq!(args.metrics_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(args.log_format, LogFormat::Text);
        assert_eq!(args.log_level, "info");
        assert!(args.leader_election);
        assert_eq!(args.lease_name, "inflight");
        assert_eq!(args.lease_duration, Duration::from_secs(15));
    }

    #[test]
    fn leader_election_can_be_switched_off() {
        assert!(!parse(&["--leader-election=false"]).unwrap().leader_election);
        assert!(parse(&["--leader-election"]).unwrap().leader_election);
        assert!(parse(&["--leader-election=true"]).unwrap().leader_election);
    }

    #[test]
    fn flags_parse() {
        let args = parse(&[
            "--namespace",
            "a",
            "--namespace",
            "b",
            "--sync-period",
            "2s",
            "--query-timeout",
            "750ms",
            "--prometheus-auth-secret",
            "monitoring/prom-creds",
            "--log-format",
            "json",
            "--lease-duration",
            "20s",
            "--identity",
            "pod-1",
        ])
        .unwrap();
        assert_eq!(args.namespaces, vec!["a", "b"]);
        assert_eq!(args.sync_period, Duration::from_secs(2));
        assert_eq!(args.query_timeout, Duration::from_millis(750));
        assert_eq!(
            args.prometheus_auth_secret,
            Some(NamespacedName {
                namespace: "monitoring".into(),
                name: "prom-creds".into()
            })
        );
        assert_eq!(args.log_format, LogFormat::Json);
        assert_eq!(args.identity(), "pod-1");
    }

    #[test]
    fn bad_durations_say_what_is_wrong() {
        let err = parse(&["--sync-period", "five"]).err().unwrap().to_string();
        assert!(err.contains("not a duration"), "{err}");
        let err = parse(&["--sync-period", "0s"]).err().unwrap().to_string();
        assert!(err.contains("greater than zero"), "{err}");
        let err = parse(&["--lease-duration", "1s"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("too short"), "{err}");
    }

    #[test]
    fn auth_secret_must_be_namespace_slash_name() {
        assert!(parse(&["--prometheus-auth-secret", "justname"]).is_err());
        assert!(parse(&["--prometheus-auth-secret", "/name"]).is_err());
        assert!(parse(&["--prometheus-auth-secret", "a/b/c"]).is_err());
    }

    #[test]
    fn default_identity_is_host_and_pid() {
        let args = RunArgs {
            identity: None,
            ..parse(&[]).unwrap()
        };
        assert!(
            args.identity()
                .ends_with(&format!("-{}", std::process::id()))
        );
    }
}
