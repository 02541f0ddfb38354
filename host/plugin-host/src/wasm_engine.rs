//! The wasmtime engine shared by every plugin, and its epoch clock.
//!
//! One engine serves all plugins so that compiled code, the instance pool and
//! the epoch clock are shared. Instances come from the pooling allocator: each
//! call takes a pre-reserved slot (memory, tables, instance state) instead of
//! mapping fresh memory, which is what makes a call cost microseconds. Each slot
//! is bounded by the largest memory limit configured, and `StoreLimits`-style
//! accounting in the sandbox enforces each plugin's own limit below that.
//!
//! The pool reserves its address space up front, about
//! `2 × memory limit + 5 MiB` per slot (133 MiB at the default 64 MiB), so
//! `plugins.limits.max_concurrent_calls` slots of the default 1024 would take
//! 133 GiB. That costs nothing but address space, unless `ulimit -v` bounds it:
//! then [`slots_that_fit`] lowers the slot count to what half of the space
//! left can hold, and calls beyond wait for a free slot.
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

/// Guard pages after each linear memory.
const MEMORY_GUARD_BYTES: u64 = 64 << 10;
/// Stack of an async call (the fiber running a plugin).
const ASYNC_STACK_BYTES: u64 = 2 << 20;
/// Linear memories a slot holds (componentize-py components have two).
const MEMORIES_PER_SLOT: u32 = 2;
/// Tables a slot holds.
const TABLES_PER_SLOT: u32 = 4;

/// The address space one instance slot of the pool reserves: its memories
/// with their guards, its tables and its async stack (with a guard page).
/// Measured against `/proc/self/status` by a test below.
pub fn slot_bytes(max_memory_bytes: u64) -> u64 {
    let memory = max_memory_bytes.next_power_of_two() + MEMORY_GUARD_BYTES;
    let table = TABLE_ELEMENTS as u64 * std::mem::size_of::<usize>() as u64;
    u64::from(MEMORIES_PER_SLOT) * memory
        + u64::from(TABLES_PER_SLOT) * table
        + ASYNC_STACK_BYTES
        + 4096
}

/// How many of the `configured` slots the pool gets: all of them unless the
/// process's address space is limited (`ulimit -v`, RLIMIT_AS); then as many
/// as half of what is left fits, leaving the other half to threads, the heap
/// and compiled code. Fails when not even one slot fits.
pub fn slots_that_fit(configured: u32, max_memory_bytes: u64) -> Result<u32, RuntimeError> {
    let configured = configured.max(1);
    let Some(limit) = rustix::process::getrlimit(rustix::process::Resource::As).current else {
        return Ok(configured);
    };
    let mapped = mapped_bytes();
    let budget = limit.saturating_sub(mapped) / 2;
    let per_slot = slot_bytes(max_memory_bytes);
    let fit = budget / per_slot;
    if fit == 0 {
        return Err(RuntimeError::AddressSpace {
            needed_mib: per_slot >> 20,
            available_mib: budget >> 20,
            memory_limit_mib: max_memory_bytes >> 20,
        });
    }
    Ok(configured.min(u32::try_from(fit).unwrap_or(u32::MAX)))
}

/// The address space this process maps now (0 where /proc is not there).
fn mapped_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |pages| pages * rustix::param::page_size() as u64)
}

/// Builds the engine: component model, async, pooling allocator, epochs.
pub fn build_engine(limits: EngineLimits) -> Result<Engine, RuntimeError> {
    let instances = limits.max_instances.max(1);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        .total_core_instances(instances * 8)
        .total_memories(instances * MEMORIES_PER_SLOT)
        .total_tables(instances * TABLES_PER_SLOT)
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
        .memory_guard_size(MEMORY_GUARD_BYTES)
        .memory_reservation_for_growth(0)
        .async_stack_size(ASYNC_STACK_BYTES as usize)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What `/proc/self/status` says this process maps.
    fn vm_size() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmSize:")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            << 10
    }

    #[test]
    fn slot_bytes_covers_what_the_pool_reserves() {
        for (slots, memory_mib) in [(8u32, 64u64), (2, 256)] {
            let before = vm_size();
            let engine = build_engine(EngineLimits {
                max_instances: slots,
                max_memory_bytes: memory_mib << 20,
            })
            .unwrap();
            let reserved = vm_size().saturating_sub(before);
            let estimate = u64::from(slots) * slot_bytes(memory_mib << 20);
            drop(engine);
            // Other threads of the test binary may map a little meanwhile.
            assert!(
                reserved <= estimate + (64 << 20) && estimate <= reserved + (8 << 20),
                "{slots} slots of {memory_mib} MiB: reserved {reserved}, estimated {estimate}"
            );
        }
    }
}
