//! The databases the store's tests run on: one suite, both back-ends.
//!
//! Each test gets a SQLite file in a temp directory and a database of its
//! own on the PostgreSQL cluster the test scripts start
//! (`tests/support/postgres/cluster`, its URL in `OCCOPUS_TEST_POSTGRES`;
//! `scripts/test` sets it), dropped when the test ends.

use crate::postgres::Postgres;
use crate::state_store::StateStore;
use std::sync::atomic::{AtomicU32, Ordering};

/// One test's database.
pub(crate) enum TestDatabase {
    Sqlite(tempfile::TempDir),
    Postgres { admin: String, name: String },
}

impl TestDatabase {
    /// A fresh database on each back-end.
    pub(crate) fn each() -> [TestDatabase; 2] {
        [TestDatabase::sqlite(), TestDatabase::postgres()]
    }

    fn sqlite() -> TestDatabase {
        TestDatabase::Sqlite(tempfile::tempdir().unwrap())
    }

    fn postgres() -> TestDatabase {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let admin = std::env::var("OCCOPUS_TEST_POSTGRES").expect(
            "OCCOPUS_TEST_POSTGRES is not set: the store's tests also run on PostgreSQL; \
             start one with `tests/support/postgres/cluster start DIR` and set the URL it \
             prints, or run scripts/test",
        );
        let name = format!(
            "store_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Postgres::connect(&admin)
            .unwrap()
            .read(|db| db.batch(&format!("CREATE DATABASE {name}")))
            .unwrap();
        TestDatabase::Postgres { admin, name }
    }

    /// Which back-end, for assertion messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            TestDatabase::Sqlite(_) => "sqlite",
            TestDatabase::Postgres { .. } => "postgres",
        }
    }

    /// A store on this database holding infra `i1`, under its lease.
    pub(crate) fn open_with_infra(&self) -> StateStore {
        let store = self.open();
        let me = crate::LeaseHolder::this_process("occopus build");
        store
            .try_acquire_lease("i1", &me, std::time::Duration::from_secs(30))
            .unwrap();
        store
            .upsert_infra(
                "i1",
                "demo",
                "building",
                &crate::records::InfraSnapshot::default(),
            )
            .unwrap();
        store
    }

    /// A store on this database opened to read only.
    pub(crate) fn open_read_only(&self) -> StateStore {
        match self {
            TestDatabase::Sqlite(dir) => {
                StateStore::open_read_only(&dir.path().join("state.db")).unwrap()
            }
            TestDatabase::Postgres { admin, name } => {
                let (base, _) = admin.rsplit_once('/').unwrap();
                StateStore::open_postgres_read_only(&format!("{base}/{name}")).unwrap()
            }
        }
    }

    /// A store on this database (another process's, as far as the store
    /// knows, when opened again).
    pub(crate) fn open(&self) -> StateStore {
        match self {
            TestDatabase::Sqlite(dir) => StateStore::open(&dir.path().join("state.db")).unwrap(),
            TestDatabase::Postgres { admin, name } => {
                let (base, _) = admin.rsplit_once('/').unwrap();
                StateStore::open_postgres(&format!("{base}/{name}")).unwrap()
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let TestDatabase::Postgres { admin, name } = self
            && let Ok(postgres) = Postgres::connect(admin)
        {
            let _ = postgres
                .read(|db| db.batch(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")));
        }
    }
}
