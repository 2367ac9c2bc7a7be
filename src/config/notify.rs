//! Validation of `[notify]`, `[[receiver]]`, `[[time_window]]` and
//! `[[subscription]]` into [`NotifySettings`]. Each error points at the
//! value to change: a subscription's unknown receiver at the reference, a
//! bad glob at the glob, a password at the `password` key.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use toml::Spanned;

use super::model::{direction, duration, Kpi};
use super::raw::{
    ConfigToml, NotifyToml, ReceiverToml, SmtpToml, SubscriptionToml, TimeWindowToml, WebhookToml,
};
use super::{ConfigError, Source};
use crate::alert::Severity;
use crate::notify::route::{
    GroupBy, KpiGlobs, MatchTest, Matcher, Pattern, Subscription, KPI_LABEL,
};
use crate::notify::settings::{
    CaFile, NotifySettings, Receiver, ReceiverKind, Retry, Smtp, SmtpSecurity, Webhook,
    WebhookFormat,
};
use crate::notify::timewindow::{self, TimeWindow};

const SECOND: Duration = Duration::from_secs(1);
const DAY: Duration = Duration::from_secs(86_400);

/// Validates the notification sections of `raw`; `kpis` are the validated
/// KPIs, which subscriptions' globs and labels are checked against.
pub fn notify(
    src: &Source<'_>,
    raw: &ConfigToml,
    state_dir: &Path,
    kpis: &[Kpi],
) -> Result<NotifySettings, ConfigError> {
    let mut settings = NotifySettings::none(state_dir);
    if let Some(n) = &raw.notify {
        general(src, n, &mut settings)?;
    }
    // Names looked up by hash, not by scanning what came before, so a long
    // file validates in linear time.
    let mut defined = Defined {
        kpis: kpis.iter().map(|k| k.name.clone()).collect(),
        ..Defined::default()
    };
    for r in &raw.receivers {
        let receiver = receiver(src, r)?;
        if !defined.receivers.insert(receiver.name.clone()) {
            return Err(src.error(
                name_span(r.get_ref().name.as_ref(), r.span()),
                format!(
                    "receiver {:?} is defined twice; names must be unique",
                    receiver.name
                ),
            ));
        }
        settings.receivers.push(receiver);
    }
    for w in &raw.time_windows {
        let window = time_window(src, w)?;
        if defined.windows.contains_key(&window.name) {
            return Err(src.error(
                name_span(w.get_ref().name.as_ref(), w.span()),
                format!(
                    "time window {:?} is defined twice; names must be unique",
                    window.name
                ),
            ));
        }
        defined
            .windows
            .insert(window.name.clone(), settings.time_windows.len());
        settings.time_windows.push(window);
    }
    let mut subscriptions = HashSet::new();
    for s in &raw.subscriptions {
        let sub = subscription(src, s, &settings, &defined, kpis)?;
        if !subscriptions.insert(sub.name.clone()) {
            return Err(src.error(
                name_span(s.get_ref().name.as_ref(), s.span()),
                format!(
                    "subscription {:?} is defined twice; names must be unique",
                    sub.name
                ),
            ));
        }
        settings.subscriptions.push(sub);
    }
    Ok(settings)
}

/// Receivers and time windows by name, for "defined twice" and for the
/// references of subscriptions.
#[derive(Default)]
struct Defined {
    receivers: HashSet<String>,
    /// Name -> index in `NotifySettings::time_windows`.
    windows: HashMap<String, usize>,
    /// KPI names, for globs that are plain names.
    kpis: HashSet<String>,
}

fn name_span(name: Option<&Spanned<String>>, table: Range<usize>) -> Range<usize> {
    name.map_or(table, Spanned::span)
}

/// A table's `name`: present, non-empty, letters, digits, '_', '-', '.'.
fn name(
    src: &Source<'_>,
    name: Option<&Spanned<String>>,
    table: Range<usize>,
    what: &str,
) -> Result<String, ConfigError> {
    let Some(n) = name else {
        return Err(src.error(
            table,
            format!("a [[{what}]] has no `name`; give it a unique name"),
        ));
    };
    let text = n.get_ref().trim();
    let ok = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ok {
        return Err(src.error(
            n.span(),
            format!("{what} name {text:?} must be letters, digits, '_', '-' or '.'"),
        ));
    }
    Ok(text.to_string())
}

fn opt_duration(
    src: &Source<'_>,
    v: &Option<Spanned<String>>,
    key: &str,
    default: Duration,
    min: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(d) => duration(src, d, key, min, max),
    }
}

