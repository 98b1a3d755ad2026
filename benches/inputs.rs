//! Inputs beyond push, measured in-process: reading and mapping a 5,000-series Micrometer scrape
//! (target: under 5 ms).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use healthscore::inputs::{parse_exposition, Mapping};

#[path = "common/expositions.rs"]
mod expositions;

fn scrape(c: &mut Criterion) {
    let text = expositions::micrometer(250, 5_000);
    let mapping = Mapping::micrometer();
    c.bench_function("read and map a 5,000-series Micrometer scrape", |b| {
        b.iter(|| {
            let samples = parse_exposition(black_box(&text)).expect("valid");
            // What was mapped borrows the samples: count its entities before both are dropped.
            mapping.apply(&samples).expect("maps").0.entity_count()
        })
    });
}

criterion_group!(benches, scrape);
criterion_main!(benches);
