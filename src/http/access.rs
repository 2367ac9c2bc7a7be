//! Who may call which endpoint of the HTTP API.
//!
//! - [`Scope`] — what a token allows: `read` (`/metrics`, listing
//!   silences) or `write` (reads, and changes: silences today, reload and
//!   alert feedback later).
//! - [`TokenSource`] — a `[[service.api_token]]` as configured: a name and
//!   the environment variable that holds the token.
//! - [`Access`] — the policy of one listener, built when the service
//!   starts from the token sources, the environment and the bound address:
//!   the tokens (kept only as SHA-256 digests), whether writes are taken
//!   ([`Writes`]), whether reads need a token, and the Host names a
//!   loopback listener answers to. [`notes`] says the same for
//!   `kpiwatch check`.
//! - [`Caller`] — who made an authorised request: the name of its token.
//!   Write handlers take it from the request's extensions (the silence's
//!   `created_by`), never from the body.
//! - [`check_host`], [`need_read`], [`need_write`] — the middleware
//!   [`super::router`] puts around the endpoints.
//!
//! The rules, in one place:
//!
//! | tokens set (variable non-empty) | listener | writes | reads |
//! | --- | --- | --- | --- |
//! | none | loopback | anyone on this host (caller `localhost`) | open |
//! | none | any other | off (403 saying how to turn them on) | open |
//! | some, none of scope `write` | any | off | open, or a token once a `read` token is set |
//! | some of scope `write` | any | a `write` token | open, or a token once a `read` token is set |
//!
//! Refusals are JSON `{"error": "..."}` saying what to do. A token never
//! appears in a message or a log line; the environment variable's name
//! does.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, HOST, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Fewest characters a token may have: shorter ones can be guessed.
pub const MIN_TOKEN_CHARS: usize = 16;

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `/metrics` and the read endpoints (listing silences).
    Read,
    /// Reads, and the endpoints that change state.
    Write,
}

impl Scope {
    /// The word in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
        }
    }
}

/// A `[[service.api_token]]`: who holds the token, where it is, what it
/// allows. The token itself is read from the environment when the service
/// starts, never from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSource {
    /// Who holds it ("ops", "prometheus"): the author of the silences it
    /// makes.
    pub name: String,
    /// The environment variable holding the token.
    pub env: String,
    /// What it allows.
    pub scope: Scope,
}

/// A token in force: its digest, never the token.
struct Token {
    name: String,
    env: String,
    scope: Scope,
    digest: [u8; 32],
}

/// Who made an authorised request: the name of its token, or
/// [`Caller::LOCAL`] for a write taken without a token on a loopback
/// listener; `None` in the extensions of an open read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub String);

impl Caller {
    /// The caller of a write taken without a token (loopback listener, no
    /// token configured).
    pub const LOCAL: &'static str = "localhost";
}

/// How writes are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    /// With a token of scope `write`.
    Tokens,
    /// From anyone who reaches the loopback listener: no token is set.
    Loopback,
    /// Not at all.
    Off,
}

/// Why the service cannot start with its tokens.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// A token too short to resist guessing.
    #[error("API token {name:?}: {env} holds {chars} characters; use at least {MIN_TOKEN_CHARS} random ones, e.g. the output of `openssl rand -hex 32`")]
    TooShort {
        /// The token's name.
        name: String,
        /// Its variable.
        env: String,
        /// How long it is.
        chars: usize,
    },
    /// Two names, one token: the author of a change would be ambiguous.
    #[error("API tokens {first:?} and {second:?} hold the same token ({first_env} and {second_env}); give each holder a token of its own")]
    Shared {
        /// The first name.
        first: String,
        /// Its variable.
        first_env: String,
        /// The second name.
        second: String,
        /// Its variable.
        second_env: String,
    },
}

