//! kpiwatch: business-KPI anomaly detection for event streams.
//!
//! # Layout
//!
//! The algorithms live in the [`detectors`] crate (pure, no I/O). This crate
//! is everything around them:
//!
//! - [`score`] — `kpiwatch score`: a `timestamp,value` CSV through the
//!   default [`detectors::DetectorSet`], causally, to
//!   `timestamp,value,anomaly_score`.
//! - [`config`] — TOML configuration: raw serde structs, then validation
//!   into runtime types, with file:line:column errors.
//! - [`timefmt`] — the timestamp formats KPI files use.
//! - [`backtest`] — `kpiwatch backtest`: [`replay`]'s event loop over past
//!   events, its alerts scored against labelled incidents.
//! - [`warm`] — `kpiwatch warm`: [`replay`]'s loop over history, saved as
//!   the snapshot `run` resumes from, with where the history ends (the
//!   consumer starts there: [`kafka::start`]).
//!
//! `main.rs` is the CLI edge: argument parsing (clap), `anyhow` error
//! reporting, and the exit codes of DESIGN.md (0 ok, 1 user error, 2 usage).
//! The streaming pipeline: [`kafka`] source, [`pipeline`] (event-time
//! buckets, detection, alert lifecycle), [`notify`] (subscriptions, email,
//! webhooks, outbox, silences), wired together by [`service`], which
//! serves [`http`]: metrics, health and the API (bearer tokens, a Host
//! check on loopback, optional TLS).
//! [`feedback`] keeps verdicts on alerts (API, signed email links) and
//! exports them as labels; [`tune`] proposes `false_alarms` budgets from
//! labels and a [`backtest::sweep`].

pub mod alert;
pub mod backtest;
pub mod calendar;
pub mod clock;
pub mod config;
pub mod demo;
pub mod durable;
pub mod feedback;
pub mod http;
pub mod kafka;
pub mod notify;
pub mod pipeline;
pub mod reload;
pub mod replay;
pub mod score;
pub mod service;
pub mod simulate;
pub mod telemetry;
pub mod timefmt;
pub mod tune;
pub mod warm;
