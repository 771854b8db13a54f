//! The self-test: every op's check on the current adapter, as one table.

use crate::check::{table, Check, Row};
use crate::gpu::Gpu;
use crate::ops::{CHECKS, FEATURE_CHECKS};

/// Every op's check, then the training step (D and G gradients with the penalty, Adam) against the
/// f64 reference step.
pub fn checks() -> impl Iterator<Item = (&'static str, Check)> {
    let step: (&str, Check) = ("train step", crate::train::check::check);
    CHECKS.iter().copied().chain([step])
}

/// Runs every check, and every check that needs a device feature where the device has it; a check
/// that cannot run at all gives a failing row naming the error.
pub async fn run(gpu: &Gpu) -> Vec<Row> {
    let mut rows = Vec::new();
    let runnable = FEATURE_CHECKS
        .iter()
        .filter(|c| (c.available)(gpu).is_ok())
        .map(|c| (c.name, c.check));
    for (name, check) in checks().chain(runnable) {
        match check(gpu).await {
            Ok(r) => rows.extend(r),
            Err(e) => rows.push(Row {
                name: format!("{name}: {e:#}"),
                shape: String::new(),
                max_abs: f64::NAN,
                max_rel: f64::NAN,
                tol: 0.0,
                pass: false,
            }),
        }
    }
    rows
}

/// The table, the adapter, and whether everything passed.
pub async fn report(gpu: &Gpu) -> (String, bool) {
    let rows = run(gpu).await;
    let ok = rows.iter().all(|r| r.pass);
    let failed = rows.iter().filter(|r| !r.pass).count();
    let not_run: String = FEATURE_CHECKS
        .iter()
        .filter_map(|c| (c.available)(gpu).err())
        .map(|e| format!("not run here: {e:#}\n"))
        .collect();
    let text = format!(
        "{}{not_run}adapter: {}\n{} rows, {failed} failed\n",
        table(&rows),
        gpu.describe(),
        rows.len()
    );
    (text, ok)
}
