//! Plans: the data a tier's pure `plan` function returns and its `apply` executes.
//!
//! A plan holds every decision, so apply makes none; it serialises to YAML for snapshots
//! and prints as a list of changes, as `terraform plan` does.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::graph::Key;
use crate::roles::Tier;

/// An id in a plan: of a resource that exists, or of one an earlier step of the same plan
/// creates, named by a key such as `subnet/app`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ref {
    Existing(String),
    Planned(String),
}

impl Ref {
    pub fn existing(id: impl Into<String>) -> Ref {
        Ref::Existing(id.into())
    }

    pub fn planned(key: impl Into<String>) -> Ref {
        Ref::Planned(key.into())
    }

    /// Whether this is the existing resource `id`.
    pub fn is(&self, id: &str) -> bool {
        matches!(self, Ref::Existing(existing) if existing == id)
    }
}

impl std::fmt::Display for Ref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ref::Existing(id) => f.write_str(id),
            Ref::Planned(key) => write!(f, "(new {key})"),
        }
    }
}

/// The ids of resources created while a plan runs, for the steps after them. Steps run
/// concurrently, so it is shared behind a lock.
#[derive(Debug, Default)]
pub struct Created {
    ids: Mutex<HashMap<String, String>>,
}

impl Created {
    pub fn insert(&self, key: impl Into<String>, id: impl Into<String>) {
        self.ids.lock().expect("created ids lock").insert(key.into(), id.into());
    }

    pub fn resolve(&self, reference: &Ref) -> Result<String> {
        match reference {
            Ref::Existing(id) => Ok(id.clone()),
            Ref::Planned(key) => self
                .ids
                .lock()
                .expect("created ids lock")
                .get(key)
                .cloned()
                .ok_or_else(|| Error::Unresolved { key: key.clone() }),
        }
    }

    pub fn resolve_all(&self, references: &[Ref]) -> Result<Vec<String>> {
        references.iter().map(|r| self.resolve(r)).collect()
    }
}

/// What a step does to AWS, for the plan's summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Create,
    Update,
    Delete,
    /// Waits for AWS, changing nothing.
    Wait,
}

impl Change {
    /// The mark a plan line starts with, as in `terraform plan`.
    pub fn sign(self) -> &'static str {
        match self {
            Change::Create => "+",
            Change::Update => "~",
            Change::Delete => "-",
            Change::Wait => "…",
        }
    }
}

/// What a step is, stated once beside its variant (see each tier's `facts`): every field
/// is written for every step, so a new step cannot leave out its edges or its calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub change: Change,
    /// One line for a person: what, which, and the settings that matter.
    pub description: String,
    /// The AWS API operations its run calls, as IAM names them (`ec2:CreateVpc`). A run
    /// is held to them: the call log marks a call its step did not declare.
    pub actions: &'static [&'static str],
    /// The keys it makes: the key of what it creates (what [`Ref::Planned`] names), and
    /// conditions others wait for.
    pub produces: Vec<Key>,
    /// Conditions it must wait for, beyond the planned ids it refers to: it runs after
    /// every step that produces one. A condition no step produces already holds.
    pub after: Vec<Key>,
    /// The name in [`crate::graph::Durations`] of how long AWS typically takes until what
    /// it did is usable: a wait's duration, or a delay like IAM's propagation.
    pub typical: Option<&'static str>,
    /// What the step waits for when AWS answers "not yet" (a state on its way, or a call
    /// refused for now): the scheduler asks again until the bound passes. `None`: only
    /// the eventual consistency every step meets (see [`Wait::to_know`]).
    pub wait: Option<Wait>,
}

/// What a step waits for, stated with its other facts: its run makes one attempt and
/// answers done or "not yet"; the scheduler alone polls, keeps the deadline, stops at
/// Ctrl-C and shows progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    /// What is awaited, as the progress line and a timeout say it.
    pub what: String,
    /// Which of the settings' limits bounds it.
    pub bound: Bound,
    /// What the user can do when the bound passes.
    pub fix: String,
}

