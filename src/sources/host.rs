//! The host sampler: CPU, memory, swap, load and real filesystems of the machine healthscore
//! runs on, read with sysinfo on a thread of its own (never on the async runtime's workers)
//! and handed to the engine as the `host` subsystem's entities.
//!
//! It refreshes only what it reads, keeps one `System` and one `Disks` for its lifetime, and
//! turns every failure into a HOST_COLLECTOR_ERROR entity instead of stopping.

use std::{collections::BTreeSet, ffi::OsStr, path::Path, sync::Arc, thread, time::Duration};

use sysinfo::{DiskRefreshKind, Disks, System, MINIMUM_CPU_UPDATE_INTERVAL};
use tokio::sync::oneshot;

use super::{Running, Source, SourceError};
use crate::{
    core::{
        ingest::{FieldError, Limits, Push, PushBuilder},
        scoring::{
            rules::host::CpuWindow,
            snapshot::{CpuSample, DiskSample, HostSnapshot, MemorySample},
            Entity,
        },
    },
    engine::{Engine, EngineError, PushOutcome},
    telemetry::{PushResult, Telemetry},
};

/// Filesystems that hold no data of their own (kernel interfaces, memory, images, layers).
const PSEUDO_FILESYSTEMS: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "fuse.lxcfs",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
    "iso9660",
    "nfsd",
];

/// Whether a mount is a real filesystem worth an entity. The root is always kept, even when it
/// is a container's overlay.
pub fn is_real_mount(file_system: &OsStr, mount_point: &Path, total_bytes: u64) -> bool {
    if mount_point == Path::new("/") {
        return total_bytes > 0;
    }
    let fs = file_system.to_string_lossy();
    total_bytes > 0 && !PSEUDO_FILESYSTEMS.contains(&fs.as_ref()) && !fs.starts_with("fuse.snap")
}

/// `[host]`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostConfig {
    /// Whether the host sampler runs.
    pub enabled: bool,
    /// Seconds between samples.
    pub interval_secs: u64,
    /// Seconds of CPU samples averaged by the HOST_CPU rules.
    pub cpu_window_secs: u64,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 5,
            cpu_window_secs: 30,
        }
    }
}

impl HostConfig {
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs)
    }

    /// How many samples the CPU window holds.
    pub fn cpu_window_samples(&self) -> usize {
        (self.cpu_window_secs / self.interval_secs.max(1)).max(1) as usize
    }
}

/// Reads the host; owns its sysinfo handles and the CPU window between samples.
pub struct Sampler {
    system: System,
    disks: Disks,
    cpu_window: CpuWindow,
}

impl Sampler {
    /// A sampler whose CPU readings are averaged over `cpu_window_samples` samples. Takes the
    /// first CPU reading, which sysinfo needs as a baseline.
    pub fn new(cpu_window_samples: usize) -> Self {
        let mut system = System::new();
        system.refresh_cpu_usage();
        Self {
            system,
            disks: Disks::new_with_refreshed_list_specifics(
                DiskRefreshKind::nothing().with_storage(),
            ),
            cpu_window: CpuWindow::new(cpu_window_samples),
        }
    }

    /// One reading of every host entity.
    pub fn sample(&mut self) -> Vec<HostSnapshot> {
        let mut entities = vec![self.cpu()];
        entities.extend(self.memory_and_disks());
        entities
    }

    /// Memory and disks: what can be read at once (CPU use needs a baseline some time earlier).
    pub fn memory_and_disks(&mut self) -> Vec<HostSnapshot> {
        let mut entities = vec![self.memory()];
        entities.extend(self.disks());
        entities
    }

    fn cpu(&mut self) -> HostSnapshot {
        self.system.refresh_cpu_usage();
        let cores = self.system.cpus().len();
        if cores == 0 {
            return HostSnapshot::CollectorError {
                name: "cpu".into(),
                error: "the operating system reported no CPUs".into(),
            };
        }
        let usage = self
            .cpu_window
            .push(f64::from(self.system.global_cpu_usage()));
        let load = System::load_average();
        let finite = |v: f64| if v.is_finite() { v } else { 0.0 };
        HostSnapshot::Cpu(CpuSample {
            name: "cpu".into(),
            usage_percent: usage,
            window_samples: u32::try_from(self.cpu_window.len()).unwrap_or(u32::MAX),
            cores: u32::try_from(cores).unwrap_or(u32::MAX),
            load_1: finite(load.one),
            load_5: finite(load.five),
            load_15: finite(load.fifteen),
        })
    }

    fn memory(&mut self) -> HostSnapshot {
        self.system.refresh_memory();
        let total = self.system.total_memory();
        if total == 0 {
            return HostSnapshot::CollectorError {
                name: "memory".into(),
                error: "the operating system reported 0 bytes of memory".into(),
            };
        }
        HostSnapshot::Memory(MemorySample {
            name: "memory".into(),
            used_bytes: self.system.used_memory().min(total),
            total_bytes: total,
            swap_used_bytes: self.system.used_swap(),
            swap_total_bytes: self.system.total_swap(),
        })
    }

