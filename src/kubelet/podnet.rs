//! Pod networking for the process executor: each pod its own network namespace on a bridge, its
//! own hostname (UTS namespace) and its own `/etc/resolv.conf` and `/etc/hosts` (a private mount
//! namespace), as a kubelet with a bridge CNI plugin gives it.
//!
//! One [`PodNetwork`] per `jobwright local`: at start it takes an instance number and a /24 of the
//! pod range (`--pod-cidr`, kind's 10.244.0.0/16 by default) that no other live instance on the
//! machine holds, under a lock file in [`STATE_DIR`], and creates the bridge `jwbr<N>` with the
//! subnet's first address (the pods' gateway, their `hostIP`, and where the cluster DNS server
//! listens). Each pod gets a named network namespace `jw<N>-<host>` with a veth pair (`jw<N>v<host>`
//! on the bridge, `eth0` inside) and the next free address. Every name carries the instance number,
//! so parallel instances never touch each other's objects.
//!
//! Nothing leaks: a pod's namespace and veth go when its worker ends; the bridge and anything left
//! go on shutdown; and an instance killed with `kill -9` leaves a state file naming its pid, so the
//! next start (of any instance) removes what it left behind before taking a number.
//!
//! Interfaces and namespaces are made with iproute2's `ip` (the netlink plumbing of a CNI plugin in
//! a few commands). Containers join a pod's namespaces through `jobwright pod-exec` ([`POD_EXEC`]),
//! a tiny single-threaded helper that `setns`es into the pod's network namespace, unshares UTS and
//! mount namespaces, sets the hostname, bind-mounts the two files and `exec`s the container's
//! command (same pid, so process groups and exit codes are unchanged).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use tracing::{debug, info};

/// Where instances record their number, subnet and pid (so a later start can clean up after a
/// crash), and the lock that serialises allocation.
pub const STATE_DIR: &str = "/run/jobwright/net";

/// The hidden subcommand that runs a container's command inside its pod's namespaces.
pub const POD_EXEC: &str = "pod-exec";

/// The cluster domain (kubelet's `--cluster-domain`, kind's default).
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// Instance numbers run 0..MAX_INSTANCES (names such as `jw9999v254` stay within 15 bytes).
pub const MAX_INSTANCES: u32 = 10_000;

/// kind's default pod range.
pub const DEFAULT_POD_CIDR: &str = "10.244.0.0/16";

/// An IPv4 network `addr/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Net {
    /// The network address (host bits zero).
    pub addr: Ipv4Addr,
    /// The prefix length.
    pub prefix: u8,
}

impl std::str::FromStr for Ipv4Net {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = s.split_once('/').ok_or_else(|| format!("invalid CIDR {s:?}: expected e.g. 10.244.0.0/16"))?;
        let addr: Ipv4Addr = a.parse().map_err(|_| format!("invalid CIDR {s:?}: {a:?} is not an IPv4 address"))?;
        let prefix: u8 = p.parse().ok().filter(|p| *p <= 30).ok_or_else(|| {
            format!("invalid CIDR {s:?}: the prefix length must be 0-30 (room for a gateway and pods)")
        })?;
        let mask = mask(prefix);
        if u32::from(addr) & !mask != 0 {
            return Err(format!(
                "invalid CIDR {s:?}: host bits are set (did you mean {}/{prefix}?)",
                Ipv4Addr::from(u32::from(addr) & mask)
            ));
        }
        Ok(Self { addr, prefix })
    }
}

impl std::fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) }
}

impl Ipv4Net {
    /// The `i`-th /24 of this range (or the range itself when it is a /24 or smaller).
    pub fn subnet(&self, i: u32) -> Option<Ipv4Net> {
        if self.prefix >= 24 {
            return (i == 0).then_some(*self);
        }
        let count = 1u32 << (24 - self.prefix);
        (i < count).then(|| Ipv4Net { addr: Ipv4Addr::from(u32::from(self.addr) + (i << 8)), prefix: 24 })
    }

