//! An in-process Kafka-protocol broker for the demo and the tests:
//! librdkafka's mock cluster, speaking the real protocol over TCP on
//! 127.0.0.1.
//!
//! The cluster lives inside a producer handle created with
//! `test.mock.num.brokers`; that producer is also how the demo and tests
//! produce events. What needs the raw mock handle, which rdkafka keeps
//! private, goes through `rdkafka-sys`: creating topics with a chosen
//! partition count, setting the group's initial rebalance delay to 0 (a
//! first join otherwise takes ~3 s), and taking the broker down and up
//! again (the fault tests).

use std::ffi::{CStr, CString};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka_sys as rdsys;

/// Errors starting or using the mock broker.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// librdkafka refused.
    #[error("kafka mock cluster: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The mock cluster could not be reached through the producer.
    #[error("kafka mock cluster: {0}")]
    Mock(String),
}

/// A running mock cluster and a producer connected to it.
pub struct MockBroker {
    producer: ThreadedProducer<DefaultProducerContext>,
    bootstrap: String,
}

impl MockBroker {
    /// Starts a one-broker cluster on 127.0.0.1 (a free port).
    pub fn start() -> Result<Self, MockError> {
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("test.mock.num.brokers", "1")
            .set("linger.ms", "5")
            .set("message.max.bytes", "20000000")
            .set("queue.buffering.max.messages", "1000000")
            .set("queue.buffering.max.kbytes", "1048576")
            .set("log_level", "3")
            .create()?;
        let raw = Self::raw(&producer)?;
        // SAFETY: `raw` is the live mock cluster owned by `producer`, which
        // outlives this call; the returned string is owned by the cluster.
        let bootstrap = unsafe {
            rdsys::rd_kafka_mock_group_initial_rebalance_delay_ms(raw, 0);
            CStr::from_ptr(rdsys::rd_kafka_mock_cluster_bootstraps(raw))
                .to_string_lossy()
                .into_owned()
        };
        Ok(Self {
            producer,
            bootstrap,
        })
    }

    fn raw(
        producer: &ThreadedProducer<DefaultProducerContext>,
    ) -> Result<*mut rdsys::rd_kafka_mock_cluster_t, MockError> {
        // SAFETY: the client handle is valid for the producer's lifetime.
        let raw = unsafe { rdsys::rd_kafka_handle_mock_cluster(producer.client().native_ptr()) };
        if raw.is_null() {
            return Err(MockError::Mock("the producer has no mock cluster".into()));
        }
        Ok(raw)
    }

    /// `host:port` of the broker, for `kafka.brokers`.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), MockError> {
        let raw = Self::raw(&self.producer)?;
        let name =
            CString::new(topic).map_err(|_| MockError::Mock("topic name has a NUL".into()))?;
        // SAFETY: `raw` is live (owned by self.producer); `name` outlives the call.
        let err = unsafe { rdsys::rd_kafka_mock_topic_create(raw, name.as_ptr(), partitions, 1) };
        if err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Err(MockError::Mock(format!(
                "cannot create topic {topic}: {err:?}"
            )));
        }
        Ok(())
    }

    /// Takes the broker down: its connections are closed and new ones
    /// refused until [`MockBroker::up`]. What it stored stays, committed
    /// offsets and group included. The producer here cannot reach it
    /// either: what is sent meanwhile waits in the producer's queue.
    pub fn down(&self) -> Result<(), MockError> {
        self.set_broker(true)
    }

    /// Lets the broker accept connections again after [`MockBroker::down`].
    pub fn up(&self) -> Result<(), MockError> {
        self.set_broker(false)
    }

    fn set_broker(&self, down: bool) -> Result<(), MockError> {
        let raw = Self::raw(&self.producer)?;
        // -1: every broker of the cluster (there is one).
        // SAFETY: `raw` is live (owned by self.producer).
        let err = unsafe {
            if down {
                rdsys::rd_kafka_mock_broker_set_down(raw, -1)
            } else {
                rdsys::rd_kafka_mock_broker_set_up(raw, -1)
            }
        };
        if err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            let what = if down { "down" } else { "up" };
            return Err(MockError::Mock(format!(
                "cannot take the broker {what}: {err:?}"
            )));
        }
        Ok(())
    }

    /// Queues one message; `partition` None lets the key choose.
    pub fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: &[u8],
        payload: &[u8],
    ) -> Result<(), MockError> {
        let mut record = BaseRecord::to(topic).key(key).payload(payload);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        Ok(super::send_waiting(&self.producer, record)?)
    }

    /// [`MockBroker::send`] with the message's Kafka timestamp (epoch
    /// milliseconds), as a producer that stamps events with their time.
    pub fn send_at(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: &[u8],
        payload: &[u8],
        timestamp_ms: i64,
    ) -> Result<(), MockError> {
        let mut record = BaseRecord::to(topic)
            .key(key)
            .payload(payload)
            .timestamp(timestamp_ms);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        Ok(super::send_waiting(&self.producer, record)?)
    }

    /// Waits until every queued message is acknowledged.
    pub fn flush(&self) -> Result<(), MockError> {
        self.producer.flush(Duration::from_secs(30))?;
        Ok(())
    }
}
