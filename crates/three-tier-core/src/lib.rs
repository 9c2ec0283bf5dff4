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
pub use config::{Config, ConfigError, NatGateways, NatPlacement};
pub use error::{AwsResultExt, Error, Result};
pub use graph::{Durations, Graph, Prediction};
pub use graph::{Key, Ready, keys};
pub use plan::{Bound, Change, Conflict, Created, Facts, Plan, Ref, Step, Wait};
pub use roles::{RouteTableKey, RouteTableRole, SecurityGroupRole, SubnetKey, SubnetRole, Tier};
pub use tier::TierCrate;

/// The core's two sides: the planner (config, names, plans, the graph and its
/// prediction) is pure and needs nothing of the executor (the AWS context, the scheduler,
/// waits, the lock, the call log), which builds on it. Kept so: a planner module that
/// names an executor module fails this test.
#[cfg(test)]
mod layering {
    const PLANNER: [(&str, &str); 8] = [
        ("config", include_str!("config.rs")),
        ("naming", include_str!("naming.rs")),
        ("roles", include_str!("roles.rs")),
        ("plan", include_str!("plan.rs")),
        ("graph", include_str!("graph.rs")),
        ("outputs", include_str!("outputs.rs")),
        ("error", include_str!("error.rs")),
        ("progress", include_str!("progress.rs")),
    ];
    const EXECUTOR: [&str; 8] = [
        "crate::aws",
        "crate::AwsContext",
        "crate::schedule",
        "crate::wait",
        "crate::lock",
        "crate::calls",
        "crate::interrupt",
        "crate::tier",
    ];

    /// The module's code, its tests and comments left out.
    fn code(source: &str) -> impl Iterator<Item = &str> {
        let code = source.split("#[cfg(test)]").next().unwrap_or(source);
        code.lines().filter(|line| !line.trim_start().starts_with("//"))
    }

    #[test]
    fn the_planner_side_names_nothing_of_the_executor() {
        for (module, source) in PLANNER {
            for line in code(source) {
                let named: Vec<&str> = EXECUTOR.iter().copied().filter(|e| line.contains(e)).collect();
                assert!(named.is_empty(), "{module}.rs names {named:?}: `{}`", line.trim());
                assert!(!line.contains("AwsContext"), "{module}.rs names AwsContext: `{}`", line.trim());
            }
        }
    }

    #[test]
    fn the_test_sees_a_name_of_the_executor() {
        let source = "//! docs name crate::aws freely\nuse crate::aws::AwsContext;\n#[cfg(test)]\nuse crate::schedule;";
        let named: Vec<&str> = code(source).filter(|line| line.contains("crate::aws")).collect();
        assert_eq!(named, ["use crate::aws::AwsContext;"]);
    }
}
