//! Building Prometheus metric families by hand at scrape time: a [`Spec`] names a
//! family (name, help, type, label names) once, for both its `Desc` (registration) and
//! the [`Family`] filled on each scrape.

use std::collections::HashMap;

use prometheus::core::Desc;
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};

/// A family's fixed description.
pub struct Spec {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: MetricType,
    pub labels: &'static [&'static str],
}

impl Spec {
    pub fn desc(&self) -> prometheus::Result<Desc> {
        let labels = self.labels.iter().map(|l| l.to_string()).collect();
        Desc::new(
            self.name.to_string(),
            self.help.to_string(),
            labels,
            HashMap::new(),
        )
    }
}

/// A family being filled with samples.
pub struct Family {
    mf: MetricFamily,
    labels: &'static [&'static str],
}

impl Family {
    pub fn new(spec: &Spec) -> Family {
        let mut mf = MetricFamily::default();
        mf.set_name(spec.name.to_string());
        mf.set_help(spec.help.to_string());
        mf.set_field_type(spec.kind);
        Family {
            mf,
            labels: spec.labels,
        }
    }

    fn metric(&self, values: &[&str]) -> Metric {
        debug_assert_eq!(values.len(), self.labels.len(), "{}", self.mf.name());
        let pairs = self.labels.iter().zip(values).map(|(name, value)| {
            let mut pair = LabelPair::default();
            pair.set_name(name.to_string());
            pair.set_value(value.to_string());
            pair
        });
        let mut metric = Metric::default();
        metric.set_label(pairs.collect());
        metric
    }

    pub fn gauge(&mut self, values: &[&str], value: f64) {
        let mut metric = self.metric(values);
        let mut gauge = Gauge::default();
        gauge.set_value(value);
        metric.set_gauge(gauge);
        self.mf.mut_metric().push(metric);
    }

    pub fn counter(&mut self, values: &[&str], value: f64) {
        let mut metric = self.metric(values);
        let mut counter = Counter::default();
        counter.set_value(value);
        metric.set_counter(counter);
        self.mf.mut_metric().push(metric);
    }

    /// `cumulative[i]` samples are at most `bounds[i]`; `count` is the +Inf bucket.
    pub fn histogram(
        &mut self,
        values: &[&str],
        bounds: &[f64],
        cumulative: &[u64],
        count: u64,
        sum: f64,
    ) {
        let mut metric = self.metric(values);
        let buckets = bounds.iter().zip(cumulative).map(|(&le, &n)| {
            let mut bucket = Bucket::default();
            bucket.set_upper_bound(le);
            bucket.set_cumulative_count(n);
            bucket
        });
        let mut histogram = Histogram::default();
        histogram.set_bucket(buckets.collect());
        histogram.set_sample_count(count);
        histogram.set_sample_sum(sum);
        metric.set_histogram(histogram);
        self.mf.mut_metric().push(metric);
    }

    pub fn finish(self) -> MetricFamily {
        self.mf
    }
}
