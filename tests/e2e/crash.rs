//! The crash test: `occopus build` of a 50-node infrastructure on the local
//! cloud is killed with SIGKILL at pseudo-random moments (a fixed seed, so a
//! failure can be replayed), then built again and destroyed. Every run must
//! end with no instance left and no instance id ever created twice.

use crate::common::{Occopus, created_tokens};

const INFRA: &str = "infra_name: crash
nodes:
  - &BASE {name: base, type: sleeper, scaling: {min: 10}}
  - &LEFT {name: left, type: sleeper, scaling: {min: 15}}
  - &RIGHT {name: right, type: sleeper, scaling: {min: 15}}
  - &TOP {name: top, type: sleeper, scaling: {min: 10}}
dependencies:
  - [*LEFT, *BASE]
  - [*RIGHT, *BASE]
  - [*TOP, *LEFT]
  - [*TOP, *RIGHT]
";

const NODES: &str = crate::common::SLEEPER_NODE_DEFINITION;

#[test]
fn killing_build_at_any_moment_loses_nothing_and_duplicates_nothing() {
    let occopus = Occopus::new(4);
    let dir = occopus.dir.path();
    std::fs::write(dir.join("infra.yaml"), INFRA).unwrap();
    std::fs::write(dir.join("nodes.yaml"), NODES).unwrap();
    let infra = dir.join("infra.yaml").display().to_string();
    let nodes = dir.join("nodes.yaml").display().to_string();

    // An uninterrupted build takes this long: kill moments are spread over it.
    let started = std::time::Instant::now();
    occopus.ok(&["build", &infra, "--nodes", &nodes, "-i", "calibrate"]);
    let full = started.elapsed();
    occopus.ok(&["destroy", "-i", "calibrate"]);

    let mut seed: u64 = 0x5eed;
    for run in 0..20 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let fraction = (seed >> 33) as f64 / (1u64 << 31) as f64;
        let kill_after = full.mul_f64(fraction * 1.1);
        let infra_id = format!("crash-{run}");
        let mut child = occopus
            .command(&["build", &infra, "--nodes", &nodes, "-i", &infra_id])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(kill_after);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();

        let resumed = occopus.run(&["build", &infra, "--nodes", &nodes, "-i", &infra_id]);
        assert!(
            resumed.status.success(),
            "run {run} (killed after {kill_after:?}): resume failed:\n{}",
            String::from_utf8_lossy(&resumed.stderr)
        );
        let report = occopus.report(&infra_id);
        let ready: usize = ["base", "left", "right", "top"]
            .iter()
            .map(|n| report[n]["scaling"]["actual"].as_u64().unwrap() as usize)
            .sum();
        assert_eq!(ready, 50, "run {run}: {report:#}");
        assert_eq!(
            occopus.local_cloud().list(Some(&infra_id)).unwrap().len(),
            50,
            "run {run}"
        );

        occopus.ok(&["destroy", "-i", &infra_id]);
        assert!(
            occopus.local_cloud().list(None).unwrap().is_empty(),
            "run {run}: nodes left"
        );
        let survivors = crate::common::processes_naming(&dir.join("local-cloud"));
        assert!(
            survivors.is_empty(),
            "run {run} (killed after {kill_after:?}): node processes left running: {survivors:?}"
        );
        let duplicates: Vec<_> = created_tokens(&occopus)
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .collect();
        assert!(
            duplicates.is_empty(),
            "run {run} (killed after {kill_after:?}): created twice: {duplicates:?}"
        );
    }
    // Nothing at all is left: no process, no node directory, no record.
    assert_eq!(
        std::fs::read_dir(dir.join("local-cloud/nodes"))
            .unwrap()
            .count(),
        0
    );
    assert!(
        occopus
            .ok(&["info", "--json"])
            .contains("\"infrastructures\": []")
    );
}
