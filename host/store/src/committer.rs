//! Group commit for the engine's per-instance writes.
//!
//! A build writes three records per instance (intent, cloud id, state), and a
//! hundred instances whose dependencies become ready at the same moment write
//! them at the same moment. One transaction each would queue them behind the
//! connection's lock, one commit at a time, on the async workers. Instead one
//! writer thread takes every write that is waiting, runs each inside its own
//! savepoint of a shared transaction, commits once and only then answers each
//! caller: a write still returns only once it is durable, and a failing write
//! (one whose lease fence fails included) is rolled back alone. The batch's
//! transaction takes the writers' lock when it begins, so that another
//! process writing the same database makes it wait rather than fail. The
//! savepoints are SQL statements, so both back-ends run the same batch.

use crate::backend::Backend;
use crate::error::StoreError;
use crate::sql::Sql;
use std::sync::Arc;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// At most this many writes share one commit, so a caller never waits behind
/// an unbounded batch.
const MAX_BATCH: usize = 512;

/// One write: statements run on the connection inside its savepoint.
type Write = Box<dyn FnOnce(&mut dyn Sql) -> Result<(), StoreError> + Send>;

struct Job {
    write: Write,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// The handle to the writer thread; the thread ends when this is dropped.
pub(crate) struct Committer {
    jobs: mpsc::Sender<Job>,
}

impl Committer {
    /// Starts the writer thread on `backend` (shared with the store's direct
    /// readers and writers, which take the same lock).
    pub(crate) fn start(backend: Arc<Backend>) -> std::io::Result<Committer> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("occopus-store-writer".into())
            .spawn(move || {
                while let Ok(first) = queue.recv() {
                    let mut batch = vec![first];
                    batch.extend(queue.try_iter().take(MAX_BATCH - 1));
                    commit(&backend, batch);
                }
            })?;
        Ok(Committer { jobs })
    }

    /// Runs `write` in the next group commit and returns once it is committed.
    pub(crate) async fn write(
        &self,
        write: impl FnOnce(&mut dyn Sql) -> Result<(), StoreError> + Send + 'static,
    ) -> Result<(), StoreError> {
        let (done, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                write: Box::new(write),
                done,
            })
            .map_err(|_| StoreError::Commit("the writer thread has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Commit("the writer thread has stopped".into()))?
    }
}

/// Runs `batch` in one transaction, each write in its own savepoint, commits,
/// then answers every job.
fn commit(backend: &Backend, batch: Vec<Job>) {
    let mut answers = Vec::with_capacity(batch.len());
    let mut jobs = batch.into_iter();
    let committed = backend.write(|db| {
        for job in jobs.by_ref() {
            db.execute("SAVEPOINT occopus_write", &[])?;
            let outcome = (job.write)(db);
            if outcome.is_err() {
                db.execute("ROLLBACK TO SAVEPOINT occopus_write", &[])?;
            }
            db.execute("RELEASE SAVEPOINT occopus_write", &[])?;
            answers.push((job.done, outcome));
        }
        Ok(())
    });
    // Jobs the batch did not reach (its transaction could not begin, or
    // broke) fail with it.
    answers.extend(jobs.map(|job| (job.done, Ok(()))));
    for (done, outcome) in answers {
        let answer = match (&committed, outcome) {
            (Ok(()), outcome) => outcome,
            (Err(e), _) => Err(StoreError::Commit(e.to_string())),
        };
        // The caller may have given up waiting; the write stands either way.
        let _ = done.send(answer);
    }
}
