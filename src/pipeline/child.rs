//! pg_dump and pg_restore, as migsafe runs them.
//!
//! - In a process group of their own: a Ctrl-C at the terminal reaches
//!   migsafe alone, and migsafe decides what it means (a backup stops; a
//!   restore already running goes on to its end), the same for Ctrl-C and
//!   for a SIGTERM sent to migsafe only.
//! - Stopped with SIGTERM, on which both cancel their statement on the
//!   server before they exit. A SIGKILL would leave the server session
//!   running (a `LOCK TABLE` waiting behind another session, a restore's
//!   transaction open) after migsafe has said it stopped.
//! - Registered while they run ([`stop_all`]), so that leaving at once (a
//!   second Ctrl-C) stops them first, instead of leaving a restore to commit
//!   after migsafe has exited. (A SIGKILL of migsafe itself cannot do that.)

use std::process::{Output, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::events::Interrupt;

/// The programs running now, by process id.
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// What a stop request does now, when it does not stop the work.
static RUNS_TO_END: Mutex<Option<&'static str>> = Mutex::new(None);

/// How long a stopped program has to cancel its statement and exit before
/// it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Tells every program migsafe runs to stop (SIGTERM: each cancels its
/// statement on the server; a restore's one transaction rolls back unless
/// it had already committed). How many there were.
pub fn stop_all() -> usize {
    let running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
    for pid in running.iter() {
        terminate(*pid);
    }
    running.len()
}

/// Set while a program runs that a stop request does not stop (a
/// restore): what happens instead, for the message that answers Ctrl-C.
pub fn runs_to_end() -> Option<&'static str> {
    *RUNS_TO_END.lock().unwrap_or_else(PoisonError::into_inner)
}

fn terminate(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

/// Removes a program from [`RUNNING`] (and the note it set) when it ends.
struct Registered {
    pid: Option<u32>,
    to_end: bool,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            RUNNING
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|p| *p != pid);
        }
        if self.to_end {
            *RUNS_TO_END.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }
}

/// How a stop request is answered while the program runs.
pub(crate) enum OnStop<'a> {
    /// The program is stopped (SIGTERM, then SIGKILL after a grace), and
    /// the result is an `Interrupted` error.
    Stop(&'a Interrupt),
    /// The program goes on to its end; the note says so to whoever asked.
    RunToEnd(&'static str),
}

/// Runs `command` (stdin closed, output captured) in its own process group,
/// answering a stop request as `on_stop` says, and calling `tick` every
/// `every` while it runs (a progress bar).
pub(crate) async fn output(
    command: &mut tokio::process::Command,
    on_stop: OnStop<'_>,
    every: Duration,
    mut tick: impl FnMut(),
) -> std::io::Result<Output> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // A dropped future (a panic, the runtime ending) does not leave it.
        .kill_on_drop(true);
    let child = command.spawn()?;
    let pid = child.id();
    let mut registered = Registered { pid, to_end: false };
    if let Some(pid) = pid {
        RUNNING
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(pid);
    }
    if let OnStop::RunToEnd(note) = on_stop {
        *RUNS_TO_END.lock().unwrap_or_else(PoisonError::into_inner) = Some(note);
        registered.to_end = true;
    }
    let waited = child.wait_with_output();
    tokio::pin!(waited);
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let stop = match on_stop {
        OnStop::Stop(interrupt) => Some(interrupt),
        OnStop::RunToEnd(_) => None,
    };
    loop {
        tokio::select! {
            output = &mut waited => return output,
            () = async {
                match stop {
                    Some(interrupt) => interrupt.wait().await,
                    None => std::future::pending().await,
                }
            } => break,
            _ = ticker.tick() => tick(),
        }
    }
    // Stopped: let it cancel its statement on the server and exit.
    if let Some(pid) = pid {
        terminate(pid);
    }
    // Past the grace, returning drops it, which kills it (kill_on_drop).
    let _ = tokio::time::timeout(STOP_GRACE, &mut waited).await;
    drop(registered);
    Err(std::io::Error::from(std::io::ErrorKind::Interrupted))
}
