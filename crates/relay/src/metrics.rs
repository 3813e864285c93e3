//! `GET /metrics`: the relay's counters in the Prometheus text format (version 0.0.4).

use std::fmt::Write;
use std::sync::atomic::Ordering;

use crate::Relay;

/// One metric: its help line, type and samples (what follows the name: `{labels}`, or a
/// summary's `_sum` and `_count`; the value).
fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP chrysalis_relay_{name} {help}");
    let _ = writeln!(out, "# TYPE chrysalis_relay_{name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "chrysalis_relay_{name}{labels} {value}");
    }
}

/// One unlabelled sample.
fn one(value: u64) -> [(String, f64); 1] {
    [(String::new(), value as f64)]
}

/// This process's resident memory in bytes, from `/proc/self/status` (0 elsewhere).
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

impl Relay {
    /// The `/metrics` body.
    pub(crate) fn metrics(&self) -> String {
        let stats = &self.stats;
        let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
        let rooms = self.hub.lock().expect("hub lock").rooms.len() as u64;
        let mut out = String::new();
        metric(
            &mut out,
            "connections",
            "gauge",
            "Open, authenticated connections.",
            &one(load(&stats.connections)),
        );
        metric(
            &mut out,
            "pending_sockets",
            "gauge",
            "Open sockets not yet authenticated.",
            &one(load(&stats.pending)),
        );
        metric(
            &mut out,
            "rooms",
            "gauge",
            "Rooms with a connection here.",
            &one(rooms),
        );
        metric(
            &mut out,
            "connections_total",
            "counter",
            "Connections authenticated since start.",
            &one(load(&stats.connections_total)),
        );
        metric(
            &mut out,
            "frames_received_total",
            "counter",
            "Binary frames received from peers.",
            &one(load(&stats.frames_received)),
        );
        metric(
            &mut out,
            "bytes_received_total",
            "counter",
            "Bytes of binary frames received from peers.",
            &one(load(&stats.bytes_received)),
        );
        metric(
            &mut out,
            "frames_forwarded_total",
            "counter",
            "Binary frames queued for a receiver here.",
            &one(load(&stats.frames_forwarded)),
        );
        metric(
            &mut out,
            "bytes_forwarded_total",
            "counter",
            "Bytes of binary frames queued for a receiver here.",
            &one(load(&stats.bytes_forwarded)),
        );
        let refused: Vec<(String, f64)> = stats
            .refused
            .lock()
            .expect("stats lock")
            .iter()
            .map(|(code, n)| (format!("{{code=\"{code}\"}}"), *n as f64))
            .collect();
        metric(
            &mut out,
            "refused_total",
            "counter",
            "Refusals by code (see docs/security.md).",
            &refused,
        );
        metric(
            &mut out,
            "resident_memory_bytes",
            "gauge",
            "Resident memory of the relay process.",
            &one(resident_bytes()),
        );
        if let Some(cluster) = &self.cluster {
            let up = u64::from(cluster.up.load(Ordering::Relaxed));
            metric(
                &mut out,
                "redis_up",
                "gauge",
                "Whether Redis answered last time (1) or not (0).",
                &one(up),
            );
            let calls = load(&stats.redis_calls);
            let seconds = load(&stats.redis_micros) as f64 / 1e6;
            metric(
                &mut out,
                "redis_round_trip_seconds",
                "summary",
                "Round trips to Redis (presence scripts and publishing pipelines).",
                &[("_sum".into(), seconds), ("_count".into(), calls as f64)],
            );
            metric(
                &mut out,
                "redis_reconnects_total",
                "counter",
                "Connections to Redis lost.",
                &one(load(&stats.redis_reconnects)),
            );
            metric(
                &mut out,
                "redis_messages_received_total",
                "counter",
                "Messages read from rooms' channels.",
                &one(load(&stats.redis_received)),
            );
            metric(
                &mut out,
                "redis_publish_dropped_total",
                "counter",
                "Frames not published: the queue to Redis was full.",
                &one(cluster.publish_dropped.load(Ordering::Relaxed)),
            );
            metric(
                &mut out,
                "archived_total",
                "counter",
                "Pushes appended to rooms' archives.",
                &one(load(&stats.archived)),
            );
            metric(
                &mut out,
                "reaped_rooms_total",
                "counter",
                "Rooms cleared of a dead relay's peers.",
                &one(load(&stats.reaped)),
            );
            metric(
                &mut out,
                "heartbeat_lapses_total",
                "counter",
                "Heartbeats that found this relay's deadline passed (its sessions were reset).",
                &one(load(&stats.lapses)),
            );
        }
        out
    }
}
