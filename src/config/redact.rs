//! Secrets out of URLs that are shown (SHOW CONFIG, check-config, logs, job listings):
//! a PostgreSQL URL keeps everything but its password; a webhook URL is itself a
//! credential (its path or query usually holds the token), so only its scheme and host
//! are shown.

use super::Upstream;

const MASK: &str = "********";

/// A libpq URL or key/value string with its password masked; one that does not parse is
/// masked whole (it may hold a password the parser could not find).
pub fn redact_postgres_url(url: &str) -> String {
    match Upstream::parse(url) {
        Ok(mut parsed) if parsed.password.is_some() => {
            parsed.password = Some(MASK.into());
            parsed.to_url()
        }
        Ok(_) => url.to_owned(),
        Err(_) => MASK.to_owned(),
    }
}

/// `scheme://host[:port]/********`: no user, password, path or query.
pub fn redact_webhook_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return MASK.to_owned();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    format!("{scheme}://{host}/{MASK}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_tokens_are_masked() {
        let shown = redact_postgres_url("postgres://app:s3cret@db:5433/store");
        assert!(!shown.contains("s3cret") && shown.contains("db"), "{shown}");
        assert_eq!(
            redact_postgres_url("postgres://app@db/store"),
            "postgres://app@db/store"
        );
        let shown = redact_postgres_url("host=db password=s3cret dbname=x");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(
            redact_webhook_url("https://u:p@hooks.example.com:8443/T0/B1/tok3n?x=1"),
            "https://hooks.example.com:8443/********"
        );
        assert_eq!(redact_webhook_url("not a url tok3n"), "********");
    }

    #[test]
    fn check_config_and_show_config_mask_them() {
        let config = crate::config::Config {
            store_url: Some("postgres://u:s3cret@h/db".into()),
            alert_webhook_url: Some("https://hooks.example.com/T0/tok3n".into()),
            ..crate::config::Config::default()
        };
        let shown = config.to_display_toml();
        assert!(
            !shown.contains("s3cret") && !shown.contains("tok3n"),
            "{shown}"
        );
        assert!(
            shown.contains("https://hooks.example.com/********"),
            "{shown}"
        );
    }
}
