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

/// The `Commands:` section of a help text: (name, description) per line.
fn commands_section(help: &str) -> Vec<(String, String)> {
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            let l = l.trim_start();
            let (name, about) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            (name.to_owned(), about.trim().to_owned())
        })
        .collect()
}

#[test]
fn every_command_and_group_shows_a_one_line_description() {
    let (code, top, _) = chorusctl(&["--help"]);
    assert_eq!(code, 0);
    let listed = commands_section(&top);
    assert!(listed.len() > 5, "{top}");
    let mut groups = Vec::new();
    for (name, about) in &listed {
        assert!(!about.is_empty(), "`{name}` has no description in\n{top}");
        if name == "help" {
            continue;
        }
        if chorus_admin_api::group(name).is_some() {
            groups.push(name.clone());
        }
    }
    assert_eq!(groups.len(), chorus_admin_api::GROUPS.len(), "{top}");
    for group in groups {
        let (code, out, err) = chorusctl(&[&group, "--help"]);
        assert_eq!(code, 0, "{err}");
        let listed = commands_section(&out);
        assert!(listed.len() > 1, "{out}");
        for (name, about) in listed {
            assert!(
                !about.is_empty(),
                "`{group} {name}` has no description in\n{out}"
            );
        }
    }
    // Every line of a command list is one line: no description wraps.
    for line in top.lines() {
        assert!(line.len() <= 100, "{line}");
    }
    // A command's own --help adds its details.
    let (_, import, _) = chorusctl(&["import", "--help"]);
    assert!(
        import.contains("existing accounts and hosts not in server.domains are skipped"),
        "{import}"
    );
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
