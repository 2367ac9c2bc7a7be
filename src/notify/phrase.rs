//! How an alert is put into words, the same everywhere people read it:
//! email subjects and bodies, webhook summaries (kpiwatch, Alertmanager,
//! Slack) and the demo's console lines.
//!
//! `checkouts dropped 63% (country=FI)`, `refunds rose 40%`,
//! `checkouts dropped to 0 (country=SE)`, `signups rose to 412 (expected
//! 0)`, `checkouts back to normal (country=FI)`.

use std::collections::BTreeMap;

use crate::alert::{Status, Transition};
use detectors::Direction;

/// Longest label value shown in a summary; longer ones are cut with `…`
/// (the full labels travel in their own fields).
pub const LABEL_VALUE_MAX_CHARS: usize = 40;

/// The KPI and what it did, with its labels:
/// `checkouts dropped 63% (country=FI)`.
pub fn summary(a: &Transition) -> String {
    let mut s = headline(a);
    if !a.labels.is_empty() {
        s.push_str(&format!(" ({})", labels(&a.labels, LABEL_VALUE_MAX_CHARS)));
    }
    s
}

/// The KPI and what it did, without labels: `checkouts dropped 63%`.
pub fn headline(a: &Transition) -> String {
    format!("{} {}", a.kpi, change(a))
}

/// What the KPI did: `dropped 63%`, `rose 4.5%`, `dropped to 0`,
/// `rose to 412 (expected 0)` (no percentage against an expectation of 0),
/// `has no data`, `is unusual`, `back to normal`.
pub fn change(a: &Transition) -> String {
    if a.status == Status::Resolved {
        return "back to normal".to_string();
    }
    if a.observed.is_nan() {
        return "has no data".to_string();
    }
    let down = match a.direction {
        Direction::Drop => true,
        Direction::Spike => false,
        Direction::None => match a.deviation_pct {
            Some(d) if d < 0.0 => true,
            Some(d) if d > 0.0 => false,
            _ => return "is unusual".to_string(),
        },
    };
    let verb = if down { "dropped" } else { "rose" };
    match a.deviation_pct {
        _ if down && a.observed == 0.0 => "dropped to 0".to_string(),
        Some(d) if d.is_finite() => format!("{verb} {}", percent(d.abs())),
        _ => format!(
            "{verb} to {} (expected {})",
            value(a.observed),
            value(a.expected)
        ),
    }
}

/// `country=FI, device=ios`, each value cut to `max` characters.
pub fn labels(labels: &BTreeMap<String, String>, max: usize) -> String {
    labels
        .iter()
        .map(|(k, v)| {
            if v.chars().count() > max {
                let cut: String = v.chars().take(max - 1).collect();
                format!("{k}={cut}…")
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A percentage magnitude: `63%`, `4.2%`, `1,150%`.
pub fn percent(p: f64) -> String {
    if p < 10.0 {
        format!("{}%", trim_zeros(&format!("{p:.1}")))
    } else {
        format!("{}%", thousands(p.round()))
    }
}

/// A signed percentage: `-63%`, `+4.2%`.
pub fn percent_signed(p: f64) -> String {
    let sign = if p < 0.0 { "-" } else { "+" };
    format!("{sign}{}", percent(p.abs()))
}

/// A value as people read it: 3 significant digits, thousands separated,
/// `no data` for NaN.
pub fn value(v: f64) -> String {
    if v.is_nan() {
        return "no data".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "∞" } else { "-∞" }.to_string();
    }
    let a = v.abs();
    if a == 0.0 {
        "0".to_string()
    } else if !(1e-3..1e15).contains(&a) {
        format!("{v:.2e}")
    } else if a >= 1000.0 {
        thousands(v.round())
    } else {
        let decimals = (2 - a.log10().floor() as i32).clamp(0, 5) as usize;
        trim_zeros(&format!("{v:.decimals$}"))
    }
}

/// `4.50` → `4.5`, `3.0` → `3`.
pub fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// `12345` → `12,345` (integral values only).
pub fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if v < 0.0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
