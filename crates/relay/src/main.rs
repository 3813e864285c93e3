//! `chrysalis-relay [--listen ADDR] [--max-frame BYTES] [--rate N] [--burst N]
//! [--max-connections-per-peer N] [--max-room-peers N] [--max-connections N]`
//!
//! Each flag can also come from the environment: `CHRYSALIS_RELAY_LISTEN`,
//! `CHRYSALIS_RELAY_MAX_FRAME`, … (upper-case, `_` for `-`). Prints
//! `chrysalis-relay listening on ws://ADDR` once ready (port 0 picks a free port) and shuts down
//! gracefully on SIGINT or SIGTERM.

use chrysalis_relay::RelayConfig;

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
                .take(6)
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
        ..defaults
    };
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
