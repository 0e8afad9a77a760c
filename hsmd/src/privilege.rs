//! Shedding privileges once the token is open (docs/design.md "hsmd").
//!
//! Started as root: `setgroups` (only `keep_groups`), `setresgid`,
//! `setresuid` to the configured `user`/`group`. Always: every capability set
//! cleared (bounding first, while `CAP_SETPCAP` is still held; then effective,
//! permitted, inheritable, ambient), `PR_SET_NO_NEW_PRIVS`,
//! `PR_SET_DUMPABLE 0`, `RLIMIT_CORE 0` (the PIN pages are locked before,
//! by `crate::pin::lock_in_memory`). Capabilities, the bounding set and
//! no_new_privs are per thread: this runs while hsmd has a single thread, and
//! [`verify`] then checks every thread in `/proc/self/task/*/status`.

use anyhow::{bail, Context, Result};
use caps::CapSet;
use nix::sys::resource::{setrlimit, Resource};
use nix::unistd::{getgid, getuid, setgroups, setresgid, setresuid, Gid, Group, Uid, User};

/// Who hsmd becomes.
#[derive(Debug, Clone)]
pub struct Target {
    /// User name and uid.
    pub user: (String, Uid),
    /// Group name and gid.
    pub group: (String, Gid),
    /// Supplementary groups kept (e.g. to reach pcscd), names and gids.
    pub keep: Vec<(String, Gid)>,
}

/// Looks up `user`, `group` and `keep_groups` (before anything is opened, so
/// a typo fails start-up at once).
///
/// Errors: a name that is not a unix user or group on this host, with what to do.
pub fn resolve(user: &str, group: &str, keep_groups: &[String]) -> Result<Target> {
    let u = User::from_name(user)
        .with_context(|| format!("cannot look up user {user:?}"))?
        .with_context(|| {
            format!("user {user:?} (config key user) does not exist: create it (the package's sysusers.d does; or useradd --system {user}) or set user to an existing account")
        })?;
    let gid_of = |name: &str, key: &str| -> Result<Gid> {
        Ok(Group::from_name(name)
            .with_context(|| format!("cannot look up group {name:?}"))?
            .with_context(|| format!("group {name:?} ({key}) does not exist on this host"))?
            .gid)
    };
    let g = gid_of(group, "config key group")?;
    let keep = keep_groups
        .iter()
        .map(|n| Ok((n.clone(), gid_of(n, "keep_groups")?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Target {
        user: (user.to_owned(), u.uid),
        group: (group.to_owned(), g),
        keep,
    })
}

/// What [`drop`] did, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// True when hsmd switched user (it started as root).
    pub switched: bool,
}

/// Drops every privilege. Call while the process has one thread.
///
/// Errors: any step that fails (a start-up error, never a warning).
/// `target` is None when hsmd did not start as root (there is no one to switch to).
pub fn drop(target: Option<&Target>) -> Result<Report> {
    let root = getuid().is_root();
    if let (true, Some(target)) = (root, target) {
        caps::clear(None, CapSet::Bounding).context("cannot clear the capability bounding set")?;
        let keep: Vec<Gid> = target.keep.iter().map(|(_, g)| *g).collect();
        setgroups(&keep).context("setgroups failed")?;
        let g = target.group.1;
        setresgid(g, g, g).with_context(|| format!("setresgid({}) failed", target.group.0))?;
        let u = target.user.1;
        setresuid(u, u, u).with_context(|| format!("setresuid({}) failed", target.user.0))?;
    } else if !caps::read(None, CapSet::Bounding)
        .map(|s| s.is_empty())
        .unwrap_or(false)
    {
        // Without CAP_SETPCAP the bounding set cannot shrink; with no permitted
        // capabilities and no_new_privs it cannot grant anything either.
        if let Err(e) = caps::clear(None, CapSet::Bounding) {
            tracing::info!("capability bounding set left as inherited ({e}); with no permitted capabilities and no_new_privs it grants nothing (systemd's CapabilityBoundingSet= empties it)");
        }
    }
    // Only call capset(2) when there is something to clear: under systemd
    // with User=hsmd the sets are already empty and the unit's seccomp
    // filter (~@privileged) refuses capset.
    for set in [
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Effective,
        CapSet::Permitted,
    ] {
        let held = caps::read(None, set)
            .with_context(|| format!("cannot read the {set:?} capability set"))?;
        if !held.is_empty() {
            caps::clear(None, set)
                .with_context(|| format!("cannot clear the {set:?} capability set"))?;
        }
    }
    nix::sys::prctl::set_no_new_privs().context("PR_SET_NO_NEW_PRIVS failed")?;
    nix::sys::prctl::set_dumpable(false).context("PR_SET_DUMPABLE 0 failed")?;
    setrlimit(Resource::RLIMIT_CORE, 0, 0).context("setting RLIMIT_CORE to 0 failed")?;
    Ok(Report {
        switched: root && target.is_some(),
    })
}

/// The fields of `/proc/<tid>/status` that show privileges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcStatus {
    /// `Uid:` real, effective, saved, fs.
    pub uid: Vec<u32>,
    /// `Gid:` real, effective, saved, fs.
    pub gid: Vec<u32>,
    /// `Groups:`.
    pub groups: Vec<u32>,
    /// `CapInh`, `CapPrm`, `CapEff`, `CapBnd`, `CapAmb` as hex masks.
    pub caps: [u64; 5],
    /// `NoNewPrivs:`.
    pub no_new_privs: bool,
}

