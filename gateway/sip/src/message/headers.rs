//! Tolerant header accessors.
//!
//! rsip parses a header only on `.typed()`, and its typed parsers lose data we need
//! (comma-separated Vias, IPv6 `received=`, `rport`, `tel:` To URIs; see
//! `shared/notes/rsip.md`). These accessors read the header *strings* themselves, so
//! they work on rsip's untyped variants and on `Header::Other` leftovers (including
//! compact names such as `v:` or `i:`) alike, and never panic.

use std::borrow::Cow;

/// Why a header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("malformed {name} header: {reason}")]
    Malformed { name: &'static str, reason: String },
}

impl HeaderError {
    fn malformed(name: &'static str, reason: impl Into<String>) -> Self {
        Self::Malformed {
            name,
            reason: reason.into(),
        }
    }
}

/// RFC 3261 §7.3.3 compact forms plus the IANA "SIP Parameters / Header Fields" list.
pub(crate) fn expand_compact(name: &str) -> Option<&'static str> {
    let mut chars = name.chars();
    let (Some(c), None) = (chars.next(), chars.next()) else {
        return None;
    };
    Some(match c.to_ascii_lowercase() {
        'a' => "Accept-Contact",      // RFC 3841
        'b' => "Referred-By",         // RFC 3892
        'c' => "Content-Type",        // RFC 3261
        'd' => "Request-Disposition", // RFC 3841
        'e' => "Content-Encoding",    // RFC 3261
        'f' => "From",                // RFC 3261
        'i' => "Call-ID",             // RFC 3261
        'j' => "Reject-Contact",      // RFC 3841
        'k' => "Supported",           // RFC 3261
        'l' => "Content-Length",      // RFC 3261
        'm' => "Contact",             // RFC 3261
        'n' => "Identity-Info",       // RFC 4474
        'o' => "Event",               // RFC 6665
        'r' => "Refer-To",            // RFC 3515
        's' => "Subject",             // RFC 3261
        't' => "To",                  // RFC 3261
        'u' => "Allow-Events",        // RFC 6665
        'v' => "Via",                 // RFC 3261
        'x' => "Session-Expires",     // RFC 4028
        'y' => "Identity",            // RFC 8224
        _ => return None,
    })
}

/// Canonical spelling of well-known header names. Names are case-insensitive
/// (RFC 3261 §7.3.1), so rewriting them is lossless; it makes our own lookups and
/// rsip's output stable.
pub(crate) fn canonical_name(name: &str) -> Cow<'_, str> {
    if let Some(long) = expand_compact(name) {
        return Cow::Borrowed(long);
    }
    const KNOWN: &[&str] = &[
        "Accept",
        "Accept-Contact",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Authentication-Info",
        "Authorization",
        "Call-ID",
        "Call-Info",
        "Contact",
        "Content-Disposition",
        "Content-Encoding",
        "Content-Language",
        "Content-Length",
        "Content-Type",
        "CSeq",
        "Date",
        "Error-Info",
        "Event",
        "Expires",
        "From",
        "In-Reply-To",
        "Max-Forwards",
        "MIME-Version",
        "Min-Expires",
        "Organization",
        "Priority",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Require",
        "Record-Route",
        "Refer-To",
        "Referred-By",
        "Reply-To",
        "Require",
        "Retry-After",
        "Route",
        "Server",
        "Session-Expires",
        "Subject",
        "Supported",
        "Timestamp",
        "To",
        "Unsupported",
        "User-Agent",
        "Via",
        "Warning",
        "WWW-Authenticate",
    ];
    match KNOWN.iter().find(|k| k.eq_ignore_ascii_case(name)) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Borrowed(name),
    }
}

/// Whether a header name (long or compact, any case) denotes `canonical`.
pub(crate) fn name_is(name: &str, canonical: &str) -> bool {
    canonical_name(name).eq_ignore_ascii_case(canonical)
}

/// (name, value) of any rsip header, typed-enum or `Other`.
pub(crate) fn name_value(h: &rsip::Header) -> (String, String) {
    match h {
        rsip::Header::Other(n, v) => (n.clone(), v.clone()),
        other => {
            let s = other.to_string();
            match s.split_once(':') {
                Some((n, v)) => (n.trim().to_string(), v.trim().to_string()),
                None => (s, String::new()),
            }
        }
    }
}

