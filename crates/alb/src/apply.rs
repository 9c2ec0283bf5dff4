//! Runs an ALB plan against AWS.

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, Certificate, IpAddressType, LoadBalancerSchemeEnum, LoadBalancerStateEnum,
    LoadBalancerTypeEnum, Matcher, PathPatternConditionConfig, ProtocolEnum, RedirectActionConfig,
    RedirectActionStatusCodeEnum, RuleCondition, Tag, TargetTypeEnum,
};
use three_tier_core::error::{gone_is_done, required};
use three_tier_core::naming::Tags;
use three_tier_core::wait::Outcome;
use three_tier_core::{AwsContext, AwsResultExt, Created, Result};

use crate::desired::{DefaultAction, ListenerSpec, Protocol, TLS_POLICY};
use crate::plan::{AlbStep, GroupRef};

const LB_FAILURE: &str = "the load balancer's state reason in the EC2 console says why";

/// Makes one attempt at a step (see [`three_tier_core::TierCrate::run`]); `created` holds
/// the ids of what the steps before it made.
pub async fn run(ctx: &AwsContext, step: &AlbStep, created: &Created) -> Result<Outcome> {
    let elb = &ctx.elbv2;
    match step {
        AlbStep::CreateTargetGroup { key, spec } => {
            let answer = elb
                .create_target_group()
                .name(&spec.name)
                .protocol(ProtocolEnum::Http)
                .port(i32::from(spec.port))
                .vpc_id(created.resolve(&spec.vpc)?)
                .target_type(TargetTypeEnum::Instance)
                .health_check_protocol(ProtocolEnum::Http)
                .health_check_port("traffic-port")
                .health_check_path(&spec.health_check_path)
                .matcher(Matcher::builder().http_code(&spec.matcher).build())
                .set_tags(Some(elb_tags(&spec.tags)))
                .send()
                .await
                .aws("CreateTargetGroup")?;
            let arn = required(
                answer.target_groups().first().and_then(|g| g.target_group_arn()),
                "CreateTargetGroup",
                "TargetGroupArn",
            )?;
            created.insert(key, arn);
        }
        AlbStep::ModifyTargetGroupHealthCheck { arn, health_check_path, matcher, .. } => {
            elb.modify_target_group()
                .target_group_arn(arn)
                .health_check_protocol(ProtocolEnum::Http)
                .health_check_port("traffic-port")
                .health_check_path(health_check_path)
                .matcher(Matcher::builder().http_code(matcher).build())
                .send()
                .await
                .aws("ModifyTargetGroup")?;
        }
        AlbStep::CreateLoadBalancer { key, spec } => {
            let answer = elb
                .create_load_balancer()
                .name(&spec.name)
                .r#type(LoadBalancerTypeEnum::Application)
                .scheme(LoadBalancerSchemeEnum::InternetFacing)
                .ip_address_type(IpAddressType::Ipv4)
                .set_subnets(Some(created.resolve_all(&spec.subnets)?))
                .set_security_groups(Some(created.resolve_all(&spec.security_groups)?))
                .set_tags(Some(elb_tags(&spec.tags)))
                .send()
                .await
                .aws("CreateLoadBalancer")?;
            let arn = required(
                answer.load_balancers().first().and_then(|lb| lb.load_balancer_arn()),
                "CreateLoadBalancer",
                "LoadBalancerArn",
            )?;
            created.insert(key, arn);
        }
        AlbStep::SetSubnets { load_balancer, subnets, .. } => {
            elb.set_subnets()
                .load_balancer_arn(load_balancer)
                .set_subnets(Some(created.resolve_all(subnets)?))
                .send()
                .await
                .aws("SetSubnets")?;
        }
        AlbStep::SetSecurityGroups { load_balancer, security_groups, .. } => {
            elb.set_security_groups()
                .load_balancer_arn(load_balancer)
                .set_security_groups(Some(created.resolve_all(security_groups)?))
                .send()
                .await
                .aws("SetSecurityGroups")?;
        }
        AlbStep::CreateListener { spec, load_balancer } => {
            let (protocol, certificates, ssl_policy) = listening(spec);
            let answer = elb
                .create_listener()
                .load_balancer_arn(created.resolve(load_balancer)?)
                .protocol(protocol)
                .port(i32::from(spec.port))
                .set_certificates(certificates)
                .set_ssl_policy(ssl_policy)
                .default_actions(default_action(spec, created)?)
                .set_tags(Some(elb_tags(&spec.tags)))
                .send()
                .await
                .aws("CreateListener")?;
            let arn =
                required(answer.listeners().first().and_then(|l| l.listener_arn()), "CreateListener", "ListenerArn")?;
            created.insert(&spec.key, arn);
        }
        AlbStep::ModifyListener { arn, spec } => {
            let (protocol, certificates, ssl_policy) = listening(spec);
            elb.modify_listener()
                .listener_arn(arn)
                .protocol(protocol)
                .port(i32::from(spec.port))
                .set_certificates(certificates)
                .set_ssl_policy(ssl_policy)
                .default_actions(default_action(spec, created)?)
                .send()
                .await
                .aws("ModifyListener")?;
        }
        AlbStep::CreateRule { listener, priority, path_pattern, target_group, tags, .. } => {
            elb.create_rule()
                .listener_arn(created.resolve(listener)?)
                .priority(i32::try_from(*priority).unwrap_or(i32::MAX))
                .conditions(path_condition(path_pattern))
                .actions(forward(created.resolve(target_group)?))
                .set_tags(Some(elb_tags(tags)))
                .send()
                .await
                .aws("CreateRule")?;
        }
        AlbStep::ModifyRule { arn, path_pattern, target_group, .. } => {
            elb.modify_rule()
                .rule_arn(arn)
                .conditions(path_condition(path_pattern))
                .actions(forward(created.resolve(target_group)?))
                .send()
                .await
                .aws("ModifyRule")?;
        }
        AlbStep::WaitLoadBalancerActive { load_balancer, .. } => {
            return Ok(match load_balancer_state(ctx, &created.resolve(load_balancer)?).await? {
                Some(LoadBalancerStateEnum::Active | LoadBalancerStateEnum::ActiveImpaired) => Outcome::Done(()),
                // A new load balancer can be unknown for a moment.
                Some(LoadBalancerStateEnum::Provisioning) | None => Outcome::NotYet("provisioning".into()),
                Some(other) => Outcome::Failed { state: other.as_str().to_owned(), look: LB_FAILURE },
            });
        }
        AlbStep::AddTags { arn, tags, .. } => {
            let tags = tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
            elb.add_tags().resource_arns(arn).set_tags(Some(tags)).send().await.aws("AddTags")?;
        }
        AlbStep::DeleteRule { arn, .. } => {
            gone_is_done(elb.delete_rule().rule_arn(arn).send().await.aws("DeleteRule"))?;
        }
        AlbStep::DeleteListener { arn, .. } => {
            gone_is_done(elb.delete_listener().listener_arn(arn).send().await.aws("DeleteListener"))?;
        }
        AlbStep::DeleteLoadBalancer { arn, .. } => {
            gone_is_done(elb.delete_load_balancer().load_balancer_arn(arn).send().await.aws("DeleteLoadBalancer"))?;
        }
        AlbStep::WaitLoadBalancerDeleted { arn, .. } => {
            return Ok(match load_balancer_state(ctx, arn).await? {
                None => Outcome::Done(()),
                Some(state) => Outcome::NotYet(state.as_str().to_owned()),
            });
        }
        AlbStep::DeleteTargetGroup { arn, .. } => {
            let result =
                gone_is_done(elb.delete_target_group().target_group_arn(arn).send().await.aws("DeleteTargetGroup"));
            return Outcome::unless_refused(result, three_tier_core::Error::is_in_use);
        }
    }
    Ok(Outcome::Done(()))
}

