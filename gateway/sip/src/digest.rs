//! Digest authentication for SIP (RFC 3261 §22, RFC 7616 algorithms, RFC 8760 SHA-256 for SIP).
//!
//! Sans-IO like the rest of the crate: the caller passes `now` (unix milliseconds) and the random
//! bits used in nonces, so tests are deterministic.
//!
//! - Server side: [`DigestServer`] issues [`Challenge`]s (the value of `WWW-Authenticate` for a
//!   401 or `Proxy-Authenticate` for a 407) with *stateless* nonces (timestamp + random + HMAC, see
//!   [`DigestServer::issue_nonce`]) and verifies [`Credentials`] parsed from `Authorization` /
//!   `Proxy-Authorization`.
//! - Client side: [`Challenge::parse`], [`pick_challenge`] (prefers SHA-256, RFC 8760 §2.4) and
//!   [`respond`] build the credentials for our outgoing INVITE / REGISTER.
//!
//! Not supported on purpose: `qop=auth-int` (needs the body hash; no SIP carrier we target uses
//! it), `userhash` (RFC 7616 §3.4.4; a SIP username is not secret), SHA-512-256 (not in RFC 8760's
//! required set). Nonce-count replay tracking needs per-nonce state and is left to the caller; the
//! nonce lifetime bounds the replay window.

use std::fmt;
use std::time::Duration;

use md5::Md5;
use sha2::{Digest as _, Sha256};

/// Longest header value we parse. Real challenges / credentials are ~300–600 bytes; the bound
/// keeps a hostile peer from making us scan megabytes (DESIGN.md principle 5).
pub const MAX_HEADER_LEN: usize = 4096;
/// Most parameters in one header value (a valid one has at most ~12).
const MAX_PARAMS: usize = 32;
/// Clock skew tolerated between gateway nodes sharing a nonce secret.
const FUTURE_SKEW_MS: u64 = 5_000;

/// Errors from parsing or verifying digest headers. Each variant has a stable [`code`](Self::code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("header value longer than {max} bytes")]
    TooLong { max: usize },
    #[error("authentication scheme is not Digest")]
    NotDigest,
    #[error("malformed digest header: {reason}")]
    Malformed { reason: &'static str },
    #[error("duplicate digest parameter `{name}`")]
    DuplicateParam { name: String },
    #[error("missing digest parameter `{name}`")]
    MissingParam { name: &'static str },
    #[error("unsupported digest algorithm `{algorithm}`")]
    UnsupportedAlgorithm { algorithm: String },
    #[error("unsupported qop `{qop}`")]
    UnsupportedQop { qop: String },
    #[error("no usable challenge (no supported algorithm / qop)")]
    NoUsableChallenge,
    #[error("realm `{got}` does not match")]
    RealmMismatch { got: String },
    #[error("username `{got}` does not match")]
    UsernameMismatch { got: String },
    #[error("opaque does not match")]
    OpaqueMismatch,
    #[error("nonce was not issued by us or was tampered with")]
    InvalidNonce,
    #[error("nonce is stale")]
    StaleNonce,
    #[error("stored HA1 does not fit algorithm {algorithm}")]
    Ha1AlgorithmMismatch { algorithm: Algorithm },
    #[error("wrong credentials")]
    WrongCredentials,
}

impl AuthError {
    /// Stable machine-readable code (logs, metrics, API).
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::TooLong { .. } => "auth.header_too_long",
            AuthError::NotDigest => "auth.unsupported_scheme",
            AuthError::Malformed { .. } => "auth.malformed",
            AuthError::DuplicateParam { .. } => "auth.duplicate_param",
            AuthError::MissingParam { .. } => "auth.missing_param",
            AuthError::UnsupportedAlgorithm { .. } => "auth.unsupported_algorithm",
            AuthError::UnsupportedQop { .. } => "auth.unsupported_qop",
            AuthError::NoUsableChallenge => "auth.no_usable_challenge",
            AuthError::RealmMismatch { .. } => "auth.realm_mismatch",
            AuthError::UsernameMismatch { .. } => "auth.username_mismatch",
            AuthError::OpaqueMismatch => "auth.opaque_mismatch",
            AuthError::InvalidNonce => "auth.invalid_nonce",
            AuthError::StaleNonce => "auth.stale_nonce",
            AuthError::Ha1AlgorithmMismatch { .. } => "auth.ha1_algorithm_mismatch",
            AuthError::WrongCredentials => "auth.bad_credentials",
        }
    }

    /// True when the right reaction is a fresh challenge with `stale=TRUE` (RFC 7616 §3.3): the
    /// digest was correct for the nonce, only the nonce expired, so the UA may retry silently.
    pub fn is_stale(&self) -> bool {
        matches!(self, AuthError::StaleNonce)
    }

    /// SIP status a server answers with: 400 for a header we cannot read, otherwise the
    /// challenge status of `kind` (401 / 407) so the UA can retry (RFC 3261 §22.1, §22.3).
    pub fn sip_status(&self, kind: ChallengeKind) -> u16 {
        match self {
            AuthError::TooLong { .. }
            | AuthError::Malformed { .. }
            | AuthError::DuplicateParam { .. }
            | AuthError::MissingParam { .. } => 400,
            _ => kind.status(),
        }
    }
}

