//! One writer per infrastructure, through the binary: every pair of commands
//! that change one infra (build, destroy, maintain, the REST service's jobs)
//! raced on one state database, each case five times, on the local cloud and
//! on the `dummy` cloud, with the state in a SQLite file and in PostgreSQL. Every run ends with exactly the target number of
//! instances (or none after a destroy), counted in the store and, for the
//! local cloud, in the cloud too (the dummy cloud keeps no inventory), and
//! the loser names the holder.
//!
//! The races are made deterministic by a gate: the nodes' health check asks
//! a URL on 127.0.0.1 that the test serves only once the second command has
//! had its turn, so the first holds the lease until then.

use crate::common::{Database, KillOnDrop, Occopus, created_tokens, free_port, http};
use std::io::{Read, Write};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

/// Instances every race builds.
const TARGET: usize = 6;
const RUNS: usize = 5;

/// Which cloud a race runs on.
#[derive(Clone, Copy, Debug)]
enum Cloud {
    Local,
    Dummy,
}

/// One cell of the matrix: an occopus on `cloud`, its state in a file or in
/// a fresh PostgreSQL database (dropped after it).
struct Cell {
    cloud: Cloud,
    occopus: Occopus,
    _database: Option<Database>,
}

/// The matrix a case runs on: each of `clouds` with each state database
/// (the local cloud's runs take `subnets`: with a file, with PostgreSQL).
fn matrix(name: &str, subnets: [u8; 2], clouds: &[Cloud]) -> impl Iterator<Item = Cell> {
    let name = name.replace('-', "_");
    let cells: Vec<(Cloud, u8, bool)> = [(subnets[0], false), (subnets[1], true)]
        .into_iter()
        .flat_map(|(subnet, postgres)| clouds.iter().map(move |c| (*c, subnet, postgres)))
        .collect();
    cells.into_iter().map(move |(cloud, subnet, postgres)| {
        let database = postgres.then(|| Database::new(&format!("leases_{name}")));
        let occopus = match &database {
            Some(database) => Occopus::on_postgres(subnet, database),
            None => Occopus::new(subnet),
        };
        Cell {
            cloud,
            occopus,
            _database: database,
        }
    })
}

/// Both clouds.
const CLOUDS: &[Cloud] = &[Cloud::Local, Cloud::Dummy];

/// A health check on 127.0.0.1:`port`: nothing listens there until the
/// test opens the gate.
struct Gate {
    port: u16,
}

impl Gate {
    fn closed() -> Gate {
        Gate { port: free_port() }
    }

    /// Serves 200 on the port from now on (a thread, for the test's life).
    fn open(&self) {
        let listener = std::net::TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut request = [0; 1024];
                let _ = stream.read(&mut request);
                let _ = stream.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
        });
    }
}

/// One infra of [`TARGET`] instances on `cloud`, its health check behind
/// `gate`: writes the files, returns the build arguments.
fn describe(occopus: &Occopus, cloud: Cloud, gate: &Gate) -> Vec<String> {
    let resource = match cloud {
        Cloud::Local => "{type: local}",
        Cloud::Dummy => "{type: dummy, create_latency: 0.05, boot_time: 0.2}",
    };
    let context = match cloud {
        Cloud::Local => {
            "\n    contextualisation:\n      type: cloudinit\n      context_template: |\n        #cloud-config\n        runcmd:\n          - exec sleep 600"
        }
        Cloud::Dummy => "",
    };
    let nodes = format!(
        "'node_def:worker':\n  - resource: {resource}{context}\n    health_check: {{ping: false, urls: ['http://127.0.0.1:{}/'], timeout: 120}}\n",
        gate.port
    );
    let infra = format!(
        "infra_name: race\nnodes:\n  - {{name: worker, type: worker, scaling: {{min: {TARGET}}}}}\n"
    );
    occopus.describe(&infra, &nodes).into()
}

