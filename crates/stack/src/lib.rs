//! The whole stack as one graph. Each tier crate owns its resources and plans them; this
//! crate observes the tiers once, plans them in one pass, and hands every step of every
//! tier to one scheduler (`three_tier_core::schedule`), which starts each step once what it
//! needs is done (SPEC.md, "Order"):
//!
//! ```text
//! network ─┬─► alb ─────────┐
//!          ├─► (NAT ready) ─┴─► compute
//!          └─► database
//! ```
//!
//! No tier waits for another as a whole. A step needs what it refers to (the DB subnet
//! group the new DB subnets, the load balancer the new ALB subnets and security group, the
//! instance the new target group) and the readiness it names (the instance an available
//! NAT gateway, the load balancer an attached internet gateway); a teardown's deletes name
//! what must be gone first. So the database starts as soon as its subnets and security
//! group exist, and the NAT gateway's deletion at once. A tier deployed alone finds what
//! it refers to of the tiers it builds on by their tags, and stops with the command that
//! deploys them when they are missing.

mod command;
pub mod cost;
mod diagram;
mod offerings;
mod quotas;
pub mod reach;
mod stacks;
mod status;
mod verify;

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;
use three_tier_core::calls::declared;
use three_tier_core::graph::{Durations, Graph};
use three_tier_core::lock::{Holder, Lock, StackLock};
use three_tier_core::outputs::{AlbRefs, NetworkRefs};
use three_tier_core::progress::human;
use three_tier_core::tier::TierInputs;
use three_tier_core::wait;
use three_tier_core::{
    AwsContext, Change, Config, Conflict, Created, Error, Facts, Plan, Prediction, Result, Step, Tier, TierCrate,
};

use alb::Alb;
use compute::Compute;
use database::Database;
use network::Network;

pub use command::{Ran, instance_logs, logs_script, run_script};
pub use diagram::{Diagram, deployed as diagram_deployed, diagram};
pub use stacks::{StackSummary, enabled_regions, stack_named, stacks, stacks_in_regions};
pub use status::{TierStatus, status};
pub use verify::{
    Check, NGINX_WELCOME, Outcome, Traffic, VerifyLimits, database_check_script, verify, verify_database,
};

