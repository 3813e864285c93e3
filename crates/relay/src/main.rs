//! `chrysalis-relay [--listen ADDR] [--max-frame BYTES] [--rate N] [--burst N]
//! [--max-connections-per-peer N] [--max-room-peers N] [--max-connections N]
//! [--max-connections-per-address N] [--max-room-connections-per-address N] [--max-pending N]
//! [--max-pending-per-address N] [--auth-timeout-ms MS] [--max-queue-bytes BYTES]
//! [--max-queue-bytes-per-address BYTES] [--trust-issuer HEX,…] [--capability-rooms PREFIX,…]
//! [--redis URL] [--archive] [--archive-max-age-s S] [--archive-max-bytes BYTES]`
//!
//! `--redis redis://HOST:PORT` (better `CHRYSALIS_RELAY_REDIS`, which keeps a password out of
//! the process list): relays on one Redis share rooms; without it the relay holds its rooms alone.
//!
//! `--archive` (with `--redis`) keeps each room's recent pushes in Redis, at most
//! `--archive-max-age-s` seconds (3600) and `--archive-max-bytes` bytes (2 MiB) per room, and
//! hands them to peers that join.
//!
//! `--trust-issuer` lists the issuer public keys whose capabilities the relay accepts;
//! `--capability-rooms` the room-name prefixes that require one (an empty prefix: every room).
//!
//! `chrysalis-relay capability keygen --out FILE` writes a new issuer seed (hex, mode 0600) to
//! FILE and prints its public key, for `--trust-issuer`.
//! `chrysalis-relay capability issue --issuer-seed-file FILE --room ROOM --peer HEX
//! --access read|write --ttl SECONDS` prints a capability for one peer in one room and its id.
//! `chrysalis-relay capability revoke --redis URL --id HEX --until UNIX` revokes one (relays on
//! that Redis refuse it and close the sessions that presented it; keep it until its expiry).
//!
//! Each flag can also come from the environment: `CHRYSALIS_RELAY_LISTEN`,
//! `CHRYSALIS_RELAY_MAX_FRAME`, … (upper-case, `_` for `-`). The defaults are
//! `chrysalis_relay::RelayConfig::default()`. At start the relay raises its open-file limit to
//! the hard limit and, if `max-pending + max-connections` would not fit in it with a reserve of
//! 64, lowers them (and says so). Prints `chrysalis-relay listening on ws://ADDR` once ready (port
//! 0 picks a free port) and shuts down gracefully on SIGINT or SIGTERM.

use std::time::Duration;

use chrysalis_crypto::SigningKey;
use chrysalis_relay::RelayConfig;
use chrysalis_relay::protocol::{Access, Capability, parse_peer};

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

/// The value of `--name` as a comma-separated list (empty without the flag).
fn list(args: &[String], name: &str) -> Vec<String> {
    setting(args, name).map_or_else(Vec::new, |v| v.split(',').map(str::to_owned).collect())
}

/// The issuer keys of `--trust-issuer`.
fn trusted_issuers(args: &[String]) -> Result<Vec<[u8; 32]>, String> {
    list(args, "trust-issuer")
        .iter()
        .map(|hex| parse_peer(hex.trim()).ok_or(format!("--trust-issuer {hex:?}: 64 hex digits")))
        .collect()
}

fn required(args: &[String], name: &str) -> Result<String, String> {
    setting(args, name).ok_or(format!("--{name} is required"))
}

/// `capability keygen` and `capability issue`.
fn capability(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("keygen") => {
            let out = required(args, "out")?;
            let seed: [u8; 32] = chrysalis_crypto::random_array().map_err(|e| e.to_string())?;
            let key = SigningKey::from_seed(&seed).map_err(|e| e.to_string())?;
            let mut file = std::fs::OpenOptions::new();
            std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
            std::io::Write::write_all(
                &mut file
                    .write(true)
                    .create_new(true)
                    .open(&out)
                    .map_err(|e| format!("cannot create {out}: {e}"))?,
                hex::encode(seed).as_bytes(),
            )
            .map_err(|e| format!("cannot write {out}: {e}"))?;
            println!("{}", hex::encode(key.public_key()));
            Ok(())
        }
        Some("issue") => {
            let path = required(args, "issuer-seed-file")?;
            let seed =
                std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
            let seed = parse_peer(seed.trim()).ok_or(format!("{path}: 64 hex digits expected"))?;
            let issuer = SigningKey::from_seed(&seed).map_err(|e| e.to_string())?;
            let room = required(args, "room")?;
            let peer = required(args, "peer")?;
            let peer = parse_peer(&peer).ok_or(format!("--peer {peer:?}: 64 hex digits"))?;
            let access = match required(args, "access")?.as_str() {
                "read" => Access::Read,
                "write" => Access::ReadWrite,
                other => return Err(format!("--access {other:?}: read or write")),
            };
            let ttl: u64 = number(args, "ttl", 3600)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|e| e.to_string())?
                .as_secs();
            let id: [u8; 16] = chrysalis_crypto::random_array().map_err(|e| e.to_string())?;
            let token =
                Capability::issue(&issuer, &room, &peer, access, now.saturating_add(ttl), id)
                    .ok_or("--room: 1 to 128 bytes")?;
            println!("{token}");
            eprintln!("id {} expires {}", hex::encode(id), now.saturating_add(ttl));
            Ok(())
        }
        Some("revoke") => {
            let url = required(args, "redis")?;
            let id = required(args, "id")?;
            let id: [u8; 16] = hex::decode(&id)
                .ok()
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or(format!(
                    "--id {id:?}: 32 hex digits (the id `issue` printed)"
                ))?;
            let until: u64 = number(args, "until", 0)?;
            if until == 0 {
                return Err("--until: the capability's expiry (Unix seconds)".into());
            }
            let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
            runtime.block_on(chrysalis_relay::revoke_capability(&url, id, until))?;
            println!("revoked {} until {until}", hex::encode(id));
            Ok(())
        }
        _ => Err("capability keygen | capability issue | capability revoke (see --help)".into()),
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("capability") {
        return capability(&args[1..]);
    }
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
        trusted_issuers: trusted_issuers(&args)?,
        capability_rooms: list(&args, "capability-rooms"),
        redis: setting(&args, "redis"),
        archive: args.iter().any(|a| a == "--archive")
            || std::env::var("CHRYSALIS_RELAY_ARCHIVE").is_ok_and(|v| v == "1"),
        archive_max_age: Duration::from_secs(number(
            &args,
            "archive-max-age-s",
            defaults.archive_max_age.as_secs(),
        )?),
        archive_max_bytes: number(&args, "archive-max-bytes", defaults.archive_max_bytes)?,
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
    if config.archive && config.redis.is_none() {
        return Err("--archive keeps rooms' pushes in Redis: it needs --redis".into());
    }
    if config.archive_max_bytes > config.max_queue_bytes / 2 {
        return Err(format!(
            "--archive-max-bytes is at most half of --max-queue-bytes ({}): the hand-off goes \
             through the joiner's queue",
            config.max_queue_bytes / 2
        ));
    }
    if !config.capability_rooms.is_empty() && config.trusted_issuers.is_empty() {
        return Err(
            "--capability-rooms needs --trust-issuer: no peer could join those rooms".into(),
        );
    }
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
