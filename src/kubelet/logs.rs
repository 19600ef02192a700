//! Container logs: on-disk files in the CRI log format, and the kubelet's log HTTP endpoint.
//!
//! Every container run writes one file, line by line, in the format the CRI runtimes use
//! (`<RFC3339Nano timestamp> <stdout|stderr> <F|P> <content>`, `P` marking a chunk with no trailing
//! newline). Keeping the timestamp per line is what makes `timestamps=true` and `sinceSeconds`
//! answerable. The [`LogStore`] keeps, per pod container, the current run and the previous one (for
//! `kubectl logs --previous`), and a [`tokio::sync::watch`] channel per run that ticks whenever the
//! file grows or the run ends, so `follow=true` streams without polling.
//!
//! [`serve`] answers `GET /containerLogs/{ns}/{pod}/{container}` like the kubelet: the API server's
//! `pods/{name}/log` proxies there (see `contracts.md`).

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Which output stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The process's standard output.
    Stdout,
    /// The process's standard error.
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Progress of one log file: bumped on every write, `done` once the container run has ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogProgress {
    /// Number of writes so far (only used to wake watchers).
    pub writes: u64,
    /// Bytes in the file so far (the end of a whole line unless a write failed part way),
    /// counted under the file's lock with the write, so a follower can start at "now" without a
    /// race with the writer.
    pub bytes: u64,
    /// The run has ended; no more lines will come.
    pub done: bool,
}

/// The log of one container run: a file plus a progress channel.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: Mutex<Option<std::fs::File>>,
    progress: watch::Sender<LogProgress>,
}

impl LogFile {
    /// Create (truncate) the log file at `path`, creating its directory.
    pub fn create(path: PathBuf) -> std::io::Result<Arc<Self>> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new().create(true).write(true).truncate(true).open(&path)?;
        Ok(Arc::new(Self { path, file: Mutex::new(Some(file)), progress: watch::channel(LogProgress::default()).0 }))
    }

    /// Where the file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one chunk of output. A chunk ending in `\n` is a full line (`F`), anything else a
    /// partial one (`P`). Write errors are ignored: losing a log line never fails a container.
    pub fn write_chunk(&self, stream: Stream, chunk: &[u8], at: DateTime<Utc>) {
        let (content, tag) = match chunk.strip_suffix(b"\n") {
            Some(c) => (c, "F"),
            None => (chunk, "P"),
        };
        let mut line = Vec::with_capacity(content.len() + 48);
        line.extend_from_slice(at.to_rfc3339_opts(SecondsFormat::Nanos, true).as_bytes());
        line.push(b' ');
        line.extend_from_slice(stream.as_str().as_bytes());
        line.push(b' ');
        line.extend_from_slice(tag.as_bytes());
        line.push(b' ');
        line.extend_from_slice(content);
        line.push(b'\n');
        // `bytes` moves with the write, under the file's lock, so it is the file's end. A failed
        // write may leave part of a line: `bytes` is then read back from the file, so the next
        // whole line starts where a follower from "now" starts (the fragment is not sent).
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let end = guard.as_mut().and_then(|f| match f.write_all(&line) {
            Ok(()) => Some(self.progress.borrow().bytes + line.len() as u64),
            Err(_) => f.metadata().map(|m| m.len()).ok(),
        });
        self.progress.send_modify(|p| {
            p.writes += 1;
            if let Some(end) = end {
                p.bytes = end;
            }
        });
        drop(guard);
    }

    /// Where the file ends now (a whole line's end): [`follow_from_now`] starts there.
    pub fn end(&self) -> u64 {
        self.progress.borrow().bytes
    }

    /// Mark the run as ended: followers stop once they have read everything.
    pub fn finish(&self) {
        if let Ok(mut guard) = self.file.lock() {
            guard.take();
        }
        self.progress.send_modify(|p| p.done = true);
    }

    /// Whether [`finish`](Self::finish) was called.
    pub fn is_done(&self) -> bool {
        self.progress.borrow().done
    }

    /// Subscribe to progress.
    pub fn subscribe(&self) -> watch::Receiver<LogProgress> {
        self.progress.subscribe()
    }
}

/// One parsed CRI log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When the line was written.
    pub time: DateTime<Utc>,
    /// The stream it came from.
    pub stream: Stream,
    /// False for a `P` (partial) chunk: no newline follows the content.
    pub full: bool,
    /// The bytes the process wrote, without the newline.
    pub content: Vec<u8>,
}

/// Parse one CRI log line (without its trailing newline). Malformed lines give `None`.
pub fn parse_line(line: &[u8]) -> Option<LogLine> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let ts = std::str::from_utf8(parts.next()?).ok()?;
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let full = match parts.next()? {
        b"F" => true,
        b"P" => false,
        _ => return None,
    };
    let content = parts.next().unwrap_or_default().to_vec();
    let time = DateTime::parse_from_rfc3339(ts).ok()?.with_timezone(&Utc);
    Some(LogLine { time, stream, full, content })
}

