//! Validation: a table of broken inputs, each with the exact location and
//! message it must produce; and every file of the compatibility corpus
//! validates and renders.

use occopus::model::{Severity, Sources};
use occopus::{Occopus, Options};
use std::path::Path;

const INFRA: &str = "infra_name: demo
nodes:
  - &A
    name: a
    type: web
  - &B
    name: b
    type: web
dependencies:
  - [*B, *A]
";

const NODES: &str = "'node_def:web':
  - resource:
      type: dummy
    contextualisation:
      type: cloudinit
      context_template: |
        #cloud-config
        runcmd: ['echo {{ name }}']
    health_check:
      ports: [80]
";

async fn open(dir: &Path) -> Occopus {
    let mut config = occopus::Config::default();
    config.plugins.dir = Some(dir.join("plugins"));
    config.plugins.cache_dir = Some(crate::common::shared_cache_dir());
    Occopus::open(Options {
        config,
        state: Some(dir.join("state.db")),
        ..Options::default()
    })
    .await
    .unwrap()
}

/// Validates `infra` and `nodes` written to infra.yaml and nodes.yaml; returns
/// the errors as `file:line:col: message`.
async fn errors(occopus: &Occopus, dir: &Path, infra: &str, nodes: &str) -> Vec<String> {
    std::fs::write(dir.join("infra.yaml"), infra).unwrap();
    std::fs::write(dir.join("nodes.yaml"), nodes).unwrap();
    let sources = Sources {
        infra: dir.join("infra.yaml"),
        nodes: vec![dir.join("nodes.yaml")],
        ..Sources::default()
    };
    let diagnostics = occopus.validate(&sources).await.unwrap();
    diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| {
            let l = d.location.as_ref().expect("every error has a location");
            let file = l.file.file_name().unwrap().to_string_lossy();
            format!("{file}:{}:{}: {}", l.line, l.column, d.message)
        })
        .collect()
}

