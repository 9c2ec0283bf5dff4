//! `cargo xtask emulator start|stop|status`.

use anyhow::Context as _;
use emulator::Emulator;

use crate::EmulatorAction;

pub fn run(action: EmulatorAction) -> anyhow::Result<()> {
    let emulator = Emulator::default();
    match action {
        EmulatorAction::Start => {
            crate::packages::ensure_data_plane(&xshell::Shell::new()?);
            let running = emulator.ensure_running().context("starting the emulator")?;
            println!("emulator running at {} (pid {})", running.endpoint(), running.pid);
            println!("use it with --emulator, or AWS_ENDPOINT_URL={} and any credentials", running.endpoint());
            match emulator::data_plane(&running.endpoint()) {
                Some(plane) if plane.enabled => {
                    println!("its data plane serves the stacks' traffic: nginx and MariaDB servers on 127.0.0.0/8")
                }
                Some(plane) => println!("its data plane is off: install {}", plane.missing.join(" ")),
                None => {}
            }
        }
        EmulatorAction::Stop => match emulator.stop()? {
            true => println!("emulator stopped, with every server of its data plane"),
            false => println!("emulator was not running"),
        },
        EmulatorAction::Status => match emulator.status() {
            Some(running) => println!("emulator running at {} (pid {})", running.endpoint(), running.pid),
            None => println!("emulator not running; `cargo xtask emulator start` starts it"),
        },
    }
    Ok(())
}