/// The access policy of one listener.
pub struct Access {
    tokens: Vec<Token>,
    listen: SocketAddr,
    /// The Host values a loopback listener answers to; `None` elsewhere.
    hosts: Option<Vec<String>>,
    /// Tokens configured whose variable is unset or empty.
    missing: Vec<TokenSource>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<(&str, &str)> = self
            .tokens
            .iter()
            .map(|t| (t.name.as_str(), t.scope.name()))
            .collect();
        f.debug_struct("Access")
            .field("tokens", &names)
            .field("listen", &self.listen)
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

impl Access {
    /// The policy of a listener bound to `listen` (`tls`: it speaks
    /// https), with the tokens of `sources` read through `lookup` (the
    /// environment, in the service). A token whose variable is unset or
    /// empty is left out: the API fails closed, and [`Access::missing`]
    /// names it for a warning. Leading and trailing whitespace of a token is
    /// dropped (files mounted as secrets often end in a newline).
    pub fn new(
        listen: SocketAddr,
        tls: bool,
        sources: &[TokenSource],
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, AccessError> {
        let mut tokens: Vec<Token> = Vec::new();
        let mut missing = Vec::new();
        for source in sources {
            let value = lookup(&source.env).unwrap_or_default();
            let value = value.trim();
            if value.is_empty() {
                missing.push(source.clone());
                continue;
            }
            let chars = value.chars().count();
            if chars < MIN_TOKEN_CHARS {
                return Err(AccessError::TooShort {
                    name: source.name.clone(),
                    env: source.env.clone(),
                    chars,
                });
            }
            let digest: [u8; 32] = Sha256::digest(value.as_bytes()).into();
            if let Some(other) = tokens.iter().find(|t| t.digest == digest) {
                return Err(AccessError::Shared {
                    first: other.name.clone(),
                    first_env: other.env.clone(),
                    second: source.name.clone(),
                    second_env: source.env.clone(),
                });
            }
            tokens.push(Token {
                name: source.name.clone(),
                env: source.env.clone(),
                scope: source.scope,
                digest,
            });
        }
        let hosts = listen
            .ip()
            .is_loopback()
            .then(|| loopback_hosts(listen, tls));
        Ok(Self {
            tokens,
            listen,
            hosts,
            missing,
        })
    }

    /// How writes are taken.
    pub fn writes(&self) -> Writes {
        if self.tokens.iter().any(|t| t.scope == Scope::Write) {
            Writes::Tokens
        } else if self.tokens.is_empty() && self.listen.ip().is_loopback() {
            Writes::Loopback
        } else {
            Writes::Off
        }
    }

    /// Whether reads need a token: once a token of scope `read` is set.
    pub fn reads_need_token(&self) -> bool {
        self.tokens.iter().any(|t| t.scope == Scope::Read)
    }

    /// Configured tokens whose variable is unset or empty, so not in force.
    pub fn missing(&self) -> &[TokenSource] {
        &self.missing
    }

    /// The token `presented` matches, if any. Both sides are SHA-256
    /// digests compared in constant time, and every token is compared, so
    /// neither the time taken nor an early exit tells a caller how much of
    /// a guess was right, or how long a token is.
    fn find(&self, presented: &[u8]) -> Option<&Token> {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        let mut found = None;
        for t in &self.tokens {
            let equal: bool = t.digest.ct_eq(&digest).into();
            if equal && found.is_none() {
                found = Some(t);
            }
        }
        found
    }

    /// Whether a request carrying `authorization` may call an endpoint
    /// that needs `need`; the caller when it names one.
    pub fn authorize(
        &self,
        authorization: Option<&HeaderValue>,
        need: Scope,
    ) -> Result<Option<Caller>, Refusal> {
        match need {
            Scope::Read if !self.reads_need_token() => return Ok(None),
            Scope::Read => {}
            Scope::Write => match self.writes() {
                Writes::Tokens => {}
                Writes::Loopback => return Ok(Some(Caller(Caller::LOCAL.to_string()))),
                Writes::Off => return Err(self.writes_off()),
            },
        }
        let Some(header) = authorization else {
            return Err(Refusal::unauthorized(
                format!(
                    "this endpoint needs `Authorization: Bearer <token>` with the token of a [[service.api_token]]{}",
                    match need {
                        Scope::Write => " of scope \"write\"",
                        Scope::Read => " (reads need one because a token of scope \"read\" is configured)",
                    }
                ),
                None,
            ));
        };
        let Some(presented) = bearer(header.as_bytes()) else {
            return Err(Refusal::unauthorized(
                "the Authorization header must read `Bearer <token>`".to_string(),
                Some("invalid_request"),
            ));
        };
        let Some(token) = self.find(presented) else {
            return Err(Refusal::unauthorized(
                "the token is not one of this kpiwatch's API tokens (a token rotated out is refused too); check the one the client sends".to_string(),
                Some("invalid_token"),
            ));
        };
        if need == Scope::Write && token.scope == Scope::Read {
            return Err(Refusal {
                status: StatusCode::FORBIDDEN,
                message: format!(
                    "token {:?} may only read; changes need a token of scope \"write\"",
                    token.name
                ),
                challenge: Some(
                    "Bearer realm=\"kpiwatch\", error=\"insufficient_scope\", scope=\"write\"",
                ),
            });
        }
        Ok(Some(Caller(token.name.clone())))
    }

    fn writes_off(&self) -> Refusal {
        let why = if self.tokens.is_empty() {
            format!(
                "kpiwatch listens on {}, which other hosts can reach, and no API token is set",
                self.listen
            )
        } else {
            "no API token of scope \"write\" is set".to_string()
        };
        Refusal {
            status: StatusCode::FORBIDDEN,
            message: format!(
                "the write API is off: {why}. Add [[service.api_token]] with `name` and `env` (scope \"write\") to the config, put a random token of {MIN_TOKEN_CHARS} or more characters in that environment variable, and restart{}",
                if self.tokens.is_empty() {
                    "; or listen on 127.0.0.1"
                } else {
                    ""
                }
            ),
            challenge: None,
        }
    }

    /// Whether a request with these Host and URI authority values may be
    /// served: always on a non-loopback listener; on a loopback one only
    /// for `localhost`, `127.0.0.1`, `[::1]` (or the listening address)
    /// with the listener's port, so a web page whose own name was made to
    /// resolve to 127.0.0.1 (DNS rebinding) is not served.
    pub fn host_allowed(&self, host: Option<&[u8]>, authority: Option<&str>) -> bool {
        let Some(hosts) = &self.hosts else {
            return true;
        };
        let known = |h: &[u8]| hosts.iter().any(|k| k.as_bytes().eq_ignore_ascii_case(h));
        host.is_some_and(known) && authority.is_none_or(|a| known(a.as_bytes()))
    }

    fn wrong_host(&self, host: Option<&[u8]>) -> Refusal {
        let shown = host.map_or_else(
            || "no Host header".to_string(),
            |h| format!("Host {:?}", String::from_utf8_lossy(h)),
        );
        Refusal {
            status: StatusCode::FORBIDDEN,
            message: format!(
                "{shown} is not this kpiwatch: on a loopback listener only {} are served (against DNS rebinding); to be reached by other names, listen on another address",
                self.hosts.as_deref().unwrap_or_default().join(", ")
            ),
            challenge: None,
        }
    }
}

/// The Host values a loopback listener on `listen` answers to.
fn loopback_hosts(listen: SocketAddr, tls: bool) -> Vec<String> {
    let port = listen.port();
    let own = match listen {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    let default_port = if tls { 443 } else { 80 };
    let mut hosts = Vec::new();
    for name in ["localhost", "127.0.0.1", "[::1]", own.as_str()] {
        for h in [format!("{name}:{port}"), name.to_string()] {
            // Browsers leave out the scheme's default port.
            if (port == default_port || h.ends_with(&format!(":{port}"))) && !hosts.contains(&h) {
                hosts.push(h);
            }
        }
    }
    hosts
}

/// The token of `Bearer <token>` (the scheme in any case).
fn bearer(header: &[u8]) -> Option<&[u8]> {
    let space = header.iter().position(|b| *b == b' ')?;
    let (scheme, rest) = header.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// A refused request: its status, what to do, and the `WWW-Authenticate`
/// challenge of a 401 or 403 about tokens.
#[derive(Debug)]
pub struct Refusal {
    /// 401 or 403.
    pub status: StatusCode,
    /// What to do, for the person reading it.
    pub message: String,
    challenge: Option<&'static str>,
}

impl Refusal {
    fn unauthorized(message: String, error: Option<&'static str>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message,
            challenge: Some(match error {
                None => "Bearer realm=\"kpiwatch\"",
                Some("invalid_request") => "Bearer realm=\"kpiwatch\", error=\"invalid_request\"",
                Some(_) => "Bearer realm=\"kpiwatch\", error=\"invalid_token\"",
            }),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = super::error(self.status, &self.message);
        if let Some(c) = self.challenge {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        response
    }
}

/// The policy in force, which a reload of the configuration replaces
/// (new tokens, a token rotated out) for the next request. A std lock:
/// held only to clone the `Arc`, never across an await.
#[derive(Debug)]
pub struct LiveAccess(std::sync::RwLock<Arc<Access>>);

impl LiveAccess {
    /// Starts with `access`.
    pub fn new(access: Arc<Access>) -> Self {
        Self(std::sync::RwLock::new(access))
    }

    /// The policy now.
    pub fn get(&self) -> Arc<Access> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the policy: requests checked from now on use `access`.
    pub fn set(&self, access: Access) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(access);
    }
}

/// Refuses, on a loopback listener, a request for another host name.
pub async fn check_host(
    State(access): State<Arc<LiveAccess>>,
    req: Request,
    next: Next,
) -> Response {
    let access = access.get();
    let host = req.headers().get(HOST).map(HeaderValue::as_bytes);
    let authority = req.uri().authority().map(|a| a.as_str());
    if access.host_allowed(host, authority) {
        return next.run(req).await;
    }
    tracing::info!(path = %req.uri().path(), "request for another host refused");
    access.wrong_host(host).into_response()
}

/// Lets through a read the policy allows, with its [`Caller`] (if any) in
/// the extensions.
pub async fn need_read(
    State(access): State<Arc<LiveAccess>>,
    req: Request,
    next: Next,
) -> Response {
    admit(&access.get(), Scope::Read, req, next).await
}

/// Lets through a write the policy allows, with its [`Caller`] in the
/// extensions.
pub async fn need_write(
    State(access): State<Arc<LiveAccess>>,
    req: Request,
    next: Next,
) -> Response {
    admit(&access.get(), Scope::Write, req, next).await
}

async fn admit(access: &Access, need: Scope, mut req: Request, next: Next) -> Response {
    match access.authorize(req.headers().get(AUTHORIZATION), need) {
        Ok(caller) => {
            if let Some(c) = caller {
                req.extensions_mut().insert(c);
            }
            next.run(req).await
        }
        Err(refusal) => {
            // The path and why; never the header.
            tracing::info!(
                path = %req.uri().path(),
                status = refusal.status.as_u16(),
                "API request refused"
            );
            refusal.into_response()
        }
    }
}

/// What `kpiwatch check` says about the API of a service listening on
/// `listen` with `sources`, reading the environment through `lookup`: one
/// note per line, for stdout (none is an error: the environment of `run`
/// may differ from this one).
pub fn notes(
    listen: SocketAddr,
    tls: bool,
    sources: &[TokenSource],
    lookup: impl Fn(&str) -> Option<String>,
) -> Vec<String> {
    let access = match Access::new(listen, tls, sources, lookup) {
        Ok(a) => a,
        Err(e) => return vec![format!("{e}; `kpiwatch run` refuses to start like this")],
    };
    let mut notes: Vec<String> = access
        .missing()
        .iter()
        .map(|s| {
            format!(
                "API token {:?}: {} is not set here; `kpiwatch run` leaves this token off until it is",
                s.name, s.env
            )
        })
        .collect();
    match access.writes() {
        Writes::Tokens => {}
        Writes::Loopback => notes.push(format!(
            "the write API (silences) takes requests without a token from this host only (service.listen {listen} is loopback); add [[service.api_token]] to require one"
        )),
        Writes::Off => notes.push(access.writes_off().message),
    }
    if access.reads_need_token() {
        notes.push(
            "/metrics and GET /api/v1/silences need a token (a token of scope \"read\" is set); /healthz and /readyz stay open".to_string(),
        );
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPS: &str = "0123456789abcdef-ops";
    const PROM: &str = "0123456789abcdef-prometheus";

    fn source(name: &str, scope: Scope) -> TokenSource {
        TokenSource {
            name: name.to_string(),
            env: format!("TOKEN_{}", name.to_uppercase()),
            scope,
        }
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN_OPS" => Some(format!("{OPS}\n")),
            "TOKEN_PROMETHEUS" => Some(PROM.to_string()),
            "TOKEN_SHORT" => Some("short".to_string()),
            "TOKEN_COPY" => Some(OPS.to_string()),
            _ => None,
        }
    }

    fn access(listen: &str, sources: &[TokenSource]) -> Access {
        Access::new(listen.parse().unwrap(), false, sources, env).unwrap()
    }

    fn bearer_of(token: &str) -> HeaderValue {
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap()
    }

    #[test]
    fn a_write_token_is_the_caller_and_a_read_token_may_not_write() {
        let a = access(
            "0.0.0.0:9898",
            &[
                source("ops", Scope::Write),
                source("prometheus", Scope::Read),
            ],
        );
        assert_eq!(a.writes(), Writes::Tokens);
        let ops = a.authorize(Some(&bearer_of(OPS)), Scope::Write).unwrap();
        assert_eq!(
            ops,
            Some(Caller("ops".into())),
            "trailing newline of the variable dropped"
        );
        let lower = HeaderValue::from_str(&format!("bearer {OPS}")).unwrap();
        assert!(
            a.authorize(Some(&lower), Scope::Write).is_ok(),
            "scheme in any case"
        );
        let refused = a
            .authorize(Some(&bearer_of(PROM)), Scope::Write)
            .unwrap_err();
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert!(
            refused.message.contains("may only read"),
            "{}",
            refused.message
        );
        assert_eq!(
            a.authorize(Some(&bearer_of(PROM)), Scope::Read).unwrap(),
            Some(Caller("prometheus".into()))
        );
    }

    #[test]
    fn no_header_a_malformed_one_and_a_wrong_token_are_401_without_echoing_it() {
        let a = access("0.0.0.0:9898", &[source("ops", Scope::Write)]);
        for header in [
            None,
            Some(HeaderValue::from_static("Basic b3BzOnNlY3JldA==")),
            Some(bearer_of("0123456789abcdef-guess")),
            Some(bearer_of(&OPS[..OPS.len() - 1])),
        ] {
            let refused = a.authorize(header.as_ref(), Scope::Write).unwrap_err();
            assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{header:?}");
            assert!(!refused.message.contains("guess"), "{}", refused.message);
        }
    }

    #[test]
    fn reads_are_open_until_a_read_token_is_set() {
        let writes_only = access("0.0.0.0:9898", &[source("ops", Scope::Write)]);
        assert_eq!(writes_only.authorize(None, Scope::Read).unwrap(), None);
        let with_read = access(
            "0.0.0.0:9898",
            &[
                source("ops", Scope::Write),
                source("prometheus", Scope::Read),
            ],
        );
        assert_eq!(
            with_read.authorize(None, Scope::Read).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            with_read
                .authorize(Some(&bearer_of(OPS)), Scope::Read)
                .unwrap(),
            Some(Caller("ops".into())),
            "a write token reads too"
        );
    }

    #[test]
    fn without_tokens_writes_are_taken_on_loopback_only() {
        let local = access("127.0.0.1:9898", &[]);
        assert_eq!(local.writes(), Writes::Loopback);
        assert_eq!(
            local.authorize(None, Scope::Write).unwrap(),
            Some(Caller(Caller::LOCAL.into()))
        );
        let exposed = access("0.0.0.0:9898", &[source("unset", Scope::Write)]);
        assert_eq!(
            exposed.writes(),
            Writes::Off,
            "a token whose variable is unset is off"
        );
        assert_eq!(exposed.missing().len(), 1);
        let refused = exposed
            .authorize(Some(&bearer_of(OPS)), Scope::Write)
            .unwrap_err();
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert!(
            refused.message.contains("[[service.api_token]]"),
            "{}",
            refused.message
        );
        let read_only = access("127.0.0.1:9898", &[source("prometheus", Scope::Read)]);
        assert_eq!(
            read_only.writes(),
            Writes::Off,
            "a read token does not open writes"
        );
    }

    #[test]
    fn short_and_shared_tokens_stop_the_start_naming_the_variable_not_the_token() {
        let err = Access::new(
            "0.0.0.0:1".parse().unwrap(),
            false,
            &[source("short", Scope::Write)],
            env,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("TOKEN_SHORT holds 5 characters"), "{err}");
        let err = Access::new(
            "0.0.0.0:1".parse().unwrap(),
            false,
            &[source("ops", Scope::Write), source("copy", Scope::Read)],
            env,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("\"ops\" and \"copy\""), "{err}");
        assert!(!err.contains(OPS), "{err}");
    }

    #[test]
    fn a_loopback_listener_answers_only_to_local_names_with_its_port() {
        let a = access("127.0.0.1:9898", &[]);
        for ok in [
            "localhost:9898",
            "LOCALHOST:9898",
            "127.0.0.1:9898",
            "[::1]:9898",
        ] {
            assert!(a.host_allowed(Some(ok.as_bytes()), None), "{ok}");
        }
        for bad in [
            "evil.example:9898",
            "localhost:80",
            "localhost",
            "127.0.0.1.evil.example:9898",
        ] {
            assert!(!a.host_allowed(Some(bad.as_bytes()), None), "{bad}");
        }
        assert!(!a.host_allowed(None, None), "no Host");
        assert!(
            !a.host_allowed(Some(b"localhost:9898"), Some("evil.example:9898")),
            "an absolute URI for another host"
        );
        let default_port = access("127.0.0.1:80", &[]);
        assert!(default_port.host_allowed(Some(b"localhost"), None));
        let exposed = access("0.0.0.0:9898", &[]);
        assert!(exposed.host_allowed(Some(b"kpiwatch.internal:9898"), None));
    }

    #[test]
    fn check_notes_say_how_writes_and_reads_are_taken() {
        let listen: SocketAddr = "0.0.0.0:9898".parse().unwrap();
        let notes = notes(listen, false, &[source("unset", Scope::Write)], env);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].contains("TOKEN_UNSET is not set here"),
            "{notes:?}"
        );
        assert!(notes[1].starts_with("the write API is off"), "{notes:?}");
        let local = super::notes("127.0.0.1:9898".parse().unwrap(), false, &[], env);
        assert!(
            local[0].contains("without a token from this host only"),
            "{local:?}"
        );
        assert!(super::notes(listen, false, &[source("ops", Scope::Write)], env).is_empty());
    }
}
