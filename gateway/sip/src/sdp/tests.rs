#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::*;

fn local() -> LocalMedia {
    LocalMedia {
        address: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 5)),
        rtp_port: 40000,
        codecs: vec![Codec::Pcma, Codec::Pcmu],
        telephone_event: true,
        session_id: 1000,
        session_version: 1,
        username: "gw".into(),
    }
}

/// Join lines with CRLF (carrier style) and a final CRLF.
fn crlf(lines: &[&str]) -> String {
    let mut s = lines.join("\r\n");
    s.push_str("\r\n");
    s
}

fn answer(offer: &str) -> Result<Answer, SdpError> {
    negotiate_answer(&SessionDescription::parse(offer)?, &local())
}

/// A Sonus/Ribbon-style carrier offer: PCMU, PCMA, telephone-event 101.
fn carrier_offer() -> String {
    crlf(&[
        "v=0",
        "o=Sonus_UAC 27874 16577 IN IP4 203.0.113.10",
        "s=SIP Media Capabilities",
        "c=IN IP4 203.0.113.20",
        "t=0 0",
        "m=audio 30000 RTP/AVP 0 8 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=sendrecv",
        "a=maxptime:20",
    ])
}

#[test]
fn carrier_pcmu_pcma_te_golden() {
    let a = answer(&carrier_offer()).unwrap();
    // Offerer's order wins over ours (we prefer PCMA): RFC 3264 §6.1.
    assert_eq!(a.codec, (0, Codec::Pcmu));
    assert_eq!(a.telephone_event_pt, Some(101));
    assert_eq!(a.direction, Direction::SendRecv);
    assert_eq!(a.ptime_ms, 20);
    assert_eq!(a.hold, None);
    assert_eq!(a.media_index, 0);
    assert_eq!(
        a.remote_rtp,
        "203.0.113.20:30000".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(a.remote_rtcp, Some("203.0.113.20:30001".parse().unwrap()));
    assert_eq!(
        a.sdp,
        "v=0\r\n\
         o=gw 1000 1 IN IP4 198.51.100.5\r\n\
         s=-\r\n\
         c=IN IP4 198.51.100.5\r\n\
         t=0 0\r\n\
         m=audio 40000 RTP/AVP 0 101\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-15\r\n\
         a=ptime:20\r\n\
         a=sendrecv\r\n"
    );
    // The answer is itself valid SDP.
    let parsed = SessionDescription::parse(&a.sdp).unwrap();
    assert_eq!(parsed.to_string(), a.sdp);
}

#[test]
fn pcma_only_static_without_rtpmap_lf_line_ends() {
    let offer =
        "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\nm=audio 5004 RTP/AVP 8\n";
    let a = answer(offer).unwrap();
    assert_eq!(a.codec, (8, Codec::Pcma));
    assert_eq!(a.telephone_event_pt, None);
    assert!(a
        .sdp
        .contains("m=audio 40000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"));
    assert!(!a.sdp.contains("telephone-event"));
}

#[test]
fn g729_only_is_488_no_common_codec() {
    let offer = crlf(&[
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 192.0.2.1",
        "t=0 0",
        "m=audio 5004 RTP/AVP 18 101",
        "a=rtpmap:18 G729/8000",
        "a=fmtp:18 annexb=no",
        "a=rtpmap:101 telephone-event/8000",
    ]);
    let err = answer(&offer).unwrap_err();
    assert_eq!(err, SdpError::NoCommonCodec);
    assert_eq!(err.code(), "media.no_common_codec");
    assert_eq!(err.sip_status(), 488);
    assert_eq!(
        err.warning("gw.example.net").unwrap(),
        "305 gw.example.net \"Incompatible media format\""
    );
}

#[test]
fn dynamic_telephone_event_pt_96_and_101() {
    for (pt, fmtp) in [(96u8, "0-16"), (101, "0-15,16")] {
        let offer = crlf(&[
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.1",
            "s=-",
            "c=IN IP4 192.0.2.1",
            "t=0 0",
            &format!("m=audio 5004 RTP/AVP 8 {pt}"),
            &format!("a=rtpmap:{pt} TELEPHONE-EVENT/8000"),
            &format!("a=fmtp:{pt} {fmtp}"),
        ]);
        let a = answer(&offer).unwrap();
        assert_eq!(a.telephone_event_pt, Some(pt));
        assert!(a.sdp.contains(&format!("m=audio 40000 RTP/AVP 8 {pt}\r\n")));
        assert!(a
            .sdp
            .contains(&format!("a=rtpmap:{pt} telephone-event/8000\r\n")));
        assert!(a.sdp.contains(&format!("a=fmtp:{pt} {fmtp}\r\n")));
    }
    // telephone-event at another clock rate is not ours to use with G.711.
    let offer = crlf(&[
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 192.0.2.1",
        "t=0 0",
        "m=audio 5004 RTP/AVP 0 97",
        "a=rtpmap:97 telephone-event/48000",
    ]);
    assert_eq!(answer(&offer).unwrap().telephone_event_pt, None);
    // Without fmtp in the offer we add none either (RFC 4733 default 0-15 applies).
    let offer = crlf(&[
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 192.0.2.1",
        "t=0 0",
        "m=audio 5004 RTP/AVP 0 101",
        "a=rtpmap:101 telephone-event/8000",
    ]);
    let a = answer(&offer).unwrap();
    assert_eq!(a.telephone_event_pt, Some(101));
    assert!(!a.sdp.contains("a=fmtp"));
    // Telephone-event disabled locally.
    let mut l = local();
    l.telephone_event = false;
    let a = negotiate_answer(&SessionDescription::parse(&carrier_offer()).unwrap(), &l).unwrap();
    assert_eq!(a.telephone_event_pt, None);
    assert!(a.sdp.contains("m=audio 40000 RTP/AVP 0\r\n"));
}

#[test]
fn video_and_audio_golden() {
    let offer = crlf(&[
        "v=0",
        "o=alice 2890844526 2890844526 IN IP4 192.0.2.10",
        "s=-",
        "c=IN IP4 192.0.2.10",
        "t=0 0",
        "m=video 51372 RTP/AVP 31 34",
        "a=rtpmap:31 H261/90000",
        "a=rtpmap:34 H263/90000",
        "m=audio 49170 RTP/AVP 0 8 97",
        "a=rtpmap:97 iLBC/8000",
    ]);
    let a = answer(&offer).unwrap();
    assert_eq!(a.media_index, 1);
    assert_eq!(a.codec, (0, Codec::Pcmu));
    assert_eq!(
        a.sdp,
        "v=0\r\n\
         o=gw 1000 1 IN IP4 198.51.100.5\r\n\
         s=-\r\n\
         c=IN IP4 198.51.100.5\r\n\
         t=0 0\r\n\
         m=video 0 RTP/AVP 31 34\r\n\
         m=audio 40000 RTP/AVP 0\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=ptime:20\r\n\
         a=sendrecv\r\n"
    );
}

#[test]
fn two_audio_lines_first_acceptable_wins() {
    // First audio is SRTP: rejected; second plain RTP accepted.
    let offer = crlf(&[
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 192.0.2.1",
        "t=0 0",
        "m=audio 5000 RTP/SAVP 0",
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
        "m=audio 5002 RTP/AVP 8 0",
    ]);
    let a = answer(&offer).unwrap();
    assert_eq!(a.media_index, 1);
    assert_eq!(a.codec, (8, Codec::Pcma));
    assert_eq!(a.remote_rtp.port(), 5002);
    assert!(a
        .sdp
        .contains("m=audio 0 RTP/SAVP 0\r\nm=audio 40000 RTP/AVP 8\r\n"));
    assert!(!a.sdp.contains("crypto"));

    // Both acceptable: the first is taken and the second answered with port 0.
    let offer = crlf(&[
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 192.0.2.1",
        "t=0 0",
        "m=audio 5000 RTP/AVP 0",
        "m=audio 5002 RTP/AVP 8",
    ]);
    let a = answer(&offer).unwrap();
    assert_eq!(a.media_index, 0);
    assert!(a.sdp.ends_with("a=sendrecv\r\nm=audio 0 RTP/AVP 8\r\n"));

    // First has no common codec, second does; a disabled (port 0) stream is skipped.
    let offer = crlf(&[
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 192.0.2.1",
        "t=0 0",
        "m=audio 5000 RTP/AVP 18",
        "m=audio 0 RTP/AVP 0",
        "m=audio 5004 RTP/AVP 0",
    ]);
    let a = answer(&offer).unwrap();
    assert_eq!(a.media_index, 2);
    assert!(a
        .sdp
        .contains("m=audio 0 RTP/AVP 18\r\nm=audio 0 RTP/AVP 0\r\nm=audio 40000 RTP/AVP 0\r\n"));
}

#[test]
fn srtp_only_or_no_audio_is_488_media_type() {
    let offer = crlf(&[
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 192.0.2.1",
        "t=0 0",
        "m=audio 5000 RTP/SAVP 0",
        "m=image 5002 udptl t38",
    ]);
    let err = answer(&offer).unwrap_err();
    assert_eq!(err, SdpError::NoAcceptableMedia);
    assert_eq!(err.sip_status(), 488);
    assert_eq!(err.warning_code().unwrap().0, 304);
}

fn hold_offer(extra_session: &[&str], c: &str, extra_media: &[&str]) -> String {
    let mut lines = vec!["v=0", "o=- 1 2 IN IP4 192.0.2.1", "s=-"];
    lines.push(c);
    lines.push("t=0 0");
    lines.extend_from_slice(extra_session);
    lines.push("m=audio 5004 RTP/AVP 0 101");
    lines.push("a=rtpmap:101 telephone-event/8000");
    lines.extend_from_slice(extra_media);
    crlf(&lines)
}

#[test]
fn hold_sendonly_inactive_and_null_connection() {
    let c = "c=IN IP4 192.0.2.1";
    let a = answer(&hold_offer(&[], c, &["a=sendonly"])).unwrap();
    assert_eq!(a.direction, Direction::RecvOnly);
    assert_eq!(a.hold, Some(Hold::SendOnly));
    assert!(a.sdp.ends_with("a=recvonly\r\n"));

    // Session-level inactive.
    let a = answer(&hold_offer(&["a=inactive"], c, &[])).unwrap();
    assert_eq!(a.direction, Direction::Inactive);
    assert_eq!(a.hold, Some(Hold::Inactive));
    assert!(a.sdp.ends_with("a=inactive\r\n"));

    // Media level overrides session level (RFC 3264 §5.1).
    let a = answer(&hold_offer(&["a=inactive"], c, &["a=sendrecv"])).unwrap();
    assert_eq!(a.direction, Direction::SendRecv);
    assert_eq!(a.hold, None);

    // recvonly offer → we answer sendonly; not a hold.
    let a = answer(&hold_offer(&[], c, &["a=recvonly"])).unwrap();
    assert_eq!(a.direction, Direction::SendOnly);
    assert_eq!(a.hold, None);

    // RFC 2543 hold.
    let a = answer(&hold_offer(&[], "c=IN IP4 0.0.0.0", &[])).unwrap();
    assert_eq!(a.hold, Some(Hold::NullConnection));
    assert!(a.remote_rtp.ip().is_unspecified());
    assert_eq!(a.direction, Direction::SendRecv);
    // Media-level 0.0.0.0 overriding a real session address.
    let a = answer(&hold_offer(&[], c, &["c=IN IP4 0.0.0.0"])).unwrap();
    assert_eq!(a.hold, Some(Hold::NullConnection));
}

#[test]
fn ipv6_connection() {
    let offer = crlf(&[
        "v=0",
        "o=- 1 1 IN IP6 2001:db8::1",
        "s=-",
        "c=IN IP6 2001:db8::20",
        "t=0 0",
        "m=audio 6000 RTP/AVP 8",
    ]);
    let mut l = local();
    l.address = IpAddr::V6("2001:db8::5".parse::<Ipv6Addr>().unwrap());
    let a = negotiate_answer(&SessionDescription::parse(&offer).unwrap(), &l).unwrap();
    assert_eq!(
        a.remote_rtp,
        "[2001:db8::20]:6000".parse::<SocketAddr>().unwrap()
    );
    assert!(a.sdp.contains("o=gw 1000 1 IN IP6 2001:db8::5\r\n"));
    assert!(a.sdp.contains("c=IN IP6 2001:db8::5\r\n"));
    // Address type not matching the address is not trusted.
    let bad = offer.replace("c=IN IP6", "c=IN IP4");
    assert!(matches!(
        answer(&bad),
        Err(SdpError::UnsupportedAddress { .. })
    ));
}

#[test]
fn missing_connection_and_fqdn() {
    let offer = crlf(&[
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.1",
        "s=-",
        "t=0 0",
        "m=audio 6000 RTP/AVP 0",
    ]);
    let err = answer(&offer).unwrap_err();
    assert_eq!(err, SdpError::MissingConnection { media_index: 0 });
    assert_eq!(err.code(), "sdp.missing_connection");
    assert_eq!(err.sip_status(), 400);
    // A media-level c= is enough.
    let ok = offer.replace(
        "m=audio 6000 RTP/AVP 0\r\n",
        "m=audio 6000 RTP/AVP 0\r\nc=IN IP4 192.0.2.9\r\n",
    );
    assert_eq!(
        answer(&ok).unwrap().remote_rtp.ip().to_string(),
        "192.0.2.9"
    );
    let fqdn = offer.replace("t=0 0", "c=IN IP4 media.example.com\r\nt=0 0");
    let err = answer(&fqdn).unwrap_err();
    assert_eq!(err.code(), "sdp.unsupported_address");
}

#[test]
fn garbage_is_rejected_without_panic() {
    let cases: &[(&str, &str)] = &[
        ("", "sdp.missing_field"),
        ("\r\n\r\n", "sdp.missing_field"),
        ("hello world", "sdp.invalid_line"),
        ("<html><body>500</body></html>", "sdp.invalid_line"),
        ("o=- 1 1 IN IP4 1.2.3.4\r\nv=0\r\n", "sdp.missing_field"),
        ("v=1\r\n", "sdp.invalid_line"),
        ("v=0\r\ns=-\r\n", "sdp.missing_field"),
        ("v=0\r\nv=0\r\n", "sdp.invalid_line"),
        ("v=0\r\no=- 1 IN IP4 1.2.3.4\r\n", "sdp.invalid_line"),
        (
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 70000 RTP/AVP 0\r\n",
            "sdp.invalid_line",
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 5000 RTP/AVP\r\n",
            "sdp.invalid_line",
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 5000 RTP/AVP 200\r\n",
            "sdp.invalid_line",
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio x RTP/AVP 0\r\n",
            "sdp.invalid_line",
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN\r\n",
            "sdp.invalid_line",
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nX=1\r\n",
            "sdp.invalid_line",
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=a\0b\r\n",
            "sdp.invalid_line",
        ),
        ("v=0\ro=- 1 1 IN IP4 1.2.3.4\r\n", "sdp.invalid_line"),
    ];
    for (input, code) in cases {
        let err = SessionDescription::parse(input).unwrap_err();
        assert_eq!(err.code(), *code, "{input:?} -> {err:?}");
        assert_eq!(err.sip_status(), 400);
    }
    assert_eq!(
        SessionDescription::parse_bytes(b"v=0\r\no=\xff\xfe 1 1 IN IP4 1.2.3.4\r\n").unwrap_err(),
        SdpError::NotUtf8
    );
}

#[test]
fn size_and_count_limits() {
    let mut huge = carrier_offer();
    while huge.len() <= MAX_SDP_LEN {
        huge.push_str("a=x-filler:0123456789012345678901234567890123456789\r\n");
    }
    let err = SessionDescription::parse(&huge).unwrap_err();
    assert_eq!(err.code(), "sdp.too_large");
    assert!(matches!(
        SessionDescription::parse_bytes(huge.as_bytes()),
        Err(SdpError::TooLarge { .. })
    ));
    let mut many_m = crlf(&[
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 192.0.2.1",
        "t=0 0",
    ]);
    for _ in 0..=MAX_MEDIA {
        many_m.push_str("m=audio 0 RTP/AVP 0\r\n");
    }
    assert_eq!(
        SessionDescription::parse(&many_m).unwrap_err(),
        SdpError::TooMany {
            what: "media lines",
            max: MAX_MEDIA
        }
    );
    let mut many_a = crlf(&["v=0", "o=- 1 1 IN IP4 192.0.2.1"]);
    for _ in 0..=MAX_ATTRIBUTES {
        many_a.push_str("a=x\n");
    }
    assert_eq!(
        SessionDescription::parse(&many_a).unwrap_err().code(),
        "sdp.too_many"
    );
    let many_fmt = format!(
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP{}\r\n",
        " 0".repeat(MAX_FORMATS + 1)
    );
    assert_eq!(
        SessionDescription::parse(&many_fmt).unwrap_err().code(),
        "sdp.invalid_line"
    );
}

#[test]
fn ptime_rules() {
    let with = |media: &[&str]| answer(&hold_offer(&[], "c=IN IP4 192.0.2.1", media)).unwrap();
    assert_eq!(with(&[]).ptime_ms, 20);
    let a = with(&["a=ptime:30"]);
    assert_eq!(a.ptime_ms, 30);
    assert!(a.sdp.contains("a=ptime:30\r\n"));
    assert_eq!(with(&["a=ptime:20.0"]).ptime_ms, 20);
    assert_eq!(with(&["a=ptime:25"]).ptime_ms, 20); // not a whole G.711 frame multiple
    assert_eq!(with(&["a=ptime:0"]).ptime_ms, 20);
    assert_eq!(with(&["a=ptime:99999999999"]).ptime_ms, 20);
    assert_eq!(with(&["a=maxptime:10"]).ptime_ms, 10);
    assert_eq!(with(&["a=ptime:40", "a=maxptime:30"]).ptime_ms, 30);
    assert_eq!(with(&["a=maxptime:5"]).ptime_ms, 10);
}

#[test]
fn codec_identification() {
    // Dynamic PT for PCMU (case-insensitive rtpmap) is answered with the offerer's number.
    let offer = hold_offer(&[], "c=IN IP4 192.0.2.1", &[]).replace(
        "m=audio 5004 RTP/AVP 0 101",
        "m=audio 5004 RTP/AVP 100 101\r\na=rtpmap:100 pcmu/8000/1",
    );
    let a = answer(&offer).unwrap();
    assert_eq!(a.codec, (100, Codec::Pcmu));
    assert!(a.sdp.contains("a=rtpmap:100 PCMU/8000\r\n"));
    // An rtpmap overrides the static table: PT 0 remapped to something else is not PCMU.
    let offer = hold_offer(&[], "c=IN IP4 192.0.2.1", &["a=rtpmap:0 G722/8000"]);
    assert_eq!(answer(&offer).unwrap_err(), SdpError::NoCommonCodec);
    // Wrong clock rate or stereo is not G.711 as we carry it.
    let offer = hold_offer(&[], "c=IN IP4 192.0.2.1", &[]).replace(
        "m=audio 5004 RTP/AVP 0 101",
        "m=audio 5004 RTP/AVP 96 97 8\r\na=rtpmap:96 PCMU/16000\r\na=rtpmap:97 PCMA/8000/2",
    );
    assert_eq!(answer(&offer).unwrap().codec, (8, Codec::Pcma));
    // Our codec list restricts the choice.
    let mut l = local();
    l.codecs = vec![Codec::Pcma];
    let offer = SessionDescription::parse(&carrier_offer()).unwrap();
    assert_eq!(
        negotiate_answer(&offer, &l).unwrap().codec,
        (8, Codec::Pcma)
    );
    l.codecs.clear();
    assert_eq!(
        negotiate_answer(&offer, &l).unwrap_err(),
        SdpError::NoLocalCodecs
    );
}

#[test]
fn rtcp_attribute_and_timing_copied() {
    let offer = crlf(&[
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 192.0.2.1",
        "t=3034423619 3042462419",
        "m=audio 5004 RTP/AVP 0",
        "a=rtcp:6001 IN IP4 192.0.2.77",
    ]);
    let a = answer(&offer).unwrap();
    assert_eq!(a.remote_rtcp, Some("192.0.2.77:6001".parse().unwrap()));
    assert!(a.sdp.contains("t=3034423619 3042462419\r\n"));
    let offer = offer.replace("a=rtcp:6001 IN IP4 192.0.2.77", "a=rtcp:6001");
    assert_eq!(
        answer(&offer).unwrap().remote_rtcp,
        Some("192.0.2.1:6001".parse().unwrap())
    );
    let offer = offer
        .replace("5004", "65535")
        .replace("a=rtcp:6001\r\n", "");
    assert_eq!(answer(&offer).unwrap().remote_rtcp, None);
}

#[test]
fn tolerant_parsing_keeps_unknowns() {
    let offer = "v=0\n\
                 o=- 1 1 IN IP4 192.0.2.1  \n\
                 s=\n\
                 i=info line\n\
                 u=http://example.com\n\
                 c=IN IP4 224.2.1.1/127\n\
                 b=AS:64\n\
                 t=0 0\n\
                 r=7d 1h 0 25h\n\
                 a=group:BUNDLE 0\n\
                 a=sendrecv\n\
                 m=audio 5004/2 RTP/AVP 0\n\
                 b=TIAS:64000\n\
                 a=rtpmap:garbage\n\
                 a=fmtp:nospace\n\
                 a=ptime:abc\n\
                 a=x-custom:1 2 3\n\
                 a=silenceSupp:off - - - -\n\
                 a=rtcp-mux\n\
                 \n\
                 \n";
    let sdp = SessionDescription::parse(offer).unwrap();
    assert_eq!(sdp.session_name, "");
    assert_eq!(sdp.connection.as_ref().unwrap().address, "224.2.1.1");
    assert_eq!(sdp.bandwidth, vec!["AS:64".to_owned()]);
    assert_eq!(sdp.direction, Some(Direction::SendRecv));
    assert_eq!(sdp.attributes[0].name, "group");
    let m = &sdp.media[0];
    assert_eq!(m.port_count, Some(2));
    assert_eq!(m.bandwidth, vec!["TIAS:64000".to_owned()]);
    assert!(m.rtpmaps.is_empty());
    assert_eq!(m.ptime, None);
    let names: Vec<&str> = m.attributes.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "rtpmap",
            "fmtp",
            "ptime",
            "x-custom",
            "silenceSupp",
            "rtcp-mux"
        ]
    );
    // Serialize → parse is a fixed point.
    let text = sdp.to_string();
    assert_eq!(SessionDescription::parse(&text).unwrap(), sdp);
    assert_eq!(SessionDescription::parse(&text).unwrap().to_string(), text);
}

