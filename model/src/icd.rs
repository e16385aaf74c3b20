//! Why the Vulkan loader found no GPU, in words an operator can act on.
//!
//! When a driver's library fails to load, the loader skips it silently and wgpu just sees no
//! adapter: on an NVIDIA node without libglvnd, `libGLX_nvidia.so.0` cannot find
//! `libGLdispatch.so.0` and `--device auto` quietly serves on the CPU. This module does what the
//! loader does — find the installable client driver (ICD) manifests, load each driver's
//! library — and reports the first thing that fails, with the dynamic linker's own message.

use std::path::{Path, PathBuf};

/// The ICD manifests the loader reads, in its order: `VK_DRIVER_FILES` (or the older
/// `VK_ICD_FILENAMES`) alone when set, files or directories separated by `:`; else
/// `VK_ADD_DRIVER_FILES` and then `vulkan/icd.d` under each of the loader's standard
/// directories ([`standard_dirs`]).
pub fn manifests() -> Vec<PathBuf> {
    let var = |name: &str| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    manifests_from(
        var("VK_DRIVER_FILES").or_else(|| var("VK_ICD_FILENAMES")),
        var("VK_ADD_DRIVER_FILES"),
        standard_dirs(var),
    )
}

/// `vulkan/icd.d` under the directories the Linux loader searches, in its order:
/// `$XDG_CONFIG_HOME` (`~/.config`), `$XDG_CONFIG_DIRS` (`/etc/xdg`), `/usr/local/etc`, `/etc`,
/// `$XDG_DATA_HOME` (`~/.local/share`), `$XDG_DATA_DIRS` (`/usr/local/share:/usr/share`).
/// `var` reads the environment.
pub fn standard_dirs(var: impl Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let home = var("HOME");
    let under_home = |rel: &str| home.as_ref().map(|h| format!("{h}/{rel}"));
    let config_home = var("XDG_CONFIG_HOME").or_else(|| under_home(".config"));
    let config = var("XDG_CONFIG_DIRS").unwrap_or_else(|| "/etc/xdg".into());
    let data_home = var("XDG_DATA_HOME").or_else(|| under_home(".local/share"));
    let data = var("XDG_DATA_DIRS").unwrap_or_else(|| "/usr/local/share:/usr/share".into());
    config_home
        .into_iter()
        .chain(config.split(':').map(String::from))
        .chain(["/usr/local/etc".to_string(), "/etc".to_string()])
        .chain(data_home)
        .chain(data.split(':').map(String::from))
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(&d).join("vulkan/icd.d"))
        .collect()
}

/// The manifests in `driver_files` (`:`-separated files or directories) when given; else in
/// `add_files` and then the `standard` directories.
pub fn manifests_from(
    driver_files: Option<String>,
    add_files: Option<String>,
    standard: Vec<PathBuf>,
) -> Vec<PathBuf> {
    let listed = |files: String| files.split(':').map(PathBuf::from).collect::<Vec<_>>();
    let places: Vec<PathBuf> = match driver_files {
        Some(files) => listed(files),
        None => add_files
            .map(listed)
            .unwrap_or_default()
            .into_iter()
            .chain(standard)
            .collect(),
    };
    let mut found = Vec::new();
    for place in places {
        if place.is_dir() {
            let Ok(entries) = std::fs::read_dir(&place) else {
                continue;
            };
            let mut jsons: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            jsons.sort();
            found.extend(jsons);
        } else if place.is_file() {
            found.push(place);
        }
    }
    found
}

/// What loading one manifest's driver gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverCheck {
    pub manifest: PathBuf,
    /// The library the manifest names, as written there.
    pub library: String,
    /// Why it could not be used; `None` when it loaded.
    pub problem: Option<String>,
}

/// Load the driver library each manifest names, as the loader would: a bare file name through
/// the linker's search path, a relative path from the manifest's directory.
pub fn check(manifests: &[PathBuf]) -> Vec<DriverCheck> {
    manifests.iter().map(|m| check_one(m)).collect()
}

fn check_one(manifest: &Path) -> DriverCheck {
    let library = match library_path(manifest) {
        Ok(library) => library,
        Err(problem) => {
            return DriverCheck {
                manifest: manifest.into(),
                library: String::new(),
                problem: Some(problem),
            };
        }
    };
    let path = if library.contains('/') && !library.starts_with('/') {
        manifest
            .parent()
            .unwrap_or(Path::new("."))
            .join(&library)
            .into_os_string()
    } else {
        library.clone().into()
    };
    // SAFETY: loading a Vulkan driver runs its initialisers, as the Vulkan loader itself would
    // in this process a moment later; nothing from it is called, and it is unloaded at once.
    let problem = unsafe { libloading::Library::new(&path) }
        .err()
        .map(|e| e.to_string());
    DriverCheck {
        manifest: manifest.into(),
        library,
        problem,
    }
}

fn library_path(manifest: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(manifest).map_err(|e| format!("unreadable: {e}"))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("not a driver manifest: {e}"))?;
    json.pointer("/ICD/library_path")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or_else(|| "not a driver manifest: no ICD.library_path".into())
}

/// One sentence on why there is no Vulkan GPU here, for the log and `/v1/models`.
pub fn explain() -> String {
    // SAFETY: as in `check_one`: the loader library is only loaded and unloaded.
    if let Err(e) = unsafe { libloading::Library::new("libvulkan.so.1") } {
        return format!("the Vulkan loader is not installed ({e})");
    }
    explain_checks(&check(&manifests()))
}

