//! WAL checkpoints taken by a thread of their own, not by the commits.
//!
//! SQLite checkpoints a WAL database automatically inside the commit that
//! makes the WAL cross 1,000 pages: that commit then copies the pages into
//! the database file and syncs it, a stall of several milliseconds. Behind a
//! group commit (the state store's writer thread) every write waiting for
//! the next batch waits through it too; in a 5,000-node build it landed on
//! the critical path of a level start now and then. Here a thread with its
//! own connection runs a `PASSIVE` checkpoint every [`INTERVAL`] instead (a
//! passive checkpoint never blocks a writer; one with nothing new to copy
//! costs a look at the WAL index), and only once that thread runs are the
//! writing connection's automatic checkpoints turned off. The last
//! connection to close still checkpoints and removes the WAL, as ever.

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
    /// Starts checkpointing the database at `path` every [`INTERVAL`], then
    /// turns `writer`'s automatic checkpoints off.
    pub fn start(path: &Path, writer: &Connection) -> Result<BackgroundCheckpoint, OpenError> {
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
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
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
    fn the_writer_stops_checkpointing_and_the_thread_does_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let writer = open_migrated(&path, MIGRATIONS).unwrap();
        let before = file_pages(&path);
        let checkpoint = BackgroundCheckpoint::start(&path, &writer).unwrap();
        let automatic: i64 = writer
            .pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))
            .unwrap();
        assert_eq!(automatic, 0);
        write_a_mebibyte(&writer);
        // Copied into the file by the thread (no commit did it: the writer's
        // automatic checkpoints are off), within a few intervals.
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
