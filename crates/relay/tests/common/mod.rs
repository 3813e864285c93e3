//! Helpers shared by the relay's test binaries: keys, clients bound to a chosen loopback source
//! address (Linux routes all of 127.0.0.0/8 to loopback, so one machine plays many client
//! addresses), authentication, and reading what the relay answers.
#![allow(dead_code)] // each test binary uses a part

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use chrysalis_crypto::SigningKey;
use chrysalis_relay::protocol::{
    Handle, RoomPeer, ServerMessage, TO_PEER, auth_message, put_handle, take_handle,
};
use chrysalis_relay::{RelayConfig, RelayHandle, start};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{WebSocketStream, client_async};

/// A client WebSocket.
pub type Ws = WebSocketStream<TcpStream>;

/// The honest clients' address.
pub const HONEST: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// A WebSocket upgrade request, complete.
pub const UPGRADE: &[u8] =
    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// Starts a relay in this process on a free loopback port.
pub async fn relay(config: RelayConfig) -> RelayHandle {
    start(TcpListener::bind("127.0.0.1:0").await.unwrap(), config).unwrap()
}

/// Raises this process's open-file limit to its hard limit: the tests hold thousands of sockets.
pub fn raise_file_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).expect("raise RLIMIT_NOFILE")
}

/// A deterministic identity.
pub fn key(n: u32) -> SigningKey {
    let mut seed = [7u8; 32];
    seed[..4].copy_from_slice(&n.to_le_bytes());
    SigningKey::from_seed(&seed).unwrap()
}

/// The `n`-th client address other than 127.0.0.1 (127.1.0.0 + n).
pub fn address(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 0)) + n)
}

/// A TCP connection from `source` to `to`.
pub async fn tcp_from(source: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    socket.connect(to).await
}

/// A WebSocket from `source` to the relay at `to`.
pub async fn ws_from(source: Ipv4Addr, to: SocketAddr) -> Result<Ws, tungstenite::Error> {
    let tcp = tcp_from(source, to).await?;
    let (ws, _) = client_async(format!("ws://{to}/"), tcp).await?;
    Ok(ws)
}

/// The next control (text) message, within 10 s.
pub async fn next_control(ws: &mut Ws) -> ServerMessage {
    next_control_within(ws, Duration::from_secs(10)).await
}

/// The next control (text) message, within `limit`.
pub async fn next_control_within(ws: &mut Ws, limit: Duration) -> ServerMessage {
    loop {
        let message = tokio::time::timeout(limit, ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("no error");
        if let Message::Text(text) = message {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

/// The next binary frame, within 10 s.
pub async fn next_binary(ws: &mut Ws) -> Vec<u8> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
            .unwrap()
            .unwrap();
        if let Message::Binary(bytes) = message {
            return bytes.to_vec();
        }
    }
}

/// Connects from `source` to the relay at `to` and reads the challenge: the socket and the nonce.
pub async fn challenge_from(to: SocketAddr, source: Ipv4Addr) -> (Ws, Vec<u8>) {
    let mut ws = ws_from(source, to).await.unwrap();
    let ServerMessage::Challenge { version, nonce } = next_control(&mut ws).await else {
        panic!("expected a challenge");
    };
    assert_eq!(version, 2);
    (ws, hex::decode(nonce).unwrap())
}

/// Connects from 127.0.0.1 and reads the challenge.
pub async fn challenge(relay: &RelayHandle) -> (Ws, Vec<u8>) {
    challenge_from(relay.addr, HONEST).await
}

/// The auth answer of `key` for `room`, signed for `signed_room`.
pub fn auth(key: &SigningKey, room: &str, signed_room: &str, nonce: &[u8]) -> Message {
    auth_with(key, room, signed_room, nonce, None)
}

/// The auth answer of `key` for `room`, signed for `signed_room`, with a capability.
pub fn auth_with(
    key: &SigningKey,
    room: &str,
    signed_room: &str,
    nonce: &[u8],
    capability: Option<&str>,
) -> Message {
    let signature = key.sign(&auth_message(nonce, signed_room));
    let mut answer = serde_json::json!({
        "type": "auth", "version": 2, "room": room,
        "peer": hex::encode(key.public_key()), "signature": hex::encode(signature),
    });
    if let Some(capability) = capability {
        answer["capability"] = capability.into();
    }
    Message::text(answer.to_string())
}

/// What the welcome told an admitted peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// Its own handle in the room.
    pub handle: Handle,
    /// The peers already in the room, by handle (that is, in join order).
    pub peers: Vec<RoomPeer>,
    /// Whether the relay lets it write.
    pub write: bool,
}

/// Connects from `source` to the relay at `to` and authenticates: the socket and what the
/// welcome said, or the refusal's code.
pub async fn join_from(
    to: SocketAddr,
    source: Ipv4Addr,
    key: &SigningKey,
    room: &str,
) -> Result<(Ws, Admitted), String> {
    join_with(to, source, key, room, None).await
}

/// Connects from `source` to the relay at `to` and authenticates with `capability`: the
/// socket and what the welcome said, or the refusal's code.
pub async fn join_with(
    to: SocketAddr,
    source: Ipv4Addr,
    key: &SigningKey,
    room: &str,
    capability: Option<&str>,
) -> Result<(Ws, Admitted), String> {
    let (mut ws, nonce) = challenge_from(to, source).await;
    ws.send(auth_with(key, room, room, &nonce, capability))
        .await
        .unwrap();
    match next_control(&mut ws).await {
        ServerMessage::Welcome {
            peer,
            handle,
            mut peers,
            write,
            archive: _,
        } => {
            assert_eq!(peer, hex::encode(key.public_key()));
            peers.sort_by_key(|p| p.handle);
            Ok((
                ws,
                Admitted {
                    handle,
                    peers,
                    write,
                },
            ))
        }
        ServerMessage::Error { code, .. } => Err(code),
        other => panic!("expected welcome, got {other:?}"),
    }
}

/// Connects from 127.0.0.1 and authenticates.
pub async fn join(relay: &RelayHandle, key: &SigningKey, room: &str) -> (Ws, Admitted) {
    join_from(relay.addr, HONEST, key, room)
        .await
        .unwrap_or_else(|code| panic!("refused: {code}"))
}

/// The error and close a refused connection gets (the code is empty if no error came).
pub async fn refused(ws: &mut Ws) -> (String, Option<u16>) {
    let mut code = String::new();
    while let Some(Ok(message)) = ws.next().await {
        match message {
            Message::Text(text) => {
                if let Ok(ServerMessage::Error { code: c, .. }) =
                    serde_json::from_str(text.as_str())
                {
                    code = c;
                }
            }
            Message::Close(frame) => return (code, frame.map(|f| u16::from(f.code))),
            _ => {}
        }
    }
    (code, None)
}

/// `TO_PEER ‖ handle ‖ frame`: `frame` for the peer whose handle is `handle`.
pub fn to_peer(handle: Handle, frame: &[u8]) -> Vec<u8> {
    let mut message = vec![TO_PEER];
    put_handle(&mut message, handle);
    message.extend_from_slice(frame);
    message
}

/// A binary message from the relay, `handle ‖ frame`: the sender's handle and the frame.
pub fn from_peer(message: &[u8]) -> (Handle, &[u8]) {
    take_handle(message).unwrap_or_else(|| panic!("no sender handle in {message:?}"))
}

/// A pair in a room still exchanging frames: proof that a refusal elsewhere affected no one.
/// `a` sends to `b`'s handle. Returns how many other frames `b` had to skip first.
pub async fn pair_still_works(a: &mut Ws, b: &mut Ws, b_handle: Handle) -> usize {
    a.send(Message::binary(to_peer(b_handle, b"still here")))
        .await
        .unwrap();
    let mut skipped = 0;
    while from_peer(&next_binary(b).await).1 != b"still here" {
        skipped += 1;
    }
    skipped
}

/// Whether the relay still holds `stream` open: it has not closed it within 300 ms (whatever
/// the relay sent meanwhile is read and dropped).
pub async fn still_open(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf)).await {
            Err(_) => return true,
            Ok(Ok(0) | Err(_)) => return false,
            Ok(Ok(_)) => {}
        }
    }
}

