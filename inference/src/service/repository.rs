//! The model repository at run time: which versions of each model compiled in from ONNX are
//! loaded, which one answers a request that names none, and loading and unloading them while
//! the server serves (Triton's model repository extension, in explicit model control).
//!
//! A version being loaded is read, checked (sha256, graph, shapes) and warmed up on its own
//! inference threads before the swap that lets requests reach it, so a load that fails leaves
//! what is served untouched. A version taken out of service is drained: the swap stops new
//! requests from finding it, and the unload returns once every request holding it has its
//! answer and its threads have stopped. Loads and unloads run one at a time.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use super::errors::WarmUpError;
use super::imported::{ImportedService, ImportedSettings, ImportedStartError};
use super::lookup::{ModelLookupError, protocol_version};
use super::traffic::{Routes, Shadow, Traffic};
use crate::metrics as m;
use ember_model::imported::{Available, ImportedError, available, catalogue};
use ember_model::versions::{VersionPolicy, is_version_name, resolve_version};
use ember_model::{Device, ModelConfig};

/// What the policy of one model says, as flags or the repository API set it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelPolicy {
    pub versions: VersionPolicy,
    /// The version answering requests that name none (absent: the newest loaded).
    pub default_version: Option<String>,
    /// How those requests are shared out: canaries, a shadow.
    pub traffic: Traffic,
}

/// The versions of one model that serve, newest first, swapped whole.
#[derive(Default)]
struct Serving {
    versions: Vec<Arc<ImportedService>>,
    /// Index into `versions` of the one unversioned requests meet, less the canaries' share.
    default: usize,
    routes: Routes,
}

impl Serving {
    /// The versions loaded, as the policy `policy` shares requests among them.
    fn new(versions: Vec<Arc<ImportedService>>, policy: &ModelPolicy) -> Result<Self, String> {
        let numbers = semvers(&versions);
        let default = default_index(&numbers, policy);
        let routes = Routes::resolve(&numbers, default, &policy.traffic)?;
        Ok(Self {
            versions,
            default,
            routes,
        })
    }
}

fn semvers(versions: &[Arc<ImportedService>]) -> Vec<semver::Version> {
    versions
        .iter()
        .filter_map(|s| semver::Version::parse(s.version()).ok())
        .collect()
}

/// One model of the repository.
pub struct RepositoryModel {
    /// config.json as compiled in (its `version` the bundled weights').
    config: ModelConfig,
    serving: RwLock<Arc<Serving>>,
    policy: Mutex<ModelPolicy>,
    /// The policy the flags gave: what a config override starts from (it replaces the
    /// model's config, as Triton's does, rather than adding to the last one).
    configured: ModelPolicy,
    /// Unloaded through the API: the server's readiness no longer waits for it.
    unloaded: Mutex<bool>,
    /// Why the last load failed, until one succeeds.
    last_error: Mutex<Option<String>>,
    /// Spreads unkeyed requests over the traffic split.
    draws: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RepositoryModel {
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// config.json as compiled in.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn serving(&self) -> Arc<Serving> {
        self.serving
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn swap(&self, next: Serving) -> Arc<Serving> {
        let mut serving = self.serving.write().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *serving, Arc::new(next))
    }

    /// The loaded versions, newest first.
    pub fn versions(&self) -> Vec<Arc<ImportedService>> {
        self.serving().versions.clone()
    }

