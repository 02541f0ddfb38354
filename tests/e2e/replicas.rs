//! Several `occopus serve` replicas on one PostgreSQL database (the test
//! cluster `scripts/test` starts): a 200-node build posted to replica A is
//! finished by B or C after A is SIGKILLed mid-build, exactly once, and the
//! survivors keep the infra alive (a killed node is healed) and destroy it
//! when any replica is asked. Five kill moments, from the first intent
//! recorded to the last instances booting.
//!
//! The replicas run on one host, so a dead holder is seen dead at once by
//! its pid; across hosts the same takeover waits for the lease to expire
//! (`engine.lease_ttl_secs`), which the store's lease tests cover.

use crate::common::{
    Database, KillOnDrop, Occopus, SLEEPER_NODE_DEFINITION, created_tokens, http, kill_group, serve,
};
use occopus::store::{InstanceRecord, InstanceState, StateStore};
use std::time::{Duration, Instant};

/// Web instances the build creates (dummy cloud).
const WEB: usize = 200;

/// When replica A is killed: once the store holds this many web instances
/// (their intents written, creates under way), or once this many are ready.
#[derive(Debug, Clone, Copy)]
enum Moment {
    Recorded(usize),
    Ready(usize),
}

const MOMENTS: [Moment; 5] = [
    Moment::Recorded(1),
    Moment::Recorded(80),
    Moment::Recorded(WEB),
    Moment::Ready(40),
    Moment::Ready(120),
];

const INFRA: &str = "infra_name: replicas
nodes:
  - {name: web, type: web, scaling: {min: 200, max: 200}}
  - {name: probe, type: sleeper}
";

/// `web` on the dummy cloud (64 creates at a time, 0.3 s each: the
/// instances get ready in four waves, so a kill at 120 ready is well before
/// the build's end); `probe` (of type [`SLEEPER_NODE_DEFINITION`]) a
/// local-cloud node whose death the maintenance must heal.
const WEB_NODES: &str = "'node_def:web':
  - resource: {type: dummy, create_latency: 0.3, boot_time: 1}
    health_check: {ping: false}
";

/// A replica: the process and its base URL.
struct Replica {
    process: KillOnDrop,
    base: String,
}

impl Replica {
    fn start(occopus: &Occopus) -> Replica {
        let (process, base) = serve(occopus.command(&[
            "serve",
            "--port",
            "0",
            "--maintain-interval",
            "0.3",
            "--claim-interval",
            "0.2",
        ]));
        Replica { process, base }
    }

    fn pid(&self) -> u32 {
        self.process.0.id()
    }
}

/// The infra's instances of `node` in the store.
fn of_node(store: &StateStore, infra_id: &str, node: &str) -> Vec<InstanceRecord> {
    store
        .instances(infra_id)
        .unwrap()
        .into_iter()
        .filter(|i| i.node_name == node)
        .collect()
}

fn ready(instances: &[InstanceRecord]) -> usize {
    instances
        .iter()
        .filter(|i| i.state == InstanceState::Ready)
        .count()
}

/// Polls `done` every 10 ms for up to `limit`; panics saying `what`.
fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The pid and command of the holder of the infra's lease.
fn holder(store: &StateStore, infra_id: &str) -> Option<(u32, String)> {
    let lease = store.lease(infra_id).unwrap()?;
    Some((lease.holder.pid, lease.holder.command))
}

