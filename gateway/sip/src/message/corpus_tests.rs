//! Regression corpus (`tests/sip-corpus/`): the RFC 4475 torture messages plus our own
//! hostile inputs, and a seeded mutation loop. Every input must parse or fail cleanly;
//! nothing may panic.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;
use rsip::message::HasHeaders;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/sip-corpus")
}

fn load(sub: &str) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let dir = corpus_dir().join(sub);
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sip") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            out.insert(name, std::fs::read(&path).unwrap());
        }
    }
    out
}

/// Valid RFC 4475 messages we answer with an error on purpose. Keep short and honest.
const VALID_BUT_REFUSED: &[(&str, &str, &str)] = &[
    // Extension methods: rsip's `Method` is a closed enum, so a request with a method it
    // does not know cannot be represented. RFC 4475 itself says an endpoint answers
    // these with 501 listing `Allow`, which is what `bad_request_response` builds.
    (
        "intmeth",
        "sip.unknown_method",
        "extension method; 501 + Allow",
    ),
    (
        "esc02",
        "sip.unknown_method",
        "RE%47IST%45R is an extension method; 501 + Allow",
    ),
];

/// RFC 4475 "invalid" messages that a tolerant element may accept, and we do, because
/// nothing we use depends on the broken part.
const INVALID_BUT_TOLERATED: &[(&str, &str)] = &[
    // §3.1.2.12: Date is never interpreted by the gateway.
    ("baddate", "Date header is not used"),
    // §3.1.2.13: `Contact: sip:u@h?Route=...` without <>; the registrar semantics are
    // ambiguous but the syntax is parseable. We do not act on URI headers.
    (
        "regbadct",
        "Contact URI headers without <> are kept as an opaque string",
    ),
    // §3.3.7: an unknown Authorization scheme is syntactically fine; the registrar
    // answers 401 (digest module), not the parser.
    (
        "regaut01",
        "unknown auth scheme is an application-level 401",
    ),
];

/// Expected error code per invalid message (documents why each one fails).
const INVALID_EXPECT: &[(&str, &str, Option<u16>)] = &[
    ("badinv01", "sip.malformed_header", None), // empty Via params: no usable Via → drop
    ("clerr", "sip.content_length_mismatch", Some(400)), // CL 9999 > datagram body
    ("ncl", "sip.bad_content_length", Some(400)), // CL -999
    ("scalar02", "sip.malformed_header", Some(400)), // CSeq >= 2^31
    ("scalarlg", "sip.malformed_header", None), // response: dropped
    ("quotbal", "sip.malformed_header", Some(400)), // unterminated quote in To
    ("ltgtruri", "sip.bad_request_uri", Some(400)), // <sip:...> as Request-URI
    ("lwsruri", "sip.bad_start_line", Some(400)), // LWS inside Request-URI
    ("lwsstart", "sip.bad_start_line", Some(400)), // double SP in request line
    ("trws", "sip.bad_start_line", Some(400)),  // trailing SP in request line
    ("escruri", "sip.bad_request_uri", Some(400)), // headers in Request-URI
    ("badaspec", "sip.malformed_header", Some(400)), // LWS inside <>
    ("baddn", "sip.malformed_header", Some(400)), // ',' in unquoted display name
    ("badvers", "sip.unsupported_version", Some(505)),
    ("mismatch01", "sip.cseq_mismatch", Some(400)),
    ("mismatch02", "sip.unknown_method", Some(501)),
    ("bigcode", "sip.bad_status_code", None),
    ("multi01", "sip.duplicate_header", Some(400)),
    ("mcl01", "sip.duplicate_header", Some(400)),
    ("insuf", "sip.missing_header", Some(400)),
    ("unkscm", "sip.unsupported_uri_scheme", Some(416)),
    ("novelsc", "sip.unsupported_uri_scheme", Some(416)),
    ("inv2543", "sip.missing_branch", Some(400)), // RFC 2543 Via without branch
];

