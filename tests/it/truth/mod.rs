//! Observability that tells the truth (issue #16): exact `le` edges, wall-clock history
//! minutes, plans for alerts and after a fix, and the smaller gaps.

mod buckets;
mod gaps;
mod history;
mod logs;
mod plans;
