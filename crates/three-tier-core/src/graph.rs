//! The stack-wide graph: every step of every tier a node, with the nodes it needs done
//! first. Built once from the plans, checked for cycles and dangling references, then
//! walked by [`crate::schedule`] and used to predict how long the walk takes.
//!
//! A step needs what it refers to and what it says it must come after:
//! - every [`Ref::Planned`] key it holds: exactly one step of the graph must create it;
//! - every condition of [`Step::after`]: all the steps that produce it (none means it already
//!   holds, e.g. a NAT gateway that is available needs no wait).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::plan::{Change, Step};
use crate::progress::human;
use crate::roles::Tier;

/// A condition a step makes true and other steps wait for, beyond the ids they refer to.
/// Typed: a misspelt condition does not compile. One no step of the graph makes already
/// holds (a NAT gateway that is available needs no wait).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ready {
    // Met by steps of different tiers.
    InternetGatewayAttached,
    InternetGatewayDetached,
    NatGatewayAvailable,
    /// A default route through the NAT gateway is in place.
    NatRouted,
    /// Subnets are in their route tables.
    SubnetsRouted,
    NatGatewayDeleted,
    /// The NAT gateway of this id is deleted.
    NatGatewayGone(String),
    AddressReleased,
    InstanceTerminated,
    TargetsDeregistered,
    /// A deleted load balancer's network interfaces are gone: its subnets and security
    /// group are free.
    LoadBalancerReleased,
    DbInstanceDeleted,
    DbSubnetGroupDeleted,
    // Within the network tier.
    DnsSupport,
    NatGatewayDeleting,
    IngressRevoked,
    RouteTableDisassociated,
    SecurityGroupDeleted,
    RouteTableDeleted,
    SubnetDeleted,
    InternetGatewayDeleted,
    // Within the ALB tier.
    ForwardingMoved,
    /// An HTTPS listener takes requests: a redirect to HTTPS waits for it, so none is
    /// sent to a port that does not answer yet.
    HttpsListening,
    RuleDeleted,
    ListenerDeleted,
    LoadBalancerDeleting,
    // Within the compute tier. IAM's are per role or profile (by name), so retiring the
    // legacy role and profile waits for nothing of the new ones.
    RoleCreated,
    InstanceProfileCreated,
    ProfileHoldsRole,
    InstanceStopped,
    InstanceStarted,
    /// The instance so referred to (its id, or `(new KEY)`) runs.
    InstanceRunning(String),
    InstanceTerminating,
    ProfileMoved,
    /// The instance so referred to (its id, or `(new KEY)`) is registered in a target group.
    TargetRegistered(String),
    /// The instance keyed so is marked for replacement: its new one may launch.
    Retired(String),
    /// The instance keyed so (the new one of a replacement) is a healthy target.
    TargetHealthy(String),
    /// The instance of this id is deregistered and draining.
    Draining(String),
    /// The named instance profile holds no role.
    ProfileEmptied(String),
    /// The named role is in no instance profile.
    RoleOutOfProfiles(String),
    /// A policy of the named role is removed.
    RolePolicyRemoved(String),
    // Within the database tier.
    DbSubnetGroupInPlace,
    DbInstanceCreated,
    DbInstanceStarting,
    DbInstanceStarted,
    DbInstanceModified,
    DbInstanceDeleting,
}

/// What a step makes: the resource a [`crate::Ref::Planned`] key names, or a condition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    Created(String),
    Ready(Ready),
}

impl Key {
    pub fn created(key: &str) -> Key {
        Key::Created(key.to_owned())
    }
}

impl From<Ready> for Key {
    fn from(ready: Ready) -> Key {
        Key::Ready(ready)
    }
}

/// Conditions as keys, for a step's facts.
pub fn keys<const N: usize>(conditions: [Ready; N]) -> Vec<Key> {
    conditions.into_iter().map(Key::Ready).collect()
}

