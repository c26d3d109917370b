//! Loading and validating configuration files: defaults, overrides, errors naming the key.

use super::*;
use crate::config::AuthType;

fn parse(text: &str) -> Result<Config, ConfigError> {
    let c = Config::from_toml(text, Path::new("proxy.toml"))?;
    c.validate()?;
    Ok(c)
}

#[test]
fn defaults_are_documented_values() {
    let c = parse("").unwrap();
    assert_eq!(c.listen, "127.0.0.1:6432");
    assert_eq!(c.pool_size, 20);
    assert_eq!(c.pool_mode, PoolMode::Transaction);
    assert_eq!(c.checkout_timeout.as_secs(), 5);
    assert_eq!(c.server_idle_timeout.as_secs(), 600);
}

#[test]
fn the_sample_file_holds_the_defaults() {
    let sample = parse(include_str!("../../../proxy.toml")).unwrap();
    assert_eq!(
        sample.to_display_toml(),
        Config::default().to_display_toml()
    );
}

#[test]
fn auto_auth_is_passthrough_without_users() {
    let c = parse("").unwrap();
    assert_eq!(c.effective_auth_type(), AuthType::Passthrough);
    let c = parse("[[users]]\nname = \"app\"\npassword = \"pw\"\n").unwrap();
    assert_eq!(c.effective_auth_type(), AuthType::ScramSha256);
    let c = parse("auth_query = \"SELECT 1, 2\"\n").unwrap();
    assert_eq!(c.effective_auth_type(), AuthType::ScramSha256);
    let c = parse("auth_type = \"trust\"\n").unwrap();
    assert_eq!(c.effective_auth_type(), AuthType::Trust);
    let e = parse("auth_type = \"passthrough\"\nauth_query = \"SELECT 1, 2\"\n");
    let e = e.unwrap_err().to_string();
    assert!(e.contains("auth_query") && e.contains("passthrough"), "{e}");
}

#[test]
fn slow_settings_are_checked() {
    let err = |text: &str| parse(text).unwrap_err().to_string();
    let e = err("slow_warning_ms = 10\nslow_critical_ms = 5\n");
    assert!(e.contains("slow_critical_ms"), "{e}");
    let e = err("[slow_fingerprints.abc]\nslow_warning_ms = 1\n");
    assert!(e.contains("slow_fingerprints.abc"), "{e}");
    let e = err("alert_webhook_url = \"ftp://x\"\n");
    assert!(e.contains("alert_webhook_url"), "{e}");
    for bad in ["0.5", "1.0", "-2", "nan"] {
        let e = err(&format!("explain_latency_factor = {bad}\n"));
        assert!(e.contains("explain_latency_factor"), "{bad}: {e}");
    }
    assert!(
        parse("explain_latency_factor = 0\n").is_ok(),
        "0 switches it off"
    );
    assert!(parse("explain_latency_factor = 0.0\nexplain_warning_interval = \"0s\"\n").is_ok());
    let e = err("[databases.app]\nslow_critical_ms = 1\n");
    assert!(e.contains("databases.app.slow_critical_ms"), "{e}");
    assert!(parse("[slow_fingerprints.0123456789abcdef]\nslow_warning_ms = 1\n").is_ok());
}

#[test]
fn unknown_key_is_one_line_naming_it() {
    let err = parse("pool_size = 3\npool_sise = 4\n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("proxy.toml:2: pool_sise:"), "{err}");
    assert!(!err.contains('\n'));
}

#[test]
fn bad_value_names_the_key() {
    let err = parse("pool_mode = \"statement\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("pool_mode"), "{err}");
    let err = parse("checkout_timeout = \"soon\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("checkout_timeout"), "{err}");
    let err = parse("min_pool_size = 30\n").unwrap_err().to_string();
    assert_eq!(
        err,
        "config key min_pool_size: 30 is larger than pool_size 20"
    );
    let err = parse("[databases.app]\npool_size = 0\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("databases.app.pool_size"), "{err}");
    let err = parse("listen = \"nowhere\"\n").unwrap_err().to_string();
    assert!(err.starts_with("config key listen:"), "{err}");
}

#[test]
fn per_database_overrides() {
    let c = parse("[databases.app]\npool_mode = \"session\"\npool_size = 3\ndbname = \"real\"\n")
        .unwrap();
    let up = Upstream::parse(&c.upstream).unwrap();
    let s = c.pool_settings(&up, "app");
    assert_eq!(
        (s.mode, s.size, s.server_dbname.as_str()),
        (PoolMode::Session, 3, "real")
    );
    let other = c.pool_settings(&up, "other");
    assert_eq!((other.mode, other.size), (PoolMode::Transaction, 20));
}
