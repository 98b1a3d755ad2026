//! Host rules: HOST_CPU_*, HOST_MEMORY_*, HOST_DISK_*, HOST_COLLECTOR_ERROR; and the CPU window
//! that keeps one busy second from flipping a probe.

use std::{collections::VecDeque, sync::Arc};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::core::scoring::{
    catalog::Code,
    model::Subsystem,
    policy::{ordered, percentages, PolicyError, Thresholds, Validate},
    snapshot::{percent, Entity, Evaluation, HostSnapshot, Snapshot},
};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HostThresholds {
    /// HOST_CPU_HIGH when the windowed CPU use is above this percentage.
    pub cpu_high: f64,
    /// HOST_CPU_CRITICAL when the windowed CPU use is above this percentage.
    pub cpu_critical: f64,
    /// HOST_MEMORY_HIGH when memory use is above this percentage.
    pub memory_high: f64,
    /// HOST_MEMORY_CRITICAL when memory use is above this percentage.
    pub memory_critical: f64,
    /// HOST_DISK_HIGH when a filesystem is fuller than this percentage.
    pub disk_high: f64,
    /// HOST_DISK_CRITICAL when a filesystem is fuller than this percentage.
    pub disk_critical: f64,
}

impl Default for HostThresholds {
    fn default() -> Self {
        Self {
            cpu_high: 80.0,
            cpu_critical: 95.0,
            memory_high: 85.0,
            memory_critical: 95.0,
            disk_high: 90.0,
            disk_critical: 98.0,
        }
    }
}

impl Validate for HostThresholds {
    fn validate(&self, key: &str) -> Result<(), PolicyError> {
        let pairs = [
            (
                ("cpu_high", self.cpu_high),
                ("cpu_critical", self.cpu_critical),
            ),
            (
                ("memory_high", self.memory_high),
                ("memory_critical", self.memory_critical),
            ),
            (
                ("disk_high", self.disk_high),
                ("disk_critical", self.disk_critical),
            ),
        ];
        for (high, critical) in pairs {
            percentages(key, &[high, critical])?;
        }
        for (high, critical) in pairs {
            ordered(key, high, critical)?;
        }
        Ok(())
    }
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The last `capacity` CPU readings; the rules read their mean.
#[derive(Debug, Clone)]
pub struct CpuWindow {
    samples: VecDeque<f64>,
    capacity: usize,
}

impl CpuWindow {
    /// A window of `capacity` readings (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            samples: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Adds a reading (0-100; anything else is clamped) and returns the window's mean.
    pub fn push(&mut self, usage_percent: f64) -> f64 {
        let usage = if usage_percent.is_finite() {
            usage_percent.clamp(0.0, 100.0)
        } else {
            0.0
        };
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(usage);
        self.mean()
    }

    pub fn mean(&self) -> f64 {
        if self.samples.is_empty() {
            return 0.0;
        }
        self.samples.iter().sum::<f64>() / self.samples.len() as f64
    }

    /// How many readings the mean is over.
    pub fn len(&self) -> usize {
        self.samples.len()
    }
}

/// The host is sampled, not pushed: the subsystem table generates no snapshot type for it.
impl Entity for HostSnapshot {
    const SUBSYSTEM: Subsystem = Subsystem::Host;