/// A graph that cannot be walked: a bug in a tier's plan, found before any change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("step `{step}` refers to {key}, which no step creates")]
    NoProducer { step: String, key: String },
    #[error("{key} is created by {count} steps, so `{step}` cannot tell which it refers to")]
    ManyProducers { step: String, key: String, count: usize },
    #[error("steps wait on each other in a cycle: {}", cycle.join(" → "))]
    Cycle { cycle: Vec<String> },
    /// A wait bounded only by the propagation limit would give up on a database after two
    /// minutes: a step that waits says how long it may.
    #[error("step `{step}` waits for AWS but declares no wait (what, bound, fix) of its own")]
    WaitUndeclared { step: String },
}

/// One node: a tier's step, and the nodes it needs.
#[derive(Debug, Clone, Serialize)]
pub struct Node<S> {
    pub tier: Tier,
    pub step: S,
    /// Indices of the nodes that must be done first, ascending.
    pub needs: Vec<usize>,
}

/// A checked graph: every reference has its producer and there is no cycle.
#[derive(Debug, Clone, Serialize)]
pub struct Graph<S> {
    pub nodes: Vec<Node<S>>,
}

impl<S> Default for Graph<S> {
    fn default() -> Self {
        Graph { nodes: Vec::new() }
    }
}