/// How many of `streams` the relay still holds open.
pub async fn count_open(streams: &mut [TcpStream]) -> usize {
    futures_util::future::join_all(streams.iter_mut().map(still_open))
        .await
        .into_iter()
        .filter(|open| *open)
        .count()
}

/// A plain HTTP GET from 127.0.0.1: the whole response.
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

/// A `redis-server` of its own on a free loopback port, stopped when dropped.
pub struct RedisServer {
    /// `redis://127.0.0.1:PORT`.
    pub url: String,
    /// Its port, to start it again on the same one.
    pub port: u16,
    child: std::process::Child,
}

impl RedisServer {
    /// Starts one on a free port (installed by scripts/lib.sh's `ensure_system_packages`).
    pub async fn start() -> RedisServer {
        for _ in 0..10 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            if let Some(server) = Self::start_on(port).await {
                return server;
            }
        }
        panic!("redis-server did not start on a free port");
    }

    /// Starts one on `port` (no persistence), if it comes up within 5 s.
    pub async fn start_on(port: u16) -> Option<RedisServer> {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (scripts/lib.sh installs it: ensure_system_packages)");
        let mut server = RedisServer {
            url: format!("redis://127.0.0.1:{port}"),
            port,
            child,
        };
        for _ in 0..100 {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await {
                let _ = stream.write_all(b"PING\r\n").await;
                let mut buf = [0u8; 7];
                if stream.read_exact(&mut buf).await.is_ok() && &buf == b"+PONG\r\n" {
                    return Some(server);
                }
            }
            if server.child.try_wait().ok().flatten().is_some() {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Kills it at once (SIGKILL) and waits for the exit.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The relay binary as a child process, killed if the test ends without stopping it.
pub struct RelayProcess {
    child: Child,
    /// Kept open, so the relay can still print when it stops.
    _stdout: BufReader<ChildStdout>,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl RelayProcess {
    /// The relay with default limits.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// The relay with the flags `args`.
    pub fn start_with(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chrysalis-relay"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = line.trim().rsplit("ws://").next().unwrap().parse().unwrap();
        RelayProcess {
            child,
            _stdout: stdout,
            addr,
        }
    }

    /// Resident memory now and at its peak, in KiB.
    pub fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| -> u64 {
            let line = status.lines().find_map(|l| l.strip_prefix(name)).unwrap();
            line.trim().trim_end_matches("kB").trim().parse().unwrap()
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// SIGTERM, then the time until the process exits (at most 10 s).
    pub fn stop(&mut self) -> Duration {
        let asked = Instant::now();
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        while asked.elapsed() < Duration::from_secs(10) {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "the relay exited with {status}");
                return asked.elapsed();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the relay did not stop within 10 s of SIGTERM");
    }
}

impl RelayProcess {
    /// SIGKILL: the relay dies at once, telling nobody.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to the relay.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status();
        assert!(sent.unwrap().success(), "kill -{signal} {pid}");
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
