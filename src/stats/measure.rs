//! The measuring services every session shares: the query analyzer, the statistics
//! registry and its clock. Present when `stats = true`.

use std::sync::Arc;

use super::{Registry, StatsClock};
use crate::query::Analyzer;

/// The shared pieces measurement needs.
#[derive(Clone)]
pub struct Measure {
    pub analyzer: Arc<Analyzer>,
    pub registry: Arc<Registry>,
    /// The registry's `now` (seconds; minutes are wall-clock minutes).
    pub clock: StatsClock,
}