/// Digest hash algorithms (RFC 7616 §3.2, RFC 8760 §2.2). The `-sess` forms hash the nonce and
/// cnonce into HA1 (RFC 7616 §3.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

impl Algorithm {
    /// Token as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    /// Parse an algorithm token; tokens are case-insensitive (RFC 7616 §3.3).
    pub fn parse(token: &str) -> Option<Algorithm> {
        [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
        ]
        .into_iter()
        .find(|a| a.as_str().eq_ignore_ascii_case(token))
    }

    /// True for the `-sess` variants.
    pub fn is_session(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    /// Length in hex characters of this algorithm's digests (and so of HA1 / response).
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => 32,
            Algorithm::Sha256 | Algorithm::Sha256Sess => 64,
        }
    }

    /// Lower-case hex digest of the `:`-joined parts, the `H(a:b:c)` of RFC 7616 §3.4.
    fn hash_joined(self, parts: &[&str]) -> String {
        fn run<D: sha2::Digest>(mut d: D, parts: &[&str]) -> String {
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p.as_bytes());
            }
            hex::encode(d.finalize())
        }
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => run(Md5::new(), parts),
            Algorithm::Sha256 | Algorithm::Sha256Sess => run(Sha256::new(), parts),
        }
    }

    /// Preference rank when choosing among several challenges: lower is better.
    fn rank(self) -> u8 {
        match self {
            Algorithm::Sha256 => 0,
            Algorithm::Sha256Sess => 1,
            Algorithm::Md5 => 2,
            Algorithm::Md5Sess => 3,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which challenge header / status pair is used (RFC 3261 §22.1 vs §22.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    /// UAS authentication: 401 + `WWW-Authenticate`, answered with `Authorization`.
    Www,
    /// Proxy authentication: 407 + `Proxy-Authenticate`, answered with `Proxy-Authorization`.
    Proxy,
}

impl ChallengeKind {
    pub fn status(self) -> u16 {
        match self {
            ChallengeKind::Www => 401,
            ChallengeKind::Proxy => 407,
        }
    }
    /// Header that carries the challenge.
    pub fn challenge_header(self) -> &'static str {
        match self {
            ChallengeKind::Www => "WWW-Authenticate",
            ChallengeKind::Proxy => "Proxy-Authenticate",
        }
    }
    /// Header the client answers with.
    pub fn credentials_header(self) -> &'static str {
        match self {
            ChallengeKind::Www => "Authorization",
            ChallengeKind::Proxy => "Proxy-Authorization",
        }
    }
}

/// A parsed or to-be-sent digest challenge (RFC 7616 §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub algorithm: Algorithm,
    /// `qop="auth"` offered. Servers built here always offer it; RFC 2069 peers may not.
    pub qop_auth: bool,
    /// The challenge offered only qop values we do not support (e.g. `auth-int`).
    pub qop_unsupported_only: bool,
    pub opaque: Option<String>,
    pub stale: bool,
}

