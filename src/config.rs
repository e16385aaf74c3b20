//! Command-line flags, each with an `EMBER_*` environment fallback.
//!
//! Parsed once in `main` and handed down; nothing else reads the environment.

use secrecy::{ExposeSecret, SecretString};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use ember_model::DeviceChoice;
use ember_model::versions::{VersionPolicy, is_version_name};

pub(crate) use ember_inference::BucketSpec;

/// ember-serve: an 8×8 digit classifier (burn CNN) behind an HTTP API with OpenAPI docs
/// (`/docs`) and Prometheus metrics (`/metrics`).
#[derive(Debug, Clone, Parser)]
#[command(name = "ember-serve", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Probe a running server's /health/ready and exit 0 if it is ready (for container
    /// HEALTHCHECKs in images without a shell or curl).
    Healthcheck {
        /// URL to probe.
        #[arg(
            long,
            env = "EMBER_HEALTHCHECK_URL",
            default_value = "http://127.0.0.1:8080/health/ready"
        )]
        url: String,
        /// Give up after this long, e.g. `2s`.
        #[arg(long, default_value = "2s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Print the version, the Cargo features compiled in, the architecture this binary was
    /// built for and the machine it is running on (`uname -m`).
    Version,
}

/// Settings of the HTTP server and the inference queue.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "EMBER_HOST", default_value = "0.0.0.0")]
    pub(crate) host: std::net::IpAddr,
    /// Port to listen on (0 picks a free one and logs it).
    #[arg(long, env = "EMBER_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Port for KServe V2 over gRPC (`inference.GRPCInferenceService`, with gRPC health checking
    /// and reflection); 0 turns gRPC off.
    #[arg(long, env = "EMBER_GRPC_PORT", default_value_t = 8081)]
    pub grpc_port: u16,
    /// Directory holding manifest.json and the safetensors file it names.
    #[arg(long, env = "EMBER_WEIGHTS", default_value = "weights")]
    pub(crate) weights: PathBuf,
    /// Device to run the model on: `auto` prefers a hardware GPU adapter and falls back to the CPU.
    #[arg(long, env = "EMBER_DEVICE", value_enum, default_value_t = DeviceArg::Auto)]
    pub(crate) device: DeviceArg,
    /// Most inputs in one request, and in one forward pass. Default: 64 on the CPU backends,
    /// 4096 on a GPU (which gains most from large batches: send them as binary V2 tensors).
    #[arg(long, env = "EMBER_MAX_BATCH", value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub(crate) max_batch: Option<u32>,
    /// Batch sizes forward passes are padded up to, each run once before readiness so no request
    /// waits for a GPU kernel compile: `pow2` (1, 2, 4, … up to --max-batch), a list such as
    /// `1,8,64` (--max-batch is always added), or `none`. Default (`auto`): `pow2` on a GPU,
    /// `none` on the CPU backends, which compile nothing and would only compute the padding.
    #[arg(long, env = "EMBER_BATCH_BUCKETS", default_value = "auto")]
    pub(crate) batch_buckets: BucketSpec,
    /// On a GPU, requests with fewer inputs than this run on CPU inference threads (one per
    /// core) beside the GPU's, which on this model serve single inputs and small batches
    /// faster; `0`: every request on the GPU. Default: 256 on a hardware GPU, none on a software
    /// renderer or the CPU backends. A small request finding the CPU lane's queue full goes to
    /// the GPU's.
    #[arg(long, env = "EMBER_CPU_LANE_BELOW", value_parser = clap::value_parser!(u32).range(0..=65536))]
    pub(crate) cpu_lane_below: Option<u32>,
    /// How long a forward pass may wait for more inputs before it starts, while callers that
    /// no inference thread holds yet are in flight (a lone request never waits). `0ms`: batch
    /// only what is already queued; measured best on the CPU backends and on an H100 alike.
    #[arg(long, env = "EMBER_BATCH_WAIT", default_value = "0ms", value_parser = parse_duration)]
    pub(crate) batch_wait: Duration,
    /// Most requests waiting in the inference queue; more get 503 with Retry-After.
    #[arg(long, env = "EMBER_MAX_QUEUE", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_queue: u32,
    /// Inference threads. Default: one per available core on the CPU backends; 4 on a GPU, so
    /// several passes are in flight (one uploads while another computes or reads back).
    #[arg(long, env = "EMBER_WORKERS", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub(crate) workers: Option<u32>,
    /// On a GPU, how many devices to open on its adapter, each with its own command queue, and
    /// spread the inference threads over (like Triton's instance count): every launch, upload
    /// and readback of one device goes through a single submission thread, which several
    /// devices do not share. Each device compiles its own kernels during warm-up. Ignored on the
    /// CPU backends.
    #[arg(long, env = "EMBER_GPU_QUEUES", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub(crate) gpu_queues: u32,
    /// Give up on a queued request after this long with 504 (`0s`: wait as long as it takes).
    /// A request that times out before its forward pass started is dropped from the batch.
    #[arg(long, env = "EMBER_REQUEST_TIMEOUT", default_value = "0s", value_parser = parse_duration)]
    pub(crate) request_timeout: Duration,
    /// Largest accepted request body, in bytes. Default: room for --max-batch inputs as JSON,
    /// at least 1 MiB (1 MiB at the CPU default of 64 inputs, 4 MiB at 4096).
    #[arg(long, env = "EMBER_BODY_LIMIT")]
    pub(crate) body_limit: Option<usize>,
    /// How long readiness reports 503 after SIGTERM/SIGINT before the listener closes, so load
    /// balancers stop sending traffic first (e.g. `5s` behind Kubernetes). In-flight requests
    /// always finish.
    #[arg(long, env = "EMBER_SHUTDOWN_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub(crate) shutdown_delay: Duration,
    /// After SIGTERM/SIGINT, how long in-flight requests may run (counted from the signal, the
    /// shutdown delay included); any still running then are abandoned, counted in the log, and
    /// the process exits 1. `0s`: wait as long as they take.
    #[arg(long, env = "EMBER_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub(crate) shutdown_timeout: Duration,
    /// How long a client may take to send a request's headers, and again its body, before it
    /// gets 408 and its connection is closed.
    #[arg(long, env = "EMBER_CLIENT_TIMEOUT", default_value = "30s", value_parser = parse_positive_duration)]
    pub(crate) client_timeout: Duration,
    /// How long an HTTP/1.1 keep-alive connection waits for its next request before it is
    /// closed. Keep it above the idle timeout of any proxy or load balancer in front (60 s for
    /// AWS ALB and ingress-nginx), so they never reuse a connection the server is closing.
    #[arg(long, env = "EMBER_KEEP_ALIVE_TIMEOUT", default_value = "75s", value_parser = parse_positive_duration)]
    pub(crate) keep_alive_timeout: Duration,
    /// How often an HTTP/2 connection (gRPC, or REST over h2c) is sent a PING, so a peer that
    /// vanished or never answers frees its slot. `0s`: never.
    #[arg(long, env = "EMBER_HTTP2_KEEP_ALIVE_INTERVAL", default_value = "20s", value_parser = parse_duration)]
    pub(crate) http2_keep_alive_interval: Duration,
    /// How long a PING may go unanswered before the HTTP/2 connection is closed.
    #[arg(long, env = "EMBER_HTTP2_KEEP_ALIVE_TIMEOUT", default_value = "20s", value_parser = parse_positive_duration)]
    pub(crate) http2_keep_alive_timeout: Duration,
    /// How long an HTTP/2 connection may go with no request in progress before it is sent
    /// GOAWAY and closed; clients reconnect on their next call. Keep it above any proxy's idle
    /// timeout in front.
    #[arg(long, env = "EMBER_HTTP2_IDLE_TIMEOUT", default_value = "5m", value_parser = parse_positive_duration)]
    pub(crate) http2_idle_timeout: Duration,
    /// Most open connections, both listeners together (one file descriptor each); one more is
    /// answered (503, or GOAWAY on the gRPC port) and closed. Default: the open-file limit less
    /// room for the server's own files.
    #[arg(long, env = "EMBER_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_connections: Option<u32>,
    /// Require `Authorization: Bearer <key>` on /v1 and /v2 routes and gRPC inference calls
    /// (health, metrics and docs stay open). Repeatable; EMBER_API_KEY takes a comma-separated
    /// list. Prefer the variable or --api-key-file: arguments show in `ps`.
    #[arg(
        long = "api-key",
        env = "EMBER_API_KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub(crate) api_keys: Vec<ApiKey>,
    /// File with one API key per line (`#` comments), re-read on SIGHUP.
    #[arg(long, env = "EMBER_API_KEY_FILE")]
    pub(crate) api_key_file: Option<PathBuf>,
    /// How the model repository changes at run time, as Triton names it: `none` loads what
    /// the version policies select at start and keeps it; `explicit` also serves the repository
    /// API (`/v2/repository/…`, and over gRPC) to load and unload versions, which needs
    /// --admin-api-key or --admin-api-key-file.
    #[arg(long, env = "EMBER_MODEL_CONTROL_MODE", value_enum, default_value_t = ModelControlMode::None)]
    pub(crate) model_control_mode: ModelControlMode,
    /// Which versions of a model from the repository are loaded: `latest:N`, `all` or
    /// `specific:V[,V…]` (a version in full, or a major for its newest), for every model, or
    /// for one as `MODEL=POLICY`. Repeatable; EMBER_VERSION_POLICY takes a `;`-separated list.
    #[arg(long = "version-policy", env = "EMBER_VERSION_POLICY", value_delimiter = ';', value_parser = parse_version_policy)]
    pub(crate) version_policies: Vec<(Option<String>, VersionPolicy)>,
    /// The version that answers requests naming none, as `MODEL=VERSION` (default: the newest
    /// loaded). Repeatable; EMBER_DEFAULT_VERSION takes a comma-separated list.
    #[arg(long = "default-version", env = "EMBER_DEFAULT_VERSION", value_delimiter = ',', value_parser = parse_default_version)]
    pub(crate) default_versions: Vec<(String, String)>,
    /// A canary: the percent of a model's requests that name no version which go to another
    /// loaded version, as `MODEL=VERSION:PERCENT` (e.g. `breast-cancer=1.1.0:5`); the default
    /// version takes the rest. Repeatable; EMBER_CANARY takes a comma-separated list.
    #[arg(long = "canary", env = "EMBER_CANARY", value_delimiter = ',', value_parser = parse_share)]
    pub(crate) canaries: Vec<(String, String, f64)>,
    /// Shadow traffic: the percent of a model's unversioned requests also run on another loaded
    /// version, whose answers are compared with the served ones (metrics) and thrown away, as
    /// `MODEL=VERSION:PERCENT`. Repeatable; EMBER_SHADOW takes a comma-separated list.
    #[arg(long = "shadow", env = "EMBER_SHADOW", value_delimiter = ',', value_parser = parse_share)]
    pub(crate) shadows: Vec<(String, String, f64)>,
    /// A request header whose value decides the canary split (`x-user-id`): the same value
    /// always meets the same version. Without it requests are split at random.
    #[arg(long, env = "EMBER_STICKY_HEADER", value_parser = parse_header_name)]
    pub(crate) sticky_header: Option<String>,
    /// Most bytes of weights loaded at once, every model and version together (`512MiB`,
    /// `2GB`, or bytes); a load that would pass it is refused. Default: no limit.
    #[arg(long, env = "EMBER_MEMORY_BUDGET", value_parser = parse_bytes)]
    pub(crate) memory_budget: Option<u64>,
    /// The keys the repository API requires (`Authorization: Bearer <key>`); never the same as
    /// an inference key. Repeatable; EMBER_ADMIN_API_KEY takes a comma-separated list.
    #[arg(
        long = "admin-api-key",
        env = "EMBER_ADMIN_API_KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub(crate) admin_api_keys: Vec<ApiKey>,
    /// File with one admin key per line (`#` comments), re-read on SIGHUP.
    #[arg(long, env = "EMBER_ADMIN_API_KEY_FILE")]
    pub(crate) admin_api_key_file: Option<PathBuf>,
    /// Answer CORS requests from this origin (`https://app.example.com`, or `*` for any).
    /// Repeatable; EMBER_CORS_ALLOW_ORIGIN takes a comma-separated list. No CORS headers without it.
    #[arg(long = "cors-allow-origin", env = "EMBER_CORS_ALLOW_ORIGIN", value_delimiter = ',', value_parser = parse_origin)]
    pub(crate) cors_allow_origins: Vec<String>,
    /// Export OpenTelemetry traces over OTLP/HTTP (protobuf) to this collector, e.g.
    /// `http://otel-collector:4318` (`/v1/traces` is added unless the URL names a path).
    #[arg(long, env = "EMBER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Log format.
    #[arg(long, env = "EMBER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter: a level (`info`) or a tracing directive (`ember_serve=debug,wgpu_core=info`).
    /// The default keeps dependencies (wgpu, cubecl, tonic) to warnings.
    #[arg(
        long,
        env = "EMBER_LOG_LEVEL",
        default_value = "warn,ember_serve=info,ember_inference=info"
    )]
    pub log_level: String,
}

