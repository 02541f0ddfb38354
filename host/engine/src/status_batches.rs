//! Asking a driver that answers for many instances at once (contract
//! 0.1.3's `status-batch`) about many at once.
//!
//! The instances a run follows poll their cloud each on its own schedule;
//! those on one target (the same driver, resource section and credentials)
//! whose poll falls while a call for that target is under way wait for it
//! to end and are then asked about together, in one call. No poll waits for
//! a timer: one alone is asked at once, as before, and a thousand booting
//! instances cost a call per round instead of a thousand sandboxed calls
//! (and a real cloud's rate limit is spared as much). The same pattern as
//! the store's group commit; polls due together are woken on the same tick
//! (`polling.rs`), and a leader lets the tasks woken with it join before it
//! asks.
//!
//! The call is made by one of the waiting tasks, the leader, with its own
//! borrowed driver (the tasks of one target hold equal ones); when it is
//! done (or dropped in the middle) it hands the lead to the first task that
//! came meanwhile. The tasks a dropped leader was asking for ask again.

use crate::polling::Cadence;
use occopus_types::{CallError, CallErrorKind, CloudTarget, Driver, InstanceStatus};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use tokio::sync::oneshot;

/// At most this many instances in one call (EC2's DescribeInstances takes
/// up to 1,000 ids).
const MAX_BATCH: usize = 1000;

/// What a waiting task is told.
enum Turn {
    /// The answer about its instance.
    Answer(Result<InstanceStatus, CallError>),
    /// To make the next call, for everyone waiting.
    Lead,
}

/// The tasks waiting on one target while its leader calls.
type Waiting = VecDeque<(String, oneshot::Sender<Turn>)>;

/// What one instance's polls ask: its driver and target, and for a driver
/// that answers for many at once, the key its polls are gathered by, made
/// once for all of them (a poll may come every millisecond).
pub(crate) struct Poll<'a> {
    driver: &'a dyn Driver,
    target: &'a CloudTarget,
    batch_key: Option<String>,
}

impl<'a> Poll<'a> {
    pub(crate) fn new(driver: &'a dyn Driver, target: &'a CloudTarget) -> Self {
        Poll {
            driver,
            target,
            batch_key: driver.batches_status().then(|| target_key(driver, target)),
        }
    }

    /// How finely these polls may come (see `polling.rs`).
    pub(crate) fn cadence(&self) -> Cadence {
        match self.batch_key {
            Some(_) => Cadence::Batched,
            None => Cadence::OneByOne,
        }
    }
}

/// The targets being polled: a target is here while a call for it is under
/// way.
#[derive(Default)]
pub(crate) struct StatusBatches(Mutex<HashMap<String, Waiting>>);

impl StatusBatches {
    /// The status of `cloud_id` as `poll` asks it: for a batching driver,
    /// together with the other instances of its target whose poll came
    /// during a call; else on its own.
    pub(crate) async fn status(
        &self,
        poll: &Poll<'_>,
        cloud_id: &str,
    ) -> Result<InstanceStatus, CallError> {
        let Poll {
            driver,
            target,
            batch_key,
        } = poll;
        let Some(key) = batch_key else {
            return driver.status(target, cloud_id).await;
        };
        let mut handed_the_lead = false;
        loop {
            let (tell, told) = oneshot::channel();
            let lead = {
                let mut targets = self.lock();
                match targets.get_mut(key) {
                    // Handed the lead: its own instance goes first.
                    Some(waiting) if handed_the_lead => {
                        waiting.push_front((cloud_id.to_string(), tell));
                        true
                    }
                    Some(waiting) => {
                        waiting.push_back((cloud_id.to_string(), tell));
                        false
                    }
                    None => {
                        targets.insert(
                            key.to_owned(),
                            VecDeque::from([(cloud_id.to_string(), tell)]),
                        );
                        true
                    }
                }
            };
            if lead {
                self.lead(key, *driver, target).await;
            }
            match told.await {
                Ok(Turn::Answer(answer)) => return answer,
                Ok(Turn::Lead) => handed_the_lead = true,
                // The leader asking for it was dropped: ask again.
                Err(_) => handed_the_lead = false,
            }
        }
    }