    /// Whether two networks overlap.
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        let m = mask(self.prefix.min(other.prefix));
        u32::from(self.addr) & m == u32::from(other.addr) & m
    }

    /// The `n`-th address (n = 1 is the gateway).
    pub fn host(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) + n)
    }

    /// How many usable host addresses (excluding network and broadcast).
    pub fn hosts(&self) -> u32 {
        (1u32 << (32 - self.prefix)) - 2
    }
}

/// The pod's hostname and domain as the kubelet computes them (`GeneratePodHostNameAndDomain`):
/// `spec.hostname`, else the pod name cut to 63 characters (trailing `-`/`.` trimmed); the domain
/// is `<subdomain>.<namespace>.svc.<cluster domain>` when `spec.subdomain` is set; with
/// `setHostnameAsFQDN` the hostname is the full name.
pub fn pod_hostname(pod: &Pod) -> (String, Option<String>) {
    let spec = pod.spec.clone().unwrap_or_default();
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let hostname = match spec.hostname.as_deref().filter(|h| !h.is_empty()) {
        Some(h) => h.to_string(),
        None => {
            let name = pod.metadata.name.as_deref().unwrap_or_default();
            let cut: String = name.chars().take(63).collect();
            if name.len() > 63 { cut.trim_end_matches(['-', '.']).to_string() } else { cut }
        }
    };
    let domain = spec.subdomain.as_deref().filter(|s| !s.is_empty()).map(|s| format!("{s}.{ns}.svc.{CLUSTER_DOMAIN}"));
    (hostname, domain)
}

/// The hostname the container sees (`hostname`, `$HOSTNAME`).
pub fn container_hostname(pod: &Pod) -> String {
    let (host, domain) = pod_hostname(pod);
    let fqdn = pod.spec.as_ref().and_then(|s| s.set_hostname_as_fqdn).unwrap_or(false);
    match domain {
        Some(d) if fqdn => format!("{host}.{d}"),
        _ => host,
    }
}

/// `/etc/hosts` as the kubelet writes it (`managedHostsFileContent`): the fixed header, the pod's
/// own addresses with its hostname (and FQDN when it has a subdomain), then `spec.hostAliases`.
pub fn hosts_file(pod: &Pod, pod_ips: &[String]) -> String {
    let (host, domain) = pod_hostname(pod);
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    for ip in pod_ips {
        match &domain {
            Some(d) => {
                let _ = writeln!(out, "{ip}\t{host}.{d}\t{host}");
            }
            None => {
                let _ = writeln!(out, "{ip}\t{host}");
            }
        }
    }
    let aliases = pod.spec.as_ref().and_then(|s| s.host_aliases.clone()).unwrap_or_default();
    if !aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            for h in a.hostnames.unwrap_or_default() {
                let _ = writeln!(out, "{}\t{h}", a.ip);
            }
        }
    }
    out
}

/// The host resolver's configuration: nameservers and search domains of `/etc/resolv.conf`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostResolv {
    /// `nameserver` lines.
    pub nameservers: Vec<String>,
    /// The `search` (or `domain`) line.
    pub searches: Vec<String>,
    /// The `options` line.
    pub options: Vec<String>,
}

impl HostResolv {
    /// Parse resolv.conf text.
    pub fn parse(text: &str) -> Self {
        let mut r = HostResolv::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => r.nameservers.extend(words.next().map(str::to_string)),
                Some("search" | "domain") => r.searches = words.map(str::to_string).collect(),
                Some("options") => r.options = words.map(str::to_string).collect(),
                _ => {}
            }
        }
        r
    }

    /// The host's, or empty when `/etc/resolv.conf` cannot be read.
    pub fn host() -> Self {
        Self::parse(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
    }
}

