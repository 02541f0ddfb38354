//! The supervisor of one local node: the first process of the node's process
//! group (`occopus local-cloud boot-node`).
//!
//! It applies the node's user-data in cloud-init's order and records the
//! node's state in its control directory as it goes: `pending` while `bootcmd`
//! runs and files are written, `running` once its service (`runcmd`) has
//! settled (every entry finished, or one still runs after half a second),
//! `failed WHY` when a step fails. After the last `runcmd` entry it stays alive, so that the
//! node (and anything its commands started in the background) lives until it is
//! destroyed: destroy kills the whole process group.

use crate::user_data::{BootPlan, Command};
use cap_std::ambient_authority;
use cap_std::fs::Dir;
use std::path::{Path, PathBuf};

/// How long a `runcmd` entry may run before the node counts as running (its
/// service is up); one that fails sooner fails the node instead.
const SERVICE_SETTLE: std::time::Duration = std::time::Duration::from_millis(500);

/// How often a new supervisor tries to take a node's lock before it
/// concludes that another supervisor holds it (5 ms apart).
const LOCK_ATTEMPTS: u32 = 20;

/// The files of a node that are not the node's own (outside its directory, so
/// that its commands cannot tamper with them).
#[derive(Debug, Clone)]
pub struct ControlFiles {
    dir: PathBuf,
}

/// The lifecycle a node's supervisor reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootState {
    /// Applying `bootcmd` and `write_files`.
    Pending,
    /// `runcmd` started.
    Running,
    /// A boot step or the node's service failed; why, in words.
    Failed(String),
}

impl ControlFiles {
    /// The control files in `dir`.
    pub fn new(dir: PathBuf) -> Self {
        ControlFiles { dir }
    }

    /// The control directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The user-data the node boots with.
    pub fn user_data(&self) -> PathBuf {
        self.dir.join("user-data")
    }

    /// The node's output (its supervisor's and its commands').
    pub fn log(&self) -> PathBuf {
        self.dir.join("node.log")
    }

