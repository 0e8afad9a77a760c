//! CPU time and memory of a process, from `/proc/<pid>/stat` (utime + stime,
//! proc(5)) and `/proc/<pid>/status` (`VmRSS`, `VmHWM`).

use anyhow::{Context, Result};
use procfs::process::Process;

/// CPU time (user + system) a process has used so far, in seconds.
pub fn cpu_seconds(pid: i32) -> Result<f64> {
    let stat = Process::new(pid)
        .and_then(|p| p.stat())
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    Ok((stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64)
}

/// Resident set size now (`VmRSS`) and its peak so far (`VmHWM`), in KiB.
pub fn rss_kib(pid: i32) -> Result<(u64, u64)> {
    let status = Process::new(pid)
        .and_then(|p| p.status())
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    Ok((
        status.vmrss.unwrap_or_default(),
        status.vmhwm.unwrap_or_default(),
    ))
}

/// This process's id.
pub fn own_pid() -> i32 {
    std::process::id() as i32
}
