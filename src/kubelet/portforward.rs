//! `kubectl port-forward`: the kubelet's `/portForward/{ns}/{pod}` endpoint.
//!
//! kubectl (client-go `tools/portforward`) speaks SPDY/3.1 with the `portforward.k8s.io`
//! protocol, since 1.31 tunnelled inside a WebSocket (subprotocol `SPDY/3.1+portforward.k8s.io`,
//! the SPDY bytes carried in binary messages), falling back to a plain SPDY upgrade
//! (`Upgrade: SPDY/3.1`, `X-Stream-Protocol-Version: portforward.k8s.io`). Both are served here,
//! over one SPDY server ([`serve_spdy`]) with just the frames kubectl's spdystream sends:
//! `SYN_STREAM` (answered with `SYN_REPLY`), data with `FIN`, `RST_STREAM`, `PING` (echoed),
//! `GOAWAY`; `SETTINGS`, `HEADERS` and `WINDOW_UPDATE` are read and ignored (spdystream does no
//! flow control). Header blocks are zlib streams preset with the SPDY/3 dictionary, one per
//! direction for the whole connection.
//!
//! Each forwarded connection is a pair of streams with the same `requestID`: `error` then
//! `data`, both naming the `port`. The pod's port is on loopback (process pods share the host's
//! network), so `data` is connected to `127.0.0.1:PORT`; when that fails, the error stream
//! carries the kubelet's message and both streams end.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path as UrlPath, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::{Buf, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use futures::{SinkExt, StreamExt};
use http::{HeaderValue, StatusCode, header};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::spdy_dictionary::DICTIONARY;
use super::streams::Containers;

/// The WebSocket subprotocol of SPDY tunnelled in a WebSocket.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// The port-forward protocol version.
pub const PROTOCOL: &str = "portforward.k8s.io";

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const FLAG_FIN: u8 = 1;
/// The largest frame accepted (SPDY's length field allows 16 MiB).
const MAX_FRAME: usize = 16 * 1024 * 1024;
/// Data frames written carry at most this much.
const CHUNK: usize = 32 * 1024;

/// Serve a port-forward request: a WebSocket tunnel or a plain SPDY upgrade.
pub async fn serve(
    State(containers): State<Arc<Containers>>,
    UrlPath((namespace, pod)): UrlPath<(String, String)>,
    req: Request,
) -> Response {
    let running = containers.all().into_iter().find(|((ns, p, _), _)| *ns == namespace && *p == pod);
    let Some((_, handle)) = running else {
        return (StatusCode::NOT_FOUND, format!("pod not found ({namespace:?}/{pod:?})")).into_response();
    };
    let target = Target { pod: pod.clone(), uid: handle.uid.clone(), netns: handle.netns.clone() };
    let upgrade = req.headers().get(header::UPGRADE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    if upgrade == "websocket" {
        let (mut parts, _) = req.into_parts();
        let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(ws) => ws,
            Err(e) => return e.into_response(),
        };
        return ws.protocols([TUNNEL_PROTOCOL]).on_upgrade(move |socket| tunnel(socket, target));
    }
    if upgrade.starts_with("spdy/3") {
        let Some(on_upgrade) = req.into_parts().0.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
            return (StatusCode::BAD_REQUEST, "unable to upgrade: the connection cannot be upgraded").into_response();
        };
        tokio::spawn(async move {
            if let Ok(io) = on_upgrade.await {
                serve_spdy(hyper_util::rt::TokioIo::new(io), target).await;
            }
        });
        let mut r = Response::new(axum::body::Body::empty());
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        r.headers_mut().insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        r.headers_mut().insert("X-Stream-Protocol-Version", HeaderValue::from_static(PROTOCOL));
        return r;
    }
    (StatusCode::BAD_REQUEST, "unable to upgrade: missing upgrade headers in request").into_response()
}

/// What a forwarded connection reaches, and names in its errors.
#[derive(Debug, Clone)]
pub struct Target {
    /// The pod's name.
    pub pod: String,
    /// The pod's uid.
    pub uid: String,
    /// The pod's network namespace when it has its own; the host's otherwise.
    pub netns: Option<std::path::PathBuf>,
}

