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
    ensure_shellcheck(sh)?;
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

/// The user-data test checks the rendered script with shellcheck (a Debian package).
fn ensure_shellcheck(sh: &Shell) -> anyhow::Result<()> {
    if cmd!(sh, "shellcheck --version").quiet().ignore_stdout().run().is_ok() {
        return Ok(());
    }
    let install = || -> anyhow::Result<()> {
        cmd!(sh, "apt-get update -qq").run()?;
        cmd!(sh, "apt-get install -y -qq shellcheck").env("DEBIAN_FRONTEND", "noninteractive").run()?;
        Ok(())
    };
    install().context("installing shellcheck failed: install it yourself (Debian: `apt-get install shellcheck`)")
}
