//! Transaction matching keys: RFC 3261 §17.1.3 (client) and §17.2.3 (server), with the
//! RFC 2543 fallback for requests whose branch lacks the `z9hG4bK` magic cookie, and the CANCEL
//! → INVITE mapping of §9.2.

use std::fmt;
use std::sync::Arc;

use rsip::prelude::*;

use super::TransactionError;

/// The RFC 3261 §8.1.1.7 magic cookie that marks a branch as globally unique.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Identifies one transaction. Cheap to clone (one `Arc`), hashable, comparable.
///
/// Client and server keys never compare equal, so one map can hold both kinds.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TransactionKey(Arc<KeyInner>);

/// Which side of the transaction a key identifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// §17.1: we sent the request.
    Client,
    /// §17.2: we received the request.
    Server,
}

#[derive(Debug, PartialEq, Eq, Hash)]
enum KeyInner {
    /// §17.1.3: branch of the top Via + CSeq method.
    Client { branch: String, method: String },
    /// §17.2.3: branch + sent-by of the top Via + method (ACK folded into INVITE).
    Server {
        branch: String,
        sent_by: String,
        method: String,
    },
    /// §17.2.3, last paragraphs: pre-RFC 3261 peers (no magic cookie). Matching uses the
    /// Request-URI, To tag, From tag, Call-ID, CSeq number and top Via. The To tag is left out
    /// for INVITE/ACK because the ACK carries the tag of our *response*, which the INVITE did not
    /// have; the server INVITE transaction still checks the ACK against its response.
    Legacy {
        request_uri: String,
        to_tag: Option<String>,
        from_tag: Option<String>,
        call_id: String,
        cseq: u32,
        top_via: String,
        method: String,
    },
}

fn header_err(header: &'static str, err: impl fmt::Display) -> TransactionError {
    TransactionError::InvalidHeader {
        header,
        reason: err.to_string(),
    }
}

/// The parts of the top Via that matching needs.
struct TopVia {
    branch: Option<String>,
    /// Lower-cased host[:port]: hosts compare case-insensitively (§19.1.4).
    sent_by: String,
}

/// Top Via through rsip's typed header, falling back to a plain split of the raw value when
/// rsip cannot type it (it rejects IPv6 sent-by, see notes/rsip.md), so IPv6 carriers still
/// match. Missing or unparseable is an error, never a panic.
fn top_via(headers: &impl HeadersExt) -> Result<TopVia, TransactionError> {
    let via = headers
        .via_header()
        .map_err(|_| TransactionError::MissingHeader { header: "Via" })?;
    match via.typed() {
        Ok(typed) => Ok(TopVia {
            branch: typed
                .branch()
                .map(|b| b.to_string())
                .filter(|b| !b.is_empty()),
            sent_by: typed.uri.host_with_port.to_string().to_ascii_lowercase(),
        }),
        Err(e) => raw_top_via(via.value()).ok_or_else(|| header_err("Via", e)),
    }
}

/// `SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK..., <more values>` → branch + sent-by.
fn raw_top_via(value: &str) -> Option<TopVia> {
    let top = value.split(',').next()?.trim();
    let mut parts = top.split(';');
    let (protocol, sent_by) = parts.next()?.trim().split_once(char::is_whitespace)?;
    if !protocol.to_ascii_uppercase().starts_with("SIP/2.0/") {
        return None;
    }
    let sent_by = sent_by.trim();
    if sent_by.is_empty() {
        return None;
    }
    let branch = parts.find_map(|p| {
        let (name, v) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("branch")
            .then(|| v.trim().to_string())
            .filter(|b| !b.is_empty())
    });
    Some(TopVia {
        branch,
        sent_by: sent_by.to_ascii_lowercase(),
    })
}

fn cseq(headers: &impl HeadersExt) -> Result<rsip::typed::CSeq, TransactionError> {
    let cseq = headers
        .cseq_header()
        .map_err(|_| TransactionError::MissingHeader { header: "CSeq" })?;
    cseq.typed().map_err(|e| header_err("CSeq", e))
}

/// The branch of the top Via of a message, if any (for logs and for the TU).
pub fn top_branch(headers: &impl HeadersExt) -> Option<String> {
    top_via(headers).ok().and_then(|v| v.branch)
}

/// Method used for server matching: an ACK belongs to the INVITE transaction (§17.2.3).
fn server_method(method: rsip::Method) -> String {
    match method {
        rsip::Method::Ack => rsip::Method::Invite.to_string(),
        other => other.to_string(),
    }
}

