//! `cargo xtask emulator start|stop|status`.

use anyhow::Context as _;
use emulator::Emulator;

use crate::EmulatorAction;

pub fn run(action: EmulatorAction) -> anyhow::Result<()> {
    let emulator = Emulator::default();
    match action {
        EmulatorAction::Start => {
            let running = emulator.ensure_running().context("starting the emulator")?;
            println!("emulator running at {} (pid {})", running.endpoint(), running.pid);
            println!("use it with --emulator, or AWS_ENDPOINT_URL={} and any credentials", running.endpoint());
        }
        EmulatorAction::Stop => match emulator.stop()? {
            true => println!("emulator stopped"),
            false => println!("emulator was not running"),
        },
        EmulatorAction::Status => match emulator.status() {
            Some(running) => println!("emulator running at {} (pid {})", running.endpoint(), running.pid),
            None => println!("emulator not running; `cargo xtask emulator start` starts it"),
        },
    }
    Ok(())
}