#[test]
fn a_killed_replica_s_build_is_finished_once_by_the_others_and_kept_alive() {
    let database = Database::new("e2e_replicas");
    let occopus = Occopus::on_postgres(114, &database);
    // Opened once the replicas have created the tables (a store opened to
    // read only on a database without them reads an empty one).
    let mut store = None;
    for (run, moment) in MOMENTS.into_iter().enumerate() {
        let mut replicas: Vec<Replica> = (0..3).map(|_| Replica::start(&occopus)).collect();
        let store: &StateStore = store.get_or_insert_with(|| occopus.store());
        let a = &replicas[0];
        if run == 0 {
            let nodes = format!("{WEB_NODES}{SLEEPER_NODE_DEFINITION}");
            http("POST", &format!("{}/nodedefs", a.base), Some(nodes));
        }
        let created = http(
            "POST",
            &format!("{}/infrastructures/", a.base),
            Some(INFRA.into()),
        );
        let id = created["infraid"].as_str().unwrap().to_owned();

        // Kill A at the moment, while it holds the build's lease.
        wait_until(
            Duration::from_secs(120),
            "the kill moment never came",
            || {
                let web = of_node(store, &id, "web");
                match moment {
                    Moment::Recorded(n) => web.len() >= n,
                    Moment::Ready(n) => ready(&web) >= n,
                }
            },
        );
        // What the cloud had made by then (the dummy's cloud id carries the
        // time of its create: a second create would change it).
        let made: Vec<(String, String)> = of_node(store, &id, "web")
            .into_iter()
            .filter_map(|i| Some((i.id, i.cloud_id?)))
            .collect();
        // The replica doing the build: A, unless another claimed the fresh
        // request first (a claim pass may come before A's job took the
        // lease; the work is done once either way). That one is killed.
        let (builder, command) = holder(store, &id).expect("nobody holds the build");
        assert_eq!(
            command, "occopus serve (build job)",
            "run {run}: the build had ended at {moment:?}"
        );
        let a = replicas
            .iter()
            .position(|r| r.pid() == builder)
            .expect("the build's holder is no replica");
        let killed = Instant::now();
        drop(replicas.remove(a));

        // B or C takes the infra over and finishes the build.
        let survivors: Vec<u32> = replicas.iter().map(Replica::pid).collect();
        wait_until(
            Duration::from_secs(60),
            "nobody took the build over",
            || holder(store, &id).is_some_and(|(pid, _)| survivors.contains(&pid)),
        );
        let took_over = killed.elapsed();
        wait_until(
            Duration::from_secs(120),
            "the build was not finished",
            || {
                let web = of_node(store, &id, "web");
                ready(&web) == WEB && ready(&of_node(store, &id, "probe")) == 1
            },
        );
        // Then maintained, by one of them.
        wait_until(Duration::from_secs(60), "nobody maintains it", || {
            holder(store, &id).is_some_and(|(pid, command)| {
                survivors.contains(&pid) && command == "occopus serve (maintain job)"
            })
        });
        let (maintainer, _) = holder(store, &id).unwrap();
        eprintln!(
            "run {run}: A killed at {moment:?}; taken over after {:.0} ms, built {:.1} s after the kill",
            took_over.as_secs_f64() * 1000.0,
            killed.elapsed().as_secs_f64()
        );

        // Exactly 200, each created once: one intent per slot, what the
        // cloud had made before the kill kept (not made again), none
        // destroyed; the local cloud created the probe once.
        let web = of_node(store, &id, "web");
        assert_eq!(web.len(), WEB, "run {run}");
        let mut seqs: Vec<u32> = web.iter().map(|i| i.seq).collect();
        seqs.sort_unstable();
        seqs.dedup();
        assert_eq!(seqs.len(), WEB, "run {run}: a slot created twice");
        for (instance, cloud_id) in &made {
            let now = web.iter().find(|i| &i.id == instance);
            assert_eq!(
                now.and_then(|i| i.cloud_id.as_ref()),
                Some(cloud_id),
                "run {run}: {instance} made again"
            );
        }
        let events = store.events(&id).unwrap();
        let destroyed: Vec<_> = events
            .iter()
            .filter(|e| e.message.ends_with(": destroyed"))
            .collect();
        assert!(destroyed.is_empty(), "run {run}: {destroyed:?}");
        let twice: Vec<_> = created_tokens(&occopus)
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .collect();
        assert!(twice.is_empty(), "run {run}: created twice: {twice:?}");

        // Any replica answers for it.
        for replica in &replicas {
            let report = http(
                "GET",
                &format!("{}/infrastructures/{id}", replica.base),
                None,
            );
            assert_eq!(crate::common::instances(&report, "web").len(), WEB);
        }

        // Maintenance goes on after the kill: the probe's node dies, it is
        // replaced.
        let probe = of_node(store, &id, "probe").remove(0);
        let node = occopus
            .local_cloud()
            .list(Some(&id))
            .unwrap()
            .into_iter()
            .find(|n| n.record.client_token == probe.id)
            .unwrap();
        kill_group(node.record.pid.unwrap());
        wait_until(Duration::from_secs(60), "the probe was not healed", || {
            let now = of_node(store, &id, "probe");
            now.len() == 1 && now[0].id != probe.id && now[0].state == InstanceState::Ready
        });

        // A delete reaching the replica that does not hold it is done.
        let other = replicas.iter().find(|r| r.pid() != maintainer).unwrap();
        http(
            "DELETE",
            &format!("{}/infrastructures/{id}", other.base),
            None,
        );
        wait_until(
            Duration::from_secs(60),
            "the infra was not destroyed",
            || {
                store.infra(&id).unwrap().is_none()
                    && store.service_infra(&id).unwrap().is_none()
                    && holder(store, &id).is_none()
            },
        );
        assert!(occopus.local_cloud().list(Some(&id)).unwrap().is_empty());
    }
}
