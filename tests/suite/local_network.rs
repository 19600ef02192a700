//! End-to-end tests of `jobwright local`'s pod network (issue 13): the real binary, driven by the
//! real `kubectl`.
//!
//! As root (CI and the development machine), each instance takes its own bridge and /24 of the pod
//! range, so these tests run in parallel with each other and with the rest of the suite. Without
//! root they check the fallback instead: one line saying pods share the host network.
//!
//! The EndpointSlices the DNS server reads (through the API, as CoreDNS does) are written by
//! `local`'s EndpointSlice controller, so the example completes with nothing written by hand.
//! Readiness is always an awaited condition (a printed line, a pod phase, a Job condition), never
//! a sleep. The harness (`jobwright local` + kubectl) is shared with tests/local_e2e.rs.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common;

/// The shared harness plus the second line `jobwright local` prints: the pod network (or the
/// host-network fallback).
struct Local {
    inner: common::local::Local,
    note: String,
}

impl std::ops::Deref for Local {
    type Target = common::local::Local;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl std::ops::DerefMut for Local {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

impl Local {
    fn start() -> Self {
        let inner = common::local::Local::start();
        let note = inner.next_line();
        Local { inner, note }
    }

    /// The bridge and subnet from "jobwright local: pod network 10.244.N.0/24 on bridge jwbrK (...)".
    fn network(&self) -> (String, String) {
        let rest = self.note.strip_prefix("jobwright local: pod network ").unwrap_or_else(|| panic!("{}", self.note));
        let words: Vec<&str> = rest.split_whitespace().collect();
        assert_eq!(words[1..3], ["on", "bridge"], "{}", self.note);
        (words[3].to_string(), words[0].to_string())
    }

    fn apply_text(&self, name: &str, yaml: &str) {
        let path = self.scratch.path().join(format!("{name}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        self.ok(&["apply", "-f", path.to_str().unwrap()]);
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }
}

/// Poll `f` until it gives a value (bounded: 90 s).
fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The pods matching `selector` once `n` of them are Running with an address: (name, hostname, ip).
fn running_pods(local: &Local, selector: &str, n: usize) -> Vec<(String, String, String)> {
    poll(&format!("{n} running pods with addresses ({selector})"), || {
        let list = local.json(&["get", "pods", "-l", selector]);
        let items = list["items"].as_array()?.clone();
        let running: Vec<_> = items
            .iter()
            .filter(|p| p["status"]["phase"] == "Running" && p["status"]["podIP"].is_string())
            .map(|p| {
                let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
                (s(&p["metadata"]["name"]), s(&p["spec"]["hostname"]), s(&p["status"]["podIP"]))
            })
            .collect();
        (running.len() == n).then_some(running)
    })
}

/// The host's interfaces: `/sys/class/net` and `ip link`'s list.
fn links() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| d.flatten().filter_map(|e| e.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    let out = Command::new("ip").args(["-o", "link", "show"]).output().unwrap();
    assert!(out.status.success(), "ip link: {}", String::from_utf8_lossy(&out.stderr));
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        names.push(line.split(':').nth(1).unwrap_or_default().trim().split('@').next().unwrap_or_default().to_string());
    }
    names.sort();
    names.dedup();
    names
}

fn netns() -> String {
    String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output().unwrap().stdout).into_owned()
}

/// Everything of instance `jwbrK` still on the machine: its bridge, veths, namespaces, netns mounts.
fn leftovers(bridge: &str) -> Vec<String> {
    let id = bridge.strip_prefix("jwbr").unwrap();
    let veth = format!("jw{id}v");
    let ns = format!("jw{id}-");
    let mut out = Vec::new();
    for name in links() {
        if name == bridge || (name.starts_with(&veth) && name[veth.len()..].chars().all(|c| c.is_ascii_digit())) {
            out.push(format!("link {name}"));
        }
    }
    for name in netns().lines().filter_map(|l| l.split_whitespace().next()) {
        if name.starts_with(&ns) && name[ns.len()..].chars().all(|c| c.is_ascii_digit()) {
            out.push(format!("netns {name}"));
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for line in mounts.lines().filter(|l| l.contains(&format!("/run/netns/{ns}"))) {
        out.push(format!("mount {line}"));
    }
    out
}

#[test]
fn without_root_pods_share_the_host_network_and_it_says_so() {
    if is_root() {
        // Run the same binary as nobody is not possible without a setuid helper; as root, the
        // pod network tests below cover this binary. Check the flag that forces host mode instead.
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_jobwright"))
            .args(["local", "--listen", "127.0.0.1:0", "--host-network", "--run"])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello-world.yaml"))
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        assert!(!stdout.contains("pod network"), "--host-network: no pod network\n{stdout}");
        return;
    }
    let local = Local::start();
    assert_eq!(
        local.note,
        "jobwright local: not running as root: pods share the host network (one address, no cluster DNS); run as \
         root for pod networking"
    );
}

/// The collaborative example: 3 pods of an Indexed Job, each its own address and hostname, all
/// listening on one port; index 0 is found by name and the others exchange data with it. Also
/// checks what a pod sees (`hostname`, `$HOSTNAME`, /etc/hosts, /etc/resolv.conf) and the
/// ClusterIP and headless records from inside a pod.
#[test]
fn collaborative_example_completes_with_names_resolving_to_pod_ips() {
    if !is_root() {
        return without_root_pods_share_the_host_network_and_it_says_so();
    }
    let local = Local::start();
    let (_bridge, subnet) = local.network();
    let prefix = subnet.trim_end_matches("0/24");
    // Long-running probe pods (an Indexed Job with `subdomain: workers`, like the example's) for
    // the per-pod checks: the example itself completes on its own once its EndpointSlice is
    // written by `local`'s EndpointSlice controller, too soon to exec into.
    local.apply_text(
        "probe",
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: probe\nspec:\n  completionMode: Indexed\n  \
         completions: 3\n  parallelism: 3\n  template:\n    spec:\n      subdomain: workers\n      \
         restartPolicy: Never\n      containers:\n      - name: c\n        image: busybox\n        \
         command: [sleep, '600']\n",
    );
    let pods = running_pods(&local, "batch.kubernetes.io/job-name=probe", 3);
    let mut ips: Vec<&str> = pods.iter().map(|p| p.2.as_str()).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 3, "distinct pod IPs: {pods:?}");
    for (name, hostname, ip) in &pods {
        assert!(ip.starts_with(prefix), "{ip} in {subnet}");
        let pod = local.json(&["get", "pod", name]);
        assert_eq!(pod["status"]["hostIP"], format!("{prefix}1"), "the bridge address is the hostIP");
        assert_eq!(pod["status"]["podIPs"][0]["ip"], ip.as_str());
        let seen =
            local.ok(&["exec", name, "--", "sh", "-c", "hostname; echo $HOSTNAME; cat /etc/hosts /etc/resolv.conf"]);
        let mut lines = seen.lines();
        assert_eq!(lines.next(), Some(hostname.as_str()), "`hostname` in {name}:\n{seen}");
        assert_eq!(lines.next(), Some(hostname.as_str()), "$HOSTNAME in {name}:\n{seen}");
        assert!(seen.starts_with(&format!("{hostname}\n{hostname}\n# Kubernetes-managed hosts file.\n")), "{seen}");
        assert!(
            seen.contains(&format!("\n{ip}\t{hostname}.workers.default.svc.cluster.local\t{hostname}\n")),
            "{seen}"
        );
        assert!(seen.contains("\nsearch default.svc.cluster.local svc.cluster.local cluster.local"), "{seen}");
        assert!(seen.contains(&format!("\nnameserver {prefix}1\noptions ndots:5\n")), "{seen}");
    }
    // A ClusterIP Service (the address given explicitly).
    local.apply_text(
        "api",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: api\nspec:\n  clusterIP: 10.96.77.7\n  ports:\n  - port: 80\n",
    );
    let worker = &pods.iter().find(|p| p.1 == "probe-1").expect("probe-1").0;
    let resolved = poll("api.default.svc.cluster.local from a pod", || {
        let (ok, out, _) = local.kubectl(&["exec", worker, "--", "getent", "hosts", "api"]);
        ok.then_some(out)
    });
    assert_eq!(resolved.split_whitespace().collect::<Vec<_>>(), ["10.96.77.7", "api.default.svc.cluster.local"]);

    // The example, as a user runs it: `local`'s EndpointSlice controller publishes the headless
    // Service's endpoints, the DNS server answers collab-0.workers from them, and the Job completes.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/collaborative.yaml");
    local.ok(&["apply", "-f", example.to_str().unwrap()]);
    local.ok(&["wait", "--for=condition=Complete", "job/collab", "--timeout=120s"]);
    let list = local.json(&["get", "pods", "-l", "batch.kubernetes.io/job-name=collab"]);
    let pods: Vec<(String, String, String)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (s(&p["metadata"]["name"]), s(&p["spec"]["hostname"]), s(&p["status"]["podIP"]))
        })
        .collect();
    assert_eq!(pods.len(), 3, "{pods:?}");
    let leader_ip = &pods.iter().find(|p| p.1 == "collab-0").expect("collab-0").2;
    assert!(leader_ip.starts_with(prefix), "{leader_ip} in {subnet}");
    for (name, hostname, _) in &pods {
        let log = local.ok(&["logs", name]);
        assert!(log.starts_with(&format!("{hostname}: listening on port 7000\n")), "{log}");
        if hostname == "collab-0" {
            assert!(
                log.contains("got 'hello from collab-1 10'") && log.contains("got 'hello from collab-2 20'"),
                "{log}"
            );
            assert!(log.ends_with("collab-0: sum of the workers' numbers = 30\n"), "{log}");
        } else {
            let idx: u32 = hostname.trim_start_matches("collab-").parse().unwrap();
            let want =
                format!("{hostname}: collab-0.workers is {leader_ip}; reply: ack hello from {hostname} {}\n", idx * 10);
            assert!(log.ends_with(&want), "{log}\nwant {want}");
        }
    }
}

/// SIGTERM removes the bridge, every pod's namespace and veth, even when it comes right after
/// the ready line (the signal handlers are installed before anything starts: before, a SIGTERM
/// that early killed the process with the default action and left its bridge, 3 runs in 12 under
/// load); after kill -9 they stay, and the next start on the machine removes them and kills the
/// pod processes the dead instance left running.
#[test]
fn nothing_is_left_after_sigterm_or_after_kill_9_and_a_restart() {
    if !is_root() {
        return without_root_pods_share_the_host_network_and_it_says_so();
    }
    let pid_dir = tempfile::tempdir().unwrap();
    let sleeper = |local: &Local, name: &str| {
        let pidfile = pid_dir.path().join(name);
        local.apply_text(
            name,
            &format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  restartPolicy: Never\n  containers:\n  \
                 - name: c\n    image: busybox\n    command: [sh, -c, 'echo $$$$ > {}; exec sleep 300']\n",
                pidfile.display()
            ),
        );
        // (`$$$$`: the kubelet turns `$$` into `$`.)
        poll(&format!("pod {name} running"), || {
            let p = local.json(&["get", "pod", name]);
            let pid = std::fs::read_to_string(&pidfile).ok()?.trim().parse::<u32>().ok()?;
            (p["status"]["phase"] == "Running").then_some(pid)
        })
    };