/// The one table of the tiers, in deploy order: each tier's variant, field and crate.
/// The stack's step type, its observations and outputs, the dispatch on a tier and on a
/// step, and where each tier's observation is kept all come from it (`$d` is `$`, for the
/// macros it defines).
macro_rules! stack_tiers {
    ($d:tt $($variant:ident $field:ident: $tier_crate:ident;)+) => {
        /// Every tier, in deploy order.
        pub const TIERS: &[Tier] = &[$(Tier::$variant),+];

        /// The outputs of the tiers a command touched or read.
        #[derive(Debug, Clone, Default, PartialEq, Serialize)]
        pub struct StackOutputs {
            $(pub $field: Option<<$tier_crate as TierCrate>::Outputs>,)+
        }

        impl StackOutputs {
            /// Whether `tier` stands complete.
            pub fn has(&self, tier: Tier) -> bool {
                match tier {
                    $(Tier::$variant => self.$field.is_some(),)+
                }
            }
        }

        /// A step of any tier: the nodes of the stack's graph.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(untagged)]
        pub enum StackStep {
            $($variant(<$tier_crate as TierCrate>::Step),)+
        }

        /// What exists of the tiers a command needs, each observed once, independent
        /// reads together.
        #[derive(Debug, Clone, Default)]
        pub struct Observations {
            $(pub $field: Option<<$tier_crate as TierCrate>::Observed>,)+
        }

        impl Observations {
            /// These observations, and `other`'s of the tiers these did not read.
            fn or(self, other: Observations) -> Observations {
                Observations { $($field: self.$field.or(other.$field),)+ }
            }

            /// The outputs of the tiers that stand complete.
            pub fn outputs(&self, config: &Config) -> StackOutputs {
                StackOutputs {
                    $($field: self.$field.as_ref().and_then(|o| $tier_crate::outputs(config, o)),)+
                }
            }

            /// Observes `tiers`, every independent read at once.
            pub async fn read(ctx: &AwsContext, config: &Config, tiers: &[Tier]) -> Result<Observations> {
                async fn read<T: TierCrate>(
                    ctx: &AwsContext,
                    config: &Config,
                    tiers: &[Tier],
                ) -> Result<Option<T::Observed>> {
                    if !tiers.contains(&T::TIER) {
                        return Ok(None);
                    }
                    Ok(Some(declared(T::READS, T::observe(ctx, config)).await?))
                }
                // Boxed, as every read of several tiers: the state of so many SDK calls is
                // too big for a test thread's stack when kept inline.
                let reads = all_at_once!(ctx; $(read::<$tier_crate>(ctx, config, tiers)),+);
                let nested!($($field)+) = Box::pin(reads).await?;
                Ok(Observations { $($field,)+ })
            }
        }

        $(impl InStack for $tier_crate {
            fn observed(observations: &Observations) -> Option<&Self::Observed> {
                observations.$field.as_ref()
            }
            fn step(step: Self::Step) -> StackStep {
                StackStep::$variant(step)
            }
        })+

        /// The one dispatch on a tier: `$body` with `$t` the crate of `$tier`.
        macro_rules! with_tier {
            ($d tier:expr, $d t:ident => $d body:expr) => {
                match $d tier {
                    $(Tier::$variant => {
                        type $d t = $tier_crate;
                        $d body
                    })+
                }
            };
        }

        /// The step inside a [`StackStep`], whatever its tier, with its tier's crate.
        macro_rules! inner {
            ($d step:expr, $d inner:ident => $d body:expr) => {
                match $d step {
                    $(StackStep::$variant($d inner) => $d body,)+
                }
            };
            ($d step:expr, $d inner:ident, $d t:ident => $d body:expr) => {
                match $d step {
                    $(StackStep::$variant($d inner) => {
                        type $d t = $tier_crate;
                        $d body
                    })+
                }
            };
        }
    };
}

/// `ctx.both(a, ctx.both(b, ...))`: every read at once (one after the other when runs are
/// ordered); its value is the [`nested!`] tuple of theirs.
macro_rules! all_at_once {
    ($ctx:ident; $last:expr) => { $last };
    ($ctx:ident; $first:expr $(, $rest:expr)+) => { $ctx.both($first, all_at_once!($ctx; $($rest),+)) };
}

/// The pattern `(a, (b, ...))` of what [`all_at_once!`] gives.
macro_rules! nested {
    ($last:ident) => { $last };
    ($first:ident $($rest:ident)+) => { ($first, nested!($($rest)+)) };
}

stack_tiers! { $
    Network network: Network;
    Alb alb: Alb;
    Compute compute: Compute;
    Database database: Database;
}

impl StackOutputs {
    /// The first of `tiers` that does not stand complete.
    pub fn missing(&self, tiers: &[Tier]) -> Option<Tier> {
        tiers.iter().copied().find(|&tier| !self.has(tier))
    }
}

/// A tier as the stack holds it: where its observation is kept, how its steps join the
/// stack's graph (both from the table above).
trait InStack: TierCrate {
    fn observed(observations: &Observations) -> Option<&Self::Observed>;
    fn step(step: Self::Step) -> StackStep;
}

/// The tiers a tier builds on: what its inputs refer to.
pub fn dependencies(tier: Tier) -> &'static [Tier] {
    with_tier!(tier, T => <<T as TierCrate>::Inputs as TierInputs>::BUILDS_ON)
}

/// The tiers built on a tier.
pub fn dependents(tier: Tier) -> Vec<Tier> {
    TIERS.iter().copied().filter(|t| dependencies(*t).contains(&tier)).collect()
}

impl Step for StackStep {
    fn facts(&self) -> Facts {
        inner!(self, step => step.facts())
    }
}

