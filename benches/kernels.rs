//! Criterion benches of the GPU kernels, one group per kernel family. The GPU is
//! synchronised inside the timed region and throughput is counted in elements
//! (multiply-accumulates for matmuls). Shapes follow the real models; set
//! BITSPIKE_BENCH_SMALL=1 for quick shapes.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use bitspike::bench::lif::{self, CopyWorkload, LifKernel, LifWorkload};
use bitspike::bench::matmul::{MatmulKernel, MatmulWorkload, MODEL_SHAPES};
use bitspike::GpuContext;

fn matmul(c: &mut Criterion) {
    let ctx = GpuContext::from_env().expect("benches need a GPU adapter");
    let shapes: Vec<(usize, usize, usize)> = if std::env::var_os("BITSPIKE_BENCH_SMALL").is_some() {
        vec![(1024, 384, 1536)]
    } else {
        MODEL_SHAPES[..2].to_vec()
    };
    let mut group = c.benchmark_group("matmul");
    group.sample_size(10);
    for (m, k, n) in shapes {
        for kernel in MatmulKernel::ALL {
            let work = MatmulWorkload::new(&ctx, kernel, m, k, n).expect("workload");
            group.throughput(Throughput::Elements((m * k * n) as u64));
            group.bench_function(format!("{}/{}", kernel.name(), work.shape()), |b| {
                b.iter(|| {
                    work.run(&ctx).expect("dispatch");
                    ctx.sync().expect("GPU work");
                })
            });
        }
    }
    group.finish();
}

/// LIF kernels and a copy of the same bytes, in bytes per second.
fn lif(c: &mut Criterion) {
    let ctx = GpuContext::from_env().expect("benches need a GPU adapter");
    let shapes: Vec<(usize, usize, usize)> = if std::env::var_os("BITSPIKE_BENCH_SMALL").is_some() {
        vec![(4, 1024, 384)]
    } else {
        lif::MODEL_SHAPES[..1].to_vec()
    };
    let mut group = c.benchmark_group("lif");
    group.sample_size(10);
    for (t, rows, features) in shapes {
        for kernel in LifKernel::ALL {
            let work = LifWorkload::new(&ctx, kernel, t, rows, features).expect("workload");
            let copy = CopyWorkload::matching(&ctx, &work).expect("copy workload");
            group.throughput(Throughput::Bytes(work.bytes() as u64));
            group.bench_function(format!("{}/{}", kernel.name(), work.shape()), |b| {
                b.iter(|| {
                    work.run(&ctx).expect("dispatch");
                    ctx.sync().expect("GPU work");
                })
            });
            group.throughput(Throughput::Bytes(copy.bytes() as u64));
            group.bench_function(format!("copy/{}", copy.shape()), |b| {
                b.iter(|| {
                    copy.run(&ctx).expect("dispatch");
                    ctx.sync().expect("GPU work");
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, matmul, lif);
criterion_main!(benches);