/// (case, infra, nodes, expected error start)
fn cases() -> Vec<(&'static str, String, String, &'static str)> {
    let infra = |from: &str, to: &str| INFRA.replacen(from, to, 1);
    let nodes = |from: &str, to: &str| NODES.replacen(from, to, 1);
    let i = |s: String| (s, NODES.to_string());
    let n = |s: String| (INFRA.to_string(), s);
    let table: Vec<(&str, (String, String), &str)> = vec![
        (
            "yaml syntax",
            i(infra("    type: web\n  - &B", "    type: web\n   - &B")),
            "infra.yaml:6:4: invalid YAML",
        ),
        (
            "not a mapping",
            i("- a\n- b\n".into()),
            "infra.yaml:1:1: the infrastructure description must be a mapping",
        ),
        (
            "no infra_name",
            i(infra("infra_name: demo\n", "")),
            "infra.yaml:1:1: the infrastructure description has no `infra_name`",
        ),
        (
            "no nodes",
            i("infra_name: demo\n".into()),
            "infra.yaml:1:1: the infrastructure description has no `nodes`",
        ),
        (
            "bad infra_name",
            i(infra("demo", "my.demo")),
            "infra.yaml:1:13: infra_name `my.demo` is not hostname-like",
        ),
        (
            "unknown top key",
            i(format!("{INFRA}colour: blue\n")),
            "infra.yaml:11:1: unknown key `colour` in the infrastructure description",
        ),
        (
            "typo top key",
            i(infra("dependencies:", "dependancies:")),
            "infra.yaml:9:1: unknown key `dependancies`",
        ),
        (
            "nodes not a list",
            i("infra_name: demo\nnodes: {a: 1}\n".into()),
            "infra.yaml:2:8: `nodes` of the infrastructure description must be a list, not a mapping",
        ),
        (
            "node without name",
            i(infra("    name: a\n", "")),
            "infra.yaml:4:5: the node has no `name`",
        ),
        (
            "node without type",
            i(infra("    name: a\n    type: web\n", "    name: a\n")),
            "infra.yaml:4:5: the node has no `type`",
        ),
        (
            "unknown node key",
            i(infra("    name: a\n", "    name: a\n    colour: red\n")),
            "infra.yaml:5:5: unknown key `colour` in the node",
        ),
        (
            "typo node key",
            i(infra(
                "    name: a\n",
                "    name: a\n    scalling: {min: 1}\n",
            )),
            "infra.yaml:5:5: unknown key `scalling` in the node",
        ),
        (
            "bad node name",
            i(infra("name: a", "name: a_1")),
            "infra.yaml:4:11: node name `a_1` is not hostname-like",
        ),
        (
            "duplicate node",
            i(infra("name: b", "name: a")),
            "infra.yaml:7:5: a second node is named `a` (first at line 4)",
        ),
        (
            "unknown type",
            i(infra("    type: web\n  - &B", "    type: webb\n  - &B")),
            "infra.yaml:5:11: node `a` has type `webb`, which no node definition defines",
        ),
        (
            "min > max",
            i(infra(
                "    type: web\n  - &B",
                "    type: web\n    scaling: {min: 3, max: 2}\n  - &B",
            )),
            "infra.yaml:6:23: scaling of node `a`: max (2) is below min (3)",
        ),
        (
            "min not a number",
            i(infra(
                "    type: web\n  - &B",
                "    type: web\n    scaling: {min: lots}\n  - &B",
            )),
            "infra.yaml:6:20: `min` of the scaling of node `a` must be a whole number, not a string",
        ),
        (
            "min out of range",
            i(infra(
                "    type: web\n  - &B",
                "    type: web\n    scaling: {min: 200000}\n  - &B",
            )),
            "infra.yaml:6:20: `min` of the scaling of node `a` is 200000; it must be between 0 and 100000",
        ),
        (
            "min of 0",
            i(infra(
                "    type: web\n  - &B",
                "    type: web\n    scaling: {min: 0, max: 0}\n  - &B",
            )),
            "infra.yaml:6:20: `min` of the scaling of node `a` is 0, but every node has at least one instance",
        ),
        (
            "unknown scaling key",
            i(infra(
                "    type: web\n  - &B",
                "    type: web\n    scaling: {minimum: 1}\n  - &B",
            )),
            "infra.yaml:6:15: unknown key `minimum` in the scaling of node `a`",
        ),
        (
            "dependency on undefined",
            i(infra("  - [*B, *A]", "  - [b, ghost]")),
            "infra.yaml:10:9: the dependency names node `ghost`, which is not defined",
        ),
        (
            "dependency of three",
            i(infra("  - [*B, *A]", "  - [*B, *A, *A]")),
            "infra.yaml:10:5: a dependency must list exactly two nodes",
        ),
        (
            "self dependency",
            i(infra("  - [*B, *A]", "  - [*A, *A]")),
            "infra.yaml:10:5: node `a` depends on itself",
        ),
        (
            "cycle",
            i(format!("{INFRA}  - [*A, *B]\n")),
            "infra.yaml:11:5: the dependencies form a cycle: a -> b -> a",
        ),
        (
            "unknown alias",
            i(infra("  - [*B, *A]", "  - [*B, *C]")),
            "infra.yaml:10:10: the alias `*C` names an anchor `&C` that is not defined before it",
        ),
        (
            "duplicate key",
            i(infra(
                "infra_name: demo\n",
                "infra_name: demo\ninfra_name: again\n",
            )),
            "infra.yaml:2:1: duplicate key `infra_name` (first at line 1)",
        ),
        (
            "import outside file://",
            n(nodes(
                "context_template: |",
                "context_template: !yaml_import {url: 'https://example.org/ci.yaml'}\n      unused: |",
            )),
            "nodes.yaml:6:44: `!yaml_import` supports only file:// URLs",
        ),
        (
            "import missing file",
            n(nodes(
                "context_template: |",
                "context_template: !text_import {url: 'file://missing.txt'}\n      unused: |",
            )),
            "nodes.yaml:6:44: cannot read",
        ),
        (
            "node_def name",
            n(NODES.replace("'node_def:web'", "'web'")),
            "nodes.yaml:1:1: `web` is not a node definition name",
        ),
        (
            "implementations not a list",
            n(nodes("  - resource:", "    resource:")),
            "nodes.yaml:2:5: `node_def:web` must be a list of implementations",
        ),
        (
            "no resource",
            n("'node_def:web':\n  - health_check: {ports: [80]}\n".into()),
            "nodes.yaml:2:5: the implementation of `node_def:web` has no `resource`",
        ),
        (
            "resource without type",
            n(nodes("      type: dummy\n", "      name: x\n")),
            "nodes.yaml:3:7: the resource of `node_def:web` has no `type`",
        ),
        (
            "unknown implementation key",
            n(format!("{NODES}    scaling: {{min: 1}}\n")),
            "nodes.yaml:11:5: unknown key `scaling` in the implementation of `node_def:web`",
        ),
        (
            "resource schema: unknown key",
            n(nodes(
                "      type: dummy\n",
                "      type: dummy\n      boot_tme: 3\n",
            )),
            "nodes.yaml:4:7: unknown key `boot_tme` in this resource (plugin `dummy`)",
        ),
        (
            "resource schema: wrong type",
            n(nodes(
                "      type: dummy\n",
                "      type: dummy\n      boot_time: soon\n",
            )),
            "nodes.yaml:4:18: resource at `boot_time`: \"soon\" is not of type \"number\"",
        ),
        (
            "driver validate",
            n(nodes(
                "      type: dummy\n",
                "      type: dummy\n      failure_probability: 0.5\n      seed: 1\n      create_latency: 100000\n",
            )),
            "nodes.yaml:3:7: plugin `dummy` (validate) failed: invalid configuration: create_latency and boot_time must be between 0 and 86400 seconds",
        ),
        (
            "contextualisation schema",
            n(nodes(
                "      type: cloudinit\n",
                "      type: cloudinit\n      colour: red\n",
            )),
            "nodes.yaml:6:7: unknown key `colour` in this contextualisation (plugin `cloudinit`)",
        ),
        (
            "bad port",
            n(nodes("ports: [80]", "ports: [80, 70000]")),
            "nodes.yaml:10:19: a health-check port must be a number from 1 to 65535",
        ),
        (
            "ping not a bool",
            n(nodes("ports: [80]", "ports: [80]\n      ping: sometimes")),
            "nodes.yaml:11:13: `ping` of the health_check of `node_def:web` must be true or false",
        ),
        (
            "unknown health key",
            n(nodes("ports: [80]", "ports: [80]\n      pings: true")),
            "nodes.yaml:11:7: unknown key `pings` in the health_check of `node_def:web`",
        ),
        (
            "undefined template name",
            n(nodes("{{ name }}", "{{ nmae }}")),
            "nodes.yaml:8:9: template of node `a` (template line 2): undefined name",
        ),
        (
            "template syntax",
            n(nodes("{{ name }}", "{{ name }")),
            "nodes.yaml:8:9: template of node `a` (template line 2): template syntax error",
        ),
        (
            "getip of unknown node",
            n(nodes("{{ name }}", "{{ getip('ghost') }}")),
            "nodes.yaml:8:9: template of node `a` (template line 2): there is no node named `ghost`",
        ),
        (
            "cmd without flag",
            n(nodes("{{ name }}", "{{ cmd('id') }}")),
            "nodes.yaml:8:9: template of node `a` (template line 2): cmd('id') would run a command on this machine; pass --allow-template-commands",
        ),
        (
            "filter matches nothing",
            i(infra(
                "    type: web\n  - &B",
                "    type: web\n    filter: {type: ec2}\n  - &B",
            )),
            "infra.yaml:4:5: the filter of node `a` matches none of the 1 implementations of `web`",
        ),
    ];
    table
        .into_iter()
        .map(|(name, (i, n), expected)| (name, i, n, expected))
        .collect()
}