impl Challenge {
    /// Serialize as a `WWW-Authenticate` / `Proxy-Authenticate` header value.
    pub fn to_header_value(&self) -> String {
        let mut s = String::with_capacity(160);
        s.push_str("Digest realm=");
        push_quoted(&mut s, &self.realm);
        s.push_str(", nonce=");
        push_quoted(&mut s, &self.nonce);
        s.push_str(", algorithm=");
        s.push_str(self.algorithm.as_str());
        if self.qop_auth {
            s.push_str(", qop=\"auth\"");
        }
        if let Some(opaque) = &self.opaque {
            s.push_str(", opaque=");
            push_quoted(&mut s, opaque);
        }
        if self.stale {
            // RFC 7616 §3.3 spells the flag in upper case in its examples; values are
            // compared case-insensitively.
            s.push_str(", stale=TRUE");
        }
        s
    }

    /// Parse a challenge header value. Unknown parameters are ignored; an unknown algorithm
    /// is an error (the caller skips that challenge and tries the next header).
    pub fn parse(value: &str) -> Result<Challenge, AuthError> {
        let params = parse_digest_params(value)?;
        let realm = params
            .get("realm")
            .ok_or(AuthError::MissingParam { name: "realm" })?;
        let nonce = params
            .get("nonce")
            .ok_or(AuthError::MissingParam { name: "nonce" })?;
        // Absent algorithm means MD5 (RFC 7616 §3.3).
        let algorithm = match params.get("algorithm") {
            None => Algorithm::Md5,
            Some(a) => Algorithm::parse(a).ok_or_else(|| AuthError::UnsupportedAlgorithm {
                algorithm: a.to_owned(),
            })?,
        };
        // qop is a quoted, comma-separated list of tokens (RFC 7616 §3.3).
        let (qop_auth, qop_unsupported_only) = match params.get("qop") {
            None => (false, false),
            Some(list) => {
                let auth = list
                    .split(',')
                    .any(|q| q.trim().eq_ignore_ascii_case("auth"));
                (auth, !auth)
            }
        };
        let stale = params
            .get("stale")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        Ok(Challenge {
            realm: realm.to_owned(),
            nonce: nonce.to_owned(),
            algorithm,
            qop_auth,
            qop_unsupported_only,
            opaque: params.get("opaque").map(str::to_owned),
            stale,
        })
    }
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_header_value())
    }
}

/// `qop` value used in credentials. Only `auth` is supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qop {
    Auth,
}

/// Parsed `Authorization` / `Proxy-Authorization` value (RFC 7616 §3.4, RFC 3261 §22.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    /// Lower-cased hex response.
    pub response: String,
    pub algorithm: Algorithm,
    /// `None` is the RFC 2069 form (no qop, no cnonce, no nc).
    pub qop: Option<Qop>,
    pub cnonce: Option<String>,
    pub nc: Option<u32>,
    pub opaque: Option<String>,
}