impl ServeArgs {
    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    /// Where gRPC listens, unless it is off.
    pub(crate) fn grpc_addr(&self) -> Option<SocketAddr> {
        (self.grpc_port != 0).then(|| SocketAddr::new(self.host, self.grpc_port))
    }
}

/// An API key as given on the command line; never printed, and zeroed when dropped (the
/// server drops it once it has its digest).
#[derive(Clone)]
pub(crate) struct ApiKey(SecretString);

impl AsRef<str> for ApiKey {
    fn as_ref(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl std::str::FromStr for ApiKey {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(SecretString::from(s.trim().to_string())))
    }
}

/// `--model-control-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ModelControlMode {
    /// Load at start what the version policies select; no repository API.
    None,
    /// As `none`, and the repository API loads and unloads versions at run time.
    Explicit,
}

/// `[MODEL=]POLICY`.
fn parse_version_policy(s: &str) -> Result<(Option<String>, VersionPolicy), String> {
    match s.split_once('=') {
        Some((model, policy)) => Ok((Some(model.trim().to_string()), policy.parse()?)),
        None => Ok((None, s.parse()?)),
    }
}

/// `MODEL=VERSION`.
fn parse_default_version(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((model, version)) if is_version_name(version.trim()) => {
            Ok((model.trim().to_string(), version.trim().to_string()))
        }
        _ => Err(format!(
            "{s:?} is not MODEL=VERSION (a version in full, 1.2.0, or a major, 1)"
        )),
    }
}