/// All values of header `canonical`, with comma-separated lists split for the
/// list-valued headers (RFC 3261 §7.3.1).
pub(crate) fn values(headers: &rsip::Headers, canonical: &str) -> Vec<String> {
    let split = is_list_header(canonical);
    let mut out = Vec::new();
    for h in headers.iter() {
        let (n, v) = name_value(h);
        if !name_is(&n, canonical) {
            continue;
        }
        if split {
            out.extend(
                split_top_level(&v, ',')
                    .into_iter()
                    .map(|s| s.trim().to_string()),
            );
        } else {
            out.push(v);
        }
    }
    out
}

pub(crate) fn is_list_header(canonical: &str) -> bool {
    ["Via", "Contact", "Route", "Record-Route"]
        .iter()
        .any(|n| n.eq_ignore_ascii_case(canonical))
}

/// Splits at `sep` outside quoted strings (with `\` quoted-pairs) and outside `<...>`
/// (a URI inside angle brackets may contain commas and semicolons).
pub(crate) fn split_top_level(value: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut in_quotes = false;
    let mut escaped = false;
    let mut in_angle = false;
    let mut start = 0;
    for (i, c) in value.char_indices() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            '<' => in_angle = true,
            '>' => in_angle = false,
            c if c == sep && !in_angle => {
                parts.push(value.get(start..i).unwrap_or(""));
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(value.get(start..).unwrap_or(""));
    parts
}

/// A parameter list `;a=b;c` split into (name, value) pairs. Whitespace around `;`
/// and `=` is LWS and carries no meaning (RFC 3261 §25.1, `SEMI`, `EQUAL`).
pub(crate) fn parse_params(
    s: &str,
    header: &'static str,
) -> Result<Vec<(String, Option<String>)>, HeaderError> {
    let mut out = Vec::new();
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Ok(out);
    }
    let Some(rest) = trimmed.strip_prefix(';') else {
        return Err(HeaderError::malformed(header, "junk before parameters"));
    };
    for p in split_top_level(rest, ';') {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (p.trim(), None),
        };
        if name.is_empty() || !name.chars().all(is_token_char) {
            return Err(HeaderError::malformed(
                header,
                "empty or invalid parameter name",
            ));
        }
        if let Some(v) = value {
            // Grammar: token / host / quoted-string (§25.1 gen-value). Unquoted values
            // are accepted liberally (carriers send odd tags) as long as nothing in them
            // could change how the header splits: no LWS, quotes or angle brackets.
            let ok = if v.starts_with('"') {
                is_quoted_string(v)
            } else {
                !v.is_empty() && !v.chars().any(|c| c.is_whitespace() || "\"<>".contains(c))
            };
            if !ok {
                return Err(HeaderError::malformed(header, "invalid parameter value"));
            }
        }
        out.push((name.to_string(), value.map(str::to_string)));
    }
    Ok(out)
}

/// RFC 3261 §25.1 `token` characters.
pub(crate) fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_token_char)
}

/// A complete, terminated quoted string (RFC 3261 §25.1 `quoted-string`).
pub(crate) fn is_quoted_string(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('"') else {
        return false;
    };
    let mut escaped = false;
    for (i, c) in inner.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            return i + 1 == inner.len();
        }
    }
    false
}

/// One Via value (RFC 3261 §20.42), parsed from the string so that IPv6 sent-by and
/// `received=` survive intact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViaInfo {
    /// `SIP/2.0` normally; kept as sent (upper-cased) so callers can refuse others.
    pub protocol: String,
    /// Transport token, upper-cased (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, `WSS`, ...).
    pub transport: String,
    /// sent-by host; IPv6 references keep their brackets (`[2001:db8::1]`).
    pub host: String,
    pub port: Option<u16>,
    /// Parameters in order; names as sent.
    pub params: Vec<(String, Option<String>)>,
}

impl ViaInfo {
    fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    pub fn branch(&self) -> Option<&str> {
        self.param("branch").flatten()
    }

    /// `received` (RFC 3261 §18.2.1), brackets of an IPv6 value removed.
    pub fn received(&self) -> Option<&str> {
        self.param("received")
            .flatten()
            .map(|v| v.trim_start_matches('[').trim_end_matches(']'))
    }

    /// RFC 3581: `None` = no `rport`; `Some(None)` = `rport` without value (request
    /// asking for it); `Some(Some(p))` = filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.param("rport").map(|v| v.and_then(|p| p.parse().ok()))
    }

    /// Host without IPv6 brackets.
    pub fn host_unbracketed(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }

    /// Canonical text: `SIP/2.0/UDP host:port;a=b;c`.
    pub fn to_canonical(&self) -> String {
        let mut s = format!("{}/{} {}", self.protocol, self.transport, self.host);
        if let Some(p) = self.port {
            s.push(':');
            s.push_str(&p.to_string());
        }
        for (n, v) in &self.params {
            s.push(';');
            s.push_str(n);
            if let Some(v) = v {
                s.push('=');
                s.push_str(v);
            }
        }
        s
    }
}

