//! CPU time used, from /proc (Linux): this process's, and a server's together with its child
//! processes (pre-forking servers such as postfwd2 do their work in children).

use anyhow::{Context, Result};

/// Clock ticks per second of /proc's utime and stime (USER_HZ, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// (parent pid, CPU seconds) of process `pid`, from /proc/PID/stat.
fn stat(pid: u32) -> Result<(u32, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat (is the server running?)"))?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unexpected /proc stat format")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // ppid is field 4 of stat, utime and stime 14 and 15; after ')' they are at 1, 11, 12.
    let parent = fields.get(1).and_then(|f| f.parse().ok()).unwrap_or(0);
    let ticks: f64 = fields
        .get(11..13)
        .context("unexpected /proc stat format")?
        .iter()
        .map(|f| f.parse::<f64>().unwrap_or(0.0))
        .sum();
    Ok((parent, ticks / USER_HZ))
}

/// CPU seconds (user + system) used so far by process `pid` and its live children.
pub fn process_seconds(pid: u32) -> Result<f64> {
    let (_, mut seconds) = stat(pid)?;
    for entry in std::fs::read_dir("/proc")
        .context("listing /proc")?
        .flatten()
    {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok((parent, child_seconds)) = stat(child)
            && parent == pid
        {
            seconds += child_seconds;
        }
    }
    Ok(seconds)
}

/// CPU seconds used so far by this process.
pub fn own_seconds() -> f64 {
    stat(std::process::id()).map(|(_, s)| s).unwrap_or(0.0)
}
