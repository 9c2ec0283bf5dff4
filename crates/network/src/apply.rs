//! Runs the steps of a network plan against AWS.

use aws_sdk_ec2::types::{AttributeBooleanValue, DomainType, NatGatewayState, ResourceType, Tag};
use three_tier_core::aws::ec2_tag_spec;
use three_tier_core::error::{Answer, gone_is_done, required};
use three_tier_core::wait::Outcome;
use three_tier_core::{AwsContext, AwsResultExt, Created, Error, Result};

use crate::plan::{NetworkStep, RouteTarget, VpcAttribute};

const NAT_FAILURE: &str = "`aws ec2 describe-nat-gateways` shows its FailureMessage";

/// Makes one attempt at a step (see [`three_tier_core::TierCrate::run`]); `created` holds
/// the ids of what the steps before it made.
pub async fn run(ctx: &AwsContext, step: &NetworkStep, created: &Created) -> Result<Outcome> {
    let ec2 = &ctx.ec2;
    match step {
        NetworkStep::CreateVpc { key, cidr, tags, .. } => {
            let answer = ec2
                .create_vpc()
                .cidr_block(cidr.to_string())
                .tag_specifications(ec2_tag_spec(ResourceType::Vpc, tags))
                .send()
                .await
                .aws("CreateVpc")?;
            created.insert(key, required(answer.vpc().and_then(|v| v.vpc_id()), "CreateVpc", "VpcId")?);
        }
        NetworkStep::EnableVpcAttribute { vpc, attribute } => {
            let on = AttributeBooleanValue::builder().value(true).build();
            let request = ec2.modify_vpc_attribute().vpc_id(created.resolve(vpc)?);
            let request = match attribute {
                VpcAttribute::EnableDnsSupport => request.enable_dns_support(on),
                VpcAttribute::EnableDnsHostnames => request.enable_dns_hostnames(on),
            };
            request.send().await.aws("ModifyVpcAttribute")?;
        }
        NetworkStep::CreateInternetGateway { key, tags, .. } => {
            let answer = ec2
                .create_internet_gateway()
                .tag_specifications(ec2_tag_spec(ResourceType::InternetGateway, tags))
                .send()
                .await
                .aws("CreateInternetGateway")?;
            created.insert(
                key,
                required(
                    answer.internet_gateway().and_then(|g| g.internet_gateway_id()),
                    "CreateInternetGateway",
                    "InternetGatewayId",
                )?,
            );
        }
        NetworkStep::AttachInternetGateway { internet_gateway, vpc } => {
            ec2.attach_internet_gateway()
                .internet_gateway_id(created.resolve(internet_gateway)?)
                .vpc_id(created.resolve(vpc)?)
                .send()
                .await
                .aws("AttachInternetGateway")?;
        }
        NetworkStep::CreateSubnet { key, cidr, availability_zone, vpc, tags, .. } => {
            let answer = ec2
                .create_subnet()
                .vpc_id(created.resolve(vpc)?)
                .cidr_block(cidr.to_string())
                .availability_zone(availability_zone)
                .tag_specifications(ec2_tag_spec(ResourceType::Subnet, tags))
                .send()
                .await
                .aws("CreateSubnet")?;
            created.insert(key, required(answer.subnet().and_then(|s| s.subnet_id()), "CreateSubnet", "SubnetId")?);
        }
        NetworkStep::AllocateAddress { key, tags, .. } => {
            let answer = ec2
                .allocate_address()
                .domain(DomainType::Vpc)
                .tag_specifications(ec2_tag_spec(ResourceType::ElasticIp, tags))
                .send()
                .await
                .aws("AllocateAddress")?;
            created.insert(key, required(answer.allocation_id(), "AllocateAddress", "AllocationId")?);
        }
        NetworkStep::CreateNatGateway { key, subnet, allocation, tags, .. } => {
            let answer = ec2
                .create_nat_gateway()
                .subnet_id(created.resolve(subnet)?)
                .allocation_id(created.resolve(allocation)?)
                .tag_specifications(ec2_tag_spec(ResourceType::Natgateway, tags))
                .send()
                .await
                .aws("CreateNatGateway")?;
            created.insert(
                key,
                required(answer.nat_gateway().and_then(|n| n.nat_gateway_id()), "CreateNatGateway", "NatGatewayId")?,
            );
        }
        NetworkStep::WaitNatGatewayAvailable { nat_gateway, .. } => {
            return Ok(match nat_state(ctx, &created.resolve(nat_gateway)?).await? {
                Some(NatGatewayState::Available) => Outcome::Done(()),
                Some(NatGatewayState::Pending) | None => Outcome::NotYet("pending".into()),
                Some(other) => Outcome::Failed { state: other.as_str().to_owned(), look: NAT_FAILURE },
            });
        }
        NetworkStep::WaitNatGatewayDeleted { id, .. } => {
            return Ok(match nat_state(ctx, id).await? {
                Some(NatGatewayState::Deleted) | None => Outcome::Done(()),
                Some(other) => Outcome::NotYet(other.as_str().to_owned()),
            });
        }
        NetworkStep::CreateSecurityGroup { key, name, description, vpc, tags } => {
            let answer = ec2
                .create_security_group()
                .group_name(name)
                .description(description)
                .vpc_id(created.resolve(vpc)?)
                .tag_specifications(ec2_tag_spec(ResourceType::SecurityGroup, tags))
                .send()
                .await
                .aws("CreateSecurityGroup")?;
            created.insert(key, required(answer.group_id(), "CreateSecurityGroup", "GroupId")?);
        }
        NetworkStep::AuthorizeIngress { security_group, rule, description, .. } => {
            ec2.authorize_security_group_ingress()
                .group_id(created.resolve(security_group)?)
                .ip_permissions(rule.to_permission(created, Some(description))?)
                .send()
                .await
                .aws("AuthorizeSecurityGroupIngress")?;
        }
        NetworkStep::RevokeIngress { security_group, rule, .. } => {
            let result = ec2
                .revoke_security_group_ingress()
                .group_id(security_group)
                .ip_permissions(rule.to_permission(created, None)?)
                .send()
                .await
                .aws("RevokeSecurityGroupIngress");
            gone_is_done(result)?;
        }
        NetworkStep::CreateRouteTable { key, vpc, tags, .. } => {
            let answer = ec2
                .create_route_table()
                .vpc_id(created.resolve(vpc)?)
                .tag_specifications(ec2_tag_spec(ResourceType::RouteTable, tags))
                .send()
                .await
                .aws("CreateRouteTable")?;
            created.insert(
                key,
                required(answer.route_table().and_then(|t| t.route_table_id()), "CreateRouteTable", "RouteTableId")?,
            );
        }
        NetworkStep::CreateRoute { route_table, destination, target, .. } => {
            let request =
                ec2.create_route().route_table_id(created.resolve(route_table)?).destination_cidr_block(destination);
            let request = match target {
                RouteTarget::InternetGateway(id) => request.gateway_id(created.resolve(id)?),
                RouteTarget::NatGateway(id) => request.nat_gateway_id(created.resolve(id)?),
            };
            request.send().await.aws("CreateRoute")?;
        }
        NetworkStep::ReplaceRoute { route_table, destination, target, .. } => {
            let request =
                ec2.replace_route().route_table_id(created.resolve(route_table)?).destination_cidr_block(destination);
            let request = match target {
                RouteTarget::InternetGateway(id) => request.gateway_id(created.resolve(id)?),
                RouteTarget::NatGateway(id) => request.nat_gateway_id(created.resolve(id)?),
            };
            request.send().await.aws("ReplaceRoute")?;
        }
        NetworkStep::DeleteRoute { route_table, destination, .. } => {
            let result = ec2
                .delete_route()
                .route_table_id(route_table)
                .destination_cidr_block(destination)
                .send()
                .await
                .aws("DeleteRoute");
            gone_is_done(result)?;
        }
        NetworkStep::AssociateRouteTable { route_table, subnet, .. } => {
            ec2.associate_route_table()
                .route_table_id(created.resolve(route_table)?)
                .subnet_id(created.resolve(subnet)?)
                .send()
                .await
                .aws("AssociateRouteTable")?;
        }
        NetworkStep::ReplaceRouteTableAssociation { association_id, route_table, .. } => {
            ec2.replace_route_table_association()
                .association_id(association_id)
                .route_table_id(created.resolve(route_table)?)
                .send()
                .await
                .aws("ReplaceRouteTableAssociation")?;
        }
        NetworkStep::DisassociateRouteTable { association_id, .. } => {
            let result = ec2
                .disassociate_route_table()
                .association_id(association_id)
                .send()
                .await
                .aws("DisassociateRouteTable");
            gone_is_done(result)?;
        }
        NetworkStep::TagResource { resource_id, tags, .. } => {
            let tags = tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
            ec2.create_tags().resources(resource_id).set_tags(Some(tags)).send().await.aws("CreateTags")?;
        }
        NetworkStep::DeleteNatGateway { id, .. } => {
            let result = ec2.delete_nat_gateway().nat_gateway_id(id).send().await.aws("DeleteNatGateway");
            gone_is_done(result)?;
        }
        NetworkStep::ReleaseAddress { allocation_id, .. } => {
            // The address can stay associated for a moment after its NAT gateway is deleted,
            // and AWS then answers AuthFailure for a while, as if it were not ours. (Bad
            // credentials would have failed the reads before this step.)
            let result =
                gone_is_done(ec2.release_address().allocation_id(allocation_id).send().await.aws("ReleaseAddress"));
            return Outcome::unless_refused(result, |err| err.is_in_use() || err.is(Answer::AuthFailure));
        }
        NetworkStep::DeleteSecurityGroup { id, .. } => {
            let result = gone_is_done(ec2.delete_security_group().group_id(id).send().await.aws("DeleteSecurityGroup"));
            return Outcome::unless_refused(result, Error::is_in_use);
        }
        NetworkStep::DeleteRouteTable { id, .. } => {
            let result = ec2.delete_route_table().route_table_id(id).send().await.aws("DeleteRouteTable");
            gone_is_done(result)?;
        }
        NetworkStep::DeleteSubnet { id, .. } => {
            let result = gone_is_done(ec2.delete_subnet().subnet_id(id).send().await.aws("DeleteSubnet"));
            return Outcome::unless_refused(result, Error::is_in_use);
        }
        NetworkStep::DetachInternetGateway { id, vpc_id, .. } => {
            let result = ec2
                .detach_internet_gateway()
                .internet_gateway_id(id)
                .vpc_id(vpc_id)
                .send()
                .await
                .aws("DetachInternetGateway");
            let result = match result {
                Err(err) if err.is(Answer::NotAttached) => Ok(()),
                other => gone_is_done(other),
            };
            return Outcome::unless_refused(result, Error::is_in_use);
        }
        NetworkStep::DeleteInternetGateway { id, .. } => {
            let result =
                ec2.delete_internet_gateway().internet_gateway_id(id).send().await.aws("DeleteInternetGateway");
            gone_is_done(result)?;
        }
        NetworkStep::DeleteVpc { id, .. } => {
            let result = gone_is_done(ec2.delete_vpc().vpc_id(id).send().await.aws("DeleteVpc"));
            return Outcome::unless_refused(result, Error::is_in_use);
        }
    }
    Ok(Outcome::Done(()))
}

/// A NAT gateway's state; `None` when AWS does not list it: gone, or just created and not
/// visible yet (EC2 is eventually consistent).
async fn nat_state(ctx: &AwsContext, id: &str) -> Result<Option<NatGatewayState>> {
    match ctx.ec2.describe_nat_gateways().nat_gateway_ids(id).send().await.aws("DescribeNatGateways") {
        Ok(answer) => Ok(answer.nat_gateways().first().and_then(|n| n.state()).cloned()),
        Err(err) if err.is_not_found() => Ok(None),
        Err(err) => Err(err),
    }
}
