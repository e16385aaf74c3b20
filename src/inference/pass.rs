//! One forward pass with a backend panic caught: an inference thread survives a pass that
//! panics (a driver fault, a backend bug) and reports it as that pass's error, for the batcher
//! and the warm-up alike.

use std::panic::{AssertUnwindSafe, catch_unwind};

use ember_model::{Classifier, INPUT_LEN, NUM_CLASSES};

/// One forward pass over `rows`, with a backend panic turned into an error like any other: the
/// thread survives to serve the next pass.
pub(super) fn guarded_pass(
    classifier: &Classifier,
    rows: &[[f32; INPUT_LEN]],
) -> Result<Vec<[f32; NUM_CLASSES]>, String> {
    catch_unwind(AssertUnwindSafe(|| classifier.probabilities(rows))).map_or_else(
        |panic| Err(panic_message(&panic)),
        |r| r.map_err(|e| e.to_string()),
    )
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "the backend panicked".into())
}
