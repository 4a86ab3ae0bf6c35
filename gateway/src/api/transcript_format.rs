//! A transcript as plain text and as WebVTT (W3C WebVTT: a cue per turn, the speaker in a
//! voice span), from the speaker-labelled turns the worker stores.

use schemas::api::TranscriptTurn;

/// `mm:ss`, or `h:mm:ss` past an hour.
fn clock(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

fn speaker_label(speaker: &str) -> &str {
    match speaker {
        "customer" => "Customer",
        "manager" => "Manager",
        other => other,
    }
}

/// One line per turn: `[01:05] Customer: text`.
pub fn plain_text(turns: &[TranscriptTurn]) -> String {
    turns
        .iter()
        .map(|t| {
            format!(
                "[{}] {}: {}\n",
                clock(t.start_ms),
                speaker_label(&t.speaker),
                t.text
            )
        })
        .collect()
}

/// `hh:mm:ss.ttt` as WebVTT timestamps are written.
fn vtt_time(ms: i64) -> String {
    let ms = ms.max(0);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Cue text may not hold `-->`, and `&`, `<`, `>` must be escaped.
fn vtt_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace("--&gt;", "-&gt;")
}

pub fn webvtt(turns: &[TranscriptTurn]) -> String {
    let mut out = String::from("WEBVTT\n");
    for (i, t) in turns.iter().enumerate() {
        // A cue must not end before it starts.
        let end = t.end_ms.max(t.start_ms);
        out.push_str(&format!(
            "\n{}\n{} --> {}\n<v {}>{}\n",
            i + 1,
            vtt_time(t.start_ms),
            vtt_time(end),
            speaker_label(&t.speaker),
            vtt_escape(&t.text.replace('\n', " "))
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(speaker: &str, start_ms: i64, end_ms: i64, text: &str) -> TranscriptTurn {
        TranscriptTurn {
            speaker: speaker.to_string(),
            start_ms,
            end_ms,
            text: text.to_string(),
        }
    }

    #[test]
    fn plain_text_has_a_line_per_turn() {
        let t = [
            turn("customer", 1_200, 3_000, "My order 1234 has not arrived."),
            turn("manager", 3_500, 6_000, "Let me check."),
            turn("customer", 3_661_000, 3_662_000, "Thanks"),
        ];
        assert_eq!(
            plain_text(&t),
            "[00:01] Customer: My order 1234 has not arrived.\n\
             [00:03] Manager: Let me check.\n\
             [1:01:01] Customer: Thanks\n"
        );
    }

    #[test]
    fn webvtt_cues_carry_the_speaker_and_escape_markup() {
        let t = [
            turn("customer", 1_200, 3_000, "a <b> & c --> d"),
            turn("manager", 3_661_005, 3_661_000, "x"),
        ];
        assert_eq!(
            webvtt(&t),
            "WEBVTT\n\
             \n1\n00:00:01.200 --> 00:00:03.000\n<v Customer>a &lt;b&gt; &amp; c -&gt; d\n\
             \n2\n01:01:01.005 --> 01:01:01.005\n<v Manager>x\n"
        );
    }
}