#[test]
fn serialization_round_trip_of_carrier_offer() {
    let sdp: SessionDescription = carrier_offer().parse().unwrap();
    let m = &sdp.media[0];
    assert_eq!(m.formats, ["0", "8", "101"]);
    assert_eq!(m.payload_types().collect::<Vec<_>>(), [0, 8, 101]);
    assert_eq!(m.fmtp("101"), Some("0-15"));
    assert_eq!(m.maxptime, Some(20));
    assert_eq!(
        sdp.to_string(),
        "v=0\r\n\
         o=Sonus_UAC 27874 16577 IN IP4 203.0.113.10\r\n\
         s=SIP Media Capabilities\r\n\
         c=IN IP4 203.0.113.20\r\n\
         t=0 0\r\n\
         m=audio 30000 RTP/AVP 0 8 101\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-15\r\n\
         a=maxptime:20\r\n\
         a=sendrecv\r\n"
    );
}

#[test]
fn build_offer_golden() {
    let offer = build_offer(&local(), Direction::SendRecv);
    assert_eq!(
        offer,
        "v=0\r\n\
         o=gw 1000 1 IN IP4 198.51.100.5\r\n\
         s=-\r\n\
         c=IN IP4 198.51.100.5\r\n\
         t=0 0\r\n\
         m=audio 40000 RTP/AVP 8 0 101\r\n\
         a=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-16\r\n\
         a=ptime:20\r\n\
         a=sendrecv\r\n"
    );
    let mut l = local();
    l.telephone_event = false;
    l.username = "has space".into();
    l.codecs = vec![Codec::Pcmu, Codec::Pcmu];
    let hold = build_offer(&l, Direction::SendOnly);
    assert!(hold.starts_with("v=0\r\no=- 1000 1 IN IP4"));
    assert!(hold.contains("m=audio 40000 RTP/AVP 0\r\n"));
    assert!(hold.ends_with("a=sendonly\r\n"));
}

