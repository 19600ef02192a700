//! Logging through `tracing`: human-readable text by default, JSON on request, with a
//! `RUST_LOG`-style filter.
//!
//! The process calls [`init`] once with the [`TelemetryArgs`] flattened into its command line.
//! Every log line about one Job is emitted inside a [`job_span`], so it carries the span fields
//! `job.namespace` and `job.name`:
//!
//! - text: `INFO reconcile{job.namespace=ns job.name=pi}: jobwright::job: created pod`
//! - JSON: `{"level":"INFO","fields":{"message":"created pod"},"span":{"job.namespace":"ns","job.name":"pi","name":"reconcile"},"spans":[...]}`
//!
//! Filter precedence: `--log-level` (env `JOBWRIGHT_LOG_LEVEL`), then `RUST_LOG`, then `info`.
//! Both accept the full `EnvFilter` syntax (`info,jobwright=debug,kube=warn`).

use std::io;

use tracing::Span;
use tracing_subscriber::{EnvFilter, fmt::MakeWriter, layer::SubscriberExt, util::SubscriberInitExt};

/// The filter used when neither `--log-level` nor `RUST_LOG` is set.
pub const DEFAULT_FILTER: &str = "info";

/// Output format of log lines.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (tracing-subscriber's default formatter).
    #[default]
    Text,
    /// One JSON object per line, with the current span's fields under `span`.
    Json,
}

/// Logging flags; flatten into a subcommand with `#[command(flatten)]`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TelemetryArgs {
    /// Log line format: `text` (human-readable) or `json` (one object per line).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "JOBWRIGHT_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log filter in `RUST_LOG` syntax (e.g. `info,jobwright=debug`); overrides `RUST_LOG`.
    /// Default: `RUST_LOG`, else `info` (`local`: `info` with kube-rs and hyper at `warn`).
    #[arg(long, env = "JOBWRIGHT_LOG_LEVEL")]
    pub log_level: Option<String>,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The filter string does not parse.
    #[error("invalid log filter {filter:?}: {message}")]
    InvalidFilter {
        /// The filter as given.
        filter: String,
        /// The parser's complaint.
        message: String,
    },
    /// A global subscriber was already installed.
    #[error("logging already initialised: {0}")]
    AlreadyInitialised(String),
}

/// Builds the filter: `flag` wins, then `rust_log` (the `RUST_LOG` value), then [`DEFAULT_FILTER`].
/// Empty strings count as unset.
pub fn build_filter(flag: Option<&str>, rust_log: Option<&str>) -> Result<EnvFilter, TelemetryError> {
    build_filter_or(flag, rust_log, DEFAULT_FILTER)
}

/// [`build_filter`] with another default than [`DEFAULT_FILTER`].
pub fn build_filter_or(flag: Option<&str>, rust_log: Option<&str>, default: &str) -> Result<EnvFilter, TelemetryError> {
    let filter = [flag, rust_log].into_iter().flatten().map(str::trim).find(|s| !s.is_empty()).unwrap_or(default);
    EnvFilter::try_new(filter)
        .map_err(|e| TelemetryError::InvalidFilter { filter: filter.to_string(), message: e.to_string() })
}

/// Builds a subscriber writing to `writer`; [`init`] uses stderr. Tests pass a buffer.
/// `ansi` colours text lines (JSON is never coloured).
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    ansi: bool,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync + 'static>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => {
            Box::new(registry.with(tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(writer)))
        }
        LogFormat::Json => Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_ansi(false)
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_writer(writer),
            ),
        ),
    }
}

/// Installs the global subscriber (stderr) from the flags and `RUST_LOG`.
pub fn init(args: &TelemetryArgs) -> Result<(), TelemetryError> {
    init_with_default(args, DEFAULT_FILTER)
}

/// [`init`] with another default filter than [`DEFAULT_FILTER`] (`jobwright local` keeps kube-rs
/// and hyper quieter).
pub fn init_with_default(args: &TelemetryArgs, default: &str) -> Result<(), TelemetryError> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = build_filter_or(args.log_level.as_deref(), rust_log.as_deref(), default)?;
    // Colour only for a human at a terminal, and never when NO_COLOR is set.
    let ansi = io::IsTerminal::is_terminal(&io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    subscriber(args.log_format, filter, ansi, io::stderr)
        .try_init()
        .map_err(|e| TelemetryError::AlreadyInitialised(e.to_string()))
}

/// The span for everything done about one Job: its lines carry `job.namespace` and `job.name`.
///
/// ```
/// let span = jobwright::telemetry::job_span("default", "pi");
/// let _guard = span.enter();
/// tracing::info!("reconciling");
/// ```
pub fn job_span(namespace: &str, name: &str) -> Span {
    tracing::info_span!("reconcile", job.namespace = %namespace, job.name = %name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn capture(format: LogFormat, filter: &str, f: impl FnOnce()) -> String {
        let buf = Buffer::default();
        let sub = subscriber(format, build_filter(Some(filter), None).unwrap(), false, buf.clone());
        tracing::subscriber::with_default(sub, f);
        buf.text()
    }

    #[test]
    fn json_lines_carry_job_namespace_and_name() {
        let out = capture(LogFormat::Json, "info", || {
            let _g = job_span("team-a", "pi").entered();
            tracing::info!(pods = 3, "created pods");
        });
        let line: serde_json::Value = serde_json::from_str(out.lines().next().expect("one line")).unwrap();
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["fields"]["message"], "created pods");
        assert_eq!(line["fields"]["pods"], 3);
        assert_eq!(line["span"]["job.namespace"], "team-a");
        assert_eq!(line["span"]["job.name"], "pi");
    }

    #[test]
    fn text_lines_carry_job_fields() {
        let out = capture(LogFormat::Text, "info", || {
            let _g = job_span("team-a", "pi").entered();
            tracing::warn!("slow");
        });
        assert!(out.contains("job.namespace=team-a"), "{out}");
        assert!(out.contains("job.name=pi"), "{out}");
        assert!(out.contains("slow"), "{out}");
        assert!(serde_json::from_str::<serde_json::Value>(out.trim()).is_err(), "text is not JSON");
    }

    #[test]
    fn filter_drops_lines_below_level() {
        let out = capture(LogFormat::Text, "warn", || {
            tracing::info!("hidden");
            tracing::warn!("shown");
        });
        assert!(!out.contains("hidden") && out.contains("shown"), "{out}");
    }

    #[test]
    fn filter_precedence_flag_then_rust_log_then_default() {
        assert_eq!(build_filter(Some("debug"), Some("warn")).unwrap().to_string(), "debug");
        assert_eq!(build_filter(None, Some("warn")).unwrap().to_string(), "warn");
        assert_eq!(build_filter(Some(" "), Some("")).unwrap().to_string(), DEFAULT_FILTER);
        assert_eq!(build_filter(None, None).unwrap().to_string(), DEFAULT_FILTER);
    }

    #[test]
    fn bad_filter_is_an_error_not_a_panic() {
        let err = build_filter(Some("jobwright=notalevel"), None).unwrap_err();
        assert!(err.to_string().contains("jobwright=notalevel"), "{err}");
    }
}