    fn state_file(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// What the supervisor last recorded; `None` before it started.
    pub fn state(&self) -> Option<BootState> {
        let text = std::fs::read_to_string(self.state_file()).ok()?;
        let mut words = text.split_whitespace();
        match (words.next(), words.next()) {
            (Some("pending"), _) => Some(BootState::Pending),
            (Some("running"), _) => Some(BootState::Running),
            (Some("failed"), _) => Some(BootState::Failed(
                text.trim_start()
                    .trim_start_matches("failed")
                    .trim()
                    .to_owned(),
            )),
            _ => None,
        }
    }

    /// Records a state atomically (write, then rename).
    fn set_state(&self, state: &BootState) -> std::io::Result<()> {
        let text = match state {
            BootState::Pending => "pending".to_owned(),
            BootState::Running => "running".to_owned(),
            BootState::Failed(why) => format!("failed {why}"),
        };
        let temp = self.dir.join("state.tmp");
        std::fs::write(&temp, text)?;
        std::fs::rename(temp, self.state_file())
    }

    fn lock_file(&self) -> PathBuf {
        self.dir.join("supervisor.lock")
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.join("supervisor.pid")
    }

    /// Makes this process the node's one supervisor: takes the exclusive
    /// lock of the control directory (held until this process ends, as the
    /// returned file), then records its pid. `None` when another process
    /// holds it: a create that was retried after its caller died may start a
    /// second supervisor, which must leave the node to the first.
    pub fn claim_supervision(&self) -> std::io::Result<Option<std::fs::File>> {
        use rustix::fs::{FlockOperation, flock};
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.lock_file())?;
        // A supervisor holds the lock for good; `is_taken` probes hold it
        // shared for a moment only, so a refusal is retried a few times
        // before it counts as "another supervisor runs this node".
        for attempt in 0..LOCK_ATTEMPTS {
            match flock(&lock, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {
                    let temp = self.dir.join("supervisor.pid.tmp");
                    std::fs::write(&temp, std::process::id().to_string())?;
                    std::fs::rename(temp, self.pid_file())?;
                    return Ok(Some(lock));
                }
                Err(rustix::io::Errno::WOULDBLOCK) if attempt + 1 < LOCK_ATTEMPTS => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    /// The pid of the node's supervisor while one runs (holds the lock and
    /// has recorded its pid).
    pub fn supervisor(&self) -> Option<i32> {
        self.is_taken()
            .then(|| self.recorded_supervisor())
            .flatten()
    }

    /// Whether a supervisor holds the node's lock (it may not have recorded
    /// its pid yet).
    pub fn is_taken(&self) -> bool {
        use rustix::fs::{FlockOperation, flock};
        let Ok(lock) = std::fs::File::open(self.lock_file()) else {
            return false;
        };
        // Our shared lock, when we get it, goes with the file.
        flock(&lock, FlockOperation::NonBlockingLockShared) == Err(rustix::io::Errno::WOULDBLOCK)
    }

    /// The pid the last supervisor that took the node recorded, whether or
    /// not it still runs.
    pub fn recorded_supervisor(&self) -> Option<i32> {
        std::fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

/// How a command ended, in words: its exit code, or the signal that killed it.
fn ended(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => {
            let name = match signal {
                1 => " (SIGHUP)",
                2 => " (SIGINT)",
                3 => " (SIGQUIT)",
                6 => " (SIGABRT)",
                9 => " (SIGKILL)",
                11 => " (SIGSEGV)",
                13 => " (SIGPIPE)",
                15 => " (SIGTERM)",
                _ => "",
            };
            format!("was killed by signal {signal}{name}")
        }
        (None, None) => format!("ended ({status})"),
    }
}

/// Boots a node: the body of the settings' runner (`occopus local-cloud
/// boot-node`). Returns the exit code of the supervisor (it only returns when
/// a step failed).
pub fn boot(control: &ControlFiles, node_dir: &Path, address: &str) -> i32 {
    // Whether the node's state is settled (running, or failed): the timer
    // that marks a service running and a failure write it one at a time.
    let settled = std::sync::Mutex::new(false);
    let fail = |code: i32, why: &str| {
        eprintln!("occopus: node failed: {why}");
        let mut guard = settled.lock().ok();
        if let Some(settled) = guard.as_mut() {
            **settled = true;
        }
        let _ = control.set_state(&BootState::Failed(why.to_owned()));
        drop(guard);
        code
    };
    let _supervision = match control.claim_supervision() {
        Ok(Some(lock)) => lock,
        Ok(None) => {
            eprintln!("occopus: another supervisor runs this node; leaving it to that one");
            return 0;
        }
        Err(e) => return fail(-1, &format!("cannot lock the node's control files: {e}")),
    };
    if control.set_state(&BootState::Pending).is_err() {
        return fail(-1, "cannot write the node's state");
    }
    let user_data = match std::fs::read_to_string(control.user_data()) {
        Ok(text) => text,
        Err(e) => return fail(-1, &format!("cannot read the user-data: {e}")),
    };
    let plan = match BootPlan::parse(&user_data) {
        Ok(plan) => plan,
        Err(e) => return fail(-1, &e.to_string()),
    };
    for line in &plan.not_applied {
        eprintln!("occopus: {line}");
    }
    // `bootcmd` steps boot the node; `runcmd` commands are its service.
    let run = |stage: &str, commands: &[Command]| -> Result<(), i32> {
        let what = |command: &Command| match stage {
            "runcmd" => format!("the node's service (runcmd `{}`)", command.join(" ")),
            _ => format!("boot step {stage} `{}`", command.join(" ")),
        };
        for command in commands {
            eprintln!("occopus: {stage}: {}", command.join(" "));
            let status = std::process::Command::new(&command[0])
                .args(&command[1..])
                .current_dir(node_dir)
                .env("OCCOPUS_NODE_ADDRESS", address)
                .env("OCCOPUS_NODE_DIR", node_dir)
                .status();
            match status {
                Ok(s) if s.success() => {}
                Ok(s) => {
                    let code = s.code().unwrap_or(-1);
                    return Err(fail(code, &format!("{} {}", what(command), ended(s))));
                }
                Err(e) => {
                    return Err(fail(-1, &format!("{} could not start: {e}", what(command))));
                }
            }
        }
        Ok(())
    };
    if let Err(code) = run("bootcmd", &plan.bootcmd) {
        return code;
    }
    let written = Dir::open_ambient_dir(node_dir, ambient_authority())
        .map_err(|e| e.to_string())
        .and_then(|dir| plan.write_files(&dir).map_err(|e| e.to_string()));
    if let Err(why) = written {
        return fail(-1, &why);
    }
    // The node is running once its service has settled: every `runcmd`
    // entry finished, or one still runs after SERVICE_SETTLE (a server). A
    // service that fails at once fails the node before it is ever running,
    // so that a node is never reported ready only to fail a moment later.
    let running = || -> bool {
        let Ok(mut settled) = settled.lock() else {
            return false;
        };
        if !*settled {
            *settled = true;
            return control.set_state(&BootState::Running).is_ok();
        }
        true
    };
    let outcome = std::thread::scope(|scope| {
        let (finished, wait) = std::sync::mpsc::channel::<()>();
        scope.spawn(|| {
            let wait = wait;
            if wait.recv_timeout(SERVICE_SETTLE).is_err() {
                running();
            }
        });
        let outcome = run("runcmd", &plan.runcmd);
        let _ = finished.send(());
        outcome
    });
    if let Err(code) = outcome {
        return code;
    }
    if !running() {
        return fail(-1, "cannot write the node's state");
    }
    eprintln!("occopus: user-data applied; the node stays up until it is destroyed");
    loop {
        std::thread::park();
    }
}
