//! Forwarding task events to containerd (`containerd.services.events.ttrpc.v1.Events/Forward`).
//!
//! containerd-shim's `RemotePublisher` names an event's type from its protobuf descriptor, and
//! building that descriptor costs a shim about 350 KiB of heap for the rest of its life (the
//! file descriptor of `events/task.proto` and its imports). The type URLs of the nine task
//! events are fixed, so this publisher writes them out and never touches a descriptor. One
//! forwarder sends the events in order; a failed forward is retried (reconnecting when the
//! connection closed) before the next event goes, so containerd never sees an exit after its
//! delete.

use std::time::{Duration, SystemTime};

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{MessageDyn, MessageField};
use containerd_shim::protos::shim::event::Envelope;
use containerd_shim::protos::shim::events::ForwardRequest;
use containerd_shim::protos::shim_async::{Client, EventsClient};
use containerd_shim::protos::topics;
use containerd_shim::protos::ttrpc;

use crate::convert;

/// Attempts per event before it is dropped (with an error in the log).
const ATTEMPTS: u64 = 5;
/// Time limit of one Forward call.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// The protobuf type name of the event published on `topic` (what containerd's typeurl
/// registry decodes it by).
pub fn type_url(topic: &str) -> Option<&'static str> {
    Some(match topic {
        topics::TASK_CREATE_EVENT_TOPIC => "containerd.events.TaskCreate",
        topics::TASK_START_EVENT_TOPIC => "containerd.events.TaskStart",
        topics::TASK_EXIT_EVENT_TOPIC => "containerd.events.TaskExit",
        topics::TASK_DELETE_EVENT_TOPIC => "containerd.events.TaskDelete",
        topics::TASK_EXEC_ADDED_EVENT_TOPIC => "containerd.events.TaskExecAdded",
        topics::TASK_EXEC_STARTED_EVENT_TOPIC => "containerd.events.TaskExecStarted",
        topics::TASK_PAUSED_EVENT_TOPIC => "containerd.events.TaskPaused",
        topics::TASK_RESUMED_EVENT_TOPIC => "containerd.events.TaskResumed",
        topics::TASK_OOM_EVENT_TOPIC => "containerd.events.TaskOOM",
        _ => return None,
    })
}

/// The events client of one shim: containerd's ttrpc address and the namespace of its events.
pub struct Publisher {
    address: String,
    namespace: String,
    client: Option<EventsClient>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("address", &self.address)
            .field("namespace", &self.namespace)
            .field("connected", &self.client.is_some())
            .finish()
    }
}

impl Publisher {
    /// A publisher to containerd at `address` (its TTRPC address) for `namespace`; it
    /// connects on first use.
    pub fn new(address: &str, namespace: &str) -> Self {
        Publisher {
            address: address.to_string(),
            namespace: namespace.to_string(),
            client: None,
        }
    }

    /// The envelope of `msg` published on `topic`.
    fn envelope(&self, topic: &str, msg: &dyn MessageDyn) -> Result<Envelope, String> {
        let type_url = type_url(topic).ok_or_else(|| format!("no event type for {topic}"))?;
        let value = msg
            .write_to_bytes_dyn()
            .map_err(|e| format!("encode {type_url}: {e}"))?;
        Ok(Envelope {
            timestamp: MessageField::some(convert::ts(SystemTime::now())),
            namespace: self.namespace.clone(),
            topic: topic.to_string(),
            event: MessageField::some(Any {
                type_url: type_url.to_string(),
                value,
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    async fn connect(&mut self) -> Result<&EventsClient, String> {
        if self.client.is_none() {
            let address = self.address.clone();
            let fd = tokio::task::spawn_blocking(move || containerd_shim::util::connect(address))
                .await
                .map_err(|e| format!("connect task: {e}"))?
                .map_err(|e| format!("connect to {}: {e}", self.address))?;
            // SAFETY: `fd` is the connected unix socket `connect` just returned, owned by
            // nobody else; the client takes it over.
            let client = unsafe { Client::from_raw_unix_socket_fd(fd) };
            self.client = Some(EventsClient::new(client));
        }
        Ok(self.client.as_ref().expect("set above"))
    }

    /// Forward `msg` on `topic`, retrying; an event that cannot be sent is logged and dropped.
    pub async fn publish(&mut self, topic: &'static str, msg: Box<dyn MessageDyn>) {
        let req = match self.envelope(topic, msg.as_ref()) {
            Ok(envelope) => ForwardRequest {
                envelope: MessageField::some(envelope),
                ..Default::default()
            },
            Err(e) => {
                tracing::error!(topic, error = %e, "event not published");
                return;
            }
        };
        for attempt in 1..=ATTEMPTS {
            let ctx = ttrpc::context::with_timeout(FORWARD_TIMEOUT.as_nanos() as i64);
            let result = match self.connect().await {
                Ok(client) => client.forward(ctx, &req).await.map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            match result {
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(topic, attempt, error = %e, "forward event");
                    // Reconnect on the next attempt, whatever went wrong with this one.
                    self.client = None;
                    tokio::time::sleep(Duration::from_secs(attempt)).await;
                }
            }
        }
        tracing::error!(topic, "event dropped after {ATTEMPTS} attempts");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexcage_runtime::Event;

    #[test]
    fn every_event_has_the_type_url_of_its_message() {
        let now = SystemTime::now();
        let id = || "c".to_string();
        let events = [
            Event::Start { id: id(), pid: 1 },
            Event::Exit {
                id: id(),
                exec_id: String::new(),
                pid: 1,
                status: 0,
                at: now,
            },
            Event::Delete {
                id: id(),
                pid: 1,
                status: 0,
                at: now,
            },
            Event::ExecAdded {
                id: id(),
                exec_id: "e".into(),
            },
            Event::ExecStarted {
                id: id(),
                exec_id: "e".into(),
                pid: 2,
            },
            Event::Paused { id: id() },
            Event::Resumed { id: id() },
            Event::Oom { id: id() },
        ];
        for e in events {
            let (topic, msg) = convert::event(e);
            assert_eq!(
                type_url(topic),
                Some(msg.descriptor_dyn().full_name()),
                "{topic}"
            );
        }
        assert_eq!(
            type_url(topics::TASK_CREATE_EVENT_TOPIC),
            Some("containerd.events.TaskCreate")
        );
        assert_eq!(type_url("/tasks/unknown"), None);
    }

    #[test]
    fn the_envelope_carries_topic_namespace_and_encoded_event() {
        let p = Publisher::new("/nonexistent", "ns1");
        let (topic, msg) = convert::event(Event::Oom { id: "c1".into() });
        let env = p.envelope(topic, msg.as_ref()).unwrap();
        assert_eq!(env.topic, "/tasks/oom");
        assert_eq!(env.namespace, "ns1");
        assert_eq!(env.event.type_url, "containerd.events.TaskOOM");
        assert_eq!(env.event.value, msg.write_to_bytes_dyn().unwrap());
        assert!(env.timestamp.is_some());
    }
}