fn general(
    src: &Source<'_>,
    n: &NotifyToml,
    settings: &mut NotifySettings,
) -> Result<(), ConfigError> {
    if let Some(from) = &n.from {
        from.get_ref()
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| {
                src.error(
                    from.span(),
                    format!(
                        "notify.from = {:?} is not an email address ({e}); write e.g. \"kpiwatch <alerts@shop.example>\"",
                        from.get_ref()
                    ),
                )
            })?;
        settings.from = from.get_ref().clone();
    }
    if let Some(url) = &n.external_url {
        http_url(src, url, "notify.external_url")?;
        settings.external_url = Some(url.get_ref().trim_end_matches('/').to_string());
    }
    if let Some(dir) = &n.mail_dir {
        settings.mail_dir = PathBuf::from(dir);
    }
    if let Some(key_env) = env_var_name(src, n.feedback_key_env.as_ref(), "feedback_key_env")? {
        settings.feedback_links = Some(crate::feedback::link::LinkSettings {
            key_env,
            ttl_secs: opt_duration(
                src,
                &n.feedback_link_ttl,
                "feedback_link_ttl",
                Duration::from_secs(crate::feedback::link::DEFAULT_TTL_SECS as u64),
                Duration::from_secs(3600),
                Duration::from_secs(365 * 86_400),
            )?
            .as_secs() as i64,
        });
    }
    let retry = Retry {
        initial: opt_duration(
            src,
            &n.retry_initial,
            "retry_initial",
            Retry::default().initial,
            Duration::from_millis(10),
            Duration::from_secs(3600),
        )?,
        max: opt_duration(
            src,
            &n.retry_max,
            "retry_max",
            Retry::default().max,
            Duration::from_millis(10),
            DAY,
        )?,
        give_up_after: opt_duration(
            src,
            &n.give_up_after,
            "give_up_after",
            Retry::default().give_up_after,
            SECOND,
            DAY * 30,
        )?,
    };
    if retry.max < retry.initial {
        let span = n
            .retry_max
            .as_ref()
            .or(n.retry_initial.as_ref())
            .map_or(0..0, Spanned::span);
        return Err(src.error(
            span,
            "retry_max is shorter than retry_initial; the backoff grows from retry_initial up to retry_max",
        ));
    }
    settings.retry = retry;
    if let Some(smtp) = &n.smtp {
        settings.smtp = Some(self::smtp(src, smtp)?);
    }
    Ok(())
}

fn smtp(src: &Source<'_>, s: &Spanned<SmtpToml>) -> Result<Smtp, ConfigError> {
    let t = s.get_ref();
    if let Some(p) = &t.password {
        return Err(src.error(
            p.span(),
            "notify.smtp.password is not read from files; put the password in the environment variable KPIWATCH_SMTP_PASSWORD (or the one `password_env` names) and remove this key",
        ));
    }
    if let Some(u) = &t.username {
        return Err(src.error(
            u.span(),
            "notify.smtp.username is not read from files; put it in the environment variable KPIWATCH_SMTP_USERNAME (or the one `username_env` names) and remove this key",
        ));
    }
    let Some(host) = &t.host else {
        return Err(src.error(
            s.span(),
            "[notify.smtp] has no `host`; write the relay's host name, e.g. host = \"smtp.example.com\"",
        ));
    };
    if host.get_ref().trim().is_empty() {
        return Err(src.error(host.span(), "notify.smtp.host is empty"));
    }
    let security = match t.security.as_ref().map(|v| (v, v.get_ref().as_str())) {
        None | Some((_, "starttls")) => SmtpSecurity::StartTls,
        Some((_, "tls")) => SmtpSecurity::Tls,
        Some((_, "none")) => SmtpSecurity::None,
        Some((v, other)) => {
            return Err(src.error(
                v.span(),
                format!("security = {other:?} is not known; use \"starttls\", \"tls\" or \"none\""),
            ))
        }
    };
    let port = match &t.port {
        None => match security {
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::None => 25,
        },
        Some(p) => u16::try_from(*p.get_ref())
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                src.error(
                    p.span(),
                    format!("port = {} is out of range; use 1 to 65535", p.get_ref()),
                )
            })?,
    };
    let pool_size = match &t.pool_size {
        None => 4,
        Some(p) if (1..=100).contains(p.get_ref()) => *p.get_ref() as u32,
        Some(p) => {
            return Err(src.error(
                p.span(),
                format!("pool_size = {} is out of range; use 1 to 100", p.get_ref()),
            ))
        }
    };
    let env_name = |v: &Option<Spanned<String>>, key: &str, default: &str| {
        env_var_name(src, v.as_ref(), key).map(|n| n.unwrap_or_else(|| default.to_string()))
    };
    Ok(Smtp {
        host: host.get_ref().trim().to_string(),
        port,
        security,
        username_env: env_name(&t.username_env, "username_env", "KPIWATCH_SMTP_USERNAME")?,
        password_env: env_name(&t.password_env, "password_env", "KPIWATCH_SMTP_PASSWORD")?,
        timeout: opt_duration(
            src,
            &t.timeout,
            "timeout",
            Duration::from_secs(10),
            SECOND,
            Duration::from_secs(600),
        )?,
        pool_size,
        ca: ca_file(src, t.ca_file.as_ref(), host.get_ref().trim(), security)?,
    })
}

/// Reads and checks `[notify.smtp] ca_file`: a CA file (see
/// [`read_ca_file`]) that lettre's rustls accepts as a root, for a TLS
/// connection.
fn ca_file(
    src: &Source<'_>,
    v: Option<&Spanned<String>>,
    host: &str,
    security: SmtpSecurity,
) -> Result<Option<CaFile>, ConfigError> {
    let Some(v) = v else { return Ok(None) };
    if security == SmtpSecurity::None {
        return Err(src.error(
            v.span(),
            "ca_file is for a TLS connection, and security = \"none\" has none; use security = \"starttls\" or \"tls\", or remove ca_file",
        ));
    }
    let ca = read_ca_file(src, v)?;
    if let Err(e) = crate::notify::email::tls_parameters(host, Some(&ca)) {
        return Err(unusable_ca(src, v, &ca, e));
    }
    Ok(Some(ca))
}