impl<S: Step> Graph<S> {
    /// Builds the graph of `steps`, each with its tier; their order only breaks ties.
    pub fn build(steps: impl IntoIterator<Item = (Tier, S)>) -> Result<Graph<S>, GraphError> {
        let steps: Vec<(Tier, S)> = steps.into_iter().collect();
        let mut producers: BTreeMap<Key, Vec<usize>> = BTreeMap::new();
        for (index, (_, step)) in steps.iter().enumerate() {
            if step.change() == Change::Wait && step.wait().is_none() {
                return Err(GraphError::WaitUndeclared { step: step.describe() });
            }
            for key in step.produces() {
                producers.entry(key).or_default().push(index);
            }
        }
        let mut nodes = Vec::with_capacity(steps.len());
        for (index, (tier, step)) in steps.into_iter().enumerate() {
            let mut needs = BTreeSet::new();
            for key in planned_refs(&step) {
                match producers.get(&Key::Created(key.clone())).map(Vec::as_slice) {
                    Some([producer]) => needs.insert(*producer),
                    None | Some([]) => return Err(GraphError::NoProducer { step: step.describe(), key }),
                    Some(many) => {
                        return Err(GraphError::ManyProducers { step: step.describe(), key, count: many.len() });
                    }
                };
            }
            for key in step.after() {
                needs.extend(producers.get(&key).into_iter().flatten().copied().filter(|&p| p != index));
            }
            nodes.push(Node { tier, step, needs: needs.into_iter().collect() });
        }
        let graph = Graph { nodes };
        graph.check_acyclic()?;
        Ok(graph)
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every node that must be done before `index`: its needs, theirs, and so on.
    pub fn ancestors(&self, index: usize) -> BTreeSet<usize> {
        let mut found = BTreeSet::new();
        let mut todo = self.nodes[index].needs.clone();
        while let Some(next) = todo.pop() {
            if found.insert(next) {
                todo.extend(&self.nodes[next].needs);
            }
        }
        found
    }

    /// The first node whose step `matches`.
    pub fn find(&self, matches: impl Fn(&S) -> bool) -> Option<usize> {
        self.nodes.iter().position(|node| matches(&node.step))
    }

    /// The nodes each node is needed by.
    pub fn dependents(&self) -> Vec<Vec<usize>> {
        let mut dependents = vec![Vec::new(); self.nodes.len()];
        for (index, node) in self.nodes.iter().enumerate() {
            for &need in &node.needs {
                dependents[need].push(index);
            }
        }
        dependents
    }

    /// A deterministic order in which every node comes after its needs: of the nodes
    /// ready at each point, the one listed first.
    pub fn order(&self) -> Vec<usize> {
        let dependents = self.dependents();
        let mut waiting: Vec<usize> = self.nodes.iter().map(|n| n.needs.len()).collect();
        let mut ready: BTreeSet<usize> = (0..self.nodes.len()).filter(|&i| waiting[i] == 0).collect();
        let mut order = Vec::with_capacity(self.nodes.len());
        while let Some(next) = ready.pop_first() {
            order.push(next);
            for &dependent in &dependents[next] {
                waiting[dependent] -= 1;
                if waiting[dependent] == 0 {
                    ready.insert(dependent);
                }
            }
        }
        order
    }

    fn check_acyclic(&self) -> Result<(), GraphError> {
        let order = self.order();
        if order.len() == self.nodes.len() {
            return Ok(());
        }
        // Walk needs from a node left over until one repeats: that loop is the cycle.
        let placed: BTreeSet<usize> = order.into_iter().collect();
        let mut path = vec![(0..self.nodes.len()).find(|i| !placed.contains(i)).expect("a node is left over")];
        loop {
            let last = *path.last().expect("path starts non-empty");
            let next =
                *self.nodes[last].needs.iter().find(|n| !placed.contains(n)).expect("a left-over node needs another");
            if let Some(start) = path.iter().position(|&n| n == next) {
                let mut cycle: Vec<String> =
                    path[start..].iter().rev().map(|&n| self.nodes[n].step.describe()).collect();
                cycle.push(cycle[0].clone());
                return Err(GraphError::Cycle { cycle });
            }
            path.push(next);
        }
    }

    /// How long walking the graph takes with every node started as soon as its needs are
    /// done: the longest chain of typical durations, and that chain.
    pub fn predict(&self, durations: &Durations) -> Prediction {
        let mut finish = vec![0.0_f64; self.nodes.len()];
        let mut via: Vec<Option<usize>> = vec![None; self.nodes.len()];
        for index in self.order() {
            let node = &self.nodes[index];
            let (start, before) = node
                .needs
                .iter()
                .map(|&need| (finish[need], Some(need)))
                .fold((0.0, None), |best, candidate| if candidate.0 > best.0 { candidate } else { best });
            finish[index] = start + durations.of(&node.step);
            via[index] = before;
        }
        let Some(last) = (0..self.nodes.len()).max_by(|&a, &b| finish[a].total_cmp(&finish[b]).then(b.cmp(&a))) else {
            return Prediction { seconds: 0.0, long_pole: Vec::new(), tiers: Vec::new() };
        };
        let mut tiers: Vec<(Tier, f64)> = Vec::new();
        for (node, &done) in self.nodes.iter().zip(&finish) {
            match tiers.iter_mut().find(|(tier, _)| *tier == node.tier) {
                Some((_, latest)) => *latest = latest.max(done),
                None => tiers.push((node.tier, done)),
            }
        }
        let mut chain = vec![last];
        while let Some(before) = via[*chain.last().expect("chain starts non-empty")] {
            chain.push(before);
        }
        chain.reverse();
        let long_pole = chain
            .into_iter()
            .map(|index| {
                let step = &self.nodes[index].step;
                PoleStep { tier: self.nodes[index].tier, label: label(step), seconds: durations.of(step) }
            })
            .collect();
        Prediction { seconds: finish[last], long_pole, tiers }
    }
}

/// The keys of every [`Ref::Planned`] a step holds, wherever in it: read off its
/// serialised form, so no step type can forget one.
pub fn planned_refs<S: Serialize>(step: &S) -> Vec<String> {
    fn walk(value: &serde_json::Value, keys: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                if let (1, Some(serde_json::Value::String(key))) = (map.len(), map.get("planned")) {
                    keys.push(key.clone());
                }
                map.values().for_each(|v| walk(v, keys));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, keys)),
            _ => {}
        }
    }
    let mut keys = Vec::new();
    walk(&serde_json::to_value(step).expect("steps serialise to JSON"), &mut keys);
    keys.sort();
    keys.dedup();
    keys
}

/// A step's name in a chain: its description without the settings in parentheses.
fn label<S: Step>(step: &S) -> String {
    let text = step.describe();
    match text.find(" (") {
        Some(cut) if step.change() != Change::Wait => text[..cut].to_owned(),
        _ => text,
    }
}

/// AWS's typical durations, by name (`durations.json`, which the strict emulator's
/// clock follows too).
#[derive(Debug, Clone, PartialEq)]
pub struct Durations {
    seconds: BTreeMap<String, f64>,
}

/// The typical durations file: SPEC.md's "Typical times on AWS".
pub const DURATIONS_JSON: &str = include_str!("../durations.json");

impl Durations {
    /// The durations of real AWS.
    pub fn aws() -> Durations {
        let all: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(DURATIONS_JSON).expect("durations.json is valid");
        Durations { seconds: all.into_iter().filter_map(|(k, v)| Some((k, v.as_f64()?))).collect() }
    }

