//! The closed vocabularies of the cache's metrics: why a statement was refused, why a
//! session bypassed, why an entry left, and where an invalidation came from. Each is an
//! enum with a fixed label list, so `/metrics` series are bounded.

macro_rules! labels {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $label:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// Every value, in label order (the index of a counter array).
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The metric label.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)*
                }
            }

            /// Position in [`Self::ALL`].
            pub fn index(self) -> usize {
                self as usize
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

labels! {
    /// Why a statement cannot be cached (`_misses_total{reason}` counts these, and
    /// `not_cached_yet` for an eligible statement that was simply not stored yet).
    Refusal {
        /// Eligible, but no entry (first run, expired, invalidated or evicted).
        NotCachedYet => "not_cached_yet",
        /// The text is not one statement the parser accepts.
        Unparsable => "unparsable",
        MultipleStatements => "multiple_statements",
        NotSelect => "not_select",
        SelectInto => "select_into",
        LockingClause => "locking_clause",
        WriteCte => "write_cte",
        UnseededTablesample => "unseeded_tablesample",
        /// A function, operator or aggregate that is not IMMUTABLE (or not found).
        VolatileFunction => "volatile_function",
        SystemCatalog => "system_catalog",
        Temporary => "temporary_table",
        Unlogged => "unlogged_table",
        Foreign => "foreign_table",
        MaterializedView => "materialized_view",
        Sequence => "sequence",
        RowSecurity => "row_security",
        /// A table without the invalidation trigger (`pgsidecar cache install`).
        NotCovered => "not_covered",
        /// The server's resolution holds something the proof does not know.
        Unverifiable => "unverifiable",
        /// No rule matches (`mode = "rules"`), or a hint said nocache.
        NoRule => "no_rule",
        /// `auto` admission: cheaper upstream than `min_upstream_time`.
        TooCheap => "too_cheap",
        /// The response was not stored: too big, an error, a notice, a partial result.
        NotStorable => "not_storable",
        /// The analysis on the side connection failed (permission, timeout, standby).
        AnalysisFailed => "analysis_failed",
    }
}

labels! {
    /// Why a request skipped the cache entirely (`_bypass_total{reason}`).
    Bypass {
        /// Inside a transaction block (status `T` or `E`).
        Transaction => "transaction",
        /// `SET pgsidecar.cache = off`, or a `/* pgsidecar:nocache */` hint.
        OptOut => "opt_out",
        /// The session changed its role or an untracked setting, or holds temporary objects.
        SessionState => "session_state",
        /// The invalidation listener of this database is not listening (fail closed).
        ListenerDown => "listener_down",
        /// The statement's analysis is still running.
        Analyzing => "analyzing",
        /// A row limit on Execute, a cursor, COPY: never a whole result.
        PartialResult => "partial_result",
    }
}

labels! {
    /// Why an entry left the store (`_evictions_total{cause}`).
    Eviction {
        /// Pushed out by `max_bytes`.
        Size => "size",
        Expired => "expired",
        /// Removed because one of its tables moved (found at lookup) or by a flush.
        Invalidated => "invalidated",
        Replaced => "replaced",
    }
}

labels! {
    /// Where an invalidation came from (`_invalidations_total{source}`).
    Source {
        /// A write through this sidecar, before its ReadyForQuery.
        Proxy => "proxy",
        /// A trigger's NOTIFY (writes from anywhere).
        Notify => "notify",
        /// DDL, seen on the wire or by the event trigger.
        Ddl => "ddl",
        /// The listener dropped or lagged: everything of the database was flushed.
        FailClosed => "fail_closed",
        /// `POST /api/cache/invalidate` or `CACHE CLEAR`.
        Admin => "admin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_follow_the_label_list() {
        for (i, r) in Refusal::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        assert_eq!(Bypass::ListenerDown.as_str(), "listener_down");
        assert_eq!(Source::ALL.len(), 5);
    }
}