/// What a listener takes: its protocol, and for HTTPS its certificate and TLS policy.
fn listening<G>(spec: &ListenerSpec<G>) -> (ProtocolEnum, Option<Vec<Certificate>>, Option<String>) {
    match &spec.protocol {
        Protocol::Http => (ProtocolEnum::Http, None, None),
        Protocol::Https { certificate } => (
            ProtocolEnum::Https,
            Some(vec![Certificate::builder().certificate_arn(certificate).build()]),
            Some(TLS_POLICY.to_owned()),
        ),
    }
}

fn default_action(spec: &ListenerSpec<GroupRef>, created: &Created) -> Result<Action> {
    Ok(match &spec.default_action {
        DefaultAction::Forward(group) => forward(created.resolve(&group.reference)?),
        DefaultAction::RedirectToHttps { port } => Action::builder()
            .r#type(ActionTypeEnum::Redirect)
            .redirect_config(
                RedirectActionConfig::builder()
                    .protocol("HTTPS")
                    .port(port.to_string())
                    .status_code(RedirectActionStatusCodeEnum::Http301)
                    .build(),
            )
            .build(),
    })
}

fn forward(target_group_arn: String) -> Action {
    Action::builder().r#type(ActionTypeEnum::Forward).target_group_arn(target_group_arn).build()
}

fn path_condition(pattern: &str) -> RuleCondition {
    RuleCondition::builder()
        .field("path-pattern")
        .path_pattern_config(PathPatternConditionConfig::builder().values(pattern).build())
        .build()
}

fn elb_tags(tags: &Tags) -> Vec<Tag> {
    tags.pairs.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

/// A load balancer's state; `None` once it is gone.
async fn load_balancer_state(ctx: &AwsContext, arn: &str) -> Result<Option<LoadBalancerStateEnum>> {
    match ctx.elbv2.describe_load_balancers().load_balancer_arns(arn).send().await.aws("DescribeLoadBalancers") {
        Ok(answer) => Ok(answer
            .load_balancers()
            .first()
            .map(|lb| lb.state().and_then(|s| s.code()).cloned().unwrap_or(LoadBalancerStateEnum::Provisioning))),
        Err(err) if err.is_not_found() => Ok(None),
        Err(err) => Err(err),
    }
}