    let mut a = Local::start();
    let (bridge_a, _) = a.network();
    sleeper(&a, "sleeper-a");
    sleeper(&a, "sleeper-b");
    let before = leftovers(&bridge_a);
    assert_eq!(before.iter().filter(|l| l.starts_with("netns")).count(), 2, "{before:?}");
    assert!(before.contains(&format!("link {bridge_a}")), "{before:?}");
    assert!(a.signal(nix::sys::signal::Signal::SIGTERM).success());
    assert_eq!(leftovers(&bridge_a), Vec::<String>::new(), "after SIGTERM");

    let mut b = Local::start();
    let (bridge_b, _) = b.network();
    let orphan = sleeper(&b, "sleeper-c");
    let orphan_start = start_time(orphan).expect("the pod process runs");
    // Any `jobwright local` starting meanwhile (other tests) would sweep the dead B: the lock that
    // serialises starts keeps them out while B's leftovers are checked.
    let lock = std::fs::File::create("/run/jobwright/net/lock").unwrap();
    lock.lock().unwrap();
    b.signal(nix::sys::signal::Signal::SIGKILL);
    // The pod process outlives a SIGKILLed jobwright (no kubelet is left to stop it).
    assert_eq!(start_time(orphan), Some(orphan_start), "the pod process is still running");
    let left = leftovers(&bridge_b);
    assert!(left.contains(&format!("link {bridge_b}")) && left.iter().any(|l| l.starts_with("netns")), "{left:?}");
    drop(lock);

