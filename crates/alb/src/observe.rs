//! What of the ALB tier exists, found by the stack's tags. ELBv2 cannot filter by tag:
//! the tier lists the account's load balancers and target groups and reads their tags,
//! twenty at a time.

use std::collections::BTreeMap;

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, LoadBalancerStateEnum, LoadBalancerTypeEnum, ProtocolEnum, RedirectActionStatusCodeEnum,
    Rule,
};
use three_tier_core::error::required;
use three_tier_core::naming::belongs_to;
use three_tier_core::{AwsContext, AwsResultExt, Result, Tier};

use crate::desired::{DefaultAction, Protocol};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub load_balancers: Vec<ObservedLoadBalancer>,
    pub target_groups: Vec<ObservedTargetGroup>,
    /// Listeners of the stack's load balancers, each with its rules.
    pub listeners: Vec<ObservedListener>,
    /// Names of load balancers and target groups in the account that are not this
    /// stack's: a name this tier wants and another holds is a conflict.
    pub foreign_names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedLoadBalancer {
    pub arn: String,
    pub name: String,
    pub dns_name: String,
    pub state: LoadBalancerStateEnum,
    pub scheme: String,
    pub kind: String,
    pub ip_address_type: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedTargetGroup {
    pub arn: String,
    pub name: String,
    pub protocol: String,
    pub port: u16,
    pub vpc_id: String,
    pub target_type: String,
    pub health_check_protocol: String,
    pub health_check_port: String,
    pub health_check_path: String,
    pub matcher: String,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedListener {
    pub arn: String,
    pub load_balancer_arn: String,
    pub port: u16,
    /// `None`: a protocol this tier does not set.
    pub protocol: Option<Protocol>,
    /// A plain forward (to a target group's ARN) or redirect to HTTPS, as this tier writes
    /// them; `None`: any other.
    pub default_action: Option<DefaultAction<String>>,
    pub rules: Vec<ObservedRule>,
}

impl ObservedListener {
    /// The target group its default action forwards to.
    pub fn default_target_group(&self) -> Option<&str> {
        match &self.default_action {
            Some(DefaultAction::Forward(arn)) => Some(arn),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedRule {
    pub arn: String,
    pub priority: u32,
    pub path_patterns: Vec<String>,
    pub target_group: Option<String>,
}

impl Observed {
    pub fn load_balancer(&self) -> Option<&ObservedLoadBalancer> {
        self.load_balancers.first()
    }

    pub fn target_group(&self, name: &str) -> Option<&ObservedTargetGroup> {
        self.target_groups.iter().find(|g| g.name == name)
    }

    pub fn listener(&self, port: u16) -> Option<&ObservedListener> {
        self.listeners.iter().find(|l| l.port == port)
    }
}

pub async fn observe(ctx: &AwsContext, stack: &str) -> Result<Observed> {
    // Another load balancer or target group of the account can be deleted between the
    // listing and the reading of its tags: list again.
    let mut attempts = 0;
    loop {
        match observe_once(ctx, stack).await {
            Err(err) if err.is_not_found() && attempts < 3 => attempts += 1,
            other => return other,
        }
    }
}

async fn observe_once(ctx: &AwsContext, stack: &str) -> Result<Observed> {
    // The load balancers with their listeners, beside the target groups.
    let ((load_balancers, listeners, mut foreign_names), (target_groups, foreign_groups)) =
        ctx.both(load_balancers(ctx, stack), target_groups(ctx, stack)).await?;
    foreign_names.extend(foreign_groups);
    Ok(Observed { load_balancers, target_groups, listeners, foreign_names })
}

/// The stack's load balancers and their listeners, and the names of the account's others.
async fn load_balancers(
    ctx: &AwsContext,
    stack: &str,
) -> Result<(Vec<ObservedLoadBalancer>, Vec<ObservedListener>, Vec<String>)> {
    let elb = &ctx.elbv2;
    let mut observed = Observed::default();
    let mut all_balancers = Vec::new();
    let mut marker = None;
    loop {
        let answer = elb.describe_load_balancers().set_marker(marker).send().await.aws("DescribeLoadBalancers")?;
        all_balancers.extend(answer.load_balancers().iter().cloned());
        marker = answer.next_marker().map(str::to_owned);
        if marker.is_none() {
            break;
        }
    }
    let arns: Vec<String> = all_balancers.iter().filter_map(|lb| lb.load_balancer_arn().map(str::to_owned)).collect();
    // The listeners of the load balancers named like the stack's are read beside the
    // tags that tell whose each one is: a round of calls fewer, where most reads wait.
    let prefix = format!("{stack}-");
    let likely: Vec<String> = all_balancers
        .iter()
        .filter(|lb| lb.load_balancer_name().is_some_and(|name| name.starts_with(&prefix)))
        .filter(|lb| lb.r#type() == Some(&LoadBalancerTypeEnum::Application))
        .filter_map(|lb| lb.load_balancer_arn().map(str::to_owned))
        .collect();
    let (tags, mut listeners) = ctx.both(tags_of(ctx, &arns), listeners_of(ctx, &likely)).await?;
    for lb in &all_balancers {
        let arn = required(lb.load_balancer_arn(), "DescribeLoadBalancers", "LoadBalancerArn")?.to_owned();
        let name = required(lb.load_balancer_name(), "DescribeLoadBalancers", "LoadBalancerName")?.to_owned();
        let tags = tags.get(&arn).cloned().unwrap_or_default();
        if !belongs_to(&tags, stack, Some(Tier::Alb)) {
            observed.foreign_names.push(name);
            continue;
        }
        observed.load_balancers.push(ObservedLoadBalancer {
            dns_name: required(lb.dns_name(), "DescribeLoadBalancers", "DNSName")?.to_owned(),
            state: required(lb.state().and_then(|s| s.code()), "DescribeLoadBalancers", "State.Code")?.clone(),
            scheme: lb.scheme().map(|s| s.as_str().to_owned()).unwrap_or_default(),
            kind: lb.r#type().map(|t| t.as_str().to_owned()).unwrap_or_default(),
            ip_address_type: lb.ip_address_type().map(|t| t.as_str().to_owned()).unwrap_or_default(),
            subnets: sorted(lb.availability_zones().iter().filter_map(|z| z.subnet_id().map(str::to_owned))),
            security_groups: sorted(lb.security_groups().iter().cloned()),
            arn,
            name,
            tags,
        });
    }
    observed.load_balancers.sort_by(|a, b| a.arn.cmp(&b.arn));

    // The stack's load balancers named otherwise (a name changed in the config) are read now.
    let unread: Vec<String> =
        observed.load_balancers.iter().map(|lb| lb.arn.clone()).filter(|arn| !likely.contains(arn)).collect();
    listeners.extend(listeners_of(ctx, &unread).await?);
    let ours: Vec<&str> = observed.load_balancers.iter().map(|lb| lb.arn.as_str()).collect();
    observed.listeners = listeners.into_iter().filter(|l| ours.contains(&l.load_balancer_arn.as_str())).collect();
    observed.listeners.sort_by(|a, b| (a.port, &a.arn).cmp(&(b.port, &b.arn)));
    Ok((observed.load_balancers, observed.listeners, observed.foreign_names))
}

/// The listeners of these load balancers, with their rules.
async fn listeners_of(ctx: &AwsContext, load_balancers: &[String]) -> Result<Vec<ObservedListener>> {
    let elb = &ctx.elbv2;
    let mut listeners = Vec::new();
    for load_balancer in load_balancers {
        let answer = elb.describe_listeners().load_balancer_arn(load_balancer).send().await.aws("DescribeListeners")?;
        for listener in answer.listeners() {
            let arn = required(listener.listener_arn(), "DescribeListeners", "ListenerArn")?.to_owned();
            let rules = elb.describe_rules().listener_arn(&arn).send().await.aws("DescribeRules")?;
            listeners.push(ObservedListener {
                load_balancer_arn: load_balancer.clone(),
                port: port(listener.port(), "DescribeListeners")?,
                protocol: match listener.protocol() {
                    Some(ProtocolEnum::Http) => Some(Protocol::Http),
                    Some(ProtocolEnum::Https) => Some(Protocol::Https {
                        certificate: required(
                            listener.certificates().first().and_then(|c| c.certificate_arn()),
                            "DescribeListeners",
                            "Certificates",
                        )?
                        .to_owned(),
                    }),
                    _ => None,
                },
                default_action: default_action(listener.default_actions()),
                rules: rules
                    .rules()
                    .iter()
                    .filter(|r| r.is_default() != Some(true))
                    .filter_map(observed_rule)
                    .collect(),
                arn,
            });
        }
    }
    Ok(listeners)
}

/// The stack's target groups, and the names of the account's others.
async fn target_groups(ctx: &AwsContext, stack: &str) -> Result<(Vec<ObservedTargetGroup>, Vec<String>)> {
    let elb = &ctx.elbv2;
    let mut observed = Observed::default();
    let mut all_groups = Vec::new();
    let mut marker = None;
    loop {
        let answer = elb.describe_target_groups().set_marker(marker).send().await.aws("DescribeTargetGroups")?;
        all_groups.extend(answer.target_groups().iter().cloned());
        marker = answer.next_marker().map(str::to_owned);
        if marker.is_none() {
            break;
        }
    }
    let arns: Vec<String> = all_groups.iter().filter_map(|g| g.target_group_arn().map(str::to_owned)).collect();
    let tags = tags_of(ctx, &arns).await?;
    for group in &all_groups {
        let arn = required(group.target_group_arn(), "DescribeTargetGroups", "TargetGroupArn")?.to_owned();
        let name = required(group.target_group_name(), "DescribeTargetGroups", "TargetGroupName")?.to_owned();
        let tags = tags.get(&arn).cloned().unwrap_or_default();
        if !belongs_to(&tags, stack, Some(Tier::Alb)) {
            observed.foreign_names.push(name);
            continue;
        }
        observed.target_groups.push(ObservedTargetGroup {
            protocol: group.protocol().map(|p| p.as_str().to_owned()).unwrap_or_default(),
            port: port(group.port(), "DescribeTargetGroups")?,
            vpc_id: required(group.vpc_id(), "DescribeTargetGroups", "VpcId")?.to_owned(),
            target_type: group.target_type().map(|t| t.as_str().to_owned()).unwrap_or_default(),
            health_check_protocol: group.health_check_protocol().map(|p| p.as_str().to_owned()).unwrap_or_default(),
            health_check_port: group.health_check_port().unwrap_or_default().to_owned(),
            health_check_path: group.health_check_path().unwrap_or_default().to_owned(),
            matcher: group.matcher().and_then(|m| m.http_code()).unwrap_or_default().to_owned(),
            arn,
            name,
            tags,
        });
    }
    observed.target_groups.sort_by(|a, b| a.name.cmp(&b.name));

    Ok((observed.target_groups, observed.foreign_names))
}

fn observed_rule(rule: &Rule) -> Option<ObservedRule> {
    let path_patterns = rule
        .conditions()
        .iter()
        .filter(|c| c.field() == Some("path-pattern"))
        .flat_map(|c| {
            let configured = c.path_pattern_config().map(|p| p.values().to_vec()).unwrap_or_default();
            if configured.is_empty() { c.values().to_vec() } else { configured }
        })
        .collect();
    Some(ObservedRule {
        arn: rule.rule_arn()?.to_owned(),
        priority: rule.priority()?.parse().ok()?,
        path_patterns,
        target_group: forward_target(rule.actions()),
    })
}

/// A listener's default action, when it is one this tier writes.
fn default_action(actions: &[Action]) -> Option<DefaultAction<String>> {
    if let Some(group) = forward_target(actions) {
        return Some(DefaultAction::Forward(group));
    }
    let [action] = actions else { return None };
    let redirect = action.redirect_config().filter(|_| action.r#type() == Some(&ActionTypeEnum::Redirect))?;
    let to_https = redirect.protocol() == Some("HTTPS")
        && redirect.status_code() == Some(&RedirectActionStatusCodeEnum::Http301)
        && [redirect.host(), redirect.path(), redirect.query()]
            .iter()
            .zip(["#{host}", "/#{path}", "#{query}"])
            .all(|(kept, default)| kept.is_none_or(|value| value == default));
    let port = redirect.port()?.parse().ok()?;
    to_https.then_some(DefaultAction::RedirectToHttps { port })
}

/// The target group of a single forward action, as the tier writes them.
fn forward_target(actions: &[Action]) -> Option<String> {
    match actions {
        [action] if action.r#type().map(|t| t.as_str()) == Some("forward") => {
            action.target_group_arn().map(str::to_owned).or_else(|| {
                let groups = action.forward_config()?.target_groups();
                match groups {
                    [only] => only.target_group_arn().map(str::to_owned),
                    _ => None,
                }
            })
        }
        _ => None,
    }
}

/// A port as AWS gives it (an `i32`): a listener's or group's key, so required.
fn port(port: Option<i32>, operation: &'static str) -> Result<u16> {
    required(port.and_then(|p| u16::try_from(p).ok()), operation, "Port")
}

fn sorted(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut items: Vec<String> = items.collect();
    items.sort();
    items
}

/// The tags of these resources, by ARN; DescribeTags takes twenty ARNs a call, and the
/// calls go at once.
async fn tags_of(ctx: &AwsContext, arns: &[String]) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
    let chunk_tags = |chunk: &[String]| {
        let chunk = chunk.to_vec();
        Box::pin(async move {
            let answer = ctx.elbv2.describe_tags().set_resource_arns(Some(chunk)).send().await.aws("DescribeTags")?;
            let mut tags = Vec::new();
            for description in answer.tag_descriptions() {
                let pairs = description
                    .tags()
                    .iter()
                    .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned())))
                    .collect();
                tags.push((required(description.resource_arn(), "DescribeTags", "ResourceArn")?.to_owned(), pairs));
            }
            Ok(tags)
        }) as _
    };
    let answers = ctx.all(arns.chunks(20).map(chunk_tags).collect()).await?;
    Ok(answers.into_iter().flatten().collect())
}