    /// The version a request means: `version` if given and not empty (a full semantic
    /// version, or a major for that major's newest loaded version), else the default.
    pub fn find(&self, version: Option<&str>) -> Result<Arc<ImportedService>, ModelLookupError> {
        let serving = self.serving();
        if serving.versions.is_empty() {
            return Err(ModelLookupError::Unavailable {
                model: self.name().to_string(),
            });
        }
        let found = match version.filter(|v| !v.is_empty()) {
            None => serving.versions.get(serving.default),
            Some(asked) => {
                let loaded = serving.versions.iter().map(|s| &s.model.config().version);
                let parsed: Vec<semver::Version> = loaded
                    .filter_map(|v| semver::Version::parse(v).ok())
                    .collect();
                resolve_version(asked, &parsed).and_then(|want| {
                    serving
                        .versions
                        .iter()
                        .find(|s| s.version() == want.to_string())
                })
            }
        };
        found
            .cloned()
            .ok_or_else(|| ModelLookupError::UnknownVersion {
                asked: version.unwrap_or_default().to_string(),
                model: self.name().to_string(),
                loaded: serving
                    .versions
                    .iter()
                    .map(|s| s.version().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The version an inference request that names none meets, as the traffic split and its
    /// sticky `key` (if any) decide, and the shadow version it is also sent to, if any.
    pub fn route(
        &self,
        key: Option<&str>,
    ) -> Result<(Arc<ImportedService>, Option<Shadow>), ModelLookupError> {
        let serving = self.serving();
        let unavailable = || ModelLookupError::Unavailable {
            model: self.name().to_string(),
        };
        let (serve, shadow) = serving.routes.pick(serving.default, key, &self.draws);
        let serve = serving
            .versions
            .get(serve)
            .cloned()
            .ok_or_else(unavailable)?;
        let shadow = shadow
            .and_then(|i| serving.versions.get(i).cloned())
            .map(Shadow::new);
        Ok((serve, shadow))
    }

    /// The protocol's names of the loaded versions (their majors, newest first, once each).
    pub fn protocol_versions(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for service in &self.serving().versions {
            let major = protocol_version(service.version()).to_string();
            if !names.contains(&major) {
                names.push(major);
            }
        }
        names
    }

    /// Every loaded version warmed up, or the model unloaded on purpose.
    pub fn is_ready(&self) -> bool {
        let serving = self.serving();
        if serving.versions.is_empty() {
            return *lock(&self.unloaded);
        }
        serving.versions.iter().all(|s| s.is_warm())
    }

    /// The policy now in force.
    pub fn policy(&self) -> ModelPolicy {
        lock(&self.policy).clone()
    }

    /// The policy the flags gave.
    pub fn configured_policy(&self) -> &ModelPolicy {
        &self.configured
    }
}

/// One row of the repository index (Triton's `RepositoryIndex`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub name: String,
    pub version: String,
    /// `READY` or `UNAVAILABLE`, as Triton spells them.
    pub state: &'static str,
    pub reason: String,
}

/// Why a repository call did nothing; what is served is as it was.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    #[error(transparent)]
    Lookup(#[from] ModelLookupError),
    #[error(
        "{0} is the built-in model: its weights are read at start (--weights), not through the repository API"
    )]
    BuiltIn(String),
    #[error("{0}")]
    Config(String),
    #[error("model {model}: {reason}")]
    Policy { model: String, reason: String },
    #[error("model {model}: {source}")]
    Weights {
        model: String,
        source: Box<ImportedError>,
    },
    #[error(
        "model {model}: loading {versions} needs {needed} bytes of weights; {used} of the {budget}-byte budget (--memory-budget) are in use"
    )]
    Budget {
        model: String,
        versions: String,
        needed: u64,
        used: u64,
        budget: u64,
    },
    #[error("model {model} {version}: {source}")]
    Start {
        model: String,
        version: String,
        source: Box<ImportedStartError>,
    },
    #[error("model {model} {version}: warm-up failed: {source}")]
    WarmUp {
        model: String,
        version: String,
        source: WarmUpError,
    },
}

impl RepositoryError {
    /// Whether the caller named something that is not there (404) rather than asked for
    /// something that cannot be done (400).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Lookup(_))
    }

    /// Whether the load was refused for --memory-budget.
    pub fn is_over_budget(&self) -> bool {
        matches!(self, Self::Budget { .. })
    }
}

