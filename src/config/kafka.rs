//! Validation of `[kafka]`: the options are librdkafka's, so librdkafka
//! checks them (through [`crate::kafka::check_config`]) and its refusal is
//! reported at the option; secrets written in clear are refused in favour
//! of the environment.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;

use super::model::Kafka;
use super::notify::env_var_name;
use super::raw::KafkaToml;
use super::{ConfigError, Source};
use crate::kafka::start::StartFrom;

/// The suffix of an option whose value is read from the environment:
/// `"ssl.key.password_env" = "KAFKA_SSL_KEY_PASSWORD"`.
const FROM_ENV: &str = "_env";

/// Whether a librdkafka property holds a secret: `sasl.password`,
/// `ssl.key.password`, `ssl.keystore.password`,
/// `sasl.oauthbearer.client.secret`, a private key in PEM, and anything
/// else named like a password, secret or passphrase.
pub(crate) fn is_secret(property: &str) -> bool {
    let p = property.to_ascii_lowercase();
    ["password", "secret", "passphrase"]
        .iter()
        .any(|w| p.contains(w))
        || p.ends_with("key.pem")
}

/// Validates `[kafka]`; librdkafka checks the options when there are any.
pub(super) fn kafka(src: &Source<'_>, raw: &KafkaToml) -> Result<Kafka, ConfigError> {
    let mut options = BTreeMap::new();
    let mut options_from_env = BTreeMap::new();
    // Where each property was written, to point librdkafka's refusals at.
    let mut spans: BTreeMap<String, Range<usize>> = BTreeMap::new();
    for (key, value) in &raw.options {
        let name = key.get_ref().trim();
        let (property, from_env) = match name.strip_suffix(FROM_ENV) {
            Some(p) => (p, true),
            None => (name, false),
        };
        if property.is_empty() {
            return Err(src.error(
                key.span(),
                "kafka.options: an option has no name; write \"property\" = \"value\" with a librdkafka property",
            ));
        }
        if spans.insert(property.to_string(), key.span()).is_some() {
            return Err(src.error(
                key.span(),
                format!("kafka.options: {property} is set twice (directly and with {FROM_ENV}); keep one"),
            ));
        }
        if from_env {
            let var = value
                .get_ref()
                .as_str()
                .map(|v| Spanned::new(value.span(), v.to_string()));
            let var = var.as_ref().ok_or_else(|| {
                src.error(
                    value.span(),
                    format!("kafka.options: {name:?} names the environment variable that holds {property}; write it as a string, e.g. \"{name}\" = \"KAFKA_SECRET\""),
                )
            })?;
            let var = env_var_name(src, Some(var), name)?.expect("a name was given");
            options_from_env.insert(property.to_string(), var);
            continue;
        }
        if is_secret(property) {
            let instead = if property == "sasl.password" {
                "export KPIWATCH_KAFKA_USERNAME and KPIWATCH_KAFKA_PASSWORD (kpiwatch sets sasl.username and sasl.password from them)".to_string()
            } else {
                format!("write \"{property}{FROM_ENV}\" = \"NAME\" and export the variable NAME with the secret")
            };
            return Err(src.error(
                key.span(),
                format!("kafka.options: {property} is a secret and is not read from files; remove it and {instead}"),
            ));
        }
        let text = match value.get_ref() {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => {
                return Err(src.error(
                    value.span(),
                    format!("kafka.options: {property} must be a string, number or boolean, as librdkafka reads it, e.g. \"{property}\" = \"...\""),
                ))
            }
        };
        options.insert(property.to_string(), text);
    }
    let start_from = match &raw.start_from {
        None => StartFrom::default(),
        Some(v) => StartFrom::parse(v.get_ref().trim()).ok_or_else(|| {
            src.error(
                v.span(),
                format!(
                    "kafka.start_from: {:?} is not a place to start; write \"committed\" (the default: the group's committed offsets, after `kpiwatch warm` the history's end), \"earliest\" (everything the topic retains) or \"latest\" (only new messages)",
                    v.get_ref()
                ),
            )
        })?,
    };
    let reset = raw
        .options
        .keys()
        .find(|k| k.get_ref().trim() == "auto.offset.reset");
    if let (Some(_), Some(key)) = (&raw.start_from, reset) {
        // Two settings for one thing: librdkafka would take the option
        // and silently override start_from.
        return Err(src.error(
            key.span(),
            "kafka.options: auto.offset.reset is what kafka.start_from sets; remove it and keep start_from",
        ));
    }
    let kafka = Kafka {
        start_from,
        brokers: raw
            .brokers
            .clone()
            .unwrap_or_else(|| "localhost:9092".into()),
        group_id: raw.group_id.clone().unwrap_or_else(|| "kpiwatch".into()),
        dead_letter_topic: raw.dead_letter_topic.clone(),
        options,
        options_from_env,
    };
    if spans.is_empty() {
        // Nothing of the operator's for librdkafka to refuse.
        return Ok(kafka);
    }
    crate::kafka::check_config(&kafka).map_err(|refusal| {
        let at = refusal
            .property
            .as_ref()
            .and_then(|p| spans.get(p))
            .or_else(|| spans.values().next())
            .cloned()
            .unwrap_or(0..0);
        src.error(
            at,
            format!(
                "kafka.options: librdkafka refuses this configuration: {}; see librdkafka's CONFIGURATION.md for the properties and the values they take",
                refusal.message
            ),
        )
    })?;
    Ok(kafka)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::validate;
    use super::*;

    /// Validates a config whose `[kafka.options]` table (line 3 on) is
    /// `options`; the error text on failure.
    fn check(options: &str) -> Result<Kafka, String> {
        let text = format!(
            "[kafka]\ndead_letter_topic = \"dlq\"\n[kafka.options]\n{options}\n[[topic]]\nname = \"t\"\n[[kpi]]\nname = \"k\"\naggregate = \"count\"\n"
        );
        validate(&Source::new(Path::new("k.toml"), &text))
            .map(|c| c.kafka)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn options_librdkafka_accepts_are_kept_as_text() {
        let k = check("\"session.timeout.ms\" = 6000\n\"enable.partition.eof\" = false\n\"client.id\" = \"kpiwatch-1\"").unwrap();
        assert_eq!(k.options["session.timeout.ms"], "6000");
        assert_eq!(k.options["enable.partition.eof"], "false");
        assert_eq!(k.options["client.id"], "kpiwatch-1");
    }

    #[test]
    fn an_unknown_property_is_refused_by_librdkafka_at_its_key() {
        let err = check("\"client.id\" = \"a\"\n\"sesion.timeout.ms\" = \"6000\"").unwrap_err();
        assert!(
            err.starts_with("k.toml:5:1: kafka.options: librdkafka refuses")
                && err.contains("No such configuration property: \"sesion.timeout.ms\""),
            "{err}"
        );
    }

    #[test]
    fn a_value_librdkafka_cannot_read_is_refused_at_its_key() {
        let err = check("\"enable.auto.commit\" = \"maybe\"").unwrap_err();
        assert!(
            err.starts_with("k.toml:4:1:") && err.contains("Expected bool value"),
            "{err}"
        );
    }

    #[test]
    fn properties_that_contradict_each_other_are_refused_when_the_client_is_made() {
        // Each value is valid alone; only creating a consumer finds that
        // the fetch limit is below the message limit.
        let err = check("\"message.max.bytes\" = \"100000\"\n\"fetch.max.bytes\" = \"1000\"")
            .unwrap_err();
        assert!(
            err.starts_with("k.toml:5:1:")
                && err.contains("`fetch.max.bytes` must be >= `message.max.bytes`"),
            "{err}"
        );
    }

    #[test]
    fn a_sasl_mechanism_this_build_lacks_is_refused_when_the_client_is_made() {
        // Without SASL support for GSSAPI in this build, librdkafka refuses
        // the mechanism when a client is created, not when it is set.
        let err =
            check("\"security.protocol\" = \"SASL_PLAINTEXT\"\n\"sasl.mechanisms\" = \"GSSAPI\"")
                .unwrap_err();
        assert!(
            err.starts_with("k.toml:5:1:") && err.contains("GSSAPI"),
            "{err}"
        );
    }

    #[test]
    fn secrets_in_clear_are_refused_without_echoing_them() {
        for property in [
            "sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "sasl.oauthbearer.client.secret",
            "ssl.key.pem",
            "some.future.secret",
        ] {
            let err = check(&format!("\"{property}\" = \"hunter2\"")).unwrap_err();
            assert!(
                err.starts_with("k.toml:4:1:")
                    && err.contains(&format!("{property} is a secret"))
                    && err.contains("export"),
                "{err}"
            );
            assert!(!err.contains("hunter2"), "the secret is echoed: {err}");
        }
        let err = check("\"sasl.password\" = \"hunter2\"").unwrap_err();
        assert!(err.contains("KPIWATCH_KAFKA_PASSWORD"), "{err}");
        let err = check("\"ssl.key.password\" = \"hunter2\"").unwrap_err();
        assert!(err.contains("\"ssl.key.password_env\" = \"NAME\""), "{err}");
    }

    #[test]
    fn a_secret_is_named_by_an_environment_variable_with_env() {
        let k =
            check("\"sasl.mechanisms\" = \"PLAIN\"\n\"sasl.password_env\" = \"KAFKA_PASSWORD\"")
                .unwrap();
        assert_eq!(k.options_from_env["sasl.password"], "KAFKA_PASSWORD");
        assert!(!k.options.contains_key("sasl.password"));
        let err = check("\"sasl.password_env\" = \"not a name\"").unwrap_err();
        assert!(
            err.starts_with("k.toml:4:23:") && err.contains("not an environment variable name"),
            "{err}"
        );
        let err = check("\"sasl.password_env\" = 5").unwrap_err();
        assert!(
            err.starts_with("k.toml:4:23:") && err.contains("as a string"),
            "{err}"
        );
        let err = check("\"client.id\" = \"a\"\n\"client.id_env\" = \"ID\"").unwrap_err();
        assert!(
            err.starts_with("k.toml:5:1:") && err.contains("set twice"),
            "{err}"
        );
    }

    #[test]
    fn sasl_plain_passes_without_the_credentials_run_will_read_from_the_environment() {
        // librdkafka refuses PLAIN without a user name and password; they
        // come from KPIWATCH_KAFKA_USERNAME / _PASSWORD when `run` starts.
        let k =
            check("\"security.protocol\" = \"SASL_PLAINTEXT\"\n\"sasl.mechanisms\" = \"PLAIN\"");
        assert!(k.is_ok(), "{k:?}");
    }

    #[test]
    fn an_unknown_property_behind_env_is_refused_too() {
        let err = check("\"sasl.pasword_env\" = \"KAFKA_PASSWORD\"").unwrap_err();
        assert!(
            err.starts_with("k.toml:4:1:") && err.contains("No such configuration property"),
            "{err}"
        );
    }

    #[test]
    fn a_table_or_list_is_not_an_option_value() {
        let err = check("\"client.id\" = [\"a\"]").unwrap_err();
        assert!(
            err.starts_with("k.toml:4:15:") && err.contains("string, number or boolean"),
            "{err}"
        );
    }

    /// Validates a config whose `[kafka]` table is `kafka` (line 2 on).
    fn with_kafka(kafka: &str) -> Result<Kafka, String> {
        let text = format!(
            "[kafka]\n{kafka}\n[[topic]]\nname = \"t\"\n[[kpi]]\nname = \"k\"\naggregate = \"count\"\n"
        );
        validate(&Source::new(Path::new("k.toml"), &text))
            .map(|c| c.kafka)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn start_from_defaults_to_committed_and_reads_each_value() {
        assert_eq!(with_kafka("").unwrap().start_from, StartFrom::Committed);
        for (text, want) in [
            ("committed", StartFrom::Committed),
            ("earliest", StartFrom::Earliest),
            ("latest", StartFrom::Latest),
        ] {
            let k = with_kafka(&format!("start_from = \"{text}\"")).unwrap();
            assert_eq!(k.start_from, want);
        }
    }

    #[test]
    fn a_bad_start_from_is_refused_at_its_value_with_what_to_write() {
        let err = with_kafka("brokers = \"b:9092\"\nstart_from = \"oldest\"").unwrap_err();
        assert!(
            err.starts_with("k.toml:3:14:")
                && err.contains("\"oldest\"")
                && err.contains("\"committed\"")
                && err.contains("\"earliest\"")
                && err.contains("\"latest\""),
            "{err}"
        );
    }

    #[test]
    fn start_from_and_auto_offset_reset_together_are_refused_at_the_option() {
        let err = with_kafka(
            "start_from = \"latest\"\n[kafka.options]\n\"auto.offset.reset\" = \"earliest\"",
        )
        .unwrap_err();
        assert!(
            err.starts_with("k.toml:4:1:") && err.contains("start_from"),
            "{err}"
        );
    }
}