/// The query parameters of a log request, as kubelet and kube-apiserver take them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogOptions {
    /// Stream until the container ends.
    #[serde(default, deserialize_with = "de_bool")]
    pub follow: bool,
    /// The previous run's log.
    #[serde(default, deserialize_with = "de_bool")]
    pub previous: bool,
    /// Only the last N lines.
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub tail_lines: Option<i64>,
    /// Prefix every line with its RFC3339Nano timestamp.
    #[serde(default, deserialize_with = "de_bool")]
    pub timestamps: bool,
    /// Stop after this many bytes.
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub limit_bytes: Option<i64>,
    /// Only lines newer than this many seconds.
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub since_seconds: Option<i64>,
    /// Only lines at or after this time.
    #[serde(default)]
    pub since_time: Option<String>,
    /// The container, when given as a query parameter (API server style).
    #[serde(default)]
    pub container: Option<String>,
}

fn de_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let s = String::deserialize(d)?;
    match s.as_str() {
        "" | "true" | "1" | "True" | "TRUE" | "t" | "T" => Ok(true),
        "false" | "0" | "False" | "FALSE" | "f" | "F" => Ok(false),
        other => Err(serde::de::Error::custom(format!("invalid boolean value {other:?}"))),
    }
}

fn de_opt_i64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let s = String::deserialize(d)?;
    if s.is_empty() {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|_| serde::de::Error::custom(format!("invalid integer value {s:?}")))
}

impl LogOptions {
    fn since(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let by_seconds = self.since_seconds.map(|s| now - chrono::Duration::seconds(s.max(0)));
        let by_time = self
            .since_time
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        by_seconds.or(by_time)
    }
}

/// Render the lines of one log file per `opts` (everything but `follow`), as `kubectl logs` shows
/// them. Returns the bytes and how many more bytes `limitBytes` still allows.
pub fn render(lines: &[LogLine], opts: &LogOptions, now: DateTime<Utc>) -> Vec<u8> {
    let since = opts.since(now);
    let selected: Vec<&LogLine> = lines.iter().filter(|l| since.is_none_or(|s| l.time >= s)).collect();
    let skip = match opts.tail_lines {
        Some(n) if n >= 0 => selected.len().saturating_sub(n as usize),
        _ => 0,
    };
    let mut out = Vec::new();
    for line in &selected[skip..] {
        render_line(line, opts.timestamps, &mut out);
    }
    if let Some(limit) = opts.limit_bytes
        && limit >= 0
    {
        out.truncate(limit as usize);
    }
    out
}

