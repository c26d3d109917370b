//! The Dockerfile and `deploy/docker-compose.yml` against the binary and its
//! configuration: paths, user, ports, environment. No image is built here (base images
//! cannot be pulled); the binary's own side (PGSIDECAR_* variables, `pgsidecar
//! healthcheck`) is run for real.

use std::collections::HashMap;
use std::process::Command;

use serde_json::Value;

use super::{load_config, port_of, read, repo, run, yaml};
use crate::common::{connect, database_url, direct, sqlstate, try_connect, unique, Proxy};

/// Dockerfile instructions, continuation lines joined: (INSTRUCTION, arguments).
fn dockerfile() -> Vec<(String, String)> {
    let text = read("Dockerfile").replace("\\\n", " ");
    let lines = text.lines().map(str::trim);
    let lines = lines.filter(|l| !l.is_empty() && !l.starts_with('#'));
    let split = |l: &str| {
        let (op, rest) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
        (
            op.to_uppercase(),
            rest.split_whitespace().collect::<Vec<_>>().join(" "),
        )
    };
    lines.map(split).collect()
}

fn args_of<'a>(steps: &'a [(String, String)], op: &str) -> Vec<&'a str> {
    steps
        .iter()
        .filter(|(o, _)| o == op)
        .map(|(_, a)| a.as_str())
        .collect()
}

/// The image's runtime user id (USER uid[:gid]).
pub fn image_uid() -> u64 {
    let steps = dockerfile();
    let user = *args_of(&steps, "USER").last().expect("USER");
    let uid = user.split(':').next().unwrap();
    uid.parse()
        .unwrap_or_else(|_| panic!("USER {user} is not numeric"))
}

#[test]
fn dockerfile_agrees_with_the_binary_and_its_configuration() {
    let steps = dockerfile();
    let froms = args_of(&steps, "FROM");
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    assert!(
        froms[0].starts_with("rust:") && froms[0].ends_with(" AS build"),
        "{froms:?}"
    );
    let runtime = froms.last().unwrap();
    assert!(
        runtime.contains("distroless/cc") || runtime.contains("slim"),
        "{runtime}"
    );
    let builds = args_of(&steps, "RUN").join("\n");
    assert!(builds.contains("libclang-dev"), "pg_query needs libclang");
    assert!(builds.contains("cargo build --release --locked --bin pgsidecar"));
    assert!(uid_is_not_root(image_uid()));

    let binary = "/usr/local/bin/pgsidecar";
    let copies = args_of(&steps, "COPY");
    assert!(copies
        .iter()
        .any(|c| c.starts_with("--from=build") && c.ends_with(binary)));
    assert_eq!(args_of(&steps, "ENTRYPOINT"), [format!("[\"{binary}\"]")]);
    let health = args_of(&steps, "HEALTHCHECK").join(" ");
    assert!(
        health.ends_with(&format!("CMD [\"{binary}\", \"healthcheck\"]")),
        "{health}"
    );

    // Every local COPY source exists and is not hidden by .dockerignore, nor is
    // anything the build needs.
    let ignored = read(".dockerignore");
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "src",
        "migrations",
        "tests",
        "deploy",
    ] {
        assert!(
            !ignored.lines().any(|l| l == needed),
            "{needed} in .dockerignore"
        );
    }
    for copy in copies.iter().filter(|c| !c.starts_with("--from")) {
        let parts: Vec<&str> = copy.split(' ').collect();
        for src in &parts[..parts.len() - 1] {
            assert!(repo(src).exists(), "COPY {src}: no such file");
            assert!(
                !ignored.lines().any(|l| l == *src),
                "COPY {src} is in .dockerignore"
            );
        }
    }
    // The shipped configuration: where PGSIDECAR_CONFIG points, loopback by default,
    // and its ports are the ones exposed.
    let config_copy = copies
        .iter()
        .find(|c| c.ends_with(" /etc/pgsidecar/proxy.toml"));
    let shipped = config_copy
        .expect("COPY of the configuration")
        .split(' ')
        .next()
        .unwrap();
    let envs = args_of(&steps, "ENV");
    assert!(
        envs.contains(&"PGSIDECAR_CONFIG=/etc/pgsidecar/proxy.toml"),
        "{envs:?}"
    );
    let config = load_config(&repo(shipped));
    assert!(config.listen.starts_with("127.0.0.1:"), "{}", config.listen);
    assert!(
        config.admin_listen.starts_with("127.0.0.1:"),
        "{}",
        config.admin_listen
    );
    let mut exposed: Vec<u16> = args_of(&steps, "EXPOSE")
        .iter()
        .flat_map(|a| a.split(' ').map(|p| p.parse::<u16>().expect("EXPOSE port")))
        .collect();
    exposed.sort();
    let mut ports = vec![port_of(&config.listen), port_of(&config.admin_listen)];
    ports.sort();
    assert_eq!(exposed, ports);
}

