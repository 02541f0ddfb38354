//! `occopus plugins ...` through the binary, and swapping a plugin by
//! replacing its file: the next run uses it with no rebuild.

use crate::common::python_plugin;
use std::path::Path;
use std::process::{Command, Output};

fn occopus(plugin_dir: &Path, cache_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_occopus"))
        .args(args)
        .arg("--plugin-dir")
        .arg(plugin_dir)
        .arg("--cache-dir")
        .arg(cache_dir)
        .env_remove("OCCOPUS_CONFIG")
        .env("XDG_CONFIG_HOME", plugin_dir.join("no-config"))
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn plugins_list_shows_every_column() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let out = stdout(&occopus(dir.path(), cache.path(), &["plugins", "list"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "KIND", "VERSION", "TYPES", "CONTRACT", "SOURCE"]
    );
    let dummy: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        dummy,
        [
            "dummy",
            "driver",
            "0.1.0",
            "dummy",
            "occopus:plugin@0.1.0",
            "builtin:dummy"
        ]
    );
    assert!(out.contains("cloudinit  contextualiser"), "{out}");
}

#[test]
fn swapping_the_wasm_file_swaps_the_driver() {
    let dir = tempfile::tempdir().unwrap();
    let cache = crate::common::shared_cache_dir();
    let file = dir.path().join("cloud.wasm");

    std::fs::copy(occopus_test_plugins::hostile(), &file).unwrap();
    let out = stdout(&occopus(dir.path(), &cache, &["plugins", "list", "--json"]));
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let from_file: Vec<&str> = listed["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["source"] == file.display().to_string())
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(from_file, ["hostile"]);

    // Replace the file with the Python driver: no rebuild, the next run uses it.
    std::fs::copy(python_plugin(), &file).unwrap();
    let out = stdout(&occopus(
        dir.path(),
        &cache,
        &["plugins", "inspect", "static"],
    ));
    assert!(
        out.contains(&format!("source              {}", file.display())),
        "{out}"
    );
    assert!(out.contains("\"addresses\""), "the schema is shown: {out}");
}

#[test]
fn a_refused_plugin_is_listed_with_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    std::fs::copy(
        occopus_test_plugins::contract_next(),
        dir.path().join("next.wasm"),
    )
    .unwrap();
    let out = stdout(&occopus(dir.path(), cache.path(), &["plugins", "list"]));
    assert!(out.contains("not loaded:"), "{out}");
    assert!(out.contains("occopus:plugin@1.0.0"), "{out}");
    assert!(out.contains("occopus:plugin@0.1.0"), "{out}");
}

#[test]
fn inspecting_an_unknown_plugin_fails_with_the_installed_names() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let output = occopus(dir.path(), cache.path(), &["plugins", "inspect", "nope"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no plugin is named or serves `nope`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("installed: cloudinit, docker, dummy, ec2, local"),
        "{stderr}"
    );
}

/// A description's problems are printed once with their place, by `build`
/// as by `validate` (not `error: FILE:LINE: error: ...`); a byte-order mark
/// at the start of a file is no problem.
#[test]
fn a_broken_description_reads_the_same_from_build_and_validate() {
    let occopus = crate::common::Occopus::new(89);
    let [infra, nodes] = occopus.describe(
        "\u{feff}infra_name: x\nnodes:\n  - {name: a, type: nope}\n",
        "\u{feff}'node_def:sim':\n  - resource: {type: dummy}\n",
    );
    let built = occopus.run(&["build", &infra, "--nodes", &nodes]);
    let validated = occopus.run(&["validate", &infra, "--nodes", &nodes]);
    for output in [&built, &validated] {
        assert_eq!(output.status.code(), Some(4));
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(&format!("{infra}:3:")) && first.contains("type `nope`"),
            "{stderr}"
        );
        assert!(!stderr.contains("error: error:"), "{stderr}");
        assert!(
            !stderr.contains("unknown key"),
            "the BOM was read as a key: {stderr}"
        );
    }
}
