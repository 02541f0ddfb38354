//! The plugin runtime: the engine, linker, cache and limits every plugin
//! call runs under, and [`PluginRuntime::run`], which runs one call in a
//! fresh sandbox and turns whatever happened into a result. Loading
//! components is in `loader.rs`; the typed calls of each kind of plugin are
//! in `driver.rs` and `contextualiser.rs`.

use crate::allow_list::AllowList;
use crate::bindings::{
    config_manager_api, contextualiser_api, driver_api, logging, session, types,
};
use crate::cache::CompiledCache;
use crate::error::{ContractError, RuntimeError, Violation};
use crate::metrics::CallMetrics;
use crate::sandbox::{CallPolicy, LogContext, SandboxState};
use crate::settings::{PluginOverrides, PluginSettings, SandboxLimits};
use crate::wasm_engine::{self, EngineLimits};
use occopus_types::ContractErrorKind;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use wasmtime::component::{HasSelf, Linker, Resource};
use wasmtime::{Engine, Store, UpdateDeadline};

/// The engine, linker and policies every plugin call runs under.
#[derive(Clone)]
pub struct PluginRuntime {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) engine: Arc<Engine>,
    pub(crate) linker: Linker<SandboxState>,
    pub(crate) cache: Option<CompiledCache>,
    limits: SandboxLimits,
    allowed_hosts: Vec<String>,
    overrides: BTreeMap<String, PluginOverrides>,
    /// One permit per instance slot of the pool: calls beyond wait, never fail.
    slots: Semaphore,
    metrics: CallMetrics,
}

impl PluginRuntime {
    /// Sets up the engine from the `plugins` settings.
    pub fn new(settings: &PluginSettings) -> Result<Self, RuntimeError> {
        let limits = settings.limits.clone();
        let largest_memory_mib = settings
            .settings
            .values()
            .filter_map(|o| o.memory_limit_mib)
            .chain([limits.memory_limit_mib])
            .max()
            .unwrap_or(limits.memory_limit_mib);
        let slots =
            wasm_engine::slots_that_fit(limits.max_concurrent_calls, largest_memory_mib << 20)?;
        let engine = Arc::new(wasm_engine::build_engine(EngineLimits {
            max_instances: slots,
            max_memory_bytes: largest_memory_mib << 20,
        })?);
        wasm_engine::start_epoch_clock(&engine)?;
        let linker = build_linker(&engine).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let cache = settings
            .cache_dir
            .clone()
            .map(|dir| CompiledCache::new(dir, &engine));
        // Reject bad host entries now rather than at the first call.
        let bad_setting =
            |setting: String| move |problem| RuntimeError::BadSetting { setting, problem };
        AllowList::from_entries(settings.allowed_hosts.iter().map(String::as_str))
            .map_err(bad_setting("plugins.allowed_hosts".into()))?;
        for (name, o) in &settings.settings {
            AllowList::from_entries(o.allowed_hosts.iter().map(String::as_str)).map_err(
                bad_setting(format!("plugins.settings.{name}.allowed_hosts")),
            )?;
        }
        Ok(PluginRuntime {
            shared: Arc::new(Shared {
                engine,
                linker,
                cache,
                slots: Semaphore::new(slots as usize),
                metrics: CallMetrics::default(),
                limits,
                allowed_hosts: settings.allowed_hosts.clone(),
                overrides: settings.settings.clone(),
            }),
        })
    }

    /// The cache of compiled plugins, if one is configured.
    pub fn cache(&self) -> Option<&CompiledCache> {
        self.shared.cache.as_ref()
    }

    /// The policy of a plugin's calls before any endpoint is added.
    pub(crate) fn base_policy(&self, plugin: &str) -> Result<CallPolicy, RuntimeError> {
        let shared = &self.shared;
        let overrides = shared.overrides.get(plugin);
        let hosts = shared
            .allowed_hosts
            .iter()
            .chain(overrides.iter().flat_map(|o| &o.allowed_hosts))
            .map(String::as_str);
        let allow_list =
            AllowList::from_entries(hosts).map_err(|problem| RuntimeError::BadSetting {
                setting: format!("plugins.settings.{plugin}.allowed_hosts"),
                problem,
            })?;
        Ok(CallPolicy {
            allow_list: Arc::new(allow_list),
            unix_endpoints: overrides.and_then(|o| o.unix_endpoints).unwrap_or(false),
            unix_socket: None,
            memory_limit_bytes: overrides
                .and_then(|o| o.memory_limit_mib)
                .unwrap_or(shared.limits.memory_limit_mib)
                << 20,
            deadline: overrides
                .and_then(|o| o.call_deadline_secs)
                .map(|s| Duration::from_secs_f64(s.max(0.001)))
                .unwrap_or_else(|| shared.limits.call_deadline()),
            session: None,
        })
    }

