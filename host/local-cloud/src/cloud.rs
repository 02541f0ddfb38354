//! The local cloud itself: creates, observes and destroys local nodes.
//!
//! A node is a process group led by its supervisor (the settings' runner,
//! `occopus local-cloud boot-node` for the binary), started in its own
//! session so that it outlives the process
//! that created it. Its record (tags, address, pid) is in the SQLite store,
//! its working directory is `ROOT/nodes/ID` and its control files (user-data,
//! state, log) are in `ROOT/control/ID`, out of its commands' way.

use crate::error::LocalCloudError;
use crate::node::{BootState, ControlFiles};
use crate::records::{NodeRecord, NodeRecords, Reservation};
use crate::settings::{LocalCloudSettings, parse_range};
use occopus_process as procfs;
use occopus_types::now_ms;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// How long a node may go without a recorded supervisor before it counts as
/// failed (a crash between recording and starting it).
const START_GRACE: Duration = Duration::from_secs(30);
/// How long destroy waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// How long a starting supervisor may take to take its node.
const SUPERVISOR_START: Duration = Duration::from_secs(10);

/// What a node is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Booting: `bootcmd` and `write_files`.
    Pending,
    /// `runcmd` started and the supervisor is alive.
    Running,
    /// A boot step failed, or the node's process ended.
    Failed,
    /// Destroyed.
    Shutdown,
}

/// A node's record and its observed state.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NodeView {
    /// The record.
    #[serde(flatten)]
    pub record: NodeRecord,
    /// The state now.
    pub state: NodeState,
    /// Why it failed, if it did.
    pub detail: Option<String>,
}

/// What creating a node needs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CreateNode {
    /// The idempotency key (the occopus instance id).
    pub client_token: String,
    /// Its cloud-init user-data (may be empty).
    #[serde(default)]
    pub user_data: String,
    /// Tags.
    pub infra_id: String,
    pub infra_name: String,
    pub node_name: String,
}

/// The local cloud.
pub struct LocalCloud {
    settings: LocalCloudSettings,
    records: NodeRecords,
    range: (u32, u32),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LocalCloudError {
    let what = what.into();
    move |source| LocalCloudError::Io { what, source }
}

impl LocalCloud {
    /// Opens the local cloud under `settings.root`, creating it if needed.
    pub fn open(settings: LocalCloudSettings) -> Result<Self, LocalCloudError> {
        let range = parse_range(&settings.address_range)?;
        std::fs::create_dir_all(settings.root.join("nodes"))
            .and_then(|()| std::fs::create_dir_all(settings.root.join("control")))
            .map_err(io(format!("create {}", settings.root.display())))?;
        let path = settings.root.join("local-cloud.db");
        let records =
            NodeRecords::open(&path).map_err(|source| LocalCloudError::Open { path, source })?;
        Ok(LocalCloud {
            settings,
            records,
            range,
        })
    }

    fn store_error(&self, source: rusqlite::Error) -> LocalCloudError {
        LocalCloudError::Store {
            path: self.settings.root.join("local-cloud.db"),
            source,
        }
    }

    fn node_dir(&self, id: &str) -> PathBuf {
        self.settings.root.join("nodes").join(id)
    }

    fn control(&self, id: &str) -> ControlFiles {
        ControlFiles::new(self.settings.root.join("control").join(id))
    }

    /// Creates a node, or returns the one created before with the same token.
    pub fn create(&self, request: &CreateNode) -> Result<NodeView, LocalCloudError> {
        let (first, last) = self.range;
        let addresses = (first..=last)
            .map(Ipv4Addr::from)
            .filter(|a| !matches!(a.octets()[3], 0 | 255))
            .map(|a| a.to_string());
        let reservation = self
            .records
            .reserve(
                &request.client_token,
                (&request.infra_id, &request.infra_name, &request.node_name),
                addresses,
                self.settings.max_nodes,
                now_ms(),
            )
            .map_err(|e| self.store_error(e))?;
        let record = match reservation {
            // Its creator died between reserving and recording the pid:
            // adopt the supervisor it started, else finish the job.
            Reservation::Existing(record)
                if record.pid.is_none()
                    && self
                        .records
                        .claim_unstarted(&record.id)
                        .map_err(|e| self.store_error(e))? =>
            {
                if let Some(pid) = self.control(&record.id).supervisor() {
                    return self.record_started(record, pid);
                }
                record
            }
            Reservation::Existing(record) => return Ok(self.observe(record)),
            Reservation::NoAddress => {
                return Err(LocalCloudError::AddressesExhausted {
                    range: self.settings.address_range.clone(),
                });
            }
            Reservation::Full => {
                return Err(LocalCloudError::TooManyNodes {
                    max: self.settings.max_nodes,
                });
            }
            Reservation::New(record) => record,
        };
        match self.start(&record, &request.user_data) {
            Ok(pid) => self.record_started(record, pid),
            Err(error) => {
                self.clean(&record.id);
                self.records
                    .remove(&record.id)
                    .map_err(|e| self.store_error(e))?;
                Err(error)
            }
        }
    }

