//! `cargo xtask`: deploy, plan and tear down the three-tier stack, run the emulator and
//! the tests. A thin dispatcher: the tiers' own crates do the work.

mod bench;
mod ci;
mod deploy;
mod diagram;
mod emulator;
mod packages;
mod reach;
mod session;
mod shell;
mod status;
mod teardown;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use three_tier_core::{ConfigError, Tier};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "Build, inspect and remove the three-tier AWS stack")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create what is missing, fix what drifted, leave the rest alone.
    Deploy(StackArgs),
    /// Show what deploy would change, without changing anything.
    Plan(PlanArgs),
    /// Delete everything the stack's tags find, in an order AWS accepts.
    Teardown(TeardownArgs),
    /// Print every tier's outputs: the ALB's URL, the instance, the RDS endpoint, ...
    Outputs(OutputsArgs),
    /// Show, per tier, whether it exists and whether it matches the config.
    Status(StackArgs),
    /// List every stack of the tool in the region: its tiers, age, monthly cost and lock.
    Stacks(StacksArgs),
    /// What the stack costs a month while it runs, item by item.
    Cost(CostArgs),
    /// Check the seed's two goals on the deployed stack: the ALB serves nginx, and the
    /// nginx container reaches MySQL.
    Verify(StackArgs),
    /// Prove the stack's paths hop by hop, as AWS evaluates them: internet → ALB → nginx,
    /// nginx → MySQL, instance → internet. Exits 1 when one is closed.
    Reach(ReachArgs),
    /// Draw the stack (VPC, zones, subnets, gateways, ALB, instance, database, security
    /// groups) as Mermaid text, and as an SVG.
    Diagram(DiagramArgs),
    /// Open a shell on the instance through Session Manager (no SSH).
    Shell(InstanceArgs),
    /// Print the instance's user data output and the nginx container's logs.
    Logs(InstanceArgs),
    /// Run the local AWS emulator (moto).
    Emulator {
        #[command(subcommand)]
        action: EmulatorAction,
    },
    /// Run every test, starting the emulator when needed (the README's test command).
    Ci,
    /// Measure deploy and teardown on the strict emulator against their critical paths.
    Bench,
}

#[derive(Debug, Args)]
struct StackArgs {
    /// Tiers to act on; all of them when none is named.
    #[arg(value_parser = parse_tier)]
    tiers: Vec<Tier>,
    /// Config file.
    #[arg(long, default_value = three_tier_core::Config::DEFAULT_PATH)]
    config: PathBuf,
    /// Stack name, overriding the config's `stack.name`.
    #[arg(long)]
    stack: Option<String>,
    /// Use the local emulator instead of AWS (started when not running).
    #[arg(long)]
    emulator: bool,
    /// (deploy, teardown) Take the stack's lock even if another run holds it: only when
    /// that run has died, or two runs change the stack at once.
    #[arg(long)]
    force_unlock: bool,
}

#[derive(Debug, Args)]
struct InstanceArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Which instance: its key (`instance`, `instance-2`, ... as `outputs` lists them) or
    /// its id; the first by default.
    #[arg(long)]
    instance: Option<String>,
}

#[derive(Debug, Args)]
struct PlanArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Plan a teardown instead of a deploy.
    #[arg(long)]
    teardown: bool,
    /// Print the plan and its prediction as JSON, for scripts.
    #[arg(long)]
    json: bool,
    /// Exit 0 when nothing would change, 2 when something would, 1 on an error (as
    /// `terraform plan -detailed-exitcode`).
    #[arg(long)]
    detailed_exitcode: bool,
}

#[derive(Debug, Args)]
struct StacksArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Look in every region the account has enabled, not only the config's.
    #[arg(long)]
    all_regions: bool,
}

#[derive(Debug, Args)]
struct CostArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Price the stack the config describes (the named tiers), without reading AWS.
    #[arg(long)]
    plan: bool,
}

#[derive(Debug, Args)]
struct ReachArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// The paths the config builds, without reading AWS.
    #[arg(long)]
    plan: bool,
    /// Print the paths and their hops as JSON, for scripts.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct DiagramArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Draw the stack the config describes, without reading AWS (no ids or addresses).
    #[arg(long)]
    plan: bool,
    /// Where to write the SVG [default: <stack name>.svg].
    #[arg(long)]
    svg: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct TeardownArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
    /// Also tear down the tiers built on the named ones.
    #[arg(long)]
    cascade: bool,
}

