//! The kubelet's streaming endpoints: `/exec/{ns}/{pod}/{container}`, `/attach/{ns}/{pod}/{container}`
//! and `/portForward/{ns}/{pod}`, served next to the container logs ([`super::logs::serve`]). The API
//! server proxies `pods/exec`, `pods/attach` and `pods/portforward` here after checking the pod, as
//! kube-apiserver proxies to the kubelet.
//!
//! Exec and attach speak the WebSocket channel protocol of kubectl 1.29+ (`v5.channel.k8s.io`,
//! `v4.channel.k8s.io`): every binary message starts with a channel byte (0 stdin, 1 stdout,
//! 2 stderr, 3 error, 4 resize); v5 adds `[255, channel]` to close a channel (stdin EOF, which
//! `kubectl cp` relies on). When the command ends the error channel carries a `Status`
//! (`Success`, or `Failure`/`NonZeroExitCode` with the exit code as the `ExitCode` cause), and the
//! connection closes. kubectl falls back to SPDY only when the WebSocket upgrade is refused; SPDY is
//! refused too, with the same message, so kubectl's fallback prints what the kubelet said.
//!
//! Exec runs the command as a local process with the container's environment and working
//! directory ([`ContainerHandle`], registered by the process executor while the container runs),
//! with `-t` on a pseudo-terminal (resize messages resize it). Exec'd processes are killed when the
//! container stops, as a container runtime kills what runs in the container's cgroup. Attach streams
//! the container's output from now on (stdout and stderr, both on the stdout channel: the log file
//! that carries them keeps them in order but not apart when replayed live).

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path as UrlPath, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::logs::{LogFile, follow_from_now};
use super::process::ProcessSpec;

/// The WebSocket subprotocols served, most preferred first.
pub const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// A running container, as exec and attach need it.
#[derive(Debug)]
pub struct ContainerHandle {
    /// The pod's uid.
    pub uid: String,
    /// How the container's process was started (its environment and working directory are exec's).
    pub spec: ProcessSpec,
    /// The current run's log (attach follows it).
    pub log: Arc<LogFile>,
    /// The container's process group.
    pub pgid: Option<i32>,
    /// The pod's network namespace (`/run/netns/NAME`), when it has its own: port-forward
    /// connects to `127.0.0.1:PORT` inside it, as the kubelet does.
    pub netns: Option<std::path::PathBuf>,
    /// When the container started.
    pub started: std::time::Instant,
    /// Cancelled when the container stops: exec'd processes die with it.
    pub stopped: CancellationToken,
    /// Processes started by exec that are still running (counted in the pod's metrics).
    pub execs: Mutex<HashSet<u32>>,
    /// The container's stdin pipe (`stdin: true`), which `attach -i` writes; `None` when the
    /// container reads `/dev/null` or its stdin was closed.
    pub stdin: tokio::sync::Mutex<Option<tokio::process::ChildStdin>>,
    /// The container's `stdinOnce`: its stdin closes when the first attached client closes its
    /// stdin or goes away.
    pub stdin_once: bool,
}

type Key = (String, String, String);

/// The running containers of this node simulator, by namespace, pod and container name.
#[derive(Debug, Default)]
pub struct Containers {
    inner: Mutex<HashMap<Key, Arc<ContainerHandle>>>,
}

impl Containers {
    /// Record a container that started.
    pub fn register(&self, namespace: &str, pod: &str, container: &str, handle: Arc<ContainerHandle>) {
        let key = (namespace.to_string(), pod.to_string(), container.to_string());
        let old = self.lock().insert(key, handle);
        if let Some(old) = old {
            old.stopped.cancel();
        }
    }

    /// Forget a container that stopped (only if `handle` is still the registered run) and end its
    /// exec'd processes.
    pub fn unregister(&self, namespace: &str, pod: &str, container: &str, handle: &Arc<ContainerHandle>) {
        handle.stopped.cancel();
        let key = (namespace.to_string(), pod.to_string(), container.to_string());
        let mut map = self.lock();
        if map.get(&key).is_some_and(|h| Arc::ptr_eq(h, handle)) {
            map.remove(&key);
        }
    }

    /// The running container, if any.
    pub fn get(&self, namespace: &str, pod: &str, container: &str) -> Option<Arc<ContainerHandle>> {
        self.lock().get(&(namespace.to_string(), pod.to_string(), container.to_string())).cloned()
    }

