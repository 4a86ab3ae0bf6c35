//! Media counters of this node, summed over all calls, for `/metrics`: what the carriers and
//! browsers sent us, what we forwarded, and what was lost or concealed on the way. Each call
//! adds its bridge's counters about once a second and when it ends.

use std::sync::atomic::{AtomicU64, Ordering};

use media::bridge::BridgeStats;

#[derive(Default)]
pub struct MediaMetrics {
    carrier_packets: AtomicU64,
    carrier_dropped: AtomicU64,
    carrier_discarded: AtomicU64,
    carrier_concealed: AtomicU64,
    frames_to_browser: AtomicU64,
    browser_packets: AtomicU64,
    browser_discarded: AtomicU64,
    browser_concealed: AtomicU64,
    packets_to_carrier: AtomicU64,
}

impl MediaMetrics {
    /// Adds what a call counted since it last reported (`before`) up to `now`.
    pub fn add(&self, before: &BridgeStats, now: &BridgeStats) {
        let rows = [
            (
                &self.carrier_packets,
                before.carrier_packets,
                now.carrier_packets,
            ),
            (
                &self.carrier_dropped,
                before.carrier_dropped,
                now.carrier_dropped,
            ),
            (
                &self.carrier_discarded,
                before.carrier_discarded,
                now.carrier_discarded,
            ),
            (
                &self.carrier_concealed,
                before.carrier_concealed,
                now.carrier_concealed,
            ),
            (
                &self.frames_to_browser,
                before.frames_to_browser,
                now.frames_to_browser,
            ),
            (
                &self.browser_packets,
                before.browser_packets,
                now.browser_packets,
            ),
            (
                &self.browser_discarded,
                before.browser_discarded,
                now.browser_discarded,
            ),
            (
                &self.browser_concealed,
                before.browser_concealed,
                now.browser_concealed,
            ),
            (
                &self.packets_to_carrier,
                before.packets_to_carrier,
                now.packets_to_carrier,
            ),
        ];
        for (counter, before, now) in rows {
            counter.fetch_add(now.saturating_sub(before), Ordering::Relaxed);
        }
    }

    pub fn render_prometheus(&self) -> String {
        let rows = [
            (
                "media_carrier_packets_total",
                &self.carrier_packets,
                "carrier audio packets received",
            ),
            (
                "media_carrier_dropped_total",
                &self.carrier_dropped,
                "carrier packets not RTP or of a payload type not negotiated",
            ),
            (
                "media_carrier_discarded_total",
                &self.carrier_discarded,
                "carrier audio packets too late or outside the jitter window",
            ),
            (
                "media_carrier_concealed_total",
                &self.carrier_concealed,
                "carrier packets missing at playout, replaced by a faded repeat of the last one",
            ),
            (
                "media_frames_to_browser_total",
                &self.frames_to_browser,
                "Opus frames sent to browsers",
            ),
            (
                "media_browser_packets_total",
                &self.browser_packets,
                "browser Opus packets received",
            ),
            (
                "media_browser_discarded_total",
                &self.browser_discarded,
                "browser packets too late or outside the jitter window",
            ),
            (
                "media_browser_concealed_total",
                &self.browser_concealed,
                "browser 20 ms frames missing at playout, concealed by the Opus decoder",
            ),
            (
                "media_packets_to_carrier_total",
                &self.packets_to_carrier,
                "RTP packets sent to carriers",
            ),
        ];
        let mut out = String::new();
        for (name, value, help) in rows {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                value.load(Ordering::Relaxed)
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_only_what_changed_since_the_last_report() {
        let m = MediaMetrics::default();
        let first = BridgeStats {
            carrier_packets: 50,
            carrier_concealed: 1,
            ..BridgeStats::default()
        };
        m.add(&BridgeStats::default(), &first);
        let second = BridgeStats {
            carrier_packets: 120,
            ..first.clone()
        };
        m.add(&first, &second);
        let text = m.render_prometheus();
        assert!(
            text.contains("\nmedia_carrier_packets_total 120\n"),
            "{text}"
        );
        assert!(
            text.contains("\nmedia_carrier_concealed_total 1\n"),
            "{text}"
        );
        assert!(
            text.contains("\nmedia_packets_to_carrier_total 0\n"),
            "{text}"
        );
    }
}
