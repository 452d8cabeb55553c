//! The generator's stage progress as indicatif bars on stderr (installed only when stderr is a
//! terminal: logs and pipes get no redraws).

use std::sync::Arc;
use std::time::Duration;

use adudiff_gen::generate::progress::{Display, StageView};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// How often a bar redraws on its own (spinner, elapsed time) between advances.
const TICK: Duration = Duration::from_millis(150);

/// Draws each stage as `parse      ▕███▌      ▏  42%   12.3s`, a spinner when its size is
/// unknown, and leaves `parse      done in 12.3s` when it finishes.
pub struct Bars;

/// One stage's bar.
struct Bar(ProgressBar);

/// `  12.3s`: the stage's elapsed seconds, as the bars always showed them.
fn seconds(state: &ProgressState, w: &mut dyn std::fmt::Write) {
    let _ = write!(w, "{:>6.1}s", state.elapsed().as_secs_f64());
}

/// The style of a stage of known size (`bar`) or unknown size (spinner).
fn style(known_size: bool) -> ProgressStyle {
    let (template, what) = if known_size {
        ("{prefix:<10} ▕{bar:30}▏ {percent:>3}% {secs}", "bar")
    } else {
        ("{prefix:<10} {spinner} {secs}", "spinner")
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|e| panic!("{what} template: {e}"))
        .with_key("secs", seconds)
        .progress_chars("█▉▊▋▌▍▎▏ ")
        .tick_chars("|/-\\ ")
}

impl Display for Bars {
    fn stage(&self, name: &str, total: u64) -> Arc<dyn StageView> {
        let bar = ProgressBar::with_draw_target(
            (total > 0).then_some(total),
            ProgressDrawTarget::stderr(),
        )
        .with_style(style(total > 0))
        .with_prefix(name.to_string());
        bar.enable_steady_tick(TICK);
        Arc::new(Bar(bar))
    }
}

impl StageView for Bar {
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }

    fn end(&self, elapsed: Duration, finished: bool) {
        if finished {
            let done = ProgressStyle::with_template("{prefix:<10} {msg}")
                .unwrap_or_else(|e| panic!("done template: {e}"));
            self.0.set_style(done);
            self.0
                .finish_with_message(format!("done in {:.1}s", elapsed.as_secs_f64()));
        } else {
            // The run failed: the bar stays where it stopped, above the error message.
            self.0.abandon();
        }
    }
}