/// Makes one attempt at a step with its tier's code.
async fn run(ctx: &AwsContext, step: &StackStep, created: &Created) -> Result<wait::Outcome> {
    inner!(step, step, T => T::run(ctx, step, created).await)
}

fn lift<S>(plan: Plan<S>, wrap: fn(S) -> StackStep) -> Plan<StackStep> {
    Plan { tier: plan.tier, steps: plan.steps.into_iter().map(wrap).collect(), conflicts: plan.conflicts }
}

/// A plan of several tiers: each tier's steps as `plan` shows them, and the graph they
/// run as.
#[derive(Debug, Clone, Serialize)]
pub struct StackPlan {
    /// Deploy or teardown.
    pub kind: PlanKind,
    pub tiers: Vec<Plan<StackStep>>,
    /// What the plan could not read and assumed instead (an account limit).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// A deploy's: the stack's paths as the config builds them (see [`reach`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<reach::Path>,
    #[serde(skip)]
    pub graph: Graph<StackStep>,
}

/// What a check before the first change found (quotas, offerings): conflicts for the
/// tiers' plans, and notes on what it could not read.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    pub conflicts: Vec<(Tier, Conflict)>,
    pub notes: Vec<String>,
}

impl FromIterator<Findings> for Findings {
    fn from_iter<I: IntoIterator<Item = Findings>>(all: I) -> Findings {
        let mut merged = Findings::default();
        for found in all {
            merged.conflicts.extend(found.conflicts);
            merged.notes.extend(found.notes);
        }
        merged
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanKind {
    Deploy,
    Teardown,
}

impl StackPlan {
    /// Checks the plans' steps as one graph: every reference made, no cycle.
    pub fn new(kind: PlanKind, tiers: Vec<Plan<StackStep>>) -> Result<StackPlan> {
        let graph =
            Graph::build(tiers.iter().flat_map(|plan| plan.steps.iter().map(|step| (plan.tier, step.clone()))))?;
        Ok(StackPlan { kind, tiers, notes: Vec::new(), paths: Vec::new(), graph })
    }

    /// Checks the paths the config builds, hop by hop: a config whose pieces cannot
    /// connect is a conflict before any change, named by the hop that stays closed.
    fn check_paths(&mut self, config: &Config) {
        self.paths = reach::paths(&reach::desired::desired(config));
        for path in &self.paths {
            let (Some(hop), Some(plan)) = (path.first_closed(), self.tiers.first_mut()) else { continue };
            plan.conflicts.push(Conflict {
                resource: format!("path {}", path.name),
                problem: format!("stays closed at {}: {}", hop.resource, hop.detail),
                fix: "the config's ports and rules must connect: the path shows which piece does not (`cargo xtask reach --plan`)"
                    .into(),
            });
        }
    }

    pub fn tier(&self, tier: Tier) -> Option<&Plan<StackStep>> {
        self.tiers.iter().find(|plan| plan.tier == tier)
    }

    /// The tiers' plans, then the predicted time on AWS and its long pole.
    pub fn render(&self) -> String {
        let mut out: String = self.tiers.iter().map(Plan::render).collect();
        for note in &self.notes {
            out.push_str(&format!("note: {note}\n"));
        }
        if !self.paths.is_empty() {
            let paths: Vec<String> = self
                .paths
                .iter()
                .map(|path| format!("{} {}", path.name, if path.open() { "open" } else { "CLOSED" }))
                .collect();
            out.push_str(&format!("paths the config builds: {}\n", paths.join(", ")));
        }
        if !self.graph.is_empty() {
            out.push_str(&format!("{}: {}\n", self.verb(), self.predict(&Durations::aws()).render()));
        }
        out
    }

    fn verb(&self) -> &'static str {
        match self.kind {
            PlanKind::Deploy => "deploy",
            PlanKind::Teardown => "teardown",
        }
    }

    /// How long the run takes with AWS's typical durations scaled as `durations` says.
    pub fn predict(&self, durations: &Durations) -> Prediction {
        self.graph.predict(durations)
    }

    /// Steps that change AWS (waits aside).
    pub fn changes(&self) -> usize {
        self.tiers.iter().flat_map(|plan| &plan.steps).filter(|step| step.change() != Change::Wait).count()
    }

    pub fn conflicts(&self) -> impl Iterator<Item = &Conflict> {
        self.tiers.iter().flat_map(|plan| &plan.conflicts)
    }

    /// Whether there is anything to delete (for a teardown plan).
    pub fn deletes_nothing(&self) -> bool {
        self.changes() == 0
    }

    /// A conflict in any tier refuses the whole run, before any change.
    pub fn check_conflicts(&self) -> Result<()> {
        match self.conflicts().next() {
            Some(conflict) => Err(conflict.clone().into()),
            None => Ok(()),
        }
    }

    /// Runs every step as the graph allows, then says how long it took against the
    /// prediction for where it ran.
    pub async fn apply(&self, ctx: &AwsContext) -> Result<()> {
        self.apply_telling(ctx, |_| {}).await
    }

    /// As [`StackPlan::apply`], telling `tier_done` of each tier whose last step is done,
    /// as it is.
    async fn apply_telling(&self, ctx: &AwsContext, mut tier_done: impl FnMut(Tier)) -> Result<()> {
        self.check_conflicts()?;
        if self.graph.is_empty() {
            return Ok(());
        }
        let mut steps_left: BTreeMap<Tier, usize> = BTreeMap::new();
        for node in &self.graph.nodes {
            *steps_left.entry(node.tier).or_default() += 1;
        }
        let started = Instant::now();
        three_tier_core::schedule::run(ctx, &self.graph, &Created::default(), run, |index| {
            let tier = self.graph.nodes[index].tier;
            if let Some(left) = steps_left.get_mut(&tier) {
                *left -= 1;
                if *left == 0 {
                    tier_done(tier);
                }
            }
        })
        .await?;
        let predicted = self.predict(&ctx.durations).duration();
        ctx.progress.line(format!(
            "{}: done in {}, predicted {}",
            self.verb(),
            human(started.elapsed()),
            human(predicted)
        ));
        Ok(())
    }
}

impl Observations {
    /// These observations, and those of the tiers not observed yet, read now.
    pub async fn completed(self, ctx: &AwsContext, config: &Config) -> Result<Observations> {
        let missing: Vec<Tier> =
            TIERS.iter().copied().filter(|&tier| with_tier!(tier, T => T::observed(&self).is_none())).collect();
        if missing.is_empty() {
            return Ok(self);
        }
        Ok(self.or(Box::pin(Observations::read(ctx, config, &missing)).await?))
    }