fn build_args<'a>(files: &'a [String], infra_id: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["build", &files[0], "--nodes", &files[1], "-i", infra_id];
    args.extend_from_slice(extra);
    args
}

/// Starts a command in the background, its output captured.
fn spawn(occopus: &Occopus, args: &[&str]) -> KillOnDrop {
    KillOnDrop(
        occopus
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// Waits for a background command to end.
fn finish(mut child: KillOnDrop) -> Output {
    let process: &mut Child = &mut child.0;
    let mut stdout = String::new();
    let mut stderr = String::new();
    process
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    process
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = process.wait().unwrap();
    Output {
        status,
        stdout: stdout.into_bytes(),
        stderr: stderr.into_bytes(),
    }
}

fn succeeded(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The lease of `infra_id` as the store has it: (command, pid).
fn holder(occopus: &Occopus, infra_id: &str) -> Option<(String, u32)> {
    let lease = occopus.store().lease(infra_id).unwrap()?;
    Some((lease.holder.command, lease.holder.pid))
}

/// Waits until `command` holds the lease of `infra_id`; returns its pid.
fn wait_for_holder(occopus: &Occopus, infra_id: &str, command: &str) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((held_by, pid)) = holder(occopus, infra_id)
            && held_by == command
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "{command} never took the lease");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The second writer lost: exit code 5 (conflict), the holder named.
fn lost_to(output: &Output, command: &str, pid: u32) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(5), "{stderr}");
    let named = format!("is being changed by {command} (pid {pid} on host ");
    assert!(stderr.contains(&named), "does not name {named}: {stderr}");
    assert!(
        stderr.contains("--wait"),
        "does not say what to do: {stderr}"
    );
}

/// Instances of `infra_id` in the store (0 once it is gone).
fn in_store(occopus: &Occopus, infra_id: &str) -> usize {
    let output = occopus.run(&["info", "-i", infra_id, "--json"]);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("no infrastructure"), "{stderr}");
        return 0;
    }
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    crate::common::instances(&report, "worker").len()
}

/// Checks the end of a run: `expected` instances in the store and, on the
/// local cloud, in the cloud, and no instance ever created twice.
fn ends_with(occopus: &Occopus, cloud: Cloud, infra_id: &str, expected: usize) {
    assert_eq!(
        in_store(occopus, infra_id),
        expected,
        "{infra_id} in the store"
    );
    if let Cloud::Local = cloud {
        let nodes = occopus.local_cloud().list(Some(infra_id)).unwrap();
        assert_eq!(nodes.len(), expected, "{infra_id} in the local cloud");
        let twice: Vec<_> = created_tokens(occopus)
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .collect();
        assert!(twice.is_empty(), "created twice: {twice:?}");
    }
    assert_eq!(holder(occopus, infra_id), None, "a lease left behind");
}

/// A built infra (gate open) to race on.
fn built(occopus: &Occopus, cloud: Cloud, infra_id: &str) -> Vec<String> {
    let gate = Gate::closed();
    gate.open();
    let files = describe(occopus, cloud, &gate);
    occopus.ok(&build_args(&files, infra_id, &[]));
    files
}

/// Races the command `second` (its arguments for an infra id) against a
/// build held at the gate, five times on each cloud: without waiting it
/// loses, naming the build; with `--wait` it runs once the build is done.
/// The infra ends with `expected` instances.
fn against_a_build(
    subnets: [u8; 2],
    name: &str,
    second: impl Fn(&[String], &str) -> Vec<String>,
    expected: usize,
) {
    for Cell {
        cloud,
        occopus,
        _database,
    } in matrix(name, subnets, CLOUDS)
    {
        for run in 0..RUNS {
            let id = format!("{name}-{run}");
            let gate = Gate::closed();
            let files = describe(&occopus, cloud, &gate);
            let build = spawn(&occopus, &build_args(&files, &id, &[]));
            let pid = wait_for_holder(&occopus, &id, "occopus build");
            let mut args = second(&files, &id);
            let at_once: Vec<&str> = args.iter().map(String::as_str).collect();
            lost_to(&occopus.run(&at_once), "occopus build", pid);
            args.push("--wait=120".into());
            let waiting: Vec<&str> = args.iter().map(String::as_str).collect();
            let waiting = spawn(&occopus, &waiting);
            std::thread::sleep(Duration::from_millis(300));
            gate.open();
            succeeded(&finish(build), "the build");
            succeeded(&finish(waiting), &format!("{args:?}"));
            ends_with(&occopus, cloud, &id, expected);
        }
    }
}

fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

#[test]
fn two_builds_of_one_infra_create_it_once() {
    // The waiting one finds nothing to add.
    let build = |files: &[String], id: &str| owned(&build_args(files, id, &[]));
    against_a_build([71, 72], "two-builds", build, TARGET);
}

#[test]
fn maintain_during_a_build_waits_or_names_the_build() {
    let maintain = |_: &[String], id: &str| owned(&["maintain", "-i", id, "--once"]);
    against_a_build([73, 74], "build-maintain", maintain, TARGET);
}

#[test]
fn destroy_during_a_build_waits_for_it_and_leaves_nothing() {
    let destroy = |_: &[String], id: &str| owned(&["destroy", "-i", id]);
    against_a_build([77, 78], "destroy-build", destroy, 0);
}

#[test]
fn destroy_during_maintain_names_it_and_destroys_once_it_stops() {
    for Cell {
        cloud,
        occopus,
        _database,
    } in matrix("destroy-maintain", [75, 76], CLOUDS)
    {
        for run in 0..RUNS {
            let id = format!("destroy-maintain-{run}");
            built(&occopus, cloud, &id);
            let maintain = spawn(&occopus, &["maintain", "-i", &id, "-t", "0.2"]);
            let pid = wait_for_holder(&occopus, &id, "occopus maintain");
            let destroy = occopus.run(&["destroy", "-i", &id]);
            lost_to(&destroy, "occopus maintain", pid);
            assert_eq!(
                in_store(&occopus, &id),
                TARGET,
                "destroy refused, yet changed"
            );
            // A destroy that waits goes ahead once maintain is stopped.
            let waiting = spawn(&occopus, &["destroy", "-i", &id, "--wait=120"]);
            std::thread::sleep(Duration::from_millis(300));
            crate::common::signal(maintain.0.id(), rustix::process::Signal::INT);
            // An intended stop: exit 130, said without "error".
            let maintained = finish(maintain);
            let said = String::from_utf8_lossy(&maintained.stderr);
            assert_eq!(maintained.status.code(), Some(130), "{said}");
            assert!(said.contains("stopped; run maintain again"), "{said}");
            assert!(!said.contains("error"), "{said}");
            succeeded(&finish(waiting), "the waiting destroy");
            ends_with(&occopus, cloud, &id, 0);
        }
    }
}

/// `occopus serve` on a free port; killed when dropped.
fn serve(occopus: &Occopus) -> (KillOnDrop, String) {
    crate::common::serve(occopus.command(&["serve", "--port", "0", "--maintain-interval", "0.2"]))
}

