//! The simulate executor: no processes, the pod's annotations say how each container run goes.
//!
//! Nothing but a timer per running container, so 100,000-pod runs fit in memory. Annotations (all
//! optional, read from the pod):
//!
//! | annotation | meaning | default |
//! |---|---|---|
//! | `jobwright.dev/simulate-duration` | how long each container runs: a Go duration (`2s`, `1m30s`, `500ms`) or seconds (`3`); `0` ends at once | `0` |
//! | `jobwright.dev/simulate-exit-code` | the exit code of each run | `0` |
//! | `jobwright.dev/simulate-exit-code-by-index` | per completion index (`batch.kubernetes.io/job-completion-index`), e.g. `0=1,3=42`, overriding the above | none |
//! | `jobwright.dev/simulate-succeed-after` | runs with `restartCount` below N exit with the exit code above (1 when that is 0), later runs exit 0: a flaky container for `OnFailure` | none |
//! | `jobwright.dev/simulate-logs` | text each run writes to stdout | none |
//! | `jobwright.dev/simulate-condition` | a pod condition type set to `True` when the pod ends, e.g. `DisruptionTarget` | none |
//! | `jobwright.dev/simulate-condition-reason` / `-message` | its reason and message | `Simulated` / none |
//!
//! A stop request ends a run at once with exit code 143, as a process honouring SIGTERM would.
//! An unparsable annotation makes the run a `StartError` naming the annotation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use super::logs::{LogFile, Stream};
use super::process::{ExitInfo, StopRequest};

/// Annotation: how long each container run lasts.
pub const DURATION: &str = "jobwright.dev/simulate-duration";
/// Annotation: the exit code of each run.
pub const EXIT_CODE: &str = "jobwright.dev/simulate-exit-code";
/// Annotation: exit codes per completion index, `0=1,3=42`.
pub const EXIT_CODE_BY_INDEX: &str = "jobwright.dev/simulate-exit-code-by-index";
/// Annotation: runs before this restart count fail, later ones succeed.
pub const SUCCEED_AFTER: &str = "jobwright.dev/simulate-succeed-after";
/// Annotation: text written to stdout by each run.
pub const LOGS: &str = "jobwright.dev/simulate-logs";
/// Annotation: a pod condition type set when the pod ends.
pub const CONDITION: &str = "jobwright.dev/simulate-condition";
/// Annotation: the reason of that condition.
pub const CONDITION_REASON: &str = "jobwright.dev/simulate-condition-reason";
/// Annotation: the message of that condition.
pub const CONDITION_MESSAGE: &str = "jobwright.dev/simulate-condition-message";

const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";

/// A pod condition the simulated pod asks for when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedCondition {
    /// Condition type, e.g. `DisruptionTarget`.
    pub type_: String,
    /// Its reason.
    pub reason: String,
    /// Its message.
    pub message: Option<String>,
}

/// What one simulated container run does, decoded from the annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedRun {
    /// How long it runs.
    pub duration: Duration,
    /// How it exits.
    pub exit_code: i32,
    /// What it prints.
    pub logs: Option<String>,
}

pub use crate::duration::parse_duration;

fn parse_by_index(spec: &str, index: &str) -> Result<Option<i32>, String> {
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (i, code) = part.split_once('=').ok_or_else(|| format!("expected INDEX=CODE, got {part:?}"))?;
        let code: i32 = code.trim().parse().map_err(|_| format!("invalid exit code {code:?}"))?;
        if i.trim() == index {
            return Ok(Some(code));
        }
    }
    Ok(None)
}

