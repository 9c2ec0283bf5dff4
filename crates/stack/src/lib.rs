//! The whole stack: each tier crate owns its resources; this crate only sequences them by
//! the dependency graph of SPEC.md ("Order"):
//!
//! ```text
//! network ──► alb ──► compute
//!    └─────────────────┘
//! ```
//!
//! Deploy runs the graph forwards, teardown backwards. A tier deployed alone finds the
//! outputs of the tiers it builds on by their tags, and stops with the command that
//! deploys them when they are missing.

use serde::Serialize;
use three_tier_core::outputs::{AlbOutputs, ComputeOutputs, NetworkOutputs};
use three_tier_core::{AwsContext, Config, Error, Plan, Result, Step, Tier};

/// The tiers this build knows, in deploy order.
pub const TIERS: &[Tier] = &[Tier::Network, Tier::Alb, Tier::Compute];

/// The outputs of the tiers a command touched or read.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StackOutputs {
    pub network: Option<NetworkOutputs>,
    pub alb: Option<AlbOutputs>,
    pub compute: Option<ComputeOutputs>,
}

/// The tiers a tier builds on.
pub fn dependencies(tier: Tier) -> &'static [Tier] {
    match tier {
        Tier::Network => &[],
        Tier::Alb | Tier::Database => &[Tier::Network],
        Tier::Compute => &[Tier::Network, Tier::Alb],
    }
}

/// Deploys `tiers` in dependency order, each on the outputs of the ones before it.
pub async fn deploy(ctx: &AwsContext, config: &Config, tiers: &[Tier]) -> Result<StackOutputs> {
    let mut outputs = StackOutputs::default();
    let wants = |tier| tiers.contains(&tier);
    if wants(Tier::Network) {
        outputs.network = Some(network::deploy(ctx, config).await?);
    }
    if wants(Tier::Alb) {
        let network = network_outputs(ctx, config, &outputs, Tier::Alb).await?;
        outputs.alb = Some(alb::deploy(ctx, config, &network).await?);
        outputs.network = Some(network);
    }
    if wants(Tier::Compute) {
        let network = network_outputs(ctx, config, &outputs, Tier::Compute).await?;
        let alb = alb_outputs(ctx, config, &outputs, Tier::Compute).await?;
        outputs.compute = Some(compute::deploy(ctx, config, &network, &alb).await?);
        outputs.network = Some(network);
        outputs.alb = Some(alb);
    }
    Ok(outputs)
}

/// One tier's plan, whatever the tier.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum TierPlan {
    Network(Plan<network::NetworkStep>),
    Alb(Plan<alb::AlbStep>),
    Compute(Plan<compute::ComputeStep>),
}

impl TierPlan {
    pub fn render(&self) -> String {
        match self {
            TierPlan::Network(plan) => plan.render(),
            TierPlan::Alb(plan) => plan.render(),
            TierPlan::Compute(plan) => plan.render(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            TierPlan::Network(plan) => plan.steps.is_empty(),
            TierPlan::Alb(plan) => plan.steps.is_empty(),
            TierPlan::Compute(plan) => plan.steps.is_empty(),
        }
    }

    fn changes(&self) -> usize {
        fn count<S: Step>(plan: &Plan<S>) -> usize {
            plan.steps.iter().filter(|s| s.change() != three_tier_core::Change::Wait).count()
        }
        match self {
            TierPlan::Network(plan) => count(plan),
            TierPlan::Alb(plan) => count(plan),
            TierPlan::Compute(plan) => count(plan),
        }
    }
}

/// What deploy would do to each of `tiers`. A tier whose dependencies do not exist yet is
/// planned on stand-ins for their outputs, shown as `(new ...)`.
pub async fn plan_deploy(ctx: &AwsContext, config: &Config, tiers: &[Tier]) -> Result<Vec<TierPlan>> {
    let mut plans = Vec::new();
    let stack = &config.stack.name;
    let network = network::outputs(&network::observe(ctx, stack).await?);
    if tiers.contains(&Tier::Network) {
        plans.push(TierPlan::Network(network::plan_deploy(ctx, config).await?.1));
    }
    let network = network.unwrap_or_else(NetworkOutputs::placeholder);
    let needs_alb = tiers.contains(&Tier::Alb) || tiers.contains(&Tier::Compute);
    let alb = if needs_alb { alb::outputs(config, &alb::observe(ctx, stack).await?) } else { None };
    if tiers.contains(&Tier::Alb) {
        plans.push(TierPlan::Alb(alb::plan_deploy(ctx, config, &network).await?.1));
    }
    if tiers.contains(&Tier::Compute) {
        plans.push(TierPlan::Compute(compute::plan_deploy(ctx, config, &network, alb.as_ref()).await?.1));
    }
    Ok(plans)
}

/// What teardown of `tiers` would delete, in the order it deletes: the graph backwards.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TeardownPlan {
    pub compute: Option<Plan<compute::ComputeStep>>,
    pub alb: Option<Plan<alb::AlbStep>>,
    pub network: Option<Plan<network::NetworkStep>>,
}

