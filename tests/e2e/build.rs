//! `occopus build / info / destroy` of the examples on the local cloud,
//! through the binary, with real health checks and real HTTP between nodes.

use crate::common::{Occopus, address, example, http_get_path, instances};

#[test]
fn hello_builds_reports_and_destroys() {
    let occopus = Occopus::new(1);
    let output = occopus.run(&["build", &example("hello/infra.yaml")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let infra_id = String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .unwrap()
        .to_string();
    // Every `ready` progress line names the instance's address, the last
    // ones (printed as the build ends) too.
    let ready: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with('[') && l.split_whitespace().nth(4) == Some("ready"))
        .collect();
    assert_eq!(ready.len(), 2, "{stderr}");
    assert!(
        ready.iter().all(|l| l
            .split_whitespace()
            .nth(5)
            .is_some_and(|a| a.starts_with("127.80.1."))),
        "{stderr}"
    );

    let report = occopus.report(&infra_id);
    for node in ["web", "client"] {
        let all = instances(&report, node);
        assert_eq!(all.len(), 1, "{report:#}");
        assert_eq!(all[0]["state"], "ready");
        assert_eq!(report[node]["scaling"]["actual"], 1);
    }
    // The client fetched the page from the web node's address (getip) when it booted.
    let client = address(&instances(&report, "client")[0]);
    let web = address(&instances(&report, "web")[0]);
    assert!(web.starts_with("127.80.1."), "{web}");
    let page = http_get_path(&client, 8080, "/from-web.html");
    assert!(page.contains("Hello from occopus: I am web"), "{page}");
    let listed = occopus.local_cloud().list(Some(&infra_id)).unwrap();
    assert_eq!(listed.len(), 2);

    // The README's scale command, as written, then a pass applies it.
    occopus.ok(&["scale", "-i", &infra_id, "-n", "web", "-c", "+1"]);
    occopus.ok(&["maintain", "-i", &infra_id, "--once"]);
    let report = occopus.report(&infra_id);
    assert_eq!(report["web"]["scaling"]["actual"], 2, "{report:#}");

    let table = occopus.ok(&["info"]);
    assert!(
        table.contains(&infra_id) && table.contains("hello") && table.contains("ready"),
        "{table}"
    );

    occopus.ok(&["destroy", "-i", &infra_id]);
    assert!(occopus.local_cloud().list(None).unwrap().is_empty());
    let nodes_dir = occopus.dir.path().join("local-cloud/nodes");
    assert_eq!(std::fs::read_dir(nodes_dir).unwrap().count(), 0);
    let gone = occopus.run(&["info", "-i", &infra_id]);
    assert_eq!(
        gone.status.code(),
        Some(6),
        "no such infrastructure: {gone:?}"
    );
    assert!(String::from_utf8_lossy(&gone.stderr).contains("no infrastructure"));
}

#[test]
fn three_tier_balances_over_three_apps_that_read_the_database() {
    let occopus = Occopus::new(2);
    let stdout = occopus.ok(&["build", &example("three-tier/infra.yaml"), "-i", "tiers"]);
    assert_eq!(stdout.trim(), "tiers");
    let report = occopus.report("tiers");
    assert_eq!(instances(&report, "app").len(), 3);
    assert_eq!(report["app"]["scaling"]["min"], 3);
    assert_eq!(report["app"]["scaling"]["max"], 6);
    let backends = |count: usize| {
        let lb = address(&instances(&occopus.report("tiers"), "lb")[0]);
        let mut backends = std::collections::BTreeSet::new();
        for _ in 0..count {
            let answer = http_get_path(&lb, 8080, "/");
            assert!(answer.contains("\"records\": 3"), "{answer}");
            let backend = answer
                .lines()
                .find_map(|l| l.strip_prefix("x-backend: "))
                .unwrap();
            backends.insert(backend.trim().to_string());
        }
        backends
    };
    let three = backends(3);
    assert_eq!(three.len(), 3, "requests went to {three:?}");

    // A fourth app: the balancer's list is out of date, the plan says so, and
    // (`reconfigure: replace`) the next pass replaces the balancer with one
    // that spreads requests over the four.
    occopus.ok(&["scale", "-i", "tiers", "-n", "app", "-c", "+1"]);
    occopus.ok(&["maintain", "-i", "tiers", "--once"]);
    let plan = occopus.ok(&["plan", &example("three-tier/infra.yaml"), "-i", "tiers"]);
    assert!(
        plan.contains("its templates read the addresses of `app`, which changed since it was made (reconfigure: replace) (rolling)"),
        "{plan}"
    );
    occopus.ok(&["maintain", "-i", "tiers", "--once"]);
    let four = backends(4);
    assert_eq!(four.len(), 4, "requests went to {four:?}");
    occopus.ok(&["destroy", "-i", "tiers"]);
    assert!(occopus.local_cloud().list(None).unwrap().is_empty());
}

#[test]
fn a_failing_node_stops_the_build_with_a_summary_and_rollback_cleans_up() {
    let occopus = Occopus::new(3);
    let dir = occopus.dir.path();
    std::fs::write(
        dir.join("infra.yaml"),
        "infra_name: broken\nnodes:\n  - &A {name: good, type: good}\n  - &B {name: bad, type: bad}\n  - &C {name: after, type: good}\ndependencies:\n  - [*C, *B]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("nodes.yaml"),
        "'node_def:good':\n  - resource: {type: local}\n    contextualisation: {type: cloudinit, context_template: \"#cloud-config\\nruncmd:\\n  - exec sleep 600\\n\"}\n    health_check: {ping: false}\n\
         'node_def:bad':\n  - resource: {type: local}\n    contextualisation: {type: cloudinit, context_template: \"#cloud-config\\nbootcmd:\\n  - exit 3\\n\"}\n    health_check: {ping: false}\n",
    )
    .unwrap();
    let infra = dir.join("infra.yaml").display().to_string();
    let nodes = dir.join("nodes.yaml").display().to_string();
    let output = occopus.run(&["build", &infra, "--nodes", &nodes, "-i", "broken"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("build failed: 1 of 3 instances ready; failed: bad"),
        "{stderr}"
    );
    assert!(stderr.contains("occopus destroy -i broken"), "{stderr}");
    let report = occopus.report("broken");
    assert_eq!(instances(&report, "bad")[0]["state"], "failed");
    assert!(
        instances(&report, "after").is_empty(),
        "a dependent of a failed node is never created"
    );

    // Resuming replaces the failed instance (and fails again); --rollback
    // then destroys what that run created.
    let rolling_back =
        |id: &str| occopus.run(&["build", &infra, "--nodes", &nodes, "-i", id, "--rollback"]);
    let output = rolling_back("broken");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("destroyed (--rollback)"));
    let left: Vec<String> = occopus
        .local_cloud()
        .list(None)
        .unwrap()
        .into_iter()
        .map(|n| n.record.node_name)
        .collect();
    assert_eq!(left, ["good"], "the instance from the first run stays");
    occopus.ok(&["destroy", "-i", "broken"]);
    assert!(occopus.local_cloud().list(None).unwrap().is_empty());

    // A fresh build rolled back: the final table shows what it destroyed as
    // destroyed, not as the phase it had reached.
    let output = rolling_back("rolled");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let good = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("good ") && l.contains("good-1-"))
        .unwrap_or_else(|| panic!("no row for good: {stderr}"));
    assert!(
        good.contains(" destroyed ") && good.ends_with("destroyed by --rollback"),
        "{good}"
    );
    assert!(occopus.local_cloud().list(None).unwrap().is_empty());
}

