//! One forward pass with a backend panic caught: an inference thread survives a pass that
//! panics (a driver fault, a backend bug) and reports it as that pass's error, for the batcher
//! and the warm-up alike.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::runner::Runner;

/// One forward pass over `rows`, with a backend panic turned into an error like any other: the
/// thread survives to serve the next pass.
pub(super) fn guarded_pass<R: Runner>(
    runner: &R,
    rows: &[R::Row],
) -> Result<Vec<R::Answer>, String> {
    let answers = catch_unwind(AssertUnwindSafe(|| runner.run(rows)))
        .map_err(|panic| panic_message(&panic))??;
    if answers.len() != rows.len() {
        return Err(format!(
            "{} answers for {} inputs",
            answers.len(),
            rows.len()
        ));
    }
    Ok(answers)
}

pub(super) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "the backend panicked".into())
}