impl Credentials {
    /// Parse a credentials header value. Quoted strings may contain escapes, parameters may come
    /// in any order, unknown ones are ignored and duplicates are rejected (RFC 7616 §3.4: each
    /// directive at most once).
    pub fn parse(value: &str) -> Result<Credentials, AuthError> {
        let params = parse_digest_params(value)?;
        let req = |name: &'static str| {
            params
                .get(name)
                .map(str::to_owned)
                .ok_or(AuthError::MissingParam { name })
        };
        let algorithm = match params.get("algorithm") {
            None => Algorithm::Md5,
            Some(a) => Algorithm::parse(a).ok_or_else(|| AuthError::UnsupportedAlgorithm {
                algorithm: a.to_owned(),
            })?,
        };
        let qop = match params.get("qop") {
            None => None,
            Some(q) if q.eq_ignore_ascii_case("auth") => Some(Qop::Auth),
            Some(q) => return Err(AuthError::UnsupportedQop { qop: q.to_owned() }),
        };
        let cnonce = params.get("cnonce").map(str::to_owned);
        let nc = match params.get("nc") {
            None => None,
            // nc is exactly 8 hex digits (RFC 7616 §3.4).
            Some(n) if n.len() == 8 && n.bytes().all(|b| b.is_ascii_hexdigit()) => Some(
                u32::from_str_radix(n, 16).map_err(|_| AuthError::Malformed {
                    reason: "nc is not 8 hex digits",
                })?,
            ),
            Some(_) => {
                return Err(AuthError::Malformed {
                    reason: "nc is not 8 hex digits",
                })
            }
        };
        // With qop, cnonce and nc are mandatory (RFC 7616 §3.4); without, the RFC 2069 form
        // must not carry them half-way, and -sess needs a cnonce.
        if qop.is_some() {
            if cnonce.is_none() {
                return Err(AuthError::MissingParam { name: "cnonce" });
            }
            if nc.is_none() {
                return Err(AuthError::MissingParam { name: "nc" });
            }
        } else if algorithm.is_session() && cnonce.is_none() {
            return Err(AuthError::MissingParam { name: "cnonce" });
        }
        let response = req("response")?.to_ascii_lowercase();
        Ok(Credentials {
            username: req("username")?,
            realm: req("realm")?,
            nonce: req("nonce")?,
            uri: req("uri")?,
            response,
            algorithm,
            qop,
            cnonce,
            nc,
            opaque: params.get("opaque").map(str::to_owned),
        })
    }

    /// Serialize as an `Authorization` / `Proxy-Authorization` header value.
    pub fn to_header_value(&self) -> String {
        let mut s = String::with_capacity(256);
        s.push_str("Digest username=");
        push_quoted(&mut s, &self.username);
        s.push_str(", realm=");
        push_quoted(&mut s, &self.realm);
        s.push_str(", nonce=");
        push_quoted(&mut s, &self.nonce);
        s.push_str(", uri=");
        push_quoted(&mut s, &self.uri);
        s.push_str(", response=\"");
        s.push_str(&self.response);
        s.push_str("\", algorithm=");
        s.push_str(self.algorithm.as_str());
        if let Some(cnonce) = &self.cnonce {
            s.push_str(", cnonce=");
            push_quoted(&mut s, cnonce);
        }
        if let Some(opaque) = &self.opaque {
            s.push_str(", opaque=");
            push_quoted(&mut s, opaque);
        }
        // qop and nc are unquoted tokens in credentials (RFC 7616 §3.4).
        if self.qop.is_some() {
            s.push_str(", qop=auth");
        }
        if let Some(nc) = self.nc {
            s.push_str(&format!(", nc={nc:08x}"));
        }
        s
    }

    /// The response value these credentials should carry for `method` and the given secret
    /// (RFC 7616 §3.4.1). Uses the credentials' own nonce / cnonce / nc / uri.
    pub fn expected_response(&self, method: &str, secret: Secret<'_>) -> Result<String, AuthError> {
        let ha1 = match secret {
            Secret::Password(password) => ha1(
                self.algorithm,
                &self.username,
                &self.realm,
                password,
                &self.nonce,
                self.cnonce.as_deref(),
            ),
            Secret::Ha1(stored) => {
                if stored.len() != self.algorithm.hex_len() {
                    return Err(AuthError::Ha1AlgorithmMismatch {
                        algorithm: self.algorithm,
                    });
                }
                let stored = stored.to_ascii_lowercase();
                if self.algorithm.is_session() {
                    // RFC 7616 §3.4.2: HA1-sess = H(H(user:realm:pass):nonce:cnonce).
                    let cnonce = self.cnonce.as_deref().unwrap_or("");
                    self.algorithm.hash_joined(&[&stored, &self.nonce, cnonce])
                } else {
                    stored
                }
            }
        };
        let qop = self
            .qop
            .map(|_| (self.nc.unwrap_or(0), self.cnonce.as_deref().unwrap_or("")));
        Ok(response_from_ha1(
            self.algorithm,
            &ha1,
            &self.nonce,
            qop,
            method,
            &self.uri,
        ))
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_header_value())
    }
}

