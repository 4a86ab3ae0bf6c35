//! Tolerant, bounded SDP reader (RFC 8866 §5, §9 grammar).
//!
//! Tolerance (Postel, but safe): CRLF or bare LF, trailing whitespace, blank lines, unknown line
//! types (`i=`, `u=`, `k=`, `z=`, ...) ignored, unknown attributes kept verbatim, malformed
//! *known* attributes kept verbatim as unknown ones rather than failing the call. Structure
//! (`v=` first, `o=`, `m=` syntax, numeric ports) is strict: a wrong port or payload type would
//! send media to the wrong place.

use super::{
    Attribute, Connection, Direction, Fmtp, Media, Origin, Rtcp, RtpMap, SdpError,
    SessionDescription, MAX_ATTRIBUTES, MAX_FORMATS, MAX_MEDIA, MAX_SDP_LEN,
};

pub(super) fn parse(input: &str) -> Result<SessionDescription, SdpError> {
    if input.len() > MAX_SDP_LEN {
        return Err(SdpError::TooLarge {
            len: input.len(),
            max: MAX_SDP_LEN,
        });
    }
    let mut origin: Option<Origin> = None;
    let mut session_name: Option<String> = None;
    let mut connection: Option<Connection> = None;
    let mut bandwidth = Vec::new();
    let mut timing: Option<(u64, u64)> = None;
    let mut direction: Option<Direction> = None;
    let mut attributes = Vec::new();
    let mut media: Vec<Media> = Vec::new();
    let mut seen_version = false;
    let mut attr_count = 0usize;

    for (index, raw) in input.split('\n').enumerate() {
        let line_no = index + 1;
        let invalid = |reason| SdpError::InvalidLine {
            line: line_no,
            reason,
        };
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let line = line.trim_end_matches([' ', '\t']);
        if line.is_empty() {
            continue;
        }
        // NUL, bare CR and other C0 controls (except tab) never belong in SDP (RFC 8866 §9
        // `text` excludes NUL, CR, LF).
        if line.bytes().any(|b| b < 0x20 && b != b'\t') {
            return Err(invalid("control character"));
        }
        let bytes = line.as_bytes();
        if bytes.len() < 2 || bytes[1] != b'=' || !bytes[0].is_ascii_lowercase() {
            return Err(invalid("expected `<type>=<value>`"));
        }
        let kind = bytes[0];
        let value = &line[2..];
        if !seen_version {
            // RFC 8866 §5: the description starts with `v=0`.
            if kind != b'v' {
                return Err(SdpError::MissingField { field: "v" });
            }
            if value.trim() != "0" {
                return Err(invalid("unsupported SDP version"));
            }
            seen_version = true;
            continue;
        }
        match kind {
            b'v' => return Err(invalid("duplicate v= line")),
            b'o' => {
                if origin.is_some() || !media.is_empty() {
                    return Err(invalid("unexpected o= line"));
                }
                origin = Some(parse_origin(value).ok_or_else(|| invalid("malformed o= line"))?);
            }
            b's' if session_name.is_none() && media.is_empty() => {
                session_name = Some(value.trim().to_owned());
            }
            b'c' => {
                let c = parse_connection(value).ok_or_else(|| invalid("malformed c= line"))?;
                match media.last_mut() {
                    Some(m) => {
                        if m.connection.is_none() {
                            m.connection = Some(c);
                        }
                    }
                    None => {
                        if connection.is_none() {
                            connection = Some(c);
                        }
                    }
                }
            }
            b'b' => match media.last_mut() {
                Some(m) => m.bandwidth.push(value.to_owned()),
                None => bandwidth.push(value.to_owned()),
            },
            b't' if timing.is_none() && media.is_empty() => {
                timing = parse_timing(value);
            }
            b'm' => {
                if media.len() >= MAX_MEDIA {
                    return Err(SdpError::TooMany {
                        what: "media lines",
                        max: MAX_MEDIA,
                    });
                }
                media.push(parse_media_line(value).map_err(invalid)?);
            }
            b'a' => {
                attr_count += 1;
                if attr_count > MAX_ATTRIBUTES {
                    return Err(SdpError::TooMany {
                        what: "attributes",
                        max: MAX_ATTRIBUTES,
                    });
                }
                let (name, val) = match value.split_once(':') {
                    Some((n, v)) => (n, Some(v)),
                    None => (value, None),
                };
                match media.last_mut() {
                    Some(m) => apply_media_attribute(m, name, val),
                    None => {
                        if let (Some(d), None) = (Direction::parse(name), val) {
                            direction = Some(d);
                        } else {
                            attributes.push(Attribute {
                                name: name.to_owned(),
                                value: val.map(str::to_owned),
                            });
                        }
                    }
                }
            }
            // i, u, e, p, r, z, k and unknown letters: ignored (RFC 8866 §5: parsers SHOULD
            // ignore unknown types).
            _ => {}
        }
    }

    if !seen_version {
        return Err(SdpError::MissingField { field: "v" });
    }
    let origin = origin.ok_or(SdpError::MissingField { field: "o" })?;
    Ok(SessionDescription {
        origin,
        session_name: session_name.unwrap_or_default(),
        connection,
        bandwidth,
        timing,
        direction,
        attributes,
        media,
    })
}

