//! `McpServer::handle_http` served at `/mcp` by tiny_http, as the service's
//! HTTP route does it, for tests that need real HTTP clients.
#![allow(dead_code)]

use knowledge_vault::mcp_server::{McpHttpRequest, McpServer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

pub struct McpHttpServer {
    pub addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    workers: Vec<JoinHandle<()>>,
}

impl McpHttpServer {
    pub fn start(mcp: Arc<McpServer>) -> McpHttpServer {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let addr = server.server_addr().to_ip().unwrap();
        let workers = (0..4)
            .map(|_| {
                let (server, mcp) = (server.clone(), mcp.clone());
                std::thread::spawn(move || {
                    while let Ok(req) = server.recv() {
                        serve(&mcp, req);
                    }
                })
            })
            .collect();
        McpHttpServer {
            addr,
            server,
            workers,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }
}

impl Drop for McpHttpServer {
    fn drop(&mut self) {
        for _ in 0..self.workers.len() {
            self.server.unblock();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn serve(mcp: &McpServer, mut req: tiny_http::Request) {
    if req.url().split('?').next() != Some("/mcp") {
        let _ = req.respond(
            tiny_http::Response::from_string("{\"detail\":\"Not Found\"}").with_status_code(404),
        );
        return;
    }
    let header = |name: &str| {
        req.headers()
            .iter()
            .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str().to_string())
    };
    let (host, origin, accept, content_type, session_id, protocol_version) = (
        header("Host"),
        header("Origin"),
        header("Accept"),
        header("Content-Type"),
        header("Mcp-Session-Id"),
        header("MCP-Protocol-Version"),
    );
    let method = req.method().as_str().to_string();
    let mut body = Vec::new();
    let _ = req.as_reader().read_to_end(&mut body);
    let reply = mcp.handle_http(&McpHttpRequest {
        method: &method,
        host: host.as_deref(),
        origin: origin.as_deref(),
        accept: accept.as_deref(),
        content_type: content_type.as_deref(),
        session_id: session_id.as_deref(),
        protocol_version: protocol_version.as_deref(),
        body: &body,
    });
    let mut resp = tiny_http::Response::from_data(reply.body).with_status_code(reply.status);
    for (k, v) in reply.headers {
        if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            resp.add_header(h);
        }
    }
    let _ = req.respond(resp);
}
