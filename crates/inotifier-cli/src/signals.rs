//! SIGINT and SIGTERM are blocked in every thread and taken by one thread with `sigwait`, so a
//! signal turns into an orderly stop instead of interrupting whatever thread it lands on.

use std::io;

/// Blocks the stop signals in the calling thread; threads started afterwards inherit the block.
/// Call before starting any thread.
pub fn block_stop_signals() -> io::Result<libc::sigset_t> {
    // SAFETY: sigset manipulation on a local set, then pthread_sigmask on the current thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(set)
    }
}

/// Starts a thread that waits for one of the blocked signals and then calls `on_signal` once.
pub fn on_stop_signal(
    set: libc::sigset_t,
    on_signal: impl FnOnce(i32) + Send + 'static,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name("inotifier-signals".into())
        .spawn(move || {
            let mut signal = 0;
            // SAFETY: `set` is a valid signal set; sigwait writes the signal number.
            let rc = unsafe { libc::sigwait(&set, &mut signal) };
            if rc == 0 {
                on_signal(signal);
            }
        })
        .map(|_| ())
}