#[derive(Debug, Args)]
struct OutputsArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, Subcommand)]
enum EmulatorAction {
    /// Install (first time) and start the emulator.
    Start,
    /// Stop the emulator.
    Stop,
    /// Say whether the emulator runs, and where.
    Status,
}

fn parse_tier(text: &str) -> Result<Tier, String> {
    let names: Vec<&str> = stack::TIERS.iter().map(|t| t.as_str()).collect();
    Tier::from_tag(text)
        .filter(|tier| stack::TIERS.contains(tier))
        .ok_or_else(|| format!("unknown tier \"{text}\"; the tiers are: {}", names.join(", ")))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        // The SDK's own warnings (each provider it tried, with Debug dumps) are its
        // internals: the error says what failed and what to do; RUST_LOG=debug shows them.
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,aws_config=error,aws_smithy_runtime=error,aws_runtime=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Command::Plan(args) = &cli.command
        && args.detailed_exitcode
    {
        return match session::Session::open(&args.stack).and_then(|s| deploy::plan(&s, args.teardown, args.json)) {
            Ok(changes) => ExitCode::from(if changes { 2 } else { 0 }),
            Err(err) => {
                eprintln!("error: {err:#}");
                ExitCode::from(1)
            }
        };
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            // A config error is a usage error: nothing was done, exit 2 as for bad flags.
            let usage = err.chain().any(|cause| cause.downcast_ref::<ConfigError>().is_some())
                || err.chain().any(|cause| {
                    matches!(cause.downcast_ref::<three_tier_core::Error>(), Some(three_tier_core::Error::Config(_)))
                });
            let is = |wanted: fn(&three_tier_core::Error) -> bool| {
                err.chain().any(|cause| cause.downcast_ref::<three_tier_core::Error>().is_some_and(wanted))
            };
            // Another run holds the stack: nothing was done, and running again later may work.
            let locked = is(|e| {
                matches!(e, three_tier_core::Error::Locked { .. } | three_tier_core::Error::LockTakenOver { .. })
            });
            // Ctrl-C: 130, as a shell reports a command ended by SIGINT.
            let interrupted = is(|e| matches!(e, three_tier_core::Error::Interrupted { .. }));
            if interrupted {
                let args: Vec<String> = std::env::args().skip(1).map(|arg| shell_quoted(&arg)).collect();
                eprintln!("  resume: cargo xtask {}", args.join(" "));
            }
            ExitCode::from(if usage {
                2
            } else if locked {
                3
            } else if interrupted {
                130
            } else {
                1
            })
        }
    }
}

/// `arg` as a shell reads it back.
fn shell_quoted(arg: &str) -> String {
    let plain = !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@".contains(c));
    if plain { arg.to_owned() } else { format!("'{}'", arg.replace('\'', r"'\''")) }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let sh = xshell::Shell::new()?;
    match cli.command {
        Command::Deploy(args) => deploy::deploy(&session::Session::open(&args)?),
        Command::Plan(args) => {
            deploy::plan(&session::Session::open(&args.stack)?, args.teardown, args.json).map(|_| ())
        }
        Command::Teardown(args) => teardown::teardown(&session::Session::open(&args.stack)?, args.yes, args.cascade),
        Command::Outputs(args) => status::outputs(&session::Session::open(&args.stack)?, args.json),
        Command::Status(args) => status::status(&session::Session::open(&args)?),
        Command::Stacks(args) => status::stacks(&session::Session::open(&args.stack)?, args.all_regions),
        Command::Cost(args) => status::cost(&session::Session::open(&args.stack)?, args.plan),
        Command::Verify(args) => verify::verify(&session::Session::open(&args)?),
        Command::Reach(args) => reach::reach(&session::Session::open(&args.stack)?, args.plan, args.json),
        Command::Diagram(args) => diagram::diagram(&session::Session::open(&args.stack)?, args.plan, args.svg),
        Command::Shell(args) => shell::shell(&sh, &session::Session::open(&args.stack)?, args.instance.as_deref()),
        Command::Logs(args) => shell::logs(&session::Session::open(&args.stack)?, args.instance.as_deref()),
        Command::Emulator { action } => emulator::run(action),
        Command::Ci => ci::run(&sh),
        Command::Bench => bench::run(),
    }
}
