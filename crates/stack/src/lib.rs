//! The whole stack. Each tier crate owns its resources; this crate only sequences them by
//! the dependency graph of SPEC.md ("Order"):
//!
//! ```text
//! network ─┬─► alb ─────────┐
//!          ├─► (NAT ready) ─┴─► compute
//!          └─► database
//! ```
//!
//! Deploy runs the graph forwards with independent work concurrent: the database (minutes
//! on AWS) starts once the network's subnets and security groups exist, the ALB once the
//! internet gateway is attached too, both while the NAT gateway becomes available; compute
//! starts when the ALB exists and the NAT gateway is available (its user data downloads
//! through it). Teardown runs the graph backwards, but for the NAT gateway, whose deletion
//! starts at once. A tier deployed alone finds the outputs of the tiers it builds on by
//! their tags, and stops with the command that deploys them when they are missing.

mod status;
mod verify;

use serde::Serialize;
use three_tier_core::outputs::{AlbOutputs, ComputeOutputs, DatabaseOutputs, NetworkOutputs};
use three_tier_core::{AwsContext, Config, Created, Error, Plan, Result, Step, Tier};

pub use status::{TierStatus, status};
pub use verify::{Check, NGINX_WELCOME, Outcome, VerifyLimits, database_check_script, verify};

/// Every tier, in deploy order.
pub const TIERS: &[Tier] = &[Tier::Network, Tier::Alb, Tier::Compute, Tier::Database];

/// The outputs of the tiers a command touched or read.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StackOutputs {
    pub network: Option<NetworkOutputs>,
    pub alb: Option<AlbOutputs>,
    pub compute: Option<ComputeOutputs>,
    pub database: Option<DatabaseOutputs>,
}

/// The tiers a tier builds on.
pub fn dependencies(tier: Tier) -> &'static [Tier] {
    match tier {
        Tier::Network => &[],
        Tier::Alb | Tier::Database => &[Tier::Network],
        Tier::Compute => &[Tier::Network, Tier::Alb],
    }
}

/// The tiers built on a tier.
pub fn dependents(tier: Tier) -> Vec<Tier> {
    TIERS.iter().copied().filter(|t| dependencies(*t).contains(&tier)).collect()
}

/// Deploys `tiers`, each on the outputs of the ones it builds on, independent work
/// concurrently (see the crate's documentation).
pub async fn deploy(ctx: &AwsContext, config: &Config, tiers: &[Tier]) -> Result<StackOutputs> {
    let wants = |tier| tiers.contains(&tier);
    // Tiers not being deployed must already stand: checked before any change.
    for &tier in tiers {
        for &needs in dependencies(tier).iter().filter(|needs| !wants(**needs)) {
            require(ctx, config, tier, needs).await?;
        }
    }

    // A network not deployed here stands (checked above): read once.
    let standing_network = if !wants(Tier::Network) && tiers.iter().any(|t| dependencies(*t).contains(&Tier::Network)) {
        network_outputs(ctx, config).await?
    } else {
        None
    };
    // The network up to what the database needs; the database starts on it.
    let (database_network, network_rest) = if wants(Tier::Network) {
        let (database_network, rest) = network::deploy_until_database(ctx, config).await?;
        (Some(database_network), Some(rest))
    } else {
        (standing_network.as_ref().map(NetworkOutputs::database_network), None)
    };
    let database = async {
        match &database_network {
            Some(network) if wants(Tier::Database) => Ok::<_, Error>(Some(database::deploy(ctx, config, network).await?)),
            _ => Ok(None),
        }
    };
    let front = async {
        // The network on up to the wait for its NAT gateway: what the ALB needs.
        let (early_network, nat_steps) = match network_rest {
            Some(rest) => {
                let (outputs, rest) = network::deploy_until_nat(ctx, config, rest).await?;
                (Some(outputs), Some(rest))
            }
            None => (standing_network.clone(), None),
        };
        let finish_network = async {
            match nat_steps {
                Some(rest) => Ok::<_, Error>(Some(network::finish_deploy(ctx, config, rest).await?)),
                None => Ok(early_network.clone()),
            }
        };
        let alb = async {
            match &early_network {
                Some(network) if wants(Tier::Alb) => Ok::<_, Error>(Some(alb::deploy(ctx, config, network).await?)),
                _ if wants(Tier::Compute) => Ok(alb_outputs(ctx, config).await?),
                _ => Ok(None),
            }
        };
        let (network, alb) = tokio::try_join!(finish_network, alb)?;
        let compute = match (&network, &alb) {
            (Some(network), Some(alb)) if wants(Tier::Compute) => Some(compute::deploy(ctx, config, network, alb).await?),
            _ => None,
        };
        Ok::<_, Error>((network, alb, compute))
    };
    let (database, (network, alb, compute)) = tokio::try_join!(database, front)?;
    Ok(StackOutputs { network, alb, compute, database })
}