fn render_line(line: &LogLine, timestamps: bool, out: &mut Vec<u8>) {
    if timestamps {
        out.extend_from_slice(line.time.to_rfc3339_opts(SecondsFormat::Nanos, true).as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(&line.content);
    if line.full {
        out.push(b'\n');
    }
}

/// The termination message taken from a log (`FallbackToLogsOnError`): the last 80 lines, cut at
/// 2048 bytes, as upstream reads it.
pub fn termination_message(data: &[u8]) -> String {
    let opts = LogOptions { tail_lines: Some(80), limit_bytes: Some(2048), ..Default::default() };
    String::from_utf8_lossy(&render(&parse_all(data), &opts, Utc::now())).into_owned()
}

fn parse_all(data: &[u8]) -> Vec<LogLine> {
    data.split(|b| *b == b'\n').filter(|l| !l.is_empty()).filter_map(parse_line).collect()
}

/// The runs of one container: the current one and the one before it.
#[derive(Debug, Default, Clone)]
struct ContainerRuns {
    current: Option<Arc<LogFile>>,
    previous: Option<Arc<LogFile>>,
}

#[derive(Debug, Default)]
struct PodLogs {
    uid: Box<str>,
    /// Container names in spec order (init containers first), for error messages; shared by the
    /// pods that have the same list ([`Pods::list`]).
    containers: Arc<[Arc<str>]>,
    /// The runs of each container that has started, by name (a pod has a few containers: a list
    /// costs one small allocation, a hash map several times that per pod kept); a name is the
    /// [`PodLogs::containers`] entry's own allocation when it is there.
    runs: Vec<(Arc<str>, ContainerRuns)>,
}

impl PodLogs {
    fn runs(&self, container: &str) -> Option<&ContainerRuns> {
        self.runs.iter().find(|(name, _)| **name == *container).map(|(_, runs)| runs)
    }

    fn runs_mut(&mut self, container: &str) -> &mut ContainerRuns {
        let i = match self.runs.iter().position(|(name, _)| **name == *container) {
            Some(i) => i,
            None => {
                let name = match self.containers.iter().find(|c| ***c == *container) {
                    Some(c) => c.clone(),
                    None => Arc::from(container),
                };
                // Room for this one only (a first push reserves four).
                self.runs.reserve_exact(1);
                self.runs.push((name, ContainerRuns::default()));
                self.runs.len() - 1
            }
        };
        &mut self.runs[i].1
    }
}

/// Most container name lists [`Pods::list`] keeps shared (pods of one Job have the same list, a
/// cluster has a few dozen; beyond that a list is the pod's own).
const SHARED_LISTS: usize = 64;

/// Every pod's logs, by `namespace NUL name` (one allocation per pod; Kubernetes names hold no
/// NUL).
#[derive(Debug, Default)]
struct Pods {
    by_name: HashMap<Box<str>, PodLogs>,
    /// Container name lists, shared by the pods that have the same.
    lists: Vec<Arc<[Arc<str>]>>,
}

impl Pods {
    fn key(namespace: &str, pod: &str) -> Box<str> {
        [namespace, "\0", pod].concat().into_boxed_str()
    }

    /// `names` as a shared list.
    fn list(&mut self, names: &[String]) -> Arc<[Arc<str>]> {
        let same = |l: &&Arc<[Arc<str>]>| l.len() == names.len() && l.iter().zip(names).all(|(a, b)| **a == **b);
        if let Some(l) = self.lists.iter().find(same) {
            return l.clone();
        }
        let l: Arc<[Arc<str>]> = names.iter().map(|n| Arc::from(n.as_str())).collect();
        if self.lists.len() < SHARED_LISTS {
            self.lists.push(l.clone());
        }
        l
    }
}

/// The log of every run that prints nothing (the simulate executor's default): one finished,
/// empty, file-less log shared by all of them, since nothing ever changes it (a watch channel
/// per run was most of what a finished simulated pod kept here).
fn silent_run() -> Arc<LogFile> {
    static SILENT: std::sync::OnceLock<Arc<LogFile>> = std::sync::OnceLock::new();
    SILENT
        .get_or_init(|| {
            Arc::new(LogFile {
                path: PathBuf::new(),
                file: Mutex::new(None),
                progress: watch::channel(LogProgress { done: true, ..Default::default() }).0,
            })
        })
        .clone()
}

/// Why a log request cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// No such pod on this kubelet.
    #[error("pod {namespace}/{pod} not found")]
    PodNotFound {
        /// Namespace.
        namespace: String,
        /// Pod name.
        pod: String,
    },
    /// No such container in the pod.
    #[error("container {container} is not valid for pod {pod}")]
    ContainerNotFound {
        /// Pod name.
        pod: String,
        /// Container name.
        container: String,
    },
    /// The container has not started yet.
    #[error("container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating")]
    NotStarted {
        /// Pod name.
        pod: String,
        /// Container name.
        container: String,
    },
    /// `previous=true` but there is no previous run.
    #[error("previous terminated container \"{container}\" in pod \"{pod}\" not found")]
    NoPrevious {
        /// Pod name.
        pod: String,
        /// Container name.
        container: String,
    },
    /// Several containers and none named.
    #[error("a container name must be specified for pod {pod}, choose one of: [{}]", containers.join(" "))]
    ContainerNameRequired {
        /// Pod name.
        pod: String,
        /// Its containers.
        containers: Vec<String>,
    },
    /// Reading the file failed.
    #[error("failed to read log: {0}")]
    Io(String),
}

impl LogError {
    fn status(&self) -> StatusCode {
        match self {
            LogError::PodNotFound { .. } | LogError::ContainerNotFound { .. } => StatusCode::NOT_FOUND,
            LogError::NotStarted { .. } | LogError::NoPrevious { .. } | LogError::ContainerNameRequired { .. } => {
                StatusCode::BAD_REQUEST
            }
            LogError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Every container log this kubelet holds, by namespace and pod name.
#[derive(Debug)]
pub struct LogStore {
    root: PathBuf,
    pods: Mutex<Pods>,
}

impl LogStore {
    /// A store writing its files under `root`.
    pub fn new(root: PathBuf) -> Arc<Self> {
        Arc::new(Self { root, pods: Mutex::new(Pods::default()) })
    }

    /// Declare a pod (and its containers, init containers first). A pod with another uid under the
    /// same name replaces the old one.
    pub fn register_pod(&self, namespace: &str, pod: &str, uid: &str, containers: Vec<String>) {
        let mut pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        let key = Pods::key(namespace, pod);
        let stale = pods.by_name.get(&key).is_some_and(|p| *p.uid != *uid);
        if stale && let Some(old) = pods.by_name.remove(&key) {
            remove_files(&old);
        }
        if !pods.by_name.contains_key(&key) {
            let containers = pods.list(&containers);
            pods.by_name.insert(key, PodLogs { uid: Box::from(uid), containers, runs: Vec::new() });
        }
    }

    /// Start a new run of a container: the current run becomes the previous one.
    pub fn begin_run(
        &self,
        namespace: &str,
        pod: &str,
        uid: &str,
        container: &str,
        restart_count: i32,
    ) -> std::io::Result<Arc<LogFile>> {
        let path =
            self.root.join(format!("{namespace}_{pod}_{uid}")).join(container).join(format!("{restart_count}.log"));
        let file = LogFile::create(path)?;
        self.push_run(namespace, pod, uid, container, file.clone());
        Ok(file)
    }

    /// Record a run that prints nothing, without touching the disk (the simulate executor's
    /// default): its log reads as empty.
    pub fn begin_silent_run(&self, namespace: &str, pod: &str, uid: &str, container: &str) {
        self.push_run(namespace, pod, uid, container, silent_run());
    }

    fn push_run(&self, namespace: &str, pod: &str, uid: &str, container: &str, file: Arc<LogFile>) {
        let mut pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        let key = Pods::key(namespace, pod);
        if !pods.by_name.contains_key(&key) {
            let containers = pods.list(&[container.to_string()]);
            pods.by_name.insert(key.clone(), PodLogs { uid: Box::from(uid), containers, runs: Vec::new() });
        }
        let Some(entry) = pods.by_name.get_mut(&key) else { return };
        let runs = entry.runs_mut(container);
        if let Some(old) = runs.previous.take() {
            remove_file(&old);
        }
        runs.previous = runs.current.replace(file);
    }

    /// Forget a pod and delete its files (only if the uid matches, or any uid when `None`).
    pub fn remove_pod(&self, namespace: &str, pod: &str, uid: Option<&str>) {
        let mut pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        let key = Pods::key(namespace, pod);
        if pods.by_name.get(&key).is_some_and(|p| uid.is_none_or(|u| *u == *p.uid))
            && let Some(old) = pods.by_name.remove(&key)
        {
            remove_files(&old);
        }
    }

    /// The log file a request refers to.
    pub fn lookup(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        previous: bool,
    ) -> Result<Arc<LogFile>, LogError> {
        let pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        let logs = pods
            .by_name
            .get(&Pods::key(namespace, pod))
            .ok_or_else(|| LogError::PodNotFound { namespace: namespace.into(), pod: pod.into() })?;
        let container = match container.filter(|c| !c.is_empty()) {
            Some(c) => c.to_string(),
            None if logs.containers.len() == 1 => logs.containers[0].to_string(),
            None => {
                let containers = logs.containers.iter().map(|c| c.to_string()).collect();
                return Err(LogError::ContainerNameRequired { pod: pod.into(), containers });
            }
        };
        if !logs.containers.iter().any(|c| **c == *container) {
            return Err(LogError::ContainerNotFound { pod: pod.into(), container });
        }
        let runs = logs.runs(&container).cloned().unwrap_or_default();
        if previous {
            runs.previous.ok_or(LogError::NoPrevious { pod: pod.into(), container })
        } else {
            runs.current.ok_or(LogError::NotStarted { pod: pod.into(), container })
        }
    }

    /// Re-index the log files an earlier run left under the root (`{ns}_{pod}_{uid}/{container}/{n}.log`,
    /// the highest `n` being the current run): after a restart with a data directory, logs of pods
    /// that ran before stay readable. Returns how many pods were found.
    pub fn load_existing(&self) -> usize {
        let Ok(dirs) = std::fs::read_dir(&self.root) else { return 0 };
        let mut pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        let mut found = 0;
        for dir in dirs.flatten() {
            let name = dir.file_name().to_string_lossy().into_owned();
            // Namespaces, pod names and uids never contain '_'.
            let parts: Vec<&str> = name.split('_').collect();
            let [namespace, pod, uid] = parts[..] else { continue };
            let Ok(containers) = std::fs::read_dir(dir.path()) else { continue };
            let mut names = Vec::new();
            let mut logs = PodLogs { uid: Box::from(uid), ..PodLogs::default() };
            for c in containers.flatten() {
                let cname = c.file_name().to_string_lossy().into_owned();
                let Ok(files) = std::fs::read_dir(c.path()) else { continue };
                let mut runs: Vec<(i64, PathBuf)> = files
                    .flatten()
                    .filter_map(|f| {
                        let n = f.file_name().to_string_lossy().strip_suffix(".log")?.parse().ok()?;
                        Some((n, f.path()))
                    })
                    .collect();
                runs.sort();
                let finished = |path: PathBuf| {
                    Arc::new(LogFile {
                        path,
                        file: Mutex::new(None),
                        progress: watch::channel(LogProgress { done: true, ..Default::default() }).0,
                    })
                };
                let current = runs.pop().map(|(_, p)| finished(p));
                let previous = runs.pop().map(|(_, p)| finished(p));
                names.push(cname.clone());
                *logs.runs_mut(&cname) = ContainerRuns { current, previous };
            }
            names.sort();
            logs.containers = pods.list(&names);
            pods.by_name.insert(Pods::key(namespace, pod), logs);
            found += 1;
        }
        found
    }

    /// Forget (and delete the files of) every pod whose uid is not in `uids`: after a relist, the
    /// pods deleted while the kubelet was away.
    pub fn retain_uids(&self, uids: &std::collections::HashSet<String>) {
        let mut pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        pods.by_name.retain(|_, logs| {
            let keep = uids.contains(&*logs.uid);
            if !keep {
                remove_files(logs);
                if let Some(dir) =
                    logs.runs.iter().find_map(|(_, r)| r.current.as_ref()).and_then(|f| f.path.parent()?.parent())
                {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
            keep
        });
    }

    /// Number of pods held (for tests and metrics).
    pub fn pod_count(&self) -> usize {
        self.pods.lock().map(|p| p.by_name.len()).unwrap_or(0)
    }
}

fn remove_file(f: &LogFile) {
    if !f.path.as_os_str().is_empty() {
        let _ = std::fs::remove_file(&f.path);
    }
}

fn remove_files(logs: &PodLogs) {
    for (_, runs) in &logs.runs {
        for f in [&runs.current, &runs.previous].into_iter().flatten() {
            remove_file(f);
        }
    }
}

/// Read a run's log per `opts` as a byte stream: everything at once, or, with `follow`, also what
/// comes later until the run ends.
pub fn read_stream(file: Arc<LogFile>, opts: LogOptions) -> tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>> {
    stream_from(file, opts, None)
}

/// Follow what `file` gets from the moment of this call on (`attach`): the start is taken here,
/// before the caller can make the process print, not when the reading task first runs.
pub fn follow_from_now(file: Arc<LogFile>) -> tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>> {
    let start = file.end();
    stream_from(file, LogOptions { follow: true, ..Default::default() }, Some(start))
}

fn stream_from(
    file: Arc<LogFile>,
    opts: LogOptions,
    start: Option<u64>,
) -> tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        let mut progress = file.subscribe();
        // Mark the current state as seen before reading, so no write is missed in between.
        let mut done = progress.borrow_and_update().done;
        let data = match tokio::fs::read(file.path()).await {
            Ok(d) => d,
            Err(_) if file.path().as_os_str().is_empty() => Vec::new(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        // Only complete lines are consumed; a trailing fragment is re-read later.
        let mut offset = data.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
        // With a start, only the lines written since it are sent (all of them: they are new).
        let from = start.map_or(0, |s| usize::try_from(s).unwrap_or(usize::MAX).min(offset));
        let first = render(&parse_all(&data[from..offset]), &opts, Utc::now());
        let mut budget = opts.limit_bytes.filter(|l| *l >= 0).map(|l| l as usize);
        if let Some(b) = budget.as_mut() {
            *b = b.saturating_sub(first.len());
        }
        if !first.is_empty() && tx.send(Ok(Bytes::from(first))).await.is_err() {
            return;
        }
        if !opts.follow {
            return;
        }
        loop {
            if budget == Some(0) {
                return;
            }
            if !done && progress.changed().await.is_ok() {
                done = progress.borrow_and_update().done;
            } else {
                done = true;
            }
            let data = match tokio::fs::read(file.path()).await {
                Ok(d) => d,
                Err(_) => return,
            };
            let end = data.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
            if end > offset {
                let mut out = Vec::new();
                for line in parse_all(&data[offset..end]) {
                    render_line(&line, opts.timestamps, &mut out);
                }
                offset = end;
                if let Some(b) = budget.as_mut() {
                    out.truncate(*b);
                    *b -= out.len();
                }
                if !out.is_empty() && tx.send(Ok(Bytes::from(out))).await.is_err() {
                    return;
                }
            }
            if done {
                return;
            }
        }
    });
    rx
}

#[derive(Clone)]
struct ServerState {
    store: Arc<LogStore>,
}

async fn container_logs(
    State(state): State<ServerState>,
    UrlPath((namespace, pod, container)): UrlPath<(String, String, String)>,
    Query(opts): Query<LogOptions>,
) -> Response {
    logs_response(&state.store, &namespace, &pod, Some(&container), opts)
}

async fn pod_logs(
    State(state): State<ServerState>,
    UrlPath((namespace, pod)): UrlPath<(String, String)>,
    Query(opts): Query<LogOptions>,
) -> Response {
    let container = opts.container.clone();
    logs_response(&state.store, &namespace, &pod, container.as_deref(), opts)
}

fn logs_response(store: &LogStore, namespace: &str, pod: &str, container: Option<&str>, opts: LogOptions) -> Response {
    match store.lookup(namespace, pod, container, opts.previous) {
        Ok(file) => {
            let rx = read_stream(file, opts);
            let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
            ([(header::CONTENT_TYPE, "text/plain")], body).into_response()
        }
        Err(e) => (e.status(), e.to_string()).into_response(),
    }
}

/// The kubelet log endpoint's routes.
pub fn router(store: Arc<LogStore>) -> Router {
    Router::new()
        .route("/containerLogs/{namespace}/{pod}/{container}", get(container_logs))
        .route("/containerLogs/{namespace}/{pod}", get(pod_logs))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(ServerState { store })
}

/// Bind `127.0.0.1:0` and serve the log endpoint, plus the `extra` routes (the streaming and
/// metrics endpoints), until `shutdown`. Returns the bound address.
pub async fn serve(store: Arc<LogStore>, extra: Router, shutdown: CancellationToken) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = router(store).merge(extra);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await;
    });
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn lines_round_trip_through_the_cri_format() {
        let dir = tempfile::tempdir().unwrap();
        let f = LogFile::create(dir.path().join("c/0.log")).unwrap();
        f.write_chunk(Stream::Stdout, b"hello world\n", t("2024-01-01T00:00:00Z"));
        f.write_chunk(Stream::Stderr, b"no newline", t("2024-01-01T00:00:01.5Z"));
        f.finish();
        let data = std::fs::read(f.path()).unwrap();
        let text = String::from_utf8(data.clone()).unwrap();
        assert_eq!(
            text,
            "2024-01-01T00:00:00.000000000Z stdout F hello world\n2024-01-01T00:00:01.500000000Z stderr P no newline\n"
        );
        let lines = parse_all(&data);
        assert_eq!(lines.len(), 2);
        assert_eq!(render(&lines, &LogOptions::default(), Utc::now()), b"hello world\nno newline");
    }

    #[test]
    fn render_honours_tail_since_timestamps_and_limit() {
        let lines: Vec<LogLine> = (0..5)
            .map(|i| LogLine {
                time: t(&format!("2024-01-01T00:00:0{i}Z")),
                stream: Stream::Stdout,
                full: true,
                content: format!("line {i}").into_bytes(),
            })
            .collect();
        let now = t("2024-01-01T00:00:05Z");
        let tail = LogOptions { tail_lines: Some(2), ..Default::default() };
        assert_eq!(render(&lines, &tail, now), b"line 3\nline 4\n");
        let since = LogOptions { since_seconds: Some(2), ..Default::default() };
        assert_eq!(render(&lines, &since, now), b"line 3\nline 4\n");
        let ts = LogOptions { timestamps: true, tail_lines: Some(1), ..Default::default() };
        assert_eq!(render(&lines, &ts, now), b"2024-01-01T00:00:04.000000000Z line 4\n");
        let limit = LogOptions { limit_bytes: Some(9), ..Default::default() };
        assert_eq!(render(&lines, &limit, now), b"line 0\nli");
        let zero_tail = LogOptions { tail_lines: Some(0), ..Default::default() };
        assert!(render(&lines, &zero_tail, now).is_empty());
    }

    #[test]
    fn termination_message_is_the_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        let f = LogFile::create(dir.path().join("0.log")).unwrap();
        for i in 0..100 {
            f.write_chunk(Stream::Stderr, format!("line {i}\n").as_bytes(), Utc::now());
        }
        let msg = termination_message(&std::fs::read(f.path()).unwrap());
        assert!(msg.starts_with("line 20\n") && msg.ends_with("line 99\n"), "{msg}");
        assert_eq!(msg.lines().count(), 80);
    }

    #[test]
    fn malformed_lines_are_skipped() {
        assert!(parse_line(b"garbage").is_none());
        assert!(parse_line(b"2024-01-01T00:00:00Z stdin F x").is_none());
        assert!(parse_line(b"not-a-time stdout F x").is_none());
        assert_eq!(parse_line(b"2024-01-01T00:00:00Z stdout F").unwrap().content, b"");
    }

    #[test]
    fn store_keeps_current_and_previous_runs() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path().to_path_buf());
        store.register_pod("ns", "p", "u1", vec!["main".into()]);
        assert_eq!(
            store.lookup("ns", "p", None, false).unwrap_err(),
            LogError::NotStarted { pod: "p".into(), container: "main".into() }
        );
        let first = store.begin_run("ns", "p", "u1", "main", 0).unwrap();
        assert!(matches!(store.lookup("ns", "p", None, true), Err(LogError::NoPrevious { .. })));
        let second = store.begin_run("ns", "p", "u1", "main", 1).unwrap();
        assert_eq!(store.lookup("ns", "p", Some("main"), true).unwrap().path(), first.path());
        assert_eq!(store.lookup("ns", "p", Some("main"), false).unwrap().path(), second.path());
        let third = store.begin_run("ns", "p", "u1", "main", 2).unwrap();
        assert!(!first.path().exists(), "the run before the previous one is deleted");
        assert!(third.path().exists());
        assert!(matches!(store.lookup("ns", "p", Some("other"), false), Err(LogError::ContainerNotFound { .. })));
        assert!(matches!(store.lookup("ns", "q", None, false), Err(LogError::PodNotFound { .. })));
        store.remove_pod("ns", "p", Some("another-uid"));
        assert_eq!(store.pod_count(), 1);
        store.remove_pod("ns", "p", Some("u1"));
        assert_eq!(store.pod_count(), 0);
        assert!(!third.path().exists());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn following_from_now_starts_at_the_call_not_when_its_task_first_runs() {
        // attach: the client's input may make the process print before the reading task runs
        // (on one thread it cannot run before this test yields); what was printed after the
        // call is new, what was printed before it is not.
        let dir = tempfile::tempdir().unwrap();
        let file = LogFile::create(dir.path().join("c.log")).unwrap();
        file.write_chunk(Stream::Stdout, b"before\n", Utc::now());
        file.write_chunk(Stream::Stdout, b"partial ", Utc::now());
        let mut rx = follow_from_now(file.clone());
        file.write_chunk(Stream::Stdout, b"got hello\n", Utc::now());
        file.write_chunk(Stream::Stderr, b"after\n", Utc::now());
        file.finish();
        let mut got = Vec::new();
        while let Some(chunk) = rx.recv().await {
            got.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(String::from_utf8_lossy(&got), "got hello\nafter\n");
        assert_eq!(file.end(), std::fs::metadata(file.path()).unwrap().len(), "end counts every byte written");
    }

    #[tokio::test]
    async fn a_silent_run_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path().to_path_buf());
        store.register_pod("ns", "p", "u", vec!["c".into()]);
        store.begin_silent_run("ns", "p", "u", "c");
        let file = store.lookup("ns", "p", None, false).unwrap();
        let mut rx = read_stream(file, LogOptions { follow: true, ..Default::default() });
        assert!(rx.recv().await.is_none());
        store.remove_pod("ns", "p", None);
    }

    #[tokio::test]
    async fn silent_runs_share_one_finished_log_and_read_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path().to_path_buf());
        store.register_pod("ns", "a", "ua", vec!["init".into(), "main".into()]);
        store.register_pod("ns", "b", "ub", vec!["main".into()]);
        store.begin_silent_run("ns", "a", "ua", "main");
        assert!(matches!(store.lookup("ns", "a", Some("main"), true), Err(LogError::NoPrevious { .. })));
        assert!(matches!(store.lookup("ns", "a", Some("init"), false), Err(LogError::NotStarted { .. })));
        store.begin_silent_run("ns", "a", "ua", "main");
        store.begin_silent_run("ns", "b", "ub", "main");
        let (a, a_prev, b) = (
            store.lookup("ns", "a", Some("main"), false).unwrap(),
            store.lookup("ns", "a", Some("main"), true).unwrap(),
            store.lookup("ns", "b", None, false).unwrap(),
        );
        assert!(Arc::ptr_eq(&a, &b) && Arc::ptr_eq(&a, &a_prev), "one log for every silent run");
        assert!(a.is_done() && a.path().as_os_str().is_empty());
        // A real run after silent ones: the silent one becomes the previous run.
        let real = store.begin_run("ns", "b", "ub", "main", 1).unwrap();
        real.write_chunk(Stream::Stdout, b"hi\n", Utc::now());
        real.finish();
        assert_eq!(store.lookup("ns", "b", None, false).unwrap().path(), real.path());
        assert!(Arc::ptr_eq(&store.lookup("ns", "b", None, true).unwrap(), &a));
        let mut rx = read_stream(store.lookup("ns", "b", None, false).unwrap(), LogOptions::default());
        assert_eq!(rx.recv().await.unwrap().unwrap(), Bytes::from_static(b"hi\n"));
        let mut rx = read_stream(a.clone(), LogOptions { follow: true, ..Default::default() });
        assert!(rx.recv().await.is_none(), "a silent run reads as empty and ends at once");
        store.remove_pod("ns", "a", None);
        store.remove_pod("ns", "b", None);
        assert_eq!(store.pod_count(), 0);
        assert!(!real.path().exists());
    }

    #[test]
    fn pods_with_the_same_containers_share_one_list_and_its_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path().to_path_buf());
        for (pod, uid) in [("a", "ua"), ("b", "ub")] {
            store.register_pod("ns", pod, uid, vec!["init".into(), "main".into()]);
            store.begin_silent_run("ns", pod, uid, "main");
        }
        store.begin_silent_run("ns", "c", "uc", "other");
        let pods = store.pods.lock().unwrap();
        let (a, b) = (&pods.by_name[&Pods::key("ns", "a")], &pods.by_name[&Pods::key("ns", "b")]);
        assert!(Arc::ptr_eq(&a.containers, &b.containers), "one list for both pods");
        assert!(Arc::ptr_eq(&a.runs[0].0, &a.containers[1]), "a run's name is the list's own");
        assert_eq!(&*pods.by_name[&Pods::key("ns", "c")].containers[0], "other");
        // Namespace and name do not run together.
        assert!(!pods.by_name.contains_key(&Pods::key("nsa", "")) && !pods.by_name.contains_key(&Pods::key("n", "sa")));
    }

    #[test]
    fn logs_left_by_an_earlier_run_are_found_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path().to_path_buf());
        store.register_pod("ns", "p", "u1", vec!["c".into()]);
        for n in 0..3 {
            let f = store.begin_run("ns", "p", "u1", "c", n).unwrap();
            f.write_chunk(Stream::Stdout, format!("run {n}\n").as_bytes(), Utc::now());
            f.finish();
        }
        store.register_pod("ns", "gone", "u2", vec!["c".into()]);
        store.begin_run("ns", "gone", "u2", "c", 0).unwrap().finish();

        let again = LogStore::new(dir.path().to_path_buf());
        assert_eq!(again.load_existing(), 2);
        let current = again.lookup("ns", "p", None, false).unwrap();
        let previous = again.lookup("ns", "p", None, true).unwrap();
        assert!(current.path().ends_with("c/2.log") && previous.path().ends_with("c/1.log"));
        assert!(current.is_done());
        again.retain_uids(&["u1".to_string()].into());
        assert!(matches!(again.lookup("ns", "gone", None, false), Err(LogError::PodNotFound { .. })));
        assert!(!dir.path().join("ns_gone_u2").exists(), "files of vanished pods are removed");
        assert_eq!(again.pod_count(), 1);
    }

    #[test]
    fn several_containers_need_a_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path().to_path_buf());
        store.register_pod("ns", "p", "u", vec!["a".into(), "b".into()]);
        let err = store.lookup("ns", "p", None, false).unwrap_err();
        assert_eq!(err.to_string(), "a container name must be specified for pod p, choose one of: [a b]");
    }

    #[tokio::test]
    async fn follow_streams_until_the_run_ends() {
        let dir = tempfile::tempdir().unwrap();
        let f = LogFile::create(dir.path().join("0.log")).unwrap();
        f.write_chunk(Stream::Stdout, b"one\n", Utc::now());
        let mut rx = read_stream(f.clone(), LogOptions { follow: true, ..Default::default() });
        assert_eq!(rx.recv().await.unwrap().unwrap(), Bytes::from_static(b"one\n"));
        f.write_chunk(Stream::Stdout, b"two\n", Utc::now());
        assert_eq!(rx.recv().await.unwrap().unwrap(), Bytes::from_static(b"two\n"));
        f.finish();
        assert!(rx.recv().await.is_none(), "the stream ends with the run");
    }

    async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf).into_owned();
        let code = text[9..12].parse().unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        // Decode a chunked body (streamed responses).
        let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            let mut out = String::new();
            let mut rest = body;
            while let Some((size, tail)) = rest.split_once("\r\n") {
                let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                if n == 0 {
                    break;
                }
                out.push_str(&tail[..n]);
                rest = &tail[n + 2..];
            }
            out
        } else {
            body.to_string()
        };
        (code, body)
    }

    #[tokio::test]
    async fn http_endpoint_serves_container_logs() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path().to_path_buf());
        store.register_pod("ns", "p", "u", vec!["a".into(), "b".into()]);
        let first = store.begin_run("ns", "p", "u", "a", 0).unwrap();
        first.write_chunk(Stream::Stdout, b"first run\n", Utc::now());
        first.finish();
        let current = store.begin_run("ns", "p", "u", "a", 1).unwrap();
        current.write_chunk(Stream::Stdout, b"line 1\n", Utc::now());
        current.write_chunk(Stream::Stderr, b"line 2\n", Utc::now());
        let stop = CancellationToken::new();
        let addr = serve(store.clone(), Router::new(), stop.clone()).await.unwrap();

        assert_eq!(http_get(addr, "/containerLogs/ns/p/a").await, (200, "line 1\nline 2\n".into()));
        assert_eq!(http_get(addr, "/containerLogs/ns/p/a?tailLines=1").await, (200, "line 2\n".into()));
        assert_eq!(http_get(addr, "/containerLogs/ns/p/a?previous=true").await, (200, "first run\n".into()));
        let (code, body) = http_get(addr, "/containerLogs/ns/p/a?timestamps=true&limitBytes=40").await;
        assert_eq!(code, 200);
        assert!(body.len() == 40 && body.contains("Z line 1\n"), "{body:?}");
        let (code, body) = http_get(addr, "/containerLogs/ns/p").await;
        assert_eq!((code, body.as_str()), (400, "a container name must be specified for pod p, choose one of: [a b]"));
        assert_eq!(http_get(addr, "/containerLogs/ns/missing/a").await.0, 404);
        assert_eq!(http_get(addr, "/containerLogs/ns/p/a?tailLines=abc").await.0, 400);

        // follow: the response ends when the run ends.
        let follow = tokio::spawn(http_get(addr, "/containerLogs/ns/p/a?follow=true"));
        current.write_chunk(Stream::Stdout, b"line 3\n", Utc::now());
        current.finish();
        let (code, body) = follow.await.unwrap();
        assert_eq!(code, 200);
        assert!(body.starts_with("line 1\nline 2\n") && body.ends_with("line 3\n"), "{body:?}");
        stop.cancel();
    }
}
