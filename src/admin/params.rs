//! Query-string parameters of the admin API: every parameter is known by name, given
//! at most once, and checked; anything else is a 400 naming the parameter.

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;

use super::error::ApiError;

/// Rows per page when `limit` is not given, and the most a page may hold.
pub const DEFAULT_LIMIT: usize = 25;
pub const MAX_LIMIT: usize = 100;

/// The raw pairs of one request's query string, taken one by one.
pub struct Params {
    pairs: Vec<(String, String)>,
}

/// What handlers receive: the parsed pairs, or the reason the query string is unusable.
pub type RawParams = Result<Query<Vec<(String, String)>>, QueryRejection>;

impl Params {
    pub fn new(raw: RawParams) -> Result<Params, ApiError> {
        let Query(pairs) =
            raw.map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
        Ok(Params { pairs })
    }

    /// The value of `name`, if given; given twice is an error.
    pub fn take(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        let mut found = None;
        let mut rest = Vec::with_capacity(self.pairs.len());
        for (key, value) in self.pairs.drain(..) {
            if key != name {
                rest.push((key, value));
            } else if found.is_some() {
                return Err(ApiError::bad_request(format!(
                    "parameter {name:?} given more than once"
                )));
            } else {
                found = Some(value);
            }
        }
        self.pairs = rest;
        Ok(found)
    }

    /// A filter: absent or empty means no filter.
    pub fn filter(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        Ok(self.take(name)?.filter(|v| !v.is_empty()))
    }

    /// `limit`: 1 to [`MAX_LIMIT`], default [`DEFAULT_LIMIT`].
    pub fn limit(&mut self) -> Result<usize, ApiError> {
        let Some(raw) = self.take("limit")? else {
            return Ok(DEFAULT_LIMIT);
        };
        match raw.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(format!(
                "invalid limit {raw:?}: expected a number from 1 to {MAX_LIMIT}"
            ))),
        }
    }

    /// Ends parsing: a parameter nobody took is an error listing the accepted ones.
    pub fn finish(self, accepted: &[&str]) -> Result<(), ApiError> {
        match self.pairs.first() {
            None => Ok(()),
            Some((key, _)) => Err(ApiError::bad_request(format!(
                "unknown parameter {key:?} (accepted: {})",
                accepted.join(", ")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        let pairs = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Params::new(Ok(Query(pairs.collect()))).expect("pairs")
    }

    #[test]
    fn limits_duplicates_and_unknown_names() {
        assert_eq!(params(&[]).limit(), Ok(DEFAULT_LIMIT));
        assert_eq!(params(&[("limit", "100")]).limit(), Ok(100));
        for bad in ["0", "101", "-1", "ten"] {
            assert!(params(&[("limit", bad)]).limit().is_err(), "{bad}");
        }
        let mut p = params(&[("sort", "calls"), ("sort", "p99")]);
        assert!(p.take("sort").is_err());
        let mut p = params(&[("database", ""), ("colour", "red")]);
        assert_eq!(p.filter("database"), Ok(None));
        let err = p.finish(&["database"]).unwrap_err();
        assert!(err.message.contains("\"colour\""), "{}", err.message);
    }
}