/// What a load or an unload changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub model: String,
    /// Versions that began serving, newest first.
    pub loaded: Vec<String>,
    /// Versions taken out of service and drained.
    pub unloaded: Vec<String>,
    /// The version unversioned requests now meet (none once unloaded).
    pub default_version: Option<String>,
}

/// Every model compiled in from ONNX, with the versions each serves (none by default: a
/// service built for the digits model alone).
#[derive(Default)]
pub struct ModelRepository {
    models: Vec<Arc<RepositoryModel>>,
    device: Device,
    settings: ImportedSettings,
    /// Most bytes of weights loaded at once, every model's versions together.
    budget: Option<u64>,
    /// Bytes of weights outside the repository (the digits model), counted in the budget.
    fixed_bytes: u64,
    /// Loads and unloads run one at a time, so two never decide from the same state.
    control: tokio::sync::Mutex<()>,
    sticky_header: Option<String>,
}

/// How the repository starts.
#[derive(Debug, Clone, Default)]
pub struct RepositoryOptions {
    /// The policy of every model not named in `policies`.
    pub policy: ModelPolicy,
    /// Per model, by name.
    pub policies: Vec<(String, ModelPolicy)>,
    pub budget: Option<u64>,
    pub fixed_bytes: u64,
    /// The request header whose value keeps a client on one version of a split.
    pub sticky_header: Option<String>,
}

impl ModelRepository {
    /// Load every model compiled in, each with the versions its policy selects, and start
    /// their queues (ready after [`Self::warm_up`]). Blocking.
    pub fn start(
        device: &Device,
        settings: ImportedSettings,
        options: RepositoryOptions,
    ) -> Result<Self, RepositoryError> {
        let configs = catalogue().map_err(|source| RepositoryError::Weights {
            model: "?".into(),
            source: Box::new(source),
        })?;
        for (name, _) in &options.policies {
            if !configs.iter().any(|c| &c.name == name) {
                return Err(ModelLookupError::UnknownModel {
                    asked: name.clone(),
                    served: names(&configs),
                }
                .into());
            }
        }
        let mut repository = Self {
            models: Vec::new(),
            device: device.clone(),
            settings,
            budget: options.budget,
            fixed_bytes: options.fixed_bytes,
            control: tokio::sync::Mutex::new(()),
            sticky_header: options.sticky_header.clone(),
        };
        for config in configs {
            let policy = options
                .policies
                .iter()
                .find(|(name, _)| *name == config.name)
                .map_or_else(|| options.policy.clone(), |(_, p)| p.clone());
            let model = Arc::new(RepositoryModel {
                config,
                serving: RwLock::default(),
                policy: Mutex::new(policy.clone()),
                configured: policy.clone(),
                unloaded: Mutex::new(false),
                last_error: Mutex::new(None),
                draws: AtomicU64::new(0),
            });
            let chosen = repository.choose(&model, &policy)?;
            repository.check_budget(&model, &chosen)?;
            let mut started = Vec::new();
            for version in &chosen {
                started.push(repository.start_version(&model, version)?);
            }
            let serving =
                Serving::new(started, &policy).map_err(|reason| RepositoryError::Policy {
                    model: model.name().to_string(),
                    reason,
                })?;
            model.swap(serving);
            repository.publish(&model);
            repository.models.push(model);
        }
        Ok(repository)
    }

    /// The request header (lower case) that keeps a client on one version of a split.
    pub fn sticky_header(&self) -> Option<&str> {
        self.sticky_header.as_deref()
    }

    pub fn models(&self) -> &[Arc<RepositoryModel>] {
        &self.models
    }

    /// The model `name`, if it is one of the repository's.
    pub fn model(&self, name: &str) -> Option<&Arc<RepositoryModel>> {
        self.models.iter().find(|m| m.name() == name)
    }

    /// Every loaded version of every model.
    pub fn services(&self) -> Vec<Arc<ImportedService>> {
        self.models.iter().flat_map(|m| m.versions()).collect()
    }

