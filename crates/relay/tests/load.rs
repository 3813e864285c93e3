//! The relay under every attack at once, run as a child process so that its resident memory is
//! measured alone: 5,000 half-open WebSocket handshakes, 400 stalled 2 MB first messages, a
//! receiver that never reads, and 1,100 half-sent HTTP requests, from 401 loopback addresses,
//! while an honest pair exchanges frames the whole time and a newcomer joins mid-attack. The
//! relay must stay under 128 MiB resident, answer every honest frame promptly, time out every
//! unauthenticated socket, and still shut down gracefully.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{
    HONEST, RelayProcess, UPGRADE, Ws, address, from_peer, http_get, join_from, key, next_binary,
    raise_file_limit, tcp_from, to_peer, ws_from,
};
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// How long the attackers hold their sockets: past the relay's 10 s auth timeout.
const ATTACK: Duration = Duration::from_secs(16);
/// The relay's resident memory must stay below this.
const MAX_RSS_KIB: u64 = 128 * 1024;
/// Every honest round trip must take less than this.
const MAX_ROUND_TRIP: Duration = Duration::from_secs(1);

/// `each` connections from each of `addresses` addresses (numbered from `first`) that send
/// `request` and then nothing, 10 ms apart from one address to the next (faster, they would
/// only overflow the listen backlog and wait out SYN retransmissions). Sockets the relay
/// refuses at once are kept all the same.
async fn stalled(
    to: SocketAddr,
    first: u32,
    addresses: u32,
    each: usize,
    request: &[u8],
) -> Vec<TcpStream> {
    let mut streams = Vec::new();
    for n in first..first + addresses {
        for _ in 0..each {
            let mut stream = tcp_from(address(n), to).await.unwrap();
            let _ = stream.write_all(request).await;
            streams.push(stream);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    streams
}

/// WebSockets whose first message announces 2 MB, sends 64 KiB of it, and stalls.
async fn large_first_messages(to: SocketAddr, first: u32, addresses: u32, each: usize) -> Vec<Ws> {
    let mut frame = vec![0x81, 0x80 | 127];
    frame.extend_from_slice(&2_000_000u64.to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]);
    frame.extend_from_slice(&[0; 64 * 1024]);
    let mut sockets = Vec::new();
    for n in first..first + addresses {
        for _ in 0..each {
            if let Ok(mut ws) = ws_from(address(n), to).await {
                let _ = ws.get_mut().write_all(&frame).await;
                sockets.push(ws);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sockets
}

/// A receiver in the honest room that never reads, and a sender that sends it 32 KiB frames
/// at 400 a second (under the rate limit) until the test ends.
async fn non_reader(to: SocketAddr, from: u32) -> (Ws, tokio::task::JoinHandle<()>) {
    let (kr, ks) = (key(20), key(21));
    let (receiver, joined) = join_from(to, address(from), &kr, "honest").await.unwrap();
    let (mut sender, _) = join_from(to, address(from + 1), &ks, "honest")
        .await
        .unwrap();
    let frame = to_peer(joined.handle, &[0; 32 * 1024]);
    let flood = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        loop {
            tick.tick().await;
            for _ in 0..2 {
                if sender.send(Message::binary(frame.clone())).await.is_err() {
                    return;
                }
            }
        }
    });
    (receiver, flood)
}

/// Two honest peers from 127.0.0.1: `a` sends `b` a numbered frame, `b` echoes it, `a` times
/// the round trip, every 10 ms until `stop`. A round trip over 10 s fails the test.
async fn honest_pair(to: SocketAddr, stop: Arc<AtomicBool>) -> Vec<Duration> {
    let (ka, kb) = (key(1), key(2));
    let (mut a, joined_a) = join_from(to, HONEST, &ka, "honest").await.unwrap();
    let (b, joined_b) = join_from(to, HONEST, &kb, "honest").await.unwrap();
    let (a_handle, b_handle) = (joined_a.handle, joined_b.handle);
    tokio::spawn(async move {
        let (mut tx, mut rx) = b.split();
        while let Some(Ok(message)) = rx.next().await {
            if let Message::Binary(frame) = message {
                let (from, frame) = from_peer(&frame);
                assert_eq!(from, a_handle, "only a sends b frames");
                if tx
                    .send(Message::binary(to_peer(a_handle, frame)))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
    });
    let mut round_trips = Vec::new();
    for n in 0u64.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let sent = Instant::now();
        a.send(Message::binary(to_peer(b_handle, &n.to_le_bytes())))
            .await
            .unwrap();
        while from_peer(&next_binary(&mut a).await) != (b_handle, &n.to_le_bytes()[..]) {}
        round_trips.push(sent.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    round_trips
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_every_attack_at_once_the_relay_stays_small_and_serves_honest_peers() {
    let files = raise_file_limit();
    assert!(
        files >= 10_000,
        "this test holds ~6,600 sockets: the hard open-file limit is {files}"
    );
    let mut relay = RelayProcess::start();
    let to = relay.addr;
    let (idle_kib, _) = relay.memory();
    let stop = Arc::new(AtomicBool::new(false));
    let honest = tokio::spawn(honest_pair(to, stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = Instant::now();
    let attacks = tokio::spawn(async move {
        let opened = tokio::join!(
            stalled(to, 1000, 250, 20, UPGRADE),
            large_first_messages(to, 2000, 40, 10),
            stalled(to, 3000, 110, 10, b"GET /health HTTP/1.1\r\nHost: x\r\n"),
            non_reader(to, 4000),
        );
        (opened, started.elapsed())
    });
    let newcomer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let asked = Instant::now();
        let joined = join_from(to, HONEST, &key(3), "honest").await;
        (joined.map(|_| ()), asked.elapsed())
    });
    let mut sampled_kib = 0;
    while started.elapsed() < ATTACK {
        sampled_kib = sampled_kib.max(relay.memory().0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ((half_open, large, http, (receiver, flood)), opening) = attacks.await.unwrap();
    let (joined, join_time) = newcomer.await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let mut round_trips = honest.await.unwrap();
    let health = http_get(to, "/health").await;
    let health: serde_json::Value =
        serde_json::from_str(health.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let (_, peak_kib) = relay.memory();
    flood.abort();
    let shutdown = relay.stop();
    drop((half_open, large, http, receiver));

    round_trips.sort();
    let at = |q: f64| round_trips[((round_trips.len() - 1) as f64 * q) as usize];
    println!(
        "relay under attack: resident {idle_kib} KiB idle, peak {peak_kib} KiB (sampled max \
         {sampled_kib} KiB); attack sockets opened in {:.1} s and held {} s; honest round trips: \
         {}, median {:?}, p99 {:?}, max {:?}; a newcomer joined in {join_time:?}; shutdown in \
         {shutdown:?}; /health at the end: {health}",
        opening.as_secs_f64(),
        ATTACK.as_secs(),
        round_trips.len(),
        at(0.5),
        at(0.99),
        at(1.0),
    );
    assert!(
        peak_kib < MAX_RSS_KIB,
        "the relay peaked at {peak_kib} KiB resident"
    );
    assert!(
        at(1.0) < MAX_ROUND_TRIP,
        "an honest round trip took {:?}",
        at(1.0)
    );
    assert!(
        round_trips.len() >= 500,
        "{} honest round trips",
        round_trips.len()
    );
    joined.expect("a newcomer joins during the attack");
    let refused = &health["refused"];
    for code in [
        "ADDRESS_BUSY",
        "PENDING_EVICTED",
        "AUTH_TIMEOUT",
        "OVERSIZED",
        "SLOW_RECEIVER",
    ] {
        assert!(refused[code].as_u64() > Some(0), "no {code}: {health}");
    }
    assert_eq!(
        health["pending"], 1,
        "only the /health request itself is pending"
    );
}