    /// The tiers of which something exists.
    pub fn standing(&self, config: &Config) -> Vec<Tier> {
        standing(config, self)
    }
}

/// `tiers` and the tiers they build on.
fn with_dependencies(tiers: &[Tier]) -> Vec<Tier> {
    TIERS.iter().copied().filter(|t| tiers.contains(t) || tiers.iter().any(|n| dependencies(*n).contains(t))).collect()
}

/// Deploys `tiers` as one graph (see the crate's documentation) and returns their outputs.
pub async fn deploy(ctx: &AwsContext, config: &Config, tiers: &[Tier]) -> Result<StackOutputs> {
    Ok(Box::pin(deployed(ctx, config, tiers)).await?.outputs)
}

/// What a deploy leaves: the tiers' outputs, and what it last observed of the stack (the
/// tiers it deployed and those they build on), which its cost line is read from.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub outputs: StackOutputs,
    pub observed: Observations,
}

async fn deployed(ctx: &AwsContext, config: &Config, tiers: &[Tier]) -> Result<Deployed> {
    let (plan, observed) = Box::pin(plan_and_observe(ctx, config, tiers)).await?;
    Box::pin(apply_deploy(ctx, config, tiers, plan, observed)).await
}

/// As [`deploy`], under the stack's lock (see `three_tier_core::lock`) when there is
/// anything to change: two runs never change one stack at once. A deploy that changes
/// nothing takes no lock and makes read calls only.
pub async fn deploy_locked(
    ctx: &AwsContext,
    config: &Config,
    tiers: &[Tier],
    holder: &Holder,
    force_unlock: bool,
) -> Result<Deployed> {
    let (plan, observed) = Box::pin(plan_and_observe(ctx, config, tiers)).await?;
    if plan.graph.is_empty() {
        // Nothing to change, so no lock; but a lock a dead run left is cleared when the
        // user asks (--force-unlock), or the stack would stay locked until it goes stale.
        if force_unlock && three_tier_core::lock::read(ctx, &config.stack.name).await? != Lock::Free {
            StackLock::acquire(ctx, &config.stack.name, holder, true).await?.release(ctx).await?;
        }
        return Box::pin(apply_deploy(ctx, config, tiers, plan, observed)).await;
    }
    let mut lock = StackLock::acquire(ctx, &config.stack.name, holder, force_unlock).await?;
    // Planned again under the lock: another run may have changed the stack meanwhile.
    let deployed = lock.hold(ctx, Box::pin(deployed(ctx, config, tiers))).await;
    release(ctx, lock, deployed).await
}

