//! The one scheduler: walks a [`Graph`], for deploy and teardown alike. Every node whose
//! needs are done starts at once; on the first failure nothing new starts, the steps
//! already running finish, and every failure is reported together.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;

use crate::aws::AwsContext;
use crate::error::{Error, Result, StepFailure};
use crate::graph::{Graph, planned_refs};
use crate::plan::{Change, Created, Step, Wait};
use crate::wait::{Outcome, until};

/// How the scheduler picks among the nodes that are ready.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Schedule {
    /// All of them, at once.
    #[default]
    Concurrent,
    /// One at a time, the first ready in the order the plans list them: the same requests
    /// in the same order every run, for snapshots of what goes on the wire.
    Ordered,
    /// One at a time, drawn at random from a seeded sequence. Any order the graph allows
    /// must work: runs with several seeds show that no edge the steps need is missing.
    Shuffled { seed: u64 },
}

/// Runs the steps of `graph` with their tier's `run`, as their needs allow. `created`
/// carries the ids of what steps make to the steps that refer to them. A step's run makes
/// one attempt; while it answers "not yet" it is asked again, within its wait's bound.
/// `done_now` hears of each node done, as it is.
pub async fn run<S: Step>(
    ctx: &AwsContext,
    graph: &Graph<S>,
    created: &Created,
    run: impl AsyncFn(&AwsContext, &S, &Created) -> Result<Outcome>,
    mut done_now: impl FnMut(usize),
) -> Result<()> {
    let dependents = graph.dependents();
    let mut waiting: Vec<usize> = graph.nodes.iter().map(|node| node.needs.len()).collect();
    let mut ready: Vec<usize> = (0..graph.nodes.len()).filter(|&index| waiting[index] == 0).collect();
    let mut draws = SplitMix64(match ctx.schedule {
        Schedule::Shuffled { seed } => seed,
        Schedule::Concurrent | Schedule::Ordered => 0,
    });
    let run = &run;
    // Each step's future is boxed: it holds every SDK call's, too big to keep several of
    // on a stack.
    let start = |index: usize| {
        let node = &graph.nodes[index];
        ctx.progress.announce(node.tier, &node.step);
        // A step that uses what a step of this run just made meets EC2's eventual
        // consistency: for a moment the new id is unknown (`*.NotFound`). That is "not yet"
        // too, for as long as such a delay lasts; the step it needs did finish.
        let uses_new = node.step.change() != Change::Delete && !planned_refs(&node.step).is_empty();
        let wait = node.step.wait().unwrap_or_else(|| Wait::to_know(&node.step.describe()));
        // Its calls are logged as the step's, held to the actions it declares.
        let future = Box::pin(crate::calls::declared(node.step.actions(), async move {
            let limit = ctx.waits.limit(wait.bound);
            let result = until(ctx, &wait.what, limit, &wait.fix, || async {
                match run(ctx, &node.step, created).await {
                    Err(err) if uses_new && err.is_not_found() => Ok(Outcome::NotYet(err.brief())),
                    outcome => outcome,
                }
            })
            .await;
            (index, result)
        }));
        (index, future)
    };
    let mut running = Vec::new();
    let mut failures = Vec::new();
    let mut done = 0;
    let mut interrupted = false;
    loop {
        // Ctrl-C may come before the first step (while the run planned): then none starts.
        if failures.is_empty() && !ctx.interrupt.is_raised() {
            match ctx.schedule {
                Schedule::Concurrent => running.extend(ready.drain(..).map(start)),
                Schedule::Ordered if running.is_empty() && !ready.is_empty() => running.push(start(ready.remove(0))),
                Schedule::Shuffled { .. } if running.is_empty() && !ready.is_empty() => {
                    let pick = usize::try_from(draws.next() % ready.len() as u64).expect("an index of ready");
                    running.push(start(ready.remove(pick)));
                }
                Schedule::Ordered | Schedule::Shuffled { .. } => {}
            }
        }
        if running.is_empty() {
            break;
        }
        let finished = tokio::select! {
            finished = first_done(&mut running) => Some(finished),
            () = ctx.interrupt.raised(), if !interrupted => None,
        };
        let Some((slot, (index, result))) = finished else {
            interrupted = true;
            // A wait changes nothing: it is dropped. A step that changes something finishes
            // its calls, so nothing is left half-made.
            running.retain(|(index, _)| graph.nodes[*index].step.change() != Change::Wait);
            ctx.progress.line(format!(
                "interrupted: starting nothing new; {} step(s) in flight finish (Ctrl-C again stops at once)",
                running.len()
            ));
            continue;
        };
        drop(running.swap_remove(slot));
        match result {
            Ok(()) => {
                done += 1;
                done_now(index);
                for &dependent in &dependents[index] {
                    waiting[dependent] -= 1;
                    if waiting[dependent] == 0 {
                        // Kept in graph order: ties start in the order the plans list them.
                        let at = ready.partition_point(|&r| r < dependent);
                        ready.insert(at, dependent);
                    }
                }
            }
            // Stopped by Ctrl-C between two attempts: not done, and not a failure.
            Err(Error::Stopped { .. }) => {}
            Err(error) => {
                let node = &graph.nodes[index];
                failures.push(StepFailure { tier: node.tier, step: node.step.describe(), error: Box::new(error) });
            }
        }
    }
    if !failures.is_empty() {
        Err(Error::Steps { failures })
    } else if ctx.interrupt.is_raised() && done < graph.nodes.len() {
        Err(Error::Interrupted { done, total: graph.nodes.len() })
    } else {
        Ok(())
    }
}