/// `/etc/resolv.conf` for the pod as kubelet + containerd write it for its `dnsPolicy`:
/// `ClusterFirst` (the default) puts the cluster DNS first with the search path
/// `<ns>.svc.<domain> svc.<domain> <domain>` followed by the host's, and `ndots:5`; `Default` copies
/// the host's; `None` only `dnsConfig`. `dnsConfig` is merged in as the kubelet merges it.
pub fn resolv_conf(pod: &Pod, cluster_dns: &str, host: &HostResolv) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let host_network = spec.host_network.unwrap_or(false);
    let (mut servers, mut searches, mut options): (Vec<String>, Vec<String>, Vec<String>) = match policy {
        "None" => (vec![], vec![], vec![]),
        "Default" => (host.nameservers.clone(), host.searches.clone(), host.options.clone()),
        "ClusterFirst" if host_network => (host.nameservers.clone(), host.searches.clone(), host.options.clone()),
        _ => {
            let mut s =
                vec![format!("{ns}.svc.{CLUSTER_DOMAIN}"), format!("svc.{CLUSTER_DOMAIN}"), CLUSTER_DOMAIN.into()];
            s.extend(host.searches.iter().cloned());
            (vec![cluster_dns.to_string()], s, vec!["ndots:5".into()])
        }
    };
    if let Some(cfg) = spec.dns_config {
        for s in cfg.nameservers.unwrap_or_default() {
            if !servers.contains(&s) {
                servers.push(s);
            }
        }
        for s in cfg.searches.unwrap_or_default() {
            if !searches.contains(&s) {
                searches.push(s);
            }
        }
        for o in cfg.options.unwrap_or_default() {
            let text = match o.value {
                Some(v) => format!("{}:{v}", o.name.unwrap_or_default()),
                None => o.name.unwrap_or_default(),
            };
            let key = text.split(':').next().unwrap_or_default().to_string();
            options.retain(|e| e.split(':').next() != Some(key.as_str()));
            options.push(text);
        }
    }
    // The kubelet's limits: 3 nameservers, 32 search domains.
    servers.truncate(3);
    searches.truncate(32);
    let mut out = String::new();
    if !searches.is_empty() {
        let _ = writeln!(out, "search {}", searches.join(" "));
    }
    if !servers.is_empty() {
        let _ = writeln!(out, "nameserver {}", servers.join("\nnameserver "));
    }
    if !options.is_empty() {
        let _ = writeln!(out, "options {}", options.join(" "));
    }
    out
}

/// A pod's network sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// The named network namespace (`/run/netns/<name>`).
    pub netns: String,
    /// The host side of the veth pair.
    pub veth: String,
    /// The pod's address.
    pub ip: Ipv4Addr,
    /// The gateway (the node's address on the bridge).
    pub host_ip: Ipv4Addr,
    /// The hostname the containers get.
    pub hostname: String,
    /// The pod's `/etc/resolv.conf` and `/etc/hosts`, as files on the host.
    pub resolv_conf: PathBuf,
    /// See `resolv_conf`.
    pub hosts: PathBuf,
}

impl Sandbox {
    /// Where the network namespace is mounted.
    pub fn netns_path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.netns))
    }

    /// The `jobwright pod-exec ... --` prefix that runs a command inside this sandbox.
    pub fn exec_prefix(&self) -> Vec<String> {
        let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "jobwright".into());
        vec![
            exe,
            POD_EXEC.into(),
            self.netns_path().display().to_string(),
            self.hostname.clone(),
            self.resolv_conf.display().to_string(),
            self.hosts.display().to_string(),
            "--".into(),
        ]
    }
}

/// The pod network of one `jobwright local`.
#[derive(Debug)]
pub struct PodNetwork {
    id: u32,
    subnet: Ipv4Net,
    bridge: String,
    used: Mutex<BTreeSet<u32>>,
    host_resolv: HostResolv,
    state_file: PathBuf,
}

/// Run `ip ARGS`, with the error text on failure.
pub(crate) fn ip(args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Whether pod networking can work here: root (CAP_NET_ADMIN and CAP_SYS_ADMIN in practice) and
/// iproute2's `ip`. `Err` says why not, in one line.
pub fn available() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("not running as root".into());
    }
    ip(&["-V"]).map(|_| ()).map_err(|e| format!("iproute2 is missing ({e})"))
}

