//! Memory allocator settings for the long-running server.

/// Tells glibc's malloc to serve allocations up to 4 MiB from its heap and to give freed memory
/// back to the OS only past 8 MiB. Its defaults map and unmap every block over 128 KiB, so each
/// rebuild of a report with thousands of entities paid in page faults about as much as the
/// scoring itself (benches/scoring.rs: 10,000 entities in 1.2 ms with the defaults, 0.62 ms with
/// these). Idle memory is unchanged; at most 8 MiB more is kept after a burst.
///
/// It also caps malloc at two arenas. Each runtime worker otherwise gets arenas of its own, and
/// memory freed after a burst of reads stays spread over them: measured with
/// `scripts/read-memory.sh` (512 GetSystemHealth calls in flight), RSS ten seconds after the
/// burst was 21-29 MiB with glibc's default arenas, 13-18 MiB with two, and 50-54 MiB with
/// mimalloc instead of glibc; peaks were 43-49, 44 and 58-72 MiB, throughput within noise.
/// A no-op on other C libraries.
pub fn tune_for_server() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts malloc's parameters, under malloc's own lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// How often memory freed since is handed back to the OS.
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Every few seconds, hands the pages malloc holds free back to the OS (`malloc_trim`). The
/// trim threshold only releases the top of a heap, so after a burst (a fan-out to 10,000
/// watchers, thousands of reads in flight) the freed middle stayed resident: RSS 10 s after a
/// 10,000-stream fan-out closed was 2.88x the RSS before it (`examples/fanout`). A trim walks the
/// free lists of the two arenas, which costs little next to the interval. Runs until the
/// runtime stops; a no-op on other C libraries.
pub async fn return_freed_memory() {
    let mut ticks = tokio::time::interval(TRIM_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim works under malloc's own locks and frees nothing in use.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}
