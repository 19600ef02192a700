//! Kubeconfig files for a local, plain-HTTP API server, accepted by both `kubectl` and
//! `kube::Config::from_custom_kubeconfig`.

use std::path::Path;

/// The kubeconfig YAML for a server at `url` (e.g. `http://127.0.0.1:41234`), with one cluster,
/// user and context named `jobwright` and the `default` namespace.
pub fn render(url: &str) -> String {
    render_with_token(url, None)
}

/// [`render`], the user authenticating with a bearer `token` when given; an `https://` URL
/// (an RBAC server's self-signed loopback port) skips certificate verification.
pub fn render_with_token(url: &str, token: Option<&str>) -> String {
    let user = match token {
        Some(t) => format!("{{token: {}}}", serde_json::Value::String(t.to_string())),
        None => "{}".to_string(),
    };
    // An https:// server is a loopback test server with a self-signed certificate.
    let insecure = if url.starts_with("https://") { "\n    insecure-skip-tls-verify: true" } else { "" };
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: jobwright
  cluster:
    server: {url}{insecure}
users:
- name: jobwright
  user: {user}
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
    write_with_token(path, url, None)
}

/// Write [`render_with_token`]`(url, token)` to `path`, creating parent directories. The file is
/// readable by its owner only (mode 0600, as kubectl writes kubeconfigs): it may hold a token. An
/// existing file is narrowed to 0600 before the new content is written into it.
pub fn write_with_token(path: &Path, url: &str, token: Option<&str>) -> std::io::Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    write_private(path, render_with_token(url, token).as_bytes())
}

/// Write `contents` to `path` with mode 0600 (a file that already exists is narrowed to 0600
/// before anything is written to it).
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.set_len(0)?;
    f.write_all(contents)?;
    f.sync_all()
}

/// Remove the kubeconfig written at `path` for the server at `url` once that server is gone,
/// unless something else has replaced it since (e.g. another server started on the same path).
pub fn remove_if_ours(path: &Path, url: &str) {
    let ours = std::fs::read_to_string(path).is_ok_and(|text| text.contains(&format!("server: {url}\n")));
    if ours && let Err(e) = std::fs::remove_file(path) {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove the kubeconfig");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_rs_reads_the_kubeconfig() {
        let kc: kube::config::Kubeconfig = serde_saphyr::from_str(&render("http://127.0.0.1:1234")).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("jobwright"));
        assert_eq!(kc.clusters[0].cluster.as_ref().unwrap().server.as_deref(), Some("http://127.0.0.1:1234"));
        let text = render_with_token("http://127.0.0.1:1234", Some("a:b\"c"));
        let kc: kube::config::Kubeconfig = serde_saphyr::from_str(&text).unwrap();
        assert!(kc.auth_infos[0].auth_info.as_ref().unwrap().token.is_some());
        let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(v["users"][0]["user"]["token"], "a:b\"c");
    }

    #[test]
    fn kubeconfigs_are_written_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let fresh = dir.path().join("sub/kubeconfig");
        write_with_token(&fresh, "https://127.0.0.1:1", Some("secret-token")).unwrap();
        assert_eq!(mode(&fresh), 0o600);
        assert!(std::fs::read_to_string(&fresh).unwrap().contains("secret-token"));
        // An existing world-readable file is narrowed, and its old content replaced.
        let old = dir.path().join("old");
        std::fs::write(&old, "x".repeat(5000)).unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        write(&old, "http://127.0.0.1:2").unwrap();
        assert_eq!(mode(&old), 0o600);
        assert_eq!(std::fs::read_to_string(&old).unwrap(), render("http://127.0.0.1:2"));
    }
}
