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
            "occopus:plugin@0.1.3",
            "builtin:dummy"
        ]
    );
    assert!(
        out.lines().any(|l| l
            .split_whitespace()
            .take(2)
            .eq(["cloudinit", "contextualiser"])),
        "{out}"
    );
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
    assert!(out.contains("occopus:plugin@0.1.3"), "{out}");
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
        stderr.contains(
            "installed: azure_aci, azure_vm, chef, cloudbroker, cloudinit, cloudsigma, docker, dummy, ec2, local, nova, puppet_solo"
        ),
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

/// Occopus's own command names work as symlinks to `occopus`, with their
/// original flags; a file given as the command gets the command to use.
#[test]
fn the_original_command_names_work_and_a_file_is_not_a_command() {
    let occopus = crate::common::Occopus::new(90);
    let [infra, nodes] = occopus.describe(
        "infra_name: named\nnodes:\n  - {name: a, type: sim, scaling: {min: 1, max: 2}}\n",
        "'node_def:sim':\n  - resource: {type: dummy}\n    health_check: {ping: false}\n",
    );
    let bin = occopus.dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for name in ["build", "destroy", "import", "maintain", "scale"] {
        std::os::unix::fs::symlink(
            env!("CARGO_BIN_EXE_occopus"),
            bin.join(format!("occopus-{name}")),
        )
        .unwrap();
    }
    let original = |name: &str, args: &[&str]| {
        // The same command, run by the symlink's name.
        let command = occopus.command(args);
        let output = std::process::Command::new(bin.join(format!("occopus-{name}")))
            .args(command.get_args())
            .envs(command.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "occopus-{name} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    original("import", &[&nodes]);
    original("build", &[&infra, "--infra_id", "named", "--parallelize"]);
    let help = original("build", &["--help"]);
    assert!(
        help.contains("--parallelize") && help.contains("the default here"),
        "{help}"
    );
    original(
        "scale",
        &["--infra_id", "named", "-n", "a", "--changescale", "+1"],
    );
    original("maintain", &["--infra_id", "named", "--once"]);
    assert_eq!(
        crate::common::instances(&occopus.report("named"), "a").len(),
        2
    );
    original("destroy", &["--infra_id", "named"]);

    let output = occopus.run(&[&infra]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("occopus build {infra}")),
        "{stderr}"
    );
}

/// Small answers: an empty `info` says so (no lone header), instance rows
/// have a header, and `local-cloud destroy` says what it did.
#[test]
fn info_and_local_cloud_destroy_say_what_they_found() {
    let occopus = crate::common::Occopus::new(91);
    let empty = occopus.run(&["info"]);
    assert!(empty.status.success());
    assert!(empty.stdout.is_empty(), "{empty:?}");
    assert!(String::from_utf8_lossy(&empty.stderr).contains("no infrastructure is recorded"));

    let [infra, nodes] = occopus.describe(
        "infra_name: small\nnodes:\n  - {name: a, type: sim}\n",
        "'node_def:sim':\n  - resource: {type: dummy}\n    health_check: {ping: false}\n",
    );
    occopus.ok(&["build", &infra, "--nodes", &nodes, "-i", "small"]);
    let shown = occopus.ok(&["info", "-i", "small"]);
    let header = shown
        .lines()
        .position(|l| l.trim_start().starts_with("INSTANCE"));
    let row = shown
        .lines()
        .position(|l| l.trim_start().starts_with("a-1-"));
    assert!(header.is_some() && header < row, "{shown}");

    // A unique start of an id names it, as in git; a start of several is
    // refused with them listed.
    occopus.ok(&["build", &infra, "--nodes", &nodes, "-i", "smaller"]);
    occopus.ok(&["build", &infra, "--nodes", &nodes, "-i", "other-one"]);
    assert!(occopus.ok(&["info", "-i", "oth"]).contains("other-one"));
    let ambiguous = occopus.run(&["info", "-i", "sma"]);
    let stderr = String::from_utf8_lossy(&ambiguous.stderr);
    // "No such infrastructure" (exit 6): the start names no single one.
    assert_eq!(ambiguous.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains("`sma` is the start of 2 infrastructure ids (small, smaller)"),
        "{stderr}"
    );
    assert!(occopus.ok(&["info", "-i", "small"]).contains("small "));
    let destroyed = occopus.run(&["destroy", "-i", "other"]);
    assert!(
        String::from_utf8_lossy(&destroyed.stderr).contains("infrastructure other-one destroyed"),
        "{destroyed:?}"
    );

    let said = |args: &[&str]| {
        let output = occopus.run(args);
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    assert!(said(&["local-cloud", "destroy", "local-99"]).contains("no node local-99"));
}

/// Output stays bounded whatever the infrastructure's size: a log switches
/// to counts by phase past 100 instances, the final table counts by node,
/// failures are grouped by reason, and on a terminal the live table fits
/// the terminal (or honours TERM=dumb).
#[test]
fn output_stays_bounded_whatever_the_size() {
    let occopus = crate::common::Occopus::new(92);
    let [infra, nodes] = occopus.describe(
        "infra_name: big\nnodes:\n  - {name: web, type: sim, scaling: {min: 300, max: 300}}\n",
        "'node_def:sim':\n  - resource: {type: dummy, boot_time: 1}\n    health_check: {ping: false}\n\
         'node_def:bad':\n  - resource: {type: dummy, boot_time: 3, failure_probability: 1}\n    health_check: {ping: false}\n",
    );
    let output = occopus.run(&["build", &infra, "--nodes", &nodes, "-i", "big"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("more than 100 instances"), "{stderr}");
    assert!(stderr.lines().any(|l| l == "  web: 300 ready"), "{stderr}");
    assert!(
        stderr.lines().count() < 150,
        "{} lines for 300 instances",
        stderr.lines().count()
    );

    std::fs::write(
        occopus.dir.path().join("bad.yaml"),
        "infra_name: bad\nnodes:\n  - {name: bad, type: bad, scaling: {min: 200, max: 200}}\n",
    )
    .unwrap();
    let bad = occopus.dir.path().join("bad.yaml").display().to_string();
    // Each bad instance fails 3 s after its create, so that all 200 are made
    // before the first failure stops the build (under load, a failure seen
    // at once stopped the build with one failure and 199 never created).
    let output = occopus.run(&["build", &bad, "--nodes", &nodes, "-i", "bad"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let verdict = stderr.lines().last().unwrap_or_default();
    assert!(
        verdict.contains(" instances (bad-") && verdict.contains(" more): "),
        "the verdict {verdict:?} does not group the failures; the output ends:\n{}",
        stderr.lines().rev().take(15).collect::<Vec<_>>().join("\n")
    );
    assert!(verdict.len() < 1000, "{} characters", verdict.len());
    // A pass over them: its report groups too.
    let output = occopus.run(&["maintain", "-i", "bad", "--once"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("(`occopus plan` lists every change)"),
        "{stderr}"
    );
    assert!(stderr.lines().count() < 20, "{stderr}");
    occopus.ok(&["destroy", "-i", "bad"]);

    // On a terminal (a pty of 50 columns and 10 rows), every line fits.
    let on_terminal = |term: &str, id: &str| {
        let mut command = occopus.command(&["build", &infra, "--nodes", &nodes, "-i", id]);
        command.env("TERM", term);
        let output = crate::common::wrapped(
            &[
                "sh",
                "-c",
                "exec script -qec \"stty cols 50 rows 10; exec $*\" /dev/null",
                "sh",
            ],
            &command,
        )
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let drawn = on_terminal("xterm", "big-live");
    assert!(
        drawn.contains("\x1b["),
        "the table is drawn in place: {drawn}"
    );
    // The table's rows (the closing messages may wrap, as any message).
    for line in drawn.split(['\n', '\r']) {
        let visible = without_escapes(line);
        if visible.starts_with("  ") {
            assert!(visible.chars().count() < 50, "{visible:?}");
        }
    }
    assert!(drawn.contains("  web: 300 ready"), "{drawn}");
    let dumb = on_terminal("dumb", "big-dumb");
    assert!(!dumb.contains('\x1b'), "TERM=dumb got escapes: {dumb}");
    assert!(dumb.contains("more than 100 instances"), "{dumb}");
}

/// `line` without its terminal escape sequences (`ESC [ digits ; letter`).
fn without_escapes(line: &str) -> String {
    let mut visible = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // Skip `[`, the parameters, and the final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            visible.push(c);
        }
    }
    visible
}

/// `occopus completions SHELL` and `occopus man` come from the command's own
/// definitions: bash, loading the script, completes a subcommand and a flag;
/// every shell gets a script; `man` renders the generated pages.
#[test]
fn completions_and_man_pages_work() {
    let occopus = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_occopus"))
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("occopus.bash");
    std::fs::write(&script, occopus(&["completions", "bash"])).unwrap();
    // What bash's programmable completion does on TAB: the words so far,
    // then the function `complete -p occopus` names.
    let complete = |line: &str| {
        let words: Vec<&str> = line.split(' ').collect();
        let program = format!(
            "source {script}\n\
             function=$(complete -p occopus | sed -n 's/.*-F \\([^ ]*\\).*/\\1/p')\n\
             COMP_WORDS=({line}); COMP_CWORD={cword}; COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}\n\
             \"$function\" occopus '{current}' '{previous}'\n\
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script = script.display(),
            cword = words.len() - 1,
            current = words[words.len() - 1],
            previous = words[words.len() - 2],
        );
        let output = std::process::Command::new("bash")
            .args(["--norc", "-c", &program])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    assert_eq!(complete("occopus bu").trim(), "build");
    assert_eq!(complete("occopus build --roll").trim(), "--rollback");
    assert!(complete("occopus plugins ").contains("inspect"));
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        assert!(
            occopus(&["completions", shell]).contains("rollback"),
            "{shell}"
        );
    }

    let pages = dir.path().join("man1");
    occopus(&["man", "--out-dir", pages.to_str().unwrap()]);
    let rendered = std::process::Command::new("man")
        .args(["-P", "cat", "-l"])
        .arg(pages.join("occopus-build.1"))
        .env("MANWIDTH", "100")
        .output()
        .unwrap();
    let page = String::from_utf8_lossy(&rendered.stdout);
    assert!(rendered.status.success(), "{rendered:?}");
    assert!(
        page.contains("occopus-build - Build an infrastructure"),
        "{page}"
    );
    assert!(page.contains("--rollback"), "{page}");
    assert!(pages.join("occopus.1").exists() && pages.join("occopus-plugins-list.1").exists());
    assert!(occopus(&["man"]).starts_with(".ie"), "occopus.1 on stdout");
}

/// Every command that reports something does so as one JSON document with
/// `--json` (docs/json.md), failures included, and `--progress json` streams
/// one JSON object per state change on stderr.
#[test]
fn json_documents_of_every_reporting_command() {
    let occopus = crate::common::Occopus::new(123);
    let [infra, nodes] = occopus.describe(
        "infra_name: docs\nnodes:\n  - &A {name: db, type: sim}\n  - &B {name: app, type: sim, scaling: {min: 2, max: 4}}\ndependencies:\n  - [*B, *A]\n",
        "'node_def:sim':\n  - resource: {type: dummy}\n    health_check: {ping: false}\n",
    );
    let parse = |text: &[u8]| -> serde_json::Value {
        serde_json::from_slice(text).unwrap_or_else(|e| {
            panic!(
                "not one JSON document ({e}): {}",
                String::from_utf8_lossy(text)
            )
        })
    };

    let built = occopus.run(&[
        "build",
        &infra,
        "--nodes",
        &nodes,
        "-i",
        "docs",
        "--json",
        "--progress",
        "json",
    ]);
    assert!(built.status.success(), "{built:?}");
    let document = parse(&built.stdout);
    assert_eq!(document["schema"], "occopus.build.v1");
    assert_eq!(document["infra_id"], "docs");
    assert_eq!(document["outcome"], "ready");
    assert!(document["elapsed_ms"].is_u64());
    let instances = document["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 3);
    for instance in instances {
        assert_eq!(instance["phase"], "ready");
        for field in ["node", "instance_id", "addresses"] {
            assert!(!instance[field].is_null(), "{field}: {instance}");
        }
    }
    // Every state change of every instance, in order, one object a line.
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&built.stderr)
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| parse(line.as_bytes()))
        .collect();
    assert!(events.iter().all(|e| e["schema"] == "occopus.event.v1"));
    let ready = events.iter().filter(|e| e["phase"] == "ready").count();
    assert_eq!(ready, 3, "{events:?}");
    let db_ready = events
        .iter()
        .position(|e| e["phase"] == "ready" && e["node"] == "db");
    let app_created = events
        .iter()
        .position(|e| e["phase"] == "creating" && e["node"] == "app");
    assert!(db_ready < app_created, "dependencies first: {events:?}");

    let scaled = parse(
        occopus
            .ok(&["scale", "-i", "docs", "-n", "app", "-c", "+1", "--json"])
            .as_bytes(),
    );
    assert_eq!(scaled["schema"], "occopus.scale.v1");
    assert_eq!(scaled["request"]["node"], "app");
    assert_eq!(scaled["request"]["change"], 1);
    assert_eq!(scaled["request"]["target"], 3);

    let imported = parse(occopus.ok(&["import", &nodes, "--json"]).as_bytes());
    assert_eq!(imported["schema"], "occopus.import.v1");
    assert_eq!(imported["node_types"], serde_json::json!(["sim"]));

    // A failure is a document too, with the exit code's reason.
    let refused = occopus.run(&["scale", "-i", "docs", "-n", "app", "-c", "+9", "--json"]);
    let error = parse(&refused.stdout);
    assert_eq!(error["schema"], "occopus.error.v1");
    assert_eq!(error["error"]["code"], "scaling-refused");
    assert_eq!(error["error"]["exit_code"], 1);
    assert_eq!(refused.status.code(), Some(1));
    let missing = occopus.run(&["destroy", "-i", "nope", "--json"]);
    assert_eq!(missing.status.code(), Some(6));
    assert_eq!(parse(&missing.stdout)["error"]["code"], "unknown-infra");
    std::fs::write(
        occopus.dir.path().join("broken.yaml"),
        "infra_name: b\nnodes: 3\n",
    )
    .unwrap();
    let broken = occopus.dir.path().join("broken.yaml").display().to_string();
    // A command with a JSON output of its own prints only that one.
    let validated = occopus.run(&["validate", &broken, "--nodes", &nodes, "--json"]);
    assert_eq!(validated.status.code(), Some(4));
    assert_eq!(parse(&validated.stdout)["errors"], 1);
    let invalid = occopus.run(&["build", &broken, "--nodes", &nodes, "--json"]);
    assert_eq!(invalid.status.code(), Some(4));
    let error = parse(&invalid.stdout);
    assert_eq!(error["error"]["code"], "invalid-description");
    let problem = &error["error"]["problems"][0];
    assert_eq!(problem["line"], 2, "{problem}");
    assert!(
        problem["file"].as_str().unwrap().ends_with("broken.yaml"),
        "{problem}"
    );

    let destroyed = parse(occopus.ok(&["destroy", "-i", "docs", "--json"]).as_bytes());
    assert_eq!(destroyed["schema"], "occopus.destroy.v1");
    assert_eq!(destroyed["outcome"], "destroyed");
    assert_eq!(destroyed["destroyed"], 3);
    assert_eq!(destroyed["failed"], serde_json::json!([]));
}