fn uid_is_not_root(uid: u64) -> bool {
    uid != 0
}

/// The binary as the image runs it: configuration from PGSIDECAR_CONFIG and PGSIDECAR_*
/// variables only, no flags.
fn binary_with_env(vars: &[(&str, &str)], args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgsidecar"));
    cmd.args(args).env_remove("PGSIDECAR_UPSTREAM");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

// Multi-threaded: the healthcheck subprocess blocks this thread while the in-process
// admin server answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_environment_and_healthcheck_work_with_the_binary() {
    let shipped = repo("deploy/proxy.toml");
    let vars = [
        ("PGSIDECAR_CONFIG", shipped.to_str().unwrap()),
        ("PGSIDECAR_LISTEN", "0.0.0.0:7432"),
        ("PGSIDECAR_POOL_SIZE", "7"),
        ("DATABASE_URL", "postgres://app@db.example:5432/app"),
    ];
    let (ok, out) = binary_with_env(&vars, &["check-config"]);
    assert!(ok, "{out}");
    for line in [
        "listen = \"0.0.0.0:7432\"",
        "admin_listen = \"127.0.0.1:9930\"",
        "pool_size = 7",
        "upstream = \"postgres://app@db.example:5432/app\"",
        "log_format = \"json\"",
    ] {
        assert!(out.lines().any(|l| l == line), "no {line} in\n{out}");
    }

    let proxy = Proxy::with(|c| c.admin_listen = "127.0.0.1:0".into()).await;
    let admin = proxy.app.admin_addr().expect("admin").to_string();
    // An unspecified address is checked over loopback, as in a container.
    let unspecified = format!("0.0.0.0:{}", port_of(&admin));
    for listen in [admin.as_str(), unspecified.as_str()] {
        let vars = [
            ("PGSIDECAR_CONFIG", vars[0].1),
            ("PGSIDECAR_ADMIN_LISTEN", listen),
        ];
        let (ok, out) = binary_with_env(&vars, &["healthcheck"]);
        assert!(ok, "healthcheck against {listen}: {out}");
    }
    proxy.stop().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let closed = closed.to_string(); // dropped: nothing listens there now
    let vars = [
        ("PGSIDECAR_CONFIG", vars[0].1),
        ("PGSIDECAR_ADMIN_LISTEN", closed.as_str()),
    ];
    let (ok, out) = binary_with_env(&vars, &["healthcheck"]);
    assert!(!ok && out.contains("healthcheck"), "{out}");
}

