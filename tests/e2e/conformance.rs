//! `occopus plugins check` through the binary: the first-party drivers and
//! the Python example keep the contract, a driver that forgets its
//! idempotency key is caught, and the driver docs/plugins.md walks through,
//! written and built in a directory outside the repository, passes and swaps
//! in. (The `ec2` and `docker` drivers are checked against their clouds in
//! `ec2.rs` and `docker.rs`.)

use crate::common::{KillOnDrop, Occopus, python_plugin, repository, run_ok, wasm};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `occopus plugins check DRIVER --resource (a file of RESOURCE)`.
fn check(occopus: &Occopus, driver: &Path, resource: &str) -> std::process::Output {
    let file = occopus.dir.path().join("resource.yaml");
    std::fs::write(&file, resource).unwrap();
    occopus.run(&[
        "plugins",
        "check",
        driver.to_str().unwrap(),
        "--resource",
        file.to_str().unwrap(),
    ])
}

/// Asserts a report with no failed promise, whose verdicts are `expected`
/// (`promise verdict` lines), and returns it.
fn passes(output: &std::process::Output, expected: &[(&str, &str)]) -> String {
    let report = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for (promise, verdict) in expected {
        assert!(
            report
                .lines()
                .any(|l| l.split_whitespace().take(2).eq([*verdict, *promise])),
            "{promise} is not {verdict}:\n{report}"
        );
    }
    report
}

const EVERY_PROMISE: &[&str] = &[
    "describe",
    "schema",
    "validate-offline",
    "validate-errors",
    "create",
    "status-transitions",
    "create-idempotent",
    "addresses",
    "list-by-tag",
    "unknown-id",
    "destroy",
    "destroy-idempotent",
];

fn all_passed_but<'a>(not_applicable: &[&'a str]) -> Vec<(&'a str, &'static str)> {
    EVERY_PROMISE
        .iter()
        .map(|p| {
            let verdict = if not_applicable.contains(p) {
                "n/a"
            } else {
                "passed"
            };
            (*p, verdict)
        })
        .chain([("unauthorized", "n/a")])
        .collect()
}

#[test]
fn the_first_party_drivers_and_the_python_example_keep_the_contract() {
    let occopus = Occopus::new(61);
    // The local cloud of this test's own config, started by the check.
    let local = check(
        &occopus,
        &wasm("occopus_driver_local.wasm"),
        "type: local\n",
    );
    passes(&local, &all_passed_but(&[]));
    assert!(
        occopus
            .local_cloud()
            .list(None)
            .unwrap()
            .iter()
            .all(|n| n.state == occopus::local_cloud::NodeState::Shutdown),
        "the check destroyed its node"
    );

    let dummy = check(
        &occopus,
        &wasm("occopus_driver_dummy.wasm"),
        "type: dummy\nboot_time: 0.2\n",
    );
    let report = passes(&dummy, &all_passed_but(&["list-by-tag"]));
    assert!(report.contains("x-occopus-inventory"), "{report}");

    let python = check(
        &occopus,
        &python_plugin(),
        "type: static\naddresses: [127.102.0.10]\n",
    );
    passes(&python, &all_passed_but(&["list-by-tag"]));
}