    /// Every model ready ([`RepositoryModel::is_ready`]).
    pub fn is_ready(&self) -> bool {
        self.models.iter().all(|m| m.is_ready())
    }

    /// Warm up every version loaded at start.
    pub async fn warm_up(&self) -> Result<(), WarmUpError> {
        for service in self.services() {
            service
                .warm_up()
                .await
                .map_err(|source| WarmUpError::Imported {
                    model: format!("{} {}", service.name(), service.version()),
                    source: Box::new(source),
                })?;
        }
        Ok(())
    }

    /// Bytes of weights loaded now, the fixed ones included.
    pub fn weights_bytes(&self) -> u64 {
        self.fixed_bytes
            + self
                .services()
                .iter()
                .map(|s| s.model.weights_bytes())
                .sum::<u64>()
    }

    /// Every version of every model there is: loaded ones `READY`, the others `UNAVAILABLE`
    /// with the reason.
    pub fn index(&self) -> Vec<IndexEntry> {
        let mut entries = Vec::new();
        for model in &self.models {
            let loaded: Vec<String> = model
                .versions()
                .iter()
                .map(|s| s.version().to_string())
                .collect();
            let mut versions = match available(model.name(), &self.settings.repository) {
                Ok(found) => found.into_iter().map(|a| a.version.to_string()).collect(),
                Err(e) => {
                    entries.push(IndexEntry {
                        name: model.name().to_string(),
                        version: String::new(),
                        state: "UNAVAILABLE",
                        reason: e.to_string(),
                    });
                    Vec::new()
                }
            };
            for v in &loaded {
                if !versions.contains(v) {
                    versions.push(v.clone());
                }
            }
            let policy = model.policy();
            let failed = lock(&model.last_error).clone();
            for version in versions {
                let ready = loaded.contains(&version);
                let reason = if ready {
                    String::new()
                } else if *lock(&model.unloaded) {
                    "unloaded".into()
                } else if let Some(e) = &failed {
                    format!("the last load failed: {e}")
                } else {
                    format!("not selected by the version policy {}", policy.versions)
                };
                entries.push(IndexEntry {
                    name: model.name().to_string(),
                    version,
                    state: if ready { "READY" } else { "UNAVAILABLE" },
                    reason,
                });
            }
        }
        entries
    }

    /// Load model `name` as `policy` (or its policy now) asks: versions it selects that are
    /// not loaded are read, checked and warmed up, then every change is swapped in at once,
    /// and the versions it no longer selects are drained and stopped. On any error nothing
    /// changes.
    pub async fn load(
        &self,
        name: &str,
        policy: Option<ModelPolicy>,
    ) -> Result<Change, RepositoryError> {
        let _one_at_a_time = self.control.lock().await;
        self.load_in_turn(name, policy).await
    }

    /// [`Self::load`]'s work, for a caller that holds `control`.
    async fn load_in_turn(
        &self,
        name: &str,
        policy: Option<ModelPolicy>,
    ) -> Result<Change, RepositoryError> {
        let model = self.find_model(name)?;
        let policy = policy.unwrap_or_else(|| model.policy());
        let result = self.swap_in(model, &policy).await;
        let outcome = match &result {
            Ok(_) => {
                *lock(&model.policy) = policy;
                *lock(&model.last_error) = None;
                *lock(&model.unloaded) = false;
                "loaded"
            }
            Err(e) => {
                tracing::warn!(model = name, error = %e, "model load failed: the versions served are unchanged");
                *lock(&model.last_error) = Some(e.to_string());
                "failed"
            }
        };
        metrics::counter!(m::MODEL_LOADS, "model" => name.to_string(), "outcome" => outcome)
            .increment(1);
        let (swapped, change) = result?;
        self.publish(model);
        let change = Change {
            loaded: change.loaded,
            ..self.drain(model, swapped).await
        };
        tracing::info!(model = name, loaded = ?change.loaded, unloaded = ?change.unloaded,
            default = ?change.default_version, "model loaded");
        Ok(change)
    }