#[test]
fn ctrl_c_stops_gracefully_and_the_build_resumes() {
    stops_gracefully_and_the_build_resumes(5, rustix::process::Signal::INT, 130);
}

/// What systemd, `docker stop` and a CI's cancellation send.
#[test]
fn sigterm_stops_gracefully_and_the_build_resumes() {
    stops_gracefully_and_the_build_resumes(120, rustix::process::Signal::TERM, 143);
}

/// The terminal the build ran in went away.
#[test]
fn sighup_stops_gracefully_and_the_build_resumes() {
    stops_gracefully_and_the_build_resumes(121, rustix::process::Signal::HUP, 129);
}

/// Sends `signal` to a build once its first instance exists: the build
/// stops gracefully with `code` (128 + the signal's number), the instance
/// under way recorded and nothing new started; building again resumes it.
fn stops_gracefully_and_the_build_resumes(subnet: u8, signal: rustix::process::Signal, code: i32) {
    let occopus = Occopus::new(subnet);
    let dir = occopus.dir.path();
    std::fs::write(
        dir.join("infra.yaml"),
        "infra_name: slow\nnodes:\n  - &A {name: slow, type: slow}\n  - &B {name: after, type: slow}\ndependencies:\n  - [*B, *A]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("nodes.yaml"),
        "'node_def:slow':\n  - resource: {type: local}\n    contextualisation: {type: cloudinit, context_template: \"#cloud-config\\nbootcmd:\\n  - sleep 2\\nruncmd:\\n  - exec sleep 600\\n\"}\n    health_check: {ping: false}\n",
    )
    .unwrap();
    let infra = dir.join("infra.yaml").display().to_string();
    let nodes = dir.join("nodes.yaml").display().to_string();
    let child = occopus
        .command(&["build", &infra, "--nodes", &nodes, "-i", "slow"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the first instance exists (it then boots for 2 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while occopus.local_cloud().list(None).unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the build never created a node"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    rustix::process::kill_process(rustix::process::Pid::from_child(&child), signal).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("build stopped: 0 of 2 instances ready"),
        "{stderr}"
    );
    assert!(!stderr.contains("error: build stopped"), "{stderr}");
    let report = occopus.report("slow");
    assert_eq!(
        instances(&report, "slow").len(),
        1,
        "the instance under way is recorded"
    );
    assert!(
        instances(&report, "after").is_empty(),
        "nothing new starts after the signal"
    );

    occopus.ok(&["build", &infra, "--nodes", &nodes, "-i", "slow"]);
    let report = occopus.report("slow");
    assert_eq!(report["slow"]["scaling"]["actual"], 1);
    assert_eq!(report["after"]["scaling"]["actual"], 1);
    assert_eq!(
        occopus.local_cloud().list(None).unwrap().len(),
        2,
        "the first instance was followed, not re-created"
    );
    occopus.ok(&["destroy", "-i", "slow"]);
}

/// A local node whose only command fails at once (no health checks) fails
/// the build: it is never reported ready first.
#[test]
fn a_service_that_fails_at_once_is_never_ready() {
    let occopus = Occopus::new(96);
    let [infra, nodes] = occopus.describe(
        "infra_name: quick\nnodes:\n  - {name: q, type: quick}\n",
        "'node_def:quick':\n  - resource: {type: local}\n    contextualisation: {type: cloudinit, context_template: \"#cloud-config\\nruncmd:\\n  - exit 3\\n\"}\n    health_check: {ping: false}\n",
    );
    let output = occopus.run(&["build", &infra, "--nodes", &nodes, "-i", "quick"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    // `[   0.025s] q q-1-ID PHASE ...`: never `ready`.
    assert!(
        !stderr
            .lines()
            .any(|l| l.starts_with('[') && l.split_whitespace().nth(4) == Some("ready")),
        "{stderr}"
    );
    assert!(
        stderr.contains("the node's service (runcmd `sh -c exit 3`) exited with code 3"),
        "{stderr}"
    );
    occopus.ok(&["destroy", "-i", "quick"]);
}

/// A `puppet_solo` node's templates read `puppet.modules`, `.manifests` and
/// `.attributes` made of its rendered config-management section, in the
/// text Occopus makes (Python's `str()` of each item, space-joined), which
/// the puppet-solo-wordpress tutorial's cloud-init turns into Hiera data.
#[test]
fn puppet_solo_names_reach_the_templates_rendered() {
    let occopus = Occopus::new(108);
    let dir = occopus.dir.path();
    std::fs::write(
        dir.join("infra.yaml"),
        "infra_name: puppet\nnodes:\n  - &D {name: db, type: plain}\n  \
         - &W {name: wp, type: wp, variables: {user: wp, pass: \"it's\"}}\ndependencies:\n  - [*W, *D]\n",
    )
    .unwrap();
    let plain = "\"#cloud-config\\nruncmd:\\n  - exec sleep 600\\n\"";
    // As the tutorial writes them: block scalars (the attributes hold quotes).
    let wp = "\"#cloud-config\\nwrite_files:\\n  - path: /puppet/modules\\n    content: |\\n      {{puppet.modules}}\\n  \
              - path: /puppet/attributes\\n    content: |\\n      {{puppet.attributes}}\\nruncmd:\\n  - exec sleep 600\\n\"";
    std::fs::write(
        dir.join("nodes.yaml"),
        format!(
            "'node_def:plain':\n  - resource: {{type: local}}\n    contextualisation: {{type: cloudinit, context_template: {plain}}}\n    health_check: {{ping: false}}\n\
             'node_def:wp':\n  - resource: {{type: local}}\n    contextualisation: {{type: cloudinit, context_template: {wp}}}\n    health_check: {{ping: false}}\n    \
             config_management:\n      type: puppet_solo\n      manifests: [https://example.org/wordpress-init.pp]\n      \
             modules: [example42-apache, hunner-wordpress]\n      attributes:\n        - dbuser: \"{{{{ variables.user }}}}\"\n        \
             - dbpass: \"{{{{ variables.pass }}}}\"\n        - mysqlhost: \"{{{{getip('db')}}}}\"\n"
        ),
    )
    .unwrap();
    let infra = dir.join("infra.yaml").display().to_string();
    let nodes = dir.join("nodes.yaml").display().to_string();
    occopus.ok(&["build", &infra, "--nodes", &nodes, "-i", "puppet"]);
    let report = occopus.report("puppet");
    let db = address(&instances(&report, "db")[0]);
    let wp = instances(&report, "wp")[0]["cloud_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let written = |file: &str| {
        std::fs::read_to_string(
            dir.join("local-cloud/nodes")
                .join(&wp)
                .join("puppet")
                .join(file),
        )
        .unwrap()
    };
    assert_eq!(
        written("modules").trim_end(),
        "example42-apache hunner-wordpress"
    );
    assert_eq!(
        written("attributes").trim_end(),
        format!("{{'dbuser': 'wp'}} {{'dbpass': \"it's\"}} {{'mysqlhost': '{db}'}}")
    );
    occopus.ok(&["destroy", "-i", "puppet"]);
}
