//! The TCP and HTTP edge: sockets are admitted within the limits or closed at once, HTTP/1.1 is
//! served with a small header buffer until the socket's ticket expires, `/health` and
//! `/metrics` answer, and `/` or `/ws` upgrades to a WebSocket that takes the ticket on.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{ACCESS_CONTROL_ALLOW_ORIGIN, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::create_response_with_body;

use crate::admission::Ticket;
use crate::{Relay, socket, stopped};

/// The largest HTTP request head (hyper's minimum is 8 KiB).
const MAX_HTTP_HEAD: usize = 16 * 1024;
/// The pause after a failed accept (e.g. out of file handles), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Accepts sockets until shutdown. A socket beyond its address's share is closed at once.
pub(crate) async fn accept(relay: Arc<Relay>, listener: TcpListener) {
    let mut shutdown = relay.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut shutdown) => return,
        };
        match accepted {
            Ok((tcp, peer)) => match relay.admit(peer.ip()) {
                Ok(ticket) => drop(tokio::spawn(serve(relay.clone(), tcp, ticket))),
                // Dropping the socket closes it.
                Err(code) => relay.stats.refuse(code),
            },
            Err(_) => tokio::time::sleep(ACCEPT_BACKOFF).await,
        }
    }
}

/// Serves HTTP on `tcp` until it upgrades, closes, or its ticket expires.
async fn serve(relay: Arc<Relay>, tcp: TcpStream, ticket: Ticket) {
    let _ = tcp.set_nodelay(true);
    let expiry = ticket.expiry();
    // Taken by the upgrade, after which the connection serves no more requests.
    let ticket = Mutex::new(Some(ticket));
    let service = service_fn(|request| {
        std::future::ready(Ok::<_, Infallible>(route(&relay, &ticket, request)))
    });
    let connection = http1::Builder::new()
        .max_buf_size(MAX_HTTP_HEAD)
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades();
    tokio::select! {
        _ = connection => {}
        closing = expiry => relay.stats.refuse(closing.code),
    }
}

fn route(
    relay: &Arc<Relay>,
    ticket: &Mutex<Option<Ticket>>,
    mut request: Request<Incoming>,
) -> Response<String> {
    match request.uri().path() {
        "/health" => {
            let (healthy, body) = relay.health();
            let mut response = Response::new(body.to_string());
            if !healthy {
                *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            }
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
            response
        }
        "/metrics" => {
            let mut response = Response::new(relay.metrics());
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        "/" | "/ws" => {
            let Ok(response) = create_response_with_body(&request, String::new) else {
                return status(StatusCode::BAD_REQUEST, "expected a WebSocket upgrade");
            };
            let Some(ticket) = ticket.lock().expect("ticket lock").take() else {
                return status(StatusCode::BAD_REQUEST, "upgraded already");
            };
            let upgraded = hyper::upgrade::on(&mut request);
            let relay = relay.clone();
            tokio::spawn(async move {
                if let Ok(io) = upgraded.await {
                    socket::connection(relay, TokioIo::new(io), ticket).await;
                }
            });
            response
        }
        _ => status(StatusCode::NOT_FOUND, "not found"),
    }
}

fn status(status: StatusCode, body: &str) -> Response<String> {
    let mut response = Response::new(body.to_owned());
    *response.status_mut() = status;
    response
}
