//! `jobwright apiserver`: prints its address, writes a kubeconfig both kube-rs and kubectl read,
//! serves, and exits 0 on SIGTERM.

use crate::common;

use std::process::Command;

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;

#[tokio::test]
async fn apiserver_subcommand_serves_until_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    let (child, line) =
        common::spawn_jobwright(["apiserver", "--listen", "127.0.0.1:0", "--kubeconfig", kc.to_str().unwrap()]);
    assert!(line.starts_with("jobwright apiserver listening on http://127.0.0.1:"), "{line}");
    assert!(line.trim_end().ends_with(&format!("kubeconfig written to {}", kc.display())), "{line}");

    let raw = std::fs::read_to_string(&kc).unwrap();
    let config: kube::config::Kubeconfig = serde_saphyr::from_str(&raw).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(config, &Default::default()).await.unwrap();
    let client = kube::Client::try_from(cfg).unwrap();
    let nss: Api<Namespace> = Api::all(client);
    assert!(nss.get("default").await.is_ok());

    let k = jobwright::apiserver::testkit::Kubectl::from_kubeconfig(&kc).unwrap();
    assert_eq!(k.ok(&["get", "ns", "default", "-o", "name"]).await.trim(), "namespace/default");

    common::terminate_cleanly(child).await;
    assert!(!kc.exists(), "the kubeconfig of a stopped server is removed");
}

#[test]
fn apiserver_subcommand_rejects_a_bad_listen_address() {
    let out = Command::new(env!("CARGO_BIN_EXE_jobwright")).args(["apiserver", "--listen", "nope"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen"));
}

/// Started with a soft open-files limit below the hard one, the process raises its soft limit to
/// the hard one, as every Go program does (kube-apiserver's too).
#[test]
fn the_open_files_soft_limit_is_raised_to_the_hard_limit() {
    use std::io::BufRead;
    let limits = |pid: u32| {
        let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
        let line = text.lines().find(|l| l.starts_with("Max open files")).unwrap().to_owned();
        let n: Vec<String> = line.split_whitespace().skip(3).take(2).map(str::to_owned).collect();
        (n[0].clone(), n[1].clone())
    };
    let (_, hard) = limits(std::process::id());
    if hard == "256" {
        panic!("the hard limit is already 256: this test cannot lower the soft one below it");
    }
    let mut child = Command::new("sh")
        .args(["-c", "ulimit -Sn 256 && exec \"$0\" apiserver --listen 127.0.0.1:0", env!("CARGO_BIN_EXE_jobwright")])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("jobwright apiserver listening on"), "{line}");
    let (soft, child_hard) = limits(child.id());
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(child_hard, hard);
    assert_eq!(soft, hard, "the soft limit (256 when started) is raised to the hard limit");
}
