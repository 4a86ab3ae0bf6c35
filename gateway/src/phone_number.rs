//! Phone numbers to E.164 (ITU-T E.164), with the Korean national plan as the default:
//! `070-1234-5678` → `+827012345678`, `010…` → `+8210…`, `02-…` → `+822…`.
//!
//! Carriers write caller numbers many ways (national with a trunk prefix `0`, `+82…`, `82…`
//! without the plus, with hyphens, dots or spaces, or as a SIP/tel URI user part with
//! parameters). A customer must be found again whichever form the next call uses, so every form
//! maps to one canonical string.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneNumberError {
    #[error("empty phone number")]
    Empty,
    #[error("phone number {0:?} has characters other than digits, '+' and separators")]
    BadCharacter(String),
    #[error("phone number {0:?} has the wrong length for E.164 (8 to 15 digits)")]
    BadLength(String),
}

/// Korea's country calling code.
const KOREA_CC: &str = "82";

/// Normalises a number (national Korean or international) to E.164 with a leading `+`.
pub fn normalize_e164(input: &str) -> Result<String, PhoneNumberError> {
    // A SIP or tel URI user part may carry parameters (`;npdi`, `;phone-context=`): RFC 3966 §3.
    let number = input.split(';').next().unwrap_or("").trim();
    if number.is_empty() {
        return Err(PhoneNumberError::Empty);
    }
    let mut digits = String::with_capacity(number.len());
    let mut plus = false;
    for (i, c) in number.chars().enumerate() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if i == 0 => plus = true,
            // Visual separators of RFC 3966 §5.1.1.
            '-' | '.' | ' ' | '(' | ')' => {}
            _ => return Err(PhoneNumberError::BadCharacter(input.to_string())),
        }
    }
    if digits.is_empty() {
        return Err(PhoneNumberError::Empty);
    }
    let international = if plus {
        digits
    } else if let Some(rest) = digits.strip_prefix("00") {
        // ITU international call prefix.
        rest.to_string()
    } else if let Some(rest) = digits.strip_prefix('0') {
        // Korean trunk prefix: 0 + area/mobile/070 code.
        if !(8..=10).contains(&rest.len()) {
            return Err(PhoneNumberError::BadLength(input.to_string()));
        }
        format!("{KOREA_CC}{rest}")
    } else if digits.starts_with(KOREA_CC) && (10..=12).contains(&digits.len()) {
        // Country code written without the plus, as some carriers do in From headers.
        digits
    } else if digits.len() == 8
        && (digits.starts_with("15") || digits.starts_with("16") || digits.starts_with("18"))
    {
        // Korean nationwide service numbers (1588-xxxx …) have no trunk prefix.
        format!("{KOREA_CC}{digits}")
    } else {
        return Err(PhoneNumberError::BadLength(input.to_string()));
    };
    if !(8..=15).contains(&international.len()) || international.starts_with('0') {
        return Err(PhoneNumberError::BadLength(input.to_string()));
    }
    Ok(format!("+{international}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn korean_national_forms() {
        for (input, want) in [
            ("07012345678", "+827012345678"),
            ("070-1234-5678", "+827012345678"),
            ("010.9876.5432", "+821098765432"),
            ("02-123-4567", "+8221234567"),
            ("0212345678", "+82212345678"),
            ("031 123 4567", "+82311234567"),
            ("1588-1234", "+8215881234"),
        ] {
            assert_eq!(normalize_e164(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn international_forms_are_one_customer() {
        for input in [
            "+827012345678",
            "827012345678",
            "00827012345678",
            "+82 70 1234 5678",
            "07012345678;npdi",
            "+82-70-1234-5678;phone-context=+82",
        ] {
            assert_eq!(
                normalize_e164(input).as_deref(),
                Ok("+827012345678"),
                "{input}"
            );
        }
        assert_eq!(
            normalize_e164("+14155550100").as_deref(),
            Ok("+14155550100")
        );
    }

    #[test]
    fn rejects_what_is_not_a_number() {
        assert_eq!(normalize_e164(""), Err(PhoneNumberError::Empty));
        assert_eq!(normalize_e164(";x"), Err(PhoneNumberError::Empty));
        assert!(matches!(
            normalize_e164("anonymous"),
            Err(PhoneNumberError::BadCharacter(_))
        ));
        assert!(matches!(
            normalize_e164("0701+2345678"),
            Err(PhoneNumberError::BadCharacter(_))
        ));
        assert!(matches!(
            normalize_e164("12"),
            Err(PhoneNumberError::BadLength(_))
        ));
        assert!(matches!(
            normalize_e164("+1234567890123456"),
            Err(PhoneNumberError::BadLength(_))
        ));
        assert!(matches!(
            normalize_e164("012"),
            Err(PhoneNumberError::BadLength(_))
        ));
    }
}
