#![allow(clippy::unwrap_used)]

use super::*;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const T0: u64 = 1_790_000_000_000; // unix ms

fn server() -> DigestServer {
    DigestServer::new("gw.example.net", SECRET)
}

/// RFC 2617 §3.5 example, MD5 with qop=auth.
#[test]
fn rfc2617_md5_vector() {
    let ha1 = ha1(
        Algorithm::Md5,
        "Mufasa",
        "testrealm@host.com",
        "Circle Of Life",
        "",
        None,
    );
    let r = response_from_ha1(
        Algorithm::Md5,
        &ha1,
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        Some((1, "0a4f113b")),
        "GET",
        "/dir/index.html",
    );
    assert_eq!(r, "6629fae49393a05397450978507c4ef1");
}

/// The same vector through header parsing and `expected_response`, with the HA1 and password
/// forms of the secret.
#[test]
fn rfc2617_authorization_header_parses_and_matches() {
    let h = r#"Digest username="Mufasa",
                 realm="testrealm@host.com",
                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                 uri="/dir/index.html",
                 qop=auth,
                 nc=00000001,
                 cnonce="0a4f113b",
                 response="6629fae49393a05397450978507c4ef1",
                 opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
    let c = Credentials::parse(h).unwrap();
    assert_eq!(c.username, "Mufasa");
    assert_eq!(c.nc, Some(1));
    assert_eq!(c.qop, Some(Qop::Auth));
    assert_eq!(c.algorithm, Algorithm::Md5);
    assert_eq!(
        c.expected_response("GET", Secret::Password("Circle Of Life"))
            .unwrap(),
        c.response
    );
    let stored = ha1(
        Algorithm::Md5,
        "Mufasa",
        "testrealm@host.com",
        "Circle Of Life",
        "",
        None,
    );
    assert_eq!(
        c.expected_response("GET", Secret::Ha1(&stored)).unwrap(),
        c.response
    );
    // SHA-256-sized HA1 does not fit an MD5 credential.
    let wrong = "0".repeat(64);
    assert_eq!(
        c.expected_response("GET", Secret::Ha1(&wrong)).unwrap_err(),
        AuthError::Ha1AlgorithmMismatch {
            algorithm: Algorithm::Md5
        }
    );
}

