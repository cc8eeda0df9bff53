//! One shutdown signal for every long-running command: SIGINT or SIGTERM asks the command to stop
//! after its current batch (it polls [`requested`]); a second signal ends the process at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Installs the handlers (idempotent) and returns the flag they set.
pub fn install() -> &'static AtomicBool {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe); SA_RESETHAND puts the
        // default action back, so a second Ctrl-C ends the process at once.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_RESETHAND;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    &STOP
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Waits `d`, or less if a stop is asked for meanwhile. True if a stop was asked for.
pub fn sleep(d: Duration) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until && !requested() {
        std::thread::sleep(Duration::from_millis(100).min(until - Instant::now()));
    }
    requested()
}
