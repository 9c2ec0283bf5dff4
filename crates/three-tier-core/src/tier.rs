//! The one shape every tier crate has: effectful `observe` and `run`, pure `desired`,
//! `plan`, `teardown` and `outputs`. The stack drives the four tiers through it, and a
//! tier deployed alone runs through [`deploy_alone`].

use std::future::Future;

use crate::aws::AwsContext;
use crate::calls::declared;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::outputs::{AlbRefs, NetworkRefs};
use crate::plan::{Created, Plan, Step};
use crate::roles::Tier;
use crate::wait::Outcome;

/// What a tier refers to of the tiers it builds on, and so which tiers those are: a
/// tier's dependencies are read off its inputs' type, and stated nowhere else.
pub trait TierInputs {
    const BUILDS_ON: &'static [Tier];
}

impl TierInputs for () {
    const BUILDS_ON: &'static [Tier] = &[];
}

impl TierInputs for NetworkRefs {
    const BUILDS_ON: &'static [Tier] = &[Tier::Network];
}

impl TierInputs for (NetworkRefs, AlbRefs) {
    const BUILDS_ON: &'static [Tier] = &[Tier::Network, Tier::Alb];
}

pub trait TierCrate {
    const TIER: Tier;
    /// What the tier refers to of the tiers it builds on (existing ids or planned keys).
    type Inputs: TierInputs;
    /// What exists of the tier. Ownership is decided in `observe`: it holds only what
    /// is the stack's, and the names others hold that the tier wants.
    type Observed: Clone + Default;
    type Desired;
    type Step: Step + Clone;
    /// What the tiers built on it need, once it stands complete.
    type Outputs;

    /// The AWS operations `observe` and `prepare_deploy` call, as IAM names them
    /// (`ec2:DescribeVpcs`): they run inside [`crate::calls::declared`] scopes of these.
    const READS: &'static [&'static str];

    /// Reads what exists of the tier, found by the stack's tags and names.
    fn observe(ctx: &AwsContext, config: &Config) -> impl Future<Output = Result<Self::Observed>>;
    /// Reads what only a deploy's plan needs beyond what exists, so the plan holds every
    /// decision (the compute tier: the AMI a launch would use). Nothing by default.
    fn prepare_deploy(
        _ctx: &AwsContext,
        _config: &Config,
        _observed: &mut Self::Observed,
    ) -> impl Future<Output = Result<()>> {
        async { Ok(()) }
    }
    /// What the tier should be, from the config and its inputs.
    fn desired(config: &Config, inputs: &Self::Inputs) -> Self::Desired;
    /// The steps from what exists to what is desired, and what deploy cannot change.
    fn plan(desired: &Self::Desired, observed: &Self::Observed) -> Plan<Self::Step>;
    /// The steps that delete everything observed.
    fn teardown(config: &Config, observed: &Self::Observed) -> Plan<Self::Step>;
    /// The tier's outputs, when it stands complete.
    fn outputs(config: &Config, observed: &Self::Observed) -> Option<Self::Outputs>;
    /// Makes one attempt at a step: done, or "not yet" for the scheduler to ask again
    /// (within the step's declared wait); `created` holds the ids of what the steps before
    /// it made.
    fn run(ctx: &AwsContext, step: &Self::Step, created: &Created) -> impl Future<Output = Result<Outcome>>;
}

/// Deploys one tier alone on what it refers to of the tiers below, which stand: observe,
/// plan, show the plan, apply it, and return the outputs. On a deployed tier it makes
/// read calls only.
pub async fn deploy_alone<T: TierCrate>(ctx: &AwsContext, config: &Config, inputs: &T::Inputs) -> Result<T::Outputs> {
    let mut observed = declared(T::READS, T::observe(ctx, config)).await?;
    declared(T::READS, T::prepare_deploy(ctx, config, &mut observed)).await?;
    let plan = T::plan(&T::desired(config, inputs), &observed);
    ctx.progress.line(plan.render().trim_end());
    if !plan.steps.is_empty() || !plan.conflicts.is_empty() {
        crate::schedule::apply(ctx, &plan, T::run).await?;
        observed = declared(T::READS, T::observe(ctx, config)).await?;
    }
    T::outputs(config, &observed).ok_or_else(|| Error::incomplete(T::TIER, &config.stack.name))
}

/// Observes and plans the teardown of one tier.
pub async fn plan_teardown_alone<T: TierCrate>(ctx: &AwsContext, config: &Config) -> Result<Plan<T::Step>> {
    Ok(T::teardown(config, &declared(T::READS, T::observe(ctx, config)).await?))
}
