//! The first half of recording an event, on its own: parsing, the event
//! time, and which KPI series it counts in with what, into an owned
//! [`ReadBatch`]. It needs only the topics' plans ([`Reader`], cheap to
//! clone), not the pipeline's state, so the service runs it on the thread
//! that receives from Kafka while the pipeline records and judges the
//! previous batch on the other core. [`super::Pipeline::apply`] is the
//! second half; [`super::Pipeline::record`] does both.

use std::ops::Range;
use std::sync::Arc;

use std::fmt::Write as _;

use crate::telemetry::{BadValue, RejectReason};

use super::extract::Field;
use super::plan::{Routed, TopicPlan};
use super::window::Contribution;
use super::MAX_EVENT_BYTES;

/// The topics' plans, shared with the pipeline that compiled them.
#[derive(Debug, Clone)]
pub struct Reader {
    pub(super) plans: Arc<[TopicPlan]>,
    pub(super) names: Arc<[String]>,
}

/// Events read by [`Reader::read`], in order, with their payloads (for
/// dead letters) in one buffer and their series keys and items in another:
/// a batch of events costs a few allocations that are reused, not several
/// per event.
#[derive(Debug, Default)]
pub struct ReadBatch {
    payloads: Vec<u8>,
    text: String,
    pub(super) events: Vec<ReadEvent>,
    pub(super) hits: Vec<Hit>,
    /// The fields of the event being read, kept for the allocation.
    fields: Vec<Field<'static>>,
    key: String,
}

/// One event of a [`ReadBatch`].
#[derive(Debug)]
pub(super) struct ReadEvent {
    pub(super) topic: usize,
    pub(super) partition: i32,
    pub(super) offset: i64,
    payload: Range<usize>,
    /// The event time, or why the event is refused.
    pub(super) time: Result<i64, RejectReason>,
    /// Its entries in `hits`, in route order.
    pub(super) hits: Range<usize>,
}

/// A route (KPI) an event matched.
#[derive(Debug)]
pub(super) struct Hit {
    /// Index into the topic's routes.
    pub(super) route: usize,
    key: Range<usize>,
    what: HitKind,
}

impl Hit {
    /// True if the hit adds to its series: its value is not skipped.
    pub(super) fn adds(&self) -> bool {
        !matches!(self.what, HitKind::BadValue(_))
    }
}

#[derive(Debug)]
enum HitKind {
    /// The aggregated field cannot be aggregated, for this reason.
    BadValue(BadValue),
    Event,
    Value(f64),
    Item(Range<usize>),
}

impl Reader {
    /// The topic every message is of, when that is certain without the
    /// message's topic name: there is one, named literally (a name that
    /// starts with `^` is a pattern librdkafka matches to many topics).
    pub fn sole_topic(&self) -> Option<usize> {
        match &*self.names {
            [name] if !name.starts_with('^') => Some(0),
            _ => None,
        }
    }