/// Reads a `ca_file`: it must hold at least one PEM certificate.
fn read_ca_file(src: &Source<'_>, v: &Spanned<String>) -> Result<CaFile, ConfigError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;

    let path = PathBuf::from(v.get_ref());
    let pem = std::fs::read(&path).map_err(|e| {
        src.error(
            v.span(),
            format!(
                "cannot read ca_file {}: {e}; give the path of a PEM file of certificate authorities (relative to the working directory)",
                path.display()
            ),
        )
    })?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            src.error(
                v.span(),
                format!("ca_file {} is not valid PEM ({e})", path.display()),
            )
        })?;
    if certificates.is_empty() {
        return Err(src.error(
            v.span(),
            format!(
                "ca_file {} holds no certificate; it needs at least one \"-----BEGIN CERTIFICATE-----\" block",
                path.display()
            ),
        ));
    }
    Ok(CaFile { path, pem })
}

/// The error for a CA file the TLS library refused.
fn unusable_ca(
    src: &Source<'_>,
    v: &Spanned<String>,
    ca: &CaFile,
    e: impl std::fmt::Display,
) -> ConfigError {
    src.error(
        v.span(),
        format!(
            "ca_file {} cannot be used as a certificate authority ({e}); give the CA's certificate in PEM",
            ca.path.display()
        ),
    )
}

pub(super) fn env_var_name(
    src: &Source<'_>,
    v: Option<&Spanned<String>>,
    key: &str,
) -> Result<Option<String>, ConfigError> {
    let Some(v) = v else { return Ok(None) };
    let name = v.get_ref();
    let ok = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(src.error(
            v.span(),
            format!("{key} = {name:?} is not an environment variable name; it names the variable that holds the secret (letters, digits, '_'), e.g. \"ONCALL_WEBHOOK_SECRET\""),
        ));
    }
    Ok(Some(name.clone()))
}

fn http_url(src: &Source<'_>, url: &Spanned<String>, key: &str) -> Result<(), ConfigError> {
    let ok = reqwest::Url::parse(url.get_ref())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
    if ok.is_none() {
        return Err(src.error(
            url.span(),
            format!(
                "{key} = {:?} is not an http(s) URL; write e.g. \"https://hooks.example.com/kpiwatch\"",
                url.get_ref()
            ),
        ));
    }
    Ok(())
}

fn receiver(src: &Source<'_>, r: &Spanned<ReceiverToml>) -> Result<Receiver, ConfigError> {
    let t = r.get_ref();
    let name = name(src, t.name.as_ref(), r.span(), "receiver")?;
    let kind = match (&t.email, &t.webhook) {
        (Some(_), Some(w)) => {
            return Err(src.error(
                w.span(),
                format!("receiver {name:?} has both `email` and `webhook`; a receiver is one destination, so make two receivers"),
            ))
        }
        (None, None) => {
            return Err(src.error(
                name_span(t.name.as_ref(), r.span()),
                format!("receiver {name:?} has neither `email` nor `webhook`; add email = [\"someone@example.com\"] or webhook = {{ url = \"https://...\" }}"),
            ))
        }
        (Some(list), None) => {
            if list.get_ref().is_empty() {
                return Err(src.error(
                    list.span(),
                    format!("receiver {name:?} has an empty `email` list; add at least one address"),
                ));
            }
            let mut to = Vec::new();
            for a in list.get_ref() {
                a.get_ref().trim().parse::<lettre::Address>().map_err(|e| {
                    src.error(
                        a.span(),
                        format!("{:?} is not an email address ({e}); write e.g. \"pm@shop.example\"", a.get_ref()),
                    )
                })?;
                to.push(a.get_ref().trim().to_string());
            }
            ReceiverKind::Email { to }
        }
        (None, Some(w)) => ReceiverKind::Webhook(webhook(src, w, &name)?),
    };
    Ok(Receiver { name, kind })
}

fn webhook(
    src: &Source<'_>,
    w: &Spanned<WebhookToml>,
    receiver: &str,
) -> Result<Webhook, ConfigError> {
    let t = w.get_ref();
    let Some(url) = &t.url else {
        return Err(src.error(
            w.span(),
            format!("the webhook of receiver {receiver:?} has no `url`; add url = \"https://...\""),
        ));
    };
    http_url(src, url, "url")?;
    let format = match t.format.as_ref().map(|f| (f, f.get_ref().as_str())) {
        None | Some((_, "kpiwatch")) => WebhookFormat::Kpiwatch,
        Some((_, "alertmanager")) => WebhookFormat::Alertmanager,
        Some((_, "slack")) => WebhookFormat::Slack,
        Some((f, other)) => {
            return Err(src.error(
                f.span(),
                format!(
                "format = {other:?} is not known; use \"kpiwatch\", \"alertmanager\" or \"slack\""
            ),
            ))
        }
    };
    let mut headers = BTreeMap::new();
    for (k, v) in &t.headers {
        let valid = reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_ok()
            && reqwest::header::HeaderValue::from_str(v.get_ref()).is_ok();
        if !valid {
            return Err(src.error(
                v.span(),
                format!(
                    "header {k:?} = {:?} is not a valid HTTP header",
                    v.get_ref()
                ),
            ));
        }
        headers.insert(k.clone(), v.get_ref().clone());
    }
    Ok(Webhook {
        url: url.get_ref().clone(),
        format,
        secret_env: env_var_name(src, t.secret_env.as_ref(), "secret_env")?,
        timeout: opt_duration(
            src,
            &t.timeout,
            "timeout",
            Duration::from_secs(10),
            Duration::from_millis(100),
            Duration::from_secs(600),
        )?,
        headers,
        ca: match &t.ca_file {
            None => None,
            Some(v) => Some(webhook_ca_file(src, v, url.get_ref())?),
        },
    })
}

