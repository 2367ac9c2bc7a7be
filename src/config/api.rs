//! Validation of the `[service]` keys of the HTTP API into
//! [`ApiSettings`]: `[[service.api_token]]` (names, variables, scopes; a
//! token written into the file is refused), `cert_file` / `key_file`
//! (read and checked here, so a wrong file is an error at its line, like
//! the SMTP `ca_file`) and `silence_max_ahead`.

use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::model::duration;
use super::notify::env_var_name;
use super::raw::{ApiTokenToml, ServiceToml};
use super::{ConfigError, Source};
use crate::http::access::{Scope, TokenSource};
use crate::http::tls::{self, TlsIdentity};
use crate::http::{ApiSettings, DEFAULT_SILENCE_MAX_AHEAD};

/// Longest token name: it is the author of the silences the token makes.
const MAX_NAME_CHARS: usize = 64;

/// The HTTP API's settings from `[service]`.
pub(super) fn api(src: &Source<'_>, raw: &ServiceToml) -> Result<ApiSettings, ConfigError> {
    let mut tokens: Vec<TokenSource> = Vec::new();
    let mut names = std::collections::HashSet::new();
    for t in &raw.api_tokens {
        let token = api_token(src, t)?;
        if let Some(name) = t.get_ref().name.as_ref() {
            if !names.insert(token.name.clone()) {
                return Err(src.error(
                    name.span(),
                    format!(
                        "API token name {:?} is used twice; every [[service.api_token]] needs its own name (it is recorded as the author of changes)",
                        token.name
                    ),
                ));
            }
        }
        tokens.push(token);
    }
    Ok(ApiSettings {
        tokens,
        tls: tls_identity(src, raw)?,
        silence_max_ahead: match &raw.silence_max_ahead {
            None => DEFAULT_SILENCE_MAX_AHEAD,
            Some(d) => duration(
                src,
                d,
                "silence_max_ahead",
                Duration::from_secs(60),
                Duration::from_secs(365 * 86_400),
            )?,
        },
    })
}

fn api_token(src: &Source<'_>, t: &Spanned<ApiTokenToml>) -> Result<TokenSource, ConfigError> {
    let raw = t.get_ref();
    if let Some(v) = &raw.token {
        return Err(src.error(
            v.span(),
            "API tokens are not read from config files; put the token in the environment variable that `env` names, and remove this key",
        ));
    }
    let Some(name_s) = &raw.name else {
        return Err(src.error(
            t.span(),
            "[[service.api_token]] has no `name`; name who holds the token, e.g. name = \"ops\" (changes it makes record this name)",
        ));
    };
    let name = name_s.get_ref().trim();
    let valid = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if !valid {
        return Err(src.error(
            name_s.span(),
            format!(
                "API token name {name:?} must be 1 to {MAX_NAME_CHARS} letters, digits, '.', '_', '-' or '@', e.g. \"ops\""
            ),
        ));
    }
    let Some(env) = env_var_name(src, raw.env.as_ref(), "env")? else {
        return Err(src.error(
            name_s.span(),
            format!(
                "API token {name:?} has no `env`; name the environment variable that holds the token, e.g. env = \"KPIWATCH_API_TOKEN_{}\"",
                name.to_ascii_uppercase().replace(|c: char| !c.is_ascii_alphanumeric(), "_")
            ),
        ));
    };
    let scope = match raw.scope.as_ref().map(|s| (s, s.get_ref().as_str())) {
        None | Some((_, "write")) => Scope::Write,
        Some((_, "read")) => Scope::Read,
        Some((s, other)) => {
            return Err(src.error(
                s.span(),
                format!("scope = {other:?} is not known; use \"write\" (reads and changes) or \"read\" (/metrics and listing silences)"),
            ))
        }
    };
    Ok(TokenSource {
        name: name.to_string(),
        env,
        scope,
    })
}

/// `cert_file` and `key_file`, both or neither, read and checked.
fn tls_identity(src: &Source<'_>, raw: &ServiceToml) -> Result<Option<TlsIdentity>, ConfigError> {
    let (cert, key) = match (&raw.cert_file, &raw.key_file) {
        (None, None) => return Ok(None),
        (Some(c), Some(k)) => (c, k),
        (Some(c), None) => {
            return Err(src.error(
                c.span(),
                "cert_file needs key_file too: add key_file = \"...\" with the certificate's private key (PEM)",
            ))
        }
        (None, Some(k)) => {
            return Err(src.error(
                k.span(),
                "key_file needs cert_file too: add cert_file = \"...\" with the certificate chain (PEM)",
            ))
        }
    };
    let cert_path = Path::new(cert.get_ref());
    let key_path = Path::new(key.get_ref());
    let chain = tls::read_chain(cert_path).map_err(|m| src.error(cert.span(), m))?;
    let private = tls::read_key(key_path).map_err(|m| src.error(key.span(), m))?;
    TlsIdentity::new(cert_path, chain, key_path, private)
        .map(Some)
        .map_err(|m| src.error(key.span(), m))
}

#[cfg(test)]
mod tests {
    use super::super::validate;
    use super::*;

    /// What every service config needs besides `[service]`.
    const WATCH: &str = "[[topic]]\nname = \"t\"\n[[kpi]]\nname = \"k\"\naggregate = \"count\"\n";

