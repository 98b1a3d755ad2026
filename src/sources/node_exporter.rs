//! node_exporter's host series (`profile = "node"`) as the host subsystem's entities: CPU,
//! memory and real filesystems, as the host sampler reports them for this machine.

use crate::{
    core::scoring::snapshot::{CpuSample, DiskSample, HostSnapshot, MemorySample},
    sources::{exposition::Sample, host::is_real_mount},
};

/// node_exporter's CPU counters at one scrape, for the share of non-idle time until the next.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuTimes {
    idle: f64,
    total: f64,
}

/// The host entities node_exporter's series describe: CPU (from the second scrape on, the
/// non-idle share since the previous one), memory, and one entity per real mount.
pub fn host_entities(
    samples: &[Sample],
    previous: Option<CpuTimes>,
) -> (Vec<HostSnapshot>, Option<CpuTimes>) {
    let value = |name: &str| samples.iter().find(|s| s.name == name).map(|s| s.value);
    let mut entities = Vec::new();
    let mut times = CpuTimes::default();
    let mut cpus = std::collections::BTreeSet::new();
    for sample in samples
        .iter()
        .filter(|s| s.name == "node_cpu_seconds_total")
    {
        if !sample.value.is_finite() {
            continue;
        }
        times.total += sample.value;
        if matches!(sample.label("mode"), Some("idle" | "iowait")) {
            times.idle += sample.value;
        }
        if let Some(cpu) = sample.label("cpu") {
            cpus.insert(cpu.to_owned());
        }
    }
    let current = (times.total > 0.0).then_some(times);
    if let (Some(now), Some(before)) = (current, previous) {
        let total = now.total - before.total;
        if total > 0.0 {
            let busy = (1.0 - (now.idle - before.idle) / total).clamp(0.0, 1.0);
            let finite = |v: Option<f64>| v.filter(|v| v.is_finite()).unwrap_or(0.0);
            entities.push(HostSnapshot::Cpu(CpuSample {
                name: "cpu".into(),
                usage_percent: (busy * 1000.0).round() / 10.0,
                window_samples: 1,
                cores: u32::try_from(cpus.len()).unwrap_or(u32::MAX),
                load_1: finite(value("node_load1")),
                load_5: finite(value("node_load5")),
                load_15: finite(value("node_load15")),
            }));
        }
    }
    if let (Some(total), Some(available)) = (
        value("node_memory_MemTotal_bytes"),
        value("node_memory_MemAvailable_bytes"),
    ) {
        if total.is_finite() && available.is_finite() && total > 0.0 {
            let swap_total = value("node_memory_SwapTotal_bytes")
                .filter(|v| v.is_finite())
                .unwrap_or(0.0);
            let swap_free = value("node_memory_SwapFree_bytes")
                .filter(|v| v.is_finite())
                .unwrap_or(0.0);
            entities.push(HostSnapshot::Memory(MemorySample {
                name: "memory".into(),
                used_bytes: (total - available).clamp(0.0, total) as u64,
                total_bytes: total as u64,
                swap_used_bytes: (swap_total - swap_free).max(0.0) as u64,
                swap_total_bytes: swap_total.max(0.0) as u64,
            }));
        }
    }
    let mut mounts = std::collections::BTreeSet::new();
    for size in samples
        .iter()
        .filter(|s| s.name == "node_filesystem_size_bytes")
    {
        let (Some(mount), fstype) = (size.label("mountpoint"), size.label("fstype").unwrap_or(""))
        else {
            continue;
        };
        let available = samples.iter().find(|s| {
            s.name == "node_filesystem_avail_bytes" && s.label("mountpoint") == Some(mount)
        });
        let (Some(available), total) = (available.map(|s| s.value), size.value) else {
            continue;
        };
        let usable = total.is_finite()
            && available.is_finite()
            && total > 0.0
            && is_real_mount(
                std::ffi::OsStr::new(fstype),
                std::path::Path::new(mount),
                total as u64,
            );
        if !usable || !mounts.insert(mount.to_owned()) {
            continue;
        }
        entities.push(HostSnapshot::Disk(DiskSample {
            name: mount.into(),
            used_bytes: (total - available).clamp(0.0, total) as u64,
            total_bytes: total as u64,
        }));
    }
    (entities, current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::exposition::parse;

    #[test]
    fn node_series_become_host_entities_with_cpu_from_the_second_scrape() {
        let scrape = |idle: f64, user: f64| {
            parse(&format!(
                "node_cpu_seconds_total{{cpu=\"0\",mode=\"idle\"}} {idle}\n\
                 node_cpu_seconds_total{{cpu=\"0\",mode=\"user\"}} {user}\n\
                 node_memory_MemTotal_bytes 1000\nnode_memory_MemAvailable_bytes 250\n\
                 node_filesystem_size_bytes{{mountpoint=\"/\",fstype=\"ext4\"}} 100\n\
                 node_filesystem_avail_bytes{{mountpoint=\"/\",fstype=\"ext4\"}} 40\n\
                 node_filesystem_size_bytes{{mountpoint=\"/run\",fstype=\"tmpfs\"}} 100\n\
                 node_filesystem_avail_bytes{{mountpoint=\"/run\",fstype=\"tmpfs\"}} 100\n"
            ))
            .expect("valid")
        };
        let (first, times) = host_entities(&scrape(100.0, 100.0), None);
        assert_eq!(first.len(), 2, "memory and / only: {first:?}");
        let (second, _) = host_entities(&scrape(110.0, 130.0), times);
        let HostSnapshot::Cpu(cpu) = &second[0] else {
            panic!("cpu first: {second:?}")
        };
        assert_eq!(cpu.usage_percent, 75.0);
        let HostSnapshot::Memory(memory) = &second[1] else {
            panic!("memory: {second:?}")
        };
        assert_eq!(memory.used_bytes, 750);
    }
}
