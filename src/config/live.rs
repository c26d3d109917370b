//! The configuration in force: swapped whole on reload, read without a lock by every
//! task (sessions, workers, the admin server), so a reload never stops traffic.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::{Config, ConfigError, Upstream};

/// The configuration and its parsed upstream, always swapped together.
pub struct Live {
    config: ArcSwap<Config>,
    upstream: ArcSwap<Upstream>,
}

impl Live {
    /// Parses the upstream of a validated `config`; an unparsable one names the key.
    pub fn new(config: Config) -> Result<Live, ConfigError> {
        let upstream = parse_upstream(&config)?;
        Ok(Live {
            config: ArcSwap::from_pointee(config),
            upstream: ArcSwap::from_pointee(upstream),
        })
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    pub fn upstream(&self) -> Arc<Upstream> {
        self.upstream.load_full()
    }

    /// Puts `config` (and its upstream, parsed by [`parse_upstream`]) in force.
    pub fn store(&self, config: Config, upstream: Upstream) {
        self.upstream.store(Arc::new(upstream));
        self.config.store(Arc::new(config));
    }
}

/// The upstream of `config`, or the error naming the `upstream` key.
pub fn parse_upstream(config: &Config) -> Result<Upstream, ConfigError> {
    Upstream::parse(&config.upstream).map_err(|reason| ConfigError::Invalid {
        key: "upstream".into(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_configuration_is_seen_with_its_upstream() {
        let live = Live::new(Config::default()).unwrap();
        let next = Config {
            pool_size: 3,
            upstream: "postgres://app@db.example:6000/app".into(),
            ..Config::default()
        };
        let upstream = parse_upstream(&next).unwrap();
        live.store(next, upstream);
        assert_eq!(live.config().pool_size, 3);
        assert_eq!(live.upstream().address(), "db.example:6000");
    }

    #[test]
    fn a_bad_upstream_names_the_key() {
        let config = Config {
            upstream: "mysql://x".into(),
            ..Config::default()
        };
        let err = Live::new(config).err().expect("refused").to_string();
        assert!(err.contains("upstream"), "{err}");
    }
}
