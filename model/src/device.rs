//! Which backend and device the model runs on.
//!
//! burn 0.22 compiles backends in by cargo feature (`ndarray` or `flex` for the CPU, `wgpu` for
//! GPUs) and picks a device at run time. This module turns the operator's `--device auto|cpu|gpu` into a
//! concrete [`Device`], and says what it chose in words the logs, `/v1/models` and the metrics
//! can show.

use burn::tensor::Device;

/// What the operator asked for (the server's `--device` maps onto it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// A hardware GPU adapter if one is found, otherwise the CPU backend.
    Auto,
    /// The CPU backend: burn-flex where compiled in (the faster of the two; benches/README.md),
    /// else burn-ndarray.
    Cpu,
    /// A wgpu adapter (Vulkan, Metal, DX12); software adapters such as lavapipe count.
    Gpu,
}

/// Why no device could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error("this binary has no CPU backend (built without the `ndarray` and `flex` features)")]
    NoCpuBackend,
    #[error("this binary has no GPU backend (built without the `wgpu` feature)")]
    NoGpuBackend,
    #[error("--device gpu: no wgpu adapter found: {0}")]
    NoAdapter(String),
    #[error("probing wgpu adapters panicked (broken Vulkan loader or driver?)")]
    ProbePanicked,
    #[error("--gpu-queues: opening another device on the adapter failed: {0}")]
    Queue(String),
}

/// What was chosen.
#[derive(Debug, Clone)]
pub struct SelectedDevice {
    pub device: Device,
    /// `flex`, `ndarray` or `wgpu`.
    pub backend: &'static str,
    /// `cpu`, or the adapter's name as the driver reports it.
    pub name: String,
    /// A wgpu adapter that is not a card (e.g. Mesa lavapipe).
    pub software: bool,
    /// Why `--device auto` settled for a CPU backend, when it did.
    pub fallback: Option<String>,
}

impl SelectedDevice {
    /// One of the CPU backends (flex or ndarray): a forward pass computes on the calling thread
    /// and starts at once (no launch or readback to amortise).
    pub fn is_cpu_backend(&self) -> bool {
        matches!(self.backend, "flex" | "ndarray")
    }
}

/// Resolve `choice` against the backends compiled into this binary and the adapters present.
pub fn select(choice: DeviceChoice) -> Result<SelectedDevice, DeviceError> {
    match choice {
        DeviceChoice::Cpu => cpu(),
        DeviceChoice::Gpu => {
            let adapters = gpu_adapters()?;
            adapters
                .iter()
                .find(|a| !a.software)
                .or(adapters.first())
                .cloned()
                .ok_or_else(|| DeviceError::NoAdapter(why_no_gpu()))
        }
        DeviceChoice::Auto => {
            let (adapters, probe_error) = match gpu_adapters() {
                Ok(adapters) => (adapters, None),
                Err(e) => (Vec::new(), Some(e)),
            };
            if let Some(hw) = adapters.iter().find(|a| !a.software) {
                return Ok(hw.clone());
            }
            let reason = match (probe_error, adapters.as_slice()) {
                (Some(e), _) => e.to_string(),
                (None, []) => format!("no wgpu adapter found: {}", why_no_gpu()),
                (None, software) => format!(
                    "only software GPU adapters found ({}), slower than the CPU backend; {}",
                    software
                        .iter()
                        .map(|a| a.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    why_no_gpu()
                ),
            };
            match cpu() {
                Ok(cpu) => Ok(SelectedDevice {
                    fallback: Some(reason),
                    ..cpu
                }),
                Err(cpu_err) => adapters.first().cloned().ok_or(cpu_err),
            }
        }
    }
}

/// Why no hardware GPU adapter was found, as far as this platform can tell.
fn why_no_gpu() -> String {
    #[cfg(all(feature = "wgpu", target_os = "linux"))]
    {
        super::icd::explain()
    }
    #[cfg(not(all(feature = "wgpu", target_os = "linux")))]
    {
        "is a Vulkan, Metal or DX12 driver installed and visible to this process?".into()
    }
}

/// Names of the backends compiled into this binary.
pub fn compiled_backends() -> Vec<&'static str> {
    let mut out = Vec::new();
    if cfg!(feature = "flex") {
        out.push("flex");
    }
    if cfg!(feature = "ndarray") {
        out.push("ndarray");
    }
    if cfg!(feature = "wgpu") {
        out.push("wgpu");
    }
    out
}