/// `MODEL=VERSION:PERCENT`.
fn parse_share(s: &str) -> Result<(String, String, f64), String> {
    let shape = || format!("{s:?} is not MODEL=VERSION:PERCENT (e.g. breast-cancer=1.1.0:5)");
    let (model, share) = s.split_once('=').ok_or_else(shape)?;
    let (version, percent) = share.rsplit_once(':').ok_or_else(shape)?;
    let percent: f64 = percent.trim().parse().map_err(|_| shape())?;
    if !(is_version_name(version.trim()) && percent > 0.0 && percent <= 100.0) {
        return Err(shape());
    }
    Ok((model.trim().into(), version.trim().into(), percent))
}

/// An HTTP header name, lower-cased (as gRPC metadata keys are).
fn parse_header_name(s: &str) -> Result<String, String> {
    let name = s.trim().to_ascii_lowercase();
    axum::http::HeaderName::from_bytes(name.as_bytes())
        .map(|_| name.clone())
        .map_err(|_| format!("{s:?} is not a header name"))
}

/// A size in bytes: a number, optionally with KB, MB, GB (powers of 1000) or KiB, MiB, GiB
/// (powers of 1024).
fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(format!("{s:?}: use bytes, or KB, MB, GB, KiB, MiB, GiB")),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{s:?} is not a size above zero"))
}