    /// Every running container.
    pub fn all(&self) -> Vec<(Key, Arc<ContainerHandle>)> {
        self.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<ContainerHandle>>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The streaming routes, for the kubelet's HTTP server.
pub fn router(containers: Arc<Containers>) -> Router {
    Router::new()
        .route("/exec/{namespace}/{pod}/{container}", any(exec))
        .route("/attach/{namespace}/{pod}/{container}", any(attach))
        .route("/portForward/{namespace}/{pod}", any(super::portforward::serve))
        .with_state(containers)
}

/// The options of an exec or attach request (kube-apiserver's names: `stdin`, `stdout`, `stderr`,
/// `tty`, repeated `command`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// The command line (exec).
    pub command: Vec<String>,
    /// Read stdin from the client.
    pub stdin: bool,
    /// Send stdout.
    pub stdout: bool,
    /// Send stderr (off with a TTY, whose output is all one stream).
    pub stderr: bool,
    /// Run on a pseudo-terminal.
    pub tty: bool,
}

impl StreamOptions {
    /// Parse a query string (repeated `command` parameters keep their order).
    pub fn parse(query: Option<&str>) -> Self {
        let mut o = Self::default();
        for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                let s = s.replace('+', " ");
                urlencoding::decode(&s).map(|c| c.into_owned()).unwrap_or(s)
            };
            let (k, v) = (decode(k), decode(v));
            let on = matches!(v.as_str(), "" | "1" | "true" | "True" | "TRUE" | "t" | "T");
            match k.as_str() {
                "command" => o.command.push(v),
                "stdin" | "input" => o.stdin = on,
                "stdout" | "output" => o.stdout = on,
                "stderr" | "error" => o.stderr = on,
                "tty" => o.tty = on,
                _ => {}
            }
        }
        if o.tty {
            o.stderr = false;
        }
        o
    }
}

/// The `Status` on the error channel when a command exits with `code`, as the kubelet writes it.
pub fn exit_status(command: &[String], code: i32) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: command '{}' exited with {code}: ",
            command.join(" ")
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}
    })
}

/// The `Status` for an exec that could not run (kube-apiserver's InternalError shape).
pub fn internal_error(message: &str) -> Value {
    let message = format!("error executing command in container: {message}");
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: {message}"),
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500
    })
}

