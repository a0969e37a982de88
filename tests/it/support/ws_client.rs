//! A small WebSocket client for the chat tests (tungstenite over TcpStream).
#![allow(dead_code)]

use serde_json::{Value, json};
use std::net::TcpStream;
use std::time::Duration;
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

fn parse(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

pub struct Ws {
    pub sock: WebSocket<TcpStream>,
}

pub fn connect(port: u16, conversation: &str, origin: Option<&str>) -> Result<Ws, u16> {
    let origin: Vec<(&str, &str)> = origin.map(|o| ("Origin", o)).into_iter().collect();
    connect_with(port, &format!("/ws/chat/{conversation}"), &origin)
}

/// Opens `target` (path and query) with extra handshake headers; the
/// refusal's status otherwise.
pub fn connect_with(port: u16, target: &str, headers: &[(&str, &str)]) -> Result<Ws, u16> {
    let mut req = format!("ws://127.0.0.1:{port}{target}")
        .into_client_request()
        .unwrap();
    for (k, v) in headers {
        let name = tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
        req.headers_mut().insert(name, v.parse().unwrap());
    }
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    match tungstenite::client::client(req, stream) {
        Ok((sock, _)) => Ok(Ws { sock }),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
            Err(resp.status().as_u16())
        }
        Err(e) => panic!("handshake: {e}"),
    }
}

impl Ws {
    pub fn send(&mut self, v: Value) {
        self.sock.send(Message::text(v.to_string())).unwrap();
    }

    pub fn ask(&mut self, text: &str) {
        self.send(json!({"type": "message", "content": text}));
    }

    /// The next JSON event, or None at close/timeout.
    pub fn next(&mut self, timeout: Duration) -> Option<Value> {
        self.sock.get_mut().set_read_timeout(Some(timeout)).unwrap();
        loop {
            match self.sock.read() {
                Ok(Message::Text(t)) => return Some(parse(t.as_str())),
                Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => continue,
                Ok(_) => return None,
                Err(_) => return None,
            }
        }
    }

    /// The next event of type `kind`, skipping others (20 s at most).
    pub fn next_of(&mut self, kind: &str) -> Value {
        while let Some(e) = self.next(Duration::from_secs(20)) {
            if e["type"] == kind {
                return e;
            }
        }
        panic!("no {kind} event");
    }

    /// Events up to and including `done`.
    pub fn until_done(&mut self) -> Vec<Value> {
        let mut out = vec![];
        while let Some(e) = self.next(Duration::from_secs(15)) {
            let done = e["type"] == "done";
            out.push(e);
            if done {
                return out;
            }
        }
        panic!("no done event; got {out:#?}");
    }
}

pub fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("?").to_string())
        .collect()
}

pub fn texts(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["type"] == "text")
        .map(|e| e["content"].as_str().unwrap())
        .collect()
}
