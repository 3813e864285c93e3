//! `chrysalis-relay [--listen ADDR] [--max-frame BYTES] [--rate N] [--burst N]
//! [--max-connections-per-peer N] [--max-room-peers N] [--max-connections N]
//! [--max-connections-per-address N] [--max-room-connections-per-address N] [--max-pending N]
//! [--max-pending-per-address N] [--auth-timeout-ms MS] [--max-queue-bytes BYTES]
//! [--max-queue-bytes-per-address BYTES]`
//!
//! Each flag can also come from the environment: `CHRYSALIS_RELAY_LISTEN`,
//! `CHRYSALIS_RELAY_MAX_FRAME`, … (upper-case, `_` for `-`). The defaults are
//! `chrysalis_relay::RelayConfig::default()`. At start the relay raises its open-file limit to
//! the hard limit and, if `max-pending + max-connections` would not fit in it with a reserve of
//! 64, lowers them (and says so). Prints `chrysalis-relay listening on ws://ADDR` once ready (port
//! 0 picks a free port) and shuts down gracefully on SIGINT or SIGTERM.

use std::time::Duration;

use chrysalis_relay::RelayConfig;

/// File handles kept free beyond the connection limits: the listener, the runtime, and sockets
/// accepted only to be closed.
const FILE_RESERVE: u64 = 64;

fn main() {
    if let Err(message) = run() {
        eprintln!("chrysalis-relay: {message}");
        std::process::exit(2);
    }
}

/// The value of `--name`, or of `CHRYSALIS_RELAY_NAME`.
fn setting(args: &[String], name: &str) -> Option<String> {
    let flag = format!("--{name}");
    args.iter()
        .position(|a| *a == flag)
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| {
            let env = format!("CHRYSALIS_RELAY_{}", name.to_uppercase().replace('-', "_"));
            std::env::var(env).ok()
        })
}

fn number<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T, String> {
    match setting(args, name) {
        Some(v) => v
            .parse()
            .map_err(|_| format!("--{name} {v:?} is not a number")),
        None => Ok(default),
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "{}",
            include_str!("main.rs")
                .lines()
                .take_while(|line| line.starts_with("//!"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        return Ok(());
    }
    let defaults = RelayConfig::default();
    let config = RelayConfig {
        max_frame: number(&args, "max-frame", defaults.max_frame)?,
        rate_per_second: number(&args, "rate", defaults.rate_per_second)?,
        burst: number(&args, "burst", defaults.burst)?,
        max_connections_per_peer: number(
            &args,
            "max-connections-per-peer",
            defaults.max_connections_per_peer,
        )?,
        max_room_peers: number(&args, "max-room-peers", defaults.max_room_peers)?,
        max_connections: number(&args, "max-connections", defaults.max_connections)?,
        max_connections_per_address: number(
            &args,
            "max-connections-per-address",
            defaults.max_connections_per_address,
        )?,
        max_room_connections_per_address: number(
            &args,
            "max-room-connections-per-address",
            defaults.max_room_connections_per_address,
        )?,
        max_pending: number(&args, "max-pending", defaults.max_pending)?,
        max_pending_per_address: number(
            &args,
            "max-pending-per-address",
            defaults.max_pending_per_address,
        )?,
        auth_timeout: Duration::from_millis(number(
            &args,
            "auth-timeout-ms",
            defaults.auth_timeout.as_millis() as u64,
        )?),
        max_queue_bytes: number(&args, "max-queue-bytes", defaults.max_queue_bytes)?,
        max_queue_bytes_per_address: number(
            &args,
            "max-queue-bytes-per-address",
            defaults.max_queue_bytes_per_address,
        )?,
    };
    let config = fit_file_limit(config);
    let listen = setting(&args, "listen").unwrap_or_else(|| "127.0.0.1:8787".into());
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let relay = chrysalis_relay::start(listener, config).map_err(|e| e.to_string())?;
        println!("chrysalis-relay listening on ws://{}", relay.addr);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| e.to_string())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        println!("chrysalis-relay shutting down");
        relay.shutdown().await.map_err(|e| e.to_string())
    })
}

/// Raises the open-file limit to the hard limit and lowers the socket limits to fit in it: at
/// most half for unauthenticated sockets, the rest for connections, less a reserve.
fn fit_file_limit(mut config: RelayConfig) -> RelayConfig {
    let files = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    let room = usize::try_from(files.saturating_sub(FILE_RESERVE)).unwrap_or(usize::MAX);
    if config.max_pending + config.max_connections > room {
        config.max_pending = config.max_pending.min(room / 2);
        config.max_connections = config.max_connections.min(room - config.max_pending);
        eprintln!(
            "chrysalis-relay: {files} file handles: at most {} unauthenticated sockets and {} \
             connections",
            config.max_pending, config.max_connections
        );
    }
    config
}
