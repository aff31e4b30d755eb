//! Synthetic Asterisk CDR files with known counts, for import tests and benchmarks.
//!
//! The numbers are random, not anyone's: `333` followed by random digits, in the shapes
//! carriers send (`+39 ...`, `0039...`, `39...`, national).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Tz;

/// A generated `Master.csv` and what an import of it must find.
#[derive(Debug, Clone)]
pub struct SyntheticCdr {
    pub csv: String,
    pub calls: usize,
    /// Calls answered by an operator (`ANSWERED` with an operator channel).
    pub answered: usize,
    /// Every other call (`NO ANSWER`, `BUSY`, `FAILED`, `CONGESTION`).
    pub missed: usize,
    /// Calls from `anonymous`.
    pub withheld: usize,
    /// Distinct caller numbers once normalised to E.164 (withheld callers not counted).
    pub distinct_callers: usize,
    /// Answered calls per answering extension.
    pub per_extension: BTreeMap<String, usize>,
}

/// A small deterministic generator (xorshift64*): the same seed gives the same file.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('"', "\"\""))
}

/// Generates `calls` inbound calls to a queue, a few seconds apart from 2026-03-02 08:30
/// (Europe/Rome), with about 70 % answered by extensions 201 to 212.
pub fn synthetic_cdr(calls: usize, seed: u64) -> SyntheticCdr {
    let zone: Tz = chrono_tz::Europe::Rome;
    let mut rng = Rng(seed | 1);
    let pool = (calls / 3).max(1);
    let numbers: Vec<String> = (0..pool)
        .map(|_| format!("333{:07}", rng.below(10_000_000)))
        .collect();

    let mut out = String::with_capacity(calls * 260);
    let mut truth = SyntheticCdr {
        csv: String::new(),
        calls,
        answered: 0,
        missed: 0,
        withheld: 0,
        distinct_callers: 0,
        per_extension: BTreeMap::new(),
    };
    let mut callers = BTreeSet::new();
    let mut at: DateTime<Utc> = Utc
        .with_ymd_and_hms(2026, 3, 2, 7, 30, 0)
        .single()
        .unwrap_or_default();
    let local = |t: DateTime<Utc>| {
        t.with_timezone(&zone)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    };

    for i in 0..calls {
        at += Duration::seconds(5 + rng.below(85) as i64);
        let src = if rng.below(100) < 4 {
            truth.withheld += 1;
            "anonymous".to_owned()
        } else {
            let national = &numbers[rng.below(pool as u64) as usize];
            callers.insert(national.clone());
            match rng.below(4) {
                0 => format!("+39 {national}"),
                1 => format!("0039{national}"),
                2 => format!("39{national}"),
                _ => national.clone(),
            }
        };
        let wait = Duration::seconds(3 + rng.below(60) as i64);
        let roll = rng.below(100);
        let (disposition, answered_by) = match roll {
            0..70 => ("ANSWERED", Some(format!("{}", 201 + rng.below(12)))),
            70..85 => ("NO ANSWER", None),
            85..93 => ("BUSY", None),
            93..97 => ("FAILED", None),
            _ => ("CONGESTION", None),
        };
        let (answer, end) = match &answered_by {
            Some(ext) => {
                truth.answered += 1;
                *truth.per_extension.entry(ext.clone()).or_default() += 1;
                let answer = at + wait;
                (
                    Some(answer),
                    answer + Duration::seconds(20 + rng.below(600) as i64),
                )
            }
            None => {
                truth.missed += 1;
                (None, at + wait)
            }
        };
        let duration = (end - at).num_seconds();
        let billsec = answer.map_or(0, |a| (end - a).num_seconds());
        let dstchannel = answered_by
            .as_deref()
            .map_or(String::new(), |ext| format!("PJSIP/{ext}-{:08x}", i));
        let fields = [
            quoted(""),
            quoted(&src),
            quoted("020202"),
            quoted("welfare-in"),
            quoted(&format!("\"\" <{src}>")),
            quoted(&format!("PJSIP/trunk-a-{:08x}", i)),
            quoted(&dstchannel),
            quoted("Queue"),
            quoted("sostegno,tTr,,,300"),
            quoted(&local(at)),
            answer.map_or(String::new(), |a| quoted(&local(a))),
            quoted(&local(end)),
            duration.to_string(),
            billsec.to_string(),
            quoted(disposition),
            quoted("DOCUMENTATION"),
            quoted(&format!("{}.{i}", at.timestamp())),
            quoted(""),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    truth.distinct_callers = callers.len();
    truth.csv = out;
    truth
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdr::{CdrReader, DEFAULT_CDR_TIMEZONE};
    use crate::record::CallOutcome;

    #[test]
    fn parsing_a_synthetic_file_finds_exactly_its_counts() {
        let synth = synthetic_cdr(3_000, 7);
        let mut answered = 0;
        let mut missed = 0;
        let mut withheld = 0;
        let mut callers = BTreeSet::new();
        let mut ids = BTreeSet::new();
        let mut per_extension: BTreeMap<String, usize> = BTreeMap::new();
        for row in CdrReader::new(synth.csv.as_bytes(), DEFAULT_CDR_TIMEZONE) {
            let row = row.unwrap_or_else(|e| panic!("{e}"));
            assert!(ids.insert(row.call_id.clone()), "uniqueid repeated");
            let record = row.to_record("cdr");
            assert_eq!(
                crate::record::CallRecord::fold(&row.to_events("cdr"))
                    .ok()
                    .flatten()
                    .as_ref(),
                Some(&record)
            );
            match record.outcome {
                Some(CallOutcome::Answered) => {
                    answered += 1;
                    *per_extension
                        .entry(row.answered_extension.clone().unwrap_or_default())
                        .or_default() += 1;
                }
                Some(CallOutcome::Missed) => missed += 1,
                other => panic!("unexpected outcome {other:?}"),
            }
            match record.citizen_number() {
                Some(n) => {
                    callers.insert(n.clone());
                }
                None => withheld += 1,
            }
        }
        assert_eq!(ids.len(), synth.calls);
        assert_eq!(
            (answered, missed, withheld),
            (synth.answered, synth.missed, synth.withheld)
        );
        assert_eq!(callers.len(), synth.distinct_callers);
        assert_eq!(per_extension, synth.per_extension);
        assert!(
            synth.answered > 1_800 && synth.missed > 600,
            "{} {}",
            synth.answered,
            synth.missed
        );
    }

    #[test]
    fn same_seed_same_file() {
        assert_eq!(synthetic_cdr(50, 3).csv, synthetic_cdr(50, 3).csv);
        assert_ne!(synthetic_cdr(50, 3).csv, synthetic_cdr(50, 4).csv);
    }
}