    /// Load every model again as its policy says (`load` without a config), so version
    /// directories added or removed since are picked up; models unloaded through the API stay
    /// unloaded. Returns how many loads failed (each logged and counted by `load`).
    pub async fn rescan(&self) -> usize {
        let mut failed = 0;
        for model in &self.models {
            // Checked in turn with loads and unloads, so an unload through the API that lands
            // during a re-scan is not undone by it.
            let _one_at_a_time = self.control.lock().await;
            if *lock(&model.unloaded) {
                continue;
            }
            if self.load_in_turn(model.name(), None).await.is_err() {
                failed += 1;
            }
        }
        failed
    }

    /// Take every version of `name` out of service, then drain and stop them.
    pub async fn unload(&self, name: &str) -> Result<Change, RepositoryError> {
        let _one_at_a_time = self.control.lock().await;
        let model = self.find_model(name)?;
        *lock(&model.unloaded) = true;
        let previous = model.swap(Serving::default());
        self.publish(model);
        let change = self.drain(model, previous).await;
        tracing::info!(model = name, unloaded = ?change.unloaded, "model unloaded");
        Ok(change)
    }

    /// Model `name`, or an error naming the models there are.
    pub fn find_model(&self, name: &str) -> Result<&Arc<RepositoryModel>, RepositoryError> {
        self.model(name).ok_or_else(|| {
            ModelLookupError::NotInRepository {
                asked: name.to_string(),
                there: self
                    .models
                    .iter()
                    .map(|m| m.name())
                    .collect::<Vec<_>>()
                    .join("', '"),
            }
            .into()
        })
    }

    /// The versions `policy` selects among those on disk, newest first.
    fn choose(
        &self,
        model: &RepositoryModel,
        policy: &ModelPolicy,
    ) -> Result<Vec<Available>, RepositoryError> {
        let there = available(model.name(), &self.settings.repository).map_err(|source| {
            RepositoryError::Weights {
                model: model.name().to_string(),
                source: Box::new(source),
            }
        })?;
        let numbers: Vec<_> = there.iter().map(|a| a.version.clone()).collect();
        let policy_error = |reason| RepositoryError::Policy {
            model: model.name().to_string(),
            reason,
        };
        let chosen = policy.versions.select(&numbers).map_err(policy_error)?;
        if chosen.is_empty() {
            return Err(policy_error("there is no version to load".into()));
        }
        if let Some(default) = &policy.default_version
            && resolve_version(default, &chosen).is_none()
        {
            return Err(policy_error(format!(
                "the default version {default} is not among the versions the policy {} loads",
                policy.versions
            )));
        }
        // The split and the shadow must fit the versions chosen, before anything is loaded.
        Routes::resolve(&chosen, default_index(&chosen, policy), &policy.traffic)
            .map_err(policy_error)?;
        Ok(chosen
            .iter()
            .filter_map(|v| there.iter().find(|a| a.version == *v).cloned())
            .collect())
    }