impl TeardownPlan {
    pub fn tiers(&self) -> Vec<TierPlan> {
        let mut plans = Vec::new();
        plans.extend(self.compute.clone().map(TierPlan::Compute));
        plans.extend(self.alb.clone().map(TierPlan::Alb));
        plans.extend(self.network.clone().map(TierPlan::Network));
        plans
    }

    pub fn render(&self) -> String {
        self.tiers().iter().map(TierPlan::render).collect()
    }

    /// Whether there is anything to delete.
    pub fn deletes_nothing(&self) -> bool {
        self.tiers().iter().all(|plan| plan.changes() == 0)
    }
}

pub async fn plan_teardown(ctx: &AwsContext, config: &Config, tiers: &[Tier]) -> Result<TeardownPlan> {
    let stack = &config.stack.name;
    let mut plan = TeardownPlan::default();
    if tiers.contains(&Tier::Compute) {
        // The instance is deregistered from the app target group while the group exists.
        let app_group = config.names().account_unique(&config.alb.target_group_name);
        let alb = alb::observe(ctx, stack).await?;
        let target_group = alb.target_group(&app_group).map(|g| g.arn.clone());
        plan.compute = Some(compute::plan_teardown(ctx, config, target_group.as_deref()).await?);
    }
    if tiers.contains(&Tier::Alb) {
        plan.alb = Some(alb::plan_teardown(ctx, config).await?);
    }
    if tiers.contains(&Tier::Network) {
        plan.network = Some(network::plan_teardown(ctx, config).await?);
    }
    Ok(plan)
}

/// Applies a teardown plan: compute, then ALB, then network.
pub async fn teardown(ctx: &AwsContext, plan: &TeardownPlan) -> Result<()> {
    if let Some(compute) = &plan.compute {
        compute::apply(ctx, compute).await?;
    }
    if let Some(alb) = &plan.alb {
        alb::apply(ctx, alb).await?;
    }
    if let Some(network) = &plan.network {
        network::apply(ctx, network).await?;
    }
    Ok(())
}

async fn network_outputs(ctx: &AwsContext, config: &Config, known: &StackOutputs, tier: Tier) -> Result<NetworkOutputs> {
    if let Some(network) = &known.network {
        return Ok(network.clone());
    }
    let observed = network::observe(ctx, &config.stack.name).await?;
    network::outputs(&observed).ok_or_else(|| missing(config, tier, Tier::Network))
}

async fn alb_outputs(ctx: &AwsContext, config: &Config, known: &StackOutputs, tier: Tier) -> Result<AlbOutputs> {
    if let Some(alb) = &known.alb {
        return Ok(alb.clone());
    }
    let observed = alb::observe(ctx, &config.stack.name).await?;
    alb::outputs(config, &observed).ok_or_else(|| missing(config, tier, Tier::Alb))
}

fn missing(config: &Config, tier: Tier, needs: Tier) -> Error {
    Error::MissingDependency { tier, needs, stack: config.stack.name.clone() }
}