/// Plans the teardown of `tiers` again under the stack's lock and applies it.
pub async fn teardown_locked(
    ctx: &AwsContext,
    config: &Config,
    tiers: &[Tier],
    cascade: bool,
    holder: &Holder,
    force_unlock: bool,
) -> Result<()> {
    let mut lock = StackLock::acquire(ctx, &config.stack.name, holder, force_unlock).await?;
    let torn_down = async { teardown(ctx, &plan_teardown(ctx, config, tiers, cascade).await?).await };
    let torn_down = lock.hold(ctx, Box::pin(torn_down)).await;
    release(ctx, lock, torn_down).await
}

/// Gives the lock back, whatever the run's outcome; the run's error comes first.
async fn release<T>(ctx: &AwsContext, lock: StackLock, outcome: Result<T>) -> Result<T> {
    let released = lock.release(ctx).await;
    let value = outcome?;
    released?;
    Ok(value)
}

async fn apply_deploy(
    ctx: &AwsContext,
    config: &Config,
    tiers: &[Tier],
    plan: StackPlan,
    observed: Observations,
) -> Result<Deployed> {
    ctx.progress.line(plan.render().trim_end());
    // A conflict refuses the run, even one with nothing else to do (apply checks again,
    // for its other callers).
    plan.check_conflicts()?;
    let observed = if plan.graph.is_empty() {
        observed
    } else {
        // What the steps made, read back tier by tier as each one's last step is done:
        // the others may run for minutes yet. The tiers built on stand as they were.
        let unchanged = tiers.iter().copied().filter(|&tier| plan.graph.nodes.iter().all(|node| node.tier != tier));
        let (tier_done, done) = tokio::sync::watch::channel(unchanged.collect::<Vec<Tier>>());
        let read_back = TIERS
            .iter()
            .copied()
            .filter(|tier| tiers.contains(tier))
            .map(|tier| {
                let mut done = done.clone();
                Box::pin(async move {
                    // The run ended without it: not read.
                    if done.wait_for(|done| done.contains(&tier)).await.is_err() {
                        return Ok(None);
                    }
                    Observations::read(ctx, config, &[tier]).await.map(Some)
                }) as _
            })
            .collect();
        let plan = &plan;
        let applied = async move {
            let applied = plan.apply_telling(ctx, |tier| tier_done.send_modify(|done| done.push(tier))).await;
            if applied.is_err() {
                // Failed or stopped: no read starts now, and the error comes back at once.
                tier_done.send_replace(Vec::new());
            }
            applied
        };
        let (applied, read) = ctx.each(applied, ctx.all(read_back)).await;
        applied?;
        read?.into_iter().flatten().fold(observed, |all, tier: Observations| tier.or(all))
    };
    let outputs = observed.outputs(config);
    match outputs.missing(tiers) {
        Some(tier) => Err(Error::incomplete(tier, &config.stack.name)),
        None => Ok(Deployed { outputs, observed }),
    }
}