fn is_websocket(headers: &HeaderMap) -> bool {
    headers.get(header::UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Find the container or answer as the kubelet does (`container not found ("c")`, 500, plain text),
/// and refuse anything but a WebSocket upgrade.
async fn upgrade(
    containers: &Containers,
    namespace: &str,
    pod: &str,
    container: &str,
    req: Request,
) -> Result<(WebSocketUpgrade, Arc<ContainerHandle>), Response> {
    let Some(handle) = containers.get(namespace, pod, container) else {
        return Err((StatusCode::INTERNAL_SERVER_ERROR, format!("container not found ({container:?})")).into_response());
    };
    if !is_websocket(req.headers()) {
        return Err((
            StatusCode::BAD_REQUEST,
            "unable to upgrade: jobwright's node simulator streams over WebSocket only (v5.channel.k8s.io, \
             v4.channel.k8s.io), not SPDY",
        )
            .into_response());
    }
    let (mut parts, _) = req.into_parts();
    let ws = WebSocketUpgrade::from_request_parts(&mut parts, &()).await.map_err(IntoResponse::into_response)?;
    Ok((ws.protocols(PROTOCOLS), handle))
}

async fn exec(
    axum::extract::State(containers): axum::extract::State<Arc<Containers>>,
    UrlPath((namespace, pod, container)): UrlPath<(String, String, String)>,
    req: Request,
) -> Response {
    let opts = StreamOptions::parse(req.uri().query());
    let (ws, handle) = match upgrade(&containers, &namespace, &pod, &container, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    ws.on_upgrade(move |socket| async move {
        let v5 = socket.protocol().is_some_and(|p| p.as_bytes() == PROTOCOLS[0].as_bytes());
        run_exec(socket, v5, handle, opts).await;
    })
}

async fn attach(
    axum::extract::State(containers): axum::extract::State<Arc<Containers>>,
    UrlPath((namespace, pod, container)): UrlPath<(String, String, String)>,
    req: Request,
) -> Response {
    let opts = StreamOptions::parse(req.uri().query());
    let (ws, handle) = match upgrade(&containers, &namespace, &pod, &container, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    ws.on_upgrade(move |socket| run_attach(socket, handle, opts))
}

/// What the socket reader hands the command.
enum Input {
    Stdin(Bytes),
    StdinClosed,
    Resize(u16, u16),
}

/// Split the socket: a writer task sends what `out` receives; the reader forwards stdin, stdin
/// close and resize messages to the returned receiver (which ends when the client goes away).
///
/// The reader keeps reading after the command is done (discarding stdin) until the client's close
/// frame: closing a socket with unread input resets the connection, and the reset would destroy
/// the final status on its way to the client.
fn split(socket: WebSocket) -> (mpsc::Sender<Message>, mpsc::Receiver<Input>, Tasks) {
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(64);
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            let close = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || close {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let (in_tx, in_rx) = mpsc::channel::<Input>(64);
    let reader = tokio::spawn(async move {
        while let Some(Ok(m)) = stream.next().await {
            let data = match m {
                Message::Binary(b) => b,
                Message::Text(t) => Bytes::from(t.as_str().as_bytes().to_vec()),
                Message::Close(_) => break,
                _ => continue,
            };
            let Some((&channel, rest)) = data.split_first() else { continue };
            let input = match channel {
                STDIN => Input::Stdin(data.slice(1..)),
                RESIZE => match serde_json::from_slice::<Value>(rest) {
                    Ok(v) => Input::Resize(
                        v["Width"].as_u64().unwrap_or(0).min(u16::MAX as u64) as u16,
                        v["Height"].as_u64().unwrap_or(0).min(u16::MAX as u64) as u16,
                    ),
                    Err(_) => continue,
                },
                CLOSE if rest.first() == Some(&STDIN) => Input::StdinClosed,
                _ => continue,
            };
            // Once nobody takes input any more, it is read and dropped.
            let _ = in_tx.send(input).await;
        }
    });
    (out_tx, in_rx, Tasks { writer, reader })
}

/// The socket's writer and reader tasks.
struct Tasks {
    writer: tokio::task::JoinHandle<()>,
    reader: tokio::task::JoinHandle<()>,
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(Bytes::from(v))
}

/// Send the final status and close normally; the client reads the status once the socket closes.
/// Then wait (bounded) for the client's close frame.
async fn finish(out: mpsc::Sender<Message>, tasks: Tasks, status: &Value) {
    let _ = out.send(frame(ERROR, status.to_string().as_bytes())).await;
    let _ = out.send(Message::Close(Some(axum::extract::ws::CloseFrame { code: 1000, reason: "".into() }))).await;
    drop(out);
    let _ = tokio::time::timeout(Duration::from_secs(5), tasks.writer).await;
    let mut reader = tasks.reader;
    if tokio::time::timeout(Duration::from_secs(5), &mut reader).await.is_err() {
        reader.abort();
    }
}

/// Copy `r` to the client on `channel` until EOF.
fn pump(
    mut r: impl AsyncRead + Unpin + Send + 'static,
    channel: u8,
    out: mpsc::Sender<Message>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if out.send(frame(channel, &buf[..n])).await.is_err() {
                        break;
                    }
                }
            }
        }
    })
}

/// Feed stdin and resizes to the command until stdin closes (or the client goes away).
fn feed(
    mut input: mpsc::Receiver<Input>,
    mut stdin: Option<Box<dyn AsyncWrite + Unpin + Send>>,
    resize: impl Fn(u16, u16) + Send + 'static,
    eof_byte: bool,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(i) = input.recv().await {
            match i {
                Input::Stdin(b) => {
                    if let Some(w) = stdin.as_mut()
                        && (w.write_all(&b).await.is_err() || w.flush().await.is_err())
                    {
                        stdin = None;
                    }
                }
                Input::StdinClosed => {
                    if let Some(mut w) = stdin.take() {
                        // A terminal has no EOF of its own: send the EOF character, as a user would.
                        if eof_byte {
                            let _ = w.write_all(&[4]).await;
                        }
                        let _ = w.shutdown().await;
                    }
                }
                Input::Resize(w, h) => resize(w, h),
            }
        }
    })
}