#[test]
fn the_command_line_and_the_service_take_turns_on_one_state_database() {
    for Cell {
        cloud,
        occopus,
        _database,
    } in matrix("service", [79, 80], CLOUDS)
    {
        let (service, base) = serve(&occopus);
        for run in 0..RUNS {
            let gate = Gate::closed();
            let files = describe(&occopus, cloud, &gate);
            let body = |i: usize| std::fs::read_to_string(&files[i]).unwrap();
            http("POST", &format!("{base}/nodedefs"), Some(body(1)));
            let created = http("POST", &format!("{base}/infrastructures/"), Some(body(0)));
            let id = created["infraid"].as_str().unwrap().to_owned();
            let service_pid = service.0.id();
            let pid = wait_for_holder(&occopus, &id, "occopus serve (build job)");
            assert_eq!(pid, service_pid);
            lost_to(
                &occopus.run(&build_args(&files, &id, &[])),
                "occopus serve (build job)",
                pid,
            );
            lost_to(
                &occopus.run(&["destroy", "-i", &id]),
                "occopus serve (build job)",
                pid,
            );
            gate.open();
            // Built, the service maintains it, and still holds it.
            wait_for_holder(&occopus, &id, "occopus serve (maintain job)");
            assert_eq!(in_store(&occopus, &id), TARGET, "run {run}");
            lost_to(
                &occopus.run(&["maintain", "-i", &id, "--once"]),
                "occopus serve (maintain job)",
                pid,
            );
            http("DELETE", &format!("{base}/infrastructures/{id}"), None);
            let deadline = Instant::now() + Duration::from_secs(60);
            while in_store(&occopus, &id) > 0 || holder(&occopus, &id).is_some() {
                assert!(Instant::now() < deadline, "{id} never destroyed");
                std::thread::sleep(Duration::from_millis(100));
            }
            ends_with(&occopus, cloud, &id, 0);
        }
        drop(service);
    }
}

#[test]
fn a_killed_holder_is_taken_over_without_duplicates() {
    for cell in matrix("killed", [81, 117], &[Cloud::Local]) {
        killed_holder_taken_over(&cell.occopus);
    }
}

fn killed_holder_taken_over(occopus: &Occopus) {
    for run in 0..RUNS {
        let id = format!("killed-{run}");
        let gate = Gate::closed();
        let files = describe(occopus, Cloud::Local, &gate);
        let build = spawn(occopus, &build_args(&files, &id, &[]));
        let pid = wait_for_holder(occopus, &id, "occopus build");
        // Let it create some instances, then SIGKILL it: its lease stays.
        std::thread::sleep(Duration::from_millis(200 * run as u64));
        drop(build);
        assert_eq!(holder(occopus, &id).map(|(_, p)| p), Some(pid));
        // `unlock` without --force frees it, since its holder is dead here;
        // on odd runs the next build takes it over by itself.
        if run % 2 == 0 {
            let unlocked = occopus.run(&["unlock", "-i", &id]);
            succeeded(&unlocked, "unlock of a dead holder");
            assert!(
                String::from_utf8_lossy(&unlocked.stderr).contains("freed the lease"),
                "{}",
                String::from_utf8_lossy(&unlocked.stderr)
            );
        }
        gate.open();
        occopus.ok(&build_args(&files, &id, &[]));
        ends_with(occopus, Cloud::Local, &id, TARGET);
        occopus.ok(&["destroy", "-i", &id]);
        ends_with(occopus, Cloud::Local, &id, 0);
    }
}

#[test]
fn unlock_refuses_a_live_holder_unless_forced() {
    for cell in matrix("unlock", [82, 118], &[Cloud::Dummy]) {
        unlock_refuses_on(&cell.occopus);
    }
}

fn unlock_refuses_on(occopus: &Occopus) {
    let gate = Gate::closed();
    let files = describe(occopus, Cloud::Dummy, &gate);
    let build = spawn(occopus, &build_args(&files, "held", &[]));
    let pid = wait_for_holder(occopus, "held", "occopus build");
    let refused = occopus.run(&["unlock", "-i", "held"]);
    assert_eq!(refused.status.code(), Some(5));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("still running")
            && stderr.contains(&format!("pid {pid}"))
            && stderr.contains("--force"),
        "{stderr}"
    );
    let forced = occopus.run(&["unlock", "-i", "held", "--force"]);
    succeeded(&forced, "unlock --force");
    // The build that lost its lease stops instead of writing on.
    gate.open();
    let ended = finish(build);
    assert_eq!(ended.status.code(), Some(5), "{ended:?}");
    let stderr = String::from_utf8_lossy(&ended.stderr);
    assert!(stderr.contains("taken over or broken"), "{stderr}");
    occopus.ok(&build_args(&files, "held", &[]));
    ends_with(occopus, Cloud::Dummy, "held", TARGET);
}