    /// Runs one call in a fresh sandbox and turns what happened into a result.
    ///
    /// `call` instantiates the plugin in the store it is given and calls it;
    /// everything about limits, deadlines and error classification is here.
    pub(crate) async fn run<R: AnswerSize>(
        &self,
        operation: &'static str,
        policy: &CallPolicy,
        log: LogContext,
        call: impl AsyncFnOnce(
            &mut Store<SandboxState>,
        ) -> wasmtime::Result<Result<R, types::PluginError>>,
    ) -> Result<R, RuntimeError> {
        let plugin = log.plugin.to_string();
        let sandbox_error = |violation| RuntimeError::Sandbox {
            plugin: plugin.clone(),
            operation,
            violation,
        };
        let _slot = self
            .shared
            .slots
            .acquire()
            .await
            .map_err(|_| RuntimeError::Engine("the plugin runtime is shutting down".into()))?;

        let mut store = Store::new(&self.shared.engine, SandboxState::new(policy, log));
        store.limiter(|state| &mut state.limiter);
        let deadline_at = Instant::now() + policy.deadline;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline_at {
                Err(wasmtime::Error::new(DeadlineExceeded))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });

        let started = Instant::now();
        let outcome = tokio::time::timeout(policy.deadline, call(&mut store)).await;
        let seconds = started.elapsed().as_secs_f64();
        let state = store.data();
        let deadline = Violation::Deadline {
            limit: policy.deadline,
        };
        let result = match outcome {
            Err(_elapsed) => Err(sandbox_error(deadline)),
            Ok(Err(error)) if error.is::<DeadlineExceeded>() => Err(sandbox_error(deadline)),
            Ok(Err(error)) => Err(sandbox_error(state.violation().unwrap_or_else(|| {
                Violation::Trap {
                    message: trap_message(&error, state),
                }
            }))),
            Ok(Ok(Err(plugin_error))) => match state.violation() {
                Some(violation) => Err(sandbox_error(violation)),
                None => Err(RuntimeError::Plugin {
                    plugin,
                    operation,
                    error: contract_error(plugin_error, &state.log),
                }),
            },
            Ok(Ok(Ok(answer))) => {
                let bytes = answer.answer_size();
                let limit_bytes =
                    usize::try_from(self.shared.limits.max_result_mib << 20).unwrap_or(usize::MAX);
                if bytes > limit_bytes {
                    Err(sandbox_error(Violation::ResultTooLarge {
                        bytes,
                        limit_bytes,
                    }))
                } else {
                    Ok(answer)
                }
            }
        };
        self.shared
            .metrics
            .observe(&state.log.plugin, operation, seconds, &result);
        result
    }

    /// What the runtime's calls measured so far (see `metrics.rs`).
    pub fn call_metrics(&self) -> &CallMetrics {
        &self.shared.metrics
    }
}

/// The error an epoch callback raises when a call's deadline has passed.
#[derive(Debug)]
struct DeadlineExceeded;

impl fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("call deadline exceeded")
    }
}

impl std::error::Error for DeadlineExceeded {}

/// A one-line account of a crash: the trap and what the plugin last printed
/// (the full backtrace goes to the debug log).
fn trap_message(error: &wasmtime::Error, state: &SandboxState) -> String {
    tracing::debug!(plugin = %state.log.plugin, "plugin crashed: {error:?}");
    let cause = match error.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{error:#}")
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
    };
    let last_words = state.stderr.last_words();
    let message = if last_words.is_empty() {
        cause
    } else {
        format!("{cause}; it printed: {last_words}")
    };
    state.log.mask(&message)
}

/// `error`, as a plugin answered it, with the secrets of `log` masked.
pub(crate) fn contract_error(error: types::PluginError, log: &LogContext) -> ContractError {
    use types::PluginError as E;
    let (kind, message) = match error {
        E::InvalidConfig(m) => (ContractErrorKind::InvalidConfig, m),
        E::Unauthorized(m) => (ContractErrorKind::Unauthorized, m),
        E::NotFound(m) => (ContractErrorKind::NotFound, m),
        E::Transient(m) => (ContractErrorKind::Transient, m),
        E::Quota(m) => (ContractErrorKind::Quota, m),
        E::Internal(m) => (ContractErrorKind::Internal, m),
    };
    ContractError {
        kind,
        message: log.mask(&message),
    }
}