impl TransactionKey {
    /// Server key for an incoming request (§17.2.3). An ACK yields the key of the INVITE
    /// transaction it acknowledges; a CANCEL yields its own key (see
    /// [`TransactionKey::invite_for_cancel`] for the transaction it targets).
    pub fn server_from_request(req: &rsip::Request) -> Result<Self, TransactionError> {
        let via = top_via(req)?;
        match via.branch {
            Some(branch) if branch.starts_with(MAGIC_COOKIE) => {
                Ok(Self(Arc::new(KeyInner::Server {
                    branch,
                    sent_by: via.sent_by,
                    method: server_method(req.method),
                })))
            }
            _ => Self::legacy(req, server_method(req.method)),
        }
    }

    /// The server key of the INVITE transaction a CANCEL targets (§9.2): same branch and
    /// sent-by with method INVITE, or for RFC 2543 peers the same Request-URI, From tag,
    /// Call-ID, CSeq number and top Via.
    pub fn invite_for_cancel(cancel: &rsip::Request) -> Result<Self, TransactionError> {
        if cancel.method != rsip::Method::Cancel {
            return Err(TransactionError::MethodMismatch {
                expected: "CANCEL",
                found: cancel.method.to_string(),
            });
        }
        let via = top_via(cancel)?;
        match via.branch {
            Some(branch) if branch.starts_with(MAGIC_COOKIE) => {
                Ok(Self(Arc::new(KeyInner::Server {
                    branch,
                    sent_by: via.sent_by,
                    method: rsip::Method::Invite.to_string(),
                })))
            }
            _ => Self::legacy(cancel, rsip::Method::Invite.to_string()),
        }
    }

    /// Client key of a request we send (§17.1.3): top Via branch + CSeq method.
    pub fn client_from_request(req: &rsip::Request) -> Result<Self, TransactionError> {
        let via = top_via(req)?;
        let branch = via.branch.ok_or(TransactionError::MissingBranch)?;
        let cseq = cseq(req)?;
        Ok(Self(Arc::new(KeyInner::Client {
            branch,
            method: cseq.method.to_string(),
        })))
    }

    /// Client key of a response we receive (§17.1.3): top Via branch + CSeq method. The
    /// method matters because a CANCEL shares its INVITE's branch.
    pub fn client_from_response(resp: &rsip::Response) -> Result<Self, TransactionError> {
        let via = top_via(resp)?;
        let branch = via.branch.ok_or(TransactionError::MissingBranch)?;
        let cseq = cseq(resp)?;
        Ok(Self(Arc::new(KeyInner::Client {
            branch,
            method: cseq.method.to_string(),
        })))
    }

    fn legacy(req: &rsip::Request, method: String) -> Result<Self, TransactionError> {
        let invite_class = method == rsip::Method::Invite.to_string();
        let to_tag = if invite_class {
            None
        } else {
            let to = req
                .to_header()
                .map_err(|_| TransactionError::MissingHeader { header: "To" })?;
            to.typed()
                .map_err(|e| header_err("To", e))?
                .tag()
                .map(|t| t.to_string())
        };
        let from = req
            .from_header()
            .map_err(|_| TransactionError::MissingHeader { header: "From" })?;
        let from_tag = from
            .typed()
            .map_err(|e| header_err("From", e))?
            .tag()
            .map(|t| t.to_string());
        let call_id = req
            .call_id_header()
            .map_err(|_| TransactionError::MissingHeader { header: "Call-ID" })?
            .value()
            .trim()
            .to_string();
        let top_via = req
            .via_header()
            .map_err(|_| TransactionError::MissingHeader { header: "Via" })?
            .value()
            .trim()
            .to_string();
        Ok(Self(Arc::new(KeyInner::Legacy {
            request_uri: req.uri.to_string(),
            to_tag,
            from_tag,
            call_id,
            cseq: cseq(req)?.seq,
            top_via,
            method,
        })))
    }

    /// Whether this key identifies a client or a server transaction.
    pub fn role(&self) -> Role {
        match &*self.0 {
            KeyInner::Client { .. } => Role::Client,
            KeyInner::Server { .. } | KeyInner::Legacy { .. } => Role::Server,
        }
    }

    /// The method of the transaction (INVITE for an ACK's server key).
    pub fn method(&self) -> &str {
        match &*self.0 {
            KeyInner::Client { method, .. }
            | KeyInner::Server { method, .. }
            | KeyInner::Legacy { method, .. } => method,
        }
    }

    /// The branch, for RFC 3261 keys; `None` for RFC 2543 fallback keys.
    pub fn branch(&self) -> Option<&str> {
        match &*self.0 {
            KeyInner::Client { branch, .. } | KeyInner::Server { branch, .. } => Some(branch),
            KeyInner::Legacy { .. } => None,
        }
    }

    /// True for an RFC 2543 fallback key (no magic cookie in the branch).
    pub fn is_legacy(&self) -> bool {
        matches!(&*self.0, KeyInner::Legacy { .. })
    }
}