/// Whether this binary has a CPU backend (the GPU image's does, for the CPU lane).
pub fn has_cpu_backend() -> bool {
    cfg!(any(feature = "flex", feature = "ndarray"))
}

/// The CPU backends compiled into this binary, preferred first.
pub fn cpu_backends() -> Vec<SelectedDevice> {
    let mut out = Vec::new();
    #[cfg(feature = "flex")]
    out.push(SelectedDevice {
        device: Device::flex(),
        backend: "flex",
        name: "cpu".into(),
        software: false,
        fallback: None,
    });
    #[cfg(feature = "ndarray")]
    {
        // burn-ndarray is deprecated upstream in favour of flex; the design keeps it as the
        // default CPU backend, so the one deprecated constructor is allowed here and nowhere else.
        #[allow(deprecated)]
        let device = Device::ndarray();
        out.push(SelectedDevice {
            device,
            backend: "ndarray",
            name: "cpu".into(),
            software: false,
            fallback: None,
        });
    }
    out
}

/// Every backend this build can run a model on: the CPU backends, then the GPU adapter
/// `--device gpu` would open, or why there is none (what tests and benchmarks run each model on).
pub fn every_backend() -> (Vec<SelectedDevice>, Option<DeviceError>) {
    let mut out = cpu_backends();
    match select(DeviceChoice::Gpu) {
        Ok(gpu) => {
            out.push(gpu);
            (out, None)
        }
        Err(e) => (out, Some(e)),
    }
}

fn cpu() -> Result<SelectedDevice, DeviceError> {
    cpu_backends()
        .into_iter()
        .next()
        .ok_or(DeviceError::NoCpuBackend)
}

/// Every wgpu adapter this process can open, hardware first. Enumeration probes the driver,
/// which can panic inside wgpu when the loader is broken; that is treated as "no adapter".
#[cfg(feature = "wgpu")]
fn gpu_adapters() -> Result<Vec<SelectedDevice>, DeviceError> {
    use burn::tensor::DeviceType;
    let found = std::panic::catch_unwind(|| {
        Device::enumerate(DeviceType::Wgpu)
            .into_vec()
            .into_iter()
            .filter_map(|device| {
                let identity = device.identity()?;
                Some(SelectedDevice {
                    software: identity.physical.is_none(),
                    name: identity.name,
                    device,
                    backend: "wgpu",
                    fallback: None,
                })
            })
            .collect::<Vec<_>>()
    })
    .map_err(|_| DeviceError::ProbePanicked)?;
    let (mut hw, sw): (Vec<_>, Vec<_>) = found.into_iter().partition(|a| !a.software);
    hw.extend(sw);
    Ok(hw)
}

#[cfg(not(feature = "wgpu"))]
fn gpu_adapters() -> Result<Vec<SelectedDevice>, DeviceError> {
    Err(DeviceError::NoGpuBackend)
}

