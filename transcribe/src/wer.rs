//! Word error rate, for checking transcripts against what was said.
//!
//! Both texts are normalised the same way first: lower case, punctuation dropped, apostrophes
//! removed ("don't" = "dont"), hyphens split words, and simple numbers written as words
//! ("42" = "forty two", "1,500" = "one thousand five hundred", "3.5" = "three point five",
//! "21st" = "twenty first", "50%" = "fifty percent"). Known gaps: years and phone numbers read
//! in pairs or digit by digit ("2024" spoken "twenty twenty four"), "and" inside spoken numbers
//! ("one hundred and five"), currency, abbreviations; and languages written without spaces
//! between words need a character error rate instead.

/// (substitutions + deletions + insertions) / reference words, after [`normalize`].
/// An empty reference gives 0.0 for an empty hypothesis and 1.0 otherwise.
pub fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let r = normalize(reference);
    let h = normalize(hypothesis);
    if r.is_empty() {
        return if h.is_empty() { 0.0 } else { 1.0 };
    }
    edit_distance(&r, &h) as f64 / r.len() as f64
}

/// The words a text is compared by (see the module documentation).
pub fn normalize(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let chars: Vec<char> = lower.chars().collect();
    let mut words = Vec::new();
    let mut current = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let prev_digit = i > 0 && chars[i - 1].is_ascii_digit();
        let next_digit = chars.get(i + 1).is_some_and(|n| n.is_ascii_digit());
        if c.is_alphanumeric() {
            current.push(c);
        } else if (c == ',' || c == '.') && prev_digit && next_digit {
            // "1,500" and "3.5" are one number.
            current.push(c);
        } else if c == '\'' || c == '\u{2019}' {
            // Apostrophes join: "don't" and "dont" are the same word.
        } else {
            flush(&mut current, &mut words);
            if c == '%' {
                words.push("percent".to_owned());
            }
        }
        i += 1;
    }
    flush(&mut current, &mut words);
    words
}

fn flush(current: &mut String, words: &mut Vec<String>) {
    if current.is_empty() {
        return;
    }
    let token = std::mem::take(current);
    match number_words(&token) {
        Some(spoken) => words.extend(spoken),
        None => words.push(token),
    }
}

/// "42" -> ["forty", "two"]; None when the token is not a number this handles.
fn number_words(token: &str) -> Option<Vec<String>> {
    if !token.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    for suffix in ["st", "nd", "rd", "th"] {
        if let Some(digits) = token.strip_suffix(suffix) {
            let mut words = cardinal(digits)?;
            let last = words.pop()?;
            words.push(ordinal_of(&last));
            return Some(words);
        }
    }
    if let Some((int, frac)) = token.split_once('.') {
        if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut words = cardinal(int)?;
        words.push("point".to_owned());
        words.extend(frac.bytes().map(|b| ONES[usize::from(b - b'0')].to_owned()));
        return Some(words);
    }
    cardinal(token)
}

const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];
const SCALES: [(u64, &str); 3] = [
    (1_000_000_000, "billion"),
    (1_000_000, "million"),
    (1_000, "thousand"),
];

/// Digits (commas allowed as thousands separators) as English words; None if not that shape
/// or too long to be read as one number (then it is compared as written).
fn cardinal(digits: &str) -> Option<Vec<String>> {
    let plain: String = digits.chars().filter(|&c| c != ',').collect();
    if plain.is_empty() || plain.len() > 12 || !plain.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut n: u64 = plain.parse().ok()?;
    if n == 0 {
        return Some(vec!["zero".to_owned()]);
    }
    let mut words = Vec::new();
    for (scale, name) in SCALES {
        if n >= scale {
            below_thousand(n / scale, &mut words);
            words.push(name.to_owned());
            n %= scale;
        }
    }
    below_thousand(n, &mut words);
    Some(words)
}

fn below_thousand(n: u64, words: &mut Vec<String>) {
    let (hundreds, rest) = (n / 100, n % 100);
    if hundreds > 0 {
        words.push(ONES[hundreds as usize].to_owned());
        words.push("hundred".to_owned());
    }
    if rest >= 20 {
        words.push(TENS[(rest / 10) as usize].to_owned());
        if rest % 10 > 0 {
            words.push(ONES[(rest % 10) as usize].to_owned());
        }
    } else if rest > 0 {
        words.push(ONES[rest as usize].to_owned());
    }
}