fn parse_origin(value: &str) -> Option<Origin> {
    let mut it = value.split_ascii_whitespace();
    let o = Origin {
        username: it.next()?.to_owned(),
        session_id: it.next()?.to_owned(),
        session_version: it.next()?.to_owned(),
        net_type: it.next()?.to_owned(),
        addr_type: it.next()?.to_owned(),
        address: it.next()?.to_owned(),
    };
    it.next().is_none().then_some(o)
}

fn parse_connection(value: &str) -> Option<Connection> {
    let mut it = value.split_ascii_whitespace();
    let net_type = it.next()?.to_owned();
    let addr_type = it.next()?.to_owned();
    let address = it.next()?;
    if it.next().is_some() {
        return None;
    }
    // Drop a multicast `/ttl[/count]` suffix (RFC 8866 §5.7); we never join multicast.
    let address = address.split('/').next().unwrap_or(address).to_owned();
    if address.is_empty() {
        return None;
    }
    Some(Connection {
        net_type,
        addr_type,
        address,
    })
}

fn parse_timing(value: &str) -> Option<(u64, u64)> {
    let mut it = value.split_ascii_whitespace();
    let start = it.next()?.parse().ok()?;
    let stop = it.next()?.parse().ok()?;
    Some((start, stop))
}

fn parse_media_line(value: &str) -> Result<Media, &'static str> {
    let mut it = value.split_ascii_whitespace();
    let kind = it.next().ok_or("malformed m= line")?;
    let port_field = it.next().ok_or("malformed m= line")?;
    let proto = it.next().ok_or("malformed m= line")?;
    let (port, port_count) = match port_field.split_once('/') {
        Some((p, n)) => (p, Some(n.parse::<u16>().map_err(|_| "bad port count")?)),
        None => (port_field, None),
    };
    let port = port.parse::<u16>().map_err(|_| "bad media port")?;
    let mut formats = Vec::new();
    for f in it {
        if formats.len() >= MAX_FORMATS {
            return Err("too many formats on m= line");
        }
        formats.push(f.to_owned());
    }
    // RFC 8866 §5.14: at least one format.
    if formats.is_empty() {
        return Err("m= line without formats");
    }
    // For RTP profiles the formats are payload type numbers (RFC 3551 §3: 0–127).
    if proto.to_ascii_uppercase().starts_with("RTP/")
        && formats
            .iter()
            .any(|f| f.parse::<u8>().map_or(true, |pt| pt > 127))
    {
        return Err("RTP format is not a payload type 0-127");
    }
    Ok(Media {
        kind: kind.to_owned(),
        port,
        port_count,
        proto: proto.to_owned(),
        formats,
        ..Media::default()
    })
}

/// Apply one media-level attribute. Malformed values of known attributes are kept as unknown
/// attributes (ignored for negotiation) instead of failing the whole call.
fn apply_media_attribute(m: &mut Media, name: &str, val: Option<&str>) {
    let known = match (name.to_ascii_lowercase().as_str(), val) {
        ("rtpmap", Some(v)) => parse_rtpmap(v).map(|r| {
            // First rtpmap per payload type wins; duplicates are ignored.
            if m.rtpmap(r.payload_type).is_none() {
                m.rtpmaps.push(r);
            }
        }),
        ("fmtp", Some(v)) => v.split_once(' ').map(|(fmt_, params)| {
            if m.fmtp(fmt_).is_none() {
                m.fmtps.push(Fmtp {
                    format: fmt_.to_owned(),
                    params: params.trim().to_owned(),
                });
            }
        }),
        ("ptime", Some(v)) => parse_ms(v).map(|p| m.ptime = Some(p)),
        ("maxptime", Some(v)) => parse_ms(v).map(|p| m.maxptime = Some(p)),
        ("rtcp", Some(v)) => parse_rtcp(v).map(|r| m.rtcp = Some(r)),
        (n, None) => Direction::parse(n).map(|d| m.direction = Some(d)),
        _ => None,
    };
    if known.is_none() {
        m.attributes.push(Attribute {
            name: name.to_owned(),
            value: val.map(str::to_owned),
        });
    }
}

fn parse_rtpmap(v: &str) -> Option<RtpMap> {
    let (pt, rest) = v.trim().split_once([' ', '\t'])?;
    let payload_type: u8 = pt.parse().ok().filter(|pt| *pt <= 127)?;
    let mut parts = rest.trim().split('/');
    let encoding = parts.next()?.trim();
    if encoding.is_empty() {
        return None;
    }
    let clock_rate: u32 = parts.next()?.trim().parse().ok()?;
    let channels = match parts.next() {
        Some(c) => Some(c.trim().parse::<u16>().ok()?),
        None => None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(RtpMap {
        payload_type,
        encoding: encoding.to_owned(),
        clock_rate,
        channels,
    })
}

/// ptime / maxptime in ms; some UAs write fractions (`a=ptime:20.0`), accepted and truncated.
fn parse_ms(v: &str) -> Option<u32> {
    let v = v.trim();
    let int = v.split_once('.').map_or(v, |(i, _)| i);
    int.parse::<u32>().ok().filter(|p| *p > 0 && *p <= 10_000)
}

fn parse_rtcp(v: &str) -> Option<Rtcp> {
    let v = v.trim();
    let (port, rest) = match v.split_once([' ', '\t']) {
        Some((p, r)) => (p, Some(r)),
        None => (v, None),
    };
    let port = port.parse::<u16>().ok()?;
    let connection = match rest {
        Some(r) => Some(parse_connection(r)?),
        None => None,
    };
    Some(Rtcp { port, connection })
}