/// Reads and checks a webhook's `ca_file`, for an https URL.
fn webhook_ca_file(
    src: &Source<'_>,
    v: &Spanned<String>,
    url: &str,
) -> Result<CaFile, ConfigError> {
    if !url.starts_with("https://") {
        return Err(src.error(
            v.span(),
            "ca_file is for an https:// URL; use https, or remove ca_file",
        ));
    }
    let ca = read_ca_file(src, v)?;
    if let Err(e) = crate::notify::webhook::client(Some(&ca)) {
        return Err(unusable_ca(src, v, &ca, e));
    }
    Ok(ca)
}

fn time_window(src: &Source<'_>, w: &Spanned<TimeWindowToml>) -> Result<TimeWindow, ConfigError> {
    let t = w.get_ref();
    let mut window = TimeWindow::always(&name(src, t.name.as_ref(), w.span(), "time_window")?);
    fn each<T>(
        src: &Source<'_>,
        list: &Option<Vec<Spanned<String>>>,
        key: &str,
        parse: fn(&str) -> Result<T, String>,
    ) -> Result<Vec<T>, ConfigError> {
        list.iter()
            .flatten()
            .map(|v| parse(v.get_ref()).map_err(|e| src.error(v.span(), format!("{key}: {e}"))))
            .collect()
    }
    let weekdays = each(src, &t.weekdays, "weekdays", timewindow::parse_weekdays)?;
    if !weekdays.is_empty() {
        window.weekdays = weekdays.iter().fold(0, |a, b| a | b);
    }
    let months = each(src, &t.months, "months", timewindow::parse_months)?;
    if !months.is_empty() {
        window.months = months.iter().fold(0, |a, b| a | b);
    }
    window.days_of_month = each(
        src,
        &t.days_of_month,
        "days_of_month",
        timewindow::parse_days_of_month,
    )?;
    window.times = each(src, &t.times, "times", timewindow::parse_time_range)?;
    if let Some(tz) = &t.timezone {
        window.timezone = tz.get_ref().parse::<Tz>().map_err(|_| {
            src.error(
                tz.span(),
                format!("timezone = {:?} is not an IANA time zone; write e.g. \"Europe/Helsinki\" or \"UTC\"", tz.get_ref()),
            )
        })?;
    }
    Ok(window)
}

fn subscription(
    src: &Source<'_>,
    s: &Spanned<SubscriptionToml>,
    settings: &NotifySettings,
    defined: &Defined,
    kpis: &[Kpi],
) -> Result<Subscription, ConfigError> {
    let t = s.get_ref();
    let name = name(src, t.name.as_ref(), s.span(), "subscription")?;
    let mut sub = Subscription::new(&name, &[]);
    let Some(receivers) = &t.receivers else {
        return Err(src.error(
            name_span(t.name.as_ref(), s.span()),
            format!("subscription {name:?} has no `receivers`; add receivers = [\"...\"] naming [[receiver]] sections"),
        ));
    };
    sub.receivers = receiver_names(src, &name, receivers, settings, defined)?;
    if let Some(globs) = &t.kpis {
        sub.kpis = kpi_globs(src, globs, defined, kpis)?;
    }
    for (label, value) in t.labels.iter().flatten() {
        let matcher = matcher(src, label, value)?;
        if label != KPI_LABEL {
            label_of_some_kpi(src, label, value, &sub.kpis, kpis)?;
        }
        sub.labels.push(matcher);
    }
    if let Some(m) = &t.min_severity {
        sub.min_severity = min_severity(src, m)?;
    }
    if t.direction.is_some() {
        sub.direction = direction(src, t.direction.as_ref())?;
    }
    if let Some(g) = &t.group_by {
        sub.group_by = group_by(src, g)?;
    }
    intervals(src, t, &mut sub)?;
    sub.send_resolved = t.send_resolved.unwrap_or(true);
    sub.active_during = window_refs(src, &t.active_during, settings, defined)?;
    sub.mute_during = window_refs(src, &t.mute_during, settings, defined)?;
    Ok(sub)
}

/// A subscription's `receivers`: at least one, each a defined
/// `[[receiver]]`, each once.
fn receiver_names(
    src: &Source<'_>,
    subscription: &str,
    receivers: &Spanned<Vec<Spanned<String>>>,
    settings: &NotifySettings,
    defined: &Defined,
) -> Result<Vec<String>, ConfigError> {
    if receivers.get_ref().is_empty() {
        return Err(src.error(
            receivers.span(),
            format!(
                "subscription {subscription:?} has no receivers; name at least one [[receiver]]"
            ),
        ));
    }
    let mut names: Vec<String> = Vec::new();
    for r in receivers.get_ref() {
        if !defined.receivers.contains(r.get_ref()) {
            let known: Vec<&str> = settings.receivers.iter().map(|r| r.name.as_str()).collect();
            return Err(src.error(
                r.span(),
                format!(
                    "receiver {:?} is not defined; add a [[receiver]] with that name{}",
                    r.get_ref(),
                    one_of(&known)
                ),
            ));
        }
        if !names.contains(r.get_ref()) {
            names.push(r.get_ref().clone());
        }
    }
    Ok(names)
}

