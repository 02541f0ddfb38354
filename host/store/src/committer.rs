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
//!
//! Round trips count on a database over a network (PostgreSQL): each write
//! is fenced (its infra's lease still at its epoch) once per infra and epoch
//! per batch, not once per write, since the batch's transaction holds the
//! writers' lock that every lease grant takes; and one savepoint's release
//! and the next one's start go in one statement batch.

use crate::backend::Backend;
use crate::error::StoreError;
use crate::sql::{Sql, values};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// At most this many writes share one commit, so a caller never waits behind
/// an unbounded batch.
const MAX_BATCH: usize = 512;

/// One write: statements run on the connection inside its savepoint.
type Write = Box<dyn FnOnce(&mut dyn Sql) -> Result<(), StoreError> + Send>;

/// The lease a write is made under: its infra and the epoch this process
/// was granted.
pub(crate) struct Fence {
    pub(crate) infra_id: String,
    pub(crate) epoch: i64,
}

struct Job {
    fence: Fence,
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
    /// `generation` moves after every commit (see `StateStore::generation`).
    pub(crate) fn start(
        backend: Arc<Backend>,
        generation: Arc<std::sync::atomic::AtomicU64>,
    ) -> std::io::Result<Committer> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("occopus-store-writer".into())
            .spawn(move || {
                while let Ok(first) = queue.recv() {
                    let mut batch = vec![first];
                    batch.extend(queue.try_iter().take(MAX_BATCH - 1));
                    commit(&backend, batch, &generation);
                }
            })?;
        Ok(Committer { jobs })
    }

    /// Runs `write` in the next group commit, if the lease on its infra is
    /// still at `fence`'s epoch then, and returns once it is committed.
    pub(crate) async fn write(
        &self,
        fence: Fence,
        write: impl FnOnce(&mut dyn Sql) -> Result<(), StoreError> + Send + 'static,
    ) -> Result<(), StoreError> {
        let (done, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                fence,
                write: Box::new(write),
                done,
            })
            .map_err(|_| StoreError::Commit("the writer thread has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Commit("the writer thread has stopped".into()))?
    }
}

/// Each write's savepoint: its start, its release once it is written, and
/// its rollback when the write failed.
const START: &str = "SAVEPOINT occopus_write";
const RELEASE: &str = "RELEASE SAVEPOINT occopus_write";
const ROLLBACK: &str = "ROLLBACK TO SAVEPOINT occopus_write";

/// The epoch the lease on `infra_id` is at, if one is held.
pub(crate) fn current_epoch(db: &mut dyn Sql, infra_id: &str) -> Result<Option<i64>, StoreError> {
    db.query_opt(
        "SELECT epoch FROM leases WHERE infra_id = ?1",
        values![infra_id],
    )?
    .map(|row| row.get(0))
    .transpose()
}

/// Marks `infra_id` changed: its version moves on (in the transaction of
/// the change), so a rendered report of an older version is known stale.
pub(crate) fn bump_version(db: &mut dyn Sql, infra_id: &str) -> Result<(), StoreError> {
    db.execute(
        "UPDATE infras SET version = version + 1 WHERE id = ?1",
        values![infra_id],
    )
    .map(drop)
}

/// Refuses a write under `fence` unless its infra's lease is at its epoch,
/// reading each infra's lease once per batch (`epochs`).
fn check(
    db: &mut dyn Sql,
    epochs: &mut HashMap<String, Option<i64>>,
    fence: &Fence,
) -> Result<(), StoreError> {
    let current = match epochs.get(&fence.infra_id) {
        Some(current) => *current,
        None => {
            let current = current_epoch(db, &fence.infra_id)?;
            epochs.insert(fence.infra_id.clone(), current);
            current
        }
    };
    if current == Some(fence.epoch) {
        Ok(())
    } else {
        Err(StoreError::Fenced {
            infra_id: fence.infra_id.clone(),
        })
    }
}

