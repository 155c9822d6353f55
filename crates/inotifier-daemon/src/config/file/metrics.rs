//! The `[metrics]` table: where the Prometheus endpoint listens (off without it).

use super::error::ProblemKind;
use super::table::{KeySpec, Report, TableReader};
use crate::config::MetricsSettings;

pub(super) const KEYS: &[KeySpec] = &[KeySpec {
    name: "listen",
    expects: "an address and port (a string)",
    example: r#"listen = "127.0.0.1:9464""#,
}];

pub(super) fn read(table: Option<TableReader<'_, '_>>, report: &mut Report<'_>) -> MetricsSettings {
    let mut settings = MetricsSettings::default();
    let Some(table) = table else {
        return settings;
    };
    if let Some((text, span)) = table.string(report, "listen") {
        match text.parse() {
            Ok(address) => settings.listen = Some(address),
            Err(_) => report.add(
                span.start,
                ProblemKind::MetricsListen {
                    value: text.to_string(),
                },
            ),
        }
    }
    settings
}