/// A subscription's `kpis`: globs, each matching some KPI of the file
/// (one that matches none is almost always a typo).
fn kpi_globs(
    src: &Source<'_>,
    globs: &[Spanned<String>],
    defined: &Defined,
    kpis: &[Kpi],
) -> Result<KpiGlobs, ConfigError> {
    let patterns: Vec<&str> = globs.iter().map(|g| g.get_ref().as_str()).collect();
    let all = KpiGlobs::new(&patterns).map_err(|(i, e)| {
        src.error(
            globs[i].span(),
            format!(
                "kpis: {:?} is not a glob ({}); write e.g. \"checkout*\"",
                patterns[i],
                e.kind()
            ),
        )
    })?;
    // A plain name is looked up and a pattern scans to its first match, so
    // many subscriptions over many KPIs do not cost their product.
    // (Compiling a glob costs more than a lookup: a plain name is not.)
    for (i, g) in globs.iter().enumerate() {
        let plain = !patterns[i].contains(['*', '?', '[', '{', '\\']);
        let found = if plain {
            defined.kpis.contains(patterns[i])
        } else {
            let one = KpiGlobs::new(&patterns[i..=i])
                .map_err(|(_, e)| src.error(g.span(), e.to_string()))?;
            kpis.iter().any(|k| one.matches(&k.name))
        };
        if !kpis.is_empty() && !found {
            let names: Vec<&str> = kpis.iter().map(|k| k.name.as_str()).collect();
            return Err(src.error(
                g.span(),
                format!(
                    "kpis: {:?} matches no [[kpi]] in this file{}",
                    g.get_ref(),
                    one_of(&names)
                ),
            ));
        }
    }
    Ok(all)
}

/// Refuses a subscription's label matcher on `label` when no KPI it
/// takes (`taken`) has that label: labels are a KPI's `group_by` fields.
fn label_of_some_kpi(
    src: &Source<'_>,
    label: &str,
    value: &Spanned<toml::Value>,
    taken: &KpiGlobs,
    kpis: &[Kpi],
) -> Result<(), ConfigError> {
    if kpis.is_empty() {
        return Ok(());
    }
    let has = |k: &Kpi| k.group_by.iter().any(|f| f.to_string() == label) && taken.matches(&k.name);
    if kpis.iter().any(has) {
        return Ok(());
    }
    let names: Vec<&str> = kpis
        .iter()
        .filter(|k| taken.matches(&k.name))
        .map(|k| k.name.as_str())
        .collect();
    Err(src.error(
        value.span(),
        format!(
            "labels: no KPI this subscription takes ({}) has a label {label:?}; labels are the KPI's group_by fields, or \"kpi\" for its name",
            names.join(", ")
        ),
    ))
}

/// `min_severity`: "warning" or "critical".
fn min_severity(src: &Source<'_>, m: &Spanned<String>) -> Result<Severity, ConfigError> {
    let name = m.get_ref().as_str();
    Severity::parse(name).ok_or_else(|| {
        src.error(
            m.span(),
            format!("min_severity = {name:?} is not known; use \"warning\" or \"critical\""),
        )
    })
}

/// A subscription's `group_by`: label names, or `["..."]` for every
/// alert alone.
fn group_by(src: &Source<'_>, g: &[Spanned<String>]) -> Result<GroupBy, ConfigError> {
    if g.iter().any(|l| l.get_ref() == "...") {
        if g.len() > 1 {
            return Err(src.error(
                g[0].span(),
                "group_by = [\"...\"] (every alert alone) cannot be combined with label names",
            ));
        }
        return Ok(GroupBy::Each);
    }
    let mut names = Vec::new();
    for l in g {
        if l.get_ref().trim().is_empty() {
            return Err(src.error(l.span(), "group_by: a label name is empty"));
        }
        if !names.contains(l.get_ref()) {
            names.push(l.get_ref().clone());
        }
    }
    Ok(GroupBy::Labels(names))
}

/// A subscription's `group_wait`, `group_interval` and `repeat_interval`
/// (the defaults `sub` holds unless set), reminders no more often than
/// groups are sent.
fn intervals(
    src: &Source<'_>,
    t: &SubscriptionToml,
    sub: &mut Subscription,
) -> Result<(), ConfigError> {
    sub.group_wait = opt_duration(
        src,
        &t.group_wait,
        "group_wait",
        sub.group_wait,
        Duration::ZERO,
        DAY,
    )?;
    sub.group_interval = opt_duration(
        src,
        &t.group_interval,
        "group_interval",
        sub.group_interval,
        SECOND,
        DAY,
    )?;
    sub.repeat_interval = opt_duration(
        src,
        &t.repeat_interval,
        "repeat_interval",
        sub.repeat_interval,
        Duration::from_secs(60),
        DAY * 30,
    )?;
    if sub.repeat_interval < sub.group_interval {
        let span = t.repeat_interval.as_ref().map_or(0..0, Spanned::span);
        return Err(src.error(
            span,
            format!(
                "repeat_interval ({}) is shorter than group_interval ({}); reminders come at most once per group_interval, so make repeat_interval at least as long",
                humantime::format_duration(sub.repeat_interval),
                humantime::format_duration(sub.group_interval)
            ),
        ));
    }
    Ok(())
}

