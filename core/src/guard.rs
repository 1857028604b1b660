//! Containing panics from dependencies that trust their input.
//!
//! Automerge 0.12 and redb may panic on hostile or damaged bytes. Every call that hands
//! them such bytes runs inside [`catch`], which turns a panic into an error. A process can
//! ask [`is_catching`] from its panic hook to keep such contained panics out of the user's
//! terminal (the app logs them at debug level instead).

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f`, returning `Err(())` if it panicked. Whatever `f` was building must be thrown
/// away on error: only pass closures that work on scratch values.
#[allow(clippy::result_unit_err)]
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, ()> {
    DEPTH.with(|d| d.set(d.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(f));
    DEPTH.with(|d| d.set(d.get() - 1));
    result.map_err(|_| ())
}

/// Whether the current thread is inside [`catch`] (for panic hooks).
pub fn is_catching() -> bool {
    DEPTH.with(|d| d.get() > 0)
}
