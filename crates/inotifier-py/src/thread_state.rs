//! A Python thread state kept for the whole life of each daemon thread that runs Python
//! processors.
//!
//! `Python::attach` on a thread that Python did not start makes a thread state and deletes it
//! again when it returns (PyO3 issue #5467). Everything a thread keeps in `threading.local`
//! would then last one batch of events: Django's database connections are thread-local, so
//! each batch would open a new connection and leave the last one to the garbage collector, and
//! `CONN_MAX_AGE` could never keep one. Here the state is made once per thread, with
//! `PyGILState_Ensure` (so that the later `attach` calls find it and keep it), and deleted
//! when the thread ends, which drops (and so closes) what its thread-locals held.

use std::cell::RefCell;

use pyo3::ffi;

struct Pinned {
    gil: ffi::PyGILState_STATE,
    state: *mut ffi::PyThreadState,
}

impl Drop for Pinned {
    fn drop(&mut self) {
        // SAFETY: this thread made the state with PyGILState_Ensure and released the GIL with
        // PyEval_SaveThread; the daemon's threads end before the interpreter is finalized
        // (the daemon's run returns only after joining them), which Py_IsInitialized confirms.
        unsafe {
            if ffi::Py_IsInitialized() != 0 {
                ffi::PyEval_RestoreThread(self.state);
                ffi::PyGILState_Release(self.gil);
            }
        }
    }
}

thread_local! {
    static PINNED: RefCell<Option<Pinned>> = const { RefCell::new(None) };
}

/// Gives this thread a Python thread state that outlives every `Python::attach` on it. Call
/// it without the GIL, before attaching; a thread that has a state already (one Python
/// started, or one attached now) is left as it is.
pub fn keep_for_this_thread() {
    PINNED.with(|pinned| {
        let mut pinned = pinned.borrow_mut();
        if pinned.is_some() {
            return;
        }
        // SAFETY: a thread without a state is not attached, so it holds no GIL: Ensure takes
        // it with a new state (counted once, so that it outlives the later attach/detach
        // pairs), and SaveThread releases it again, keeping the state.
        unsafe {
            if !ffi::PyGILState_GetThisThreadState().is_null() {
                return;
            }
            let gil = ffi::PyGILState_Ensure();
            let state = ffi::PyEval_SaveThread();
            *pinned = Some(Pinned { gil, state });
        }
    });
}
