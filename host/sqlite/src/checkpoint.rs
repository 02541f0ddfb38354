//! WAL pages copied into the database file ahead of the commits' own
//! checkpoints.
//!
//! SQLite checkpoints a WAL database automatically inside the commit that
//! makes the WAL cross 1,000 pages: that commit copies the pages into the
//! database file and syncs it, a stall of several milliseconds. Behind a
//! group commit (the state store's writer thread) every write waiting for
//! the next batch waits through it too; in a 5,000-node build it landed on
//! the critical path of a level start now and then. Here a thread with its
//! own connection runs a `PASSIVE` checkpoint every [`INTERVAL`] (a passive
//! checkpoint never blocks a writer; one with nothing new to copy costs a
//! look at the WAL index), so that the commit's checkpoint finds most pages
//! copied already.
//!
//! The writer keeps its automatic checkpoint: the WAL starts over from its
//! beginning only after a checkpoint that copied everything with no write
//! in between, which under a steady stream of writes only the writer's own
//! checkpoint achieves. With the thread alone, a busy REST service's WAL
//! grew past 250 MiB.

use crate::OpenError;
use rusqlite::Connection;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the WAL is checkpointed.
pub const INTERVAL: Duration = Duration::from_millis(250);

/// The checkpointing thread; it stops (and is joined) when this is dropped.
pub struct BackgroundCheckpoint {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl BackgroundCheckpoint {
    /// Starts checkpointing the database at `path` every [`INTERVAL`].
    pub fn start(path: &Path) -> Result<BackgroundCheckpoint, OpenError> {
        let checkpointer = Connection::open(path)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("occopus-wal-checkpoint".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    // Busy (another process checkpointing) or failed: the
                    // next round, or the last close, does it.
                    let _ =
                        checkpointer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
            })
            .map_err(|e| OpenError::Checkpointer(e.to_string()))?;
        Ok(BackgroundCheckpoint {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for BackgroundCheckpoint {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::open_migrated;

    const MIGRATIONS: &[&str] = &["CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB);"];

    /// Pages in the database file itself (what checkpoints have copied).
    fn file_pages(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().len() / 4096
    }

    fn write_a_mebibyte(connection: &Connection) {
        for _ in 0..64 {
            connection
                .execute("INSERT INTO blobs (data) VALUES (zeroblob(16384))", [])
                .unwrap();
        }
    }

    #[test]
    fn the_thread_copies_what_the_writer_s_own_checkpoint_has_not_yet() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let writer = open_migrated(&path, MIGRATIONS).unwrap();
        let before = file_pages(&path);
        let checkpoint = BackgroundCheckpoint::start(&path).unwrap();
        write_a_mebibyte(&writer);
        // Copied into the file by the thread (no commit did it: 256 pages
        // are far from the writer's 1,000), within a few intervals.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while file_pages(&path) < before + 256 {
            assert!(
                std::time::Instant::now() < deadline,
                "nothing checkpointed: {} pages",
                file_pages(&path)
            );
            std::thread::sleep(INTERVAL / 5);
        }
        drop(checkpoint);
        // Stopped: more writes stay in the WAL until the connection closes.
        let stopped_at = file_pages(&path);
        write_a_mebibyte(&writer);
        std::thread::sleep(INTERVAL * 3);
        assert_eq!(file_pages(&path), stopped_at);
        drop(writer);
        assert!(
            file_pages(&path) >= stopped_at + 256,
            "the last close checkpoints"
        );
    }
}