/// What the server knows about the user.
#[derive(Debug, Clone, Copy)]
pub enum Secret<'a> {
    /// The clear-text password.
    Password(&'a str),
    /// A stored `H(username:realm:password)` in hex. Its length must match the algorithm used by
    /// the client (32 hex for MD5, 64 for SHA-256); store one per algorithm you offer.
    Ha1(&'a str),
}

/// `H(username:realm:password)`, or its `-sess` form (RFC 7616 §3.4.2).
pub fn ha1(
    algorithm: Algorithm,
    username: &str,
    realm: &str,
    password: &str,
    nonce: &str,
    cnonce: Option<&str>,
) -> String {
    let base = algorithm.hash_joined(&[username, realm, password]);
    if algorithm.is_session() {
        algorithm.hash_joined(&[&base, nonce, cnonce.unwrap_or("")])
    } else {
        base
    }
}

/// The request digest from HA1 (RFC 7616 §3.4.1; RFC 2069 form when `qop` is `None`).
/// `qop` carries `(nc, cnonce)` for `qop=auth`.
pub fn response_from_ha1(
    algorithm: Algorithm,
    ha1: &str,
    nonce: &str,
    qop: Option<(u32, &str)>,
    method: &str,
    uri: &str,
) -> String {
    // A2 = Method ":" request-uri for qop=auth or no qop (RFC 7616 §3.4.3).
    let ha2 = algorithm.hash_joined(&[method, uri]);
    match qop {
        Some((nc, cnonce)) => {
            let nc = format!("{nc:08x}");
            algorithm.hash_joined(&[ha1, nonce, &nc, cnonce, "auth", &ha2])
        }
        None => algorithm.hash_joined(&[ha1, nonce, &ha2]),
    }
}

// ---------------------------------------------------------------------------------------------
// Server side
// ---------------------------------------------------------------------------------------------

/// Issues challenges and verifies credentials for one realm.
///
/// Nonces are stateless (any node sharing `secret` can verify them): `hex(ts_ms) || hex(random)
/// || hex(HMAC-SHA256(secret, ts_ms || random || realm)[..16])`. The HMAC stops forgery (RFC 7616
/// §5.5 suggests a timestamp plus a private-key hash), the timestamp gives expiry, the random
/// part keeps concurrent challenges distinct.
#[derive(Clone)]
pub struct DigestServer {
    realm: String,
    secret: Vec<u8>,
    nonce_lifetime: Duration,
    /// Offered and accepted algorithms, most preferred first.
    algorithms: Vec<Algorithm>,
    opaque: Option<String>,
    allow_rfc2069: bool,
}

impl fmt::Debug for DigestServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("DigestServer")
            .field("realm", &self.realm)
            .field("nonce_lifetime", &self.nonce_lifetime)
            .field("algorithms", &self.algorithms)
            .field("opaque", &self.opaque)
            .field("allow_rfc2069", &self.allow_rfc2069)
            .finish_non_exhaustive()
    }
}

impl DigestServer {
    /// A server for `realm` with SHA-256 and MD5 offered (SHA-256 first, RFC 8760 §2.4),
    /// `qop=auth`, a 5-minute nonce lifetime and RFC 2069 clients accepted.
    pub fn new(realm: impl Into<String>, secret: impl Into<Vec<u8>>) -> DigestServer {
        DigestServer {
            realm: realm.into(),
            secret: secret.into(),
            nonce_lifetime: Duration::from_secs(300),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            opaque: None,
            allow_rfc2069: true,
        }
    }

    /// How long a nonce stays fresh.
    pub fn with_nonce_lifetime(mut self, lifetime: Duration) -> Self {
        self.nonce_lifetime = lifetime;
        self
    }

