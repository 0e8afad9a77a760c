//! Keeping unwrapped keys out of core dumps and swap: the process is made
//! non-dumpable (`PR_SET_DUMPABLE` 0: no core file, no ptrace by other
//! processes of the same user, `/proc/<pid>/mem` closed to them), and its
//! memory is locked (`mlockall`) when the memory-lock limit allows it
//! (`LimitMEMLOCK=infinity` in the systemd unit). Where it does not, one
//! warning says so and how to allow it; the frontend serves anyway.

use nix::sys::mman::{mlockall, MlockAllFlags};
use nix::sys::resource::{getrlimit, Resource, RLIM_INFINITY};

/// Applies both protections, logging what could not be done.
pub fn protect() {
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        tracing::warn!("cannot make the process non-dumpable (PR_SET_DUMPABLE): {e}; a core dump could hold unwrapped keys");
    }
    match getrlimit(Resource::RLIMIT_MEMLOCK) {
        Ok((soft, _)) if soft == RLIM_INFINITY => {
            match mlockall(MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE) {
                Ok(()) => tracing::info!("memory locked: unwrapped keys never reach swap"),
                Err(e) => tracing::warn!("cannot lock memory (mlockall): {e}; unwrapped keys may reach swap"),
            }
        }
        Ok((soft, _)) => tracing::warn!(
            "memory not locked: the memory-lock limit is {soft} bytes; set LimitMEMLOCK=infinity (systemd) or `ulimit -l unlimited` to keep unwrapped keys out of swap"
        ),
        Err(e) => tracing::warn!("cannot read the memory-lock limit: {e}; memory not locked"),
    }
}
