//! docker-compose.yml cannot run here (no Docker engine), so it is checked
//! by parsing: the stack has its parts, and they agree with each other and
//! with the kpiwatch config they mount.

use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn compose() -> Yaml {
    let text =
        std::fs::read_to_string(root().join("docker-compose.yml")).expect("docker-compose.yml");
    YamlLoader::load_from_str(&text)
        .expect("valid YAML")
        .remove(0)
}

fn strings(y: &Yaml) -> Vec<String> {
    y.as_vec()
        .map(|v| {
            v.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_stack_has_kafka_in_kraft_mode_kpiwatch_a_simulator_prometheus_and_a_mail_catcher() {
    let c = compose();
    let services = &c["services"];
    for name in [
        "kafka",
        "kpiwatch",
        "simulator",
        "prometheus",
        "mailcatcher",
    ] {
        assert!(!services[name].is_badvalue(), "service {name} missing");
    }
    let roles = services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"].as_str();
    assert_eq!(
        roles,
        Some("broker,controller"),
        "Kafka must run in KRaft mode"
    );
    assert!(
        services["zookeeper"].is_badvalue(),
        "no ZooKeeper in a KRaft stack"
    );
}

#[test]
fn kpiwatch_runs_a_valid_config_whose_topic_the_simulator_produces_to() {
    let c = compose();
    let command = strings(&c["services"]["kpiwatch"]["command"]);
    let at = command
        .iter()
        .position(|a| a == "--config")
        .expect("--config");
    let in_image = &command[at + 1];
    let file = in_image
        .strip_prefix("/etc/kpiwatch/")
        .expect("config comes from /etc/kpiwatch (config/ in the image)");
    let config =
        kpiwatch::config::load(&root().join("config").join(file)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.kafka.brokers, "kafka:9092");
    assert_eq!(config.service.listen.port(), 9898);

    // Listening beyond loopback, changes need a write token, which the
    // container must receive from the environment of `docker compose`.
    assert!(!config.service.listen.ip().is_loopback());
    let env = &c["services"]["kpiwatch"]["environment"];
    let write_tokens: Vec<&str> = config
        .service
        .api
        .tokens
        .iter()
        .filter(|t| t.scope == kpiwatch::http::access::Scope::Write)
        .map(|t| t.env.as_str())
        .collect();
    assert!(!write_tokens.is_empty(), "docker.toml names no write token");
    for var in write_tokens {
        let passed = env[var].as_str().unwrap_or_default();
        assert!(
            passed.starts_with(&format!("${{{var}")),
            "compose passes {var} from the host's environment, not {passed:?}"
        );
    }

    let sim = strings(&c["services"]["simulator"]["command"]);
    let topic = sim
        .iter()
        .position(|a| a == "--topic")
        .map(|i| sim[i + 1].clone());
    assert_eq!(topic.as_deref(), Some(config.topics[0].name.as_str()));
    let brokers = sim
        .iter()
        .position(|a| a == "--brokers")
        .map(|i| sim[i + 1].clone());
    assert_eq!(brokers.as_deref(), Some("kafka:9092"));
}

#[test]
fn prometheus_scrapes_kpiwatch_where_it_listens() {
    let text =
        std::fs::read_to_string(root().join("config/prometheus.yml")).expect("prometheus.yml");
    let p = YamlLoader::load_from_str(&text)
        .expect("valid YAML")
        .remove(0);
    let targets = strings(&p["scrape_configs"][0]["static_configs"][0]["targets"]);
    assert_eq!(targets, vec!["kpiwatch:9898".to_string()]);
}
