//! The sample switchboard files in tests/data (copies of /work/shared/samples), read end to end.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use sportello_phone::cdr::{CdrReader, DEFAULT_CDR_TIMEZONE};
use sportello_phone::{
    Answerer, CallEvent, CallOutcome, CallRecord, CtiError, Direction, Party, native_json,
    parse_cti_json, parse_native,
};

const CDR: &str = include_str!("data/asterisk-cdr-sample.csv");
const CTI: &str = include_str!("data/zammad-cti-sample.jsonl");

fn number(p: Option<&Party>) -> Option<String> {
    p.map(|p| p.to_string())
}

#[test]
fn cdr_sample_rows() {
    let rows: Vec<_> = CdrReader::new(CDR.as_bytes(), DEFAULT_CDR_TIMEZONE)
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows.len(), 4);

    struct Want {
        line: u64,
        id: &'static str,
        from: &'static str,
        outcome: CallOutcome,
        operator: Option<&'static str>,
        start_utc: &'static str,
        duration: u32,
        talk: u32,
        queue: Option<&'static str>,
        callback: bool,
    }
    let table = [
        Want {
            line: 1,
            id: "1772439245.101",
            from: "+393471112233",
            outcome: CallOutcome::Answered,
            operator: Some("203"),
            start_utc: "2026-03-02T08:14:05+00:00",
            duration: 297,
            talk: 271,
            queue: Some("sostegno"),
            callback: false,
        },
        Want {
            line: 2,
            id: "1772439611.102",
            from: "+390245678901",
            outcome: CallOutcome::Missed,
            operator: None,
            start_utc: "2026-03-02T08:20:11+00:00",
            duration: 89,
            talk: 0,
            queue: Some("sostegno"),
            callback: true,
        },
        Want {
            line: 3,
            id: "1772439720.103",
            from: "anonymous",
            outcome: CallOutcome::Missed,
            operator: None,
            start_utc: "2026-03-02T08:22:00+00:00",
            duration: 3,
            talk: 0,
            queue: None,
            callback: true,
        },
        Want {
            line: 4,
            id: "1772439947.104",
            from: "+393339876543",
            outcome: CallOutcome::Answered,
            operator: Some("201"),
            start_utc: "2026-03-02T08:25:47+00:00",
            duration: 323,
            talk: 308,
            queue: Some("disabilita"),
            callback: false,
        },
    ];
    for (row, want) in rows.iter().zip(&table) {
        assert_eq!(row.line, want.line);
        let record = row.to_record("cdr");
        assert_eq!(record.call_id, want.id);
        assert_eq!(record.direction, Direction::Inbound);
        assert_eq!(
            number(record.from.as_ref()).as_deref(),
            Some(want.from),
            "{}",
            want.id
        );
        assert_eq!(record.outcome, Some(want.outcome), "{}", want.id);
        assert_eq!(
            record.answerer().cloned(),
            want.operator.map(|e| Answerer::Extension(e.into()))
        );
        assert_eq!(record.started_at.to_rfc3339(), want.start_utc);
        assert_eq!(record.duration_secs(), Some(want.duration));
        assert_eq!(record.talk_secs(), Some(want.talk));
        assert_eq!(record.queue.as_deref(), want.queue);
        assert_eq!(record.needs_callback(), want.callback, "{}", want.id);
        assert_eq!(number(record.to.as_ref()).as_deref(), Some("+39020202"));
    }
    assert!(rows[2].from.is_withheld());
}

#[test]
fn cdr_sample_with_malformed_lines_keeps_the_good_ones() {
    let mut lines: Vec<String> = CDR.lines().map(str::to_owned).collect();
    let first = lines[0].clone();
    lines.insert(1, first.replace("\"ANSWERED\"", "\"ANSWERD\""));
    lines.insert(3, "garbage without commas".into());
    lines.insert(4, first.replace(",297,", ",,"));
    lines.push(first.replace("2026-03-02 09:14:05", "yesterday"));
    let data = lines.join("\n");

    let mut good = 0;
    let mut rejected = Vec::new();
    for result in CdrReader::new(data.as_bytes(), DEFAULT_CDR_TIMEZONE) {
        match result {
            Ok(_) => good += 1,
            Err(e) => rejected.push(e.to_string()),
        }
    }
    assert_eq!(good, 4);
    assert_eq!(
        rejected,
        vec![
            "line 2: disposition 'ANSWERD' is not one of ANSWERED, NO ANSWER, BUSY, FAILED, CONGESTION",
            "line 4: has 1 columns, expected 18 in Asterisk's cdr_csv order",
            "line 5: duration '' is not a whole number of seconds",
            "line 8: start 'yesterday' is not a YYYY-MM-DD HH:MM:SS time",
        ]
    );
}

