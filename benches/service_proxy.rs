//! The Service proxy of `jobwright local`'s pod network (`src/kubelet/proxy.rs`, kube-proxy's
//! userspace mode) against a direct connection: connections per second (connect, send a byte,
//! read the reply, close; 16 clients at once) and MB/s (one connection sending 256 MiB, the server
//! counting).
//!
//! - **loopback** (always): a tokio server on 127.0.0.1, reached directly and through the proxy's
//!   listener in this process: the proxy's own cost.
//! - **pod** (`cargo bench --bench service_proxy`, as root with `python3`): the real
//!   `jobwright local`, a pod running a threaded Python server and a NodePort Service; this
//!   process connects to the pod's IP directly and to `hostIP:nodePort` (the same proxy code as
//!   a ClusterIP, over the bridge).
//!
//! Without `--bench` (as `cargo test --all-targets` runs it), a quick loopback smoke run.

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobwright::kubelet::proxy::{Backends, spawn_listener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const CLIENTS: usize = 16;

/// A server that reads each connection to its end and answers with the byte count.
async fn counting_server() -> SocketAddrV4 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let SocketAddr::V4(addr) = l.local_addr().unwrap() else { unreachable!() };
    tokio::spawn(async move {
        loop {
            let Ok((mut c, _)) = l.accept().await else { continue };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 256 * 1024];
                let mut n = 0u64;
                loop {
                    match c.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k as u64,
                    }
                }
                let _ = c.write_all(format!("{n}\n").as_bytes()).await;
            });
        }
    });
    addr
}

/// Send `bytes` on one connection, close the sending side and read the server's count.
async fn send(addr: SocketAddr, bytes: usize) -> u64 {
    try_send(addr, bytes).await.unwrap_or_else(|e| panic!("{addr}: {e}"))
}

async fn try_send(addr: SocketAddr, bytes: usize) -> std::io::Result<u64> {
    let mut c = TcpStream::connect(addr).await?;
    c.set_nodelay(true)?;
    let chunk = vec![b'x'; 256 * 1024];
    let mut left = bytes;
    while left > 0 {
        let k = left.min(chunk.len());
        c.write_all(&chunk[..k]).await?;
        left -= k;
    }
    c.shutdown().await?;
    let mut reply = String::new();
    c.read_to_string(&mut reply).await?;
    reply.trim().parse().map_err(|_| std::io::Error::other(format!("server reply {reply:?}")))
}