    fn check(service: &str) -> Result<ApiSettings, String> {
        let text = format!("[service]\n{service}\n{WATCH}");
        validate(&Source::new(Path::new("k.toml"), &text))
            .map(|c| c.service.api)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn tokens_are_named_variables_with_a_scope() {
        let api = check(
            "[[service.api_token]]\nname = \"ops\"\nenv = \"KPIWATCH_API_TOKEN_OPS\"\n\
             [[service.api_token]]\nname = \"prometheus\"\nenv = \"PROM_TOKEN\"\nscope = \"read\"\n",
        )
        .unwrap();
        assert_eq!(
            api.tokens,
            [
                TokenSource {
                    name: "ops".into(),
                    env: "KPIWATCH_API_TOKEN_OPS".into(),
                    scope: Scope::Write
                },
                TokenSource {
                    name: "prometheus".into(),
                    env: "PROM_TOKEN".into(),
                    scope: Scope::Read
                },
            ]
        );
        assert_eq!(api.silence_max_ahead, DEFAULT_SILENCE_MAX_AHEAD);
        assert!(api.tls.is_none());
    }

    #[test]
    fn a_token_in_the_file_is_refused_where_it_is_written() {
        let err =
            check("[[service.api_token]]\nname = \"ops\"\ntoken = \"s3cret-s3cret-s3cret\"\n")
                .unwrap_err();
        assert!(
            err.starts_with("k.toml:4:9: API tokens are not read from config files"),
            "{err}"
        );
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn token_entries_need_a_valid_unique_name_an_env_and_a_known_scope() {
        for (toml, at, says) in [
            ("env = \"T\"\n", "k.toml:2:1", "has no `name`"),
            (
                "name = \"ops team\"\nenv = \"T\"\n",
                "k.toml:3:8",
                "must be 1 to 64",
            ),
            (
                "name = \"ops\"\n",
                "k.toml:3:8",
                "env = \"KPIWATCH_API_TOKEN_OPS\"",
            ),
            (
                "name = \"ops\"\nenv = \"1X\"\n",
                "k.toml:4:7",
                "not an environment variable name",
            ),
            (
                "name = \"ops\"\nenv = \"T\"\nscope = \"admin\"\n",
                "k.toml:5:9",
                "\"write\"",
            ),
        ] {
            let err = check(&format!("[[service.api_token]]\n{toml}")).unwrap_err();
            assert!(err.starts_with(at) && err.contains(says), "{toml:?}: {err}");
        }
        let err = check(
            "[[service.api_token]]\nname = \"ops\"\nenv = \"A\"\n[[service.api_token]]\nname = \"ops\"\nenv = \"B\"\n",
        )
        .unwrap_err();
        assert!(
            err.starts_with("k.toml:6:8:") && err.contains("used twice"),
            "{err}"
        );
    }

    #[test]
    fn silence_max_ahead_is_a_duration_in_range() {
        assert_eq!(
            check("silence_max_ahead = \"7d\"\n")
                .unwrap()
                .silence_max_ahead,
            Duration::from_secs(7 * 86_400)
        );
        let err = check("silence_max_ahead = \"2y\"\n").unwrap_err();
        assert!(
            err.starts_with("k.toml:2:21:") && err.contains("out of range"),
            "{err}"
        );
    }

    #[test]
    fn cert_file_and_key_file_go_together_and_are_read_when_checked() {
        let err = check("cert_file = \"c.pem\"\n").unwrap_err();
        assert!(
            err.starts_with("k.toml:2:13:") && err.contains("needs key_file"),
            "{err}"
        );
        let err = check("key_file = \"k.pem\"\n").unwrap_err();
        assert!(
            err.starts_with("k.toml:2:12:") && err.contains("needs cert_file"),
            "{err}"
        );

        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = check(&format!(
            "cert_file = {:?}\nkey_file = {:?}\n",
            missing, missing
        ))
        .unwrap_err();
        assert!(
            err.starts_with("k.toml:2:13: cannot read cert_file"),
            "{err}"
        );

        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let other_key = rcgen::KeyPair::generate().unwrap();
        let cert_file = dir.path().join("cert.pem");
        let key_file = dir.path().join("key.pem");
        let other_file = dir.path().join("other.pem");
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        std::fs::write(&other_file, other_key.serialize_pem()).unwrap();

        let err = check(&format!(
            "cert_file = {key_file:?}\nkey_file = {key_file:?}\n"
        ))
        .unwrap_err();
        assert!(
            err.starts_with("k.toml:2:13:") && err.contains("holds no certificate"),
            "{err}"
        );
        let err = check(&format!(
            "cert_file = {cert_file:?}\nkey_file = {cert_file:?}\n"
        ))
        .unwrap_err();
        assert!(
            err.starts_with("k.toml:3:12:") && err.contains("no usable private key"),
            "{err}"
        );
        let err = check(&format!(
            "cert_file = {cert_file:?}\nkey_file = {other_file:?}\n"
        ))
        .unwrap_err();
        assert!(
            err.starts_with("k.toml:3:12:") && err.contains("does not go with"),
            "{err}"
        );
        let api = check(&format!(
            "cert_file = {cert_file:?}\nkey_file = {key_file:?}\n"
        ))
        .unwrap();
        let shown = format!("{:?}", api.tls.expect("an identity"));
        assert!(
            shown.contains("cert.pem") && !shown.contains("PRIVATE"),
            "{shown}"
        );
    }
}
