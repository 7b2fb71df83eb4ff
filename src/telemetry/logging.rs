//! Log setup: human-readable or JSON lines, filtered by a flag or `RUST_LOG`.

use tracing_subscriber::EnvFilter;

use super::TelemetryError;

/// Installs the global tracing subscriber, writing to stderr. `filter` is an
/// `EnvFilter` directive (e.g. `info,inflight=debug`); a non-empty `RUST_LOG`
/// overrides it. `json` writes one JSON object per line with the event's
/// fields at the top level, for log pipelines.
pub fn init_tracing(json: bool, filter: &str) -> Result<(), TelemetryError> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = build_filter(rust_log.as_deref(), filter)?;
    // Colours only for a person at a terminal, not in files or log pipelines.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let installed = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder.try_init()
    };
    installed.map_err(|e| TelemetryError::AlreadyInitialised(e.to_string()))
}

/// The filter in force: `rust_log` when set and not blank, else `default`.
pub fn build_filter(rust_log: Option<&str>, default: &str) -> Result<EnvFilter, TelemetryError> {
    let directives = match rust_log {
        Some(value) if !value.trim().is_empty() => value,
        _ => default,
    };
    EnvFilter::try_new(directives).map_err(|e| TelemetryError::Filter {
        filter: directives.to_string(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_overrides_the_flag_unless_blank() {
        let f = build_filter(Some("warn,inflight=trace"), "info").unwrap();
        // EnvFilter displays its directives most specific first.
        assert_eq!(f.to_string(), "inflight=trace,warn");
        let f = build_filter(Some("  "), "info,kube=warn").unwrap();
        assert_eq!(f.to_string(), "kube=warn,info");
        let f = build_filter(None, "debug").unwrap();
        assert_eq!(f.to_string(), "debug");
    }

    #[test]
    fn a_malformed_filter_is_an_error_naming_it() {
        let err = build_filter(None, "inflight=notalevel").unwrap_err();
        assert!(
            matches!(&err, TelemetryError::Filter { filter, .. } if filter == "inflight=notalevel"),
            "{err}"
        );
    }
}