async fn run_exec(socket: WebSocket, _v5: bool, handle: Arc<ContainerHandle>, opts: StreamOptions) {
    let (out, input, tasks) = split(socket);
    if opts.command.is_empty() {
        return finish(out, tasks, &internal_error("no command specified")).await;
    }
    let program = &opts.command[0];
    // In the pod's namespaces when it has its own (network, hostname, resolv.conf), as exec
    // joins the container's on a cluster.
    let mut cmd = handle.spec.command(&opts.command);
    cmd.kill_on_drop(true);
    // Through the sandbox helper a missing program would only fail inside it: look it up first.
    let found = match handle.spec.sandbox {
        Some(_) => handle.spec.find_program(program).map_err(std::io::Error::from),
        None => Ok(()),
    };
    let spawned = found.and_then(|()| if opts.tty { spawn_tty(cmd) } else { spawn_pipes(cmd, &opts) });
    let mut proc = match spawned {
        Ok(p) => p,
        Err(e) => {
            let id = uuid::Uuid::new_v4().simple().to_string();
            let msg = match e.kind() {
                std::io::ErrorKind::NotFound => format!("exec: \"{program}\": executable file not found in $PATH"),
                std::io::ErrorKind::PermissionDenied => format!("exec: \"{program}\": permission denied"),
                _ => format!("exec: \"{program}\": {e}"),
            };
            let msg = format!(
                "failed to exec in container: failed to start exec \"{id}\": OCI runtime exec failed: exec failed: \
                 unable to start container process: {msg}: unknown"
            );
            return finish(out, tasks, &internal_error(&msg)).await;
        }
    };
    let pid = proc.child.id();
    if let Some(pid) = pid {
        handle.execs.lock().unwrap_or_else(|e| e.into_inner()).insert(pid);
    }
    let mut pumps = Vec::new();
    if let Some(r) = proc.stdout.take() {
        pumps.push(pump(r, STDOUT, out.clone()));
    }
    if let Some(r) = proc.stderr.take() {
        pumps.push(pump(r, STDERR, out.clone()));
    }
    let resize = proc.resize.take();
    let feeder = feed(
        input,
        proc.stdin.take(),
        move |w, h| {
            if let Some(r) = &resize {
                r(w, h)
            }
        },
        opts.tty,
    );
    let status = tokio::select! {
        s = proc.child.wait() => s,
        _ = handle.stopped.cancelled() => {
            let _ = proc.child.start_kill();
            proc.child.wait().await
        }
    };
    if let Some(pid) = pid {
        handle.execs.lock().unwrap_or_else(|e| e.into_inner()).remove(&pid);
    }
    // Output still in the pipes is delivered; a process that escaped and holds them open is not
    // waited for.
    for p in pumps {
        let _ = tokio::time::timeout(Duration::from_secs(2), p).await;
    }
    feeder.abort();
    let code = match status {
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt;
            s.code().or_else(|| s.signal().map(|sig| 128 + sig)).unwrap_or(128)
        }
        Err(_) => 128,
    };
    finish(out, tasks, &exit_status(&opts.command, code)).await;
}

struct Spawned {
    child: tokio::process::Child,
    stdin: Option<Box<dyn AsyncWrite + Unpin + Send>>,
    stdout: Option<Box<dyn AsyncRead + Unpin + Send>>,
    stderr: Option<Box<dyn AsyncRead + Unpin + Send>>,
    resize: Option<Box<dyn Fn(u16, u16) + Send + Sync>>,
}

fn spawn_pipes(mut cmd: tokio::process::Command, opts: &StreamOptions) -> std::io::Result<Spawned> {
    let pipe = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
    cmd.stdin(pipe(opts.stdin)).stdout(pipe(opts.stdout)).stderr(pipe(opts.stderr)).process_group(0);
    let mut child = cmd.spawn()?;
    Ok(Spawned {
        stdin: child.stdin.take().map(|w| Box::new(w) as Box<dyn AsyncWrite + Unpin + Send>),
        stdout: child.stdout.take().map(|r| Box::new(r) as Box<dyn AsyncRead + Unpin + Send>),
        stderr: child.stderr.take().map(|r| Box::new(r) as Box<dyn AsyncRead + Unpin + Send>),
        resize: None,
        child,
    })
}

