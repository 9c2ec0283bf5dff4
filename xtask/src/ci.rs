//! `cargo xtask ci`: formatting, lints and every test, as CI runs them.

use anyhow::Context as _;
use emulator::Emulator;
use xshell::{Shell, cmd};

pub fn run(sh: &Shell) -> anyhow::Result<()> {
    // The house rules first: they take seconds and name the line to fix.
    cmd!(sh, "cargo fmt --all -- --check").run().context("code is not formatted: run `cargo fmt --all`")?;
    cmd!(sh, "cargo clippy --workspace --all-targets --locked -- -D warnings")
        .run()
        .context("clippy found problems: the output above names them")?;
    // The user-data test checks the rendered script with shellcheck; the diagram test
    // draws an SVG with Graphviz.
    ensure_debian_packages(sh, &[("shellcheck", "shellcheck"), ("dot", "graphviz")])?;
    let emulator = Emulator::default();
    let already_running = emulator.status().is_some();
    emulator.ensure_running().context("starting the emulator")?;
    // Snapshots are compared, never written: review changes locally with `cargo insta review`.
    let result = cmd!(sh, "cargo test --workspace --locked").env("INSTA_UPDATE", "no").run();
    if !already_running {
        emulator.stop()?;
    }
    result.context("tests failed: the output above names them; after an intended snapshot change, run `cargo test` and `cargo insta review`")
}

/// Installs the Debian packages of the (command, package) pairs whose command is missing.
fn ensure_debian_packages(sh: &Shell, needed: &[(&str, &str)]) -> anyhow::Result<()> {
    let missing: Vec<&str> = needed
        .iter()
        // Both print their version for `-V`; a command that cannot start is missing.
        .filter(|(command, _)| std::process::Command::new(command).arg("-V").output().is_err())
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    let install = || -> anyhow::Result<()> {
        cmd!(sh, "apt-get update -qq").run()?;
        cmd!(sh, "apt-get install -y -qq {missing...}").env("DEBIAN_FRONTEND", "noninteractive").run()?;
        Ok(())
    };
    install()
        .with_context(|| format!("installing {list} failed: install it yourself (Debian: `apt-get install {list}`)"))
}
