//! What the person running the tool sees: one line per change, and a live timer through
//! the minutes-long waits.

use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress output on stderr. On a terminal, waits show a spinner with the elapsed time;
/// elsewhere (CI logs, pipes) each wait prints a line when it starts and when it ends.
#[derive(Debug, Clone)]
pub struct Progress {
    bars: MultiProgress,
    silent: bool,
}

impl Progress {
    pub fn stderr() -> Progress {
        Progress { bars: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()), silent: false }
    }

    /// No output at all, for library callers and tests that read the results instead.
    pub fn silent() -> Progress {
        Progress { bars: MultiProgress::with_draw_target(ProgressDrawTarget::hidden()), silent: true }
    }

    /// The line a run prints for a step it is about to start; waits show their own.
    pub fn announce<S: crate::Step>(&self, tier: crate::Tier, step: &S) {
        if step.change() != crate::Change::Wait {
            self.line(format!("  {} {tier}: {}", step.change().sign(), step.describe()));
        }
    }

    pub fn line(&self, text: impl AsRef<str>) {
        if self.silent {
            return;
        }
        if self.bars.is_hidden() {
            eprintln!("{}", text.as_ref());
        } else {
            // Printing through the bars keeps lines and spinners from garbling each other.
            let _ = self.bars.println(text.as_ref());
        }
    }

    /// Starts showing a wait; finish it with [`Waiting::done`].
    pub fn waiting(&self, what: impl Into<String>, limit: Duration) -> Waiting {
        let what = what.into();
        let bar = self.bars.add(ProgressBar::new_spinner());
        bar.set_style(ProgressStyle::with_template("  {spinner} {msg} ({elapsed})").expect("static template"));
        bar.set_message(what.clone());
        bar.enable_steady_tick(Duration::from_millis(200));
        if self.bars.is_hidden() {
            self.line(format!("  … {what} (up to {})", human(limit)));
        }
        Waiting { progress: self.clone(), bar, what, started: Instant::now() }
    }
}

/// A wait in progress.
#[derive(Debug)]
pub struct Waiting {
    progress: Progress,
    bar: ProgressBar,
    what: String,
    started: Instant,
}

impl Waiting {
    pub fn done(self, outcome: &str) {
        self.bar.finish_and_clear();
        self.progress.line(format!("  ✓ {}: {outcome} after {}", self.what, human(self.started.elapsed())));
    }
}

/// A duration as a person reads it: `850ms`, `42s`, `2m05s`.
pub fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs == 0 {
        format!("{}ms", duration.as_millis())
    } else if secs < 60 {
        format!("{secs}s")
    } else {
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}