/// Runs `batch` in one transaction, each write in its own savepoint, commits,
/// moves `generation` on, then answers every job (so that a caller that
/// heard its write is done finds the generation moved).
fn commit(backend: &Backend, batch: Vec<Job>, generation: &std::sync::atomic::AtomicU64) {
    let mut answers = Vec::with_capacity(batch.len());
    // A write alone in its batch needs no savepoint: if it fails, the
    // batch's transaction is rolled back with it (two round trips fewer).
    let alone = batch.len() == 1;
    let mut jobs = batch.into_iter().peekable();
    let committed = backend.write(|db| {
        let mut epochs = HashMap::new();
        let mut written = std::collections::BTreeSet::new();
        if !alone {
            db.repeated(&[START])?;
        }
        while let Some(job) = jobs.next() {
            let outcome = check(db, &mut epochs, &job.fence).and_then(|()| (job.write)(db));
            if outcome.is_ok() {
                written.insert(job.fence.infra_id.clone());
            }
            if alone {
                let failed = outcome.is_err();
                answers.push((job.done, outcome));
                if failed {
                    return Err(StoreError::Commit("its only write failed".into()));
                }
                continue;
            }
            if outcome.is_err() {
                db.repeated(&[ROLLBACK])?;
            }
            if jobs.peek().is_some() {
                db.repeated(&[RELEASE, START])?;
            } else {
                db.repeated(&[RELEASE])?;
            }
            answers.push((job.done, outcome));
        }
        // Every infra written in the batch is marked changed, once.
        for infra_id in &written {
            bump_version(db, infra_id)?;
        }
        Ok(())
    });
    generation.fetch_add(1, std::sync::atomic::Ordering::Release);
    // Jobs the batch did not reach (its transaction could not begin, or
    // broke) fail with it.
    answers.extend(jobs.map(|job| (job.done, Ok(()))));
    for (done, outcome) in answers {
        let answer = match (&committed, outcome) {
            (Ok(()), outcome) => outcome,
            // A write's own failure is what its caller needs to hear.
            (Err(_), Err(own)) => Err(own),
            (Err(e), Ok(())) => Err(StoreError::Commit(e.to_string())),
        };
        // The caller may have given up waiting; the write stands either way.
        let _ = done.send(answer);
    }
}

#[cfg(test)]
mod tests {
    use crate::error::StoreError;
    use crate::leases::{Acquired, LeaseHolder};
    use crate::records::InfraSnapshot;
    use crate::sql::Sql;
    use crate::state_store::StateStore;
    use crate::testing::TestDatabase;
    use std::time::Duration;

    fn lease(store: &StateStore, infra_id: &str) -> i64 {
        let me = LeaseHolder::this_process("test");
        match store
            .try_acquire_lease(infra_id, &me, Duration::from_secs(30))
            .unwrap()
        {
            Acquired::Granted { record, .. } => record.epoch,
            Acquired::Held(by) => panic!("held by {by:?}"),
        }
    }

    fn set_status(
        status: &'static str,
        id: &'static str,
    ) -> impl FnOnce(&mut dyn Sql) -> Result<(), StoreError> {
        move |db| {
            db.execute(
                "UPDATE infras SET status = ?1 WHERE id = ?2",
                crate::sql::values![status, id],
            )
            .map(drop)
        }
    }

    /// In a batch, a write that fails (fenced off, or a broken statement)
    /// fails alone with its own error; alone in its batch, it too gets its
    /// own error, and nothing of it is written.
    #[test]
    fn a_failing_write_fails_alone_with_its_own_error() {
        for db in TestDatabase::each() {
            fails_alone_on(&db);
        }
    }

    fn fails_alone_on(db: &TestDatabase) {
        let store = db.open();
        for id in ["good", "stale"] {
            lease(&store, id);
            store
                .upsert_infra(id, id, "building", &InfraSnapshot::default())
                .unwrap();
        }
        let epoch = store.lease("stale").unwrap().unwrap().epoch;
        assert!(db.open().break_lease("stale", epoch, "test").unwrap());

        let (good, stale, broken) = futures::executor::block_on(async {
            futures::join!(
                store.fenced_write("good", set_status("ready", "good")),
                store.fenced_write("stale", set_status("ready", "stale")),
                store.fenced_write("good", |db| db
                    .execute("UPDATE no_such_table SET x = 1", &[])
                    .map(drop)),
            )
        });
        good.unwrap();
        assert!(matches!(stale, Err(StoreError::Fenced { .. })), "{stale:?}");
        assert!(
            !matches!(broken, Ok(()) | Err(StoreError::Commit(_))),
            "{broken:?}"
        );
        assert_eq!(store.infra("good").unwrap().unwrap().status, "ready");
        assert_eq!(store.infra("stale").unwrap().unwrap().status, "building");

        let alone = futures::executor::block_on(store.fenced_write("good", |db| {
            set_status("failed", "good")(db)?;
            db.execute("UPDATE no_such_table SET x = 1", &[]).map(drop)
        }));
        assert!(
            !matches!(alone, Ok(()) | Err(StoreError::Commit(_))),
            "{alone:?}"
        );
        assert_eq!(store.infra("good").unwrap().unwrap().status, "ready");
    }
}
