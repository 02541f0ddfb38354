//! The on-disk cache of compiled plugins.
//!
//! Compiling a component to native code takes milliseconds to seconds; loading
//! the compiled artifact takes microseconds. Each entry is keyed by the BLAKE3
//! hash of the component's bytes and a hash of the engine's configuration (so a
//! different wasmtime or different settings never load a stale artifact), and
//! stores its own BLAKE3 checksum: a truncated or corrupted entry is detected
//! before wasmtime sees it, recompiled and rewritten. The cache is never fatal:
//! if it cannot be read or written, plugins are compiled in memory.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Length of the checksum header of an entry.
const CHECKSUM_LEN: usize = blake3::OUT_LEN;

/// How a component was obtained, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from a valid cache entry.
    Hit,
    /// Compiled because there was no entry.
    Miss,
    /// Compiled because the entry was corrupt or stale (and was replaced).
    Replaced,
    /// Compiled with no cache configured.
    Uncached,
}

/// A directory of compiled components for one engine configuration.
#[derive(Debug, Clone)]
pub struct CompiledCache {
    dir: PathBuf,
    engine_key: String,
}

impl CompiledCache {
    /// A cache in `dir` (created on first write) for components of `engine`.
    pub fn new(dir: PathBuf, engine: &Engine) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        CompiledCache {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry file of a component.
    pub fn entry_path(&self, component_bytes: &[u8]) -> PathBuf {
        let hash = blake3::hash(component_bytes);
        self.dir
            .join(format!("{}-{}.cwasm", hash.to_hex(), self.engine_key))
    }

    /// Loads the compiled form of `bytes`, compiling and storing it if needed.
    ///
    /// Errors are those of compiling; cache trouble only costs time (and is logged).
    pub fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let path = self.entry_path(bytes);
        let outcome = match std::fs::read(&path) {
            Ok(entry) => match deserialize_entry(engine, &entry) {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(reason) => {
                    tracing::warn!(entry = %path.display(), %reason, "recompiling a bad cache entry");
                    CacheOutcome::Replaced
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => CacheOutcome::Miss,
            Err(e) => {
                tracing::warn!(entry = %path.display(), error = %e, "cannot read the plugin cache");
                CacheOutcome::Miss
            }
        };
        let component = Component::new(engine, bytes)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!(entry = %path.display(), error = %e, "cannot write the plugin cache");
        }
        Ok((component, outcome))
    }

    /// Writes an entry atomically: a reader sees the old entry, none, or the new one.
    fn store(&self, path: &Path, component: &Component) -> std::io::Result<()> {
        let artifact = component
            .serialize()
            .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
        std::fs::create_dir_all(&self.dir)?;
        let mut temp = tempfile::NamedTempFile::new_in(&self.dir)?;
        temp.write_all(blake3::hash(&artifact).as_bytes())?;
        temp.write_all(&artifact)?;
        temp.as_file().sync_data()?;
        temp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

/// Why a cache entry was not used.
#[derive(Debug, thiserror::Error)]
enum BadEntry {
    #[error("truncated entry")]
    Truncated,
    #[error("checksum mismatch")]
    Checksum,
    #[error("{0:#}")]
    Wasmtime(wasmtime::Error),
}

/// Checks an entry's checksum and hands the artifact to wasmtime.
fn deserialize_entry(engine: &Engine, entry: &[u8]) -> Result<Component, BadEntry> {
    if entry.len() < CHECKSUM_LEN {
        return Err(BadEntry::Truncated);
    }
    let (checksum, artifact) = entry.split_at(CHECKSUM_LEN);
    if blake3::hash(artifact).as_bytes() != checksum {
        return Err(BadEntry::Checksum);
    }
    // SAFETY: the artifact was produced by `Component::serialize` of an engine
    // with the same compatibility hash (it is in the file name) and its checksum
    // matches, so it is exactly what we wrote; wasmtime also checks its header.
    unsafe { Component::deserialize(engine, artifact) }.map_err(BadEntry::Wasmtime)
}

/// Compiles without a cache.
pub fn compile_uncached(
    engine: &Engine,
    bytes: &[u8],
) -> wasmtime::Result<(Component, CacheOutcome)> {
    Component::new(engine, bytes).map(|c| (c, CacheOutcome::Uncached))
}