/// RFC 7616 §3.9.1 example, SHA-256 (note the lower-case "of" in that RFC's password).
#[test]
fn rfc7616_sha256_vector() {
    let challenge = Challenge::parse(
        r#"Digest
       realm="http-auth@example.org",
       qop="auth, auth-int",
       algorithm=SHA-256,
       nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
       opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#,
    )
    .unwrap();
    assert_eq!(challenge.algorithm, Algorithm::Sha256);
    assert!(challenge.qop_auth);
    let creds = respond_credentials(
        &challenge,
        "GET",
        "/dir/index.html",
        "Mufasa",
        "Circle of Life",
        "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        1,
    )
    .unwrap();
    assert_eq!(
        creds.response,
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
    // And the MD5 half of the same RFC example.
    let md5 = Challenge {
        algorithm: Algorithm::Md5,
        ..challenge
    };
    let creds = respond_credentials(
        &md5,
        "GET",
        "/dir/index.html",
        "Mufasa",
        "Circle of Life",
        "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        1,
    )
    .unwrap();
    assert_eq!(creds.response, "8ca523f5e9506fed4657c9700eebdbec");
}

/// RFC 4231 test case 2 for the hand-written HMAC.
#[test]
fn hmac_sha256_rfc4231_case2() {
    let mac = hmac_sha256(b"Jefe", &[b"what do ya ", b"want for nothing?"]);
    assert_eq!(
        hex::encode(mac),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    // Key longer than the block is hashed first (RFC 4231 test case 6).
    let mac = hmac_sha256(
        &[0xaa; 131],
        &[b"Test Using Larger Than Block-Size Key - Hash Key First"],
    );
    assert_eq!(
        hex::encode(mac),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}

#[test]
fn challenge_headers_sha256_first_golden() {
    let s = server().with_opaque("op");
    let h = s.challenge_headers(T0, 0x0102_0304_0506_0708, false);
    assert_eq!(h.len(), 2);
    let nonce = s.issue_nonce(T0, 0x0102_0304_0506_0708);
    assert_eq!(nonce.len(), 64);
    assert!(nonce.starts_with("000001a0c4506c000102030405060708"));
    assert_eq!(
        h[0],
        format!(
            "Digest realm=\"gw.example.net\", nonce=\"{nonce}\", algorithm=SHA-256, qop=\"auth\", opaque=\"op\""
        )
    );
    assert_eq!(
        h[1],
        format!(
            "Digest realm=\"gw.example.net\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\", opaque=\"op\""
        )
    );
    let stale = s.challenge_headers(T0, 1, true);
    assert!(stale[0].ends_with(", stale=TRUE"));
    // Our own output parses back.
    let c = Challenge::parse(&stale[0]).unwrap();
    assert!(c.stale);
    assert_eq!(c.opaque.as_deref(), Some("op"));
}

fn round_trip(algorithm: Algorithm) {
    let s = server().with_algorithms(&[algorithm]);
    let headers = s.challenge_headers(T0, 42, false);
    let ch = pick_challenge(headers.iter().map(String::as_str)).unwrap();
    assert_eq!(ch.algorithm, algorithm);
    let auth = respond(
        &ch,
        "INVITE",
        "sip:+15551234567@gw.example.net",
        "trunk1",
        "s3cret\"pa\\ss",
        "abcdef0123",
        1,
    )
    .unwrap();
    let creds = Credentials::parse(&auth).unwrap();
    assert_eq!(creds.algorithm, algorithm);
    assert_eq!(
        s.verify(
            &creds,
            "INVITE",
            "trunk1",
            Secret::Password("s3cret\"pa\\ss"),
            T0 + 1_000
        ),
        Ok(())
    );
    // Stored HA1 works too.
    let stored = ha1(
        algorithm,
        "trunk1",
        "gw.example.net",
        "s3cret\"pa\\ss",
        "",
        None,
    );
    // For -sess the stored value is the base HA1 (no nonce/cnonce).
    let stored = if algorithm.is_session() {
        let base = match algorithm {
            Algorithm::Md5Sess => Algorithm::Md5,
            _ => Algorithm::Sha256,
        };
        ha1(base, "trunk1", "gw.example.net", "s3cret\"pa\\ss", "", None)
    } else {
        stored
    };
    assert_eq!(
        s.verify(&creds, "INVITE", "trunk1", Secret::Ha1(&stored), T0 + 1_000),
        Ok(())
    );
    // Method is part of A2: replaying for another method fails.
    assert_eq!(
        s.verify(
            &creds,
            "BYE",
            "trunk1",
            Secret::Password("s3cret\"pa\\ss"),
            T0 + 1_000
        ),
        Err(AuthError::WrongCredentials)
    );
}

#[test]
fn round_trip_md5() {
    round_trip(Algorithm::Md5);
}

#[test]
fn round_trip_sha256() {
    round_trip(Algorithm::Sha256);
}

#[test]
fn round_trip_sess_variants() {
    round_trip(Algorithm::Md5Sess);
    round_trip(Algorithm::Sha256Sess);
}

#[test]
fn client_prefers_sha256_regardless_of_header_order() {
    let md5 = r#"Digest realm="r", nonce="n", algorithm=MD5, qop="auth""#;
    let sha = r#"Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth""#;
    let unknown = r#"Digest realm="r", nonce="n", algorithm=SHA-512-256, qop="auth""#;
    let c = pick_challenge([md5, unknown, sha]).unwrap();
    assert_eq!(c.algorithm, Algorithm::Sha256);
    let c = pick_challenge([unknown, md5]).unwrap();
    assert_eq!(c.algorithm, Algorithm::Md5);
    assert!(pick_challenge([unknown]).is_none());
    // auth-int only: not usable.
    assert!(pick_challenge([r#"Digest realm="r", nonce="n", qop="auth-int""#]).is_none());
}

#[test]
fn rfc2069_no_qop_form() {
    let s = server().with_algorithms(&[Algorithm::Md5]);
    let nonce = s.issue_nonce(T0, 7);
    // A challenge as an old peer would see it: no qop.
    let ch = Challenge {
        realm: "gw.example.net".into(),
        nonce,
        algorithm: Algorithm::Md5,
        qop_auth: false,
        qop_unsupported_only: false,
        opaque: None,
        stale: false,
    };
    let auth = respond(&ch, "REGISTER", "sip:gw.example.net", "u", "p", "cn", 1).unwrap();
    assert!(!auth.contains("qop"));
    assert!(!auth.contains("cnonce"));
    assert!(!auth.contains("nc="));
    let creds = Credentials::parse(&auth).unwrap();
    assert_eq!(creds.qop, None);
    assert_eq!(
        s.verify(&creds, "REGISTER", "u", Secret::Password("p"), T0),
        Ok(())
    );
    let strict = s.clone().with_rfc2069(false);
    assert_eq!(
        strict.verify(&creds, "REGISTER", "u", Secret::Password("p"), T0),
        Err(AuthError::MissingParam { name: "qop" })
    );
}

#[test]
fn stale_nonce_only_reported_with_correct_digest() {
    let s = server().with_nonce_lifetime(Duration::from_secs(60));
    let ch = &s.challenges(T0, 9, false)[0];
    let good =
        Credentials::parse(&respond(ch, "INVITE", "sip:x@y", "u", "pw", "c", 1).unwrap()).unwrap();
    let later = T0 + 61_000;
    let err = s
        .verify(&good, "INVITE", "u", Secret::Password("pw"), later)
        .unwrap_err();
    assert_eq!(err, AuthError::StaleNonce);
    assert!(err.is_stale());
    assert_eq!(err.code(), "auth.stale_nonce");
    assert_eq!(err.sip_status(ChallengeKind::Proxy), 407);
    // Exactly at the lifetime boundary still fresh.
    assert_eq!(
        s.verify(&good, "INVITE", "u", Secret::Password("pw"), T0 + 60_000),
        Ok(())
    );
    // Wrong password with an expired nonce is wrong credentials, not stale.
    assert_eq!(
        s.verify(&good, "INVITE", "u", Secret::Password("nope"), later),
        Err(AuthError::WrongCredentials)
    );
    // Nonce from the far future (another node's clock way ahead) is stale too.
    let future = &s.challenges(T0 + 3_600_000, 9, false)[0];
    let f = Credentials::parse(&respond(future, "INVITE", "sip:x@y", "u", "pw", "c", 1).unwrap())
        .unwrap();
    assert_eq!(
        s.verify(&f, "INVITE", "u", Secret::Password("pw"), T0),
        Err(AuthError::StaleNonce)
    );
}

#[test]
fn tampered_or_foreign_nonce_rejected() {
    let s = server();
    let nonce = s.issue_nonce(T0, 5);
    assert_eq!(s.check_nonce(&nonce, T0), Ok(()));
    // Move the timestamp forward (to extend validity): HMAC no longer matches.
    let mut forged = nonce.clone().into_bytes();
    forged[15] = if forged[15] == b'f' { b'e' } else { b'f' };
    let forged = String::from_utf8(forged).unwrap();
    assert_eq!(s.check_nonce(&forged, T0), Err(AuthError::InvalidNonce));
    // A nonce from another secret or another realm.
    let other = DigestServer::new("gw.example.net", b"other".to_vec());
    assert_eq!(
        s.check_nonce(&other.issue_nonce(T0, 5), T0),
        Err(AuthError::InvalidNonce)
    );
    let other_realm = DigestServer::new("other.realm", SECRET);
    assert_eq!(
        s.check_nonce(&other_realm.issue_nonce(T0, 5), T0),
        Err(AuthError::InvalidNonce)
    );
    for junk in [
        "",
        "zz",
        &"g".repeat(64),
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        "é".repeat(32).as_str(),
    ] {
        assert_eq!(
            s.check_nonce(junk, T0),
            Err(AuthError::InvalidNonce),
            "{junk:?}"
        );
    }
    // Full verify with a valid digest over a forged nonce.
    let ch = Challenge {
        nonce: forged,
        ..s.challenges(T0, 5, false)[0].clone()
    };
    let creds =
        Credentials::parse(&respond(&ch, "INVITE", "sip:a@b", "u", "pw", "c", 1).unwrap()).unwrap();
    let err = s
        .verify(&creds, "INVITE", "u", Secret::Password("pw"), T0)
        .unwrap_err();
    assert_eq!(err, AuthError::InvalidNonce);
    assert!(!err.is_stale());
}

#[test]
fn wrong_password_username_realm_opaque() {
    let s = server().with_opaque("xyz");
    let ch = &s.challenges(T0, 1, false)[0];
    let creds =
        Credentials::parse(&respond(ch, "INVITE", "sip:a@b", "alice", "pw", "c", 1).unwrap())
            .unwrap();
    assert_eq!(
        s.verify(&creds, "INVITE", "alice", Secret::Password("PW"), T0),
        Err(AuthError::WrongCredentials)
    );
    assert_eq!(
        s.verify(&creds, "INVITE", "alice", Secret::Password("PW"), T0)
            .unwrap_err()
            .code(),
        "auth.bad_credentials"
    );
    assert!(matches!(
        s.verify(&creds, "INVITE", "bob", Secret::Password("pw"), T0),
        Err(AuthError::UsernameMismatch { .. })
    ));
    let mut other_realm = creds.clone();
    other_realm.realm = "evil".into();
    assert!(matches!(
        s.verify(&other_realm, "INVITE", "alice", Secret::Password("pw"), T0),
        Err(AuthError::RealmMismatch { .. })
    ));
    let mut no_opaque = creds.clone();
    no_opaque.opaque = None;
    assert_eq!(
        s.verify(&no_opaque, "INVITE", "alice", Secret::Password("pw"), T0),
        Err(AuthError::OpaqueMismatch)
    );
    // Response with a different case is still accepted (hex is case-insensitive).
    let upper = creds
        .to_header_value()
        .replace(&creds.response, &creds.response.to_ascii_uppercase());
    let upper = Credentials::parse(&upper).unwrap();
    assert_eq!(
        s.verify(&upper, "INVITE", "alice", Secret::Password("pw"), T0),
        Ok(())
    );
    // Algorithm not offered by this server.
    let md5_only = server().with_algorithms(&[Algorithm::Md5]);
    assert!(matches!(
        md5_only.verify(&creds, "INVITE", "alice", Secret::Password("pw"), T0),
        Err(AuthError::UnsupportedAlgorithm { .. })
    ));
}

#[test]
fn credentials_parsing_is_robust() {
    // Any order, odd spacing, upper-case names and scheme, unknown params, empty list items,
    // escapes in quoted strings.
    let h = "DIGEST   Response=\"ABCDEF\" ,,uri = \"sip:a@b\",  username=\"dom\\\\u\\\"ser\", \
             realm=\"r\", nonce=\"n\", foo=bar, baz=\"q,u=o\\\"te\", algorithm=md5";
    let c = Credentials::parse(h).unwrap();
    assert_eq!(c.username, "dom\\u\"ser");
    assert_eq!(c.uri, "sip:a@b");
    assert_eq!(c.response, "abcdef");
    assert_eq!(c.algorithm, Algorithm::Md5);
    assert_eq!(c.qop, None);
    // Serialization escapes back and re-parses to the same value.
    assert_eq!(Credentials::parse(&c.to_header_value()).unwrap(), c);
    // Quoted qop tolerated (some UAs quote it).
    let q = r#"Digest username="u", realm="r", nonce="n", uri="x", response="a", qop="auth", nc=0000000a, cnonce="c""#;
    let c = Credentials::parse(q).unwrap();
    assert_eq!(c.nc, Some(10));
}

#[test]
fn malformed_headers_error_without_panic() {
    let base = r#"username="u", realm="r", nonce="n", uri="x", response="a""#;
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "auth.unsupported_scheme"),
        ("Basic dXNlcjpwYXNz".into(), "auth.unsupported_scheme"),
        ("Digest".into(), "auth.malformed"),
        ("Digest ".into(), "auth.malformed"),
        ("Digestusername=\"u\"".into(), "auth.unsupported_scheme"),
        (
            format!("Digest {base}, username=\"v\""),
            "auth.duplicate_param",
        ),
        (
            format!("Digest {base}, USERNAME=\"v\""),
            "auth.duplicate_param",
        ),
        ("Digest username=\"u".into(), "auth.malformed"),
        ("Digest username=\"u\\".into(), "auth.malformed"),
        ("Digest username".into(), "auth.malformed"),
        ("Digest username=".into(), "auth.malformed"),
        ("Digest =x".into(), "auth.malformed"),
        ("Digest a=b c=d".into(), "auth.malformed"),
        ("Digest a=\"x\u{1}y\"".into(), "auth.malformed"),
        (
            r#"Digest realm="r", nonce="n", uri="x", response="a""#.into(),
            "auth.missing_param",
        ),
        (
            format!("Digest {base}, qop=auth, nc=00000001"),
            "auth.missing_param",
        ),
        (
            format!("Digest {base}, qop=auth, cnonce=\"c\""),
            "auth.missing_param",
        ),
        (
            format!("Digest {base}, qop=auth, cnonce=\"c\", nc=1"),
            "auth.malformed",
        ),
        (
            format!("Digest {base}, qop=auth, cnonce=\"c\", nc=0000000g"),
            "auth.malformed",
        ),
        (
            format!("Digest {base}, qop=auth-int, cnonce=\"c\", nc=00000001"),
            "auth.unsupported_qop",
        ),
        (
            format!("Digest {base}, algorithm=SHA-512-256"),
            "auth.unsupported_algorithm",
        ),
        (
            format!("Digest {base}, algorithm=MD5-sess"),
            "auth.missing_param",
        ),
        (
            format!("Digest {base}, x=\"{}\"", "a".repeat(5000)),
            "auth.header_too_long",
        ),
        (
            format!(
                "Digest {base}{}",
                (0..40).map(|i| format!(", p{i}=1")).collect::<String>()
            ),
            "auth.malformed",
        ),
    ];
    for (h, code) in cases {
        let err = Credentials::parse(&h).unwrap_err();
        assert_eq!(err.code(), code, "{h:?} -> {err:?}");
    }
    assert_eq!(
        Credentials::parse("Digest a=\"x")
            .unwrap_err()
            .sip_status(ChallengeKind::Www),
        400
    );
    // Challenges: missing realm / nonce.
    assert_eq!(
        Challenge::parse(r#"Digest nonce="n""#).unwrap_err(),
        AuthError::MissingParam { name: "realm" }
    );
    assert_eq!(
        Challenge::parse(r#"Digest realm="r""#).unwrap_err(),
        AuthError::MissingParam { name: "nonce" }
    );
    // Deterministic fuzz: every prefix and some byte mutations of a valid header.
    let valid = respond(
        &server().challenges(T0, 3, false)[0],
        "INVITE",
        "sip:a@b",
        "u",
        "p",
        "c",
        1,
    )
    .unwrap();
    for end in 0..=valid.len() {
        if valid.is_char_boundary(end) {
            let _ = Credentials::parse(&valid[..end]);
            let _ = Challenge::parse(&valid[..end]);
        }
    }
    let mut seed = 0x1234_5678u32;
    for _ in 0..2000 {
        let mut bytes = valid.clone().into_bytes();
        for _ in 0..3 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let pos = (seed as usize >> 4) % bytes.len();
            bytes[pos] = b"\"\\,= \r\nAz\x00\x7f"[(seed >> 20) as usize % 11];
        }
        if let Ok(s) = String::from_utf8(bytes) {
            let _ = Credentials::parse(&s);
            let _ = Challenge::parse(&s);
        }
    }
}

#[test]
fn challenge_parse_defaults_and_flags() {
    let c = Challenge::parse(r#"Digest realm="r", nonce="n""#).unwrap();
    assert_eq!(c.algorithm, Algorithm::Md5);
    assert!(!c.qop_auth);
    assert!(!c.stale);
    let c = Challenge::parse(
        r#"Digest realm="r", nonce="n", qop="auth-int,auth", stale=true, domain="sip:x""#,
    )
    .unwrap();
    assert!(c.qop_auth);
    assert!(!c.qop_unsupported_only);
    assert!(c.stale);
    assert_eq!(ChallengeKind::Www.challenge_header(), "WWW-Authenticate");
    assert_eq!(
        ChallengeKind::Proxy.credentials_header(),
        "Proxy-Authorization"
    );
}

#[test]
fn debug_does_not_leak_secret() {
    let dbg = format!("{:?}", DigestServer::new("r", b"topsecret".to_vec()));
    assert!(!dbg.contains("topsecret"));
    assert!(!dbg.contains("116")); // 't' as a byte
}

#[test]
fn find_credentials_by_realm_and_full_flow() {
    let s = server();
    // No credentials: challenge.
    assert_eq!(s.find_credentials(std::iter::empty()), Ok(None));
    let headers = s.challenge_headers(T0, 11, false);
    let ch = pick_challenge(headers.iter().map(String::as_str)).unwrap();
    assert_eq!(ch.algorithm, Algorithm::Sha256);
    let ours = respond(
        &ch,
        "REGISTER",
        "sip:gw.example.net",
        "alice",
        "pw",
        "cn",
        1,
    )
    .unwrap();
    let other = r#"Digest username="x", realm="upstream", nonce="n", uri="u", response="r""#;
    let found = s
        .find_credentials([other, "Digest garbage", ours.as_str()])
        .unwrap()
        .unwrap();
    assert_eq!(
        s.verify(&found, "REGISTER", "alice", Secret::Password("pw"), T0 + 10),
        Ok(())
    );
    assert_eq!(s.find_credentials([other]), Ok(None));
    assert_eq!(
        s.find_credentials(["Digest garbage", other])
            .unwrap_err()
            .code(),
        "auth.malformed"
    );
    // nc is echoed as 8 hex digits.
    let third = respond(
        &ch,
        "REGISTER",
        "sip:gw.example.net",
        "alice",
        "pw",
        "cn",
        0x1f,
    )
    .unwrap();
    assert!(third.ends_with(", qop=auth, nc=0000001f"));
}
