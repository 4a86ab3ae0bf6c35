//! HTTP Range requests for recordings (RFC 9110 §14): one byte range per request; anything
//! else (several ranges, other units) is answered with the whole file, which the RFC allows
//! (§14.2: a server MAY ignore the Range header).

/// What to send for a `Range` header value and a file of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeReply {
    /// 200: the whole file.
    Whole,
    /// 206: bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// 416: no byte of the range is in the file.
    Unsatisfiable,
}

pub fn resolve(range: Option<&str>, size: u64) -> RangeReply {
    let Some(spec) = range.and_then(|r| r.trim().strip_prefix("bytes=")) else {
        return RangeReply::Whole;
    };
    if spec.contains(',') {
        return RangeReply::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeReply::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes (§14.1.2).
        (true, false) => match last.parse::<u64>() {
            Ok(n) if n > 0 && size > 0 => RangeReply::Partial {
                start: size.saturating_sub(n),
                end: size - 1,
            },
            Ok(_) => RangeReply::Unsatisfiable,
            Err(_) => RangeReply::Whole,
        },
        // bytes=A- or bytes=A-B.
        (false, _) => {
            let Ok(start) = first.parse::<u64>() else {
                return RangeReply::Whole;
            };
            let end = if last.is_empty() {
                Some(u64::MAX)
            } else {
                last.parse::<u64>().ok()
            };
            let Some(end) = end else {
                return RangeReply::Whole;
            };
            if end < start {
                return RangeReply::Whole; // invalid: ignored (§14.1.1)
            }
            if start >= size {
                return RangeReply::Unsatisfiable;
            }
            RangeReply::Partial {
                start,
                end: end.min(size - 1),
            }
        }
        (true, true) => RangeReply::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeReply::*;

    #[test]
    fn byte_ranges_per_rfc_9110() {
        assert_eq!(resolve(None, 100), Whole);
        assert_eq!(
            resolve(Some("bytes=0-9"), 100),
            Partial { start: 0, end: 9 }
        );
        assert_eq!(
            resolve(Some("bytes=90-"), 100),
            Partial { start: 90, end: 99 }
        );
        assert_eq!(
            resolve(Some("bytes=90-1000"), 100),
            Partial { start: 90, end: 99 }
        );
        assert_eq!(
            resolve(Some("bytes=-10"), 100),
            Partial { start: 90, end: 99 }
        );
        assert_eq!(
            resolve(Some("bytes=-1000"), 100),
            Partial { start: 0, end: 99 }
        );
        assert_eq!(resolve(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(resolve(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(resolve(Some("bytes=0-"), 0), Unsatisfiable);
        // Ignored: several ranges, other units, nonsense.
        assert_eq!(resolve(Some("bytes=0-1,5-6"), 100), Whole);
        assert_eq!(resolve(Some("items=0-1"), 100), Whole);
        assert_eq!(resolve(Some("bytes=9-1"), 100), Whole);
        assert_eq!(resolve(Some("bytes=x-1"), 100), Whole);
        assert_eq!(resolve(Some("bytes=-"), 100), Whole);
    }
}