fn ordinal_of(word: &str) -> String {
    match word {
        "one" => "first".to_owned(),
        "two" => "second".to_owned(),
        "three" => "third".to_owned(),
        "five" => "fifth".to_owned(),
        "eight" => "eighth".to_owned(),
        "nine" => "ninth".to_owned(),
        "twelve" => "twelfth".to_owned(),
        w if w.ends_with('y') => format!("{}ieth", &w[..w.len() - 1]),
        w => format!("{w}th"),
    }
}

/// Levenshtein distance over words, two rows of memory.
fn edit_distance(a: &[String], b: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, wa) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, wb) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(wa != wb);
            cur[j + 1] = substitution.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn identical_texts_score_zero_whatever_case_and_punctuation() {
        assert_eq!(
            word_error_rate("Hello, world! How are you?", "hello world how are you"),
            0.0
        );
        assert_eq!(word_error_rate("I don't know.", "I dont know"), 0.0);
        assert_eq!(word_error_rate("It’s fine", "its fine"), 0.0);
        assert_eq!(
            word_error_rate("a well-known fact", "a well known fact"),
            0.0
        );
    }

    #[test]
    fn counts_substitutions_deletions_and_insertions() {
        // one substitution in four words
        assert!(close(
            word_error_rate("the cat sat down", "the bat sat down"),
            0.25
        ));
        // one deletion
        assert!(close(
            word_error_rate("the cat sat down", "the cat down"),
            0.25
        ));
        // two insertions
        assert!(close(word_error_rate("the cat", "oh the cat sat"), 1.0));
        // hypothesis empty: all deleted
        assert!(close(word_error_rate("one two three", ""), 1.0));
    }

    #[test]
    fn empty_reference() {
        assert_eq!(word_error_rate("", ""), 0.0);
        assert_eq!(word_error_rate(" ... ", ""), 0.0);
        assert_eq!(word_error_rate("", "something"), 1.0);
    }

    #[test]
    fn digits_and_words_compare_equal() {
        assert_eq!(
            word_error_rate(
                "order number 4521",
                "Order number four thousand five hundred twenty-one."
            ),
            0.0
        );
        assert_eq!(
            word_error_rate(
                "it costs 1,500 won",
                "it costs one thousand five hundred won"
            ),
            0.0
        );
        assert_eq!(word_error_rate("3.5 kilos", "three point five kilos"), 0.0);
        assert_eq!(
            word_error_rate("the 21st of May", "the twenty first of may"),
            0.0
        );
        assert_eq!(word_error_rate("the 12th floor", "the twelfth floor"), 0.0);
        assert_eq!(word_error_rate("50% off", "fifty percent off"), 0.0);
        assert_eq!(word_error_rate("0 items", "zero items"), 0.0);
        assert_eq!(word_error_rate("the 90th", "the ninetieth"), 0.0);
    }

    #[test]
    fn number_words() {
        let n = |s: &str| normalize(s).join(" ");
        assert_eq!(n("7"), "seven");
        assert_eq!(n("13"), "thirteen");
        assert_eq!(n("40"), "forty");
        assert_eq!(n("105"), "one hundred five");
        assert_eq!(n("1000000"), "one million");
        assert_eq!(n("2,000,017"), "two million seventeen");
        assert_eq!(n("3rd"), "third");
        // Not numbers this handles: left as written.
        assert_eq!(n("mp3"), "mp3");
        assert_eq!(n("1234567890123"), "1234567890123");
        assert_eq!(n("4x4"), "4x4");
        // A sentence-final period is punctuation, not a decimal point.
        assert_eq!(n("room 12."), "room twelve");
    }

    #[test]
    fn non_latin_text_is_kept() {
        assert_eq!(
            normalize("안녕하세요, 부산입니다."),
            vec!["안녕하세요", "부산입니다"]
        );
        assert_eq!(
            word_error_rate("안녕하세요 부산입니다", "안녕하세요 서울입니다"),
            0.5
        );
    }
}