impl fmt::Debug for TransactionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for TransactionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            KeyInner::Client { branch, method } => write!(f, "client:{method}:{branch}"),
            KeyInner::Server {
                branch,
                sent_by,
                method,
            } => write!(f, "server:{method}:{branch}@{sent_by}"),
            KeyInner::Legacy {
                call_id,
                cseq,
                method,
                ..
            } => write!(f, "server-2543:{method}:{call_id}:{cseq}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{req, resp};
    use super::*;

    const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP pc33.example.com:5060;branch=z9hG4bK776asdhds\r\n\
        Max-Forwards: 70\r\n\
        To: Bob <sip:bob@example.com>\r\n\
        From: Alice <sip:alice@example.com>;tag=1928301774\r\n\
        Call-ID: a84b4c76e66710@pc33.example.com\r\n\
        CSeq: 314159 INVITE\r\n\
        Content-Length: 0\r\n\r\n";

    fn with(text: &str, from: &str, to: &str) -> String {
        text.replace(from, to)
    }

    #[test]
    fn ack_for_non_2xx_matches_the_invite_server_key() {
        let invite = req(INVITE);
        let ack = req(&with(
            &with(INVITE, "INVITE sip:", "ACK sip:"),
            "314159 INVITE",
            "314159 ACK",
        ));
        let k1 = TransactionKey::server_from_request(&invite).expect("key");
        let k2 = TransactionKey::server_from_request(&ack).expect("key");
        assert_eq!(k1, k2);
        assert_eq!(k2.method(), "INVITE");
        assert_eq!(k1.role(), Role::Server);
    }

    #[test]
    fn cancel_has_its_own_key_and_targets_the_invite() {
        let invite = req(INVITE);
        let cancel = req(&with(
            &with(INVITE, "INVITE sip:", "CANCEL sip:"),
            "314159 INVITE",
            "314159 CANCEL",
        ));
        let invite_key = TransactionKey::server_from_request(&invite).expect("key");
        let cancel_key = TransactionKey::server_from_request(&cancel).expect("key");
        assert_ne!(invite_key, cancel_key);
        assert_eq!(cancel_key.method(), "CANCEL");
        assert_eq!(
            TransactionKey::invite_for_cancel(&cancel).expect("key"),
            invite_key
        );
        assert!(TransactionKey::invite_for_cancel(&invite).is_err());
    }

    #[test]
    fn server_key_depends_on_sent_by_and_branch() {
        let a = TransactionKey::server_from_request(&req(INVITE)).expect("key");
        let other_host = req(&with(
            INVITE,
            "pc33.example.com:5060",
            "pc34.example.com:5060",
        ));
        let b = TransactionKey::server_from_request(&other_host).expect("key");
        assert_ne!(
            a, b,
            "same branch from another sent-by is another transaction"
        );
        let upper = req(&with(
            INVITE,
            "pc33.example.com:5060",
            "PC33.Example.COM:5060",
        ));
        let c = TransactionKey::server_from_request(&upper).expect("key");
        assert_eq!(a, c, "hosts compare case-insensitively");
        let other_branch = req(&with(INVITE, "z9hG4bK776asdhds", "z9hG4bK776asdhdt"));
        let d = TransactionKey::server_from_request(&other_branch).expect("key");
        assert_ne!(a, d);
    }

    #[test]
    fn client_keys_from_request_and_response_agree() {
        let invite = req(INVITE);
        let ok = resp(
            "SIP/2.0 200 OK\r\n\
             Via: SIP/2.0/UDP pc33.example.com:5060;branch=z9hG4bK776asdhds\r\n\
             To: Bob <sip:bob@example.com>;tag=a6c85cf\r\n\
             From: Alice <sip:alice@example.com>;tag=1928301774\r\n\
             Call-ID: a84b4c76e66710@pc33.example.com\r\n\
             CSeq: 314159 INVITE\r\n\
             Content-Length: 0\r\n\r\n",
        );
        let k1 = TransactionKey::client_from_request(&invite).expect("key");
        let k2 = TransactionKey::client_from_response(&ok).expect("key");
        assert_eq!(k1, k2);
        assert_eq!(k1.role(), Role::Client);
        assert_eq!(k1.branch(), Some("z9hG4bK776asdhds"));
        // A client key never equals the server key of the same request.
        assert_ne!(
            k1,
            TransactionKey::server_from_request(&invite).expect("key")
        );
        // The CANCEL response shares the branch but not the method.
        let cancel_ok = resp(
            "SIP/2.0 200 OK\r\n\
             Via: SIP/2.0/UDP pc33.example.com:5060;branch=z9hG4bK776asdhds\r\n\
             To: Bob <sip:bob@example.com>;tag=a6c85cf\r\n\
             From: Alice <sip:alice@example.com>;tag=1928301774\r\n\
             Call-ID: a84b4c76e66710@pc33.example.com\r\n\
             CSeq: 314159 CANCEL\r\n\
             Content-Length: 0\r\n\r\n",
        );
        assert_ne!(
            TransactionKey::client_from_response(&cancel_ok).expect("key"),
            k1
        );
    }

    #[test]
    fn rfc2543_fallback_matches_ack_and_cancel() {
        let legacy = with(INVITE, "branch=z9hG4bK776asdhds", "branch=1234");
        let invite = req(&legacy);
        let key = TransactionKey::server_from_request(&invite).expect("key");
        assert!(key.is_legacy());
        assert_eq!(key.branch(), None);
        // Retransmission: same key.
        assert_eq!(
            TransactionKey::server_from_request(&req(&legacy)).expect("key"),
            key
        );
        // ACK carries the To tag of our response; it still matches.
        let ack = with(
            &with(
                &with(&legacy, "INVITE sip:", "ACK sip:"),
                "314159 INVITE",
                "314159 ACK",
            ),
            "To: Bob <sip:bob@example.com>",
            "To: Bob <sip:bob@example.com>;tag=xyz",
        );
        assert_eq!(
            TransactionKey::server_from_request(&req(&ack)).expect("key"),
            key
        );
        // CANCEL targets the INVITE, but is a transaction of its own.
        let cancel = with(
            &with(&legacy, "INVITE sip:", "CANCEL sip:"),
            "314159 INVITE",
            "314159 CANCEL",
        );
        let cancel = req(&cancel);
        assert_ne!(
            TransactionKey::server_from_request(&cancel).expect("key"),
            key
        );
        assert_eq!(
            TransactionKey::invite_for_cancel(&cancel).expect("key"),
            key
        );
        // A different CSeq number is a different transaction.
        let other = req(&with(&legacy, "314159 INVITE", "314160 INVITE"));
        assert_ne!(
            TransactionKey::server_from_request(&other).expect("key"),
            key
        );
        // No branch at all also falls back.
        let none = req(&with(INVITE, ";branch=z9hG4bK776asdhds", ""));
        assert!(TransactionKey::server_from_request(&none)
            .expect("key")
            .is_legacy());
    }

    #[test]
    fn missing_headers_are_errors_not_panics() {
        let no_via = req(&with(
            INVITE,
            "Via: SIP/2.0/UDP pc33.example.com:5060;branch=z9hG4bK776asdhds\r\n",
            "",
        ));
        assert!(matches!(
            TransactionKey::server_from_request(&no_via),
            Err(TransactionError::MissingHeader { header: "Via" })
        ));
        assert!(TransactionKey::client_from_request(&no_via).is_err());
        let no_branch = req(&with(INVITE, ";branch=z9hG4bK776asdhds", ""));
        assert!(matches!(
            TransactionKey::client_from_request(&no_branch),
            Err(TransactionError::MissingBranch)
        ));
        let bad_cseq = req(&with(INVITE, "CSeq: 314159 INVITE", "CSeq: x INVITE"));
        assert!(TransactionKey::client_from_request(&bad_cseq).is_err());
    }

    #[test]
    fn ipv6_sent_by_falls_back_to_the_raw_via() {
        let v6 = with(
            INVITE,
            "pc33.example.com:5060;branch",
            "[2001:DB8::10]:5060;branch",
        );
        let invite = req(&v6);
        let key = TransactionKey::server_from_request(&invite).expect("key");
        assert!(!key.is_legacy());
        assert_eq!(key.branch(), Some("z9hG4bK776asdhds"));
        assert!(key.to_string().contains("[2001:db8::10]:5060"));
        let ack = req(&with(
            &with(&v6, "INVITE sip:", "ACK sip:"),
            "314159 INVITE",
            "314159 ACK",
        ));
        assert_eq!(TransactionKey::server_from_request(&ack).expect("key"), key);
        assert_eq!(
            TransactionKey::client_from_request(&invite)
                .expect("key")
                .branch(),
            Some("z9hG4bK776asdhds")
        );
        let garbage = req(&with(
            INVITE,
            "SIP/2.0/UDP pc33.example.com:5060;branch=z9hG4bK776asdhds",
            "garbage",
        ));
        assert!(matches!(
            TransactionKey::server_from_request(&garbage),
            Err(TransactionError::InvalidHeader { header: "Via", .. })
        ));
    }

    #[test]
    fn keys_are_cheap_to_clone_and_hash() {
        use std::collections::HashMap;
        let key = TransactionKey::server_from_request(&req(INVITE)).expect("key");
        let mut map = HashMap::new();
        map.insert(key.clone(), 1);
        assert_eq!(map.get(&key), Some(&1));
        assert!(key.to_string().contains("z9hG4bK776asdhds"));
    }
}