/// What deploy would do to `tiers`, every tier planned in one pass: a tier planned on
/// tiers still to be built refers to their steps' keys, shown as `(new ...)`. A tier
/// built on one that is neither named nor deployed is refused, as deploy would be.
pub async fn plan_deploy(ctx: &AwsContext, config: &Config, tiers: &[Tier]) -> Result<StackPlan> {
    Ok(Box::pin(plan_and_observe(ctx, config, tiers)).await?.0)
}

async fn plan_and_observe(ctx: &AwsContext, config: &Config, tiers: &[Tier]) -> Result<(StackPlan, Observations)> {
    let observed = observe_for_deploy(ctx, config, tiers).await?;
    let mut plan = plan_deploy_from(config, tiers, &observed)?;
    // Before any change, both at once: room in the account's quotas for what the plan
    // creates, and AWS offering what it creates where it goes.
    let (room, offered) = ctx
        .both(
            declared(quotas::READS, quotas::check(ctx, config, &plan.tiers)),
            declared(offerings::READS, offerings::check(ctx, config, &plan.tiers)),
        )
        .await?;
    let found: Findings = [room, offered].into_iter().collect();
    for (tier, conflict) in found.conflicts {
        if let Some(tier_plan) = plan.tiers.iter_mut().find(|p| p.tier == tier) {
            tier_plan.conflicts.push(conflict);
        }
    }
    plan.notes.extend(found.notes);
    Ok((plan, observed))
}

/// What exists of `tiers` and the tiers they build on, and what only a deploy's plan
/// needs beyond it (the AMI a launch of a named compute tier would use).
async fn observe_for_deploy(ctx: &AwsContext, config: &Config, tiers: &[Tier]) -> Result<Observations> {
    let mut observed = Observations::read(ctx, config, &with_dependencies(tiers)).await?;
    if tiers.contains(&Tier::Compute) {
        let network_refs = network::refs(config, &observed.network.clone().unwrap_or_default());
        let alb_refs = alb::refs(config, &observed.alb.clone().unwrap_or_default());
        let desired = Compute::desired(config, &(network_refs, alb_refs));
        if let Some(compute) = observed.compute.as_mut() {
            declared(Compute::READS, Compute::prepare_deploy(ctx, &desired, compute)).await?;
        }
    }
    Ok(observed)
}

/// The deploy plan of `tiers` from what was observed: pure.
pub fn plan_deploy_from(config: &Config, tiers: &[Tier], observed: &Observations) -> Result<StackPlan> {
    let wants = |tier| tiers.contains(&tier);
    let outputs = observed.outputs(config);
    for &tier in tiers {
        for &needs in dependencies(tier).iter().filter(|needs| !wants(**needs)) {
            if !outputs.has(needs) {
                return Err(Error::MissingDependency { tier, needs, stack: config.stack.name.clone() });
            }
        }
    }
    // What the tiers refer to of the tiers below: existing ids, or the keys of this run's creates.
    let network_refs: NetworkRefs = network::refs(config, &observed.network.clone().unwrap_or_default());
    let alb_refs: AlbRefs = alb::refs(config, &observed.alb.clone().unwrap_or_default());
    fn plan_of<T: InStack>(
        config: &Config,
        observed: &Observations,
        below: (&NetworkRefs, &AlbRefs),
    ) -> Plan<StackStep> {
        let desired = T::desired(config, &T::Inputs::from_below(below.0, below.1));
        lift(T::plan(&desired, &T::observed(observed).cloned().unwrap_or_default()), T::step)
    }
    let plans = TIERS
        .iter()
        .filter(|&&tier| wants(tier))
        .map(|&tier| with_tier!(tier, T => plan_of::<T>(config, observed, (&network_refs, &alb_refs))))
        .collect();
    let mut plan = StackPlan::new(PlanKind::Deploy, plans)?;
    plan.check_paths(config);
    Ok(plan)
}