/// Parses one Via value. LWS is allowed around `/`, `;`, `=` and `:` (RFC 3261 §25.1
/// `SLASH`, `SEMI`, `EQUAL`, `HCOLON`), e.g. `SIP / 2.0 / UDP host ; branch = x`.
pub fn parse_via(value: &str) -> Result<ViaInfo, HeaderError> {
    const N: &str = "Via";
    let mut parts = value.splitn(3, '/');
    let name = parts.next().unwrap_or("").trim();
    let version = parts.next().unwrap_or("").trim();
    let rest = parts
        .next()
        .ok_or_else(|| HeaderError::malformed(N, "sent-protocol"))?
        .trim_start();
    if !is_token(name) || !is_token(version) {
        return Err(HeaderError::malformed(N, "sent-protocol"));
    }
    let t_end = rest.find(|c: char| !is_token_char(c)).unwrap_or(rest.len());
    let transport = rest.get(..t_end).unwrap_or("");
    if transport.is_empty() {
        return Err(HeaderError::malformed(N, "transport"));
    }
    let after = rest.get(t_end..).unwrap_or("");
    if !after.starts_with([' ', '\t']) {
        return Err(HeaderError::malformed(N, "no space before sent-by"));
    }
    let after = after.trim_start();
    let (sent_by, params) = match after.find(';') {
        Some(i) => (after.get(..i).unwrap_or(""), after.get(i..).unwrap_or("")),
        None => (after, ""),
    };
    let sent_by = sent_by.trim();
    let (host, port) =
        split_host_port(sent_by).ok_or_else(|| HeaderError::malformed(N, "sent-by"))?;
    Ok(ViaInfo {
        protocol: format!("{}/{}", name.to_ascii_uppercase(), version),
        transport: transport.to_ascii_uppercase(),
        host: host.to_string(),
        port,
        params: parse_params(params, N)?,
    })
}

/// `host[:port]`, host being a hostname, IPv4 or bracketed IPv6 reference.
pub(crate) fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if s.starts_with('[') {
        let end = s.find(']')?;
        let host = s.get(..=end)?;
        let inner = host.get(1..end)?;
        if inner.parse::<std::net::Ipv6Addr>().is_err() {
            return None;
        }
        let rest = s.get(end + 1..)?;
        let port = match rest.strip_prefix(':') {
            Some(p) => Some(p.trim()),
            None if rest.trim().is_empty() => None,
            None => return None,
        };
        (host, port)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h.trim(), Some(p.trim())),
            None => (s, None),
        }
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.[]:".contains(c))
    {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    Some((host, port))
}

/// A name-addr / addr-spec header value (From, To, Contact, Route, Record-Route):
/// the URI and the header parameters (RFC 3261 §20.10: without `<>`, parameters after
/// the URI are header parameters, not URI parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NameAddr {
    pub display: Option<String>,
    pub uri: String,
    pub params: Vec<(String, Option<String>)>,
}