    fn name(&self) -> &Arc<str> {
        match self {
            Self::Cpu(s) => &s.name,
            Self::Memory(s) => &s.name,
            Self::Disk(s) => &s.name,
            Self::CollectorError { name, .. } => name,
        }
    }
}

impl Snapshot for HostSnapshot {
    fn evaluate(&self, _previous: Option<&Self>, t: &Thresholds) -> Evaluation {
        let t = &t.host;
        let mut e = Evaluation::default();
        match self {
            Self::Cpu(cpu) => {
                let usage = (cpu.usage_percent * 10.0).round() / 10.0;
                e.metrics.set("usage", usage);
                e.metrics
                    .set("windowSamples", f64::from(cpu.window_samples));
                e.metrics.set("cores", f64::from(cpu.cores));
                e.metrics.set("load1", cpu.load_1);
                e.metrics.set("load5", cpu.load_5);
                e.metrics.set("load15", cpu.load_15);
                let message = |level: &str| {
                    format!(
                        "CPU use is {level} at {usage:.1}% (mean of {} samples; load {:.2} on {} cores)",
                        cpu.window_samples, cpu.load_1, cpu.cores
                    )
                };
                const READS: &[&str] = &["usage", "load1", "cores"];
                if usage > t.cpu_critical {
                    e.fire(Code::HostCpuCritical, message("critical"), READS);
                } else if usage > t.cpu_high {
                    e.fire(Code::HostCpuHigh, message("high"), READS);
                }
            }
            Self::Memory(memory) => {
                let (used, total) = (memory.used_bytes as f64, memory.total_bytes as f64);
                e.metrics.set("usedBytes", used);
                e.metrics.set("totalBytes", total);
                e.metrics
                    .set("swapUsedBytes", memory.swap_used_bytes as f64);
                e.metrics
                    .set("swapTotalBytes", memory.swap_total_bytes as f64);
                if let Some(swap) = percent(
                    memory.swap_used_bytes as f64,
                    memory.swap_total_bytes as f64,
                ) {
                    e.metrics.set("swapUsage", swap);
                }
                if let Some(usage) = percent(used, total) {
                    e.metrics.set("usage", usage);
                    let message = |level: &str| {
                        format!(
                            "Memory use is {level} at {usage:.1}% ({:.1} of {:.1} GiB)",
                            used / GIB,
                            total / GIB
                        )
                    };
                    const READS: &[&str] = &["usage", "usedBytes", "totalBytes"];
                    if usage > t.memory_critical {
                        e.fire(Code::HostMemoryCritical, message("critical"), READS);
                    } else if usage > t.memory_high {
                        e.fire(Code::HostMemoryHigh, message("high"), READS);
                    }
                }
            }
            Self::Disk(disk) => {
                let (used, total) = (disk.used_bytes as f64, disk.total_bytes as f64);
                e.metrics.set("usedBytes", used);
                e.metrics.set("totalBytes", total);
                if let Some(usage) = percent(used, total) {
                    e.metrics.set("usage", usage);
                    let message = format!(
                        "Disk {} is {usage:.1}% full ({:.1} of {:.1} GiB)",
                        disk.name,
                        used / GIB,
                        total / GIB
                    );
                    const READS: &[&str] = &["usage", "usedBytes", "totalBytes"];
                    if usage > t.disk_critical {
                        e.fire(Code::HostDiskCritical, message, READS);
                    } else if usage > t.disk_high {
                        e.fire(Code::HostDiskHigh, message, READS);
                    }
                }
            }
            Self::CollectorError { name, error } => e.fire(
                Code::HostCollectorError,
                format!("Could not read {name}: {error}"),
                &[],
            ),
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::scoring::snapshot::{CpuSample, DiskSample, MemorySample};

    fn codes(s: &HostSnapshot) -> Vec<Code> {
        s.evaluate(None, &Thresholds::default()).codes()
    }

    fn cpu(usage_percent: f64) -> HostSnapshot {
        HostSnapshot::Cpu(CpuSample {
            name: "cpu".into(),
            usage_percent,
            window_samples: 6,
            cores: 2,
            load_1: 1.0,
            load_5: 1.0,
            load_15: 1.0,
        })
    }

    #[test]
    fn cpu_bands() {
        for (usage, expected) in [
            (80.0, vec![]),
            (80.1, vec![Code::HostCpuHigh]),
            (95.0, vec![Code::HostCpuHigh]),
            (95.1, vec![Code::HostCpuCritical]),
        ] {
            assert_eq!(codes(&cpu(usage)), expected, "{usage}");
        }
    }

    #[test]
    fn memory_bands() {
        for (used, expected) in [
            (850, vec![]),
            (851, vec![Code::HostMemoryHigh]),
            (950, vec![Code::HostMemoryHigh]),
            (951, vec![Code::HostMemoryCritical]),
        ] {
            let s = HostSnapshot::Memory(MemorySample {
                name: "memory".into(),
                used_bytes: used,
                total_bytes: 1000,
                swap_used_bytes: 0,
                swap_total_bytes: 0,
            });
            assert_eq!(codes(&s), expected, "{used}");
        }
    }

    fn disk(used: u64, total: u64) -> HostSnapshot {
        HostSnapshot::Disk(DiskSample {
            name: "/var".into(),
            used_bytes: used,
            total_bytes: total,
        })
    }

    #[test]
    fn disk_bands() {
        for (used, expected) in [
            (900, vec![]),
            (901, vec![Code::HostDiskHigh]),
            (980, vec![Code::HostDiskHigh]),
            (981, vec![Code::HostDiskCritical]),
            (0, vec![]),
        ] {
            assert_eq!(codes(&disk(used, 1000)), expected, "{used}");
        }
        assert_eq!(codes(&disk(0, 0)), vec![]);
    }

    #[test]
    fn disk_message_has_the_numbers() {
        let used = (186.8 * GIB) as u64;
        let total = (200.0 * GIB) as u64;
        let e = disk(used, total).evaluate(None, &Thresholds::default());
        assert_eq!(
            e.findings[0].message,
            "Disk /var is 93.4% full (186.8 of 200.0 GiB)"
        );
    }

    #[test]
    fn collector_error_is_a_warning_with_the_error() {
        let s = HostSnapshot::CollectorError {
            name: "disks".into(),
            error: "permission denied".into(),
        };
        let e = s.evaluate(None, &Thresholds::default());
        assert_eq!(e.codes(), vec![Code::HostCollectorError]);
        assert!(e.findings[0].message.contains("permission denied"));
    }

    #[test]
    fn a_single_cpu_spike_does_not_raise_an_issue() {
        let mut window = CpuWindow::new(6);
        for _ in 0..5 {
            window.push(20.0);
        }
        let mean = window.push(100.0);
        assert_eq!(codes(&cpu(mean)), vec![]);
    }

    #[test]
    fn sustained_cpu_load_raises_an_issue() {
        let mut window = CpuWindow::new(6);
        window.push(20.0);
        let mut mean = 0.0;
        for _ in 0..6 {
            mean = window.push(99.0);
        }
        // The 20% reading has left the window of six: the mean is the 99% readings alone.
        assert_eq!(mean, 99.0);
        assert_eq!(codes(&cpu(mean)), vec![Code::HostCpuCritical]);
    }

    #[test]
    fn non_finite_cpu_reading_does_not_poison_the_window() {
        let mut window = CpuWindow::new(2);
        window.push(f64::NAN);
        assert!(window.push(50.0).is_finite());
    }
}