    /// Every duration times `factor`: the strict emulator's clock runs at a scale.
    pub fn scaled(&self, factor: f64) -> Durations {
        Durations { seconds: self.seconds.iter().map(|(k, v)| (k.clone(), v * factor)).collect() }
    }

    pub fn get(&self, name: &str) -> f64 {
        self.seconds.get(name).copied().unwrap_or(0.0)
    }

    /// How long a step takes until what it does is usable by the steps after it: the
    /// typical duration it names, else one API call (a wait, one poll at least).
    pub fn of<S: Step>(&self, step: &S) -> f64 {
        self.get("api_call") + step.typical().map_or(0.0, |name| self.get(name))
    }
}

/// The predicted wall time of a walk, and the chain of steps that sets it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    pub seconds: f64,
    pub long_pole: Vec<PoleStep>,
    /// When each tier's last step is done, in the order the tiers first appear.
    pub tiers: Vec<(Tier, f64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoleStep {
    pub tier: Tier,
    pub label: String,
    pub seconds: f64,
}

impl Prediction {
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.seconds)
    }

    /// One line: `about 6m02s; long pole: VPC → ... → wait for ... (6m00s)`. Only the
    /// steps of the chain that take time beyond a call show their own duration.
    pub fn render(&self) -> String {
        if self.long_pole.is_empty() {
            return "nothing to wait for".into();
        }
        let mut out = format!("about {}; long pole: ", human(self.duration()));
        for (position, step) in self.long_pole.iter().enumerate() {
            if position > 0 {
                out.push_str(" → ");
            }
            out.push_str(&step.label);
            if step.seconds >= 1.0 {
                let _ = write!(out, " ({})", human(Duration::from_secs_f64(step.seconds)));
            }
        }
        if self.tiers.len() > 1 {
            let done: Vec<String> = self
                .tiers
                .iter()
                .map(|(tier, seconds)| format!("{tier} {}", human(Duration::from_secs_f64(*seconds))))
                .collect();
            let _ = write!(out, "\n  each tier done after: {}", done.join(", "));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Ref;

    #[derive(Debug, Clone, Serialize)]
    struct TestStep {
        name: &'static str,
        key: Option<&'static str>,
        uses: Vec<Ref>,
        #[serde(skip)]
        after: Vec<Key>,
        #[serde(skip)]
        produces: Vec<Key>,
        typical: Option<&'static str>,
        /// A wait that leaves out its declaration (a bug the graph refuses).
        undeclared: bool,
    }

    impl Step for TestStep {
        fn facts(&self) -> crate::plan::Facts {
            crate::plan::Facts {
                change: if self.typical.is_some() { Change::Wait } else { Change::Create },
                description: format!("{} (settings)", self.name),
                actions: &[],
                produces: self.key.iter().map(|k| Key::created(k)).chain(self.produces.clone()).collect(),
                after: self.after.clone(),
                typical: self.typical,
                wait: self
                    .typical
                    .filter(|_| !self.undeclared)
                    .map(|_| crate::plan::Wait::until(self.name, crate::plan::Bound::Propagation)),
            }
        }
    }

    fn step(name: &'static str) -> TestStep {
        TestStep { name, key: None, uses: vec![], after: vec![], produces: vec![], typical: None, undeclared: false }
    }

    fn graph(steps: Vec<TestStep>) -> Result<Graph<TestStep>, GraphError> {
        Graph::build(steps.into_iter().map(|s| (Tier::Network, s)))
    }

    #[test]
    fn references_become_edges_and_readiness_waits_for_every_producer() {
        let vpc = TestStep { key: Some("vpc"), ..step("vpc") };
        let subnet = TestStep { key: Some("subnet"), uses: vec![Ref::planned("vpc")], ..step("subnet") };
        let revoke_a = TestStep { produces: keys([Ready::IngressRevoked]), ..step("revoke a") };
        let revoke_b = TestStep { produces: keys([Ready::IngressRevoked]), ..step("revoke b") };
        let delete = TestStep {
            after: keys([Ready::IngressRevoked, Ready::NatRouted]),
            uses: vec![Ref::existing("sg-1")],
            ..step("delete")
        };
        let graph = graph(vec![delete, revoke_a, subnet, vpc, revoke_b]).unwrap();
        let needs: Vec<_> = graph.nodes.iter().map(|n| n.needs.clone()).collect();
        assert_eq!(needs, [vec![1, 4], vec![], vec![3], vec![], vec![]]);
        assert_eq!(graph.order(), [1, 3, 2, 4, 0]);
    }

    #[test]
    fn a_reference_without_a_producer_is_refused() {
        let subnet = TestStep { uses: vec![Ref::planned("vpc")], ..step("subnet") };
        let err = graph(vec![subnet]).unwrap_err();
        assert_eq!(err, GraphError::NoProducer { step: "subnet (settings)".into(), key: "vpc".into() });
    }

    #[test]
    fn a_wait_without_its_declared_bound_is_refused() {
        let declared = TestStep { typical: Some("db"), ..step("wait for db") };
        assert!(graph(vec![declared.clone()]).is_ok());
        let bare = TestStep { undeclared: true, ..declared };
        assert_eq!(
            graph(vec![bare]).unwrap_err(),
            GraphError::WaitUndeclared { step: "wait for db (settings)".into() }
        );
    }

    #[test]
    fn a_reference_with_two_producers_is_refused() {
        let a = TestStep { key: Some("vpc"), ..step("a") };
        let b = TestStep { key: Some("vpc"), ..step("b") };
        let user = TestStep { uses: vec![Ref::planned("vpc")], ..step("user") };
        assert!(matches!(graph(vec![a, b, user]), Err(GraphError::ManyProducers { count: 2, .. })));
    }

    #[test]
    fn a_cycle_is_refused_and_named() {
        let a = TestStep { key: Some("a"), uses: vec![Ref::planned("c")], ..step("a") };
        let b = TestStep { key: Some("b"), uses: vec![Ref::planned("a")], ..step("b") };
        let c = TestStep { key: Some("c"), after: vec![Key::created("b")], ..step("c") };
        let free = step("free");
        let err = graph(vec![free, a, b, c]).unwrap_err();
        let GraphError::Cycle { cycle } = &err else { panic!("{err}") };
        assert_eq!(cycle.len(), 4, "{err}");
        assert_eq!(cycle.first(), cycle.last());
        assert!(!err.to_string().contains("free"), "{err}");
    }

    #[test]
    fn the_order_is_deterministic_and_respects_every_need() {
        let steps = || {
            vec![
                TestStep { key: Some("x"), uses: vec![Ref::planned("w")], ..step("x") },
                TestStep { key: Some("w"), ..step("w") },
                TestStep { after: vec![Key::created("x")], ..step("y") },
                step("z"),
            ]
        };
        let first = graph(steps()).unwrap();
        assert_eq!(first.order(), graph(steps()).unwrap().order());
        let order = first.order();
        for (position, &index) in order.iter().enumerate() {
            for need in &first.nodes[index].needs {
                assert!(order[..position].contains(need));
            }
        }
    }

    #[test]
    fn the_prediction_follows_the_longest_chain_of_typical_durations() {
        let durations = Durations {
            seconds: [("api_call", 1.0), ("slow", 100.0), ("quick", 10.0)].map(|(k, v)| (k.to_owned(), v)).into(),
        };
        let vpc = TestStep { key: Some("vpc"), ..step("vpc") };
        let db = TestStep { key: Some("db"), uses: vec![Ref::planned("vpc")], ..step("db") };
        let db_wait = TestStep { uses: vec![Ref::planned("db")], typical: Some("slow"), ..step("wait for db") };
        let nat_wait = TestStep { uses: vec![Ref::planned("vpc")], typical: Some("quick"), ..step("wait for nat") };
        let graph = graph(vec![nat_wait, vpc, db, db_wait]).unwrap();
        let prediction = graph.predict(&durations);
        assert_eq!(prediction.seconds, 103.0);
        let labels: Vec<&str> = prediction.long_pole.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["vpc", "db", "wait for db (settings)"]);
        assert_eq!(prediction.render(), "about 1m43s; long pole: vpc (1s) → db (1s) → wait for db (settings) (1m41s)");
    }
}