pub(crate) fn parse_name_addr(value: &str, header: &'static str) -> Result<NameAddr, HeaderError> {
    let v = value.trim();
    // Find a `<` outside a quoted display name.
    let mut in_quotes = false;
    let mut escaped = false;
    let mut lt = None;
    for (i, c) in v.char_indices() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            '<' => {
                lt = Some(i);
                break;
            }
            _ => {}
        }
    }
    if in_quotes {
        return Err(HeaderError::malformed(header, "unterminated quoted string"));
    }
    match lt {
        Some(i) => {
            let display = v.get(..i).unwrap_or("").trim();
            if !display.is_empty() {
                // display-name = *(token LWS) / quoted-string (§25.1)
                let ok = if display.starts_with('"') {
                    is_quoted_string(display)
                } else {
                    display
                        .split([' ', '\t'])
                        .filter(|t| !t.is_empty())
                        .all(is_token)
                };
                if !ok {
                    return Err(HeaderError::malformed(header, "invalid display name"));
                }
            }
            let rest = v.get(i + 1..).unwrap_or("");
            let gt = rest
                .find('>')
                .ok_or_else(|| HeaderError::malformed(header, "missing '>'"))?;
            let uri = rest.get(..gt).unwrap_or("");
            // No LWS is allowed inside `<...>` (RFC 4475 §3.1.2.14, badaspec).
            if uri.is_empty() || uri.contains([' ', '\t']) || !uri.contains(':') {
                return Err(HeaderError::malformed(header, "invalid URI in <>"));
            }
            let params = parse_params(rest.get(gt + 1..).unwrap_or(""), header)?;
            Ok(NameAddr {
                display: (!display.is_empty()).then(|| display.to_string()),
                uri: uri.to_string(),
                params,
            })
        }
        None => {
            if v.contains(['"', '>']) {
                return Err(HeaderError::malformed(header, "unbalanced '<>' or quotes"));
            }
            let (uri, params) = match v.find(';') {
                Some(i) => (v.get(..i).unwrap_or(""), v.get(i..).unwrap_or("")),
                None => (v, ""),
            };
            let uri = uri.trim();
            let star_contact = header == "Contact" && uri == "*";
            if !star_contact && (uri.is_empty() || uri.contains([' ', '\t']) || !uri.contains(':'))
            {
                return Err(HeaderError::malformed(header, "invalid addr-spec"));
            }
            Ok(NameAddr {
                display: None,
                uri: uri.to_string(),
                params: parse_params(params, header)?,
            })
        }
    }
}

fn single(headers: &rsip::Headers, name: &'static str) -> Result<String, HeaderError> {
    values(headers, name)
        .into_iter()
        .next()
        .ok_or(HeaderError::Missing(name))
}

/// Call-ID (RFC 3261 §20.8).
pub fn call_id(headers: &rsip::Headers) -> Result<String, HeaderError> {
    let v = single(headers, "Call-ID")?;
    if v.is_empty() || v.contains([' ', '\t']) {
        return Err(HeaderError::malformed(
            "Call-ID",
            "empty or contains whitespace",
        ));
    }
    Ok(v)
}

/// CSeq (RFC 3261 §20.16): sequence number and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeqValue {
    pub seq: u32,
    pub method: String,
}

/// Parses a CSeq value; the number must be < 2^31 (§8.1.1.5).
pub fn parse_cseq(v: &str) -> Result<CSeqValue, HeaderError> {
    const N: &str = "CSeq";
    let mut it = v.split([' ', '\t']).filter(|s| !s.is_empty());
    let (Some(num), Some(method), None) = (it.next(), it.next(), it.next()) else {
        return Err(HeaderError::malformed(N, "expected '<number> <method>'"));
    };
    if !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HeaderError::malformed(N, "number is not numeric"));
    }
    // Leading zeros are legal (RFC 4475 wsinv: `0009`).
    let digits = num.trim_start_matches('0');
    let seq: u64 = if digits.is_empty() {
        0
    } else if digits.len() > 10 {
        u64::MAX
    } else {
        digits.parse().unwrap_or(u64::MAX)
    };
    if seq > 0x7FFF_FFFF {
        return Err(HeaderError::malformed(N, "number larger than 2^31-1"));
    }
    if !is_token(method) {
        return Err(HeaderError::malformed(N, "method is not a token"));
    }
    Ok(CSeqValue {
        seq: seq as u32,
        method: method.to_string(),
    })
}

pub fn cseq(headers: &rsip::Headers) -> Result<CSeqValue, HeaderError> {
    parse_cseq(&single(headers, "CSeq")?)
}

fn tag_of(headers: &rsip::Headers, name: &'static str) -> Result<Option<String>, HeaderError> {
    let na = parse_name_addr(&single(headers, name)?, name)?;
    Ok(na
        .params
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("tag"))
        .and_then(|(_, v)| v))
}

/// From tag (§8.1.1.3); works with `tel:` URIs too.
pub fn from_tag(headers: &rsip::Headers) -> Result<Option<String>, HeaderError> {
    tag_of(headers, "From")
}

/// To tag (§8.2.6.2).
pub fn to_tag(headers: &rsip::Headers) -> Result<Option<String>, HeaderError> {
    tag_of(headers, "To")
}

/// All Via values in order, comma-separated ones split.
pub fn vias(headers: &rsip::Headers) -> Result<Vec<ViaInfo>, HeaderError> {
    values(headers, "Via")
        .iter()
        .map(|v| parse_via(v))
        .collect()
}

/// The topmost Via (§8.2.6.2, §18.2.2).
pub fn top_via(headers: &rsip::Headers) -> Result<ViaInfo, HeaderError> {
    parse_via(&single(headers, "Via")?)
}

