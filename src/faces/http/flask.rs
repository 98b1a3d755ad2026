//! `/api/process/health-check`: the Flask seed's response, field for field, so a client of that
//! endpoint can switch to healthscore with no change. Its numbers come from the reports: the
//! host sampler's CPU, memory and root disk, the executors' active threads and queues, and the
//! caches' hit rate over their last windows.

use axum::{extract::State, http::StatusCode, response::Response};
use serde::Serialize;

use super::{json_answer, to_json, Face};
use crate::core::{
    published::{Published, Rendition},
    scoring::{HealthReport, Subsystem},
};

pub async fn health_check(State(face): State<Face>) -> Response {
    let state = face.engine.state();
    json_answer(
        StatusCode::OK,
        &state,
        Some(Rendition::FlaskHealthCheck),
        |state| to_json(&response(state)),
    )
}

#[derive(Serialize)]
struct FlaskResponse {
    success: bool,
    health_report: FlaskReport,
    timestamp: String,
}

#[derive(Serialize)]
struct FlaskReport {
    overall_status: &'static str,
    health_score: u32,
    issues: Vec<String>,
    system_stats: SystemStats,
    recommendations: Vec<String>,
}

#[derive(Serialize)]
struct SystemStats {
    resource_usage: ResourceUsage,
    process_pool: ProcessPool,
    cache: Cache,
}

#[derive(Serialize)]
struct ResourceUsage {
    cpu_percent: f64,
    memory_percent: f64,
    disk_percent: f64,
}

#[derive(Serialize)]
struct ProcessPool {
    active_workers: u64,
    queue_size: u64,
}

#[derive(Serialize)]
struct Cache {
    hit_rate: f64,
}

/// The seed's bands over the score: excellent from 90, good from 75, fair from 50, poor from
/// 25, critical below.
pub fn overall_status(score: u32) -> &'static str {
    match score {
        90.. => "excellent",
        75..=89 => "good",
        50..=74 => "fair",
        25..=49 => "poor",
        _ => "critical",
    }
}

/// The sum of `key` over a report's entities.
fn total(report: &HealthReport, key: &str) -> f64 {
    report
        .entities
        .iter()
        .filter_map(|entity| entity.metrics.get(key))
        .sum()
}

/// `key` of the host entity `name`, 0 when the host sampler has not read it.
fn host(report: &HealthReport, name: &str, key: &str) -> f64 {
    report
        .entities
        .iter()
        .find(|entity| &*entity.name == name && entity.source.as_ref() == "host")
        .and_then(|entity| entity.metrics.get(key))
        .unwrap_or(0.0)
}

fn response(state: &Published) -> FlaskResponse {
    let system = &state.system;
    let host_report = state.report(Subsystem::Host);
    let executors = state.report(Subsystem::Executors);
    let caches = state.report(Subsystem::Caches);
    let (hits, misses) = (total(caches, "hits"), total(caches, "misses"));
    let mut recommendations: Vec<String> = Vec::new();
    for issue in system.issues() {
        if !recommendations
            .iter()
            .any(|r| r == issue.suggested_action.as_ref())
        {
            recommendations.push(issue.suggested_action.to_string());
        }
    }
    FlaskResponse {
        success: true,
        health_report: FlaskReport {
            overall_status: overall_status(system.score),
            health_score: system.score,
            issues: system.issues().map(|issue| issue.message.clone()).collect(),
            system_stats: SystemStats {
                resource_usage: ResourceUsage {
                    cpu_percent: host(host_report, "cpu", "usage"),
                    memory_percent: host(host_report, "memory", "usage"),
                    disk_percent: host(host_report, "/", "usage"),
                },
                process_pool: ProcessPool {
                    active_workers: total(executors, "active") as u64,
                    queue_size: total(executors, "queued") as u64,
                },
                cache: Cache {
                    // Over every cache's last window; 0 before any lookup.
                    hit_rate: if hits + misses > 0.0 {
                        (hits / (hits + misses) * 1000.0).round() / 10.0
                    } else {
                        0.0
                    },
                },
            },
            recommendations,
        },
        timestamp: prost_types::Timestamp::from(state.stamp.generated_at).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_bands_follow_the_seed() {
        for (score, expected) in [
            (100, "excellent"),
            (90, "excellent"),
            (89, "good"),
            (75, "good"),
            (74, "fair"),
            (50, "fair"),
            (49, "poor"),
            (25, "poor"),
            (24, "critical"),
            (0, "critical"),
        ] {
            assert_eq!(overall_status(score), expected, "{score}");
        }
    }
}
