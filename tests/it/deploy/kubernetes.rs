//! `deploy/kubernetes/`: the manifests parse, pgsidecar runs as a native sidecar, its
//! probes, ports and configuration line up with the ConfigMap's `proxy.toml`, and the
//! grace period covers the preStop pause and `shutdown_timeout`.

use std::collections::HashMap;

use serde_json::Value;

use super::containers::image_uid;
use super::{load_config, port_of, repo, yaml};
use crate::common::unique;

/// Every manifest of `deploy/kubernetes/` by kind; kustomization lists them all.
fn manifests() -> HashMap<String, Value> {
    let dir = repo("deploy/kubernetes");
    let kustomization = yaml("deploy/kubernetes/kustomization.yaml").remove(0);
    let listed: Vec<&str> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    let mut by_kind = HashMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name == "kustomization.yaml" || !name.ends_with(".yaml") {
            continue;
        }
        assert!(
            listed.contains(&name.as_str()),
            "{name} not in kustomization.yaml"
        );
        for doc in yaml(&format!("deploy/kubernetes/{name}")) {
            assert!(doc["apiVersion"].is_string() && doc["metadata"]["name"].is_string());
            by_kind.insert(doc["kind"].as_str().unwrap().to_string(), doc);
        }
    }
    by_kind
}

/// The named port's number in a container.
fn container_port(container: &Value, name: &str) -> u16 {
    let ports = container["ports"].as_array().expect("ports");
    let port = ports.iter().find(|p| p["name"] == name).expect(name);
    port["containerPort"].as_u64().unwrap() as u16
}

#[test]
fn kubernetes_runs_pgsidecar_as_a_native_sidecar_with_matching_probes() {
    let k = manifests();
    for kind in [
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "ServiceMonitor",
    ] {
        assert!(k.contains_key(kind), "no {kind}");
    }
    let pod = &k["Deployment"]["spec"]["template"];
    let spec = &pod["spec"];
    let inits = spec["initContainers"].as_array().expect("initContainers");
    let side = inits
        .iter()
        .find(|c| c["name"] == "pgsidecar")
        .expect("sidecar");
    assert_eq!(side["restartPolicy"], "Always", "a native sidecar");

    // Its configuration: the ConfigMap's file, where PGSIDECAR_CONFIG points.
    let env = |c: &Value, name: &str| {
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let config_path = env(side, "PGSIDECAR_CONFIG")["value"]
        .as_str()
        .unwrap()
        .to_string();
    let (dir, file) = config_path.rsplit_once('/').unwrap();
    let mount = side["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == dir)
        .expect("config mount");
    let volume = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("config volume");
    assert_eq!(
        volume["configMap"]["name"],
        k["ConfigMap"]["metadata"]["name"]
    );
    let toml = k["ConfigMap"]["data"][file]
        .as_str()
        .expect("proxy.toml in the ConfigMap");
    let temp = std::env::temp_dir().join(unique("pgsidecar-k8s.toml"));
    std::fs::write(&temp, toml).unwrap();
    let config = load_config(&temp);
    let _ = std::fs::remove_file(&temp);

    // Probes on the admin port; the app reaches the listener over loopback.
    let admin = port_of(&config.admin_listen);
    assert_eq!(container_port(side, "admin"), admin);
    assert!(
        config.admin_listen.starts_with("0.0.0.0:"),
        "probes come to the pod IP"
    );
    assert_eq!(container_port(side, "postgres"), port_of(&config.listen));
    assert!(config.listen.starts_with("127.0.0.1:"), "{}", config.listen);
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(side[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(side[probe]["httpGet"]["port"], "admin", "{probe}");
    }
    let app = &spec["containers"][0];
    let url = env(app, "DATABASE_URL")["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        url.contains(&format!("@127.0.0.1:{}/", port_of(&config.listen))),
        "{url}"
    );
    let secret = env(side, "DATABASE_URL")["valueFrom"]["secretKeyRef"].clone();
    assert_eq!(secret["name"], k["Secret"]["metadata"]["name"]);
    assert!(k["Secret"]["stringData"][secret["key"].as_str().unwrap()].is_string());

    // Shutdown: the grace period covers the preStop pause and shutdown_timeout.
    let grace = spec["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("grace period");
    let pause = side["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .expect("preStop");
    let drain = config.shutdown_timeout.as_secs();
    assert!(
        grace > pause + drain,
        "grace {grace} s <= preStop {pause} s + shutdown_timeout {drain} s"
    );

    let requests = &side["resources"]["requests"];
    assert!(
        requests["cpu"].is_string() && requests["memory"].is_string(),
        "{requests}"
    );
    assert_eq!(
        spec["securityContext"]["runAsUser"].as_u64(),
        Some(image_uid())
    );

    // Scraping: pod annotations and the ServiceMonitor's Service both lead to the
    // admin port, under the job name alerts.yml expects.
    let notes = &pod["metadata"]["annotations"];
    assert_eq!(notes["prometheus.io/port"], admin.to_string().as_str());
    assert_eq!(notes["prometheus.io/path"], "/metrics");
    let service = &k["Service"];
    assert_eq!(service["metadata"]["name"], "pgsidecar", "the job label");
    for (key, value) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(
            &pod["metadata"]["labels"][key], value,
            "Service selects the pods"
        );
    }
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "admin");
    let monitor = &k["ServiceMonitor"]["spec"];
    for (key, value) in monitor["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            &service["metadata"]["labels"][key], value,
            "ServiceMonitor selects it"
        );
    }
    assert_eq!(monitor["endpoints"][0]["port"], "admin");
}