#[tokio::test]
async fn every_broken_input_is_reported_at_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let occopus = open(dir.path()).await;
    assert!(
        errors(&occopus, dir.path(), INFRA, NODES).await.is_empty(),
        "the base case is valid"
    );
    let cases = cases();
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for (name, infra, nodes, expected) in cases {
        let found = errors(&occopus, dir.path(), &infra, &nodes).await;
        if !found.iter().any(|e| e.starts_with(expected)) {
            failures.push(format!("{name}: expected `{expected}`, got {found:#?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn every_problem_is_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let occopus = open(dir.path()).await;
    let infra = "infra_name: bad.name\nnodes:\n  - {name: a, type: web, colour: red}\n  - {name: a, type: nope}\n";
    let found = errors(&occopus, dir.path(), infra, NODES).await;
    assert_eq!(found.len(), 3, "{found:#?}");
}

#[tokio::test]
async fn the_compatibility_corpus_validates_and_renders() {
    let dir = tempfile::tempdir().unwrap();
    let occopus = open(dir.path()).await;
    let corpus = crate::common::repository().join("tests/compat/occopus-tutorials");
    let mut checked = 0;
    for tutorial in std::fs::read_dir(&corpus)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
    {
        let infra = std::fs::read_dir(tutorial.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "yaml"))
            .unwrap();
        let sources = Sources {
            infra: infra.clone(),
            ..Sources::default()
        };
        let diagnostics = occopus.validate(&sources).await.unwrap();
        // The only errors: what build would refuse too, for clouds and config
        // managers not served yet (nova, azure, cloudsigma, cloudbroker, chef:
        // issues 16-18), and an installed driver (ec2, docker) refusing an
        // endpoint that is still the tutorial's `replace_with_...`
        // placeholder. The only warning: a node using the address of one it
        // does not depend on (it waits for it).
        for problem in diagnostics.iter() {
            let expected = match problem.severity {
                occopus::model::Severity::Error => {
                    problem.message.starts_with("no driver serves type `")
                        || problem
                            .message
                            .contains("`chef` config management is not supported")
                        || problem.message.contains("`replace_with_")
                }
                occopus::model::Severity::Warning => {
                    problem.message.contains("without depending on it")
                }
            };
            assert!(expected, "{}:\n{problem}", infra.display());
        }
        checked += 1;
    }
    assert_eq!(checked, 14);
}

/// A description that is text, not a file (as the REST service receives it):
/// messages name it as told, and its imports obey the policy given.
#[tokio::test]
async fn a_description_given_as_text_validates_with_its_import_policy() {
    let dir = tempfile::tempdir().unwrap();
    let occopus = open(dir.path()).await;
    std::fs::write(dir.path().join("nodes.yaml"), NODES).unwrap();
    let sources = |text: &str| Sources {
        infra: "posted-description".into(),
        infra_text: Some(text.to_owned()),
        imports: occopus::model::yaml::Imports::Nowhere,
        nodes: vec![dir.path().join("nodes.yaml")],
        ..Sources::default()
    };
    let good = occopus
        .validate(&sources(
            "infra_name: t\nnodes:\n  - {name: a, type: web}\n",
        ))
        .await
        .unwrap();
    assert!(!good.has_errors(), "{good}");
    let bad = occopus
        .validate(&sources(
            "infra_name: t\nnodes: !yaml_import {url: file://nodes.yaml}\n",
        ))
        .await
        .unwrap()
        .to_string();
    assert!(
        bad.contains("posted-description:2:27: error: `!yaml_import` of `file://nodes.yaml` is not allowed here"),
        "{bad}"
    );
}

/// A node definition that exists but cannot be read is reported once, for
/// what is wrong with it: its nodes are not also said to have a type "no node
/// definition defines".
#[tokio::test]
async fn a_broken_node_definition_is_its_only_error() {
    let dir = tempfile::tempdir().unwrap();
    let occopus = open(dir.path()).await;
    let broken = [
        (
            "yaml error",
            NODES.replacen("  - resource:", "  - resource:\n   bad", 1),
        ),
        (
            "missing import",
            format!("{NODES}'node_def:x': !yaml_import {{url: 'file://nowhere.yaml'}}\n"),
        ),
        (
            "no resource",
            NODES.replacen(
                "  - resource:\n      type: dummy\n",
                "  - health_check: {ping: false}\n",
                1,
            ),
        ),
        (
            "not a list",
            NODES.replacen(
                "  - resource:\n      type: dummy",
                "    resource:\n      type: dummy",
                1,
            ),
        ),
    ];
    for (case, nodes) in broken {
        let found = errors(&occopus, dir.path(), INFRA, &nodes).await;
        assert!(!found.is_empty(), "{case}: no error");
        assert!(
            found
                .iter()
                .all(|e| !e.contains("which no node definition defines")),
            "{case}: {found:#?}"
        );
    }
}

/// `{min: 0, max: 0}` is one problem (min), not also "max below min".
#[tokio::test]
async fn a_min_of_zero_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let occopus = open(dir.path()).await;
    let infra = INFRA.replacen(
        "    type: web\n  - &B",
        "    type: web\n    scaling: {min: 0, max: 0}\n  - &B",
        1,
    );
    let found = errors(&occopus, dir.path(), &infra, NODES).await;
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].contains("is 0, but every node has at least one instance"),
        "{found:#?}"
    );
}

