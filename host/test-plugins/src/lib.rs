//! Plugins for tests only, built from `plugins/`:
//! - `hostile`: a driver that breaks every sandbox rule, one per call;
//! - `forgetful`: a driver whose `create` is not idempotent (each call makes
//!   a new instance), for the conformance check;
//! - `contract-next`: a driver built against a future major version of the
//!   contract;
//! - `contract-previous`: a driver built against contract 0.1.0, the minor
//!   minor version of the first release;
//! - `contract-0.1.1`: a driver built against contract 0.1.1, which keeps a
//!   count in its session;
//! - `restcloud`: the SDK's example driver.

use std::path::PathBuf;

/// The directory of the test plugins' `.wasm` files.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("OCCOPUS_TEST_WASM_DIR"))
}

/// The `hostile` driver.
pub fn hostile() -> PathBuf {
    dir().join("occopus_test_hostile.wasm")
}

/// The `forgetful` driver.
pub fn forgetful() -> PathBuf {
    dir().join("occopus_test_forgetful.wasm")
}

/// The driver of the next major contract version.
pub fn contract_next() -> PathBuf {
    dir().join("occopus_test_contract_next.wasm")
}

/// The driver built against contract 0.1.0.
pub fn contract_previous() -> PathBuf {
    dir().join("occopus_test_contract_previous.wasm")
}

/// The driver built against contract 0.1.1 (with a session).
pub fn contract_0_1_1() -> PathBuf {
    dir().join("occopus_test_contract_0_1_1.wasm")
}

/// The SDK's example driver, `restcloud`.
pub fn restcloud() -> PathBuf {
    dir().join("occopus_example_restcloud.wasm")
}