/// A CORS origin: `*`, or a scheme and host (and port) without a path.
fn parse_origin(s: &str) -> Result<String, String> {
    let s = s.trim();
    let shaped = s == "*"
        || ((s.starts_with("http://") || s.starts_with("https://"))
            && !s
                .split_once("://")
                .is_some_and(|(_, rest)| rest.is_empty() || rest.contains('/')));
    if shaped && axum::http::HeaderValue::from_str(s).is_ok() {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not an origin: use `*` or scheme://host[:port], e.g. https://app.example.com"
        ))
    }
}

/// A duration above zero.
fn parse_positive_duration(s: &str) -> Result<Duration, DurationError> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(DurationError::Range {
            input: s.to_string(),
            reason: "must be more than zero".into(),
        });
    }
    Ok(d)
}

/// `--device`: the model crate's [`DeviceChoice`] as a flag (the model layer knows no clap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DeviceArg {
    /// A hardware GPU adapter if one is found, otherwise the CPU backend.
    Auto,
    /// The CPU backend: burn-flex where compiled in (the faster of the two; benches/README.md),
    /// else burn-ndarray.
    Cpu,
    /// A wgpu adapter (Vulkan, Metal, DX12); software adapters such as lavapipe count.
    Gpu,
}

impl From<DeviceArg> for DeviceChoice {
    fn from(arg: DeviceArg) -> Self {
        match arg {
            DeviceArg::Auto => DeviceChoice::Auto,
            DeviceArg::Cpu => DeviceChoice::Cpu,
            DeviceArg::Gpu => DeviceChoice::Gpu,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Why a duration flag did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{0:?} is not a duration (e.g. 500ms, 2s, 1m)")]
    NotANumber(String),
    #[error("unknown duration unit {0:?} (use us, ms, s or m)")]
    Unit(String),
    #[error("{input:?}: {reason}")]
    Range { input: String, reason: String },
}

/// `250ms`, `2s`, `1m` or a bare number of milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "ms"), |i| s.split_at(i));
    let value: f64 = num
        .parse()
        .map_err(|_| DurationError::NotANumber(s.to_string()))?;
    let secs = match unit.trim() {
        "us" | "µs" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        other => return Err(DurationError::Unit(other.to_string())),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| DurationError::Range {
        input: s.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1ms"), Ok(Duration::from_millis(1)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3h").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn defaults_match_the_docs() {
        let cli = Cli::try_parse_from(["ember-serve"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.addr().to_string(), "0.0.0.0:8080");
        assert_eq!(
            cli.serve.grpc_addr().map(|a| a.to_string()).as_deref(),
            Some("0.0.0.0:8081")
        );
        let off = Cli::try_parse_from(["ember-serve", "--grpc-port", "0"]).unwrap();
        assert_eq!(off.serve.grpc_addr(), None);
        assert_eq!(cli.serve.weights, PathBuf::from("weights"));
        assert_eq!(cli.serve.device, DeviceArg::Auto);
        assert_eq!(cli.serve.max_batch, None, "resolved per device at start-up");
        assert_eq!(
            cli.serve.body_limit, None,
            "resolved from --max-batch at start-up"
        );
        assert_eq!(cli.serve.batch_buckets, BucketSpec::Auto);
        assert_eq!(
            cli.serve.cpu_lane_below, None,
            "resolved per device at start-up"
        );
        assert_eq!(cli.serve.gpu_queues, 1);
        assert!(Cli::try_parse_from(["ember-serve", "--gpu-queues", "0"]).is_err());
        assert!(Cli::try_parse_from(["ember-serve", "--gpu-queues", "17"]).is_err());
        assert_eq!(
            cli.serve.log_level,
            "warn,ember_serve=info,ember_inference=info"
        );
        assert_eq!(cli.serve.batch_wait, Duration::ZERO);
        let cli = Cli::try_parse_from(["ember-serve", "--batch-wait", "2ms"]).unwrap();
        assert_eq!(cli.serve.batch_wait, Duration::from_millis(2));
        assert!(Cli::try_parse_from(["ember-serve", "--device", "tpu"]).is_err());
        assert!(Cli::try_parse_from(["ember-serve", "--max-batch", "0"]).is_err());
    }

    #[test]
    fn production_switches_are_off_by_default_and_bounded_where_they_must_be() {
        let s = Cli::try_parse_from(["ember-serve"]).unwrap().serve;
        assert!(s.api_keys.is_empty() && s.api_key_file.is_none());
        assert!(s.cors_allow_origins.is_empty() && s.otlp_endpoint.is_none());
        assert_eq!(s.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(s.client_timeout, Duration::from_secs(30));
        assert_eq!(s.keep_alive_timeout, Duration::from_secs(75));
        assert!(Cli::try_parse_from(["ember-serve", "--keep-alive-timeout", "0s"]).is_err());
        assert_eq!(s.max_connections, None);
        assert_eq!(s.http2_keep_alive_interval, Duration::from_secs(20));
        assert_eq!(s.http2_keep_alive_timeout, Duration::from_secs(20));
        assert_eq!(s.http2_idle_timeout, Duration::from_secs(300));
        assert!(Cli::try_parse_from(["ember-serve", "--http2-idle-timeout", "0s"]).is_err());
        assert!(Cli::try_parse_from(["ember-serve", "--client-timeout", "0s"]).is_err());
        assert!(Cli::try_parse_from(["ember-serve", "--max-connections", "0"]).is_err());
    }

    #[test]
    fn origins_and_keys_parse_and_keys_never_print() {
        let s = Cli::try_parse_from([
            "ember-serve",
            "--cors-allow-origin",
            "https://a.example.com",
            "--cors-allow-origin",
            "*",
            "--api-key",
            "secret-0123456789",
        ])
        .unwrap()
        .serve;
        assert_eq!(s.cors_allow_origins, ["https://a.example.com", "*"]);
        let keys: Vec<&str> = s.api_keys.iter().map(AsRef::as_ref).collect();
        assert_eq!(keys, ["secret-0123456789"]);
        assert!(!format!("{s:?}").contains("secret-0123456789"));
        for bad in [
            "a.example.com",
            "https://a.example.com/path",
            "https://",
            "ftp://x",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_origin("http://localhost:3000").as_deref(),
            Ok("http://localhost:3000")
        );
    }
}