fn window_refs(
    src: &Source<'_>,
    refs: &Option<Vec<Spanned<String>>>,
    settings: &NotifySettings,
    defined: &Defined,
) -> Result<Vec<usize>, ConfigError> {
    refs.iter()
        .flatten()
        .map(|r| {
            defined.windows.get(r.get_ref()).copied().ok_or_else(|| {
                let known: Vec<&str> = settings
                    .time_windows
                    .iter()
                    .map(|w| w.name.as_str())
                    .collect();
                src.error(
                    r.span(),
                    format!(
                        "time window {:?} is not defined; add a [[time_window]] with that name{}",
                        r.get_ref(),
                        one_of(&known)
                    ),
                )
            })
        })
        .collect()
}

fn one_of(names: &[&str]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(" or use one of: {}", names.join(", "))
    }
}

fn matcher(
    src: &Source<'_>,
    label: &str,
    value: &Spanned<toml::Value>,
) -> Result<Matcher, ConfigError> {
    let help = "write label = \"value\", label = { not = \"value\" }, label = { in = [\"a\", \"b\"] } or label = { regex = \"FI|SE\" }";
    let bad = |msg: String| src.error(value.span(), format!("labels.{label}: {msg}; {help}"));
    let text = |v: &toml::Value| v.as_str().map(str::to_string);
    let test = match value.get_ref() {
        toml::Value::String(s) => MatchTest::Equals(s.clone()),
        toml::Value::Table(t) if t.len() == 1 => {
            let (op, arg) = t.iter().next().expect("one entry");
            match op.as_str() {
                "not" => {
                    MatchTest::Not(text(arg).ok_or_else(|| bad("`not` takes a string".into()))?)
                }
                "in" => MatchTest::In(
                    arg.as_array()
                        .and_then(|a| a.iter().map(text).collect::<Option<Vec<_>>>())
                        .ok_or_else(|| bad("`in` takes a list of strings".into()))?,
                ),
                "regex" => {
                    let p = text(arg).ok_or_else(|| bad("`regex` takes a string".into()))?;
                    MatchTest::Regex(Pattern::new(&p).map_err(|e| {
                        let e = e
                            .to_string()
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" ");
                        bad(format!("{p:?} is not a regular expression ({e})"))
                    })?)
                }
                other => return Err(bad(format!("unknown test `{other}`"))),
            }
        }
        toml::Value::Table(t) => {
            let keys: Vec<&str> = t.keys().map(String::as_str).collect();
            return Err(bad(format!(
                "a matcher has exactly one test, found {} ({})",
                keys.len(),
                keys.join(", ")
            )));
        }
        _ => return Err(bad("label values are strings".into())),
    };
    Ok(Matcher {
        name: label.to_string(),
        test,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Interest;
    use crate::config::model::validate;

    const BASE: &str = r#"
[[topic]]
name = "shop.events"

[[kpi]]
name = "checkouts"
where = { type = "checkout" }
aggregate = "count"
group_by = ["country", "platform"]

[[kpi]]
name = "signups"
where = { type = "signup" }
aggregate = "count"
# Four lines here, so that the
# notification sections under test
# start on line 19.
#
"#;

    /// Validates BASE followed by `extra`; the error text on failure. Line
    /// numbers in `extra` start at 19.
    fn check(extra: &str) -> Result<NotifySettings, String> {
        let text = format!("{BASE}{extra}");
        assert_eq!(BASE.lines().count(), 18);
        validate(&Source::new(Path::new("n.toml"), &text))
            .map(|c| c.notify)
            .map_err(|e| e.to_string())
    }

    const FULL: &str = r#"[notify]
from = "kpiwatch <alerts@shop.example>"
external_url = "https://kpiwatch.shop.example/"
give_up_after = "12h"
retry_initial = "2s"
retry_max = "1m"
[notify.smtp]
host = "smtp.example.com"
security = "tls"
[[receiver]]
name = "shop-team"
email = ["pm@shop.example", "analyst@shop.example"]
[[receiver]]
name = "oncall"
webhook = { url = "https://oncall.example/hook", format = "alertmanager", secret_env = "ONCALL_SECRET", timeout = "5s", headers = { "X-Team" = "shop" } }
[[time_window]]
name = "business-hours"
weekdays = ["mon-fri"]
times = ["08:00-20:00"]
timezone = "Europe/Helsinki"
[[time_window]]
name = "sunday-maintenance"
weekdays = ["sun"]
times = ["02:00-04:00"]
[[subscription]]
name = "checkout-owners"
kpis = ["checkout*"]
labels = { country = "FI", platform = { not = "web" } }
min_severity = "critical"
direction = "drop"
receivers = ["shop-team", "oncall"]
group_by = ["kpi", "country"]
group_wait = "0s"
repeat_interval = "2h"
send_resolved = false
active_during = ["business-hours"]
mute_during = ["sunday-maintenance"]
[[subscription]]
name = "everything"
receivers = ["shop-team"]
group_by = ["..."]
"#;

    #[test]
    fn a_full_notification_config_is_read_into_settings() {
        let n = check(FULL).unwrap();
        assert_eq!(n.from, "kpiwatch <alerts@shop.example>");
        assert_eq!(
            n.external_url.as_deref(),
            Some("https://kpiwatch.shop.example")
        );
        assert_eq!(n.retry.initial, Duration::from_secs(2));
        let smtp = n.smtp.as_ref().unwrap();
        assert_eq!((smtp.port, smtp.security), (465, SmtpSecurity::Tls));
        assert_eq!(smtp.password_env, "KPIWATCH_SMTP_PASSWORD");
        let ReceiverKind::Webhook(w) = &n.receiver("oncall").unwrap().kind else {
            panic!("oncall is a webhook")
        };
        assert_eq!(w.format, WebhookFormat::Alertmanager);
        assert_eq!(w.headers["X-Team"], "shop");
        let s = &n.subscriptions[0];
        assert_eq!(s.receivers, ["shop-team", "oncall"]);
        assert_eq!(s.min_severity, Severity::Critical);
        assert_eq!(s.direction, Interest::Drop);
        assert_eq!(s.group_wait, Duration::ZERO);
        assert_eq!(s.group_interval, Duration::from_secs(300), "default");
        assert_eq!(s.repeat_interval, Duration::from_secs(7200));
        assert!(!s.send_resolved);
        assert_eq!(
            (s.active_during.clone(), s.mute_during.clone()),
            (vec![0], vec![1])
        );
        assert_eq!(s.labels.len(), 2);
        assert_eq!(n.subscriptions[1].group_by, GroupBy::Each);
        assert!(n.subscriptions[1].send_resolved, "default true");
    }

    #[test]
    fn no_notify_sections_means_nothing_is_sent() {
        let n = check("").unwrap();
        assert!(n.receivers.is_empty() && n.subscriptions.is_empty());
    }

    #[test]
    fn an_unknown_receiver_is_reported_at_the_reference() {
        let err = check(
            "[[receiver]]\nname = \"team\"\nemail = [\"a@example.com\"]\n[[subscription]]\nname = \"s\"\nreceivers = [\"team\", \"teem\"]\n",
        )
        .unwrap_err();
        assert!(
            err.starts_with("n.toml:24:22: receiver \"teem\" is not defined"),
            "{err}"
        );
        assert!(err.contains("one of: team"), "{err}");
    }

    #[test]
    fn an_unknown_time_window_is_reported_at_the_reference() {
        let err = check(
            "[[receiver]]\nname = \"team\"\nemail = [\"a@example.com\"]\n[[subscription]]\nname = \"s\"\nreceivers = [\"team\"]\nmute_during = [\"sunday\"]\n",
        )
        .unwrap_err();
        assert!(
            err.starts_with("n.toml:25:16: time window \"sunday\" is not defined"),
            "{err}"
        );
    }

    /// `[notify.smtp]` for smtp.example.com with `ca_file` at line 21,
    /// its value at column 11.
    fn check_ca_file(path: &Path, security: &str) -> Result<NotifySettings, String> {
        check(&format!(
            "[notify.smtp]\nhost = \"smtp.example.com\"\nca_file = {:?}\nsecurity = \"{security}\"\n",
            path.display().to_string()
        ))
    }

    /// A fresh CA certificate as `ca.pem` in `dir`: its path and PEM.
    fn ca_pem(dir: &Path) -> (PathBuf, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        let path = dir.join("ca.pem");
        std::fs::write(&path, &pem).unwrap();
        (path, pem)
    }

    #[test]
    fn a_ca_file_is_read_when_the_config_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let (path, pem) = ca_pem(dir.path());
        let smtp = check_ca_file(&path, "starttls").unwrap().smtp.unwrap();
        let ca = smtp.ca.expect("the CA is kept");
        assert_eq!((ca.path, ca.pem), (path, pem.into_bytes()));
    }

    #[test]
    fn a_ca_file_that_is_missing_or_holds_no_certificate_is_refused_where_it_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-ca.pem");
        let err = check_ca_file(&missing, "starttls").unwrap_err();
        assert!(err.starts_with("n.toml:21:11:"), "{err}");
        assert!(
            err.contains("no-such-ca.pem") && err.contains("cannot read"),
            "{err}"
        );

        let key_only = dir.path().join("key.pem");
        let key = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&key_only, key.serialize_pem()).unwrap();
        let err = check_ca_file(&key_only, "tls").unwrap_err();
        assert!(
            err.starts_with("n.toml:21:11:") && err.contains("holds no certificate"),
            "{err}"
        );

        // Well-formed PEM whose contents are not a certificate.
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = check_ca_file(&garbage, "tls").unwrap_err();
        assert!(
            err.contains("cannot be used as a certificate authority"),
            "{err}"
        );
    }

    #[test]
    fn a_webhook_ca_file_is_read_for_an_https_url_and_refused_for_http() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = ca_pem(dir.path());
        let receiver = |url: &str| {
            check(&format!(
                "[[receiver]]\nname = \"hook\"\nwebhook = {{ url = \"{url}\", ca_file = {:?} }}\n",
                path.display().to_string()
            ))
        };
        let settings = receiver("https://hooks.internal.example/kpiwatch").unwrap();
        let ReceiverKind::Webhook(hook) = &settings.receivers[0].kind else {
            panic!("a webhook receiver");
        };
        assert_eq!(hook.ca.as_ref().map(|c| &c.path), Some(&path));
        let err = receiver("http://hooks.internal.example/kpiwatch").unwrap_err();
        assert!(
            err.starts_with("n.toml:21:") && err.contains("https"),
            "{err}"
        );
    }

    #[test]
    fn a_ca_file_without_tls_is_refused() {
        let err = check_ca_file(Path::new("ca.pem"), "none").unwrap_err();
        assert!(
            err.starts_with("n.toml:21:11:") && err.contains("security"),
            "{err}"
        );
    }

    #[test]
    fn a_password_in_the_file_is_refused_with_the_env_var_to_use() {
        let err = check("[notify.smtp]\nhost = \"smtp.example.com\"\npassword = \"hunter2\"\n")
            .unwrap_err();
        assert!(err.starts_with("n.toml:21:12:"), "{err}");
        assert!(err.contains("KPIWATCH_SMTP_PASSWORD"), "{err}");
        assert!(!err.contains("hunter2"), "the secret is not echoed: {err}");
    }

    #[test]
    fn a_receiver_is_exactly_one_of_email_and_webhook() {
        let both = check(
            "[[receiver]]\nname = \"r\"\nemail = [\"a@example.com\"]\nwebhook = { url = \"https://x.example\" }\n",
        )
        .unwrap_err();
        assert!(
            both.starts_with("n.toml:22:11:") && both.contains("both"),
            "{both}"
        );
        let neither = check("[[receiver]]\nname = \"r\"\n").unwrap_err();
        assert!(
            neither.starts_with("n.toml:20:8:") && neither.contains("neither"),
            "{neither}"
        );
    }

    #[test]
    fn bad_addresses_and_urls_are_located() {
        let email =
            check("[[receiver]]\nname = \"r\"\nemail = [\"ok@example.com\", \"not an address\"]\n")
                .unwrap_err();
        assert!(
            email.starts_with("n.toml:21:28:") && email.contains("not an email address"),
            "{email}"
        );
        let url = check("[[receiver]]\nname = \"r\"\nwebhook = { url = \"ftp://x.example\" }\n")
            .unwrap_err();
        assert!(
            url.starts_with("n.toml:21:19:") && url.contains("http(s) URL"),
            "{url}"
        );
        let format = check("[[receiver]]\nname = \"r\"\nwebhook = { url = \"https://x.example\", format = \"teams\" }\n")
            .unwrap_err();
        assert!(format.contains("\"slack\""), "{format}");
    }

    #[test]
    fn globs_regexes_and_label_names_are_checked_against_the_kpis() {
        let sub = |body: &str| {
            check(&format!(
                "[[receiver]]\nname = \"r\"\nemail = [\"a@example.com\"]\n[[subscription]]\nname = \"s\"\nreceivers = [\"r\"]\n{body}\n"
            ))
            .unwrap_err()
        };
        let typo = sub("kpis = [\"chekout*\"]");
        assert!(
            typo.starts_with("n.toml:25:9:") && typo.contains("matches no [[kpi]]"),
            "{typo}"
        );
        let glob = sub("kpis = [\"check[out\"]");
        assert!(
            glob.starts_with("n.toml:25:9:") && glob.contains("not a glob"),
            "{glob}"
        );
        let regex = sub("labels = { country = { regex = \"F(I\" } }");
        assert!(
            regex.starts_with("n.toml:25:22:") && regex.contains("regular expression"),
            "{regex}"
        );
        assert_eq!(regex.lines().count(), 1, "{regex}");
        let label = sub("kpis = [\"signups\"]\nlabels = { country = \"FI\" }");
        assert!(
            label.starts_with("n.toml:26:22:") && label.contains("group_by"),
            "{label}"
        );
        let two = sub("labels = { country = { not = \"F\", in = [\"G\"] } }");
        assert!(two.contains("exactly one test, found 2"), "{two}");
        let op = sub("labels = { country = { like = \"F\" } }");
        assert!(op.contains("unknown test `like`"), "{op}");
    }

    #[test]
    fn timing_mistakes_name_the_fix() {
        let sub = |body: &str| {
            check(&format!(
                "[[receiver]]\nname = \"r\"\nemail = [\"a@example.com\"]\n[[subscription]]\nname = \"s\"\nreceivers = [\"r\"]\n{body}\n"
            ))
            .unwrap_err()
        };
        let short = sub("group_interval = \"10m\"\nrepeat_interval = \"5m\"");
        assert!(
            short.starts_with("n.toml:26:19:") && short.contains("at least as long"),
            "{short}"
        );
        let wait = sub("group_wait = \"soon\"");
        assert!(
            wait.starts_with("n.toml:25:14:") && wait.contains("\"30s\""),
            "{wait}"
        );
        let sev = sub("min_severity = \"page\"");
        assert!(sev.contains("\"warning\" or \"critical\""), "{sev}");
    }

    #[test]
    fn names_are_unique_per_kind() {
        let err = check(
            "[[receiver]]\nname = \"r\"\nemail = [\"a@example.com\"]\n[[receiver]]\nname = \"r\"\nemail = [\"b@example.com\"]\n",
        )
        .unwrap_err();
        assert!(
            err.starts_with("n.toml:23:8:") && err.contains("defined twice"),
            "{err}"
        );
    }

    #[test]
    fn time_window_mistakes_are_located() {
        let err = check("[[time_window]]\nname = \"w\"\ntimes = [\"08:00-20:00\", \"8-20\"]\n")
            .unwrap_err();
        assert!(
            err.starts_with("n.toml:21:25:") && err.contains("HH:MM-HH:MM"),
            "{err}"
        );
        let tz = check("[[time_window]]\nname = \"w\"\ntimezone = \"Helsinki\"\n").unwrap_err();
        assert!(tz.contains("IANA"), "{tz}");
    }
}
