//! Tables of simulated outcomes (Markdown, readable in a terminal too).
use super::run::Outcome;

/// The column headers of [`outcome_table`], in order.
pub const COLUMNS: [&str; 8] = [
    "autoscaler",
    "SLO-violation s",
    "dropped",
    "p99 latency",
    "pod-seconds",
    "x oracle",
    "scale actions",
    "reversals",
];

/// A Markdown table of outcomes, one row per autoscaler.
pub fn outcome_table(outcomes: &[Outcome]) -> String {
    let rows: Vec<Vec<String>> = outcomes
        .iter()
        .map(|o| {
            vec![
                o.name.clone(),
                o.slo_violation_secs.to_string(),
                format!("{:.0}", o.dropped_requests),
                o.p99_latency_secs
                    .map_or_else(|| "-".into(), format_latency),
                format!("{:.0}", o.pod_seconds),
                o.cost_vs_oracle
                    .map_or_else(|| "-".into(), |r| format!("{r:.2}")),
                o.scale_actions.to_string(),
                o.direction_reversals.to_string(),
            ]
        })
        .collect();
    markdown_table(&COLUMNS, &rows)
}

/// A latency in ms below 10 s, in s above.
pub fn format_latency(secs: f64) -> String {
    if secs < 10.0 {
        format!("{:.0} ms", secs * 1000.0)
    } else {
        format!("{secs:.1} s")
    }
}

/// A Markdown table with columns padded to their widest cell; the first
/// column, and any whose cells are not all numbers (or `n/a`), left-aligned,
/// the others right-aligned.
pub fn markdown_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let numeric = |i: usize| {
        i > 0
            && rows.iter().all(|r| {
                r.get(i).is_none_or(|c| {
                    c == "n/a"
                        || c.trim_start_matches(['<', '=', ' ', '*'])
                            .chars()
                            .next()
                            .is_none_or(|ch| ch.is_ascii_digit() || ch == '-')
                })
            })
    };
    let left: Vec<bool> = (0..headers.len()).map(|i| !numeric(i)).collect();
    let columns = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = String>| -> String {
        let padded: Vec<String> = cells
            .enumerate()
            .map(|(i, c)| {
                let w = widths.get(i).copied().unwrap_or(0);
                if left.get(i).copied().unwrap_or(true) {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut out = line(&mut headers.iter().map(|h| h.to_string()));
    let rule: Vec<String> = widths
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            let dashes = "-".repeat(w.max(3));
            if left[i] {
                dashes
            } else {
                format!("{}:", &dashes[1..])
            }
        })
        .collect();
    out.push_str(&format!("| {} |\n", rule.join(" | ")));
    for row in rows {
        let mut cells = (0..columns).map(|i| row.get(i).cloned().unwrap_or_default());
        out.push_str(&line(&mut cells));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(name: &str, violations: u64, pod_seconds: f64) -> Outcome {
        Outcome {
            name: name.into(),
            slo_violation_secs: violations,
            dropped_requests: 12.4,
            p99_latency_secs: Some(0.153),
            pod_seconds,
            cost_vs_oracle: Some(1.234),
            scale_actions: 7,
            direction_reversals: 2,
            requests: 1e6,
            seconds: 3600,
        }
    }

    #[test]
    fn table_has_a_row_per_autoscaler_with_its_numbers() {
        let t = outcome_table(&[outcome("inflight", 3, 1000.0), outcome("hpa", 120, 900.0)]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("| autoscaler"));
        assert!(lines[2].starts_with("| inflight"));
        for cell in ["3", "12", "153 ms", "1000", "1.23", "7", "2"] {
            assert!(
                lines[2].split('|').any(|c| c.trim() == cell),
                "{cell} in {}",
                lines[2]
            );
        }
        assert!(lines[3].contains("120"));
        // Every line has the same width (padded columns).
        assert!(lines.iter().all(|l| l.len() == lines[0].len()));
    }

    #[test]
    fn numbers_and_missing_values_are_right_aligned_words_left() {
        let rows = vec![
            vec!["a".into(), "1.5".into(), "n/a".into(), "yes".into()],
            vec!["b".into(), "<= 20".into(), "0.25".into(), "**no**".into()],
        ];
        let t = markdown_table(&["w", "x", "ratio", "ok"], &rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[1], "| --- | ----: | ----: | ------ |");
        assert_eq!(lines[2], "| a |   1.5 |   n/a | yes    |");
    }

    #[test]
    fn latency_units() {
        assert_eq!(format_latency(0.1), "100 ms");
        assert_eq!(format_latency(12.34), "12.3 s");
    }
}
