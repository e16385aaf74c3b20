//! `cargo bench --bench forward`: one forward pass of the served model at batch 1, 8, 64 and
//! 256, on every backend compiled in (`--features wgpu` adds the first wgpu adapter, which is
//! Mesa lavapipe on a machine without a GPU).

use std::path::Path;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ember_model::{Classifier, device};

fn devices() -> Vec<device::SelectedDevice> {
    let (devices, no_gpu) = device::every_backend();
    if let Some(e) = no_gpu {
        eprintln!("no wgpu bench: {e}");
    }
    devices
}

fn forward(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("weights");
    for selected in devices() {
        let (classifier, _) = Classifier::load(&dir, &selected.device).expect("weights");
        let mut group = c.benchmark_group(format!("forward/{}", selected.backend));
        if selected.backend == "wgpu" {
            group
                .sample_size(10)
                .measurement_time(Duration::from_secs(5));
        } else {
            group
                .sample_size(30)
                .measurement_time(Duration::from_secs(2));
        }
        for batch in [1usize, 8, 64, 256] {
            let rows = vec![[8.0f32; 64]; batch];
            classifier.probabilities(&rows).expect("warm-up pass"); // kernels compiled before timing
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_with_input(BenchmarkId::from_parameter(batch), &rows, |b, rows| {
                b.iter(|| classifier.probabilities(rows).expect("forward"))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, forward);
criterion_main!(benches);
