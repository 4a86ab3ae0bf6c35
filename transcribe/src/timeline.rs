//! One speaker-labelled timeline from the two recording channels (left: the customer,
//! right: the managers), each transcribed on its own.

use crate::asr::Segment;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Speaker {
    Customer,
    Manager,
}

impl Speaker {
    pub fn as_str(self) -> &'static str {
        match self {
            Speaker::Customer => "customer",
            Speaker::Manager => "manager",
        }
    }
}

/// What one speaker said without being interrupted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub speaker: Speaker,
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
}

/// Consecutive segments of one speaker are one turn only while the pause between them is
/// shorter than this; a longer pause reads as the speaker starting over.
pub const MAX_PAUSE_IN_TURN_MS: u64 = 2_000;

/// Merges both channels into turns sorted by start time (ties: earlier end first, then the
/// customer). A speaker's consecutive segments with no other speaker starting in between and
/// a pause under [`MAX_PAUSE_IN_TURN_MS`] join into one turn. Segments with no text are dropped.
pub fn merge(customer: Vec<Segment>, managers: Vec<Segment>) -> Vec<Turn> {
    let mut all: Vec<Turn> = customer
        .into_iter()
        .map(|s| (Speaker::Customer, s))
        .chain(managers.into_iter().map(|s| (Speaker::Manager, s)))
        .filter_map(|(speaker, s)| {
            let text = s.text.trim();
            (!text.is_empty()).then(|| Turn {
                speaker,
                start_ms: s.start_ms,
                // A segment whose end precedes its start (never from whisper, but possible from
                // a caller) is read as instantaneous.
                end_ms: s.end_ms.max(s.start_ms),
                text: text.to_owned(),
            })
        })
        .collect();
    all.sort_by_key(|t| (t.start_ms, t.end_ms, t.speaker));

    let mut turns: Vec<Turn> = Vec::with_capacity(all.len());
    for t in all {
        match turns.last_mut() {
            Some(prev)
                if prev.speaker == t.speaker
                    && t.start_ms.saturating_sub(prev.end_ms) < MAX_PAUSE_IN_TURN_MS =>
            {
                prev.end_ms = prev.end_ms.max(t.end_ms);
                prev.text.push(' ');
                prev.text.push_str(&t.text);
            }
            _ => turns.push(t),
        }
    }
    turns
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start_ms: u64, end_ms: u64, text: &str) -> Segment {
        Segment {
            start_ms,
            end_ms,
            text: text.to_owned(),
        }
    }

    fn turn(speaker: Speaker, start_ms: u64, end_ms: u64, text: &str) -> Turn {
        Turn {
            speaker,
            start_ms,
            end_ms,
            text: text.to_owned(),
        }
    }

    use Speaker::{Customer as C, Manager as M};

    #[test]
    fn interleaves_by_time() {
        let customer = vec![seg(0, 2000, " Hello?"), seg(5000, 7000, "I need help.")];
        let managers = vec![seg(2500, 4500, "Good morning, how can I help?")];
        assert_eq!(
            merge(customer, managers),
            vec![
                turn(C, 0, 2000, "Hello?"),
                turn(M, 2500, 4500, "Good morning, how can I help?"),
                turn(C, 5000, 7000, "I need help."),
            ]
        );
    }

    #[test]
    fn a_speakers_consecutive_segments_join_into_one_turn() {
        let customer = vec![
            seg(0, 1000, "My order"),
            seg(1500, 3000, "has not arrived."),
        ];
        assert_eq!(
            merge(customer, vec![]),
            vec![turn(C, 0, 3000, "My order has not arrived.")]
        );
    }

    #[test]
    fn a_long_pause_starts_a_new_turn() {
        let managers = vec![
            seg(0, 1000, "One moment."),
            seg(9000, 10000, "Thanks for waiting."),
        ];
        assert_eq!(merge(vec![], managers).len(), 2);
    }

    #[test]
    fn overlapping_speech_keeps_both_and_interrupts_the_turn() {
        let customer = vec![
            seg(0, 5000, "It broke after a week"),
            seg(5200, 6000, "and"),
        ];
        let managers = vec![seg(2000, 2500, "Oh no.")];
        assert_eq!(
            merge(customer, managers),
            vec![
                turn(C, 0, 5000, "It broke after a week"),
                turn(M, 2000, 2500, "Oh no."),
                turn(C, 5200, 6000, "and"),
            ]
        );
    }

    #[test]
    fn ties_are_deterministic_and_empty_text_is_dropped() {
        let customer = vec![seg(1000, 2000, "yes"), seg(3000, 3100, "   ")];
        let managers = vec![seg(1000, 2000, "yes")];
        assert_eq!(
            merge(customer, managers),
            vec![turn(C, 1000, 2000, "yes"), turn(M, 1000, 2000, "yes")]
        );
    }

    #[test]
    fn unsorted_input_and_inverted_segments_are_tolerated() {
        let customer = vec![seg(9000, 9500, "bye"), seg(4000, 3000, "odd")];
        assert_eq!(
            merge(customer, vec![]),
            vec![turn(C, 4000, 4000, "odd"), turn(C, 9000, 9500, "bye")]
        );
    }

    #[test]
    fn nothing_in_nothing_out() {
        assert!(merge(vec![], vec![]).is_empty());
    }
}