#[test]
fn docker_compose_wires_postgres_pgsidecar_prometheus_and_grafana() {
    let compose = yaml("deploy/docker-compose.yml").remove(0);
    let services = &compose["services"];
    for name in ["postgres", "pgsidecar", "prometheus", "grafana"] {
        assert!(services[name].is_object(), "no {name} service");
    }
    let deploy = repo("deploy");
    let volumes = |service: &str| -> HashMap<String, String> {
        let list = services[service]["volumes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let pair = |v: &Value| {
            let parts: Vec<&str> = v.as_str().unwrap().split(':').collect();
            assert!(deploy.join(parts[0]).exists(), "{service}: no {}", parts[0]);
            (parts[1].to_string(), parts[0].to_string())
        };
        list.iter()
            .filter(|v| v.as_str().unwrap().starts_with('.'))
            .map(pair)
            .collect()
    };
    let side = &services["pgsidecar"];
    assert!(deploy
        .join(side["build"]["context"].as_str().unwrap())
        .join("Dockerfile")
        .exists());
    let config_path = side["environment"]["PGSIDECAR_CONFIG"].as_str().unwrap();
    let config = load_config(&deploy.join(&volumes("pgsidecar")[config_path]));
    // Told to listen on every interface: the stack's network.
    assert!(config.listen.starts_with("0.0.0.0:") && config.admin_listen.starts_with("0.0.0.0:"));
    let published: Vec<u16> = side["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p.as_str()
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(
        published,
        [port_of(&config.listen), port_of(&config.admin_listen)]
    );

    let prom = volumes("prometheus");
    assert_eq!(
        prom["/etc/prometheus/alerts.yml"],
        "../prometheus/alerts.yml"
    );
    let scrape = yaml("deploy/compose/prometheus.yml").remove(0);
    assert_eq!(scrape["rule_files"][0], "/etc/prometheus/alerts.yml");
    let job = &scrape["scrape_configs"][0];
    assert_eq!(
        job["job_name"], "pgsidecar",
        "alerts.yml selects job=\"pgsidecar\""
    );
    let target = format!("pgsidecar:{}", port_of(&config.admin_listen));
    assert_eq!(job["static_configs"][0]["targets"][0], target.as_str());

    let grafana = volumes("grafana");
    assert_eq!(
        grafana["/etc/grafana/provisioning"],
        "../grafana/provisioning"
    );
    let providers = yaml("grafana/provisioning/dashboards/pgsidecar.yml").remove(0);
    let path = providers["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    assert_eq!(grafana[path], "../grafana/dashboards");
    let image = services["grafana"]["image"].as_str().unwrap();
    let major: u32 = image
        .rsplit(':')
        .next()
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(major >= 10, "{image}");
    let sources = yaml("grafana/provisioning/datasources/prometheus.yml").remove(0);
    assert_eq!(sources["datasources"][0]["url"], "http://prometheus:9090");
}

/// The image's and the compose stack's configurations, on test ports: an app logs in
/// with its own role and password (looked up by `auth_query`), a wrong one is refused.
#[tokio::test]
async fn the_shipped_configurations_let_an_app_log_in_with_its_own_password() {
    let role = unique("deployapp");
    let create = format!("CREATE ROLE {role} LOGIN PASSWORD 'own-secret'");
    direct()
        .await
        .batch_execute(&create)
        .await
        .expect("create role");
    for file in ["deploy/proxy.toml", "deploy/compose/proxy.toml"] {
        let mut config = load_config(&repo(file));
        config.listen = "127.0.0.1:0".into();
        config.admin_listen = "127.0.0.1:0".into();
        config.upstream = database_url();
        config.store = false;
        let proxy = Proxy::start(config).await;
        let url = |pw: &str| format!("postgres://{role}:{pw}@127.0.0.1:{}/postgres", proxy.port());
        let client = connect(&url("own-secret")).await;
        let row = client.query_one("SELECT current_user::text", &[]).await;
        assert_eq!(row.expect("query").get::<_, String>(0), role, "{file}");
        drop(client);
        let Err(refused) = try_connect(&url("wrong")).await else {
            panic!("{file}: a wrong password logged in");
        };
        assert_eq!(sqlstate(&refused), "28P01", "{file}: {refused}");
        proxy.stop().await;
    }
    let drop = format!("DROP ROLE {role}");
    direct()
        .await
        .batch_execute(&drop)
        .await
        .expect("drop role");
}
