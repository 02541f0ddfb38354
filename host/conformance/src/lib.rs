//! The conformance check of a cloud driver: runs the contract's promises
//! (`wit/plugin.wit`) against a live cloud and reports each as passed,
//! failed or not applicable, so that a driver's author learns before
//! shipping what occopus will rely on.
//!
//! The promises, in the order they are checked:
//!
//! | promise | what is checked |
//! |---|---|
//! | `describe` | a name, a semver version, the resource's type among those served, a schema that compiles |
//! | `schema` | the resource section passes the driver's own schema |
//! | `validate-offline` | `validate` answers without reaching any host |
//! | `validate-errors` | a section with only its `type` is accepted or refused as `invalid-config`, nothing else |
//! | `create` | `create` answers with a cloud id |
//! | `create-idempotent` | a second `create` with the same instance id answers for the same instance |
//! | `status-transitions` | `status` goes from pending to running within the boot timeout, never failed or shut down |
//! | `addresses` | a running instance has at least one address, each an IP address or host name |
//! | `list-by-tag` | `list` of the infra id finds the instance with its instance id and tags; `list` of another id does not |
//! | `unknown-id` | `status` of an id the cloud never made answers `not-found` (or `shutdown`) |
//! | `unauthorized` | wrong credentials answer `unauthorized` (when the resource has credentials) |
//! | `destroy` | `destroy` succeeds, and the instance is then gone |
//! | `destroy-idempotent` | a second `destroy` succeeds |
//!
//! A driver whose cloud keeps no inventory (its schema says
//! [`occopus_types::cloud::NO_INVENTORY_KEYWORD`]` : false`, as a simulated
//! cloud does) cannot list or forget instances: for it `list-by-tag` is not
//! applicable, `create-idempotent` compares what the two answers show of the
//! instance (its addresses), and `destroy` does not wait for it to be gone.
//!
//! Whatever happens, everything the check created is destroyed at the end.

mod promises;
mod report;

pub use promises::{CheckOptions, check};
pub use report::{Promise, PromiseResult, Report, Verdict};