/// Waits for the first of `futures` to finish: its slot and its output.
async fn first_done<F: Future>(futures: &mut [(usize, Pin<Box<F>>)]) -> (usize, F::Output) {
    poll_fn(|cx| {
        for (slot, (_, future)) in futures.iter_mut().enumerate() {
            if let Poll::Ready(output) = future.as_mut().poll(cx) {
                return Poll::Ready((slot, output));
            }
        }
        Poll::Pending
    })
    .await
}

/// A small, seeded pseudo-random sequence (SplitMix64): enough to shuffle an order.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use serde::Serialize;

    use super::*;
    use crate::aws::Target;
    use crate::plan::{Change, Ref};
    use crate::progress::Progress;
    use crate::roles::Tier;
    use crate::wait::WaitSettings;

    #[derive(Debug, Clone, Serialize)]
    struct Sleep {
        name: &'static str,
        key: Option<&'static str>,
        uses: Option<Ref>,
        millis: u64,
        fails: bool,
        waits: bool,
    }

    impl Step for Sleep {
        fn facts(&self) -> crate::plan::Facts {
            crate::plan::Facts {
                change: if self.waits { Change::Wait } else { Change::Create },
                description: self.name.into(),
                actions: &[],
                produces: self.key.iter().map(|k| crate::graph::Key::created(k)).collect(),
                after: vec![],
                typical: None,
                wait: self.waits.then(|| Wait::until(format!("{} done", self.name), crate::plan::Bound::Propagation)),
            }
        }
    }

    fn sleep(name: &'static str, millis: u64) -> Sleep {
        Sleep { name, key: Some(name), uses: None, millis, fails: false, waits: false }
    }

    async fn context(schedule: Schedule) -> AwsContext {
        // No request is sent: the steps below only sleep.
        let target = Target::Emulator { endpoint: "http://127.0.0.1:9".into() };
        let mut ctx = AwsContext::connect(&target, "us-east-1", WaitSettings::fast_poll(), Progress::silent()).await;
        ctx.schedule = schedule;
        ctx
    }

    /// Runs `steps`, recording when each starts and ends (in steps of the log).
    async fn walk(schedule: Schedule, steps: Vec<Sleep>) -> (Result<()>, Vec<String>) {
        let graph = Graph::build(steps.into_iter().map(|s| (Tier::Network, s))).unwrap();
        let log = Mutex::new(Vec::new());
        let ctx = context(schedule).await;
        let created = Created::default();
        let result = run(
            &ctx,
            &graph,
            &created,
            async |_, step: &Sleep, created: &Created| {
                if let Some(reference) = &step.uses {
                    created.resolve(reference)?;
                }
                log.lock().unwrap().push(format!("start {}", step.name));
                tokio::time::sleep(Duration::from_millis(step.millis)).await;
                log.lock().unwrap().push(format!("end {}", step.name));
                if step.fails {
                    return Err(Error::Conflict {
                        resource: step.name.into(),
                        problem: "failed".into(),
                        fix: "none".into(),
                    });
                }
                if let Some(key) = step.key {
                    created.insert(key, format!("id-{key}"));
                }
                Ok(Outcome::Done(()))
            },
            |_| {},
        )
        .await;
        (result, log.into_inner().unwrap())
    }

    #[tokio::test]
    async fn independent_steps_run_together_and_a_step_waits_for_its_needs() {
        let after_a = Sleep { uses: Some(Ref::planned("a")), ..sleep("after-a", 1) };
        let (result, log) = walk(Schedule::Concurrent, vec![sleep("a", 30), sleep("b", 30), after_a]).await;
        result.unwrap();
        assert_eq!(&log[..2], ["start a", "start b"], "{log:?}");
        let position = |entry: &str| log.iter().position(|e| e == entry).unwrap();
        assert!(position("end a") < position("start after-a"), "{log:?}");
    }

    #[tokio::test]
    async fn done_now_hears_of_each_step_done_as_it_is_and_not_of_a_failed_one() {
        let bad = Sleep { fails: true, ..sleep("bad", 5) };
        let graph = Graph::build([
            (Tier::Network, sleep("slow", 40)),
            (Tier::Network, sleep("quick", 1)),
            (Tier::Network, bad),
        ])
        .unwrap();
        let ctx = context(Schedule::Concurrent).await;
        let mut finished = Vec::new();
        let result = run(
            &ctx,
            &graph,
            &Created::default(),
            async |_, step: &Sleep, _: &Created| {
                tokio::time::sleep(Duration::from_millis(step.millis)).await;
                match step.fails {
                    true => Err(Error::Conflict {
                        resource: step.name.into(),
                        problem: "failed".into(),
                        fix: "none".into(),
                    }),
                    false => Ok(Outcome::Done(())),
                }
            },
            |index| finished.push(graph.nodes[index].step.name),
        )
        .await;
        assert!(matches!(result, Err(Error::Steps { .. })), "{result:?}");
        assert_eq!(finished, ["quick", "slow"]);
    }

    #[tokio::test]
    async fn a_failure_starts_nothing_new_lets_running_steps_finish_and_reports_every_failure() {
        let bad = Sleep { fails: true, ..sleep("bad", 1) };
        let worse = Sleep { fails: true, ..sleep("worse", 5) };
        let slow = sleep("slow", 40);
        let after_bad = Sleep { uses: Some(Ref::planned("bad")), ..sleep("after-bad", 1) };
        let after_slow = Sleep { uses: Some(Ref::planned("slow")), ..sleep("after-slow", 1) };
        let (result, log) = walk(Schedule::Concurrent, vec![bad, worse, slow, after_bad, after_slow]).await;
        assert!(log.contains(&"end slow".to_owned()), "a running step finishes: {log:?}");
        assert!(!log.iter().any(|e| e.starts_with("start after")), "nothing new starts: {log:?}");
        let Err(Error::Steps { failures }) = result else { panic!("{result:?}") };
        let failed: Vec<&str> = failures.iter().map(|f| f.step.as_str()).collect();
        assert_eq!(failed, ["bad", "worse"]);
        let message = Error::Steps { failures }.to_string();
        assert!(message.starts_with("2 steps failed:") && message.contains("network step `worse` failed"), "{message}");
    }

    #[tokio::test]
    async fn ctrl_c_starts_nothing_new_drops_waits_and_lets_changes_in_flight_finish() {
        let change = sleep("change", 50);
        let wait = Sleep { waits: true, ..sleep("wait", 10_000) };
        let after = Sleep { uses: Some(Ref::planned("change")), ..sleep("after", 1) };
        let graph = Graph::build([change, wait, after].map(|s| (Tier::Network, s))).unwrap();
        let ctx = context(Schedule::Concurrent).await;
        let log = Mutex::new(Vec::new());
        let result = run(
            &ctx,
            &graph,
            &Created::default(),
            async |ctx, step: &Sleep, created: &Created| {
                log.lock().unwrap().push(format!("start {}", step.name));
                // Ctrl-C while the change is in flight and the wait waits.
                if step.name == "change" {
                    ctx.interrupt.raise();
                }
                tokio::time::sleep(Duration::from_millis(step.millis)).await;
                log.lock().unwrap().push(format!("end {}", step.name));
                created.insert(step.name, format!("id-{}", step.name));
                Ok(Outcome::Done(()))
            },
            |_| {},
        )
        .await;
        let log = log.into_inner().unwrap();
        assert_eq!(log, ["start change", "start wait", "end change"], "the wait is dropped, nothing new starts");
        let Err(Error::Interrupted { done, total }) = result else { panic!("{result:?}") };
        assert_eq!((done, total), (1, 3));
    }

    #[tokio::test]
    async fn a_step_answering_not_yet_is_asked_again_until_done_or_its_bound() {
        let wait = Sleep { waits: true, ..sleep("wait", 1) };
        let after = Sleep { uses: Some(Ref::planned("wait")), ..sleep("after", 1) };
        let graph = Graph::build([wait, after].map(|s| (Tier::Network, s))).unwrap();
        let attempts = Mutex::new(Vec::new());
        let run = async |_: &AwsContext, step: &Sleep, created: &Created| {
            attempts.lock().unwrap().push(step.name);
            let tries = attempts.lock().unwrap().iter().filter(|name| **name == step.name).count();
            if step.waits && tries < 3 {
                return Ok(Outcome::NotYet(format!("try {tries}")));
            }
            created.insert(step.name, format!("id-{}", step.name));
            Ok(Outcome::Done(()))
        };
        run_with(&context(Schedule::Concurrent).await, &graph, &run).await.unwrap();
        assert_eq!(
            attempts.lock().unwrap().as_slice(),
            ["wait", "wait", "wait", "after"],
            "asked until done, then the next"
        );

        // Past its bound, the wait fails with its last state and its fix; nothing after it starts.
        attempts.lock().unwrap().clear();
        let mut ctx = context(Schedule::Concurrent).await;
        ctx.waits.propagation = Duration::from_millis(150);
        let never = async |_: &AwsContext, step: &Sleep, _: &Created| {
            attempts.lock().unwrap().push(step.name);
            Ok(Outcome::NotYet("provisioning".into()))
        };
        let Err(Error::Steps { failures }) = run_with(&ctx, &graph, &never).await else { panic!("a timeout") };
        let message = failures[0].error.to_string();
        assert!(
            message.contains("wait done (still provisioning)") && message.contains("slower than usual"),
            "{message}"
        );
        assert!(!attempts.lock().unwrap().contains(&"after"));
    }

    async fn run_with(
        ctx: &AwsContext,
        graph: &Graph<Sleep>,
        run_step: &impl AsyncFn(&AwsContext, &Sleep, &Created) -> Result<Outcome>,
    ) -> Result<()> {
        run(ctx, graph, &Created::default(), async |ctx, step, created| run_step(ctx, step, created).await, |_| {})
            .await
    }

    #[tokio::test]
    async fn ctrl_c_before_the_first_step_starts_none() {
        let graph = Graph::build([(Tier::Network, sleep("a", 1)), (Tier::Network, sleep("b", 1))]).unwrap();
        let ctx = context(Schedule::Concurrent).await;
        ctx.interrupt.raise();
        let started = Mutex::new(Vec::new());
        let result = run(
            &ctx,
            &graph,
            &Created::default(),
            async |_, step: &Sleep, _: &Created| {
                started.lock().unwrap().push(step.name);
                Ok(Outcome::Done(()))
            },
            |_| {},
        )
        .await;
        assert!(started.into_inner().unwrap().is_empty());
        assert!(matches!(result, Err(Error::Interrupted { done: 0, total: 2 })), "{result:?}");
    }

    #[tokio::test]
    async fn a_shuffled_schedule_runs_one_step_at_a_time_in_an_order_the_graph_allows() {
        let steps = || {
            vec![
                sleep("a", 1),
                sleep("b", 1),
                Sleep { uses: Some(Ref::planned("a")), ..sleep("c", 1) },
                Sleep { uses: Some(Ref::planned("c")), ..sleep("d", 1) },
                sleep("e", 1),
            ]
        };
        let mut orders = std::collections::BTreeSet::new();
        for seed in 0..8 {
            let (result, log) = walk(Schedule::Shuffled { seed }, steps()).await;
            result.unwrap();
            let starts: Vec<&str> = log.iter().step_by(2).map(|e| e.trim_start_matches("start ")).collect();
            for pair in log.chunks(2) {
                assert_eq!(pair[0].replace("start", "end"), pair[1], "one step at a time: {log:?}");
            }
            let at = |name: &str| starts.iter().position(|s| *s == name).unwrap();
            assert!(at("a") < at("c") && at("c") < at("d"), "{starts:?}");
            orders.insert(starts.join(""));
        }
        assert!(orders.len() > 1, "seeds give different orders: {orders:?}");
    }
}