/// Decode the run of a container on its `restart_count`-th restart from the pod's annotations.
/// The error names the bad annotation.
pub fn plan_run(annotations: &BTreeMap<String, String>, restart_count: i32) -> Result<SimulatedRun, String> {
    let get = |k: &str| annotations.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let duration = match get(DURATION) {
        Some(v) => {
            parse_duration(v).ok_or_else(|| format!("invalid annotation {DURATION}: {v:?} is not a duration"))?
        }
        None => Duration::ZERO,
    };
    let mut exit_code = match get(EXIT_CODE) {
        Some(v) => v.parse::<i32>().map_err(|_| format!("invalid annotation {EXIT_CODE}: {v:?} is not an integer"))?,
        None => 0,
    };
    if let (Some(spec), Some(index)) = (get(EXIT_CODE_BY_INDEX), get(COMPLETION_INDEX))
        && let Some(code) =
            parse_by_index(spec, index).map_err(|e| format!("invalid annotation {EXIT_CODE_BY_INDEX}: {e}"))?
    {
        exit_code = code;
    }
    if let Some(v) = get(SUCCEED_AFTER) {
        let n: i32 = v.parse().map_err(|_| format!("invalid annotation {SUCCEED_AFTER}: {v:?} is not an integer"))?;
        exit_code = if restart_count >= n {
            0
        } else if exit_code == 0 {
            1
        } else {
            exit_code
        };
    }
    Ok(SimulatedRun { duration, exit_code, logs: annotations.get(LOGS).cloned() })
}

/// The pod condition the annotations ask for, if any.
pub fn pod_condition(annotations: &BTreeMap<String, String>) -> Option<SimulatedCondition> {
    let type_ = annotations.get(CONDITION)?.trim().to_string();
    if type_.is_empty() {
        return None;
    }
    Some(SimulatedCondition {
        type_,
        reason: annotations.get(CONDITION_REASON).cloned().unwrap_or_else(|| "Simulated".into()),
        message: annotations.get(CONDITION_MESSAGE).cloned(),
    })
}

/// The simulate executor.
#[derive(Debug, Clone, Default)]
pub struct SimulateExecutor;

/// A simulated run in progress.
#[derive(Debug)]
pub struct RunningSimulation {
    run: SimulatedRun,
    started_at: chrono::DateTime<Utc>,
    log: Option<Arc<LogFile>>,
}

impl SimulateExecutor {
    /// Start a run: its logs are written at once. A bad annotation is a `StartError`.
    pub fn start(
        &self,
        annotations: &BTreeMap<String, String>,
        restart_count: i32,
        log: Option<Arc<LogFile>>,
    ) -> Result<RunningSimulation, ExitInfo> {
        let now = Utc::now();
        match plan_run(annotations, restart_count) {
            Ok(run) => {
                if let (Some(text), Some(log)) = (&run.logs, &log) {
                    for line in text.split_inclusive('\n') {
                        log.write_chunk(Stream::Stdout, line.as_bytes(), now);
                    }
                }
                Ok(RunningSimulation { run, started_at: now, log })
            }
            Err(message) => {
                if let Some(log) = &log {
                    log.finish();
                }
                Err(ExitInfo {
                    exit_code: 128,
                    reason: "StartError".into(),
                    message: Some(message),
                    started_at: now,
                    finished_at: now,
                })
            }
        }
    }
}

impl RunningSimulation {
    /// When the run started.
    pub fn started_at(&self) -> chrono::DateTime<Utc> {
        self.started_at
    }

    /// Whether the run lasts 0 s: [`RunningSimulation::wait`] then returns without awaiting.
    pub fn ends_at_once(&self) -> bool {
        self.run.duration.is_zero()
    }