/// What `validate` accepts, `build` does not refuse for a reason knowable
/// before the first cloud call: both refuse the same files with the same
/// words (rc 4), and a template's use of a node it does not depend on makes
/// it wait for that node instead of racing it.
#[test]
fn validate_refuses_what_build_would_refuse() {
    let occopus = crate::common::Occopus::new(93);
    let dir = occopus.dir.path();
    let nodes = "'node_def:sim':\n  - resource: {type: dummy}\n    health_check: {ping: false}\n\
                 'node_def:chef':\n  - resource: {type: local}\n    config_management: {type: chef, endpoint: 'http://127.0.0.1:1'}\n    health_check: {ping: false}\n\
                 'node_def:many':\n  - resource: {type: local}\n    health_check: {ping: false}\n\
                 'node_def:moon':\n  - resource: {type: moon}\n\
                 'node_def:user':\n  - resource: {type: dummy}\n    contextualisation: {type: cloudinit, context_template: \"#cloud-config\\nruncmd:\\n  - echo {{ getip('b') }}\\n\"}\n    health_check: {ping: false}\n";
    std::fs::write(dir.join("nodes.yaml"), nodes).unwrap();
    let nodes = dir.join("nodes.yaml").display().to_string();
    let refused = [
        (
            "nodes:\n  - {name: c, type: chef}\n",
            "`chef` config management is not supported",
        ),
        (
            "nodes:\n  - {name: m, type: many, scaling: {min: 40, max: 40}}\n  - {name: n, type: many, scaling: {min: 30, max: 30}}\n",
            "the local cloud runs at most 64 nodes at once (`local_cloud.max_nodes`), and this infrastructure needs at least 70 there (m 40, n 30)",
        ),
        (
            "nodes:\n  - {name: x, type: moon}\n",
            "no driver serves type `moon`",
        ),
        (
            "nodes:\n  - &A {name: a, type: user}\n  - &B {name: b, type: sim}\ndependencies:\n  - [*B, *A]\n",
            "these nodes wait for one another, counting the addresses their templates use",
        ),
    ];
    for (i, (body, expected)) in refused.iter().enumerate() {
        let infra = dir.join(format!("refused-{i}.yaml"));
        std::fs::write(&infra, format!("infra_name: r{i}\n{body}")).unwrap();
        let infra = infra.display().to_string();
        for command in ["validate", "build"] {
            let output = occopus.run(&[command, &infra, "--nodes", &nodes]);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(4), "{command} {body}: {stderr}");
            assert!(stderr.contains(expected), "{command} {body}: {stderr}");
        }
    }
    assert!(occopus.local_cloud().list(None).unwrap().is_empty());

    // `a` (first in the file) uses b's address without depending on it:
    // validate says it will wait, and the build makes it wait.
    std::fs::write(
        dir.join("implied.yaml"),
        "infra_name: implied\nnodes:\n  - {name: a, type: user}\n  - {name: b, type: sim}\n",
    )
    .unwrap();
    let infra = dir.join("implied.yaml").display().to_string();
    let output = occopus.run(&["validate", &infra, "--nodes", &nodes]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("node `a` uses the address of `b` without depending on it: it will wait until `b` is ready"),
        "{stderr}"
    );
    let graph = occopus.ok(&["graph", &infra, "--nodes", &nodes]);
    assert!(graph.contains("\"a\" -> \"b\""), "{graph}");
    occopus.ok(&["build", &infra, "--nodes", &nodes, "-i", "implied"]);
    occopus.ok(&["destroy", "-i", "implied"]);
}
