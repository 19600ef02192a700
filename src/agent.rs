//! The `User-Agent` each of jobwright's components sends, in client-go's form
//! (`<program>/<version> (<os>/<arch>) <source>/<commit>`, see client-go's
//! `rest.DefaultKubernetesUserAgent`).
//!
//! kube-apiserver names the field manager of a write without `?fieldManager=` after the part of
//! the agent before its first `/`, so these are what `kubectl get -o yaml --show-managed-fields`
//! shows: `jobwright` for the controllers (Job, TTL, CronJob, Endpoints), and in `jobwright local`
//! `kubelet` for the node simulator (its pod status writes, node heartbeats, bindings and events),
//! as a kind node's kubelet shows. Without an agent every such entry had an empty manager.

use http::HeaderValue;

/// Go's names for the architecture, as client-go prints `runtime.GOARCH`.
fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn agent(program: &str, version: &str, tail: &str) -> HeaderValue {
    let ua = format!("{program}/{version} ({}/{}) {tail}", std::env::consts::OS, arch());
    HeaderValue::from_str(&ua).expect("an ASCII user agent")
}

/// The controllers' agent: `jobwright/v0.1.0 (linux/amd64) jobwright`.
pub fn controllers() -> HeaderValue {
    agent("jobwright", concat!("v", env!("CARGO_PKG_VERSION")), "jobwright")
}

/// The node simulator's agent, a kubelet's: `kubelet/v1.33.0+jobwright (linux/amd64) kubernetes/jobwright`.
pub fn kubelet() -> HeaderValue {
    agent("kubelet", crate::apiserver::discovery::GIT_VERSION, "kubernetes/jobwright")
}

/// Makes every request of clients built from `config` carry `ua` (replacing any agent set before).
pub fn set(config: &mut kube::Config, ua: HeaderValue) {
    config.headers.retain(|(name, _)| name != http::header::USER_AGENT);
    config.headers.push((http::header::USER_AGENT, ua));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The part before the first `/` is what the API server takes as the field manager.
    #[test]
    fn agents_name_their_program_first_as_client_go() {
        let c = controllers();
        let c = c.to_str().unwrap();
        assert!(c.starts_with("jobwright/v0."), "{c}");
        assert!(c.contains(&format!("({}/", std::env::consts::OS)), "{c}");
        let k = kubelet();
        assert_eq!(k.to_str().unwrap().split('/').next(), Some("kubelet"));
        let mut cfg = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        set(&mut cfg, controllers());
        set(&mut cfg, kubelet());
        let agents: Vec<_> = cfg.headers.iter().filter(|(n, _)| n == http::header::USER_AGENT).collect();
        assert_eq!(agents.len(), 1);
        assert_eq!(agents[0].1, kubelet());
    }
}
