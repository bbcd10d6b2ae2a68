//! The one GraphQL-over-WebSocket client of the tests and the benchmarks.
//!
//! A thin layer over tokio-tungstenite that speaks `graphql-transport-ws` (and lets a test send
//! anything else, byte for byte, to see the server refuse it): connect, `connection_init` with a
//! token, `subscribe`, the next message with a deadline (keep-alives shown or skipped), the
//! close code, `complete`. Protocol tests need to see every frame, subscription tests only the
//! data, the benchmark only raw text without parsing it: one client serves all three.
//!
//! It lives in `tests/common/` (tests: `mod common;`) and the benchmarks include this file by
//! path (`#[path = "../tests/common/ws.rs"] mod ws;`), so it depends on nothing but
//! tokio-tungstenite and serde_json — never on the rest of `tests/common` or on the app.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

/// The current protocol; the legacy one is `graphql-ws`.
pub const GRAPHQL_TRANSPORT_WS: &str = "graphql-transport-ws";
/// How long `expect_*` waits for a message.
pub const WAIT: Duration = Duration::from_secs(5);

/// What the server did next on a socket.
#[derive(Debug)]
pub enum WsEvent {
    Json(Value),
    Closed(Option<u16>),
    Timeout,
}

pub struct WsClient {
    stream: WebSocketStream<TcpStream>,
}

impl WsClient {
    /// Opens a WebSocket on `/graphql` of `addr` with the given subprotocol.
    pub async fn connect(addr: SocketAddr, protocol: &str) -> Self {
        Self::connect_with(addr, protocol, None).await
    }

    /// `recv_buffer`: a small kernel receive buffer, so a client that stops reading stalls the
    /// server quickly. A refused connection or handshake is tried again a few times (a server
    /// accepting thousands of sockets at once drops some).
    pub async fn connect_with(addr: SocketAddr, protocol: &str, recv_buffer: Option<u32>) -> Self {
        let mut request = format!("ws://{addr}/graphql").into_client_request().unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", protocol.parse().unwrap());
        let mut attempt = 0;
        loop {
            let socket = TcpSocket::new_v4().unwrap();
            if let Some(size) = recv_buffer {
                socket.set_recv_buffer_size(size).unwrap();
            }
            let error = match socket.connect(addr).await {
                Ok(tcp) => match tokio_tungstenite::client_async(request.clone(), tcp).await {
                    Ok((stream, _)) => return Self { stream },
                    Err(e) => e.to_string(),
                },
                Err(e) => e.to_string(),
            };
            attempt += 1;
            assert!(attempt <= 20, "connecting a WebSocket to {addr}: {error}");
            tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
        }
    }

    /// Connects, initialises with `token` (waiting for the ack) and subscribes as operation "1".
    pub async fn subscribed(addr: SocketAddr, token: &str, query: &str, variables: Value) -> Self {
        let mut ws = Self::connect(addr, GRAPHQL_TRANSPORT_WS).await;
        ws.init(token).await;
        ws.subscribe_with("1", query, variables).await;
        ws
    }

    pub async fn send(&mut self, message: Value) {
        self.send_text(&message.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.send_message(Message::text(text.to_owned())).await;
    }

    pub async fn send_message(&mut self, message: Message) {
        self.try_send(message).await.unwrap();
    }

    /// Sends, reporting failure (a server may close before it has read everything).
    pub async fn try_send(&mut self, message: Message) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        self.stream.send(message).await
    }

    /// A normal close from the client side (errors ignored: the server may be gone already).
    pub async fn close(&mut self) {
        let _ = self.stream.close(None).await;
    }

    /// Sends `connection_init` with the token, without waiting for the answer.
    pub async fn send_init(&mut self, token: &str) {
        self.send(json!({ "type": "connection_init", "payload": { "token": token } }))
            .await;
    }

    /// `connection_init` with the token; asserts the `connection_ack`.
    pub async fn init(&mut self, token: &str) {
        self.send_init(token).await;
        let ack = self.expect_json().await;
        assert_eq!(ack["type"], "connection_ack", "{ack}");
    }

    pub async fn subscribe(&mut self, id: &str, query: &str) {
        self.send(json!({ "id": id, "type": "subscribe", "payload": { "query": query } }))
            .await;
    }

    pub async fn subscribe_with(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } }))
            .await;
    }

    pub async fn complete(&mut self, id: &str) {
        self.send(json!({ "id": id, "type": "complete" })).await;
    }

    /// The next JSON message or close, keep-alives included; gives up after `wait`.
    pub async fn recv(&mut self, wait: Duration) -> WsEvent {
        let deadline = Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return WsEvent::Timeout,
                Ok(None) | Ok(Some(Err(_))) => return WsEvent::Closed(None),
                Ok(Some(Ok(Message::Text(text)))) => return WsEvent::Json(serde_json::from_str(&text).unwrap()),
                Ok(Some(Ok(Message::Close(frame)))) => return WsEvent::Closed(frame.map(|f| u16::from(f.code))),
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// The next JSON message or close, skipping the server's keep-alives (`ping`, legacy `ka`).
    pub async fn next(&mut self, wait: Duration) -> WsEvent {
        let deadline = Instant::now() + wait;
        loop {
            match self.recv(deadline.saturating_duration_since(Instant::now())).await {
                WsEvent::Json(value) if value["type"] == "ping" || value["type"] == "ka" => continue,
                other => return other,
            }
        }
    }

    /// The next text frame as sent, unparsed; None once the socket is closed. Cancel-safe, for
    /// use in `select!`.
    pub async fn next_text(&mut self) -> Option<Utf8Bytes> {
        loop {
            match self.stream.next().await {
                Some(Ok(Message::Text(text))) => return Some(text),
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => return None,
            }
        }
    }

    /// The next message (keep-alives skipped) within [`WAIT`].
    pub async fn expect_json(&mut self) -> Value {
        match self.next(WAIT).await {
            WsEvent::Json(value) => value,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// The close code, skipping any message before it.
    pub async fn expect_close(&mut self, wait: Duration) -> Option<u16> {
        let deadline = Instant::now() + wait;
        loop {
            match self.recv(deadline.saturating_duration_since(Instant::now())).await {
                WsEvent::Json(_) => continue,
                WsEvent::Closed(code) => return code,
                WsEvent::Timeout => panic!("the socket stayed open"),
            }
        }
    }

    /// The `field` of the next `next` message's data, within `wait`; asserts it has no errors.
    pub async fn next_data(&mut self, field: &str, wait: Duration) -> Option<Value> {
        match self.next(wait).await {
            WsEvent::Json(message) => {
                assert_eq!(message["type"], "next", "{message}");
                assert!(message["payload"].get("errors").is_none(), "{message}");
                Some(message["payload"]["data"][field].clone())
            }
            WsEvent::Timeout => None,
            WsEvent::Closed(code) => panic!("socket closed ({code:?})"),
        }
    }

    /// The `field` of the next `next` message, within ten seconds.
    pub async fn expect_data(&mut self, field: &str) -> Value {
        self.next_data(field, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("no {field} message in time"))
    }

    /// Messages until one's `field` satisfies `done` (within `wait`); returns it.
    pub async fn until(&mut self, field: &str, wait: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_data(field, left).await {
                Some(value) if done(&value) => return value,
                Some(_) => continue,
                None => panic!("no matching {field} message in time"),
            }
        }
    }
}