/// Parses the text of a `/proc/.../status` file.
pub fn parse_status(text: &str) -> ProcStatus {
    let mut st = ProcStatus::default();
    let nums = |v: &str| {
        v.split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect::<Vec<u32>>()
    };
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let hex = || u64::from_str_radix(v.trim(), 16).unwrap_or(u64::MAX);
        match k {
            "Uid" => st.uid = nums(v),
            "Gid" => st.gid = nums(v),
            "Groups" => st.groups = nums(v),
            "CapInh" => st.caps[0] = hex(),
            "CapPrm" => st.caps[1] = hex(),
            "CapEff" => st.caps[2] = hex(),
            "CapBnd" => st.caps[3] = hex(),
            "CapAmb" => st.caps[4] = hex(),
            "NoNewPrivs" => st.no_new_privs = v.trim() == "1",
            _ => {}
        }
    }
    st
}

/// Checks every thread of the process: uid/gid are the target's (when
/// switched), groups only the kept ones, no capability in any set (the
/// bounding set only when hsmd could empty it), no_new_privs set, and the
/// process not dumpable.
///
/// Errors: the first field that is not as expected, naming the thread.
pub fn verify(target: Option<&Target>, report: &Report) -> Result<ProcStatus> {
    let (uid, gid) = match target {
        Some(t) if report.switched => (t.user.1.as_raw(), t.group.1.as_raw()),
        _ => (getuid().as_raw(), getgid().as_raw()),
    };
    let mut keep: Vec<u32> = target
        .map(|t| t.keep.iter().map(|(_, g)| g.as_raw()).collect())
        .unwrap_or_default();
    keep.sort_unstable();
    let mut last = ProcStatus::default();
    for entry in std::fs::read_dir("/proc/self/task").context("cannot list /proc/self/task")? {
        let path = entry?.path().join("status");
        let st = parse_status(
            &std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        );
        let where_ = path.display();
        if st.uid.iter().any(|u| *u != uid) || st.uid.is_empty() {
            bail!("{where_}: Uid is {:?}, expected {uid} everywhere", st.uid);
        }
        if st.gid.iter().any(|g| *g != gid) || st.gid.is_empty() {
            bail!("{where_}: Gid is {:?}, expected {gid} everywhere", st.gid);
        }
        let mut groups = st.groups.clone();
        groups.sort_unstable();
        if report.switched && groups != keep {
            bail!("{where_}: Groups is {groups:?}, expected {keep:?}");
        }
        for (name, mask) in ["CapInh", "CapPrm", "CapEff"]
            .iter()
            .zip(&st.caps[..3])
            .chain(std::iter::once((&"CapAmb", &st.caps[4])))
        {
            if *mask != 0 {
                bail!("{where_}: {name} is {mask:016x}, expected 0");
            }
        }
        if report.switched && st.caps[3] != 0 {
            bail!("{where_}: CapBnd is {:016x}, expected 0", st.caps[3]);
        }
        if !st.no_new_privs {
            bail!("{where_}: NoNewPrivs is not set");
        }
        last = st;
    }
    if nix::sys::prctl::get_dumpable().context("PR_GET_DUMPABLE failed")? {
        bail!("the process is still dumpable");
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status() {
        let st = parse_status("Name:\thsmd\nUid:\t999\t999\t999\t999\nGid:\t998\t998\t998\t998\nGroups:\t5 7 \nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\n");
        assert_eq!(st.uid, vec![999; 4]);
        assert_eq!(st.groups, vec![5, 7]);
        assert_eq!(st.caps, [0, 0, 0, 0x1ff_ffff_ffff, 0]);
        assert!(st.no_new_privs);
    }
}