    fn check_budget(
        &self,
        model: &RepositoryModel,
        adding: &[Available],
    ) -> Result<(), RepositoryError> {
        let Some(budget) = self.budget else {
            return Ok(());
        };
        let needed: u64 = adding.iter().map(|a| a.weights_bytes).sum();
        let used = self.weights_bytes();
        if used + needed > budget {
            return Err(RepositoryError::Budget {
                model: model.name().to_string(),
                versions: adding
                    .iter()
                    .map(|a| a.version.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                needed,
                used,
                budget,
            });
        }
        Ok(())
    }

    fn start_version(
        &self,
        model: &RepositoryModel,
        version: &Available,
    ) -> Result<Arc<ImportedService>, RepositoryError> {
        ImportedService::start(model.name(), version, &self.device, &self.settings).map_err(
            |source| RepositoryError::Start {
                model: model.name().to_string(),
                version: version.version.to_string(),
                source: Box::new(source),
            },
        )
    }

    /// Start and warm the versions `policy` adds, then swap. Returns what was serving before
    /// the swap and the versions added.
    async fn swap_in(
        &self,
        model: &RepositoryModel,
        policy: &ModelPolicy,
    ) -> Result<(Arc<Serving>, Change), RepositoryError> {
        let chosen = self.choose(model, policy)?;
        let current = model.serving();
        let loaded = |v: &semver::Version| {
            current
                .versions
                .iter()
                .any(|s| s.version() == v.to_string())
        };
        let adding: Vec<Available> = chosen
            .iter()
            .filter(|a| !loaded(&a.version))
            .cloned()
            .collect();
        self.check_budget(model, &adding)?;
        let mut added = Vec::new();
        for version in &adding {
            // Reading and checking the weights blocks; the inference threads warm up on their
            // own threads, beside serving.
            let (name, v, device, settings) = (
                model.name().to_string(),
                version.clone(),
                self.device.clone(),
                self.settings.clone(),
            );
            let service = tokio::task::spawn_blocking(move || {
                ImportedService::start(&name, &v, &device, &settings)
            })
            .await
            .map_err(|e| RepositoryError::Config(format!("loading panicked: {e}")))?
            .map_err(|source| RepositoryError::Start {
                model: model.name().to_string(),
                version: version.version.to_string(),
                source: Box::new(source),
            })?;
            service
                .warm_up()
                .await
                .map_err(|source| RepositoryError::WarmUp {
                    model: model.name().to_string(),
                    version: version.version.to_string(),
                    source,
                })?;
            added.push(service);
        }
        let mut next: Vec<Arc<ImportedService>> = chosen
            .iter()
            .filter_map(|a| {
                let v = a.version.to_string();
                current
                    .versions
                    .iter()
                    .chain(&added)
                    .find(|s| s.version() == v)
                    .cloned()
            })
            .collect();
        next.sort_by_key(|s| std::cmp::Reverse(semver::Version::parse(s.version()).ok()));
        let next = Serving::new(next, policy).map_err(|reason| RepositoryError::Policy {
            model: model.name().to_string(),
            reason,
        })?;
        let change = Change {
            model: model.name().to_string(),
            loaded: added.iter().map(|s| s.version().to_string()).collect(),
            unloaded: Vec::new(),
            default_version: next
                .versions
                .get(next.default)
                .map(|s| s.version().to_string()),
        };
        let previous = model.swap(next);
        Ok((previous, change))
    }

    /// Wait until no request holds a version `previous` served that is no longer served,
    /// then stop its threads.
    async fn drain(&self, model: &RepositoryModel, previous: Arc<Serving>) -> Change {
        let now = model.serving();
        let gone: Vec<Arc<ImportedService>> = previous
            .versions
            .iter()
            .filter(|s| !now.versions.iter().any(|n| Arc::ptr_eq(n, s)))
            .cloned()
            .collect();
        drop(previous);
        let mut unloaded = Vec::new();
        for service in gone {
            let version = service.version().to_string();
            let deadline = Instant::now() + self.settings.drain_timeout;
            // Every request that found this version holds it until it has its answer.
            while Arc::strong_count(&service) > 1 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            if Arc::strong_count(&service) > 1 {
                tracing::warn!(model = model.name(), version, timeout = ?self.settings.drain_timeout,
                    "requests still hold the unloaded version; its threads stop once they finish");
            }
            let threads = service.take_threads();
            drop(service);
            let _ = tokio::task::spawn_blocking(move || {
                for thread in threads {
                    let _ = thread.join();
                }
            })
            .await;
            metrics::gauge!(m::MODEL_LOADED, "model" => model.name().to_string(), "version" => version.clone())
                .set(0.0);
            metrics::gauge!(m::MODEL_WEIGHTS_BYTES, "model" => model.name().to_string(), "version" => version.clone())
                .set(0.0);
            unloaded.push(version);
        }
        Change {
            model: model.name().to_string(),
            loaded: Vec::new(),
            unloaded,
            default_version: now
                .versions
                .get(now.default)
                .map(|s| s.version().to_string()),
        }
    }

    /// The loaded-version gauges of `model`.
    fn publish(&self, model: &RepositoryModel) {
        for service in model.versions() {
            let (name, version) = (model.name().to_string(), service.version().to_string());
            metrics::gauge!(m::MODEL_LOADED, "model" => name.clone(), "version" => version.clone())
                .set(1.0);
            metrics::gauge!(m::MODEL_WEIGHTS_BYTES, "model" => name, "version" => version)
                .set(service.model.weights_bytes() as f64);
        }
    }
}

/// Where in `numbers` (newest first) the policy's default version is; the newest without one.
fn default_index(numbers: &[semver::Version], policy: &ModelPolicy) -> usize {
    let Some(default) = &policy.default_version else {
        return 0;
    };
    resolve_version(default, numbers)
        .and_then(|want| numbers.iter().position(|v| v == want))
        .unwrap_or(0)
}

fn names(configs: &[ModelConfig]) -> String {
    configs
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join("', '")
}

/// Triton's load API can carry model files (`parameters["file:<version>/<name>"]`); weights
/// come only from the repository here, so a load that sends one is refused, naming it.
pub fn refuse_uploads<'a>(
    parameters: impl IntoIterator<Item = &'a String>,
) -> Result<(), RepositoryError> {
    match parameters.into_iter().find(|k| k.starts_with("file:")) {
        Some(file) => Err(RepositoryError::Config(format!(
            "parameters.{file}: weights are not uploaded through the API; put the version directory in the model repository and load again"
        ))),
        None => Ok(()),
    }
}

