//! What the history costs: at most 1 KiB of heap per 10 transitions, measured by counting the
//! bytes this test binary's allocator takes from glibc: each block's usable size plus its
//! 8-byte header, so small blocks count what they really cost.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicIsize, Ordering},
    time::{Duration, SystemTime},
};

use healthscore::{
    model::{Code, History, Status, Subsystem, Transition},
    service::HistoryConfig,
};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let block = unsafe { System.alloc(layout) };
        LIVE.fetch_add(cost(block), Ordering::Relaxed);
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        LIVE.fetch_sub(cost(block), Ordering::Relaxed);
        unsafe { System.dealloc(block, layout) }
    }
}

fn cost(block: *mut u8) -> isize {
    if block.is_null() {
        return 0;
    }
    (unsafe { libc::malloc_usable_size(block.cast()) } + 8) as isize
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn ten_transitions_cost_at_most_one_kib() {
    const TRANSITIONS: usize = 10_000;
    let config = HistoryConfig {
        max_transitions: TRANSITIONS.try_into().expect("not zero"),
        ..HistoryConfig::default()
    };
    let start = SystemTime::now();
    let before = LIVE.load(Ordering::Relaxed);
    let mut history = History::new(&config, start);
    for i in 0..TRANSITIONS {
        // A realistic mix: a pool going critical adds two codes, recovering removes them.
        let (statuses, added, removed): ((Status, Status), &[Code], &[Code]) = if i % 2 == 0 {
            (
                (Status::Healthy, Status::Critical),
                &[Code::DsPoolSaturated, Code::DsPoolThreadsAwaiting],
                &[],
            )
        } else {
            (
                (Status::Critical, Status::Healthy),
                &[],
                &[Code::DsPoolSaturated, Code::DsPoolThreadsAwaiting],
            )
        };
        let at = start + Duration::from_secs(i as u64);
        history.record(Transition::new(
            at,
            Some(Subsystem::Datasources),
            statuses,
            50,
            added,
            removed,
        ));
    }
    let used = LIVE.load(Ordering::Relaxed) - before;
    let per_ten = used as f64 / (TRANSITIONS as f64 / 10.0);
    println!("{used} bytes for {TRANSITIONS} transitions: {per_ten:.0} bytes per 10");
    assert_eq!(history.len(), TRANSITIONS);
    assert!(per_ten <= 1024.0, "{per_ten:.0} bytes per 10 transitions");
}
