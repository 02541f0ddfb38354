//! Careless or hostile use of the binary: a reader that goes away, a 4 GiB
//! address-space limit, and a dummy build whose default checks must stay on
//! loopback.

use crate::common::{KillOnDrop, Occopus, example, wrapped};
use std::process::Stdio;

/// A dummy infra with no health_check section: Occopus's default check
/// (ping) runs against the dummy's addresses.
fn dummy_infra(occopus: &Occopus) -> [String; 2] {
    occopus.describe(
        "infra_name: sim\nnodes:\n  - &A {name: a, type: sim, scaling: {min: 3, max: 4}}\n  - {name: b, type: sim, scaling: {min: 3}}\ndependencies:\n  - [b, a]\n",
        "'node_def:sim':\n  - resource: {type: dummy, boot_time: 0.1}\n",
    )
}

#[test]
fn a_dummy_build_passes_its_default_checks_on_loopback() {
    let occopus = Occopus::new(86);
    let [infra, nodes] = dummy_infra(&occopus);
    occopus.ok(&["build", &infra, "--nodes", &nodes, "-i", "loopback"]);
    // Ready means the default check passed at build; a pass checks again.
    occopus.ok(&["maintain", "-i", "loopback", "--once"]);
    let report = occopus.report("loopback");
    for node in ["a", "b"] {
        let instances = crate::common::instances(&report, node);
        assert_eq!(instances.len(), 3);
        for instance in instances {
            assert_eq!(instance["state"], "ready", "{instance:#}");
            assert_eq!(instance["health"]["status"], "healthy", "{instance:#}");
            let address: std::net::Ipv4Addr = instance["resource_address"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(address.is_loopback(), "{address} is off loopback");
        }
    }
}

/// `occopus ARGS` whose stdout reader is gone before anything is written.
fn with_stdout_closed(occopus: &Occopus, args: &[&str]) -> std::process::Output {
    let mut child = occopus
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

#[test]
fn a_closed_stdout_ends_commands_quietly() {
    let occopus = Occopus::new(87);
    let [infra, nodes] = dummy_infra(&occopus);
    occopus.ok(&["build", &infra, "--nodes", &nodes, "-i", "piped"]);
    for args in [
        vec!["info", "-i", "piped"],
        vec!["info", "-i", "piped", "--json"],
        vec!["info"],
        vec!["local-cloud", "ls", "--json"],
        vec!["graph", &infra, "--nodes", &nodes],
        vec!["plugins", "list"],
    ] {
        let output = with_stdout_closed(&occopus, &args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{args:?}: {}: {stderr}",
            output.status
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    // The shell form, with a reader that takes one line and leaves.
    let output = wrapped(
        &["bash", "-c", "set -o pipefail; \"$0\" \"$@\" | head -1"],
        &occopus.command(&["info", "-i", "piped"]),
    )
    .output()
    .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("infrastructure piped"));
    assert!(!String::from_utf8_lossy(&output.stderr).contains("panicked"));
}

/// Every command under `ulimit -v 4194304` (4 GiB of address space).
#[test]
fn every_command_works_under_a_4_gib_address_space_limit() {
    let occopus = Occopus::new(88);
    let [infra, nodes] = dummy_infra(&occopus);
    let hello = example("hello/infra.yaml");
    // `occopus ARGS` whose address space is capped at 4 GiB.
    let under_limit = |args: &[&str]| {
        let mut command = occopus.command(args);
        // SAFETY: setrlimit is async-signal-safe and touches no memory of
        // the parent.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                let limit = rustix::process::Rlimit {
                    current: Some(4 << 30),
                    maximum: Some(4 << 30),
                };
                rustix::process::setrlimit(rustix::process::Resource::As, limit)
                    .map_err(std::io::Error::from)
            });
        }
        command
    };
    let limited = |args: &[&str]| {
        let output = under_limit(args).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?} under ulimit -v 4194304: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    limited(&["validate", &infra, "--nodes", &nodes]);
    limited(&["plugins", "list"]);
    limited(&["plugins", "inspect", "dummy"]);
    limited(&["build", &infra, "--nodes", &nodes, "-i", "limited"]);
    limited(&["info", "-i", "limited"]);
    limited(&["plan", &infra, "--nodes", &nodes, "-i", "limited"]);
    limited(&["scale", "-i", "limited", "-n", "a", "--change=+1"]);
    limited(&["maintain", "-i", "limited", "--once"]);
    limited(&["destroy", "-i", "limited"]);
    let id = limited(&["build", &hello]);
    limited(&["local-cloud", "ls"]);
    limited(&["destroy", "-i", id.trim()]);
    limited(&["import", &nodes]);
    limited(&["unlock", "-i", "limited"]);
    // The service starts, loads its plugins and answers.
    let mut serve = under_limit(&["serve", "--port", "0"]);
    let mut service = KillOnDrop(serve.stderr(Stdio::piped()).spawn().unwrap());
    let stderr = std::io::BufReader::new(service.0.stderr.take().unwrap());
    let address = std::io::BufRead::lines(stderr)
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("occopus REST service listening on http://")
                .map(str::to_owned)
        })
        .expect("the service under the limit never listened");
    let (host, port) = address.rsplit_once(':').unwrap();
    let answer = crate::common::http_get_path(host, port.parse().unwrap(), "/healthz");
    assert!(answer.ends_with("ok"), "{answer}");
    let answer = crate::common::http_get_path(host, port.parse().unwrap(), "/infrastructures");
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
}