/// A Triton model configuration as the load API carries it (`parameters.config`, a JSON
/// string): only its `version_policy`, and ember's `default_version`, `traffic` (canary
/// shares, `{"1.1.0": 10}`) and `shadow` (`{"version": "1.1.0", "percent": 10}`), can change at
/// run time; anything else is refused rather than silently ignored.
pub fn policy_from_config(
    text: &str,
    current: &ModelPolicy,
) -> Result<ModelPolicy, RepositoryError> {
    let bad = |reason: String| RepositoryError::Config(format!("parameters.config: {reason}"));
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let object = value
        .as_object()
        .ok_or_else(|| bad("is not a JSON object".into()))?;
    let mut policy = current.clone();
    for (key, field) in object {
        match key.as_str() {
            // Triton's clients send the model's own name back; anything else is another model.
            "name" if field.as_str().is_some() => {}
            "version_policy" => policy.versions = parse_version_policy(field).map_err(bad)?,
            "traffic" => {
                let shares = field.as_object().ok_or_else(|| {
                    bad(format!(
                        "traffic {field} is not an object of version: percent"
                    ))
                })?;
                policy.traffic.canary = shares
                    .iter()
                    .map(|(version, percent)| match percent.as_f64() {
                        Some(p) if is_version_name(version) => Ok((version.clone(), p)),
                        _ => Err(bad(format!(
                            "traffic: {version:?}: {percent} is not a version and a percentage"
                        ))),
                    })
                    .collect::<Result<_, _>>()?;
            }
            "shadow" => {
                let version = field.get("version").and_then(version_name);
                let percent = field.get("percent").and_then(serde_json::Value::as_f64);
                policy.traffic.shadow = match (field, version, percent) {
                    (serde_json::Value::Null, _, _) => None,
                    (_, Some(version), Some(percent)) => Some((version, percent)),
                    _ => {
                        return Err(bad(format!(
                            "shadow {field} is not {{\"version\": V, \"percent\": P}}"
                        )));
                    }
                };
            }
            "default_version" => {
                let name = version_name(field).ok_or_else(|| {
                    bad(format!(
                        "default_version {field} is not a version (1.2.0, or a major)"
                    ))
                })?;
                policy.default_version = Some(name);
            }
            other => {
                return Err(bad(format!(
                    "{other:?} cannot be changed at run time (only version_policy, default_version, traffic and shadow); it is compiled in from config.json"
                )));
            }
        }
    }
    Ok(policy)
}