#[test]
fn a_driver_that_breaks_idempotency_fails_with_a_report_per_promise() {
    let occopus = Occopus::new(62);
    let output = check(
        &occopus,
        &occopus_test_plugins::forgetful(),
        "type: forgetful\n",
    );
    assert_eq!(output.status.code(), Some(1));
    let report = String::from_utf8_lossy(&output.stdout);
    let failed: Vec<&str> = report
        .lines()
        .filter(|l| l.trim_start().starts_with("FAILED"))
        .collect();
    assert_eq!(failed.len(), 1, "{report}");
    assert!(failed[0].contains("create-idempotent"), "{report}");
    assert!(
        failed[0].contains("made two instances") && failed[0].contains("a second machine"),
        "{report}"
    );
    assert!(
        report.ends_with("10 passed, 1 failed, 2 not applicable, 0 skipped\n"),
        "{report}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("breaks the contract"), "{stderr}");

    let json = occopus.run(&[
        "plugins",
        "check",
        occopus_test_plugins::forgetful().to_str().unwrap(),
        "--resource",
        occopus.dir.path().join("resource.yaml").to_str().unwrap(),
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["passed"], false);
    let results = json["report"]["results"].as_array().unwrap();
    let idempotent = results
        .iter()
        .find(|r| r["promise"] == "create-idempotent")
        .unwrap();
    assert_eq!(idempotent["verdict"], "failed");
}

/// The code blocks of docs/plugins.md whose first line names a file of the
/// `boxes` crate, as (file, text).
fn walkthrough_files() -> Vec<(String, String)> {
    let docs = std::fs::read_to_string(repository().join("docs/plugins.md")).unwrap();
    let mut files = Vec::new();
    let mut lines = docs.lines();
    while let Some(line) = lines.next() {
        if !line.starts_with("```") {
            continue;
        }
        let block: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        let named = block.first().and_then(|first| {
            first
                .strip_prefix("# boxes/")
                .or_else(|| first.strip_prefix("// boxes/"))
        });
        if let Some(name) = named {
            files.push((name.to_string(), block.join("\n") + "\n"));
        }
    }
    files
}

/// Builds the walk-through's crate in `dir`: its own directory, its own
/// lockfile, the SDK by path, as a user outside the repository would.
fn build_boxes(dir: &Path) -> PathBuf {
    let files = walkthrough_files();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["Cargo.toml", "src/lib.rs"],
        "docs/plugins.md changed"
    );
    for (name, text) in files {
        let path = dir.join(&name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let text = text.replace("/path/to/occopus", repository().to_str().unwrap());
        std::fs::write(path, text).unwrap();
    }
    // The versions the plugins workspace resolved, and its build directory,
    // so that the dependencies compiled for the first-party plugins are
    // reused (a reader's first build compiles them, in about a minute).
    std::fs::copy(
        repository().join("plugins/Cargo.lock"),
        dir.join("Cargo.lock"),
    )
    .unwrap();
    let target = repository().join("plugins/target");
    run_ok(
        Command::new(env!("CARGO"))
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .current_dir(dir)
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS"),
    );
    target.join("wasm32-wasip2/release/boxes.wasm")
}

#[test]
fn a_driver_written_from_the_docs_outside_the_repository_passes_the_check_and_swaps_in() {
    let outside = tempfile::tempdir().unwrap();
    let driver = build_boxes(outside.path());
    let occopus = Occopus::new(63);

    // A local cloud API of its own, as the walk-through starts one.
    let mut serve = occopus
        .command(&["local-cloud", "serve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first_line = String::new();
    BufReader::new(serve.stdout.take().unwrap())
        .read_line(&mut first_line)
        .unwrap();
    let _serve = KillOnDrop(serve);
    let endpoint = first_line.trim().to_string();

    let resource = format!("type: boxes\nendpoint: {endpoint}\n");
    passes(&check(&occopus, &driver, &resource), &all_passed_but(&[]));

    // Swapped in: dropped in the plugin directory, used by the next command.
    let plugins = occopus.dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(&driver, plugins.join("boxes.wasm")).unwrap();
    let list = occopus.ok(&["plugins", "list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("boxes ") && l.contains("boxes.wasm")),
        "{list}"
    );
    let dir = occopus.dir.path();
    std::fs::write(
        dir.join("infra.yaml"),
        "infra_name: in-boxes\nnodes:\n  - {name: box, type: box}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("nodes.yaml"),
        format!("'node_def:box':\n  - resource: {{type: boxes, endpoint: '{endpoint}'}}\n    health_check: {{ping: false}}\n"),
    )
    .unwrap();
    let infra = dir.join("infra.yaml").display().to_string();
    let nodes = dir.join("nodes.yaml").display().to_string();
    let id = occopus.ok(&["build", &infra, "--nodes", &nodes]);
    let id = id.trim();
    let report = occopus.report(id);
    let instances = report["box"]["instances"].as_object().unwrap();
    assert_eq!(instances.len(), 1);
    assert!(
        instances.values().all(|i| i["state"] == "ready"),
        "{report}"
    );
    occopus.ok(&["destroy", "-i", id]);
}