/// What deploy would do to `tiers` in an account without the stack: every resource a
/// create, planned without any call to AWS (the AMI is looked up at deploy).
pub fn plan_for_new_account(config: &Config, tiers: &[Tier]) -> Result<StackPlan> {
    let image = compute::Image::to_look_up(compute::image_source(config));
    let empty = Observations {
        network: Some(Default::default()),
        alb: Some(Default::default()),
        compute: Some(compute::Observed { image: Some(image), ..Default::default() }),
        database: Some(Default::default()),
    };
    plan_deploy_from(config, tiers, &empty)
}

/// Plans the teardown of `tiers`. A tier that others still stand on is refused unless
/// they are named too, or `cascade` adds them.
pub async fn plan_teardown(ctx: &AwsContext, config: &Config, tiers: &[Tier], cascade: bool) -> Result<StackPlan> {
    // Which tiers stand matters only when a named tier has dependents that are not named.
    let unnamed_dependents = tiers.iter().any(|&tier| dependents(tier).iter().any(|d| !tiers.contains(d)));
    let observe = if unnamed_dependents { TIERS.to_vec() } else { tiers.to_vec() };
    let observed = Observations::read(ctx, config, &observe).await?;
    let standing = if unnamed_dependents { standing(config, &observed) } else { Vec::new() };
    let mut chosen: Vec<Tier> = tiers.to_vec();
    for &tier in tiers {
        let blocking: Vec<Tier> =
            dependents(tier).into_iter().filter(|d| !chosen.contains(d) && standing.contains(d)).collect();
        if blocking.is_empty() {
            continue;
        }
        if cascade {
            chosen.extend(blocking.iter().flat_map(|d| std::iter::once(*d).chain(dependents(*d))));
        } else {
            return Err(Error::Dependents { tier, dependents: blocking, stack: config.stack.name.clone() });
        }
    }
    let observed = if chosen.iter().all(|t| observe.contains(t)) {
        observed
    } else {
        Observations::read(ctx, config, &chosen).await?
    };
    let plans = teardown_order()
        .into_iter()
        .filter(|tier| chosen.contains(tier))
        .map(|tier| teardown_of(config, tier, &observed))
        .collect();
    StackPlan::new(PlanKind::Teardown, plans)
}

/// The order a teardown lists the tiers in: each after every tier built on it, those with
/// fewer built on them first (a tier built on another has strictly fewer than it).
fn teardown_order() -> Vec<Tier> {
    fn built_on(tier: Tier) -> Vec<Tier> {
        let mut all = dependents(tier);
        all.extend(dependents(tier).into_iter().flat_map(built_on));
        all.sort();
        all.dedup();
        all
    }
    let mut tiers = TIERS.to_vec();
    tiers.sort_by_key(|&tier| built_on(tier).len());
    tiers
}

/// One tier's teardown plan from what was observed.
fn teardown_of(config: &Config, tier: Tier, observed: &Observations) -> Plan<StackStep> {
    fn of<T: InStack>(config: &Config, observed: &Observations) -> Plan<StackStep> {
        lift(T::teardown(config, &T::observed(observed).cloned().unwrap_or_default()), T::step)
    }
    with_tier!(tier, T => of::<T>(config, observed))
}

/// The tiers of which something exists: those a teardown would delete something of.
pub(crate) fn standing(config: &Config, observed: &Observations) -> Vec<Tier> {
    TIERS
        .iter()
        .copied()
        .filter(|&tier| teardown_of(config, tier, observed).steps.iter().any(|s| s.change() != Change::Wait))
        .collect()
}

/// Applies a teardown plan: the graph backwards, as its deletes' needs allow.
pub async fn teardown(ctx: &AwsContext, plan: &StackPlan) -> Result<()> {
    Box::pin(plan.apply(ctx)).await
}

/// Every tier's outputs, where the tier stands complete.
pub async fn outputs(ctx: &AwsContext, config: &Config) -> Result<StackOutputs> {
    Ok(Observations::read(ctx, config, TIERS).await?.outputs(config))
}

#[cfg(test)]
mod tests;