/// The linker every plugin is instantiated with: WASI with nothing granted,
/// `wasi:http` behind the allow-list, occopus logging and sessions.
fn build_linker(engine: &Engine) -> wasmtime::Result<Linker<SandboxState>> {
    let mut linker = Linker::<SandboxState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    logging::add_to_linker::<SandboxState, HasSelf<SandboxState>>(&mut linker, |s| s)?;
    session::add_to_linker::<SandboxState, HasSelf<SandboxState>>(&mut linker, |s| s)?;
    // A plugin has no preopened directory, so any file access fails; noting that
    // it asked lets the error name the rule instead of "file not found".
    linker.allow_shadowing(true);
    linker
        .instance("wasi:filesystem/preopens@0.2.12")?
        .func_wrap("get-directories", |mut store, (): ()| {
            store.data_mut().filesystem_attempted = true;
            Ok((Vec::<(
                Resource<wasmtime_wasi::filesystem::Descriptor>,
                String,
            )>::new(),))
        })?;
    linker.allow_shadowing(false);
    Ok(linker)
}

impl logging::Host for SandboxState {
    fn log(&mut self, level: logging::Level, message: String) -> wasmtime::Result<()> {
        let message = self.log.mask(&message);
        let plugin = &*self.log.plugin;
        let subject = self.log.subject.as_deref().unwrap_or("-");
        match level {
            logging::Level::Trace => tracing::trace!(plugin, subject, "{message}"),
            logging::Level::Debug => tracing::debug!(plugin, subject, "{message}"),
            logging::Level::Info => tracing::info!(plugin, subject, "{message}"),
            logging::Level::Warn => tracing::warn!(plugin, subject, "{message}"),
            logging::Level::Error => tracing::error!(plugin, subject, "{message}"),
        }
        Ok(())
    }
}

/// The size of a plugin's answer in bytes of text, checked against the result
/// limit (the sandbox's memory limit already bounds it while it is lifted).
pub(crate) trait AnswerSize {
    fn answer_size(&self) -> usize;
}

impl AnswerSize for () {
    fn answer_size(&self) -> usize {
        0
    }
}

impl AnswerSize for String {
    fn answer_size(&self) -> usize {
        self.len()
    }
}

impl<T: AnswerSize> AnswerSize for Vec<T> {
    fn answer_size(&self) -> usize {
        self.iter().map(AnswerSize::answer_size).sum()
    }
}

impl<T: AnswerSize> AnswerSize for Result<T, types::PluginError> {
    fn answer_size(&self) -> usize {
        use types::PluginError as E;
        match self {
            Ok(answer) => answer.answer_size(),
            Err(
                E::InvalidConfig(m)
                | E::Unauthorized(m)
                | E::NotFound(m)
                | E::Transient(m)
                | E::Quota(m)
                | E::Internal(m),
            ) => m.len(),
        }
    }
}

impl<T: AnswerSize> AnswerSize for Option<T> {
    fn answer_size(&self) -> usize {
        self.as_ref().map_or(0, AnswerSize::answer_size)
    }
}

impl AnswerSize for driver_api::DriverInfo {
    fn answer_size(&self) -> usize {
        self.name.len()
            + self.version.len()
            + self.resource_types.answer_size()
            + self.resource_schema.len()
    }
}

impl AnswerSize for driver_api::InstanceStatus {
    fn answer_size(&self) -> usize {
        self.public_addresses.answer_size()
            + self.private_addresses.answer_size()
            + self.detail.answer_size()
    }
}

impl AnswerSize for driver_api::InstanceTags {
    fn answer_size(&self) -> usize {
        self.infra_id.len() + self.infra_name.len() + self.node_name.len()
    }
}

impl AnswerSize for driver_api::ListedInstance {
    fn answer_size(&self) -> usize {
        self.cloud_id.len() + self.instance_id.len() + self.tags.answer_size()
    }
}

impl AnswerSize for contextualiser_api::ContextualiserInfo {
    fn answer_size(&self) -> usize {
        self.name.len()
            + self.version.len()
            + self.context_types.answer_size()
            + self.context_schema.len()
    }
}

impl AnswerSize for config_manager_api::ConfigManagerInfo {
    fn answer_size(&self) -> usize {
        self.name.len()
            + self.version.len()
            + self.config_types.answer_size()
            + self.config_schema.len()
    }
}

impl AnswerSize for config_manager_api::ConfigState {
    fn answer_size(&self) -> usize {
        0
    }
}

impl AnswerSize for types::KeyValue {
    fn answer_size(&self) -> usize {
        self.key.len() + self.value.len()
    }
}

impl AnswerSize for types::Payload {
    fn answer_size(&self) -> usize {
        match self {
            types::Payload::None => 0,
            types::Payload::UserData(text) => text.len(),
            types::Payload::Container(spec) => spec.env.answer_size() + spec.command.answer_size(),
        }
    }
}
