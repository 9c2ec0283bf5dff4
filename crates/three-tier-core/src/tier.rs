//! The one shape every tier crate has: effectful `observe` and `run`, pure `desired`,
//! `plan`, `teardown` and `outputs`. The stack drives the four tiers through it: a tier
//! deployed or torn down alone goes through the stack's entry points too.

use std::future::Future;

use crate::aws::AwsContext;
use crate::config::Config;
use crate::error::Result;
use crate::outputs::{AlbRefs, NetworkRefs};
use crate::plan::{Created, Plan, Step};
use crate::roles::Tier;
use crate::wait::Outcome;

/// What a tier refers to of the tiers it builds on, and so which tiers those are: a
/// tier's dependencies are read off its inputs' type, and stated nowhere else.
pub trait TierInputs {
    const BUILDS_ON: &'static [Tier];
    /// These inputs, taken from what the tiers below hold.
    fn from_below(network: &NetworkRefs, alb: &AlbRefs) -> Self;
}

impl TierInputs for () {
    const BUILDS_ON: &'static [Tier] = &[];
    fn from_below(_: &NetworkRefs, _: &AlbRefs) {}
}

impl TierInputs for NetworkRefs {
    const BUILDS_ON: &'static [Tier] = &[Tier::Network];
    fn from_below(network: &NetworkRefs, _: &AlbRefs) -> NetworkRefs {
        network.clone()
    }
}

impl TierInputs for (NetworkRefs, AlbRefs) {
    const BUILDS_ON: &'static [Tier] = &[Tier::Network, Tier::Alb];
    fn from_below(network: &NetworkRefs, alb: &AlbRefs) -> (NetworkRefs, AlbRefs) {
        (network.clone(), alb.clone())
    }
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
    /// Reads what only a deploy's plan of `desired` needs beyond what exists, so the plan
    /// holds every decision (the compute tier: the AMI a launch would use). Nothing by
    /// default.
    fn prepare_deploy(
        _ctx: &AwsContext,
        _desired: &Self::Desired,
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
