//! Portals: which statement each was bound from, and (for EXPLAIN of a slow execution)
//! the values it was bound with.

use std::sync::Arc;

use super::Prepared;
use crate::query::FastMap;

/// Bind values longer than this are never explained: not copied.
pub const VALUES_MAX: usize = 1 << 20;

/// A portal (`complete` is false when only the start of a streamed Bind was seen).
pub struct Portal {
    pub stmt: Arc<Prepared>,
    pub values: Vec<u8>,
    pub complete: bool,
}

#[derive(Default)]
pub struct Portals {
    map: FastMap<Box<str>, Portal>,
}

impl Portals {
    /// A Bind of `portal` from `stmt` (`None`: a statement this client did not parse
    /// with the protocol, as after SQL PREPARE); `values` kept when asked and whole.
    pub(super) fn bind(
        &mut self,
        portal: &str,
        stmt: Option<&Arc<Prepared>>,
        values: &[u8],
        keep_values: bool,
        complete: bool,
    ) {
        let Some(stmt) = stmt else {
            self.map.remove(portal);
            return;
        };
        let complete = complete && values.len() <= VALUES_MAX;
        let values = if complete && keep_values { values } else { &[] };
        match self.map.get_mut(portal) {
            Some(p) => {
                if !Arc::ptr_eq(&p.stmt, stmt) {
                    p.stmt = stmt.clone();
                }
                p.values.clear();
                p.values.extend_from_slice(values);
                p.complete = complete;
            }
            None => {
                let p = Portal {
                    stmt: stmt.clone(),
                    values: values.to_vec(),
                    complete,
                };
                self.map.insert(portal.into(), p);
            }
        }
    }

    pub fn get(&self, portal: &str) -> Option<&Portal> {
        self.map.get(portal)
    }

    pub(super) fn close(&mut self, portal: &str) {
        self.map.remove(portal);
    }

    /// Portals end with their transaction; the named ones are dropped once nothing more
    /// is on its way (drivers that name portals would grow the map).
    pub fn end_of_transaction(&mut self) {
        if self.map.len() > 1 {
            self.map.retain(|name, _| name.is_empty());
        }
    }
}