/// `count` more devices on the adapter `selected` runs on, each with its own queue and so its
/// own cubecl submission thread (every launch, upload and readback of a device is a task on
/// that one thread), registered with burn as devices of their own.
#[cfg(feature = "wgpu")]
pub fn more_queues(selected: &SelectedDevice, count: usize) -> Result<Vec<Device>, DeviceError> {
    use burn::tensor::wgpu::{WgpuSetup, wgpu};
    if count == 0 {
        return Ok(Vec::new());
    }
    let failed = |e: &dyn std::fmt::Display| DeviceError::Queue(format!("{}: {e}", selected.name));
    // Every backend burn enumerates adapters on, OpenGL included: a machine with no Vulkan
    // driver still has Mesa's GL llvmpipe, and the selected adapter may be that one.
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::all(),
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    // The selected card by its PCI address where the driver gives one (identical cards share a
    // name), else by name; on Vulkan first, as cubecl picks it.
    let pci_address = selected
        .device
        .identity()
        .and_then(|identity| identity.physical?.pci_address);
    let adapter = ready(instance.enumerate_adapters(wgpu::Backends::all()))
        .into_iter()
        .filter(|a| {
            let info = a.get_info();
            same_card(
                &info.device_pci_bus_id,
                &info.name,
                pci_address.as_ref(),
                &selected.name,
            )
        })
        .min_by_key(|a| a.get_info().backend != wgpu::Backend::Vulkan)
        .ok_or_else(|| failed(&"no adapter with its PCI address or name"))?;
    (0..count)
        .map(|_| {
            // What cubecl asks of a device it opens itself (WGSL kernels).
            let (device, queue) = ready(
                adapter.request_device(&wgpu::DeviceDescriptor {
                    label: Some("ember-serve queue"),
                    required_features: adapter
                        .features()
                        .difference(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS),
                    required_limits: adapter.limits(),
                    memory_hints: wgpu::MemoryHints::MemoryUsage,
                    ..Default::default()
                }),
            )
            .map_err(|e| failed(&e))?;
            Device::wgpu_options()
                .setup(WgpuSetup {
                    instance: instance.clone(),
                    adapter: adapter.clone(),
                    device,
                    queue,
                    backend: adapter.get_info().backend,
                })
                .init()
                .map_err(|e| failed(&e))
        })
        .collect()
}

#[cfg(not(feature = "wgpu"))]
pub fn more_queues(_selected: &SelectedDevice, count: usize) -> Result<Vec<Device>, DeviceError> {
    match count {
        0 => Ok(Vec::new()),
        _ => Err(DeviceError::NoGpuBackend),
    }
}

/// Whether an adapter (its PCI bus id and name, as wgpu reports them) is the selected card: the
/// same PCI address where the selected one has one, else the same name.
#[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
fn same_card<A: std::str::FromStr + PartialEq>(
    bus_id: &str,
    name: &str,
    pci_address: Option<&A>,
    selected_name: &str,
) -> bool {
    match pci_address {
        Some(wanted) => bus_id.parse::<A>().ok().as_ref() == Some(wanted),
        None => name == selected_name,
    }
}

/// The output of a wgpu future: native ones are ready when first polled (wgpu-core works
/// synchronously), so two start-up calls need no executor.
#[cfg(feature = "wgpu")]
fn ready<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_says_why_it_chose_the_cpu() {
        let chosen = select(DeviceChoice::Auto).unwrap();
        if chosen.is_cpu_backend() {
            let reason = chosen.fallback.expect("a CPU fallback without a reason");
            assert!(
                reason.contains("GPU backend")
                    || reason.contains("adapter")
                    || reason.contains("panicked"),
                "{reason}"
            );
        } else {
            assert!(chosen.fallback.is_none());
        }
        assert_eq!(select(DeviceChoice::Cpu).unwrap().fallback, None);
    }

    #[test]
    fn another_queue_opens_on_the_selected_card() {
        // Identical cards share a name: the PCI address decides where there is one.
        let first = Some(&0x0100u32);
        assert!(same_card("256", "H100", first, "H100"));
        assert!(!same_card("512", "H100", first, "H100"));
        assert!(!same_card("not an address", "H100", first, "H100"));
        // A software renderer has none: its name decides.
        assert!(same_card("", "llvmpipe", None::<&u32>, "llvmpipe"));
        assert!(!same_card("", "llvmpipe", None::<&u32>, "H100"));
    }

    #[test]
    fn every_cpu_backend_says_so() {
        let cpus = cpu_backends();
        assert!(!cpus.is_empty());
        assert!(cpus.iter().all(SelectedDevice::is_cpu_backend));
        assert!(cpu().unwrap().is_cpu_backend());
    }
}