    /// Asks about the first batch waiting on `key` (the leader's own
    /// instance first) and tells each task its answer; then hands the lead on.
    async fn lead(&self, key: &str, driver: &dyn Driver, target: &CloudTarget) {
        let _leading = Leading { batches: self, key };
        // Polls woken by the same tick (see `polling.rs`) are ready to run:
        // let them join before asking.
        tokio::task::yield_now().await;
        let (ids, tells): (Vec<String>, Vec<_>) = {
            let mut targets = self.lock();
            let Some(waiting) = targets.get_mut(key) else {
                return;
            };
            let count = waiting.len().min(MAX_BATCH);
            waiting.drain(..count).unzip()
        };
        let answers = match ids.as_slice() {
            [] => return,
            // One alone is asked as the driver's own `status` would be.
            [cloud_id] => vec![driver.status(target, cloud_id).await],
            _ => match driver.status_many(target, &ids).await {
                Ok(answers) if answers.len() == ids.len() => answers,
                Ok(answers) => vec![Err(miscounted(driver, answers.len(), ids.len())); ids.len()],
                Err(error) => vec![Err(error); ids.len()],
            },
        };
        for (tell, answer) in tells.into_iter().zip(answers) {
            // A task that stopped waiting does not need it.
            let _ = tell.send(Turn::Answer(answer));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Waiting>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A leader's turn: when it ends (done, or dropped in the middle of its
/// call), the first task still waiting leads next; with none, the target
/// is idle again.
struct Leading<'a> {
    batches: &'a StatusBatches,
    key: &'a str,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        let mut targets = self.batches.lock();
        let Some(waiting) = targets.get_mut(self.key) else {
            return;
        };
        while let Some((_, tell)) = waiting.pop_front() {
            if tell.send(Turn::Lead).is_ok() {
                return;
            }
        }
        targets.remove(self.key);
    }
}

/// What makes two polls the same call: the driver, the resource section and
/// the credentials (kept in memory only, never shown).
fn target_key(driver: &dyn Driver, target: &CloudTarget) -> String {
    let resource = serde_json::to_string(&target.resource).unwrap_or_default();
    let mut key = format!("{}\0{resource}", driver.info().name);
    for (name, value) in target.credentials.pairs() {
        key.push('\0');
        key.push_str(name);
        key.push('\0');
        key.push_str(value);
    }
    key
}

/// A driver that broke the contract by answering for another number of
/// instances than it was asked about.
fn miscounted(driver: &dyn Driver, answered: usize, asked: usize) -> CallError {
    CallError::new(
        CallErrorKind::Host,
        format!(
            "driver {} answered status-many with {answered} states for {asked} instances; \
             report this to the driver's author",
            driver.info().name
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use occopus_types::{
        CloudState, ContractErrorKind, CreateRequest, DriverInfo, ListedInstance, ResourceSection,
    };
    use std::sync::Arc;
    use std::time::Duration;

    /// A driver answering for many at once, each call taking 100 ms (on
    /// tokio's paused clock); an instance's detail is its own id. It notes
    /// each call: the ids asked about.
    struct Slow {
        info: DriverInfo,
        calls: Mutex<Vec<Vec<String>>>,
        broken: bool,
    }

    impl Slow {
        fn new(broken: bool) -> Arc<Slow> {
            Arc::new(Slow {
                info: DriverInfo {
                    name: "slow".into(),
                    version: "0.0.0".into(),
                    resource_types: vec!["slow".into()],
                    resource_schema: "{}".into(),
                },
                calls: Mutex::default(),
                broken,
            })
        }

        fn answer(&self, cloud_id: &str) -> Result<InstanceStatus, CallError> {
            if self.broken {
                return Err(CallError::plugin(ContractErrorKind::Transient, "throttled"));
            }
            Ok(InstanceStatus {
                state: CloudState::Running,
                public_addresses: vec![],
                private_addresses: vec![],
                detail: Some(cloud_id.to_string()),
            })
        }

        fn calls(&self) -> Vec<Vec<String>> {
            self.calls.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl Driver for Slow {
        fn info(&self) -> &DriverInfo {
            &self.info
        }
        async fn validate(&self, _: &ResourceSection) -> Result<(), CallError> {
            Ok(())
        }
        async fn create(&self, _: &CreateRequest) -> Result<String, CallError> {
            unreachable!("only polled")
        }
        async fn status(&self, _: &CloudTarget, id: &str) -> Result<InstanceStatus, CallError> {
            self.calls.lock().unwrap().push(vec![id.to_string()]);
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.answer(id)
        }
        fn batches_status(&self) -> bool {
            true
        }
        async fn status_many(
            &self,
            _: &CloudTarget,
            ids: &[String],
        ) -> Result<Vec<Result<InstanceStatus, CallError>>, CallError> {
            self.calls.lock().unwrap().push(ids.to_vec());
            tokio::time::sleep(Duration::from_millis(100)).await;
            if self.broken {
                return Err(CallError::plugin(
                    ContractErrorKind::Unauthorized,
                    "bad key",
                ));
            }
            Ok(ids.iter().map(|id| self.answer(id)).collect())
        }
        async fn destroy(&self, _: &CloudTarget, _: &str) -> Result<(), CallError> {
            unreachable!("only polled")
        }
        async fn list(&self, _: &CloudTarget, _: &str) -> Result<Vec<ListedInstance>, CallError> {
            unreachable!("only polled")
        }
    }

    fn target(region: &str) -> CloudTarget {
        let mut resource = ResourceSection::new();
        resource.insert("type".into(), "slow".into());
        resource.insert("region".into(), region.into());
        CloudTarget::new(resource)
    }

    /// Polls `id` on `target` from a task of its own.
    fn spawn_poll(
        batches: &Arc<StatusBatches>,
        driver: &Arc<Slow>,
        target: &CloudTarget,
        id: String,
    ) -> tokio::task::JoinHandle<(String, Result<InstanceStatus, CallError>)> {
        let (batches, driver, target) = (batches.clone(), driver.clone(), target.clone());
        tokio::spawn(async move {
            let answer = batches.status(&Poll::new(&*driver, &target), &id).await;
            (id, answer)
        })
    }

    /// Polls `ids` on `target` at once, each from its own task.
    async fn poll_all(
        batches: &Arc<StatusBatches>,
        driver: &Arc<Slow>,
        target: &CloudTarget,
        ids: impl IntoIterator<Item = String>,
    ) -> Vec<(String, Result<InstanceStatus, CallError>)> {
        let tasks: Vec<_> = ids
            .into_iter()
            .map(|id| spawn_poll(batches, driver, target, id))
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        answers
    }

    #[tokio::test(start_paused = true)]
    async fn polls_due_together_are_asked_in_one_call() {
        let batches = Arc::new(StatusBatches::default());
        let driver = Slow::new(false);
        let ids = (0..50).map(|n| format!("i-{n}"));
        let answers = poll_all(&batches, &driver, &target("r1"), ids).await;
        assert_eq!(driver.calls().len(), 1, "{:?}", driver.calls());
        for (id, answer) in answers {
            assert_eq!(
                answer.unwrap().detail.as_deref(),
                Some(id.as_str()),
                "its own answer"
            );
        }
        assert!(batches.lock().is_empty(), "idle targets are forgotten");
    }

    #[tokio::test(start_paused = true)]
    async fn polls_that_come_during_a_call_are_asked_together_after_it() {
        let batches = Arc::new(StatusBatches::default());
        let driver = Slow::new(false);
        let east = target("east");
        let first = tokio::spawn({
            let (batches, driver, east) = (batches.clone(), driver.clone(), east.clone());
            async move { batches.status(&Poll::new(&*driver, &east), "first").await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let later = poll_all(&batches, &driver, &east, (0..20).map(|n| format!("i-{n}"))).await;
        assert_eq!(
            first.await.unwrap().unwrap().detail.as_deref(),
            Some("first")
        );
        assert!(later.iter().all(|(id, answer)| {
            answer.as_ref().unwrap().detail.as_deref() == Some(id.as_str())
        }));
        // The first alone (its own `status`), the 20 that came during it in one call.
        let sizes: Vec<usize> = driver.calls().iter().map(Vec::len).collect();
        assert_eq!(sizes, [1, 20]);
    }

    #[tokio::test(start_paused = true)]
    async fn targets_are_never_mixed() {
        let batches = Arc::new(StatusBatches::default());
        let driver = Slow::new(false);
        let (east, west) = (target("east"), target("west"));
        let (first, second) = tokio::join!(
            poll_all(&batches, &driver, &east, (0..5).map(|n| format!("e-{n}"))),
            poll_all(&batches, &driver, &west, (0..5).map(|n| format!("w-{n}"))),
        );
        assert!(
            first
                .iter()
                .chain(&second)
                .all(|(_, answer)| answer.is_ok())
        );
        for call in driver.calls() {
            let east = call.iter().filter(|id| id.starts_with("e-")).count();
            assert!(
                east == 0 || east == call.len(),
                "a call mixed targets: {call:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_of_the_whole_call_is_each_instance_s_answer() {
        let batches = Arc::new(StatusBatches::default());
        let driver = Slow::new(true);
        let answers = poll_all(
            &batches,
            &driver,
            &target("r1"),
            (0..4).map(|n| n.to_string()),
        )
        .await;
        assert!(
            answers
                .iter()
                .all(|(_, answer)| answer.as_ref().unwrap_err().kind
                    == CallErrorKind::Plugin(ContractErrorKind::Unauthorized)),
            "{answers:?}"
        );
        // One alone is asked with the driver's own `status` (its error:
        // transient).
        let alone = batches
            .status(&Poll::new(&*driver, &target("r1")), "alone")
            .await;
        assert_eq!(
            alone.unwrap_err().kind,
            CallErrorKind::Plugin(ContractErrorKind::Transient)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_dropped_in_its_call_hands_the_lead_on() {
        let batches = Arc::new(StatusBatches::default());
        let driver = Slow::new(false);
        let east = target("east");
        let leader = spawn_poll(&batches, &driver, &east, "first".into());
        tokio::time::sleep(Duration::from_millis(10)).await;
        let follower = spawn_poll(&batches, &driver, &east, "second".into());
        tokio::time::sleep(Duration::from_millis(10)).await;
        leader.abort();
        let (_, answer) = follower.await.unwrap();
        let answer = answer.unwrap();
        assert_eq!(answer.detail.as_deref(), Some("second"));
        assert!(batches.lock().is_empty());
    }
}
