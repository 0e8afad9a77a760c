//! CPU time and memory of a process, from `/proc/<pid>/stat` (utime + stime,
//! fields 14 and 15, proc(5)) and `/proc/<pid>/status` (`VmRSS`, `VmHWM`).
//! Read by hand: two fields of each file. The procfs crate did the same and
//! was a tenth of the bench's build.

use anyhow::{bail, Context, Result};

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of utime and
/// stime.
fn ticks_per_second() -> Result<f64> {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => Ok(t as f64),
        other => bail!("sysconf(_SC_CLK_TCK) gave {other:?}"),
    }
}

/// CPU time (user + system) a process has used so far, in seconds.
pub fn cpu_seconds(pid: i32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    // The command name (field 2) is in parentheses and may hold blanks and
    // parentheses itself: the fields after it start at the last ')'.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .with_context(|| format!("{path}: no ')' after the command name"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts with field 3 (state): utime is field 14, stime 15.
    let field = |n: usize| -> Result<u64> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("{path}: field {n} is not a number"))
    };
    Ok((field(14)? + field(15)?) as f64 / ticks_per_second()?)
}

/// Time the threads of a process now alive have run on a CPU, in seconds,
/// to the nanosecond: the sum of the first field of
/// `/proc/<pid>/task/<tid>/schedstat` (proc(5); [`cpu_seconds`] counts in
/// clock ticks of 10 ms, too coarse for a few requests). Threads that
/// exited are not counted.
pub fn run_seconds(pid: i32) -> Result<f64> {
    let dir = format!("/proc/{pid}/task");
    let mut ns: u64 = 0;
    for task in std::fs::read_dir(&dir).with_context(|| format!("cannot read {dir}"))? {
        let path = task?.path().join("schedstat");
        // A thread may end between the listing and the read.
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        ns += text
            .split_whitespace()
            .next()
            .and_then(|f| f.parse::<u64>().ok())
            .with_context(|| format!("{}: no run time", path.display()))?;
    }
    Ok(ns as f64 / 1e9)
}

/// Resident set size now (`VmRSS`) and its peak so far (`VmHWM`), in KiB.
pub fn rss_kib(pid: i32) -> Result<(u64, u64)> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let kib = |name: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("{path}: no {name} line in kB"))
    };
    Ok((kib("VmRSS:")?, kib("VmHWM:")?))
}

/// This process's id.
pub fn own_pid() -> i32 {
    std::process::id() as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_has_cpu_time_and_memory() {
        let busy: u64 = (0..20_000_000u64).fold(0, |a, b| a ^ b.wrapping_mul(31));
        assert!(busy != 1);
        let cpu = cpu_seconds(own_pid()).expect("stat");
        assert!(cpu > 0.0 && cpu < 3600.0, "{cpu}");
        let run = run_seconds(own_pid()).expect("schedstat");
        assert!(run > 0.0 && run < 3600.0, "{run}");
        let (rss, hwm) = rss_kib(own_pid()).expect("status");
        assert!(rss > 100 && hwm >= rss, "{rss} {hwm}");
    }
}
