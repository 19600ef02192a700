//! `jobwright::httpclient`: the HTTP/1 client stack of jobwright's clients in clusters. Connections
//! are reused and go back to the pool when an answer's body ends; a connection the server closed
//! or broke is not reused (a request it could not start goes on another); TLS, the token and
//! long-lived watches work through the whole stack against the API server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::{StreamExt, TryStreamExt};
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use jobwright::httpclient::{Http1, builder};
use jobwright_apiserver::testkit::TestApiServer;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::{Service, ServiceExt};

/// Reads one request head (the tests send no bodies); false at the connection's end.
async fn read_head(sock: &mut TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match sock.read(&mut byte).await {
            Ok(1) => buf.push(byte[0]),
            _ => return false,
        }
    }
    true
}

/// A server answering `ok` to each request; after `per_conn` answers on a connection it closes
/// it (without saying so in the answer). Counts the connections it accepted.
async fn server(per_conn: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                for _ in 0..per_conn {
                    if !read_head(&mut sock).await {
                        return;
                    }
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if sock.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, accepted)
}

fn client(url: &str) -> kube::Client {
    let mut config = kube::Config::new(url.parse().unwrap());
    config.default_namespace = "default".into();
    builder(config).unwrap().build()
}

async fn get(client: &kube::Client) -> String {
    let req = http::Request::get("/x").body(vec![]).unwrap();
    client.request_text(req).await.unwrap()
}

#[tokio::test]
async fn requests_one_after_another_share_one_connection() {
    let (url, accepted) = server(usize::MAX).await;
    let client = client(&url);
    for _ in 0..20 {
        assert_eq!(get(&client).await, "ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection for 20 requests in a row");
}

#[tokio::test]
async fn connections_the_server_closes_are_not_reused() {
    // Closed after each answer: when its close comes with the answer, the connection is not
    // put back; when it comes later, the next request finds it closed.
    let (url, accepted) = server(1).await;
    let client = client(&url);
    for _ in 0..10 {
        assert_eq!(get(&client).await, "ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 10);

    // Closed by the server only once the client has read the answer (and pooled the connection).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (close_tx, mut close_rx) = tokio::sync::mpsc::unbounded_channel::<tokio::sync::oneshot::Sender<()>>();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            assert!(read_head(&mut sock).await);
            sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.unwrap();
            let Some(closed) = close_rx.recv().await else { return };
            drop(sock);
            closed.send(()).unwrap();
        }
    });
    let client = self::client(&url);
    for _ in 0..5 {
        assert_eq!(get(&client).await, "ok");
        let (tx, rx) = tokio::sync::oneshot::channel();
        close_tx.send(tx).unwrap();
        rx.await.unwrap();
    }
}

#[tokio::test]
async fn a_connection_goes_back_when_its_body_ends_and_not_when_it_is_dropped_before() {
    // Answers a chunked body of one chunk and ends it when told; one answer at a time (the
    // next connection's answer starts only once the previous one ended or its client went away).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url: http::Uri = format!("http://{}/x", listener.local_addr().unwrap()).parse().unwrap();
    let (end_tx, end_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let end_rx = Arc::new(tokio::sync::Mutex::new(end_rx));
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let end_rx = end_rx.clone();
            tokio::spawn(async move {
                while read_head(&mut sock).await {
                    let mut end_rx = end_rx.lock().await;
                    let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n";
                    sock.write_all(head).await.unwrap();
                    let mut b = [0u8; 1];
                    tokio::select! {
                        biased;
                        _ = sock.read(&mut b) => return, // the client went away
                        end = end_rx.recv() => if end.is_none() { return },
                    }
                    sock.write_all(b"0\r\n\r\n").await.unwrap();
                }
            });
        }
    });
    let mut svc = Http1::new(HttpConnector::new());
    let req = || http::Request::get(url.clone()).body(kube::client::Body::empty()).unwrap();

    let mut body = svc.ready().await.unwrap().call(req()).await.unwrap().into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"hi");
    assert_eq!(svc.idle(), 0, "not back while its body is still being read");
    end_tx.send(()).unwrap();
    assert!(body.frame().await.is_none());
    assert_eq!(svc.idle(), 1, "back at the body's end");

    // Taken again; dropped before its end, it is not put back.
    let mut body = svc.ready().await.unwrap().call(req()).await.unwrap().into_body();
    assert_eq!(svc.idle(), 0);
    body.frame().await.unwrap().unwrap();
    drop(body);
    assert_eq!(svc.idle(), 0, "a connection with an unread body is not reused");
    // A new connection serves the next request.
    let mut body = svc.ready().await.unwrap().call(req()).await.unwrap().into_body();
    body.frame().await.unwrap().unwrap();
    end_tx.send(()).unwrap();
    assert!(body.frame().await.is_none());
    assert_eq!(svc.idle(), 1);
}

#[tokio::test]
async fn tls_token_and_a_watch_beside_requests_against_the_api_server() {
    let s = TestApiServer::start_rbac().await;
    assert!(s.kubeconfig_url().starts_with("https://"));
    let kubeconfig = kube::config::Kubeconfig::read_from(s.kubeconfig_path()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    let client = builder(config).unwrap().build();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut watch = watcher(api.clone(), watcher::Config::default()).boxed();
    // The watch's list is done (its stream stays open on a connection of its own).
    loop {
        if let watcher::Event::InitDone = watch.try_next().await.unwrap().unwrap() {
            break;
        }
    }
    let creates = (0..8).map(|i| {
        let api = api.clone();
        async move {
            let cm: ConfigMap =
                serde_json::from_value(serde_json::json!({"metadata": {"name": format!("cm-{i}")}})).unwrap();
            api.create(&PostParams::default(), &cm).await.unwrap();
        }
    });
    futures::future::join_all(creates).await;
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 8 {
        if let watcher::Event::Apply(cm) = watch.try_next().await.unwrap().unwrap() {
            seen.insert(cm.metadata.name.unwrap());
        }
    }
    assert_eq!(api.list(&Default::default()).await.unwrap().items.len(), 8);
}

/// A configured proxy (the kubeconfig's `proxy-url`, `HTTPS_PROXY`) is refused as kube's own
/// builder refuses it without its proxy features: never silently bypassed by dialling direct.
#[test]
fn a_configured_proxy_is_refused_not_bypassed() {
    let mut config = kube::Config::new("https://127.0.0.1:6443".parse().unwrap());
    config.proxy_url = Some("http://proxy.example:3128".parse().unwrap());
    match builder(config) {
        Err(kube::Error::ProxyProtocolDisabled { protocol_feature, .. }) => {
            assert_eq!(protocol_feature, "kube/http-proxy")
        }
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("a client that would bypass the proxy"),
    }
}