    /// Records the pid of a node's supervisor.
    fn record_started(&self, record: NodeRecord, pid: i32) -> Result<NodeView, LocalCloudError> {
        self.records
            .set_pid(&record.id, pid)
            .map_err(|e| self.store_error(e))?;
        Ok(self.observe(NodeRecord {
            pid: Some(pid),
            ..record
        }))
    }

    /// Writes the node's files and starts its supervisor in a new session;
    /// returns the pid of the node's supervisor once it holds the node (the
    /// one started here, or one an earlier, interrupted create started).
    fn start(&self, record: &NodeRecord, user_data: &str) -> Result<i32, LocalCloudError> {
        let node_dir = self.node_dir(&record.id);
        let control = self.control(&record.id);
        std::fs::create_dir_all(&node_dir).map_err(io("create the node's directory"))?;
        std::fs::create_dir_all(control.dir()).map_err(io("create the node's control files"))?;
        std::fs::write(control.user_data(), user_data).map_err(io("write the user-data"))?;
        let log = std::fs::File::create(control.log()).map_err(io("create the node's log"))?;
        let log_err = log.try_clone().map_err(io("open the node's log"))?;
        let runner = &self.settings.runner;
        let mut child = std::process::Command::new(&runner.program)
            .args(&runner.args)
            .arg("--control")
            .arg(control.dir())
            .arg("--dir")
            .arg(&node_dir)
            .arg("--address")
            .arg(&record.address)
            .current_dir(&node_dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .spawn()
            .map_err(io(format!(
                "start the node's supervisor {}",
                runner.program.display()
            )))?;
        let deadline = Instant::now() + SUPERVISOR_START;
        let child_pid = i32::try_from(child.id()).ok();
        let supervisor = loop {
            // Ours took the node (it records its pid once it holds the lock).
            // No lock probe while it may still be trying to take the lock: a
            // probe holds the lock shared for a moment and would make it fail.
            if let Some(pid) = child_pid
                && control.recorded_supervisor() == Some(pid)
            {
                break Ok(pid);
            }
            if let Ok(Some(status)) = child.try_wait() {
                // It ended, and a supervisor took the node: this one (a boot
                // step failed at once: its recorded state says why), or one an
                // interrupted create started, which this one left it to.
                if let Some(pid) = control.recorded_supervisor() {
                    break Ok(pid);
                }
                // Ended without taking the node, and no other supervisor holds
                // it (one that does is about to record its pid).
                if !control.is_taken() {
                    break Err(LocalCloudError::Io {
                        what: format!("start the node's supervisor ({status}; see its log)"),
                        source: std::io::Error::other("it exited at once"),
                    });
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                break Err(LocalCloudError::Io {
                    what: "start the node's supervisor".into(),
                    source: std::io::Error::other(format!(
                        "it did not take the node within {SUPERVISOR_START:?}"
                    )),
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        // Reap it when it ends, so that it never lingers as a zombie that
        // would look alive.
        std::thread::spawn(move || child.wait());
        supervisor
    }

    /// A node's record with its state now; a destroyed node is `shutdown`
    /// (with only its id and tags left).
    pub fn status(&self, id: &str) -> Result<NodeView, LocalCloudError> {
        if let Some(record) = self.records.get(id).map_err(|e| self.store_error(e))? {
            return Ok(self.observe(record));
        }
        if self
            .records
            .was_destroyed(id)
            .map_err(|e| self.store_error(e))?
        {
            return Ok(NodeView {
                record: NodeRecord {
                    id: id.to_owned(),
                    client_token: String::new(),
                    infra_id: String::new(),
                    infra_name: String::new(),
                    node_name: String::new(),
                    address: String::new(),
                    pid: None,
                    created_ms: 0,
                },
                state: NodeState::Shutdown,
                detail: Some("destroyed".into()),
            });
        }
        Err(LocalCloudError::NotFound(id.to_owned()))
    }

    /// Every node, or those tagged with one infra id.
    pub fn list(&self, infra_id: Option<&str>) -> Result<Vec<NodeView>, LocalCloudError> {
        let records = self
            .records
            .list(infra_id)
            .map_err(|e| self.store_error(e))?;
        Ok(records.into_iter().map(|r| self.observe(r)).collect())
    }

    /// A node's output so far.
    pub fn logs(&self, id: &str) -> Result<String, LocalCloudError> {
        if self
            .records
            .get(id)
            .map_err(|e| self.store_error(e))?
            .is_none()
        {
            return Err(LocalCloudError::NotFound(id.to_owned()));
        }
        let bytes = std::fs::read(self.control(id).log()).map_err(io("read the node's log"))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn observe(&self, record: NodeRecord) -> NodeView {
        let control = self.control(&record.id);
        // A create interrupted before it recorded the pid leaves a
        // supervisor that only the lock knows.
        let pid = record.pid.or_else(|| control.supervisor());
        let alive = pid.is_some_and(|pid| supervisor_alive(pid, control.dir()));
        let starting = now_ms() - record.created_ms < START_GRACE.as_millis() as i64;
        let (state, detail) = match (pid, control.state(), alive) {
            (_, Some(BootState::Failed(why)), _) => (NodeState::Failed, Some(why)),
            // Not recorded yet, or forked but not yet running `boot-node` (its
            // command line is still its parent's) and so not yet writing state.
            (None, _, _) | (Some(_), None, false) if starting => (NodeState::Pending, None),
            (None, _, _) => (
                NodeState::Failed,
                Some("its process was never started".into()),
            ),
            (Some(_), _, false) => (NodeState::Failed, Some("its process ended".into())),
            (Some(_), Some(BootState::Running), true) => (NodeState::Running, None),
            (Some(_), _, true) => (NodeState::Pending, None),
        };
        NodeView {
            record,
            state,
            detail,
        }
    }

    /// Destroys a node: its whole process group, its directory, its record.
    /// A node that does not exist is already destroyed.
    pub fn destroy(&self, id: &str) -> Result<(), LocalCloudError> {
        let Some(record) = self.records.get(id).map_err(|e| self.store_error(e))? else {
            return Ok(());
        };
        // The recorded supervisor, and one a create interrupted before it
        // recorded the pid may have started.
        let control = self.control(id);
        let pids = record.pid.into_iter().chain(control.supervisor());
        for pid in pids.collect::<std::collections::BTreeSet<_>>() {
            stop_group(pid, &self.node_dir(id), control.dir());
        }
        self.clean(id);
        self.records
            .mark_destroyed(id, now_ms())
            .map_err(|e| self.store_error(e))
    }

    fn clean(&self, id: &str) {
        for dir in [self.node_dir(id), self.control(id).dir().to_owned()] {
            if let Err(e) = std::fs::remove_dir_all(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a node's files");
            }
        }
    }
}

/// Whether `pid` is this node's supervisor (not a reused pid).
fn supervisor_alive(pid: i32, control_dir: &Path) -> bool {
    procfs::stat(pid).is_some_and(|p| !p.is_zombie())
        && procfs::command_line_names(pid, control_dir)
}

/// Whether any process of group `pgid` is one of this node's (its supervisor,
/// or a command running in the node's directory).
fn group_is_ours(pgid: i32, node_dir: &Path, control_dir: &Path) -> bool {
    procfs::processes().into_iter().any(|p| {
        p.group == pgid
            && (supervisor_alive(p.pid, control_dir) || procfs::works_under(p.pid, node_dir))
    })
}

/// SIGTERM to the node's process group, SIGKILL after a grace period.
fn stop_group(pgid: i32, node_dir: &Path, control_dir: &Path) {
    use rustix::process::{Pid, Signal, kill_process_group, test_kill_process_group};
    let Some(group) = Pid::from_raw(pgid) else {
        return;
    };
    if !group_is_ours(pgid, node_dir, control_dir) {
        return;
    }
    let _ = kill_process_group(group, Signal::TERM);
    let deadline = Instant::now() + STOP_GRACE;
    while test_kill_process_group(group).is_ok()
        && group_has_live_member(pgid)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = kill_process_group(group, Signal::KILL);
}

/// Whether any process of group `pgid` is still running (not a zombie). A
/// member whose parent died is reaped by PID 1, which in a container may take
/// its time; its zombie runs nothing and must not make destroy wait out the
/// grace period.
fn group_has_live_member(pgid: i32) -> bool {
    procfs::processes()
        .into_iter()
        .any(|p| p.group == pgid && !p.is_zombie())
}