    // Instance numbers are not reused soon, so whatever has B's number is B's.
    let mut c = Local::start();
    let (bridge_c, _) = c.network();
    assert_ne!(bridge_c, bridge_b);
    assert_eq!(leftovers(&bridge_b), Vec::<String>::new(), "the next start removed the dead instance's network");
    // Killed by the next start's sweep (then reaped by whoever adopted it).
    poll("the orphaned pod process gone", || (start_time(orphan) != Some(orphan_start)).then_some(()));
    // SIGTERM at once, before C has done anything else.
    assert!(c.signal(nix::sys::signal::Signal::SIGTERM).success(), "a SIGTERM right after start is a clean stop");
    assert_eq!(leftovers(&bridge_c), Vec::<String>::new());
}

/// Start time of a live (not zombie) process `pid`, to tell it from a reused pid.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    if rest.starts_with('Z') {
        return None;
    }
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// A ClusterIP (and NodePort) Service through the userspace proxy: a pod connects to `echo:80`
/// (DNS name -> ClusterIP -> proxy -> a pod), sends 1 MB and reads the reply, per connection;
/// connections alternate between the two ready pods (round robin), each
/// serving the named `targetPort` on its own container port; the host reaches the Service on
/// `hostIP:nodePort`; UDP datagrams to `echo:5000` are flows, each to one pod. Deleting the
/// Service removes its address from the bridge and its listeners.
#[test]
fn pods_reach_a_cluster_ip_service_by_name_through_the_proxy() {
    if !is_root() {
        return without_root_pods_share_the_host_network_and_it_says_so();
    }
    let local = Local::start();
    let (bridge, subnet) = local.network();
    let node_ip = format!("{}1", subnet.trim_end_matches("0/24"));
    let server = "import os, socket, threading\n\
                  def udp():\n    \
                      u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n    \
                      u.bind(('0.0.0.0', 9053))\n    \
                      while True:\n        \
                          data, (peer, port) = u.recvfrom(2048)\n        \
                          u.sendto(f'{socket.gethostname()} {peer} {data.decode()}'.encode(), (peer, port))\n\
                  threading.Thread(target=udp, daemon=True).start()\n\
                  s = socket.socket()\n\
                  s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
                  s.bind(('0.0.0.0', int(os.environ['PORT'])))\n\
                  s.listen(16)\n\
                  while True:\n    \
                      c, (peer, _) = s.accept()\n    \
                      with c:\n        \
                          data = b''\n        \
                          while not data.endswith(b'\\n'):\n            \
                              chunk = c.recv(65536)\n            \
                              if not chunk: break\n            \
                              data += chunk\n        \
                          c.sendall(f'{socket.gethostname()} {peer} {len(data)}\\n'.encode())\n";
    let backend = |name: &str, port: u16| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{app: echo}}\nspec:\n  \
             restartPolicy: Never\n  containers:\n  - name: c\n    image: python:3\n    \
             command: [python3, -c, {server:?}]\n    env: [{{name: PORT, value: '{port}'}}]\n    \
             ports: [{{name: http, containerPort: {port}}}, {{name: dgram, containerPort: 9053, protocol: UDP}}]\n---\n"
        )
    };
    local.apply_text(
        "echo",
        &format!(
            "{}{}apiVersion: v1\nkind: Service\nmetadata:\n  name: echo\nspec:\n  type: NodePort\n  \
             selector: {{app: echo}}\n  ports:\n  - {{name: web, port: 80, targetPort: http}}\n  \
             - {{name: dgram, port: 5000, protocol: UDP, targetPort: dgram}}\n---\n\
             apiVersion: v1\nkind: Pod\nmetadata:\n  name: client\nspec:\n  restartPolicy: Never\n  \
             containers:\n  - {{name: c, image: busybox, command: [sleep, '600']}}\n",
            backend("echo-a", 8080),
            backend("echo-b", 8081)
        ),
    );
    running_pods(&local, "app=echo", 2);
    let svc = local.json(&["get", "service", "echo"]);
    let cluster_ip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    let node_port = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    poll("pod client running", || {
        (local.json(&["get", "pod", "client"])["status"]["phase"] == "Running").then_some(())
    });
    let client = "import socket\n\
                  for i in range(6):\n    \
                      with socket.create_connection(('echo', 80), timeout=10) as c:\n        \
                          c.sendall(b'x' * 1000000 + b'\\n')\n        \
                          print(c.makefile().readline().strip(), flush=True)\n";
    // Until both servers listen (the pods are ready before the servers bind), the proxy skips the
    // refusing one; then connections alternate.
    let replies = poll("6 connections through echo:80 alternating between echo-a and echo-b", || {
        let (ok, out, _) = local.kubectl(&["exec", "client", "--", "python3", "-c", client]);
        let lines: Vec<Vec<String>> = out.lines().map(|l| l.split_whitespace().map(str::to_string).collect()).collect();
        let alternating = lines.len() == 6 && lines.windows(2).all(|w| w[0][0] != w[1][0]);
        (ok && alternating).then_some(lines)
    });
    for r in &replies {
        assert!(r[0] == "echo-a" || r[0] == "echo-b", "{replies:?}");
        assert_eq!(r[1], node_ip, "the backend sees the node's address (a proxied connection): {replies:?}");
        assert_eq!(r[2], "1000001", "every byte arrived: {replies:?}");
    }
    // UDP: a client's datagrams are one flow to one pod, whose replies come from the ClusterIP;
    // each run of the client is a new flow (a new source port), to the next pod in turn.
    let udp_client = "import socket\n\
                      u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                      u.settimeout(5)\n\
                      for i in range(3):\n    \
                          u.sendto(b'ping%d' % i, ('echo', 5000))\n    \
                          data, (src, port) = u.recvfrom(2048)\n    \
                          print(data.decode(), src, port, flush=True)\n";
    let mut flows = Vec::new();
    poll("two UDP flows through echo:5000, one to each pod", || {
        let (ok, out, _) = local.kubectl(&["exec", "client", "--", "python3", "-c", udp_client]);
        let lines: Vec<Vec<String>> = out.lines().map(|l| l.split_whitespace().map(str::to_string).collect()).collect();
        if ok && lines.len() == 3 {
            flows.push(lines);
        }
        let pods: std::collections::BTreeSet<&str> = flows.iter().map(|f| f[0][0].as_str()).collect();
        (pods.len() == 2).then_some(())
    });
    for flow in &flows {
        for (i, r) in flow.iter().enumerate() {
            assert_eq!(r[0], flow[0][0], "one flow, one pod: {flows:?}");
            assert_eq!(r[1], node_ip, "the pod sees the node's address: {flows:?}");
            assert_eq!(r[2], format!("ping{i}"), "{flows:?}");
            assert_eq!(
                (r[3].as_str(), r[4].as_str()),
                (cluster_ip.as_str(), "5000"),
                "replies from the Service: {flows:?}"
            );
        }
    }

    // NodePort from the host, on the node's address.
    let mut conn = std::net::TcpStream::connect((node_ip.as_str(), node_port as u16)).expect("connect to the nodePort");
    std::io::Write::write_all(&mut conn, b"from the host\n").unwrap();
    let mut reply = String::new();
    BufReader::new(conn).read_line(&mut reply).unwrap();
    assert!(reply.starts_with("echo-a ") || reply.starts_with("echo-b "), "{reply}");
    assert!(reply.ends_with(" 14\n"), "{reply}");

    local.ok(&["delete", "service", "echo"]);
    poll("the ClusterIP off the bridge and the nodePort closed", || {
        let addrs = Command::new("ip").args(["-o", "addr", "show", "dev", &bridge]).output().unwrap();
        let addrs = String::from_utf8_lossy(&addrs.stdout).into_owned();
        let gone = !addrs.contains(&format!(" {cluster_ip}/32 "));
        let closed = std::net::TcpStream::connect((node_ip.as_str(), node_port as u16)).is_err();
        (gone && closed).then_some(())
    });
}
