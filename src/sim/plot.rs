//! SVG plots of demand, capacity and replicas over time, one panel per
//! autoscaler.
use std::path::Path;

use plotters::prelude::*;

use super::run::Series;

/// Pixels per panel.
const PANEL_WIDTH: u32 = 1100;
const PANEL_HEIGHT: u32 = 260;

/// Why a plot could not be drawn or written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("drawing the plot: {0}")]
    Draw(String),
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn draw_error<E: std::fmt::Debug>(e: E) -> PlotError {
    PlotError::Draw(format!("{e:?}"))
}

/// The SVG text of the plot: a panel per `(autoscaler, series)`, each with
/// the demand (pods needed at full utilization), the Ready pods (capacity)
/// and the requested pods (replicas, the cost), each the maximum over a
/// plotted interval.
pub fn svg(title: &str, panels: &[(String, Series)]) -> Result<String, PlotError> {
    let mut out = String::new();
    let height = PANEL_HEIGHT * panels.len().max(1) as u32 + 40;
    {
        let root = SVGBackend::with_string(&mut out, (PANEL_WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let root = root.titled(title, ("sans-serif", 22)).map_err(draw_error)?;
        let areas = root.split_evenly((panels.len().max(1), 1));
        let y_max = panels
            .iter()
            .flat_map(|(_, s)| s.demand.iter().chain(&s.ready).chain(&s.requested))
            .fold(1.0_f64, |m, &v| m.max(v))
            * 1.05;
        for (area, (name, series)) in areas.iter().zip(panels) {
            draw_panel(area, name, series, y_max)?;
        }
        root.present().map_err(draw_error)?;
    }
    Ok(out)
}

/// Time axis unit for a run of `seconds`.
fn time_unit(seconds: f64) -> (f64, &'static str) {
    if seconds > 2.0 * 86_400.0 {
        (86_400.0, "days")
    } else if seconds > 3.0 * 3600.0 {
        (3600.0, "hours")
    } else if seconds > 600.0 {
        (60.0, "minutes")
    } else {
        (1.0, "seconds")
    }
}

fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    name: &str,
    series: &Series,
    y_max: f64,
) -> Result<(), PlotError> {
    let step = series.step_secs as f64;
    let seconds = series.demand.len() as f64 * step;
    let (unit, unit_name) = time_unit(seconds);
    let mut chart = ChartBuilder::on(area)
        .caption(name, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..(seconds / unit).max(1e-9), 0.0..y_max)
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc(unit_name)
        .y_desc("pods")
        .light_line_style(WHITE)
        .draw()
        .map_err(draw_error)?;
    let points = |values: &[f64]| -> Vec<(f64, f64)> {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as f64 * step / unit, v))
            .collect()
    };
    let lines: [(&str, &[f64], RGBColor); 3] = [
        (
            "demand (pods at full utilization)",
            &series.demand,
            RGBColor(120, 120, 120),
        ),
        (
            "ready pods (capacity)",
            &series.ready,
            RGBColor(31, 119, 180),
        ),
        (
            "requested pods (cost)",
            &series.requested,
            RGBColor(214, 39, 40),
        ),
    ];
    for (label, values, color) in lines {
        chart
            .draw_series(LineSeries::new(points(values), color.stroke_width(1)))
            .map_err(draw_error)?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(draw_error)?;
    Ok(())
}

/// Draws the plot and writes it to `path`.
pub fn write_svg(path: &Path, title: &str, panels: &[(String, Series)]) -> Result<(), PlotError> {
    let text = svg(title, panels)?;
    std::fs::write(path, text).map_err(|source| PlotError::Write {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_panel_per_autoscaler_with_three_lines_each() {
        let series = Series {
            step_secs: 60,
            demand: vec![1.0, 5.0, 3.0],
            ready: vec![2.0, 2.0, 6.0],
            requested: vec![2.0, 6.0, 6.0],
        };
        let panels = vec![
            ("inflight".to_string(), series.clone()),
            ("hpa".to_string(), series),
        ];
        let text = svg("test trace", &panels).unwrap();
        assert!(text.starts_with("<svg"));
        assert!(text.contains("test trace"));
        assert!(text.contains("\ninflight\n") && text.contains("\nhpa\n"));
        // Each panel: the line and its legend sample, in each line's colour.
        for colour in ["#787878", "#1F77B4", "#D62728"] {
            let lines = text
                .lines()
                .filter(|l| l.starts_with("<polyline") && l.contains(colour))
                .count();
            assert_eq!(lines, 4, "{colour}");
        }
        assert!(text.contains("seconds"), "3 points of 60 s: a seconds axis");
    }

    #[test]
    fn units_follow_the_length() {
        assert_eq!(time_unit(300.0).1, "seconds");
        assert_eq!(time_unit(3600.0).1, "minutes");
        assert_eq!(time_unit(86_400.0).1, "hours");
        assert_eq!(time_unit(7.0 * 86_400.0).1, "days");
    }
}
