//! One WebSocket's life. The handshake phase reads at most a few KiB: the challenge goes out,
//! one small answer must come back before the ticket expires. The frame phase then reads
//! messages up to the frame limit, applies the rules, and writes from a queue bounded in bytes.

use std::io::Cursor;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error, Message, Utf8Bytes};

use crate::admission::Ticket;
use crate::protocol::{MAX_AUTH_MESSAGE, PROTOCOL_VERSION, ServerMessage};
use crate::{
    Closing, GOING_AWAY, Refusal, Relay, Session, TOO_BIG, TokenBucket, close, stopped, text,
};

/// The upgraded connection.
type Io = TokioIo<hyper::upgrade::Upgraded>;

/// What the handshake phase reads at most: the answer's frame, and what one read takes past it.
const HANDSHAKE_BYTES: usize = 2 * MAX_AUTH_MESSAGE;
/// The size of one read in the handshake phase.
const HANDSHAKE_READ: usize = 512;
/// The read buffer of the frame phase; larger messages are read in pieces of this size.
const FRAME_READ: usize = 8 * 1024;
/// How long a closing connection may take to write what is queued for it.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// What a queued message costs besides its payload.
const MESSAGE_OVERHEAD: usize = 64;

/// Queued bytes and their bound.
pub(crate) struct Budget {
    bytes: AtomicUsize,
    limit: usize,
}

impl Budget {
    /// An empty budget of `limit` bytes.
    pub(crate) fn new(limit: usize) -> Self {
        Budget {
            bytes: AtomicUsize::new(0),
            limit,
        }
    }

    /// Takes `cost` bytes, unless that would take a non-empty budget past its limit.
    fn take(&self, cost: usize) -> bool {
        let before = self.bytes.fetch_add(cost, Ordering::Relaxed);
        let within = before == 0 || before + cost <= self.limit;
        if !within {
            self.give(cost);
        }
        within
    }

    fn give(&self, cost: usize) {
        self.bytes.fetch_sub(cost, Ordering::Relaxed);
    }
}

/// One connection's outgoing queue, bounded in bytes, as are all queues of its address together.
#[derive(Clone)]
pub(crate) struct Outbox {
    /// Tells a peer's connections apart.
    pub(crate) id: u64,
    tx: mpsc::UnboundedSender<Message>,
    backlog: Arc<Backlog>,
}

/// What an outbox holds, and the signal that it overflowed.
struct Backlog {
    own: Budget,
    address: Arc<Budget>,
    overflow: Notify,
    /// The relay ends the connection (its capability was revoked, Redis was reset).
    ended: Notify,
}

impl Backlog {
    fn take(&self, cost: usize) -> bool {
        if !self.own.take(cost) {
            return false;
        }
        if !self.address.take(cost) {
            self.own.give(cost);
            return false;
        }
        true
    }

    fn give(&self, cost: usize) {
        self.own.give(cost);
        self.address.give(cost);
    }
}

impl Drop for Backlog {
    /// What was queued and never written goes back to the address.
    fn drop(&mut self) {
        self.address.give(self.own.bytes.load(Ordering::Relaxed));
    }
}

fn cost(message: &Message) -> usize {
    message.len() + MESSAGE_OVERHEAD
}

impl Outbox {
    /// A queue of at most `limit` bytes that also draws on its address's budget, and its
    /// receiving end.
    pub(crate) fn new(
        id: u64,
        limit: usize,
        address: Arc<Budget>,
    ) -> (Self, mpsc::UnboundedReceiver<Message>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let backlog = Arc::new(Backlog {
            own: Budget::new(limit),
            address,
            overflow: Notify::new(),
            ended: Notify::new(),
        });
        (Outbox { id, tx, backlog }, rx)
    }

    /// Queues `closing`'s error and close frame and ends the connection (without waiting for
    /// the peer to answer the close).
    pub(crate) fn end(&self, closing: &crate::Closing) {
        for message in closing.messages() {
            self.push(message);
        }
        self.backlog.ended.notify_one();
    }

    /// Queues `message`. If that would take a non-empty queue, or its address's non-empty
    /// queues, past their limit, the message is dropped, the connection is told to close, and
    /// this returns false.
    pub(crate) fn push(&self, message: Message) -> bool {
        let cost = cost(&message);
        if !self.backlog.take(cost) {
            self.backlog.overflow.notify_one();
            return false;
        }
        // An error means the connection is closing already.
        let sent = self.tx.send(message).is_ok();
        if !sent {
            self.backlog.give(cost);
        }
        sent
    }
}

