//! The wasmtime engine shared by every plugin, and its epoch clock.
//!
//! One engine serves all plugins so that compiled code, the instance pool and
//! the epoch clock are shared. Instances come from the pooling allocator: each
//! call takes a pre-reserved slot (memory, tables, instance state) instead of
//! mapping fresh memory, which is what makes a call cost microseconds. Each slot
//! is bounded by the largest memory limit configured, and `StoreLimits`-style
//! accounting in the sandbox enforces each plugin's own limit below that.
//!
//! Deadlines use epoch interruption: a background thread advances the engine's
//! epoch every [`EPOCH_TICK`], and each call's store checks its deadline at each
//! tick, yielding to the async executor in between so a spinning plugin never
//! holds a worker thread for long.

use crate::error::RuntimeError;
use std::sync::{Arc, Weak};
use std::time::Duration;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances: the granularity of deadlines and of yielding.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Core instances one component may contain (Rust components have a handful,
/// componentize-py ones a few dozen).
const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 64;
const MAX_MEMORIES_PER_COMPONENT: u32 = 4;
const MAX_TABLES_PER_COMPONENT: u32 = 16;
/// Table elements per table (function references of big components).
const TABLE_ELEMENTS: usize = 100_000;
/// Memory and table bytes per slot reset in place rather than decommitted.
const KEEP_RESIDENT_BYTES: usize = 1 << 20;
/// Instance metadata size per core instance and per component instance.
const MAX_CORE_INSTANCE_SIZE: usize = 4 << 20;
const MAX_COMPONENT_INSTANCE_SIZE: usize = 4 << 20;

/// What the engine must be able to hold.
#[derive(Debug, Clone, Copy)]
pub struct EngineLimits {
    /// Plugin instances alive at once.
    pub max_instances: u32,
    /// The largest linear memory any plugin may have, in bytes.
    pub max_memory_bytes: u64,
}

/// Builds the engine: component model, async, pooling allocator, epochs.
pub fn build_engine(limits: EngineLimits) -> Result<Engine, RuntimeError> {
    let instances = limits.max_instances.max(1);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        .total_core_instances(instances * 8)
        .total_memories(instances * 2)
        .total_tables(instances * 4)
        .total_stacks(instances)
        .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MAX_MEMORIES_PER_COMPONENT)
        .max_tables_per_component(MAX_TABLES_PER_COMPONENT)
        .max_memories_per_module(1)
        .table_elements(TABLE_ELEMENTS)
        .max_core_instance_size(MAX_CORE_INSTANCE_SIZE)
        .max_component_instance_size(MAX_COMPONENT_INSTANCE_SIZE)
        .max_memory_size(usize::try_from(limits.max_memory_bytes).unwrap_or(usize::MAX))
        // Reuse released slots without returning their pages to the kernel:
        // resetting a small plugin's memory with memset (or, on Linux 6.7+,
        // only the pages it dirtied) is far cheaper than madvise + page faults.
        .max_unused_warm_slots(64)
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(KEEP_RESIDENT_BYTES)
        .pagemap_scan(Enabled::Auto);

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        // Reserve only what a plugin may use (plus guard pages), not 4 GiB per
        // slot: a thousand slots must fit in the address space comfortably.
        .memory_reservation(limits.max_memory_bytes.next_power_of_two())
        .memory_guard_size(64 << 10)
        .memory_reservation_for_growth(0)
        .async_stack_size(2 << 20)
        .max_wasm_stack(1 << 20);
    Engine::new(&config).map_err(|e| RuntimeError::Engine(format!("{e:#}")))
}

/// Advances the engine's epoch every [`EPOCH_TICK`] while the engine is alive.
///
/// The thread holds only a weak reference and ends once the engine is dropped.
pub fn start_epoch_clock(engine: &Arc<Engine>) -> Result<(), RuntimeError> {
    let weak: Weak<Engine> = Arc::downgrade(engine);
    std::thread::Builder::new()
        .name("occopus-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .map(drop)
        .map_err(|e| RuntimeError::Engine(format!("cannot start the epoch clock thread: {e}")))
}
