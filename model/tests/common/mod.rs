//! What ember-model's test files share: reading the JSON tensors of examples.json and
//! golden.json, and the one tolerance every backend and architecture is held to.

/// A row's values in row-major order, however deeply its tensor nests them.
pub fn flatten(value: &serde_json::Value, out: &mut Vec<f32>) {
    match value.as_array() {
        Some(items) => items.iter().for_each(|v| flatten(v, out)),
        None => out.push(value.as_f64().unwrap() as f32),
    }
}

/// Within 1e-5 of `want`, relative to its size (the regressor answers in the hundreds).
pub fn close(got: f32, want: f32) -> bool {
    (got - want).abs() <= 1e-5 * want.abs().max(1.0)
}