/// The socket in the handshake phase: it reads at most [`HANDSHAKE_BYTES`] and keeps them, so
/// that whatever came after the answer goes on to the frame phase.
struct Recorder {
    io: Io,
    seen: Vec<u8>,
}

impl AsyncRead for Recorder {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let budget = HANDSHAKE_BYTES - self.seen.len();
        if budget == 0 {
            return Poll::Ready(Err(std::io::Error::other("the auth answer is too long")));
        }
        let mut chunk = [0u8; HANDSHAKE_READ];
        let len = budget.min(buf.remaining()).min(HANDSHAKE_READ);
        let mut part = ReadBuf::new(&mut chunk[..len]);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut part))?;
        buf.put_slice(part.filled());
        self.seen.extend_from_slice(part.filled());
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Recorder {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The bytes of the handshake recording that the answer took, if it came as one frame.
fn answer_frame(seen: &[u8], answer: &str) -> Option<usize> {
    let mut cursor = Cursor::new(seen);
    let (header, len) = FrameHeader::parse(&mut cursor).ok()??;
    (header.is_final && len == answer.len() as u64)
        .then(|| cursor.position() as usize + answer.len())
}

/// A WebSocket on `io` in the handshake phase, then, once authenticated, in the frame phase.
pub(crate) async fn connection(relay: Arc<Relay>, io: Io, mut ticket: Ticket) {
    let Some((socket, session, rx)) = handshake(&relay, io, &mut ticket).await else {
        return;
    };
    let (sink, mut stream) = socket.split();
    let backlog = session.outbox.backlog.clone();
    let mut writer = tokio::spawn(write(sink, rx, backlog.clone()));
    let mut bucket = TokenBucket::new(relay.config.rate_per_second, relay.config.burst);
    let mut shutdown = relay.shutdown.clone();
    let expiry = expiry(session.expires_at);
    tokio::pin!(expiry);
    loop {
        let verdict = tokio::select! {
            message = stream.next() => match message {
                Some(Ok(message)) => relay.handle(&session, &mut bucket, message),
                Some(Err(Error::Capacity(_))) => Err(Refusal::Close(Closing {
                    code: "OVERSIZED",
                    message: format!("messages are limited to {} bytes", relay.config.max_frame),
                    close: TOO_BIG,
                })),
                _ => Err(Refusal::Closed),
            },
            () = stopped(&mut shutdown) => {
                session.outbox.push(close(GOING_AWAY, "relay shutting down"));
                break;
            }
            () = &mut expiry => Err(Refusal::Close(Closing::policy(
                "CAPABILITY_EXPIRED",
                "the capability expired: connection closed",
            ))),
            () = backlog.ended.notified() => break,
            () = backlog.overflow.notified() => {
                relay.stats.refuse("SLOW_RECEIVER");
                writer.abort();
                break;
            }
        };
        match verdict {
            Ok(()) => {}
            Err(Refusal::Count(code)) => relay.stats.refuse(code),
            Err(Refusal::Drop(code, message)) => {
                relay.stats.refuse(code);
                session
                    .outbox
                    .push(text(&ServerMessage::error(code, message)));
            }
            Err(Refusal::Close(closing)) => {
                relay.stats.refuse(closing.code);
                for message in closing.messages() {
                    session.outbox.push(message);
                }
                break;
            }
            Err(Refusal::Closed) => break,
        }
    }
    relay.leave(&session);
    drop(session);
    if tokio::time::timeout(CLOSE_GRACE, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
        let _ = writer.await;
    }
}

/// Resolves when a capability that expires at `at` (Unix seconds) has expired; never without one.
async fn expiry(at: Option<u64>) {
    match at {
        Some(at) => {
            let left = at.saturating_sub(crate::unix_now());
            tokio::time::sleep(Duration::from_secs(left)).await;
        }
        None => std::future::pending().await,
    }
}

/// Sends the challenge and reads the answer: its text, and how many recorded bytes it took.
/// `Err(None)`: the peer is gone.
async fn answer(
    socket: &mut WebSocketStream<Recorder>,
    challenge: Message,
) -> Result<(Utf8Bytes, usize), Option<Closing>> {
    socket.send(challenge).await.map_err(|_| None)?;
    match socket.next().await {
        Some(Ok(Message::Text(answer))) => {
            let taken = answer_frame(&socket.get_ref().seen, &answer).ok_or_else(|| {
                Some(Closing::policy(
                    "UNAUTHENTICATED",
                    "the auth answer must come in one frame",
                ))
            })?;
            Ok((answer, taken))
        }
        Some(Ok(_)) => Err(Some(Closing::policy(
            "UNAUTHENTICATED",
            "the first message must be the auth answer",
        ))),
        Some(Err(Error::Capacity(_))) => Err(Some(Closing {
            code: "OVERSIZED",
            message: format!("the auth answer is limited to {MAX_AUTH_MESSAGE} bytes"),
            close: TOO_BIG,
        })),
        _ => Err(None),
    }
}

/// The challenge and its answer under small limits; the socket for frames once the peer is in.
async fn handshake(
    relay: &Relay,
    io: Io,
    ticket: &mut Ticket,
) -> Option<(
    WebSocketStream<Io>,
    Session,
    mpsc::UnboundedReceiver<Message>,
)> {
    let config = WebSocketConfig::default()
        .read_buffer_size(HANDSHAKE_READ)
        .write_buffer_size(0)
        .max_message_size(Some(MAX_AUTH_MESSAGE))
        .max_frame_size(Some(MAX_AUTH_MESSAGE));
    let recorder = Recorder {
        io,
        seen: Vec::new(),
    };
    let mut socket = WebSocketStream::from_raw_socket(recorder, Role::Server, Some(config)).await;
    let nonce: [u8; 32] = chrysalis_crypto::random_array().ok()?;
    let challenge = text(&ServerMessage::Challenge {
        version: PROTOCOL_VERSION,
        nonce: hex::encode(nonce),
    });
    let answer = tokio::select! {
        answer = answer(&mut socket, challenge) => answer,
        closing = ticket.expiry() => Err(Some(closing)),
    };
    let admitted = match answer {
        Ok((answer, taken)) => relay
            .authenticate(&nonce, answer.as_str(), ticket)
            .await
            .map(|admitted| (taken, admitted))
            .map_err(Some),
        Err(closing) => Err(closing),
    };
    match admitted {
        Ok((taken, (session, rx))) => {
            let Recorder { io, seen } = socket.into_inner();
            let max = Some(relay.config.max_frame);
            let config = WebSocketConfig::default()
                .read_buffer_size(FRAME_READ)
                .max_message_size(max)
                .max_frame_size(max);
            let rest = seen[taken..].to_vec();
            let socket =
                WebSocketStream::from_partially_read(io, rest, Role::Server, Some(config)).await;
            Some((socket, session, rx))
        }
        Err(Some(closing)) => {
            relay.stats.refuse(closing.code);
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                for message in closing.messages() {
                    socket.send(message).await?;
                }
                Ok::<_, Error>(())
            })
            .await;
            None
        }
        Err(None) => None,
    }
}

