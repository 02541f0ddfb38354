//! Golden tests of what users read: each directory of `tests/messages/` is a
//! case (a broken `infra.yaml` and/or `nodes.yaml`, the shared ones of
//! `tests/messages/` otherwise), run through the `occopus` binary in that
//! directory; its whole output (exit code, stdout, stderr) must equal the
//! case's `expected.txt`. A `command` file gives other arguments than
//! `validate infra.yaml --nodes nodes.yaml`. `OCCOPUS_BLESS=1` rewrites the
//! expected files from what the binary says now (then read the diff). As
//! spin's manifest UI tests and trybuild do, so that a message's every word
//! is reviewed when it changes.

use crate::common::{Occopus, repository};
use std::path::Path;

/// Runs every case; reports every mismatch at once.
#[test]
fn every_message_is_as_recorded() {
    let root = repository().join("tests/messages");
    let bless = std::env::var_os("OCCOPUS_BLESS").is_some();
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut mismatches = Vec::new();
    for case in &cases {
        let actual = run_case(case);
        let expected_file = case.join("expected.txt");
        let expected = std::fs::read_to_string(&expected_file).unwrap_or_default();
        if actual == expected {
            continue;
        }
        if bless {
            std::fs::write(&expected_file, &actual).unwrap();
        } else {
            mismatches.push(format!(
                "{}:\n{}",
                case.file_name().unwrap().to_string_lossy(),
                first_difference(&expected, &actual)
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} cases differ (OCCOPUS_BLESS=1 records what the binary says now):\n\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.join("\n\n")
    );
}

/// The case's output as recorded: exit code, stdout, stderr, with the test's
/// temporary directory written as `$TMP`.
fn run_case(case: &Path) -> String {
    let occopus = Occopus::new(94);
    let file = |name: &str| {
        if case.join(name).exists() {
            name.to_string()
        } else {
            format!("../{name}")
        }
    };
    let (infra, nodes) = (file("infra.yaml"), file("nodes.yaml"));
    let command = std::fs::read_to_string(case.join("command"))
        .unwrap_or_else(|_| "validate {infra} --nodes {nodes}".to_string());
    let args: Vec<String> = command
        .split_whitespace()
        .map(|arg| arg.replace("{infra}", &infra).replace("{nodes}", &nodes))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = occopus
        .command(&args)
        .current_dir(case)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let tmp = occopus.dir.path().display().to_string();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).replace(&tmp, "$TMP");
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        output
            .status
            .code()
            .map_or_else(|| "signal".to_string(), |c| c.to_string()),
        text(&output.stdout),
        text(&output.stderr)
    )
}

/// The first line where `expected` and `actual` part, with both versions.
fn first_difference(expected: &str, actual: &str) -> String {
    let (mut e, mut a) = (expected.lines(), actual.lines());
    for line in 1.. {
        match (e.next(), a.next()) {
            (Some(x), Some(y)) if x == y => continue,
            (x, y) => {
                return format!(
                    "  line {line}\n  expected: {}\n  actual:   {}",
                    x.unwrap_or("(end)"),
                    y.unwrap_or("(end)")
                );
            }
        }
    }
    unreachable!("the loop returns at the first difference")
}
