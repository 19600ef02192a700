//! The `jobwright` command line as a user meets it: output into a closed pipe, help summaries,
//! the same flag names across commands, no colours when stderr is not a terminal.

use std::process::{Command, Stdio};

/// Runs `jobwright ARGS` with stdout a pipe whose reading end is already closed (as `| head -1`
/// leaves it once head has its line): (exit code, stderr).
fn into_closed_pipe(args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_jobwright"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn printing_commands_end_quietly_when_the_reader_is_gone() {
    for args in [
        &["crd"][..],
        &["--help"],
        &["--version"],
        &["local", "--help"],
        &["controller", "--help"],
        &["apiserver", "--help"],
        &["kubelet", "--help"],
        &["crd", "--help"],
    ] {
        let (code, stderr) = into_closed_pipe(args);
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "jobwright {args:?}: {stderr}");
        assert_eq!(code, Some(0), "jobwright {args:?}: {stderr}");
    }
}

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_jobwright")).args(args).arg("--help").output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn one_setting_has_one_flag_name_in_every_command() {
    for cmd in ["local", "controller", "apiserver", "kubelet"] {
        let h = help(&[cmd]);
        assert!(h.contains("--log-level <LOG_LEVEL>"), "{cmd} takes --log-level:\n{h}");
        assert!(h.contains("--log-format <LOG_FORMAT>"), "{cmd} takes --log-format:\n{h}");
    }
    for cmd in ["local", "kubelet"] {
        let h = help(&[cmd]);
        assert!(h.contains("--restart-backoff-base <RESTART_BACKOFF_BASE>"), "{cmd}:\n{h}");
        assert!(!h.contains("--backoff-seconds <"), "the old name is a hidden alias:\n{h}");
    }
    let top = help(&[]);
    assert!(top.contains("the Job and TTL controllers in one process"), "{top}");
    assert!(top.contains("with RBAC, HTTP and TLS on one port"), "{top}");
}

#[test]
fn a_bad_log_filter_is_refused_and_logs_have_no_colours_off_a_terminal() {
    let out = Command::new(env!("CARGO_BIN_EXE_jobwright"))
        .args(["local", "--listen", "127.0.0.1:0", "--log-level", "jobwright=nonsense", "--run", "/nonexistent"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid log filter \"jobwright=nonsense\""), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hello-world.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_jobwright"))
        .args(["local", "--listen", "127.0.0.1:0", "--log-level", "info", "--run", example])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("INFO"), "log lines at the level asked for: {stderr}");
    assert!(!stderr.contains('\x1b'), "no ANSI colours when stderr is a pipe: {stderr:?}");
}