/// Carry SPDY bytes in the WebSocket's binary messages, both ways.
async fn tunnel(socket: WebSocket, target: Target) {
    let (mut sink, mut stream) = socket.split();
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    let (mut rd, mut wr) = tokio::io::split(theirs);
    let server = tokio::spawn(serve_spdy(ours, target));
    let inbound = tokio::spawn(async move {
        while let Some(Ok(m)) = stream.next().await {
            let b = match m {
                Message::Binary(b) => b,
                Message::Close(_) => break,
                _ => continue,
            };
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if sink.send(Message::Binary(Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = sink.send(Message::Close(Some(axum::extract::ws::CloseFrame { code: 1000, reason: "".into() }))).await;
    inbound.abort();
    let _ = server.await;
}

/// A frame to write.
#[derive(Debug)]
enum Out {
    Reply(u32),
    Data(u32, Bytes, bool),
    Rst(u32),
    Ping(u32),
}

/// The zlib streams of one connection's header blocks.
struct HeaderCodec {
    inflate: Decompress,
    deflate: Compress,
    deflate_started: bool,
}

impl HeaderCodec {
    fn new() -> Self {
        Self {
            inflate: Decompress::new(true),
            deflate: Compress::new(Compression::best(), true),
            deflate_started: false,
        }
    }

    /// Decompress one header block (continuing the connection's stream).
    fn decode(&mut self, mut input: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(input.len() * 4 + 256);
        while !input.is_empty() {
            if out.len() == out.capacity() {
                if out.len() > MAX_FRAME {
                    return Err("header block too large".into());
                }
                out.reserve(out.len().max(1024));
            }
            let before = self.inflate.total_in();
            match self.inflate.decompress_vec(input, &mut out, FlushDecompress::Sync) {
                Ok(Status::StreamEnd) => break,
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate.set_dictionary(&DICTIONARY).map_err(|e| e.to_string())?;
                }
                Err(e) => return Err(e.to_string()),
            }
            let used = (self.inflate.total_in() - before) as usize;
            input = &input[used..];
        }
        Ok(out)
    }

    /// Compress a header block (sync-flushed, continuing the connection's stream).
    fn encode(&mut self, block: &[u8]) -> Vec<u8> {
        if !self.deflate_started {
            let _ = self.deflate.set_dictionary(&DICTIONARY);
            self.deflate_started = true;
        }
        let mut out = Vec::with_capacity(block.len() + 64);
        let mut input = block;
        loop {
            if out.len() == out.capacity() {
                out.reserve(256);
            }
            let before = self.deflate.total_in();
            let _ = self.deflate.compress_vec(input, &mut out, FlushCompress::Sync);
            input = &input[(self.deflate.total_in() - before) as usize..];
            // Done once all input is in and the flush did not fill the buffer.
            if input.is_empty() && out.len() < out.capacity() {
                return out;
            }
        }
    }
}

/// Parse a SPDY/3 name/value header block (lower-case names).
pub fn parse_headers(block: &[u8]) -> Option<HashMap<String, String>> {
    let mut b = block;
    let take = |b: &mut &[u8]| -> Option<Vec<u8>> {
        if b.len() < 4 {
            return None;
        }
        let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        *b = &b[4..];
        if b.len() < n {
            return None;
        }
        let v = b[..n].to_vec();
        *b = &b[n..];
        Some(v)
    };
    if b.len() < 4 {
        return None;
    }
    let count = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    b = &b[4..];
    let mut out = HashMap::new();
    for _ in 0..count {
        let name = String::from_utf8(take(&mut b)?).ok()?.to_ascii_lowercase();
        let value = String::from_utf8(take(&mut b)?).ok()?;
        out.insert(name, value);
    }
    Some(out)
}

fn control(kind: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + payload.len());
    v.extend_from_slice(&(0x8000u16 | 3).to_be_bytes());
    v.extend_from_slice(&kind.to_be_bytes());
    v.extend_from_slice(&((u32::from(flags) << 24) | payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Where a stream's incoming data goes.
enum StreamIn {
    /// The error stream: the client sends nothing on it.
    Error,
    /// A data stream: bytes for the pod's port (`None` closes the write half).
    Data(mpsc::UnboundedSender<Option<Bytes>>),
}

/// Run the SPDY port-forward server on `io` until the client goes away.
pub async fn serve_spdy<IO: AsyncRead + AsyncWrite + Send + 'static>(io: IO, target: Target) {
    let (mut rd, mut wr) = tokio::io::split(io);
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Out>();
    let writer = tokio::spawn(async move {
        let mut codec = HeaderCodec::new();
        while let Some(frame) = out_rx.recv().await {
            let bytes = match frame {
                Out::Reply(id) => {
                    let block = codec.encode(&0u32.to_be_bytes());
                    let mut payload = id.to_be_bytes().to_vec();
                    payload.extend_from_slice(&block);
                    control(SYN_REPLY, 0, &payload)
                }
                Out::Data(id, data, fin) => {
                    let mut v = Vec::with_capacity(8 + data.len());
                    v.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
                    let flags = if fin { FLAG_FIN } else { 0 };
                    v.extend_from_slice(&((u32::from(flags) << 24) | data.len() as u32).to_be_bytes());
                    v.extend_from_slice(&data);
                    v
                }
                Out::Rst(id) => {
                    let mut payload = id.to_be_bytes().to_vec();
                    payload.extend_from_slice(&5u32.to_be_bytes()); // CANCEL
                    control(RST_STREAM, 0, &payload)
                }
                Out::Ping(id) => control(PING, 0, &id.to_be_bytes()),
            };
            if wr.write_all(&bytes).await.is_err() || wr.flush().await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut codec = HeaderCodec::new();
    let mut streams: HashMap<u32, StreamIn> = HashMap::new();
    // Per requestID: the error stream's id, until its data stream arrives.
    let mut error_streams: HashMap<String, u32> = HashMap::new();
    let mut head = [0u8; 8];
    let mut tasks = Vec::new();
    loop {
        if rd.read_exact(&mut head).await.is_err() {
            break;
        }
        let length = (u32::from_be_bytes([0, head[5], head[6], head[7]])) as usize;
        let flags = head[4];
        if length > MAX_FRAME {
            break;
        }
        let mut payload = BytesMut::zeroed(length);
        if rd.read_exact(&mut payload).await.is_err() {
            break;
        }
        let payload = payload.freeze();
        if head[0] & 0x80 == 0 {
            // A data frame.
            let id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            if let Some(StreamIn::Data(tx)) = streams.get(&id) {
                if !payload.is_empty() {
                    let _ = tx.send(Some(payload));
                }
                if flags & FLAG_FIN != 0 {
                    let _ = tx.send(None);
                }
            }
            continue;
        }
        let kind = u16::from_be_bytes([head[2], head[3]]);
        match kind {
            SYN_STREAM if payload.len() >= 10 => {
                let id = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & 0x7fff_ffff;
                let Ok(block) = codec.decode(&payload[10..]) else { break };
                let headers = parse_headers(&block).unwrap_or_default();
                let _ = out_tx.send(Out::Reply(id));
                let request = headers.get("requestid").cloned().unwrap_or_default();
                match headers.get("streamtype").map(String::as_str) {
                    Some("error") => {
                        streams.insert(id, StreamIn::Error);
                        error_streams.insert(request, id);
                    }
                    Some("data") => {
                        let (tx, rx) = mpsc::unbounded_channel();
                        streams.insert(id, StreamIn::Data(tx));
                        let error_id = error_streams.remove(&request);
                        let port = headers.get("port").cloned().unwrap_or_default();
                        tasks.push(tokio::spawn(forward(id, error_id, port, target.clone(), rx, out_tx.clone())));
                    }
                    _ => {
                        let _ = out_tx.send(Out::Rst(id));
                    }
                }
            }
            RST_STREAM if payload.len() >= 4 => {
                let id = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & 0x7fff_ffff;
                // Dropping the sender ends the forward task's writes; it then stops.
                streams.remove(&id);
            }
            PING if payload.len() >= 4 => {
                let _ = out_tx.send(Out::Ping(u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])));
            }
            GOAWAY => break,
            // HEADERS carries a header block: keep the zlib stream in step.
            8 if payload.len() >= 4 && codec.decode(&payload[4..]).is_err() => break,
            _ => {}
        }
    }
    streams.clear();
    for t in tasks {
        t.abort();
    }
    drop(out_tx);
    let _ = writer.await;
}

/// `127.0.0.1:port` in the pod's network namespace.
async fn connect(target: &Target, port: u16) -> std::io::Result<tokio::net::TcpStream> {
    match &target.netns {
        Some(ns) => super::podnet::connect_in(ns, port).await,
        None => tokio::net::TcpStream::connect(("127.0.0.1", port)).await,
    }
}

/// One forwarded connection: `data` stream `id` to `127.0.0.1:port`.
async fn forward(
    id: u32,
    error_id: Option<u32>,
    port: String,
    target: Target,
    mut from_client: mpsc::UnboundedReceiver<Option<Bytes>>,
    out: mpsc::UnboundedSender<Out>,
) {
    let end_error = |message: Option<String>| {
        if let Some(e) = error_id {
            if let Some(m) = message {
                let _ = out.send(Out::Data(e, Bytes::from(m), false));
            }
            let _ = out.send(Out::Data(e, Bytes::new(), true));
        }
    };
    let port_num: u16 = match port.parse() {
        Ok(p) if p > 0 => p,
        _ => {
            end_error(Some(format!("invalid port {port:?}")));
            let _ = out.send(Out::Data(id, Bytes::new(), true));
            return;
        }
    };
    let conn = match connect(&target, port_num).await {
        Ok(c) => c,
        Err(e) => {
            end_error(Some(format!(
                "error forwarding port {port_num} to pod {}, uid {}: failed to connect to localhost:{port_num} inside \
                 the pod: dial tcp4 127.0.0.1:{port_num}: connect: {}",
                target.pod,
                target.uid,
                e.to_string().to_lowercase().split(" (os error").next().unwrap_or_default()
            )));
            let _ = out.send(Out::Data(id, Bytes::new(), true));
            return;
        }
    };
    let (mut r, mut w) = conn.into_split();
    let to_pod = tokio::spawn(async move {
        while let Some(m) = from_client.recv().await {
            match m {
                Some(mut b) => {
                    while b.has_remaining() {
                        match w.write(&b).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => b.advance(n),
                        }
                    }
                }
                None => break,
            }
        }
        let _ = w.shutdown().await;
    });
    let mut buf = vec![0u8; CHUNK];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if out.send(Out::Data(id, Bytes::copy_from_slice(&buf[..n]), false)).is_err() {
                    break;
                }
            }
        }
    }
    let _ = out.send(Out::Data(id, Bytes::new(), true));
    let _ = to_pod.await;
    end_error(None);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_blocks_round_trip_through_the_dictionary_codec() {
        let block = |pairs: &[(&str, &str)]| {
            let mut v = (pairs.len() as u32).to_be_bytes().to_vec();
            for (k, val) in pairs {
                v.extend_from_slice(&(k.len() as u32).to_be_bytes());
                v.extend_from_slice(k.as_bytes());
                v.extend_from_slice(&(val.len() as u32).to_be_bytes());
                v.extend_from_slice(val.as_bytes());
            }
            v
        };
        let (mut client, mut server) = (HeaderCodec::new(), HeaderCodec::new());
        // One zlib stream per direction: the second block depends on the first.
        for pairs in [&[("streamtype", "error"), ("port", "8080"), ("requestid", "0")][..], &[("streamtype", "data")]] {
            let wire = client.encode(&block(pairs));
            let plain = server.decode(&wire).unwrap();
            let h = parse_headers(&plain).unwrap();
            for (k, v) in pairs {
                assert_eq!(h[*k], *v);
            }
        }
        assert!(parse_headers(&[0, 0, 0, 1, 0, 0, 0, 9]).is_none(), "a truncated block is refused");
    }
}
