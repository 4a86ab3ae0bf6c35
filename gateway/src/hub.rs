//! Live manager browser sessions on this node, and the calls that can be told about them.
//!
//! A manager may have several tabs open; a ring goes to all of them. Sends never block:
//! each session has a bounded queue and a session that cannot keep up misses the message
//! (counted) rather than stalling a call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use schemas::ws::ServerMessage;
use tokio::sync::mpsc;

/// Messages queued per browser session before new ones are dropped.
pub const SESSION_QUEUE_LEN: usize = 64;

/// One browser session: its id and its outgoing queue.
type Session = (u64, mpsc::Sender<ServerMessage>);

#[derive(Default)]
pub struct ManagerHub {
    /// Sessions by manager id.
    sessions: Mutex<HashMap<String, Vec<Session>>>,
    next_session_id: AtomicU64,
    dropped_messages: AtomicU64,
}

impl ManagerHub {
    /// Adds a session; returns its id and the queue its socket task drains.
    pub fn register(&self, manager_id: &str) -> (u64, mpsc::Receiver<ServerMessage>) {
        let id = self.next_session_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(SESSION_QUEUE_LEN);
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions
            .entry(manager_id.to_string())
            .or_default()
            .push((id, tx));
        (id, rx)
    }

    /// Removes a session; returns how many sessions the manager still has on this node.
    pub fn unregister(&self, manager_id: &str, session_id: u64) -> usize {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let remaining = match sessions.get_mut(manager_id) {
            Some(list) => {
                list.retain(|(id, _)| *id != session_id);
                list.len()
            }
            None => 0,
        };
        if remaining == 0 {
            sessions.remove(manager_id);
        }
        remaining
    }

    pub fn session_count(&self, manager_id: &str) -> usize {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.get(manager_id).map_or(0, Vec::len)
    }

    /// Queues `msg` on every session of the manager; returns how many took it.
    pub fn send(&self, manager_id: &str, msg: &ServerMessage) -> usize {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let Some(list) = sessions.get(manager_id) else {
            return 0;
        };
        let mut delivered = 0;
        for (_, tx) in list {
            if tx.try_send(msg.clone()).is_ok() {
                delivered += 1;
            } else {
                self.dropped_messages.fetch_add(1, Ordering::Relaxed);
            }
        }
        delivered
    }

    pub fn dropped_messages(&self) -> u64 {
        self.dropped_messages.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::ws::Presence;

    fn msg() -> ServerMessage {
        ServerMessage::Presence {
            presence: Presence::Online,
            do_not_disturb: false,
        }
    }

    #[test]
    fn every_tab_gets_the_message_and_a_full_queue_drops() {
        let hub = ManagerHub::default();
        let (a, mut rx_a) = hub.register("m1");
        let (_b, mut rx_b) = hub.register("m1");
        assert_eq!(hub.send("m1", &msg()), 2);
        assert_eq!(rx_a.try_recv().unwrap(), msg());
        assert_eq!(rx_b.try_recv().unwrap(), msg());
        assert_eq!(hub.send("nobody", &msg()), 0);
        assert_eq!(hub.unregister("m1", a), 1);
        for _ in 0..SESSION_QUEUE_LEN {
            assert_eq!(hub.send("m1", &msg()), 1);
        }
        assert_eq!(hub.send("m1", &msg()), 0);
        assert_eq!(hub.dropped_messages(), 1);
    }
}
