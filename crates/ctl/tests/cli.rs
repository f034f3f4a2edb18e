//! The `chorusctl` binary as a process, without a server: what a script
//! sees (exit codes, help). It also makes cargo build the binary whenever
//! this package's tests are built, so `cargo test --workspace` leaves a
//! fresh `chorusctl` beside `chorus` for the server's integration tests.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn chorusctl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chorusctl"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_lists_every_declared_command_group() {
    let (code, out, _) = chorusctl(&["--help"]);
    assert_eq!(code, 0);
    for spec in chorus_admin_api::COMMANDS {
        let group = spec.name.split(' ').next().unwrap();
        assert!(out.contains(group), "{group} missing from:\n{out}");
    }
}

#[test]
fn a_missing_server_exits_3_and_says_where_it_looked() {
    let (code, _, err) = chorusctl(&["--socket", "/nonexistent/chorus.sock", "status"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("/nonexistent/chorus.sock"), "{err}");
}

#[test]
fn a_usage_error_exits_2() {
    let (code, _, _) = chorusctl(&["actors", "tre"]);
    assert_eq!(code, 2);
    let (code, _, _) = chorusctl(&["user", "add"]);
    assert_eq!(code, 2, "a missing required argument");
}