/// Writes the queue to the socket until the queue ends, a close frame is written, or the peer
/// is gone.
async fn write(
    mut sink: SplitSink<WebSocketStream<Io>, Message>,
    mut rx: mpsc::UnboundedReceiver<Message>,
    backlog: Arc<Backlog>,
) {
    while let Some(message) = rx.recv().await {
        let cost = cost(&message);
        let last = matches!(message, Message::Close(_));
        let sent = sink.send(message).await.is_ok();
        backlog.give(cost);
        if !sent || last {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_are_bounded_alone_and_per_address_and_give_back_what_they_held() {
        // Each message costs 100 + 64 bytes.
        let message = || Message::binary(vec![0; 100]);
        let address = Arc::new(Budget::new(3 * 164));
        let (a, _rx_a) = Outbox::new(1, 2 * 164, address.clone());
        let (b, _rx_b) = Outbox::new(2, 10 * 164, address.clone());
        assert!(a.push(message()) && a.push(message()));
        assert!(!a.push(message()), "past its own bound");
        assert!(b.push(message()));
        assert!(!b.push(message()), "past its address's bound");
        drop(a);
        assert_eq!(
            address.bytes.load(Ordering::Relaxed),
            164,
            "a's queue came back"
        );
        assert!(b.push(message()) && b.push(message()));
        // An empty queue takes any message, however large.
        let (c, _rx_c) = Outbox::new(3, 10, Arc::new(Budget::new(10)));
        assert!(c.push(message()));
    }
}
