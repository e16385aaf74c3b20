//! `ember-serve version`: what this binary is, what it was built for, and the machine it runs on.
//!
//! A release check runs it inside each freshly pulled image (distroless: no shell, no `uname`)
//! to show that the image published for a platform holds a binary for that platform and that
//! it executes there — natively, or under QEMU for another architecture.

/// The Cargo features compiled into this binary that change what it runs on or with.
pub(crate) fn features() -> Vec<&'static str> {
    [
        ("ndarray", cfg!(feature = "ndarray")),
        ("flex", cfg!(feature = "flex")),
        ("wgpu", cfg!(feature = "wgpu")),
        ("mimalloc", cfg!(feature = "mimalloc")),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect()
}

/// The running machine's architecture as `uname -m` prints it (`x86_64`, `aarch64`, ...).
#[cfg(unix)]
pub(crate) fn machine() -> String {
    rustix::system::uname()
        .machine()
        .to_string_lossy()
        .into_owned()
}

#[cfg(not(unix))]
pub(crate) fn machine() -> String {
    "unknown".to_string()
}

/// The report printed by `ember-serve version`, one `key: value` per line so scripts can grep it.
pub fn report() -> String {
    format!(
        "ember-serve {}\nfeatures: {}\ntarget: {}-{}\nmachine: {}\n",
        env!("CARGO_PKG_VERSION"),
        features().join(","),
        std::env::consts::ARCH,
        std::env::consts::OS,
        machine(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_names_the_build_target_and_the_running_machine() {
        let report = report();
        let field = |key: &str| {
            report
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(str::to_string)
        };
        assert_eq!(
            field("target: ").as_deref(),
            Some(format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS).as_str())
        );
        // A native run: the kernel reports the architecture the binary was compiled for.
        assert_eq!(field("machine: ").as_deref(), Some(std::env::consts::ARCH));
        assert_eq!(
            field("features: ").map(|f| f.split(',').any(|x| x == "ndarray")),
            Some(cfg!(feature = "ndarray"))
        );
    }
}