/// parse → serialize → parse must give the same struct, and serialising again the
/// same bytes.
fn assert_fixed_point(name: &str, m: &rsip::SipMessage) {
    let once = to_bytes(m);
    let again = parse_datagram(&once, &Limits::default()).unwrap_or_else(|e| {
        panic!(
            "{name}: re-parse of our own output failed: {e}\n{}",
            String::from_utf8_lossy(&once)
        )
    });
    assert_eq!(&again, m, "{name}: struct changed on round trip");
    assert_eq!(
        to_bytes(&again),
        once,
        "{name}: bytes changed on round trip"
    );
    // rsip's own Display output must also come back to the same struct when the body
    // is UTF-8 (it is lossy otherwise, see wire.rs).
    if std::str::from_utf8(m.body()).is_ok() {
        let via_rsip = parse_datagram(m.to_string().as_bytes(), &Limits::default()).unwrap();
        assert_eq!(&via_rsip, m, "{name}: rsip Display round trip");
    }
}

/// Every accessor and the response builder on a parsed message; must not panic and,
/// for what validation guaranteed, must succeed.
fn exercise_accessors(name: &str, m: &rsip::SipMessage) {
    let h = m.headers();
    assert!(headers::call_id(h).is_ok(), "{name}");
    assert!(headers::cseq(h).is_ok(), "{name}");
    assert!(headers::top_via(h).is_ok(), "{name}");
    assert!(headers::from_tag(h).is_ok(), "{name}");
    assert!(headers::to_tag(h).is_ok(), "{name}");
    let _ = headers::max_forwards(h);
    let _ = headers::content_type(h);
    let _ = headers::contact_uri(h);
    if let rsip::SipMessage::Request(r) = m {
        let resp = build_response(r, 200, None, Some("t1"));
        let back = parse_datagram(resp.to_string().as_bytes(), &Limits::default())
            .unwrap_or_else(|e| panic!("{name}: our 200 does not parse: {e}\n{resp}"));
        assert!(headers::to_tag(back.headers()).unwrap().is_some());
        let via = headers::top_via(h).unwrap();
        let _ = response_destination(
            &via,
            "192.0.2.9:5060".parse().unwrap(),
            ResponseTransport::Unreliable,
        );
    }
}

#[test]
fn rfc4475_valid_messages() {
    let valid = load("valid");
    assert!(
        valid.len() >= 20,
        "corpus missing: {}",
        corpus_dir().display()
    );
    for (name, bytes) in &valid {
        let res = parse_datagram(bytes, &Limits::default());
        if let Some((_, code, _why)) = VALID_BUT_REFUSED.iter().find(|(n, _, _)| n == name) {
            let e = res.expect_err(name);
            assert_eq!(e.code(), *code, "{name}");
            let resp = e
                .bad_request_response()
                .unwrap_or_else(|| panic!("{name}: no answer"));
            assert_eq!(resp.status_code.code(), 501);
            assert!(resp.to_string().contains("Allow: "));
            continue;
        }
        let m = res.unwrap_or_else(|e| panic!("{name}: {e} ({})", e.code()));
        assert_fixed_point(name, &m);
        exercise_accessors(name, &m);
    }
}