    /// Index of the topic called `name`.
    pub fn topic(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Reads one message of topic number `topic` onto the end of `batch`.
    pub fn read(
        &self,
        topic: usize,
        partition: i32,
        offset: i64,
        payload: &[u8],
        batch: &mut ReadBatch,
    ) {
        self.read_event(topic, partition, offset, payload, batch, true);
    }

    /// [`Reader::read`], keeping the payload or not (`Pipeline::record`'s
    /// caller has it).
    pub(super) fn read_event(
        &self,
        topic: usize,
        partition: i32,
        offset: i64,
        payload: &[u8],
        batch: &mut ReadBatch,
        keep_payload: bool,
    ) {
        let start = batch.payloads.len();
        if keep_payload {
            batch.payloads.extend_from_slice(payload);
        }
        let first_hit = batch.hits.len();
        let time = self.route(topic, payload, batch);
        batch.events.push(ReadEvent {
            topic,
            partition,
            offset,
            payload: start..batch.payloads.len(),
            time,
            hits: first_hit..batch.hits.len(),
        });
    }

    fn route(
        &self,
        topic: usize,
        payload: &[u8],
        batch: &mut ReadBatch,
    ) -> Result<i64, RejectReason> {
        if payload.len() > MAX_EVENT_BYTES {
            return Err(RejectReason::TooLarge);
        }
        let plan = &self.plans[topic];
        let mut fields = super::recycle(std::mem::take(&mut batch.fields));
        let time = plan.read(payload, &mut fields);
        if time.is_ok() {
            for (route, r) in plan.routes.iter().enumerate() {
                let what = match plan.route(r, &fields, &mut batch.key) {
                    Routed::NoMatch => continue,
                    Routed::BadValue(reason) => HitKind::BadValue(reason),
                    Routed::NumberItem(n) => {
                        let start = batch.text.len();
                        let _ = write!(batch.text, "{n}");
                        HitKind::Item(start..batch.text.len())
                    }
                    Routed::Match(Contribution::Event) => HitKind::Event,
                    Routed::Match(Contribution::Value(v)) => HitKind::Value(v),
                    Routed::Match(Contribution::Item(item)) => {
                        HitKind::Item(push(&mut batch.text, item))
                    }
                };
                let key = push(&mut batch.text, &batch.key);
                batch.hits.push(Hit { route, key, what });
            }
        }
        batch.fields = super::recycle(fields);
        time
    }
}

fn push_bytes(buffer: &mut Vec<u8>, bytes: &[u8]) -> Range<usize> {
    let start = buffer.len();
    buffer.extend_from_slice(bytes);
    start..buffer.len()
}

fn push(buffer: &mut String, text: &str) -> Range<usize> {
    let start = buffer.len();
    buffer.push_str(text);
    start..buffer.len()
}

impl ReadBatch {
    /// Events in the batch.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True when no event was read into it.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Empties the batch, keeping its allocations.
    pub fn clear(&mut self) {
        self.payloads.clear();
        self.text.clear();
        self.events.clear();
        self.hits.clear();
    }

    /// Topic index, partition, offset and payload of event `i`.
    pub fn event(&self, i: usize) -> (usize, i32, i64, &[u8]) {
        let e = &self.events[i];
        (
            e.topic,
            e.partition,
            e.offset,
            &self.payloads[e.payload.clone()],
        )
    }

    /// Appends a copy of event `i` of `from` (its payload, if `from` kept
    /// it, and its hits): how the pipeline keeps an event it cannot decide
    /// on yet after `from` has gone back to the receiving thread.
    pub(super) fn copy_event(&mut self, from: &ReadBatch, i: usize) {
        let e = &from.events[i];
        let payload = push_bytes(&mut self.payloads, &from.payloads[e.payload.clone()]);
        let first_hit = self.hits.len();
        for h in &from.hits[e.hits.clone()] {
            let what = match &h.what {
                HitKind::BadValue(reason) => HitKind::BadValue(*reason),
                HitKind::Event => HitKind::Event,
                HitKind::Value(v) => HitKind::Value(*v),
                HitKind::Item(r) => HitKind::Item(push(&mut self.text, from.text(r))),
            };
            let key = push(&mut self.text, from.text(&h.key));
            self.hits.push(Hit {
                route: h.route,
                key,
                what,
            });
        }
        self.events.push(ReadEvent {
            topic: e.topic,
            partition: e.partition,
            offset: e.offset,
            payload,
            time: e.time,
            hits: first_hit..self.hits.len(),
        });
    }

    /// Removes the last event, returning its offset and payload.
    pub(super) fn pop(&mut self) -> Option<(i64, Vec<u8>)> {
        let e = self.events.pop()?;
        let payload = self.payloads[e.payload.clone()].to_vec();
        self.payloads.truncate(e.payload.start);
        if let Some(first) = self.hits.get(e.hits.start) {
            let text = match &first.what {
                HitKind::Item(r) => r.start.min(first.key.start),
                _ => first.key.start,
            };
            self.text.truncate(text);
        }
        self.hits.truncate(e.hits.start);
        Some((e.offset, payload))
    }

    fn text(&self, r: &Range<usize>) -> &str {
        &self.text[r.clone()]
    }

    /// The series key and contribution of a hit, or why its value is
    /// skipped.
    pub(super) fn hit(&self, h: &Hit) -> Result<(&str, Contribution<'_>), BadValue> {
        let c = match &h.what {
            HitKind::BadValue(reason) => return Err(*reason),
            HitKind::Event => Contribution::Event,
            HitKind::Value(v) => Contribution::Value(*v),
            HitKind::Item(r) => Contribution::Item(self.text(r)),
        };
        Ok((self.text(&h.key), c))
    }
}
