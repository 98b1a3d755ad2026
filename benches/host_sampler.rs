//! One host-sampler tick against this machine: CPU, memory and every mounted filesystem read
//! through sysinfo and turned into host entities (the sampler's whole cost per interval).

use criterion::{criterion_group, criterion_main, Criterion};
use healthscore::inputs::Sampler;

fn tick(c: &mut Criterion) {
    let mut sampler = Sampler::new(6);
    c.bench_function("host sampler: one tick", |b| b.iter(|| sampler.sample()));
}

criterion_group!(benches, tick);
criterion_main!(benches);