fn received(i: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 8, 14, 5)
        .single()
        .unwrap_or_default()
        + Duration::seconds(20 * i)
}

fn cti_events() -> Vec<CallEvent> {
    CTI.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            parse_cti_json(line.as_bytes(), "zammad", received(i as i64))
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

fn records(events: &[CallEvent]) -> BTreeMap<String, CallRecord> {
    let mut out: BTreeMap<String, CallRecord> = BTreeMap::new();
    for e in events {
        match out.get_mut(&e.call_id) {
            Some(r) => r.apply(e).unwrap_or_else(|err| panic!("{err}")),
            None => {
                out.insert(e.call_id.clone(), CallRecord::from_event(e));
            }
        }
    }
    out
}

#[test]
fn zammad_sample_calls() {
    let records = records(&cti_events());
    assert_eq!(records.len(), 2);

    let answered = &records["4d6a1c2e-0001"];
    assert_eq!(answered.outcome, Some(CallOutcome::Answered));
    assert_eq!(
        answered.answerer(),
        Some(&Answerer::Extension("203".into()))
    );
    assert_eq!(
        number(answered.from.as_ref()).as_deref(),
        Some("+393471112233")
    );
    assert_eq!(answered.queue.as_deref(), Some("sostegno-reddito"));
    assert_eq!(answered.duration_secs(), Some(40));
    assert_eq!(answered.talk_secs(), Some(20));

    let abandoned = &records["4d6a1c2e-0002"];
    assert_eq!(abandoned.outcome, Some(CallOutcome::Abandoned));
    assert_eq!(
        number(abandoned.from.as_ref()).as_deref(),
        Some("+390245678901")
    );
    assert!(abandoned.needs_callback());
    assert_eq!(abandoned.answerer(), None);
}

#[test]
fn zammad_sample_out_of_order_and_repeated_converges_on_the_same_outcomes() {
    let events = cti_events();
    let in_order = records(&events);
    // Every delivery order of the five events, each with the first one repeated at the end.
    let orders: Vec<Vec<usize>> = vec![
        vec![4, 3, 2, 1, 0, 4],
        vec![2, 0, 1, 3, 4, 2],
        vec![1, 2, 0, 0, 4, 3, 1],
    ];
    for order in orders {
        let shuffled: Vec<CallEvent> = order.iter().map(|&i| events[i].clone()).collect();
        let got = records(&shuffled);
        for (id, want) in &in_order {
            let r = &got[id];
            assert_eq!(r.outcome, want.outcome, "{id} {order:?}");
            assert_eq!(r.answerer(), want.answerer(), "{id} {order:?}");
            assert_eq!(r.from, want.from, "{id} {order:?}");
            assert_eq!(r, want, "{id} {order:?}: same events, same record");
        }
    }
}

#[test]
fn zammad_sample_answer_after_hangup_changes_nothing() {
    let events = cti_events();
    let mut record = records(&events[..3])["4d6a1c2e-0001"].clone();
    let before = record.clone();
    let mut late_answer = events[1].clone();
    late_answer.at = received(10);
    record.apply(&late_answer).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(record, before);
}

#[test]
fn zammad_sample_with_a_bad_direction_is_422() {
    let line = CTI
        .lines()
        .next()
        .unwrap_or_default()
        .replace("\"direction\": \"in\"", "\"direction\": \"inbound\"");
    let err = parse_cti_json(line.as_bytes(), "zammad", received(0)).unwrap_err();
    assert_eq!(err, CtiError::InvalidDirection);
    assert_eq!(err.http_status(), 422);
}

#[test]
fn sample_events_travel_through_the_native_format_unchanged() {
    let events = cti_events();
    let batch = serde_json::Value::Array(events.iter().map(native_json).collect());
    let back =
        parse_native(batch.to_string().as_bytes(), "zammad").unwrap_or_else(|e| panic!("{e}"));
    // The CTI leaves `to`/`from` out on some events; the native format always carries them.
    for (a, b) in events.iter().zip(&back) {
        assert_eq!(
            (&a.call_id, &a.kind, a.at, a.direction),
            (&b.call_id, &b.kind, b.at, b.direction)
        );
    }
    assert_eq!(
        records(&back)["4d6a1c2e-0001"].outcome,
        Some(CallOutcome::Answered)
    );
}
