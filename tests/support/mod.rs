//! Shared test support: the real `kubectl`, each instance with its own kubeconfig and
//! `KUBECACHEDIR` in a fresh temporary directory.

#![allow(dead_code)]

/// A `kubectl` bound to one server. The real binary is required: every machine has it.
pub struct Kubectl {
    /// Holds the kubeconfig and the cache directory.
    pub dir: tempfile::TempDir,
}

impl Kubectl {
    /// A kubectl for `server` (an `http://` URL), namespace `default`.
    pub fn new(server: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: {server}\ncontexts:\n- name: t\n  context:\n    cluster: t\n    user: t\n    namespace: default\ncurrent-context: t\nusers:\n- name: t\n  user: {{}}\n"
        );
        std::fs::write(dir.path().join("kubeconfig"), kubeconfig).unwrap();
        Self { dir }
    }

    /// Run kubectl; `(success, stdout, stderr)`.
    pub async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg("--kubeconfig").arg(self.dir.path().join("kubeconfig")).args(args);
        cmd.env("KUBECACHEDIR", self.dir.path().join("cache"));
        let out = cmd.output().await.expect("kubectl on PATH");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Run kubectl and require success; stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args).await;
        assert!(ok, "kubectl {args:?} failed:\n{out}\n{err}");
        out
    }
}

impl Kubectl {
    /// Run kubectl with `stdin` piped in; `(success, stdout, stderr)`.
    pub async fn run_stdin(&self, args: &[&str], stdin: &str) -> (bool, String, String) {
        use tokio::io::AsyncWriteExt;
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg("--kubeconfig").arg(self.dir.path().join("kubeconfig")).args(args);
        cmd.env("KUBECACHEDIR", self.dir.path().join("cache"));
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl on PATH");
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(stdin.as_bytes()).await.unwrap();
        drop(input);
        let out = child.wait_with_output().await.unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Split table output into rows of whitespace-separated words.
    pub fn rows(out: &str) -> Vec<Vec<String>> {
        out.lines().map(|l| l.split_whitespace().map(str::to_string).collect()).collect()
    }
}
