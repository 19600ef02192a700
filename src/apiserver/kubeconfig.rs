//! Kubeconfig files for a local, plain-HTTP API server, accepted by both `kubectl` and
//! `kube::Config::from_custom_kubeconfig`.

use std::path::Path;

/// The kubeconfig YAML for a server at `url` (e.g. `http://127.0.0.1:41234`), with one cluster,
/// user and context named `jobwright` and the `default` namespace.
pub fn render(url: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: jobwright
  cluster:
    server: {url}
users:
- name: jobwright
  user: {{}}
contexts:
- name: jobwright
  context:
    cluster: jobwright
    user: jobwright
    namespace: default
current-context: jobwright
preferences: {{}}
"
    )
}

/// Write [`render`]`(url)` to `path`, creating parent directories.
pub fn write(path: &Path, url: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, render(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_rs_reads_the_kubeconfig() {
        let kc: kube::config::Kubeconfig = serde_saphyr::from_str(&render("http://127.0.0.1:1234")).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("jobwright"));
        assert_eq!(kc.clusters[0].cluster.as_ref().unwrap().server.as_deref(), Some("http://127.0.0.1:1234"));
    }
}