/// Triton's JSON `version_policy`: `{"latest": {"num_versions": N}}`, `{"all": {}}` or
/// `{"specific": {"versions": [..]}}`.
fn parse_version_policy(field: &serde_json::Value) -> Result<VersionPolicy, String> {
    let shape = || {
        format!(
            "version_policy {field} is not one of {{\"latest\":{{\"num_versions\":N}}}}, {{\"all\":{{}}}}, {{\"specific\":{{\"versions\":[..]}}}}"
        )
    };
    let object = field
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or_else(shape)?;
    let (kind, body) = object.iter().next().ok_or_else(shape)?;
    match kind.as_str() {
        "all" => Ok(VersionPolicy::All),
        "latest" => match body.get("num_versions").and_then(serde_json::Value::as_u64) {
            Some(n) if n > 0 => Ok(VersionPolicy::Latest(n as usize)),
            _ => Err(shape()),
        },
        "specific" => {
            let versions = body
                .get("versions")
                .and_then(serde_json::Value::as_array)
                .filter(|v| !v.is_empty())
                .ok_or_else(shape)?;
            versions
                .iter()
                .map(|v| {
                    version_name(v)
                        .ok_or_else(|| format!("{v} is not a version (1.2.0, or a major)"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(VersionPolicy::Specific)
        }
        _ => Err(shape()),
    }
}

/// A version as JSON spells it: a string, or a number (Triton's int64 versions: a major).
fn version_name(value: &serde_json::Value) -> Option<String> {
    let name = match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.as_u64()?.to_string(),
        _ => return None,
    };
    is_version_name(&name).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_triton_config_changes_only_the_version_policy_and_default() {
        let now = ModelPolicy::default();
        let p = policy_from_config(
            r#"{"version_policy":{"specific":{"versions":[1,"1.1.0"]}}}"#,
            &now,
        )
        .unwrap();
        assert_eq!(
            p.versions,
            VersionPolicy::Specific(vec!["1".into(), "1.1.0".into()])
        );
        let p = policy_from_config(
            r#"{"name":"x","version_policy":{"latest":{"num_versions":2}},"default_version":"1.0.0"}"#,
            &now,
        )
        .unwrap();
        assert_eq!(
            (p.versions, p.default_version.as_deref()),
            (VersionPolicy::Latest(2), Some("1.0.0"))
        );
        assert_eq!(
            policy_from_config(r#"{"version_policy":{"all":{}}}"#, &now)
                .unwrap()
                .versions,
            VersionPolicy::All
        );
        let p = policy_from_config(
            r#"{"traffic":{"1.1.0":10,"2":2.5},"shadow":{"version":"1.2.0","percent":10}}"#,
            &now,
        )
        .unwrap();
        assert_eq!(
            p.traffic.canary,
            [("1.1.0".into(), 10.0), ("2".into(), 2.5)]
        );
        assert_eq!(p.traffic.shadow, Some(("1.2.0".into(), 10.0)));
        for bad in [
            r#"{"traffic":[10]}"#,
            r#"{"traffic":{"x":10}}"#,
            r#"{"shadow":{"version":"1.1.0"}}"#,
            "not json",
            "[]",
            r#"{"max_batch_size":8}"#,
            r#"{"version_policy":{"latest":{"num_versions":0}}}"#,
            r#"{"version_policy":{"specific":{"versions":["../x"]}}}"#,
            r#"{"version_policy":{"all":{},"latest":{"num_versions":1}}}"#,
            r#"{"default_version":"newest"}"#,
        ] {
            let e = policy_from_config(bad, &now).unwrap_err();
            assert!(
                e.to_string().starts_with("parameters.config: "),
                "{bad}: {e}"
            );
        }
    }
}