/// One tier's plan, whatever the tier.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum TierPlan {
    Network(Plan<network::NetworkStep>),
    Alb(Plan<alb::AlbStep>),
    Compute(Plan<compute::ComputeStep>),
    Database(Plan<database::DatabaseStep>),
}

macro_rules! each_plan {
    ($self:expr, $plan:ident => $body:expr) => {
        match $self {
            TierPlan::Network($plan) => $body,
            TierPlan::Alb($plan) => $body,
            TierPlan::Compute($plan) => $body,
            TierPlan::Database($plan) => $body,
        }
    };
}

impl TierPlan {
    pub fn render(&self) -> String {
        each_plan!(self, plan => plan.render())
    }

    pub fn is_empty(&self) -> bool {
        each_plan!(self, plan => plan.steps.is_empty())
    }

    pub fn conflicts(&self) -> &[three_tier_core::Conflict] {
        each_plan!(self, plan => &plan.conflicts)
    }

    /// Steps that change AWS (waits aside).
    pub fn changes(&self) -> usize {
        fn count<S: Step>(plan: &Plan<S>) -> usize {
            plan.steps.iter().filter(|s| s.change() != three_tier_core::Change::Wait).count()
        }
        each_plan!(self, plan => count(plan))
    }

    pub fn tier(&self) -> Tier {
        each_plan!(self, plan => plan.tier)
    }
}

/// What deploy would do to each of `tiers`. A tier whose dependencies do not exist yet is
/// planned on stand-ins for their outputs, shown as `(new ...)`.
pub async fn plan_deploy(ctx: &AwsContext, config: &Config, tiers: &[Tier]) -> Result<Vec<TierPlan>> {
    // Each tier is observed once: a tier's plan comes with the state its outputs are read from.
    let mut plans = Vec::new();
    let network = if tiers.contains(&Tier::Network) {
        let (observed, plan) = network::plan_deploy(ctx, config).await?;
        plans.push(TierPlan::Network(plan));
        network::outputs(&observed)
    } else {
        network_outputs(ctx, config).await?
    };
    let network = network.unwrap_or_else(NetworkOutputs::placeholder);
    let alb = if tiers.contains(&Tier::Alb) {
        let (observed, plan) = alb::plan_deploy(ctx, config, &network).await?;
        plans.push(TierPlan::Alb(plan));
        alb::outputs(config, &observed)
    } else if tiers.contains(&Tier::Compute) {
        alb_outputs(ctx, config).await?
    } else {
        None
    };
    if tiers.contains(&Tier::Compute) {
        plans.push(TierPlan::Compute(compute::plan_deploy(ctx, config, &network, alb.as_ref()).await?.1));
    }
    if tiers.contains(&Tier::Database) {
        plans.push(TierPlan::Database(database::plan_deploy(ctx, config, &network.database_network()).await?.1));
    }
    Ok(plans)
}

/// What teardown of some tiers would delete, tier by tier.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TeardownPlan {
    pub compute: Option<Plan<compute::ComputeStep>>,
    pub database: Option<Plan<database::DatabaseStep>>,
    pub alb: Option<Plan<alb::AlbStep>>,
    pub network: Option<Plan<network::NetworkStep>>,
}

