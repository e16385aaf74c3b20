//! burn-onnx's code generation with ember-model's settings, shared by build.rs (every model
//! directory) and ember-train's `weights-version` (a retrained graph). A weights version carries
//! the fingerprint of this output, so both must generate alike: one function, one set of
//! settings.

/// Where the generator runs: a build script writes under OUT_DIR, anything else where it is told.
#[derive(Clone, Copy)]
pub enum Context {
    BuildScript,
    Cli,
}

/// Generate `<stem>.rs` and its weights `<stem>.bpk` from the ONNX file `onnx` into `out_dir`
/// (relative to OUT_DIR in a build script). burn-onnx reports what it cannot import by
/// panicking; the panic's message comes back as the error.
pub fn generate(onnx: &str, out_dir: &str, context: Context) -> Result<(), String> {
    let (input, out) = (onnx.to_string(), out_dir.to_string());
    std::panic::catch_unwind(move || {
        let mut generator = burn_onnx::ModelGen::new();
        generator
            .input(&input)
            .out_dir(&out)
            .load_strategy(burn_onnx::LoadStrategy::None);
        match context {
            Context::BuildScript => generator.run_from_script(),
            Context::Cli => generator.run_from_cli(),
        }
    })
    .map_err(|panic| {
        let why = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("(no message)");
        let file = std::path::Path::new(onnx)
            .file_name()
            .map_or(onnx.into(), |f| f.to_string_lossy());
        format!("burn-onnx could not generate code for {file}: {why}")
    })
}