#[test]
fn rfc4475_valid_specifics() {
    let valid = load("valid");
    let get = |n: &str| parse_datagram(valid.get(n).unwrap(), &Limits::default()).unwrap();
    // wsinv: folding, compact names, comma-separated Vias → 3 Vias; leading zeros.
    let m = get("wsinv");
    let vias = headers::vias(m.headers()).unwrap();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].branch(), Some("390skdjuw"));
    assert!(!is_rfc3261_branch(vias[0].branch().unwrap()));
    assert_eq!(vias[1].host, "spindle.example.com");
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
    assert_eq!(
        headers::cseq(m.headers()).unwrap(),
        CSeqValue {
            seq: 9,
            method: "INVITE".into()
        }
    );
    assert_eq!(headers::max_forwards(m.headers()).unwrap(), Some(68));
    assert_eq!(
        headers::to_tag(m.headers()).unwrap().as_deref(),
        Some("1918181833n")
    );
    assert_eq!(
        headers::from_tag(m.headers()).unwrap().as_deref(),
        Some("98asjd8")
    );
    assert_eq!(
        headers::contact_uri(m.headers()).unwrap().as_deref(),
        Some("sip:jdrosen@example.com")
    );
    assert_eq!(m.body().len(), 150);
    let unknown: Vec<_> = m
        .headers()
        .iter()
        .filter_map(|h| match h {
            rsip::Header::Other(n, v) if n == "NewFangledHeader" => Some(v.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        unknown,
        vec!["newfangled value continued newfangled value".to_string()]
    );
    // dblreq: the datagram carries a second message after Content-Length: 0 (§18.3).
    let m = get("dblreq");
    assert!(m.body().is_empty());
    assert_eq!(headers::cseq(m.headers()).unwrap().method, "REGISTER");
    // noreason / unreason: empty and UTF-8 reason phrases.
    let rsip::SipMessage::Response(r) = get("noreason") else {
        panic!()
    };
    assert_eq!(r.status_code.code(), 100);
    let rsip::SipMessage::Response(r) = get("unreason") else {
        panic!()
    };
    assert_eq!(r.status_code.code(), 200);
    // transports: five Vias with five transports, UNKNOWN kept.
    let t: Vec<_> = headers::vias(get("transports").headers())
        .unwrap()
        .into_iter()
        .map(|v| v.transport)
        .collect();
    assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
    // badbranch: a bare magic cookie is not an RFC 3261 branch.
    let b = headers::top_via(get("badbranch").headers()).unwrap();
    assert!(!is_rfc3261_branch(b.branch().unwrap()));
    assert_eq!(
        headers::max_forwards(get("zeromf").headers()).unwrap(),
        Some(0)
    );
    // semiuri: ';' inside the user part survives rsip (escaped around it).
    let rsip::SipMessage::Request(r) = get("semiuri") else {
        panic!()
    };
    assert_eq!(
        headers::request_uri_string(&r),
        "sip:user;par=u%40example.net@example.com"
    );
    assert!(to_bytes(&get("semiuri"))
        .starts_with(b"OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0\r\n"));
}

#[test]
fn rfc4475_valid_messages_through_the_stream_framer() {
    for (name, bytes) in load("valid") {
        let mut f = StreamFramer::default();
        // Three bytes at a time: exercises reassembly everywhere.
        let mut frames = Vec::new();
        for chunk in bytes.chunks(3) {
            f.push(chunk);
            while let Some(fr) = f.next_frame().unwrap_or_else(|e| panic!("{name}: {e}")) {
                frames.push(fr);
            }
        }
        let msgs: Vec<_> = frames
            .into_iter()
            .filter_map(|fr| match fr {
                Frame::Message(b) => Some(b),
                Frame::KeepAlive { .. } => None,
            })
            .collect();
        // dblreq holds two messages back to back: on a stream both are framed.
        let expect = if name == "dblreq" { 2 } else { 1 };
        assert_eq!(msgs.len(), expect, "{name}");
        for m in msgs {
            let r = parse_stream_message(&m, &Limits::default());
            if VALID_BUT_REFUSED.iter().any(|(n, _, _)| *n == name) {
                assert!(r.is_err());
            } else {
                r.unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
    }
}

#[test]
fn rfc4475_invalid_messages() {
    let invalid = load("invalid");
    assert!(invalid.len() >= 20);
    for (name, bytes) in &invalid {
        let res = parse_datagram(bytes, &Limits::default());
        if INVALID_BUT_TOLERATED.iter().any(|(n, _)| n == name) {
            let m = res.unwrap_or_else(|e| panic!("{name} should be tolerated: {e}"));
            assert_fixed_point(name, &m);
            continue;
        }
        let e = match res {
            Ok(m) => panic!("{name} parsed but is invalid:\n{m}"),
            Err(e) => e,
        };
        let (_, code, status) = INVALID_EXPECT
            .iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("{name}: no expectation listed (got {})", e.code()));
        assert_eq!(e.code(), *code, "{name}: {e}");
        let resp = e.bad_request_response();
        assert_eq!(
            resp.as_ref().map(|r| r.status_code.code()),
            *status,
            "{name}"
        );
        if let Some(r) = resp {
            let s = to_bytes(&rsip::SipMessage::Response(r));
            assert!(rsip::SipMessage::try_from(s.as_slice()).is_ok(), "{name}");
            // The answer is itself a valid SIP response for our own parser, except when
            // the problem was in a header §8.2.6.2 makes us copy verbatim (or missing).
            if !["sip.malformed_header", "sip.missing_header"].contains(code) {
                parse_datagram(&s, &Limits::default()).unwrap_or_else(|e| {
                    panic!(
                        "{name}: our answer does not parse: {e}\n{}",
                        String::from_utf8_lossy(&s)
                    )
                });
            }
        }
    }
    for (name, _, _) in INVALID_EXPECT {
        assert!(invalid.contains_key(*name), "{name} missing from corpus");
    }
}

/// RFC 4475 longreq, generated: very long header values, many Vias (only the top one
/// with a branch), long tags, a long body.
fn longreq() -> Vec<u8> {
    let long = "very".repeat(100);
    let mut s = format!(
        "INVITE sip:user@example.com SIP/2.0\r\n\
To: \"I have a user name of {long} proportion\" <sip:user@example.com:6000;unknownparam1=very{long}value;longparam{long}name=shortvalue>;tag={long}\r\n\
From: sip:amazinglylongcallername{long}@example.net;tag=12{long}982;unknownheaderparam{long}name=unknowheaderparam{long}value\r\n\
Call-ID: longreq.one{long}really{long}longcallid\r\n\
CSeq: 3882340 INVITE\r\n\
Unknown-{long}-Header: unknown-{long}-value; unknown-{long}-parameter-name = unknown-{long}-parameter-value\r\n\
Via: SIP/2.0/TCP sip33.example.com;branch=z9hG4bK{long}\r\n"
    );
    for i in (1..33).rev() {
        s.push_str(&format!("v: SIP/2.0/TCP sip{i}.example.com\r\n"));
    }
    s.push_str(&format!(
        "Max-Forwards: 70\r\nContact: <sip:amazinglylongcallername{long}@host5.example.net>\r\n\
Content-Type: application/sdp\r\nl: 150\r\n\r\n{}",
        "v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n"
    ));
    s.into_bytes()
}

#[test]
fn longreq_parses_and_round_trips() {
    let bytes = longreq();
    assert!(bytes.len() > 7000);
    let m = parse_datagram(&bytes, &Limits::default()).unwrap();
    assert_eq!(headers::vias(m.headers()).unwrap().len(), 33);
    assert_fixed_point("longreq", &m);
    exercise_accessors("longreq", &m);
}

#[test]
fn hostile_inputs() {
    let lim = Limits::default();
    let base = load("valid").remove("lwsdisp").unwrap();
    // Truncated at every position: never Ok with a different message, never a panic.
    for cut in 0..base.len() {
        let _ = parse_datagram(&base[..cut], &lim);
        let _ = parse_stream_message(&base[..cut], &lim);
    }
    // NUL bytes in every position.
    for i in 0..base.len() {
        let mut b = base.clone();
        b[i] = 0;
        if let Ok(m) = parse_datagram(&b, &lim) {
            // Only the final CRLFCRLF... no: any NUL must be refused.
            panic!("NUL at {i} accepted:\n{m}");
        }
    }
    // Huge Content-Length.
    let s = String::from_utf8(base.clone())
        .unwrap()
        .replace("l: 0", "l: 18446744073709551616");
    assert_eq!(
        parse_datagram(s.as_bytes(), &lim).unwrap_err().code(),
        "sip.bad_content_length"
    );
    // 0 Vias: no answer can be addressed.
    let s = String::from_utf8(base.clone()).unwrap().replace(
        "Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw\r\n",
        "",
    );
    let e = parse_datagram(s.as_bytes(), &lim).unwrap_err();
    assert_eq!(e.code(), "sip.missing_header");
    assert!(e.bad_request_response().is_none());
    // 1000 Via lines: over the header-line limit → 513 would copy 1000 Vias: we still
    // answer (513 names the problem) only if the Via count is within max_via.
    let vias = "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bKx\r\n".repeat(1000);
    let s = String::from_utf8(base.clone())
        .unwrap()
        .replace("l: 0\r\n", &format!("{vias}l: 0\r\n"));
    let e = parse_datagram(s.as_bytes(), &lim).unwrap_err();
    assert_eq!(e.code(), "sip.too_many_headers");
    assert!(
        e.bad_request_response().is_none(),
        "1000 Vias are never echoed"
    );
    // Binary garbage.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for len in [1usize, 4, 16, 100, 1000, 70_000] {
        let g: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(parse_datagram(&g, &lim).is_err());
        let mut f = StreamFramer::default();
        f.push(&g);
        while let Ok(Some(_)) = f.next_frame() {}
    }
    // IPv6 Request-URI: clean error, never silent loss.
    let s = String::from_utf8(base).unwrap().replace(
        "OPTIONS sip:user@example.com",
        "OPTIONS sip:user@[2001:db8::10]:5060",
    );
    assert_eq!(
        parse_datagram(s.as_bytes(), &lim).unwrap_err().code(),
        "sip.ipv6_unsupported"
    );
}

/// Seeded mutations of every corpus message through datagram parsing, stream framing
/// and stream parsing, plus the error-response and accessor paths. Asserts only that
/// nothing panics and that accepted messages are stable.
#[test]
fn seeded_mutations_never_panic() {
    let mut seeds: Vec<Vec<u8>> = load("valid").into_values().collect();
    seeds.extend(load("invalid").into_values());
    seeds.push(longreq());
    let mut x: u64 = 0x5EED_0000_4475;
    let mut rnd = move |n: usize| -> usize {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % (n.max(1) as u64)) as usize
    };
    const INTERESTING: &[u8] = b"\r\n\t :;,<>\"\\@=/%[]0123456789\x00\xff\xc3vlf";
    let lim = Limits::default();
    let mut accepted = 0usize;
    for _ in 0..20_000 {
        let mut m = seeds[rnd(seeds.len())].clone();
        for _ in 0..1 + rnd(4) {
            if m.is_empty() {
                break;
            }
            let i = rnd(m.len());
            match rnd(6) {
                0 => m[i] = INTERESTING[rnd(INTERESTING.len())],
                1 => m.insert(i, INTERESTING[rnd(INTERESTING.len())]),
                2 => {
                    let end = (i + 1 + rnd(16)).min(m.len());
                    m.drain(i..end);
                }
                3 => {
                    let end = (i + 1 + rnd(32)).min(m.len());
                    let dup: Vec<u8> = m[i..end].to_vec();
                    m.splice(i..i, dup);
                }
                4 => m.truncate(i),
                _ => m[i] ^= 1 << rnd(8),
            }
        }
        match parse_datagram(&m, &lim) {
            Ok(msg) => {
                accepted += 1;
                let once = to_bytes(&msg);
                let again = parse_datagram(&once, &lim)
                    .unwrap_or_else(|e| panic!("accepted message does not re-parse: {e}"));
                assert_eq!(again, msg, "unstable round trip");
                let h = msg.headers();
                let _ = (headers::call_id(h), headers::cseq(h), headers::top_via(h));
                let _ = (
                    headers::from_tag(h),
                    headers::to_tag(h),
                    headers::contact_uri(h),
                );
                if let rsip::SipMessage::Request(r) = &msg {
                    let _ = build_response(r, 180, None, Some("x")).to_string();
                }
            }
            Err(e) => {
                let _ = e.code();
                if let Some(r) = e.bad_request_response() {
                    let _ = r.to_string();
                }
            }
        }
        let mut f = StreamFramer::default();
        let mut rest = &m[..];
        while !rest.is_empty() {
            let n = (1 + rnd(64)).min(rest.len());
            f.push(&rest[..n]);
            rest = &rest[n..];
            loop {
                match f.next_frame() {
                    Ok(Some(Frame::Message(b))) => {
                        let _ = parse_stream_message(&b, &lim);
                    }
                    Ok(Some(Frame::KeepAlive { .. })) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
    // The mutator must leave a fair share of messages valid, or it tests nothing deep.
    assert!(accepted > 500, "only {accepted} mutated messages parsed");
}