    /// Algorithms offered (one challenge each, in this order) and accepted. Empty keeps the
    /// default, since a server that accepts nothing is a configuration mistake.
    pub fn with_algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        if !algorithms.is_empty() {
            self.algorithms = algorithms.to_vec();
        }
        self
    }

    /// An `opaque` value sent with challenges and required back unchanged.
    pub fn with_opaque(mut self, opaque: impl Into<String>) -> Self {
        self.opaque = Some(opaque.into());
        self
    }

    /// Whether to accept credentials without qop (RFC 2069 form). Default true: some old
    /// carrier equipment still sends it.
    pub fn with_rfc2069(mut self, allow: bool) -> Self {
        self.allow_rfc2069 = allow;
        self
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// A fresh nonce for `now_ms` (unix milliseconds) and caller-supplied randomness.
    pub fn issue_nonce(&self, now_ms: u64, random: u64) -> String {
        let mac = self.nonce_mac(now_ms, random);
        format!("{now_ms:016x}{random:016x}{}", hex::encode(&mac[..16]))
    }

    fn nonce_mac(&self, ts: u64, random: u64) -> [u8; 32] {
        hmac_sha256(
            &self.secret,
            &[
                &ts.to_be_bytes(),
                &random.to_be_bytes(),
                self.realm.as_bytes(),
            ],
        )
    }

    /// Check a nonce: `Err(InvalidNonce)` when not ours or tampered, `Err(StaleNonce)` when
    /// older than the lifetime (or implausibly far in the future).
    pub fn check_nonce(&self, nonce: &str, now_ms: u64) -> Result<(), AuthError> {
        let b = nonce.as_bytes();
        if b.len() != 64 || !b.iter().all(u8::is_ascii_hexdigit) {
            return Err(AuthError::InvalidNonce);
        }
        let ts = u64::from_str_radix(&nonce[..16], 16).map_err(|_| AuthError::InvalidNonce)?;
        let random =
            u64::from_str_radix(&nonce[16..32], 16).map_err(|_| AuthError::InvalidNonce)?;
        let got = hex::decode(&nonce[32..]).map_err(|_| AuthError::InvalidNonce)?;
        let mac = self.nonce_mac(ts, random);
        if !constant_time_eq(&got, &mac[..16]) {
            return Err(AuthError::InvalidNonce);
        }
        let lifetime = u64::try_from(self.nonce_lifetime.as_millis()).unwrap_or(u64::MAX);
        if now_ms.saturating_sub(ts) > lifetime || ts > now_ms.saturating_add(FUTURE_SKEW_MS) {
            return Err(AuthError::StaleNonce);
        }
        Ok(())
    }

    /// Challenges to send, one per configured algorithm in preference order (RFC 8760 §2.4: each
    /// algorithm its own header, most preferred first). All share one nonce. Set `stale` after
    /// [`AuthError::is_stale`].
    pub fn challenges(&self, now_ms: u64, random: u64, stale: bool) -> Vec<Challenge> {
        let nonce = self.issue_nonce(now_ms, random);
        self.algorithms
            .iter()
            .map(|&algorithm| Challenge {
                realm: self.realm.clone(),
                nonce: nonce.clone(),
                algorithm,
                qop_auth: true,
                qop_unsupported_only: false,
                opaque: self.opaque.clone(),
                stale,
            })
            .collect()
    }

    /// Header values for [`challenges`](Self::challenges), ready to add as repeated
    /// `WWW-Authenticate` / `Proxy-Authenticate` headers in this order.
    pub fn challenge_headers(&self, now_ms: u64, random: u64, stale: bool) -> Vec<String> {
        self.challenges(now_ms, random, stale)
            .iter()
            .map(Challenge::to_header_value)
            .collect()
    }

    /// Pick the credentials meant for our realm among all `Authorization` /
    /// `Proxy-Authorization` header values of a request (RFC 3261 §22.3: a request may carry
    /// one per realm along the path). `Ok(None)` means none is for us: challenge. A parse error
    /// is returned only when no header was usable, so another realm's malformed header does not
    /// fail our check.
    pub fn find_credentials<'a, I>(
        &self,
        header_values: I,
    ) -> Result<Option<Credentials>, AuthError>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut first_error = None;
        for value in header_values {
            match Credentials::parse(value) {
                Ok(c) if c.realm == self.realm => return Ok(Some(c)),
                Ok(_) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    /// Verify credentials for a request with `method`.
    ///
    /// Order matters: the digest is checked before freshness so that `StaleNonce` is only
    /// reported when the credentials were right (RFC 7616 §3.3: stale=TRUE means "retry with a new
    /// nonce without asking the user"). The caller should also check `credentials.uri` against
    /// the Request-URI (RFC 3261 §22.4); URI equivalence (§19.1.4) lives in the message layer.
    pub fn verify(
        &self,
        credentials: &Credentials,
        method: &str,
        expected_username: &str,
        secret: Secret<'_>,
        now_ms: u64,
    ) -> Result<(), AuthError> {
        if !self.algorithms.contains(&credentials.algorithm) {
            return Err(AuthError::UnsupportedAlgorithm {
                algorithm: credentials.algorithm.as_str().to_owned(),
            });
        }
        if credentials.qop.is_none() && !self.allow_rfc2069 {
            return Err(AuthError::MissingParam { name: "qop" });
        }
        if credentials.realm != self.realm {
            return Err(AuthError::RealmMismatch {
                got: credentials.realm.clone(),
            });
        }
        if credentials.username != expected_username {
            return Err(AuthError::UsernameMismatch {
                got: credentials.username.clone(),
            });
        }
        if let Some(opaque) = &self.opaque {
            if credentials.opaque.as_deref() != Some(opaque.as_str()) {
                return Err(AuthError::OpaqueMismatch);
            }
        }
        let fresh = match self.check_nonce(&credentials.nonce, now_ms) {
            Ok(()) => true,
            Err(AuthError::StaleNonce) => false,
            Err(e) => return Err(e),
        };
        let expected = credentials.expected_response(method, secret)?;
        if !constant_time_eq(expected.as_bytes(), credentials.response.as_bytes()) {
            return Err(AuthError::WrongCredentials);
        }
        if !fresh {
            return Err(AuthError::StaleNonce);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------------

/// Parse every challenge header value and pick the one to answer: the best supported algorithm
/// (SHA-256 before MD5, RFC 8760 §2.4), skipping unparsable ones and ones that only offer qop
/// values we cannot do. `None` if nothing is usable.
pub fn pick_challenge<'a, I>(header_values: I) -> Option<Challenge>
where
    I: IntoIterator<Item = &'a str>,
{
    header_values
        .into_iter()
        .filter_map(|v| Challenge::parse(v).ok())
        .filter(|c| !c.qop_unsupported_only)
        .min_by_key(|c| c.algorithm.rank())
}

/// Build the credentials header value answering `challenge` (RFC 7616 §3.4).
///
/// `cnonce` must be fresh client randomness (the caller injects it), `nc` counts requests sent
/// with this nonce starting at 1. With a challenge lacking qop the RFC 2069 form is used.
pub fn respond(
    challenge: &Challenge,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Result<String, AuthError> {
    Ok(
        respond_credentials(challenge, method, uri, username, password, cnonce, nc)?
            .to_header_value(),
    )
}

/// Like [`respond`] but returns the structured credentials.
pub fn respond_credentials(
    challenge: &Challenge,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Result<Credentials, AuthError> {
    if challenge.qop_unsupported_only {
        return Err(AuthError::NoUsableChallenge);
    }
    let use_qop = challenge.qop_auth;
    let sess = challenge.algorithm.is_session();
    let cnonce_opt = (use_qop || sess).then(|| cnonce.to_owned());
    let ha1 = ha1(
        challenge.algorithm,
        username,
        &challenge.realm,
        password,
        &challenge.nonce,
        cnonce_opt.as_deref(),
    );
    let response = response_from_ha1(
        challenge.algorithm,
        &ha1,
        &challenge.nonce,
        use_qop.then_some((nc, cnonce)),
        method,
        uri,
    );
    Ok(Credentials {
        username: username.to_owned(),
        realm: challenge.realm.clone(),
        nonce: challenge.nonce.clone(),
        uri: uri.to_owned(),
        response,
        algorithm: challenge.algorithm,
        qop: use_qop.then_some(Qop::Auth),
        cnonce: cnonce_opt,
        nc: use_qop.then_some(nc),
        opaque: challenge.opaque.clone(),
    })
}

// ---------------------------------------------------------------------------------------------
// Parameter parsing (RFC 7235 §2.1 auth-param list / RFC 3261 §25.1 grammar)
// ---------------------------------------------------------------------------------------------

/// Parameters of a Digest header, names lower-cased. Small linear map: ≤ MAX_PARAMS entries.
#[derive(Debug, Default)]
struct Params {
    items: Vec<(String, String)>,
}

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn is_token_char(b: u8) -> bool {
    // RFC 3261 §25.1 token characters.
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Parse `Digest k=v, k="v", ...`. Rejects duplicates, unterminated quotes, control characters
/// and oversized input; never panics (only byte-index arithmetic on ASCII positions).
fn parse_digest_params(value: &str) -> Result<Params, AuthError> {
    if value.len() > MAX_HEADER_LEN {
        return Err(AuthError::TooLong {
            max: MAX_HEADER_LEN,
        });
    }
    let b = value.as_bytes();
    let mut i = 0;
    while i < b.len() && is_lws(b[i]) {
        i += 1;
    }
    let scheme_start = i;
    while i < b.len() && is_token_char(b[i]) {
        i += 1;
    }
    if !value[scheme_start..i].eq_ignore_ascii_case("digest") {
        return Err(AuthError::NotDigest);
    }
    if i < b.len() && !is_lws(b[i]) {
        return Err(AuthError::Malformed {
            reason: "no space after scheme",
        });
    }
    let mut params = Params::default();
    loop {
        // Skip whitespace and empty list elements (`#rule` allows `a=1,,b=2`).
        while i < b.len() && (is_lws(b[i]) || b[i] == b',') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let name_start = i;
        while i < b.len() && is_token_char(b[i]) {
            i += 1;
        }
        if i == name_start {
            return Err(AuthError::Malformed {
                reason: "expected parameter name",
            });
        }
        let name = value[name_start..i].to_ascii_lowercase();
        while i < b.len() && is_lws(b[i]) {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            return Err(AuthError::Malformed {
                reason: "expected `=` after parameter name",
            });
        }
        i += 1;
        while i < b.len() && is_lws(b[i]) {
            i += 1;
        }
        let val = if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut out = Vec::new();
            loop {
                match b.get(i) {
                    None => {
                        return Err(AuthError::Malformed {
                            reason: "unterminated quoted string",
                        })
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    // quoted-pair: `\` escapes any char except CR/LF (RFC 3261 §25.1).
                    Some(b'\\') => match b.get(i + 1) {
                        Some(&c) if c != b'\r' && c != b'\n' => {
                            out.push(c);
                            i += 2;
                        }
                        _ => {
                            return Err(AuthError::Malformed {
                                reason: "bad escape in quoted string",
                            })
                        }
                    },
                    Some(&c) if (c < 0x20 && c != b'\t') || c == 0x7f => {
                        return Err(AuthError::Malformed {
                            reason: "control character in quoted string",
                        })
                    }
                    Some(&c) => {
                        out.push(c);
                        i += 1;
                    }
                }
            }
            // Input was &str and we removed only ASCII backslashes before bytes, so this is
            // UTF-8 unless an escape split a multi-byte char (`\` + lead byte): reject that.
            String::from_utf8(out).map_err(|_| AuthError::Malformed {
                reason: "invalid UTF-8 in quoted string",
            })?
        } else {
            let start = i;
            while i < b.len() && is_token_char(b[i]) {
                i += 1;
            }
            if i == start {
                return Err(AuthError::Malformed {
                    reason: "expected parameter value",
                });
            }
            value[start..i].to_owned()
        };
        if params.items.iter().any(|(n, _)| *n == name) {
            return Err(AuthError::DuplicateParam { name });
        }
        if params.items.len() >= MAX_PARAMS {
            return Err(AuthError::Malformed {
                reason: "too many parameters",
            });
        }
        params.items.push((name, val));
        while i < b.len() && is_lws(b[i]) {
            i += 1;
        }
        match b.get(i) {
            None => break,
            Some(b',') => i += 1,
            Some(_) => {
                return Err(AuthError::Malformed {
                    reason: "expected `,` between parameters",
                })
            }
        }
    }
    if params.items.is_empty() {
        return Err(AuthError::Malformed {
            reason: "no parameters",
        });
    }
    Ok(params)
}

/// Append `"value"` with `"` and `\` escaped (RFC 3261 §25.1 quoted-pair).
fn push_quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// Compare without an early exit so timing does not reveal the matching prefix length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// HMAC-SHA256 (RFC 2104) over the concatenation of `parts`. Written out (a dozen lines) rather
/// than adding the `hmac` crate to the dependency set.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|x| x ^ 0x36));
    for p in parts {
        inner.update(p);
    }
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(k.map(|x| x ^ 0x5c));
    outer.update(inner);
    outer.finalize().into()
}

#[cfg(test)]
mod tests;