fn spawn_tty(cmd: tokio::process::Command) -> std::io::Result<Spawned> {
    let to_io = |e: pty_process::Error| match e {
        pty_process::Error::Io(e) => e,
        other => std::io::Error::other(other.to_string()),
    };
    let (pty, pts) = pty_process::open().map_err(to_io)?;
    let child = pty_process::Command::from(cmd).spawn(pts).map_err(to_io)?;
    let (read, write) = pty.into_split();
    let write = Arc::new(tokio::sync::Mutex::new(write));
    let resizer = write.clone();
    let resize = move |w: u16, h: u16| {
        if w > 0
            && h > 0
            && let Ok(guard) = resizer.try_lock()
        {
            let _ = guard.resize(pty_process::Size::new(h, w));
        }
    };
    Ok(Spawned {
        child,
        stdin: Some(Box::new(SharedWriter(write))),
        stdout: Some(Box::new(read)),
        stderr: None,
        resize: Some(Box::new(resize)),
    })
}

/// The pty's write half, shared with the resizer.
struct SharedWriter(Arc<tokio::sync::Mutex<pty_process::OwnedWritePty>>);

impl AsyncWrite for SharedWriter {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.0.try_lock() {
            Ok(mut g) => std::pin::Pin::new(&mut *g).poll_write(cx, buf),
            Err(_) => {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.0.try_lock() {
            Ok(mut g) => std::pin::Pin::new(&mut *g).poll_flush(cx),
            Err(_) => {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.0.try_lock() {
            Ok(mut g) => std::pin::Pin::new(&mut *g).poll_shutdown(cx),
            Err(_) => {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        }
    }
}

/// Close the container's stdin (EOF for its process).
async fn close_stdin(handle: &ContainerHandle) {
    if let Some(mut w) = handle.stdin.lock().await.take() {
        let _ = w.shutdown().await;
    }
}

async fn run_attach(socket: WebSocket, handle: Arc<ContainerHandle>, opts: StreamOptions) {
    let (out, mut input, tasks) = split(socket);
    // Follow the output from now: the start is taken before any input can make the process print.
    let mut rx = follow_from_now(handle.log.clone());
    // `attach -i`: what the client sends goes to the container's stdin pipe (a container without
    // `stdin: true` has none, and the input is dropped).
    let feeder = {
        let handle = handle.clone();
        let use_stdin = opts.stdin;
        tokio::spawn(async move {
            while let Some(i) = input.recv().await {
                match i {
                    Input::Stdin(b) if use_stdin => {
                        let mut g = handle.stdin.lock().await;
                        if let Some(w) = g.as_mut()
                            && (w.write_all(&b).await.is_err() || w.flush().await.is_err())
                        {
                            *g = None;
                        }
                    }
                    Input::StdinClosed if use_stdin && handle.stdin_once => close_stdin(&handle).await,
                    _ => {}
                }
            }
            if use_stdin && handle.stdin_once {
                close_stdin(&handle).await;
            }
        })
    };
    loop {
        tokio::select! {
            chunk = rx.recv() => match chunk {
                Some(Ok(b)) => {
                    if opts.stdout && out.send(frame(STDOUT, &b)).await.is_err() {
                        break;
                    }
                }
                _ => break,
            },
            _ = out.closed() => break,
        }
    }
    finish(out, tasks, &json!({"metadata": {}, "status": "Success"})).await;
    // The reader has ended (or was stopped): the feeder ends with it.
    let _ = tokio::time::timeout(Duration::from_secs(5), feeder).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_repeated_commands_in_order() {
        let o = StreamOptions::parse(Some(
            "command=sh&command=-c&command=echo+%22a+b%22&stdin=true&stdout=true&stderr=true",
        ));
        assert_eq!(o.command, ["sh", "-c", "echo \"a b\""]);
        assert!(o.stdin && o.stdout && o.stderr && !o.tty);
        let o = StreamOptions::parse(Some("command=sh&tty=true&stderr=true&stdout=true"));
        assert!(o.tty && !o.stderr, "a TTY has no separate stderr");
        assert_eq!(StreamOptions::parse(None), StreamOptions::default());
    }

    #[test]
    fn exit_status_carries_the_code_as_client_go_reads_it() {
        assert_eq!(exit_status(&[], 0), json!({"metadata": {}, "status": "Success"}));
        let s = exit_status(&["sh".into(), "-c".into(), "exit 3".into()], 3);
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0], json!({"reason": "ExitCode", "message": "3"}));
    }
}