#[test]
fn offer_answer_round_trip_between_two_gateways() {
    let ours = local();
    let offer_text = build_offer(&ours, Direction::SendRecv);
    let offer = SessionDescription::parse(&offer_text).unwrap();
    let mut peer = local();
    peer.address = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
    peer.rtp_port = 20000;
    peer.codecs = vec![Codec::Pcmu, Codec::Pcma];
    let ans = negotiate_answer(&offer, &peer).unwrap();
    // Peer follows our order: PCMA.
    assert_eq!(ans.codec, (8, Codec::Pcma));
    assert_eq!(
        ans.remote_rtp,
        "198.51.100.5:40000".parse::<SocketAddr>().unwrap()
    );
    let n = parse_answer(&SessionDescription::parse(&ans.sdp).unwrap(), &offer).unwrap();
    assert_eq!(n.codec, (8, Codec::Pcma));
    assert_eq!(n.telephone_event_pt, Some(101));
    assert_eq!(
        n.remote_rtp,
        "203.0.113.7:20000".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(n.direction, Direction::SendRecv);
    assert_eq!(n.ptime_ms, 20);
    assert_eq!(n.hold, None);
    assert_eq!(ans.negotiated().codec, n.codec);
}

fn our_offer() -> SessionDescription {
    SessionDescription::parse(&build_offer(&local(), Direction::SendRecv)).unwrap()
}

fn remote_answer(media: &[&str]) -> SessionDescription {
    let mut lines = vec![
        "v=0",
        "o=- 5 5 IN IP4 203.0.113.7",
        "s=-",
        "c=IN IP4 203.0.113.7",
        "t=0 0",
    ];
    lines.extend_from_slice(media);
    SessionDescription::parse(&crlf(&lines)).unwrap()
}

#[test]
fn parse_answer_rules() {
    let offer = our_offer();
    // Renumbered telephone-event and recvonly answer.
    let n = parse_answer(
        &remote_answer(&[
            "m=audio 20000 RTP/AVP 0 96",
            "a=rtpmap:96 telephone-event/8000",
            "a=recvonly",
            "a=ptime:30",
        ]),
        &offer,
    )
    .unwrap();
    assert_eq!(n.codec, (0, Codec::Pcmu));
    assert_eq!(n.telephone_event_pt, Some(96));
    assert_eq!(n.direction, Direction::SendOnly);
    assert_eq!(n.ptime_ms, 30);
    // Codec we never offered (G.729).
    let err = parse_answer(&remote_answer(&["m=audio 20000 RTP/AVP 18"]), &offer).unwrap_err();
    assert_eq!(err, SdpError::AnswerCodecNotOffered);
    assert_eq!(err.code(), "media.answer_codec_not_offered");
    // Rejected stream.
    assert_eq!(
        parse_answer(&remote_answer(&["m=audio 0 RTP/AVP 0"]), &offer).unwrap_err(),
        SdpError::NoAcceptableMedia
    );
    // Wrong number of m-lines / wrong type.
    assert_eq!(
        parse_answer(
            &remote_answer(&["m=audio 20000 RTP/AVP 0", "m=video 0 RTP/AVP 31"]),
            &offer
        )
        .unwrap_err()
        .code(),
        "sdp.answer_mismatch"
    );
    assert_eq!(
        parse_answer(&remote_answer(&["m=video 20000 RTP/AVP 0"]), &offer)
            .unwrap_err()
            .code(),
        "sdp.answer_mismatch"
    );
    // A non-conforming sendrecv answer to our sendonly (hold) offer cannot widen it.
    let hold_offer =
        SessionDescription::parse(&build_offer(&local(), Direction::SendOnly)).unwrap();
    let n = parse_answer(&remote_answer(&["m=audio 20000 RTP/AVP 8"]), &hold_offer).unwrap();
    assert_eq!(n.direction, Direction::SendOnly);
    assert_eq!(n.telephone_event_pt, None);
    // Telephone-event not reported if we did not offer it.
    let mut l = local();
    l.telephone_event = false;
    let plain = SessionDescription::parse(&build_offer(&l, Direction::SendRecv)).unwrap();
    let n = parse_answer(
        &remote_answer(&[
            "m=audio 20000 RTP/AVP 8 101",
            "a=rtpmap:101 telephone-event/8000",
        ]),
        &plain,
    )
    .unwrap();
    assert_eq!(n.telephone_event_pt, None);
}

#[test]
fn error_codes_are_stable() {
    let all = [
        (SdpError::TooLarge { len: 1, max: 0 }, "sdp.too_large", 400),
        (SdpError::NotUtf8, "sdp.not_utf8", 400),
        (SdpError::NoCommonCodec, "media.no_common_codec", 488),
        (
            SdpError::NoAcceptableMedia,
            "media.no_acceptable_stream",
            488,
        ),
        (
            SdpError::UnsupportedAddress {
                address: "x".into(),
            },
            "sdp.unsupported_address",
            488,
        ),
        (SdpError::NoLocalCodecs, "media.no_local_codecs", 500),
    ];
    for (e, code, status) in all {
        assert_eq!(e.code(), code);
        assert_eq!(e.sip_status(), status);
        assert!(!e.to_string().is_empty());
    }
}

/// Deterministic mutation fuzz: parsing and negotiating arbitrary edits never panics.
#[test]
fn mutations_never_panic() {
    let base = carrier_offer();
    let alphabet: &[u8] = b"\r\n =:/0123456789amcvotAIP.-\t";
    let mut seed = 0x9e37_79b9u32;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed as usize
    };
    for _ in 0..3000 {
        let mut bytes = base.clone().into_bytes();
        for _ in 0..1 + next() % 4 {
            let pos = next() % bytes.len();
            match next() % 3 {
                0 => bytes[pos] = alphabet[next() % alphabet.len()],
                1 => {
                    bytes.remove(pos);
                }
                _ => bytes.insert(pos, alphabet[next() % alphabet.len()]),
            }
        }
        if let Ok(sdp) = SessionDescription::parse_bytes(&bytes) {
            let _ = negotiate_answer(&sdp, &local());
            let _ = parse_answer(&sdp, &our_offer());
            let _ = SessionDescription::parse(&sdp.to_string());
        }
    }
    for end in 0..base.len() {
        let _ = SessionDescription::parse(&base[..end]);
    }
}