    fn disks(&mut self) -> Vec<HostSnapshot> {
        // Refreshing the list (not only the known disks) picks up mounts added since start.
        self.disks
            .refresh_specifics(true, DiskRefreshKind::nothing().with_storage());
        let mut seen = BTreeSet::new();
        let mut entities = Vec::new();
        for disk in self.disks.list() {
            let total = disk.total_space();
            let mount = disk.mount_point();
            if !is_real_mount(disk.file_system(), mount, total) {
                continue;
            }
            let name = mount.to_string_lossy().into_owned();
            if !seen.insert(name.clone()) {
                continue;
            }
            entities.push(HostSnapshot::Disk(DiskSample {
                name: Arc::from(name),
                used_bytes: total.saturating_sub(disk.available_space()),
                total_bytes: total,
            }));
        }
        if entities.is_empty() {
            entities.push(HostSnapshot::CollectorError {
                name: "disks".into(),
                error: "no mounted filesystem could be read".into(),
            });
        }
        entities
    }
}

/// The host sampler as a source: a thread of its own that pushes the host's entities as the
/// source `host` every interval, with a TTL of three intervals, so a sampler that stops is
/// reported stale. A refused sample is logged and counted, and the next one is taken.
pub struct HostSource {
    interval: Duration,
    cpu_window_samples: usize,
    ttl: Duration,
    limits: Limits,
    telemetry: Arc<Telemetry>,
}

impl HostSource {
    pub fn new(config: &HostConfig, limits: &Limits, telemetry: Arc<Telemetry>) -> Self {
        Self {
            interval: config.interval(),
            cpu_window_samples: config.cpu_window_samples(),
            ttl: limits.ttl_of_interval(config.interval()),
            limits: limits.clone(),
            telemetry,
        }
    }
}

/// Counts what became of one sample; `Err(())` once the engine has stopped, when sampling ends.
fn settle(result: Result<PushOutcome, EngineError>, telemetry: &Telemetry) -> Result<(), ()> {
    telemetry.host_sample(PushResult::of(&result));
    match result {
        Ok(_) => Ok(()),
        Err(EngineError::Stopped) => Err(()),
        // The limits (max_entities_per_request, a full max_sources) can refuse a sample; the
        // host then goes stale, and the log must say why.
        Err(EngineError::Invalid(error)) => {
            tracing::warn!(%error, "a host sample was refused; sampling continues");
            Ok(())
        }
    }
}

impl Source for HostSource {
    /// Returns once memory and disks are in the engine; CPU joins on the next sample, when
    /// sysinfo has a baseline to measure against.
    async fn start(self, engine: &Engine) -> Result<Running, SourceError> {
        let runtime = tokio::runtime::Handle::current();
        let (first, first_done) = oneshot::channel();
        // Dropped when the thread ends: what the app awaits.
        let (ended, end) = oneshot::channel::<()>();
        let engine = engine.clone();
        let telemetry = self.telemetry.clone();
        let (ttl, limits) = (self.ttl, self.limits.clone());
        // A sample the builder refuses is refused as the engine would refuse it.
        let push = move |entities: Vec<HostSnapshot>| {
            let push = PushBuilder::host(entities.len(), &limits)?
                .ttl(Some(ttl))?
                .list("host", entities, |e| e.name(), |e, _, _| Ok(e))?;
            Ok::<_, FieldError>(push.build())
        };
        let send = move |push: Result<Push, FieldError>| match push {
            Ok(push) => runtime.block_on(engine.push(push)),
            Err(error) => Err(EngineError::Invalid(error)),
        };
        thread::Builder::new()
            .name("host-sampler".into())
            .spawn(move || {
                let _ended = ended;
                let mut sampler = Sampler::new(self.cpu_window_samples);
                let pushed = send(push(sampler.memory_and_disks()));
                let running = settle(pushed, &telemetry);
                let _ = first.send(running);
                if running.is_err() {
                    return;
                }
                // sysinfo needs two CPU readings some time apart before usage means anything.
                thread::sleep(MINIMUM_CPU_UPDATE_INTERVAL.max(Duration::from_millis(200)));
                while settle(send(push(sampler.sample())), &telemetry).is_ok() {
                    thread::sleep(self.interval);
                }
            })
            .map_err(|error| SourceError::Start("host sampler", error))?;
        match first_done.await {
            Ok(Ok(())) => Ok(Box::pin(async move {
                let _ = end.await;
            })),
            _ => Err(SourceError::Stopped("host sampler")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_filesystems_are_skipped_but_root_is_kept() {
        let real = |fs: &str, mount: &str| is_real_mount(OsStr::new(fs), Path::new(mount), 100);
        assert!(real("ext4", "/var"));
        assert!(real("xfs", "/data"));
        assert!(real("overlay", "/"));
        assert!(!real("overlay", "/var/lib/docker/overlay2/abc/merged"));
        assert!(!real("tmpfs", "/run"));
        assert!(!real("proc", "/proc"));
        assert!(!real("squashfs", "/snap/core/1"));
        assert!(!is_real_mount(OsStr::new("ext4"), Path::new("/empty"), 0));
    }
}