    /// Wait for the run's duration, or a stop request (exit 143).
    pub async fn wait(self, stop: &mut watch::Receiver<StopRequest>) -> ExitInfo {
        let stopped = async {
            loop {
                if stop.borrow_and_update().is_some() {
                    return true;
                }
                if stop.changed().await.is_err() {
                    return false;
                }
            }
        };
        let code = if self.run.duration.is_zero() {
            self.run.exit_code
        } else {
            tokio::select! {
                _ = tokio::time::sleep(self.run.duration) => self.run.exit_code,
                true = stopped => 143,
            }
        };
        if let Some(log) = &self.log {
            log.finish();
        }
        ExitInfo::from_code(code, self.started_at, Utc::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn durations() {
        let cases = [
            ("0", Some(0.0)),
            ("2s", Some(2.0)),
            ("1.5", Some(1.5)),
            ("500ms", Some(0.5)),
            ("1m30s", Some(90.0)),
            ("1h", Some(3600.0)),
            ("", None),
            ("-1", None),
            ("5 parsecs", None),
            ("s", None),
            ("10x", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_duration(input).map(|d| d.as_secs_f64()), want, "{input:?}");
        }
    }

    #[test]
    fn plans_from_annotations() {
        let none = plan_run(&ann(&[]), 0).unwrap();
        assert_eq!(none, SimulatedRun { duration: Duration::ZERO, exit_code: 0, logs: None });
        let a = ann(&[(DURATION, "2s"), (EXIT_CODE, "3"), (LOGS, "hi\n")]);
        assert_eq!(
            plan_run(&a, 0).unwrap(),
            SimulatedRun { duration: Duration::from_secs(2), exit_code: 3, logs: Some("hi\n".into()) }
        );
        let by_index = ann(&[(EXIT_CODE_BY_INDEX, "0=1, 3=42"), (COMPLETION_INDEX, "3")]);
        assert_eq!(plan_run(&by_index, 0).unwrap().exit_code, 42);
        let other_index = ann(&[(EXIT_CODE_BY_INDEX, "0=1,3=42"), (COMPLETION_INDEX, "2")]);
        assert_eq!(plan_run(&other_index, 0).unwrap().exit_code, 0);
        let flaky = ann(&[(SUCCEED_AFTER, "2")]);
        assert_eq!(plan_run(&flaky, 0).unwrap().exit_code, 1);
        assert_eq!(plan_run(&flaky, 1).unwrap().exit_code, 1);
        assert_eq!(plan_run(&flaky, 2).unwrap().exit_code, 0);
        let flaky_code = ann(&[(SUCCEED_AFTER, "1"), (EXIT_CODE, "7")]);
        assert_eq!(plan_run(&flaky_code, 0).unwrap().exit_code, 7);
    }

    #[test]
    fn bad_annotations_are_named() {
        for (k, v) in [(DURATION, "soon"), (EXIT_CODE, "one"), (SUCCEED_AFTER, "x"), (EXIT_CODE_BY_INDEX, "0:1")] {
            let mut a = ann(&[(k, v)]);
            a.insert(COMPLETION_INDEX.into(), "0".into());
            let err = plan_run(&a, 0).unwrap_err();
            assert!(err.contains(k), "{err}");
        }
    }

    #[test]
    fn condition_annotation() {
        assert_eq!(pod_condition(&ann(&[])), None);
        assert_eq!(
            pod_condition(&ann(&[(CONDITION, "DisruptionTarget"), (CONDITION_REASON, "TerminationByKubelet")])),
            Some(SimulatedCondition {
                type_: "DisruptionTarget".into(),
                reason: "TerminationByKubelet".into(),
                message: None
            })
        );
    }

    #[tokio::test]
    async fn zero_duration_ends_at_once_with_logs() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogFile::create(dir.path().join("0.log")).unwrap();
        let run = SimulateExecutor.start(&ann(&[(EXIT_CODE, "2"), (LOGS, "a\nb")]), 0, Some(log.clone())).unwrap();
        let (_tx, mut rx) = watch::channel(None);
        let exit = run.wait(&mut rx).await;
        assert_eq!((exit.exit_code, exit.reason.as_str()), (2, "Error"));
        assert!(log.is_done());
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert!(text.contains(" stdout F a\n") && text.contains(" stdout P b\n"), "{text}");
    }

    #[tokio::test]
    async fn stop_ends_a_long_run_with_143() {
        let run = SimulateExecutor.start(&ann(&[(DURATION, "1h")]), 0, None).unwrap();
        let (tx, mut rx) = watch::channel(None);
        tx.send(Some(Duration::from_secs(30))).unwrap();
        assert_eq!(run.wait(&mut rx).await.exit_code, 143);
    }

    #[tokio::test]
    async fn a_bad_annotation_is_a_start_error() {
        let err = SimulateExecutor.start(&ann(&[(DURATION, "later")]), 0, None).unwrap_err();
        assert_eq!((err.exit_code, err.reason.as_str()), (128, "StartError"));
    }
}
