//! What the benchmark ran on, read from /proc, and how busy the machine was while it ran.
//!
//! Every figure in a results file is only meaningful next to the machine it came from, and this
//! machine is shared: other builds may run at the same time. So besides the CPU, cores, memory
//! and OS, each load run records the whole machine's CPU use over its window ([`CpuTimes`]),
//! which shows how much went to processes other than the node and the load generator.

use serde_json::{Value, json};

/// The machine, as /proc and /etc/os-release describe it.
#[derive(Debug, Clone)]
pub struct Machine {
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// Online logical CPUs.
    pub cores: usize,
    /// `MemTotal` in MiB.
    pub ram_mib: u64,
    /// `PRETTY_NAME` from /etc/os-release.
    pub os: String,
    /// Kernel release.
    pub kernel: String,
    /// Host name (also in the results file's name).
    pub host: String,
    /// /proc/loadavg when the benchmark started: other work on a shared machine.
    pub loadavg_at_start: String,
}

impl Machine {
    /// Reads the machine description; fields that cannot be read say so.
    pub fn read() -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown (no model name in /proc/cpuinfo)".into());
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let ram_mib = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024);
        let os = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_owned())
            .unwrap_or_else(|| "unknown".into());
        let host = read("/proc/sys/kernel/hostname").trim().to_owned();
        Machine {
            cpu_model,
            cores,
            ram_mib,
            os,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            host: if host.is_empty() {
                "unknown-host".into()
            } else {
                host
            },
            loadavg_at_start: read("/proc/loadavg")
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    /// One line for the summary and the results file.
    pub fn describe(&self) -> String {
        format!(
            "{} × {} cores, {} MiB RAM, {} (Linux {}), host {}; load average at start {}",
            self.cpu_model,
            self.cores,
            self.ram_mib,
            self.os,
            self.kernel,
            self.host,
            self.loadavg_at_start
        )
    }

    /// The JSON form.
    pub fn to_json(&self) -> Value {
        json!({
            "cpu_model": self.cpu_model,
            "cores": self.cores,
            "ram_mib": self.ram_mib,
            "os": self.os,
            "kernel": self.kernel,
            "host": self.host,
            "loadavg_at_start": self.loadavg_at_start,
        })
    }
}

/// The first line of /proc/stat: CPU time of the whole machine, in clock ticks.
#[derive(Debug, Clone, Copy)]
pub struct CpuTimes {
    /// Ticks spent not idle (user, nice, system, irq, softirq, steal).
    busy: u64,
    /// Ticks the hypervisor gave to other guests (`steal`): on a shared VM, CPU the benchmark
    /// could not have had whatever its priority.
    steal: u64,
    /// All ticks.
    total: u64,
}

impl CpuTimes {
    /// Reads /proc/stat (zeros when unreadable).
    pub fn now() -> CpuTimes {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let fields: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        let get = |i: usize| fields.get(i).copied().unwrap_or(0);
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let idle = get(3) + get(4);
        let total: u64 = (0..8).map(get).sum();
        CpuTimes {
            busy: total - idle,
            steal: get(7),
            total,
        }
    }

    /// Cores stolen by the hypervisor on average between `self` and `later`.
    pub fn cores_stolen_until(&self, later: &CpuTimes, cores: usize) -> f64 {
        let total = later.total.saturating_sub(self.total);
        if total == 0 {
            return 0.0;
        }
        later.steal.saturating_sub(self.steal) as f64 / total as f64 * cores as f64
    }

    /// Cores busy on average between `self` and `later` (0 to the number of cores).
    pub fn cores_busy_until(&self, later: &CpuTimes, cores: usize) -> f64 {
        let total = later.total.saturating_sub(self.total);
        if total == 0 {
            return 0.0;
        }
        later.busy.saturating_sub(self.busy) as f64 / total as f64 * cores as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_machine() {
        let m = Machine::read();
        assert!(m.cores >= 1);
        assert!(m.ram_mib > 0, "{m:?}");
        let a = CpuTimes::now();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert_ne!(x, 1);
        let b = CpuTimes::now();
        let busy = a.cores_busy_until(&b, m.cores);
        assert!((0.0..=m.cores as f64).contains(&busy), "{busy}");
    }
}
