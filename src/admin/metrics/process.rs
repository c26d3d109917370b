//! `process_*` families: the prometheus crate's Linux collector, except that
//! `process_cpu_seconds_total` is re-read from `/proc/self/stat` as a float. The
//! crate divides clock ticks by ticks-per-second in integers, so its value moves in
//! whole seconds and `rate()` over a few minutes of a lightly loaded proxy reads 0.

use prometheus::core::{Collector, Desc};
use prometheus::process_collector::ProcessCollector;
use prometheus::proto::MetricFamily;

const CPU: &str = "process_cpu_seconds_total";

pub struct ProcessMetrics {
    inner: ProcessCollector,
    ticks_per_second: f64,
}

impl ProcessMetrics {
    pub fn new() -> ProcessMetrics {
        // SAFETY: sysconf only reads a system constant.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        ProcessMetrics {
            inner: ProcessCollector::for_self(),
            ticks_per_second: if ticks > 0 { ticks as f64 } else { 100.0 },
        }
    }
}

impl Collector for ProcessMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.inner.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families = self.inner.collect();
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        let seconds = stat.and_then(|s| cpu_seconds(&s, self.ticks_per_second));
        if let Some(seconds) = seconds {
            for family in families.iter_mut().filter(|f| f.name() == CPU) {
                for metric in family.mut_metric().iter_mut() {
                    let mut counter = prometheus::proto::Counter::default();
                    counter.set_value(seconds);
                    metric.set_counter(counter);
                }
            }
        }
        families
    }
}

/// User plus system CPU seconds from a `/proc/<pid>/stat` line. The command name (in
/// parentheses) may hold spaces, so fields are counted after its closing parenthesis:
/// utime and stime are fields 14 and 15 of the line, 12 and 13 after it.
pub fn cpu_seconds(stat: &str, ticks_per_second: f64) -> Option<f64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / ticks_per_second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractional_cpu_seconds() {
        let line =
            "4242 (pg sidecar) S 1 4242 4242 0 -1 4194560 500 0 0 0 123 45 0 0 20 0 9 0 100 0 0";
        assert_eq!(cpu_seconds(line, 100.0), Some(1.68));
        assert_eq!(cpu_seconds("garbage", 100.0), None);
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(cpu_seconds(&own, 100.0).is_some());
    }
}