/// (connections/s, MB/s) to `addr`.
async fn measure(addr: SocketAddr, connections: usize, megabytes: usize) -> (f64, f64) {
    let start = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let n = connections / CLIENTS + usize::from(i < connections % CLIENTS);
            tokio::spawn(async move {
                for _ in 0..n {
                    assert_eq!(send(addr, 1).await, 1);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let conn_rate = connections as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    assert_eq!(send(addr, megabytes << 20).await, (megabytes << 20) as u64);
    let mbps = megabytes as f64 / start.elapsed().as_secs_f64();
    (conn_rate, mbps)
}

fn report(what: &str, direct: (f64, f64), proxied: (f64, f64)) {
    println!(
        "{what:<9} direct:  {:>8.0} connections/s  {:>7.0} MB/s\n{:<9} proxied: {:>8.0} connections/s  {:>7.0} MB/s  \
         ({:.0}% and {:.0}% of direct)",
        direct.0,
        direct.1,
        "",
        proxied.0,
        proxied.1,
        100.0 * proxied.0 / direct.0,
        100.0 * proxied.1 / direct.1
    );
}

async fn loopback(connections: usize, megabytes: usize) {
    let backend = counting_server().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    spawn_listener(
        listener,
        Backends::new(vec![backend]),
        Arc::new(tokio::sync::Semaphore::new(1024)),
        stop.clone(),
        stop.clone(),
    );
    let direct = measure(backend.into(), connections, megabytes).await;
    let proxied = measure(front, connections, megabytes).await;
    report("loopback", direct, proxied);
    stop.cancel();
}

const SERVER: &str = "import socketserver\n\
class H(socketserver.BaseRequestHandler):\n    \
    def handle(self):\n        \
        n = 0\n        \
        while True:\n            \
            b = self.request.recv(262144)\n            \
            if not b: break\n            \
            n += len(b)\n        \
        self.request.sendall(b'%d\\n' % n)\n\
socketserver.ThreadingTCPServer.allow_reuse_address = True\n\
socketserver.ThreadingTCPServer.request_queue_size = 128\n\
socketserver.ThreadingTCPServer(('0.0.0.0', 9000), H).serve_forever()\n";

/// The pod measurement: (direct, proxied), or why it cannot run here.
async fn pod(connections: usize, megabytes: usize) -> Result<((f64, f64), (f64, f64)), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("not root".into());
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kc");
    let local = std::process::Command::new(common::jobwright_bin())
        .args(["local", "--listen", "127.0.0.1:0", "--kubeconfig"])
        .arg(&kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut proc = common::ChildProc { child: local, what: "jobwright local".into() };
    let cfg = common::wait_kubeconfig(&kubeconfig, &mut proc).await;
    let result = async {
        let client = kube::Client::try_from(cfg).map_err(|e| e.to_string())?;
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::default_namespaced(client.clone());
        let svcs: kube::Api<k8s_openapi::api::core::v1::Service> = kube::Api::default_namespaced(client);
        let pod = serde_json::from_value(serde_json::json!({"metadata": {"name": "sink", "labels": {"app": "sink"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "python:3",
                "command": ["python3", "-c", SERVER], "ports": [{"containerPort": 9000}]}]}}))
        .unwrap();
        pods.create(&Default::default(), &pod).await.map_err(|e| e.to_string())?;
        let svc = serde_json::from_value(serde_json::json!({"metadata": {"name": "sink"},
            "spec": {"type": "NodePort", "selector": {"app": "sink"}, "ports": [{"port": 80, "targetPort": 9000}]}}))
        .unwrap();
        let svc = svcs.create(&Default::default(), &svc).await.map_err(|e| e.to_string())?;
        let node_port = svc.spec.unwrap().ports.unwrap()[0].node_port.unwrap() as u16;
        // Both paths answer (the server listens and the proxy has its endpoint) before measuring.
        let deadline = Instant::now() + Duration::from_secs(60);
        let (direct, node) = loop {
            if Instant::now() > deadline {
                return Err("the pod's server did not answer through both paths within 60 s".to_string());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let p = pods.get("sink").await.map_err(|e| e.to_string())?;
            let status = p.status.unwrap_or_default();
            let (Some(ip), Some(host)) = (status.pod_ip, status.host_ip) else { continue };
            let direct = SocketAddr::new(ip.parse().unwrap(), 9000);
            let node = SocketAddr::new(host.parse::<Ipv4Addr>().unwrap().into(), node_port);
            let ok = |a| async move {
                matches!(tokio::time::timeout(Duration::from_secs(2), try_send(a, 1)).await, Ok(Ok(1)))
            };
            if ok(direct).await && ok(node).await {
                break (direct, node);
            }
        };
        Ok((measure(direct, connections, megabytes).await, measure(node, connections, megabytes).await))
    }
    .await;
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(proc.pid() as i32), nix::sys::signal::Signal::SIGTERM);
    let _ = proc.child.wait();
    result
}

#[tokio::main]
async fn main() {
    let full = common::full_run();
    let (connections, megabytes) = if full { (20_000, 256) } else { (200, 8) };
    println!("service proxy: {connections} connections ({CLIENTS} clients), {megabytes} MiB on one connection");
    loopback(connections, megabytes).await;
    if full {
        match pod(connections, megabytes).await {
            Ok((direct, proxied)) => report("pod", direct, proxied),
            Err(why) => println!("pod: skipped ({why})"),
        }
    }
}
