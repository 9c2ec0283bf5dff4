//! What the tiers of a three-tier stack share: the config, names and tags, typed outputs,
//! the AWS context, plans, errors, and the waits.
//!
//! Nothing here is specific to one tier; each tier crate owns its own resources.

pub mod aws;
pub mod calls;
pub mod config;
pub mod error;
pub mod graph;
pub mod interrupt;
pub mod lock;
pub mod naming;
pub mod outputs;
pub mod plan;
pub mod progress;
pub mod roles;
pub mod schedule;
pub mod tier;
pub mod wait;

pub use aws::{AwsContext, Target};
pub use config::{Config, ConfigError};
pub use error::{AwsResultExt, Error, Result};
pub use graph::{Durations, Graph, Prediction};
pub use graph::{Key, Ready, keys};
pub use plan::{Change, Conflict, Created, Facts, Plan, Ref, Step};
pub use roles::{RouteTableRole, SecurityGroupRole, SubnetRole, Tier};
pub use tier::TierCrate;