/// Max-Forwards (§20.22), `None` when absent.
pub fn max_forwards(headers: &rsip::Headers) -> Result<Option<u8>, HeaderError> {
    match values(headers, "Max-Forwards").into_iter().next() {
        None => Ok(None),
        Some(v) => parse_max_forwards(&v).map(Some),
    }
}

pub(crate) fn parse_max_forwards(v: &str) -> Result<u8, HeaderError> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HeaderError::malformed("Max-Forwards", "not numeric"));
    }
    let digits = v.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(0);
    }
    // RFC 4475 §3.1.2.4 (scalar02) treats values above 255 as out of range.
    if digits.len() > 3 {
        return Err(HeaderError::malformed("Max-Forwards", "larger than 255"));
    }
    digits
        .parse::<u8>()
        .map_err(|_| HeaderError::malformed("Max-Forwards", "larger than 255"))
}

/// Content-Type media type (`application/sdp`), lower-cased, parameters dropped.
pub fn content_type(headers: &rsip::Headers) -> Option<String> {
    let v = values(headers, "Content-Type").into_iter().next()?;
    let media = v.split(';').next()?.trim();
    let media: String = media.chars().filter(|c| !c.is_whitespace()).collect();
    (!media.is_empty()).then(|| media.to_ascii_lowercase())
}

/// Every value of a header by its canonical name, in order (comma lists split for Via,
/// Contact, Route and Record-Route only: challenges like WWW-Authenticate contain commas).
pub fn all_values(headers: &rsip::Headers, canonical: &str) -> Vec<String> {
    values(headers, canonical)
}

/// The first value of a header by its canonical name (compact forms were expanded by the
/// normaliser), trimmed; `None` when absent.
pub fn first_value(headers: &rsip::Headers, canonical: &str) -> Option<String> {
    values(headers, canonical)
        .into_iter()
        .next()
        .map(|v| v.trim().to_string())
}