/// Start time of process `pid` (field 22 of /proc/PID/stat), to tell a live owner from a reused pid.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// One instance's record: `id subnet pid starttime`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    id: u32,
    subnet: Ipv4Net,
    pid: u32,
    start: u64,
}

impl Record {
    fn parse(text: &str) -> Option<Record> {
        let mut w = text.split_whitespace();
        Some(Record {
            id: w.next()?.parse().ok()?,
            subnet: w.next()?.parse().ok()?,
            pid: w.next()?.parse().ok()?,
            start: w.next()?.parse().ok()?,
        })
    }
    fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start)
    }
}

/// Whether `name` is one of instance `id`'s names: `<prefix><digits>`.
fn numbered(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix).is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// The network interfaces of this network namespace: `/sys/class/net` (a directory read, which
/// never misses a link that exists throughout) and `ip link`'s list (when sysfs is not there).
fn link_names() -> BTreeSet<String> {
    let mut names: BTreeSet<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| d.flatten().filter_map(|e| e.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    if let Ok(list) = ip(&["-o", "link", "show"]) {
        names.extend(
            list.lines()
                .filter_map(|l| l.split(':').nth(1))
                .map(|n| n.trim().split('@').next().unwrap_or_default().to_string()),
        );
    }
    names
}

/// SIGKILL every process in the network namespaces mounted at `netns` (a pod's processes that
/// outlived a `kill -9`ed `jobwright local`: no kubelet was left to stop them). Processes are
/// matched by the namespace's inode, so ones that left their process group are found too.
fn kill_processes_in(netns: &[PathBuf]) {
    use std::os::unix::fs::MetadataExt;
    let inodes: BTreeSet<(u64, u64)> =
        netns.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| (m.dev(), m.ino())).collect();
    if inodes.is_empty() {
        return;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else { return };
    for entry in procs.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Ok(m) = std::fs::metadata(entry.path().join("ns/net")) else { continue };
        if inodes.contains(&(m.dev(), m.ino())) {
            info!(pid, "killing a pod process left behind by a stopped jobwright");
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// Remove everything instance `id` made: its pods' processes (when it died without stopping
/// them), namespaces and veths, and its bridge (with the Service addresses on it). The bridge is
/// deleted by name, and checked for, rather than looked for in a listing.
fn sweep(id: u32) {
    let ns_prefix = format!("jw{id}-");
    let names: Vec<String> = ip(&["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| numbered(n, &ns_prefix))
        .map(str::to_string)
        .collect();
    kill_processes_in(&names.iter().map(|n| PathBuf::from(format!("/run/netns/{n}"))).collect::<Vec<_>>());
    for name in &names {
        let _ = ip(&["netns", "del", name]);
    }
    let veth_prefix = format!("jw{id}v");
    for name in link_names().iter().filter(|n| numbered(n, &veth_prefix)) {
        let _ = ip(&["link", "del", name]);
    }
    let bridge = format!("jwbr{id}");
    if let Err(e) = ip(&["link", "del", &bridge])
        && ip(&["link", "show", "dev", &bridge]).is_ok()
    {
        tracing::warn!(%bridge, error = %e, "cannot remove the bridge");
    }
}

impl PodNetwork {
    /// Take an instance number and a subnet of `pod_cidr`, cleaning up after dead instances first,
    /// and create the bridge.
    pub fn start(pod_cidr: Ipv4Net) -> Result<Arc<PodNetwork>, String> {
        Self::start_in(Path::new(STATE_DIR), pod_cidr)
    }

    fn start_in(dir: &Path, pod_cidr: Ipv4Net) -> Result<Arc<PodNetwork>, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let lock = std::fs::File::create(dir.join("lock")).map_err(|e| format!("{}/lock: {e}", dir.display()))?;
        lock.lock().map_err(|e| format!("{}/lock: {e}", dir.display()))?;
        let mut live = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())?.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("instance") {
                continue;
            }
            match std::fs::read_to_string(&path).ok().as_deref().and_then(Record::parse) {
                Some(r) if r.alive() => live.push(r),
                Some(r) => {
                    info!(id = r.id, pid = r.pid, "removing the pod network a stopped jobwright left behind");
                    sweep(r.id);
                    let _ = std::fs::remove_file(&path);
                }
                None => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        // Numbers go round (0..MAX_INSTANCES), so a dead instance's names are not reused soon: what
        // carries its number is its own until the next start sweeps it.
        let counter = dir.join("next");
        let next: u32 = std::fs::read_to_string(&counter).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0);
        let id = (0..MAX_INSTANCES)
            .map(|k| (next + k) % MAX_INSTANCES)
            .find(|i| !live.iter().any(|r| r.id == *i))
            .ok_or_else(|| "too many jobwright local instances on this machine".to_string())?;
        std::fs::write(&counter, format!("{}\n", (id + 1) % MAX_INSTANCES))
            .map_err(|e| format!("{}: {e}", counter.display()))?;
        let subnet = (0u32..)
            .map_while(|i| pod_cidr.subnet(i))
            .find(|s| !live.iter().any(|r| r.subnet.overlaps(s)))
            .ok_or_else(|| format!("every /24 of the pod range {pod_cidr} is taken by another jobwright local"))?;
        // Leftovers under our number (e.g. a record lost with /run) go before we build.
        sweep(id);
        let pid = std::process::id();
        let record = format!("{id} {subnet} {pid} {}\n", start_time(pid).unwrap_or(0));
        let state_file = dir.join(format!("{id}.instance"));
        std::fs::write(&state_file, record).map_err(|e| format!("{}: {e}", state_file.display()))?;
        let bridge = format!("jwbr{id}");
        let gw = format!("{}/{}", subnet.host(1), subnet.prefix);
        let made = ip(&["link", "add", &bridge, "type", "bridge"])
            .and_then(|_| ip(&["addr", "add", &gw, "dev", &bridge]))
            .and_then(|_| ip(&["link", "set", &bridge, "up"]));
        if let Err(e) = made {
            sweep(id);
            let _ = std::fs::remove_file(&state_file);
            return Err(e);
        }
        drop(lock);
        info!(%subnet, %bridge, "pod network ready");
        Ok(Arc::new(PodNetwork {
            id,
            subnet,
            bridge,
            used: Mutex::new(BTreeSet::new()),
            host_resolv: HostResolv::host(),
            state_file,
        }))
    }

    /// The node's address on the pod network (the pods' gateway and `hostIP`; the DNS server's).
    pub fn host_ip(&self) -> Ipv4Addr {
        self.subnet.host(1)
    }

    /// This instance's subnet of the pod range.
    pub fn subnet(&self) -> Ipv4Net {
        self.subnet
    }

    /// The bridge's name.
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// The host resolver (where the cluster DNS forwards other names).
    pub fn host_resolv(&self) -> &HostResolv {
        &self.host_resolv
    }

    /// Create the pod's sandbox: an address, a namespace with `eth0` and `lo` up and a default
    /// route via the bridge, and the resolv.conf and hosts files in `pod_dir`.
    pub fn create(&self, pod: &Pod, pod_dir: &Path) -> Result<Sandbox, String> {
        let n = {
            let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
            let n = (2..=self.subnet.hosts())
                .find(|n| !used.contains(n))
                .ok_or_else(|| format!("no free address left in {}", self.subnet))?;
            used.insert(n);
            n
        };
        let ip_addr = self.subnet.host(n);
        let netns = format!("jw{}-{n}", self.id);
        let veth = format!("jw{}v{n}", self.id);
        let release = |e: String| {
            let _ = ip(&["link", "del", &veth]);
            let _ = ip(&["netns", "del", &netns]);
            self.used.lock().unwrap_or_else(|e| e.into_inner()).remove(&n);
            e
        };
        let cidr = format!("{ip_addr}/{}", self.subnet.prefix);
        let gw = self.host_ip().to_string();
        let steps: [&[&str]; 7] = [
            &["netns", "add", &netns],
            &["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &netns],
            &["link", "set", &veth, "master", &self.bridge, "up"],
            &["-n", &netns, "addr", "add", &cidr, "dev", "eth0"],
            &["-n", &netns, "link", "set", "eth0", "up"],
            &["-n", &netns, "link", "set", "lo", "up"],
            &["-n", &netns, "route", "add", "default", "via", &gw],
        ];
        for step in steps {
            ip(step).map_err(release)?;
        }
        std::fs::create_dir_all(pod_dir).map_err(|e| release(format!("{}: {e}", pod_dir.display())))?;
        let resolv_path = pod_dir.join("resolv.conf");
        let hosts = pod_dir.join("hosts");
        std::fs::write(&resolv_path, resolv_conf(pod, &gw, &self.host_resolv))
            .and_then(|_| std::fs::write(&hosts, hosts_file(pod, &[ip_addr.to_string()])))
            .map_err(|e| release(format!("{}: {e}", pod_dir.display())))?;
        debug!(%netns, %ip_addr, "pod sandbox created");
        Ok(Sandbox {
            netns,
            veth,
            ip: ip_addr,
            host_ip: self.host_ip(),
            hostname: container_hostname(pod),
            resolv_conf: resolv_path,
            hosts,
        })
    }

    /// Remove a pod's sandbox (its processes have stopped).
    pub fn remove(&self, sandbox: &Sandbox) {
        if let Err(e) = ip(&["link", "del", &sandbox.veth]) {
            debug!(error = %e, "veth already gone");
        }
        if let Err(e) = ip(&["netns", "del", &sandbox.netns]) {
            debug!(error = %e, "the pod's network namespace is already gone");
        }
        let n = u32::from(sandbox.ip) - u32::from(self.subnet.addr);
        self.used.lock().unwrap_or_else(|e| e.into_inner()).remove(&n);
    }

    /// Remove everything (after the pods have stopped): namespaces, veths, the bridge, the record.
    pub fn shutdown(&self) {
        sweep(self.id);
        let _ = std::fs::remove_file(&self.state_file);
        info!(bridge = %self.bridge, "pod network removed");
    }
}

/// Connect to `127.0.0.1:port` inside the network namespace mounted at `netns` (port-forward's
/// dial). A short-lived thread enters the namespace (`setns` affects only the calling thread) and
/// connects; the socket stays in the namespace it was made in.
pub async fn connect_in(netns: &Path, port: u16) -> std::io::Result<tokio::net::TcpStream> {
    let netns = netns.to_path_buf();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let result = (|| -> std::io::Result<std::net::TcpStream> {
            let ns = std::fs::File::open(&netns)?;
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
            let stream = std::net::TcpStream::connect_timeout(
                &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                std::time::Duration::from_secs(10),
            )?;
            stream.set_nonblocking(true)?;
            Ok(stream)
        })();
        let _ = tx.send(result);
    });
    let stream = rx.await.map_err(|_| std::io::Error::other("the connecting thread ended"))??;
    tokio::net::TcpStream::from_std(stream)
}

/// `jobwright pod-exec NETNS HOSTNAME RESOLV_CONF HOSTS -- PROGRAM ARGS...`: enter the pod's
/// network namespace, take private UTS and mount namespaces, set the hostname, bind-mount the
/// files over `/etc/resolv.conf` and `/etc/hosts`, and `exec` the program (searched on `PATH`).
/// Must run before any thread starts (`unshare(CLONE_NEWNS)` refuses a multi-threaded caller).
/// Only returns on failure: the message is printed, exit code 127 when the program is missing or
/// 126 otherwise, as a shell reports them.
pub fn pod_exec_main(args: Vec<std::ffi::OsString>) -> std::process::ExitCode {
    use nix::mount::{MsFlags, mount};
    use nix::sched::{CloneFlags, setns, unshare};
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let fail = |msg: String, code: u8| {
        eprintln!("jobwright pod-exec: {msg}");
        std::process::ExitCode::from(code)
    };
    let [netns, hostname, resolv, hosts, dashes, program, rest @ ..] = args.as_slice() else {
        return fail("usage: pod-exec NETNS HOSTNAME RESOLV_CONF HOSTS -- PROGRAM [ARGS...]".into(), 126);
    };
    if dashes != "--" {
        return fail("expected -- before the program".into(), 126);
    }
    let ns = match std::fs::File::open(netns) {
        Ok(f) => f,
        Err(e) => return fail(format!("{}: {e}", Path::new(netns).display()), 126),
    };
    if let Err(e) = setns(&ns, CloneFlags::CLONE_NEWNET) {
        return fail(format!("setns: {e}"), 126);
    }
    drop(ns);
    if let Err(e) = unshare(CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWNS) {
        return fail(format!("unshare: {e}"), 126);
    }
    if let Err(e) = nix::unistd::sethostname(hostname) {
        return fail(format!("sethostname: {e}"), 126);
    }
    if let Err(e) = mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>) {
        return fail(format!("making / private: {e}"), 126);
    }
    // Every pod's network namespace is a mount under /run/netns; this mount namespace's copies
    // would keep the other pods' namespaces (and their veths) alive after those pods are gone.
    let _ = nix::mount::umount2("/run/netns", nix::mount::MntFlags::MNT_DETACH);
    for (file, target) in [(resolv, "/etc/resolv.conf"), (hosts, "/etc/hosts")] {
        if let Err(e) = mount(Some(file.as_os_str()), target, None::<&str>, MsFlags::MS_BIND, None::<&str>) {
            return fail(format!("bind-mounting {} on {target}: {e}", Path::new(file).display()), 126);
        }
    }
    let to_c = |s: &std::ffi::OsStr| CString::new(s.as_bytes()).ok();
    let Some(prog) = to_c(program) else { return fail("NUL in the program name".into(), 126) };
    let mut argv = vec![prog.clone()];
    for a in rest {
        match to_c(a) {
            Some(c) => argv.push(c),
            None => return fail("NUL in an argument".into(), 126),
        }
    }
    let e = nix::unistd::execvp(&prog, &argv).unwrap_err();
    let code = if e == nix::errno::Errno::ENOENT { 127 } else { 126 };
    fail(format!("exec {:?}: {e}", program), code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn cidrs_parse_and_split_into_24s() {
        let n: Ipv4Net = "10.244.0.0/16".parse().unwrap();
        assert_eq!(n.subnet(0).unwrap().to_string(), "10.244.0.0/24");
        assert_eq!(n.subnet(3).unwrap().to_string(), "10.244.3.0/24");
        assert_eq!(n.subnet(255).unwrap().to_string(), "10.244.255.0/24");
        assert!(n.subnet(256).is_none());
        let small: Ipv4Net = "192.168.7.16/28".parse().unwrap();
        assert_eq!(small.subnet(0), Some(small));
        assert_eq!(small.hosts(), 14);
        assert!("10.244.0.1/16".parse::<Ipv4Net>().unwrap_err().contains("did you mean 10.244.0.0/16"));
        assert!("10.244.0.0/31".parse::<Ipv4Net>().is_err());
        assert!("10.244.0.0".parse::<Ipv4Net>().is_err());
        assert!("10.244.0.0/16".parse::<Ipv4Net>().unwrap().overlaps(&"10.244.9.0/24".parse().unwrap()));
        assert!(!"10.244.8.0/24".parse::<Ipv4Net>().unwrap().overlaps(&"10.244.9.0/24".parse().unwrap()));
    }

    #[test]
    fn hostname_and_domain_follow_the_kubelet() {
        let p = pod(json!({"metadata": {"name": "collab-0-abcde", "namespace": "team"},
            "spec": {"containers": [], "hostname": "collab-0", "subdomain": "workers"}}));
        assert_eq!(pod_hostname(&p), ("collab-0".into(), Some("workers.team.svc.cluster.local".into())));
        assert_eq!(container_hostname(&p), "collab-0");
        let long = format!("{}-{}", "a".repeat(62), "bcd");
        let p = pod(json!({"metadata": {"name": long, "namespace": "x"}, "spec": {"containers": []}}));
        assert_eq!(pod_hostname(&p), ("a".repeat(62), None), "cut at 63 and the trailing '-' trimmed");
        let p = pod(json!({"metadata": {"name": "p", "namespace": "x"},
            "spec": {"containers": [], "subdomain": "s", "setHostnameAsFQDN": true}}));
        assert_eq!(container_hostname(&p), "p.s.x.svc.cluster.local");
    }

    #[test]
    fn hosts_file_matches_the_kubelets() {
        let p = pod(json!({"metadata": {"name": "collab-0-x", "namespace": "default"},
            "spec": {"containers": [], "hostname": "collab-0", "subdomain": "workers",
                     "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["foo.local", "bar.local"]}]}}));
        let text = hosts_file(&p, &["10.244.0.5".into()]);
        assert_eq!(
            text,
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n\
             10.244.0.5\tcollab-0.workers.default.svc.cluster.local\tcollab-0\n\n# Entries added by HostAliases.\n\
             10.1.2.3\tfoo.local\n10.1.2.3\tbar.local\n"
        );
        let p = pod(json!({"metadata": {"name": "solo", "namespace": "default"}, "spec": {"containers": []}}));
        assert!(hosts_file(&p, &["10.244.0.6".into()]).ends_with("fe00::2\tip6-allrouters\n10.244.0.6\tsolo\n"));
    }

    #[test]
    fn resolv_conf_per_dns_policy() {
        let host = HostResolv::parse("# comment\nnameserver 10.255.255.53\nsearch corp.example\noptions edns0\n");
        assert_eq!(host.nameservers, ["10.255.255.53"]);
        let p = pod(json!({"metadata": {"name": "p", "namespace": "team"}, "spec": {"containers": []}}));
        assert_eq!(
            resolv_conf(&p, "10.244.0.1", &host),
            "search team.svc.cluster.local svc.cluster.local cluster.local corp.example\nnameserver 10.244.0.1\noptions ndots:5\n"
        );
        let p = pod(
            json!({"metadata": {"name": "p", "namespace": "team"}, "spec": {"containers": [], "dnsPolicy": "Default"}}),
        );
        assert_eq!(
            resolv_conf(&p, "10.244.0.1", &host),
            "search corp.example\nnameserver 10.255.255.53\noptions edns0\n"
        );
        let p = pod(
            json!({"metadata": {"name": "p", "namespace": "team"}, "spec": {"containers": [], "dnsPolicy": "None",
            "dnsConfig": {"nameservers": ["1.1.1.1"], "searches": ["a.b"], "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}}),
        );
        assert_eq!(resolv_conf(&p, "10.244.0.1", &host), "search a.b\nnameserver 1.1.1.1\noptions ndots:2 edns0\n");
        let p = pod(json!({"metadata": {"name": "p", "namespace": "team"}, "spec": {"containers": [],
            "dnsConfig": {"options": [{"name": "ndots", "value": "1"}]}}}));
        assert!(resolv_conf(&p, "10.244.0.1", &host).ends_with("options ndots:1\n"), "dnsConfig overrides ndots");
    }

    #[test]
    fn instance_records_round_trip_and_dead_owners_are_detected() {
        let me = std::process::id();
        let r = Record { id: 3, subnet: "10.244.3.0/24".parse().unwrap(), pid: me, start: start_time(me).unwrap() };
        let text = format!("{} {} {} {}", r.id, r.subnet, r.pid, r.start);
        assert_eq!(Record::parse(&text), Some(r.clone()));
        assert!(r.alive());
        assert!(!Record { start: r.start + 1, ..r.clone() }.alive(), "a reused pid is not the owner");
        assert!(Record::parse("garbage").is_none());
    }
}