impl TeardownPlan {
    /// The plans in the order their tiers go.
    pub fn tiers(&self) -> Vec<TierPlan> {
        let mut plans = Vec::new();
        plans.extend(self.compute.clone().map(TierPlan::Compute));
        plans.extend(self.database.clone().map(TierPlan::Database));
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

    /// A teardown refused for a tier (deletion protection, say) refuses the whole run.
    pub fn check_conflicts(&self) -> Result<()> {
        match self.tiers().iter().flat_map(|plan| plan.conflicts().to_vec()).next() {
            Some(conflict) => Err(conflict.into()),
            None => Ok(()),
        }
    }
}

/// Plans the teardown of `tiers`. A tier that others still stand on is refused unless
/// they are named too, or `cascade` adds them.
pub async fn plan_teardown(ctx: &AwsContext, config: &Config, tiers: &[Tier], cascade: bool) -> Result<TeardownPlan> {
    let mut chosen: Vec<Tier> = tiers.to_vec();
    // Which tiers stand matters only when a named tier has dependents that are not named.
    let unnamed_dependents = tiers.iter().any(|&tier| dependents(tier).iter().any(|d| !tiers.contains(d)));
    let standing = if unnamed_dependents { status::standing(ctx, config).await? } else { Vec::new() };
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
    let mut plan = TeardownPlan::default();
    let mut alb_state = None;
    for tier in chosen {
        match tier_teardown(ctx, config, tier, &mut alb_state).await? {
            TierPlan::Compute(p) => plan.compute = Some(p),
            TierPlan::Database(p) => plan.database = Some(p),
            TierPlan::Alb(p) => plan.alb = Some(p),
            TierPlan::Network(p) => plan.network = Some(p),
        }
    }
    Ok(plan)
}

/// One tier's teardown plan. Both compute and the ALB tier plan from the ALB's state:
/// `alb_state` keeps it between the calls for several tiers, so it is observed once.
async fn tier_teardown(ctx: &AwsContext, config: &Config, tier: Tier, alb_state: &mut Option<alb::Observed>) -> Result<TierPlan> {
    Ok(match tier {
        Tier::Compute | Tier::Alb => {
            let state = match alb_state {
                Some(state) => state,
                None => alb_state.insert(alb::observe(ctx, &config.stack.name).await?),
            };
            if tier == Tier::Alb {
                TierPlan::Alb(alb::teardown_plan(state))
            } else {
                // The instance is deregistered from the app target group while the group exists.
                let app_group = config.names().account_unique(&config.alb.target_group_name);
                let target_group = state.target_group(&app_group).map(|g| g.arn.clone());
                TierPlan::Compute(compute::plan_teardown(ctx, config, target_group.as_deref()).await?)
            }
        }
        Tier::Database => TierPlan::Database(database::plan_teardown(ctx, config).await?),
        Tier::Network => TierPlan::Network(network::plan_teardown(ctx, config).await?),
    })
}

/// Applies a teardown plan by the graph backwards: compute then the ALB, alongside the
/// database (minutes on AWS); the network when all three are gone, except its NAT gateway,
/// whose deletion (a minute on AWS) needs none of them gone and starts at once.
pub async fn teardown(ctx: &AwsContext, plan: &TeardownPlan) -> Result<()> {
    plan.check_conflicts()?;
    let network_steps = plan.network.as_ref().map_or(&[][..], |network| &network.steps[..]);
    let (nat_steps, network_steps) =
        network_steps.split_at(network_steps.iter().position(|step| !step.removes_nat()).unwrap_or(network_steps.len()));
    let nat = async { network::apply_steps(ctx, nat_steps, &mut Created::default()).await };
    let front = async {
        if let Some(compute) = &plan.compute {
            compute::apply(ctx, compute).await?;
        }
        if let Some(alb) = &plan.alb {
            alb::apply(ctx, alb).await?;
        }
        Ok::<_, Error>(())
    };
    let back = async {
        if let Some(database) = &plan.database {
            database::apply(ctx, database).await?;
        }
        Ok(())
    };
    tokio::try_join!(front, back, nat)?;
    network::apply_steps(ctx, network_steps, &mut Created::default()).await
}

/// Every tier's outputs, where the tier stands complete.
pub async fn outputs(ctx: &AwsContext, config: &Config) -> Result<StackOutputs> {
    Ok(StackOutputs {
        network: network_outputs(ctx, config).await?,
        alb: alb_outputs(ctx, config).await?,
        compute: {
            let (role, profile) = compute::iam_names(config);
            compute::outputs(&compute::observe(ctx, &config.stack.name, &role, &profile, None).await?)
        },
        database: database::outputs(&database::observe_config(ctx, config).await?),
    })
}

async fn network_outputs(ctx: &AwsContext, config: &Config) -> Result<Option<NetworkOutputs>> {
    Ok(network::outputs(&network::observe(ctx, &config.stack.name).await?))
}

async fn alb_outputs(ctx: &AwsContext, config: &Config) -> Result<Option<AlbOutputs>> {
    Ok(alb::outputs(config, &alb::observe(ctx, &config.stack.name).await?))
}

/// Fails when the tier `needs` does not stand complete.
async fn require(ctx: &AwsContext, config: &Config, tier: Tier, needs: Tier) -> Result<()> {
    let present = match needs {
        Tier::Network => network_outputs(ctx, config).await?.is_some(),
        Tier::Alb => alb_outputs(ctx, config).await?.is_some(),
        Tier::Compute | Tier::Database => true,
    };
    if present { Ok(()) } else { Err(missing(config, tier, needs)) }
}

fn missing(config: &Config, tier: Tier, needs: Tier) -> Error {
    Error::MissingDependency { tier, needs, stack: config.stack.name.clone() }
}