/// Option tags of `Require`, `Supported` or `Proxy-Require` (RFC 3261 §20.32, §19.2): the
/// comma-separated tokens of every such header, trimmed, lower-cased.
pub fn option_tags(headers: &rsip::Headers, canonical: &str) -> Vec<String> {
    values(headers, canonical)
        .iter()
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// URI of the first Contact, `None` when absent or `*`.
pub fn contact_uri(headers: &rsip::Headers) -> Result<Option<String>, HeaderError> {
    let Some(v) = values(headers, "Contact").into_iter().next() else {
        return Ok(None);
    };
    let na = parse_name_addr(&v, "Contact")?;
    Ok((na.uri != "*").then_some(na.uri))
}

/// The RFC 3261 magic cookie (§8.1.1.7): branch starts with `z9hG4bK`. A branch that is
/// exactly the cookie carries no transaction id (RFC 4475 §3.2.1, badbranch) and is
/// treated as pre-3261.
pub fn is_rfc3261_branch(branch: &str) -> bool {
    branch.len() > 7 && branch.starts_with("z9hG4bK")
}

/// The Request-URI as it was on the wire. `tel:` URIs are carried through rsip as
/// `tel://...` (its URI parser needs `://` for non-SIP schemes); this undoes that.
pub fn request_uri_string(req: &rsip::Request) -> String {
    let s = req.uri.to_string();
    match s.get(..6) {
        Some(p) if p.eq_ignore_ascii_case("tel://") => format!("tel:{}", s.get(6..).unwrap_or("")),
        _ => s,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn hdrs(list: &[(&str, &str)]) -> rsip::Headers {
        let mut h = rsip::Headers::default();
        for (n, v) in list {
            h.push(rsip::Header::Other(n.to_string(), v.to_string()));
        }
        h
    }

    #[test]
    fn option_tags_split_and_normalise() {
        let msg = "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nRequire: 100rel, Timer\r\nRequire: precondition\r\nContent-Length: 0\r\n\r\n";
        let rsip::SipMessage::Request(req) = rsip::SipMessage::try_from(msg).unwrap() else {
            panic!("request")
        };
        assert_eq!(
            option_tags(&req.headers, "Require"),
            ["100rel", "timer", "precondition"]
        );
        assert!(option_tags(&req.headers, "Supported").is_empty());
    }

    #[test]
    fn via_with_lws_ipv6_rport_received() {
        let v = parse_via(
            "SIP / 2.0 / udp [2001:db8::1]:5070 ; branch = z9hG4bKabc ;rport;received=2001:db8::20",
        )
        .unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, "[2001:db8::1]");
        assert_eq!(v.host_unbracketed(), "2001:db8::1");
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.branch(), Some("z9hG4bKabc"));
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.received(), Some("2001:db8::20"));
        assert_eq!(
            v.to_canonical(),
            "SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bKabc;rport;received=2001:db8::20"
        );
    }

    #[test]
    fn via_rejects_garbage() {
        for bad in [
            "",
            "SIP/2.0",
            "SIP/2.0/UDP",
            "SIP/2.0/UDP host;;",
            "SIP/2.0/UDP host:99999",
            "SIP/2.0/UDPhost",
            "SIP/2.0/UDP [zz]",
        ] {
            assert!(parse_via(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn accessors_on_other_headers_with_compact_names() {
        let h = hdrs(&[
            ("v", "SIP/2.0/TCP a.example.com;branch=z9hG4bK1, SIP/2.0/UDP b.example.com:5062;rport=1234;branch=x"),
            ("i", "abc@host"),
            ("CSEQ", "0009 INVITE"),
            ("f", "\"A, B\" <tel:+15551234;phone-context=x>;tag=ft"),
            ("t", "sip:bob@example.com;tag=tt"),
            ("Max-Forwards", "070"),
            ("c", "Application/SDP; charset=x"),
            ("m", "<sip:bob@[2001:db8::1]:5060>;q=0.5"),
        ]);
        assert_eq!(call_id(&h).unwrap(), "abc@host");
        assert_eq!(
            cseq(&h).unwrap(),
            CSeqValue {
                seq: 9,
                method: "INVITE".into()
            }
        );
        assert_eq!(from_tag(&h).unwrap().as_deref(), Some("ft"));
        assert_eq!(to_tag(&h).unwrap().as_deref(), Some("tt"));
        let vs = vias(&h).unwrap();
        assert_eq!(vs.len(), 2);
        assert_eq!(vs[1].rport(), Some(Some(1234)));
        assert_eq!(top_via(&h).unwrap().transport, "TCP");
        assert_eq!(max_forwards(&h).unwrap(), Some(70));
        assert_eq!(content_type(&h).as_deref(), Some("application/sdp"));
        assert_eq!(
            contact_uri(&h).unwrap().as_deref(),
            Some("sip:bob@[2001:db8::1]:5060")
        );
    }

    #[test]
    fn accessors_report_missing_and_malformed() {
        let h = hdrs(&[
            ("CSeq", "99999999999 INVITE"),
            ("Max-Forwards", "seventy"),
            ("To", "<sip:a@b"),
        ]);
        assert_eq!(call_id(&h), Err(HeaderError::Missing("Call-ID")));
        assert!(matches!(cseq(&h), Err(HeaderError::Malformed { .. })));
        assert!(max_forwards(&h).is_err());
        assert!(to_tag(&h).is_err());
        assert!(top_via(&h).is_err());
        assert_eq!(contact_uri(&h), Ok(None));
    }

    #[test]
    fn magic_cookie() {
        assert!(is_rfc3261_branch("z9hG4bK776asdhds"));
        assert!(!is_rfc3261_branch("z9hG4bK"));
        assert!(!is_rfc3261_branch("390skdjuw"));
        assert!(!is_rfc3261_branch("Z9HG4BKabc"));
    }

    #[test]
    fn name_addr_checks() {
        assert!(parse_name_addr("\"Watson, Thomas\" < sip:t.watson@example.org >", "To").is_err());
        assert!(
            parse_name_addr("Bell, Alexander <sip:a.g.bell@example.com>;tag=43", "From").is_err()
        );
        assert!(parse_name_addr("\"Mr. J. User <sip:j.user@example.com>", "From").is_err());
        assert!(parse_name_addr("caller<sip:caller@example.com>;tag=323", "From").is_ok());
        assert!(parse_name_addr("sip:caller@example.net;;tag=1", "From").is_err());
        let na = parse_name_addr("sip:u@h;tag=1", "To").unwrap();
        assert_eq!(na.uri, "sip:u@h");
        assert_eq!(na.params, vec![("tag".to_string(), Some("1".to_string()))]);
    }

    #[test]
    fn split_respects_quotes_and_angles() {
        assert_eq!(
            split_top_level("\"a,b\" <sip:x;y,z>;p, <sip:q>", ','),
            vec!["\"a,b\" <sip:x;y,z>;p", " <sip:q>"]
        );
    }
}