/// [`explain`] for given driver checks.
pub fn explain_checks(checks: &[DriverCheck]) -> String {
    let failed: Vec<String> = checks
        .iter()
        .filter_map(|c| {
            let problem = c.problem.as_deref()?;
            let library = if c.library.is_empty() {
                String::new()
            } else {
                format!(" ({})", c.library)
            };
            Some(format!("{}{library}: {problem}", c.manifest.display()))
        })
        .collect();
    if checks.is_empty() {
        "no Vulkan driver manifest found (VK_DRIVER_FILES, VK_ADD_DRIVER_FILES, vulkan/icd.d \
         under the XDG directories, /usr/local/etc, /etc, /usr/local/share, /usr/share); on \
         NVIDIA the container toolkit must expose the Vulkan ICD"
            .into()
    } else if failed.is_empty() {
        format!(
            "every Vulkan driver loaded ({}) but none offered a GPU; VK_LOADER_DEBUG=error,warn \
             makes the loader say why",
            checks
                .iter()
                .map(|c| c.library.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        format!("Vulkan driver failed to load: {}", failed.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ember-icd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn manifest(dir: &Path, file: &str, library: &str) -> PathBuf {
        let path = dir.join(file);
        let json = serde_json::json!({
            "file_format_version": "1.0.0",
            "ICD": {"library_path": library, "api_version": "1.3.0"},
        });
        std::fs::write(&path, json.to_string()).unwrap();
        path
    }

    #[test]
    fn a_driver_whose_library_does_not_load_is_named_with_the_linkers_reason() {
        let dir = dir("missing");
        let missing = manifest(&dir, "nvidia_icd.json", "libember-missing-driver.so.0");
        let relative = manifest(&dir, "local_icd.json", "./libember-also-missing.so");
        let checks = check(&[missing.clone(), relative]);
        assert_eq!(checks[0].library, "libember-missing-driver.so.0");
        let problem = checks[0].problem.as_deref().unwrap();
        assert!(
            problem.contains("libember-missing-driver.so.0"),
            "{problem}"
        );
        // A relative path is looked for beside the manifest, as the loader does.
        let problem = checks[1].problem.as_deref().unwrap();
        assert!(problem.contains(dir.to_str().unwrap()), "{problem}");

        let said = explain_checks(&checks);
        assert!(said.starts_with("Vulkan driver failed to load: "), "{said}");
        assert!(said.contains(missing.to_str().unwrap()), "{said}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_driver_that_loads_is_not_blamed() {
        let dir = dir("loads");
        let fine = manifest(&dir, "c_icd.json", "libc.so.6");
        let broken = dir.join("broken_icd.json");
        std::fs::write(&broken, "{\"ICD\": {}}").unwrap();
        let checks = check(&[fine, broken]);
        assert_eq!(checks[0].problem, None);
        assert!(
            checks[1]
                .problem
                .as_deref()
                .unwrap()
                .contains("library_path")
        );
        let said = explain_checks(&checks[..1]);
        assert!(
            said.contains("libc.so.6") && said.contains("VK_LOADER_DEBUG"),
            "{said}"
        );
        assert!(explain_checks(&[]).contains("no Vulkan driver manifest"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn manifests_come_from_vk_driver_files_or_the_standard_directories() {
        let dir = dir("search");
        let icd_d = dir.join("vulkan/icd.d");
        std::fs::create_dir_all(&icd_d).unwrap();
        let b = manifest(&icd_d, "b.json", "libb.so");
        let a = manifest(&icd_d, "a.json", "liba.so");
        std::fs::write(icd_d.join("notes.txt"), "not a manifest").unwrap();
        let single = manifest(&dir, "single.json", "libs.so");

        let standard = vec![dir.join("nonexistent"), icd_d.clone()];
        assert_eq!(
            manifests_from(None, None, standard.clone()),
            vec![a.clone(), b.clone()]
        );
        let listed = format!("{}:{}", single.display(), icd_d.display());
        assert_eq!(
            manifests_from(Some(listed), None, standard.clone()),
            vec![single.clone(), a.clone(), b.clone()]
        );
        // VK_ADD_DRIVER_FILES comes first and adds to the standard places; VK_DRIVER_FILES
        // replaces both.
        let added = Some(single.display().to_string());
        assert_eq!(
            manifests_from(None, added.clone(), standard.clone()),
            vec![single.clone(), a.clone(), b.clone()]
        );
        assert_eq!(
            manifests_from(Some(icd_d.display().to_string()), added, standard),
            vec![a, b]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_standard_directories_are_the_loaders_in_its_order() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let dirs = |pairs| -> Vec<String> {
            standard_dirs(env(pairs))
                .iter()
                .map(|d| d.display().to_string())
                .collect()
        };
        assert_eq!(
            dirs(&[("HOME", "/home/u")]),
            [
                "/home/u/.config/vulkan/icd.d",
                "/etc/xdg/vulkan/icd.d",
                "/usr/local/etc/vulkan/icd.d",
                "/etc/vulkan/icd.d",
                "/home/u/.local/share/vulkan/icd.d",
                "/usr/local/share/vulkan/icd.d",
                "/usr/share/vulkan/icd.d",
            ]
        );
        assert_eq!(
            dirs(&[
                ("XDG_CONFIG_HOME", "/c"),
                ("XDG_CONFIG_DIRS", "/x:/y"),
                ("XDG_DATA_HOME", "/d"),
                ("XDG_DATA_DIRS", "/opt/share"),
            ]),
            [
                "/c/vulkan/icd.d",
                "/x/vulkan/icd.d",
                "/y/vulkan/icd.d",
                "/usr/local/etc/vulkan/icd.d",
                "/etc/vulkan/icd.d",
                "/d/vulkan/icd.d",
                "/opt/share/vulkan/icd.d",
            ]
        );
    }
}
