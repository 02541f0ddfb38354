//! What `/proc` says about processes: the one place that reads its files, for
//! the local cloud's supervision and for tests that check no node process
//! survived.

use std::path::Path;

/// The fields of `/proc/PID/stat` the local cloud needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessStat {
    /// The process id.
    pub pid: i32,
    /// Its state letter (`R`, `S`, `Z` for a zombie, ...).
    pub state: char,
    /// Its process group.
    pub group: i32,
}

impl ProcessStat {
    /// Whether it has ended (a zombie waiting to be reaped runs nothing).
    pub fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }

    /// Parses a `stat` line: after the command name in parentheses come the
    /// state, the parent pid and the process group.
    fn parse(pid: i32, line: &str) -> Option<ProcessStat> {
        let (_, rest) = line.rsplit_once(')')?;
        let mut fields = rest.split_whitespace();
        let state = fields.next()?.chars().next()?;
        let group = fields.nth(1)?.parse().ok()?;
        Some(ProcessStat { pid, state, group })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_are_read_past_odd_command_names() {
        let line = "4242 (a (weird) name) S 1 4240 4240 0 -1 4194560 ...";
        assert_eq!(
            ProcessStat::parse(4242, line),
            Some(ProcessStat {
                pid: 4242,
                state: 'S',
                group: 4240
            })
        );
        let me = stat(std::process::id() as i32).unwrap();
        assert!(!me.is_zombie());
    }
}