/// The limits of waits: each names one of the executor's `WaitSettings`, which a run
/// (or a test) sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    NatGateway,
    LoadBalancer,
    Instance,
    Database,
    /// AWS's eventual consistency: what a step just made is not known everywhere yet.
    Propagation,
    /// A delete refused while AWS cleans up after something else (DependencyViolation).
    DependencyViolation,
}

impl Wait {
    /// For something AWS does in its own time (a state to reach): past the bound, AWS is
    /// slower than usual, and running again continues.
    pub fn until(what: impl Into<String>, bound: Bound) -> Wait {
        let fix = "AWS is slower than usual; run the same command again later: it continues where it stopped";
        Wait { what: what.into(), bound, fix: fix.into() }
    }

    /// For a call AWS refuses for now and accepts later: past the bound, `fix` says what
    /// still holds it up.
    pub fn while_refused(what: impl Into<String>, bound: Bound, fix: impl Into<String>) -> Wait {
        Wait { what: what.into(), bound, fix: fix.into() }
    }

    /// The wait of a step that uses what an earlier step of the run made: EC2's eventual
    /// consistency can answer "not found" for a moment after the create.
    pub fn to_know(description: &str) -> Wait {
        Wait::while_refused(
            format!("AWS to know what `{description}` uses"),
            Bound::Propagation,
            "AWS has not made a resource this run created visible yet: run the command again in a minute",
        )
    }
}

/// One step of a tier's plan, and a node of the stack's graph (see [`crate::graph`]).
pub trait Step: Serialize {
    fn facts(&self) -> Facts;

    fn change(&self) -> Change {
        self.facts().change
    }
    fn describe(&self) -> String {
        self.facts().description
    }
    fn produces(&self) -> Vec<Key> {
        self.facts().produces
    }
    fn after(&self) -> Vec<Key> {
        self.facts().after
    }
    fn typical(&self) -> Option<&'static str> {
        self.facts().typical
    }
    fn actions(&self) -> &'static [&'static str] {
        self.facts().actions
    }
    fn wait(&self) -> Option<Wait> {
        self.facts().wait
    }
}

/// Something deploy cannot change in place: it refuses the whole plan and says why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub resource: String,
    pub problem: String,
    pub fix: String,
}

impl From<Conflict> for Error {
    fn from(conflict: Conflict) -> Error {
        Error::Conflict { resource: conflict.resource, problem: conflict.problem, fix: conflict.fix }
    }
}

/// A tier's plan: its steps in the order apply runs them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan<S> {
    pub tier: Tier,
    pub steps: Vec<S>,
    pub conflicts: Vec<Conflict>,
}

impl<S: Step> Plan<S> {
    pub fn new(tier: Tier) -> Self {
        Plan { tier, steps: Vec::new(), conflicts: Vec::new() }
    }

    /// True when applying would change nothing in AWS (waits aside).
    pub fn changes_nothing(&self) -> bool {
        self.steps.iter().all(|step| step.change() == Change::Wait)
    }

    pub fn count(&self, change: Change) -> usize {
        self.steps.iter().filter(|step| step.change() == change).count()
    }

    /// The plan as a person reads it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if self.changes_nothing() && self.conflicts.is_empty() {
            let _ = writeln!(out, "{}: up to date, no changes", self.tier);
        } else {
            let _ = writeln!(
                out,
                "{}: {} to create, {} to change, {} to delete",
                self.tier,
                self.count(Change::Create),
                self.count(Change::Update),
                self.count(Change::Delete)
            );
        }
        for step in &self.steps {
            let _ = writeln!(out, "  {} {}", step.change().sign(), step.describe());
        }
        for conflict in &self.conflicts {
            let _ = writeln!(out, "  ! {} {}\n    fix: {}", conflict.resource, conflict.problem, conflict.fix);
        }
        out
    }

    /// Deploy refuses a plan with conflicts before making any change.
    pub fn check_conflicts(&self) -> Result<()> {
        match self.conflicts.first() {
            Some(conflict) => Err(conflict.clone().into()),
            None => Ok(()),
        }
    }
}
