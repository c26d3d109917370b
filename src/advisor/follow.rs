//! The closed loop: suggestions are followed across passes; when one's index appears
//! in the catalog, the statements it serves are measured after as well as before.

use super::candidates::IndexDef;
use super::catalog::Existing;
use super::report::Report;
use super::state::{lock, State};
use super::{store, Env};
use crate::slow::unix_ms;

/// The closed loop: remember new suggestions, mark those whose index now exists (and
/// start counting "after"), carry applied ones into the report, store their outcome.
#[allow(clippy::too_many_lines)] // to split: over 60 lines when the lint was turned on
pub(super) async fn follow(
    state: &State,
    env: &Env,
    database: &str,
    existing: &[Existing],
    report: &mut Report,
) {
    let now = unix_ms();
    let mut outcomes = Vec::new();
    {
        let mut followed = lock(&state.followed);
        for s in report.suggestions.iter().filter(|s| s.database == database) {
            if !followed
                .iter()
                .any(|f| f.database == s.database && f.index == s.index)
            {
                for v in &s.serves {
                    state.watch.watch(database, v.fingerprint);
                }
                followed.push(s.clone());
            }
        }
        for f in followed
            .iter_mut()
            .filter(|f| f.database == database && f.applied_at_ms.is_none())
        {
            if let Some(name) = applied_as(&f.index, existing) {
                f.applied_at_ms = Some(now);
                f.applied_as = Some(name);
                for v in &f.serves {
                    state.watch.applied(database, v.fingerprint);
                }
            }
        }
        for f in followed
            .iter()
            .filter(|f| f.database == database && f.applied_at_ms.is_some())
        {
            report
                .suggestions
                .retain(|s| !(s.database == f.database && s.index == f.index));
            report.suggestions.push(f.clone());
            outcomes.push(f.clone());
        }
    }
    let Some(st) = (env.store)() else {
        return;
    };
    for f in outcomes {
        for v in &f.serves {
            let Some((before, after)) = state.watch.measured(database, v.fingerprint) else {
                continue;
            };
            let o = store::Outcome {
                database,
                index_name: f.applied_as.as_deref().unwrap_or(&f.name),
                fingerprint: v.fingerprint,
                applied_at_ms: f.applied_at_ms.unwrap_or(now),
                cost: (v.cost_before, v.cost_after),
                before,
                after,
            };
            if let Err(e) = store::outcome(&st, &o).await {
                tracing::warn!(error = %e, "advisor: outcome not stored");
            }
        }
    }
}

/// The name of an existing index that is this suggestion: same name, or same table,
/// method, key columns and presence of a predicate.
fn applied_as(def: &IndexDef, existing: &[Existing]) -> Option<String> {
    let name = def.name();
    existing
        .iter()
        .find(|(table, ix, method, keys, pred)| {
            *ix == name
                || (table == &def.table
                    && *method == def.method
                    && *keys == def.keys
                    && pred.is_some() == def.predicate.is_some())
        })
        .map(|e| e.1.clone())
}

/// Fills each served statement's measured latency before and after.
pub fn measure(state: &State, report: &mut Report) {
    for s in &mut report.suggestions {
        for v in &mut s.serves {
            if let Some((before, after)) = state.watch.measured(&s.database, v.fingerprint) {
                v.measured_before = Some(before);
                v.measured_after = s.applied_at_ms.is_some().then_some(after);
            }
        }
    }
}
