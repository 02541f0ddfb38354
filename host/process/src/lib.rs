//! What `/proc` says about processes, the one place that reads its files:
//! for the local cloud's supervision of its nodes, for the state store's
//! leases (is the process that holds one still alive?), and for tests that
//! check no node process survived.

use std::path::Path;

/// The fields of `/proc/PID/stat` occopus needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessStat {
    /// The process id.
    pub pid: i32,
    /// Its state letter (`R`, `S`, `Z` for a zombie, ...).
    pub state: char,
    /// Its process group.
    pub group: i32,
    /// When it started, in clock ticks after boot: with the pid, it names a
    /// process for good (a pid is reused, the pair is not).
    pub start_ticks: u64,
}

impl ProcessStat {
    /// Whether it has ended (a zombie waiting to be reaped runs nothing).
    pub fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }

    /// Parses a `stat` line: after the command name in parentheses come the
    /// state (field 3), the parent pid, the process group (5), ... and the
    /// start time (22).
    fn parse(pid: i32, line: &str) -> Option<ProcessStat> {
        let (_, rest) = line.rsplit_once(')')?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        Some(ProcessStat {
            pid,
            state: fields.first()?.chars().next()?,
            group: fields.get(2)?.parse().ok()?,
            start_ticks: fields.get(19)?.parse().ok()?,
        })
    }
}

/// The `stat` of one process, if it exists.
pub fn stat(pid: i32) -> Option<ProcessStat> {
    let line = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    ProcessStat::parse(pid, &line)
}

/// Every process's `stat`.
pub fn processes() -> Vec<ProcessStat> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse().ok()?;
            stat(pid)
        })
        .collect()
}

/// Whether the command line of `pid` contains `needle` (a path).
pub fn command_line_names(pid: i32, needle: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let needle = needle.as_os_str().as_encoded_bytes();
    cmdline.windows(needle.len()).any(|w| w == needle)
}

/// Whether the working directory of `pid` is under `dir`.
pub fn works_under(pid: i32, dir: &Path) -> bool {
    std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(dir))
}

/// The live (not zombie) processes whose command line names `dir`: a local
/// cloud's node supervisors name their control directory under its root.
pub fn processes_naming(dir: &Path) -> Vec<i32> {
    processes()
        .into_iter()
        .filter(|p| !p.is_zombie() && command_line_names(p.pid, dir))
        .map(|p| p.pid)
        .collect()
}

/// A process, named for good: the host it runs on, its pid and when it
/// started (see [`ProcessStat::start_ticks`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessId {
    /// The host name.
    pub host: String,
    /// The process id.
    pub pid: u32,
    /// When it started, in clock ticks after boot (0 when unknown).
    pub start_ticks: u64,
}

impl ProcessId {
    /// This process.
    pub fn this() -> ProcessId {
        let pid = std::process::id();
        ProcessId {
            host: host_name(),
            pid,
            start_ticks: stat(pid as i32).map_or(0, |s| s.start_ticks),
        }
    }

    /// Whether it is still running, as far as this host can tell: `None`
    /// for a process of another host.
    pub fn is_alive(&self) -> Option<bool> {
        if self.host != host_name() {
            return None;
        }
        let alive = i32::try_from(self.pid)
            .ok()
            .and_then(stat)
            .is_some_and(|s| {
                !s.is_zombie() && (self.start_ticks == 0 || s.start_ticks == self.start_ticks)
            });
        Some(alive)
    }
}

/// This host's name.
pub fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_are_read_past_odd_command_names() {
        let line = "4242 (a (weird) name) S 1 4240 4240 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 0 0";
        assert_eq!(
            ProcessStat::parse(4242, line),
            Some(ProcessStat {
                pid: 4242,
                state: 'S',
                group: 4240,
                start_ticks: 987654,
            })
        );
        let me = stat(std::process::id() as i32).unwrap();
        assert!(!me.is_zombie());
        assert!(me.start_ticks > 0);
    }

    #[test]
    fn a_process_is_alive_until_its_pid_names_another() {
        let me = ProcessId::this();
        assert_eq!(me.is_alive(), Some(true));
        let reused = ProcessId {
            start_ticks: me.start_ticks + 1,
            ..me.clone()
        };
        assert_eq!(reused.is_alive(), Some(false), "same pid, another start");
        let elsewhere = ProcessId {
            host: format!("{}-elsewhere", me.host),
            ..me
        };
        assert_eq!(elsewhere.is_alive(), None);
    }
}
