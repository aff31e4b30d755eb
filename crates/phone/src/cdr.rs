//! Asterisk `cdr_csv` files (`Master.csv`, no header), read as a stream of rows.
//!
//! Each line is one call in the default column order: accountcode, src, dst, dcontext, clid,
//! channel, dstchannel, lastapp, lastdata, start, answer, end, duration, billsec, disposition,
//! amaflags, uniqueid, userfield. Times are the PBX's local time. A bad line is reported by its
//! line number and reason and reading goes on.

use std::collections::VecDeque;
use std::fmt;
use std::io::Read;
use std::time::{Duration, Instant};

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use sportello_domain::contact::PhoneError;

use crate::model::{Answerer, CallEvent, CallEventKind, Direction, HangupCause, Party};
use crate::native::MAX_CALL_ID_LEN;
use crate::record::{AnsweredBy, CallEnd, CallOutcome, CallRecord};

/// The zone Asterisk writes times in unless configured otherwise.
pub const DEFAULT_CDR_TIMEZONE: Tz = chrono_tz::Europe::Rome;

const COLUMNS: usize = 18;
/// `uniqueid` is the 17th column; files without the trailing `userfield` still have it.
const MIN_COLUMNS: usize = 17;
/// Some builds append `peeraccount`, `linkedid` and `sequence`.
const MAX_COLUMNS: usize = 21;

const SRC: usize = 1;
const DST: usize = 2;
const DCONTEXT: usize = 3;
const CHANNEL: usize = 5;
const DSTCHANNEL: usize = 6;
const LASTAPP: usize = 7;
const LASTDATA: usize = 8;
const START: usize = 9;
const ANSWER: usize = 10;
const END: usize = 11;
const DURATION: usize = 12;
const BILLSEC: usize = 13;
const DISPOSITION: usize = 14;
const UNIQUEID: usize = 16;

/// Asterisk's verdict on a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disposition {
    Answered,
    NoAnswer,
    Busy,
    Failed,
    Congestion,
}

impl Disposition {
    fn parse(raw: &str) -> Option<Disposition> {
        Some(match raw {
            "ANSWERED" => Disposition::Answered,
            "NO ANSWER" => Disposition::NoAnswer,
            "BUSY" => Disposition::Busy,
            "FAILED" => Disposition::Failed,
            "CONGESTION" => Disposition::Congestion,
            _ => return None,
        })
    }

    /// As Asterisk writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Answered => "ANSWERED",
            Disposition::NoAnswer => "NO ANSWER",
            Disposition::Busy => "BUSY",
            Disposition::Failed => "FAILED",
            Disposition::Congestion => "CONGESTION",
        }
    }
}

/// Why a CDR line was not imported. Values are echoed only for non-personal columns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CdrReason {
    #[error("has {0} columns, expected {COLUMNS} in Asterisk's cdr_csv order")]
    ColumnCount(usize),
    #[error("{0} is not valid UTF-8")]
    InvalidUtf8(&'static str),
    #[error("{0} is empty")]
    Empty(&'static str),
    #[error("{column} '{value}' is not a YYYY-MM-DD HH:MM:SS time")]
    BadTime { column: &'static str, value: String },
    #[error(
        "{column} '{value}' does not exist in {zone} (skipped by the daylight-saving change); is cdr_timezone right?"
    )]
    NonexistentTime {
        column: &'static str,
        value: String,
        zone: &'static str,
    },
    #[error("{column} '{value}' is not a whole number of seconds")]
    BadSeconds { column: &'static str, value: String },
    #[error("disposition '{0}' is not one of ANSWERED, NO ANSWER, BUSY, FAILED, CONGESTION")]
    BadDisposition(String),
    #[error("{column}: {error}")]
    BadNumber {
        column: &'static str,
        error: PhoneError,
    },
    #[error("uniqueid is longer than {MAX_CALL_ID_LEN} characters")]
    CallIdTooLong,
    #[error("end is before start")]
    EndBeforeStart,
    #[error("the file cannot be read further: {0}")]
    Io(String),
}

/// A line that was not imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct RejectedRow {
    /// 1-based line where the row starts.
    pub line: u64,
    pub reason: CdrReason,
}

/// One call from a CDR file, with times in UTC and the caller normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdrRow {
    /// 1-based line where the row starts.
    pub line: u64,
    /// Asterisk's `uniqueid`.
    pub call_id: String,
    /// Outbound when `src` is an internal extension.
    pub direction: Direction,
    pub from: Party,
    /// `None` when `dst` is empty.
    pub to: Option<Party>,
    pub context: String,
    /// The queue name, when the call ended in `Queue()`.
    pub queue: Option<String>,
    /// The extension of the calling channel (`channel`), for outbound calls.
    pub caller_extension: Option<String>,
    /// The extension of the answering channel (`dstchannel`), for inbound calls.
    pub answered_extension: Option<String>,
    pub last_app: String,
    pub start: DateTime<Utc>,
    pub answer: Option<DateTime<Utc>>,
    pub end: DateTime<Utc>,
    pub duration_secs: u32,
    pub billsec: u32,
    pub disposition: Disposition,
    pub outcome: CallOutcome,
}

impl CdrRow {
    /// Who took the call for us: the answering extension of an inbound call, the calling
    /// extension of an outbound one.
    pub fn operator_extension(&self) -> Option<&str> {
        match self.direction {
            Direction::Inbound => self.answered_extension.as_deref(),
            Direction::Outbound => self.caller_extension.as_deref(),
        }
    }

    /// How the hangup report of this row reads: cause, talk time, and who it names.
    fn hangup(&self) -> (HangupCause, u32, Option<Answerer>) {
        match self.outcome {
            CallOutcome::Answered => (
                HangupCause::NormalClearing,
                self.billsec,
                self.operator_extension()
                    .map(|e| Answerer::Extension(e.to_owned())),
            ),
            // The voicemail's talk time is not a conversation with an operator.
            CallOutcome::Voicemail => (HangupCause::NormalClearing, 0, None),
            // The PBX picked up (queue music, announcement) but no operator did.
            CallOutcome::Abandoned => (HangupCause::Cancel, 0, None),
            CallOutcome::Missed => (
                match self.disposition {
                    Disposition::Busy => HangupCause::Busy,
                    Disposition::Failed => HangupCause::Failed,
                    Disposition::Congestion => HangupCause::Congestion,
                    Disposition::NoAnswer | Disposition::Answered => HangupCause::NoAnswer,
                },
                0,
                None,
            ),
        }
    }

    /// The row as the events a live switchboard would have sent, so a CDR import and a
    /// webhook reporting the same call converge on the same record.
    pub fn to_events(&self, source: &str) -> Vec<CallEvent> {
        let ringing = self.ringing(source);
        let event = |kind: CallEventKind, at: DateTime<Utc>| CallEvent {
            kind,
            at,
            ..ringing.clone()
        };
        let picked_up = self.answer.unwrap_or(self.start);
        let (cause, talk_secs, answered_by) = self.hangup();
        let mut events = vec![ringing.clone()];
        match self.outcome {
            CallOutcome::Answered => {
                events.push(event(
                    CallEventKind::Answered {
                        by: answered_by.clone(),
                    },
                    picked_up,
                ));
            }
            CallOutcome::Voicemail => events.push(event(CallEventKind::Voicemail, picked_up)),
            CallOutcome::Abandoned | CallOutcome::Missed => {}
        }
        events.push(event(
            CallEventKind::Ended {
                duration_secs: Some(self.duration_secs),
                talk_secs: Some(talk_secs),
                cause,
                answered_by,
            },
            self.end,
        ));
        events
    }

    /// The call record this row gives on its own: the fold of `to_events`, built directly
    /// because an import does this for every row.
    pub fn to_record(&self, source: &str) -> CallRecord {
        let picked_up = self.answer.unwrap_or(self.start);
        let (cause, talk_secs, answered_by) = self.hangup();
        let answered = self.outcome == CallOutcome::Answered;
        let answered_at = (answered || self.outcome == CallOutcome::Voicemail).then_some(picked_up);
        CallRecord {
            source: source.to_owned(),
            call_id: self.call_id.clone(),
            direction: self.direction,
            from: Some(self.from.clone()),
            to: self.to.clone(),
            queue: self.queue.clone(),
            extensions: self
                .operator_extension()
                .map(str::to_owned)
                .into_iter()
                .collect(),
            started_at: answered_at
                .map_or(self.start, |a| a.min(self.start))
                .min(self.end),
            answered_at: answered_at.filter(|_| answered),
            answered_by: answered_by.filter(|_| answered).map(|who| AnsweredBy {
                who,
                at: picked_up,
                from_hangup: false,
            }),
            ended: Some(CallEnd {
                at: self.end,
                duration_secs: Some(self.duration_secs),
                talk_secs: Some(talk_secs),
                cause,
            }),
            outcome: Some(self.outcome),
        }
    }

    fn ringing(&self, source: &str) -> CallEvent {
        CallEvent {
            source: source.to_owned(),
            call_id: self.call_id.clone(),
            direction: self.direction,
            from: Some(self.from.clone()),
            to: self.to.clone(),
            kind: CallEventKind::Ringing,
            at: self.start,
            queue: self.queue.clone(),
            extensions: self
                .operator_extension()
                .map(str::to_owned)
                .into_iter()
                .collect(),
        }
    }
}

/// Reads CDR rows one at a time from any reader, without loading the file.
pub struct CdrReader<R> {
    csv: csv::Reader<LineCounter<R>>,
    record: csv::ByteRecord,
    zone: Tz,
    finished: bool,
}

impl<R: Read> CdrReader<R> {
    /// `zone` is the PBX's time zone (`cdr_timezone`, Europe/Rome by default).
    pub fn new(reader: R, zone: Tz) -> Self {
        let counter = LineCounter {
            inner: reader,
            offset: 0,
            newlines: VecDeque::new(),
            passed: 0,
        };
        let csv = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(counter);
        CdrReader {
            csv,
            record: csv::ByteRecord::new(),
            zone,
            finished: false,
        }
    }

    /// The line the record just read starts on. The csv crate's own line numbers drift after
    /// blank lines and CRLF endings, so lines are counted from the bytes themselves: the
    /// record's last byte sits on its last line, and newlines inside quoted fields lead back
    /// to its first.
    fn record_line(&mut self) -> u64 {
        let last_byte = self.csv.position().byte().saturating_sub(1);
        let last_line = self.csv.get_mut().line_of(last_byte);
        let inner_newlines = self
            .record
            .as_slice()
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64;
        last_line.saturating_sub(inner_newlines).max(1)
    }
}

/// Passes bytes through to the csv reader, noting where each newline is.
struct LineCounter<R> {
    inner: R,
    /// Bytes read so far.
    offset: u64,
    /// Offsets of newlines read but not yet passed by `line_of`.
    newlines: VecDeque<u64>,
    /// Newlines already passed.
    passed: u64,
}

impl<R> LineCounter<R> {
    /// The 1-based line of the byte at `offset`; offsets must not go backwards.
    fn line_of(&mut self, offset: u64) -> u64 {
        while self.newlines.front().is_some_and(|&nl| nl < offset) {
            self.newlines.pop_front();
            self.passed += 1;
        }
        self.passed + 1
    }
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let start = self.offset;
        let chunk = buf.get(..n).unwrap_or_default();
        self.newlines.extend(
            chunk
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| start + i as u64),
        );
        self.offset += n as u64;
        Ok(n)
    }
}

impl<R: Read> Iterator for CdrReader<R> {
    type Item = Result<CdrRow, RejectedRow>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        match self.csv.read_byte_record(&mut self.record) {
            Ok(false) => {
                self.finished = true;
                None
            }
            Ok(true) => {
                let line = self.record_line();
                Some(
                    parse_row(&self.record, line, self.zone)
                        .map_err(|reason| RejectedRow { line, reason }),
                )
            }
            Err(err) => {
                // Only I/O fails here (rows of any width are accepted): nothing more to read.
                self.finished = true;
                let byte = self.csv.position().byte();
                let line = self.csv.get_mut().line_of(byte);
                Some(Err(RejectedRow {
                    line,
                    reason: CdrReason::Io(err.to_string()),
                }))
            }
        }
    }
}

fn text<'a>(
    record: &'a csv::ByteRecord,
    column: usize,
    name: &'static str,
) -> Result<&'a str, CdrReason> {
    let bytes = record.get(column).unwrap_or_default();
    std::str::from_utf8(bytes).map_err(|_| CdrReason::InvalidUtf8(name))
}

/// Echoed values are cut short: a broken line can hold anything.
fn shown(value: &str) -> String {
    value.chars().take(40).collect()
}

fn parse_row(record: &csv::ByteRecord, line: u64, zone: Tz) -> Result<CdrRow, CdrReason> {
    if !(MIN_COLUMNS..=MAX_COLUMNS).contains(&record.len()) {
        return Err(CdrReason::ColumnCount(record.len()));
    }
    let call_id = text(record, UNIQUEID, "uniqueid")?.trim();
    if call_id.is_empty() {
        return Err(CdrReason::Empty("uniqueid"));
    }
    if call_id.chars().count() > MAX_CALL_ID_LEN {
        return Err(CdrReason::CallIdTooLong);
    }
    let disposition_text = text(record, DISPOSITION, "disposition")?;
    let disposition = Disposition::parse(disposition_text.trim())
        .ok_or_else(|| CdrReason::BadDisposition(shown(disposition_text)))?;
    let duration_secs = seconds(text(record, DURATION, "duration")?, "duration")?;
    let billsec = seconds(text(record, BILLSEC, "billsec")?, "billsec")?;

    let start_text = text(record, START, "start")?;
    let end_text = text(record, END, "end")?;
    let answer_text = text(record, ANSWER, "answer")?;
    let starts = local_time(start_text, "start", zone)?.ok_or(CdrReason::Empty("start"))?;
    let ends = local_time(end_text, "end", zone)?.ok_or(CdrReason::Empty("end"))?;
    let answers = local_time(answer_text, "answer", zone)?;
    let (start, end) = pick_span(starts, ends, duration_secs).ok_or(CdrReason::EndBeforeStart)?;
    let answer = answers.map(|a| pick_answer(a, start, end, billsec));

    let src = text(record, SRC, "src")?;
    let from = Party::parse(src).map_err(|error| CdrReason::BadNumber {
        column: "src",
        error,
    })?;
    let direction = match from {
        Party::Internal(_) => Direction::Outbound,
        _ => Direction::Inbound,
    };
    let dst = text(record, DST, "dst")?.trim();
    let to = if dst.is_empty() {
        None
    } else {
        match (Party::parse(dst), direction) {
            (Ok(party), _) => Some(party),
            (Err(error), Direction::Outbound) => {
                return Err(CdrReason::BadNumber {
                    column: "dst",
                    error,
                });
            }
            // An inbound call's destination is ours: a DID, or a dialplan name like `s`.
            (Err(_), Direction::Inbound) => Some(Party::Internal(dst.to_owned())),
        }
    };

    let last_app = text(record, LASTAPP, "lastapp")?.trim();
    let queue = if last_app.eq_ignore_ascii_case("Queue") {
        let data = text(record, LASTDATA, "lastdata")?;
        data.split([',', '|'])
            .next()
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(str::to_owned)
    } else {
        None
    };
    let caller_extension = channel_extension(text(record, CHANNEL, "channel")?).map(str::to_owned);
    let answered_extension =
        channel_extension(text(record, DSTCHANNEL, "dstchannel")?).map(str::to_owned);

    let outcome = match (disposition, direction) {
        (Disposition::Answered, Direction::Outbound) => CallOutcome::Answered,
        (Disposition::Answered, Direction::Inbound) => {
            if last_app.eq_ignore_ascii_case("VoiceMail") {
                CallOutcome::Voicemail
            } else if answered_extension.is_some() {
                CallOutcome::Answered
            } else {
                // Queue() with music on hold answers the line itself: ANSWERED without an
                // operator leg is a caller who gave up waiting.
                CallOutcome::Abandoned
            }
        }
        _ => CallOutcome::Missed,
    };

    Ok(CdrRow {
        line,
        call_id: call_id.to_owned(),
        direction,
        from,
        to,
        context: text(record, DCONTEXT, "dcontext")?.trim().to_owned(),
        queue,
        caller_extension,
        answered_extension,
        last_app: last_app.to_owned(),
        start,
        answer,
        end,
        duration_secs,
        billsec,
        disposition,
        outcome,
    })
}

/// The endpoint of a channel name: `PJSIP/203-0000002b` and `SIP/203-00000012` give `203`,
/// `Local/203@from-queue-0000001;1` gives `203`.
pub fn channel_extension(channel: &str) -> Option<&str> {
    let (_, resource) = channel.trim().split_once('/')?;
    let resource = match resource.split_once('@') {
        Some((user, _)) => user,
        // The suffix after the last '-' is the channel's sequence number.
        None => resource.rsplit_once('-').map_or(resource, |(name, _)| name),
    };
    (!resource.is_empty()).then_some(resource)
}

fn seconds(raw: &str, column: &'static str) -> Result<u32, CdrReason> {
    let raw = raw.trim();
    raw.parse::<u32>().map_err(|_| CdrReason::BadSeconds {
        column,
        value: shown(raw),
    })
}

/// One local time read in the PBX's zone: one instant, or two in the hour repeated when
/// daylight saving ends (earlier first).
#[derive(Debug, Clone, Copy)]
struct Instants(DateTime<Utc>, Option<DateTime<Utc>>);

impl Instants {
    fn iter(self) -> impl Iterator<Item = DateTime<Utc>> {
        std::iter::once(self.0).chain(self.1)
    }
}

fn local_time(raw: &str, column: &'static str, zone: Tz) -> Result<Option<Instants>, CdrReason> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let naive = parse_naive(raw).ok_or_else(|| CdrReason::BadTime {
        column,
        value: shown(raw),
    })?;
    match zone.from_local_datetime(&naive) {
        LocalResult::Single(t) => Ok(Some(Instants(t.with_timezone(&Utc), None))),
        LocalResult::Ambiguous(a, b) => {
            let (a, b) = (a.with_timezone(&Utc), b.with_timezone(&Utc));
            Ok(Some(Instants(a.min(b), Some(a.max(b)))))
        }
        LocalResult::None => Err(CdrReason::NonexistentTime {
            column,
            value: shown(raw),
            zone: zone.name(),
        }),
    }
}

/// `YYYY-MM-DD HH:MM:SS`, read by hand: this runs three times per row.
fn parse_naive(raw: &str) -> Option<NaiveDateTime> {
    let b = raw.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b' ' | b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        b.get(range)?.iter().try_fold(0u32, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
        })
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    NaiveDate::from_ymd_opt(year, num(5..7)?, num(8..10)?)?.and_hms_opt(
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    )
}

/// In the repeated autumn hour, picks the start and end readings whose difference best
/// matches the reported duration (earliest on a tie).
fn pick_span(
    starts: Instants,
    ends: Instants,
    duration: u32,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    starts
        .iter()
        .flat_map(|s| ends.iter().map(move |e| (s, e)))
        .filter(|(s, e)| e >= s)
        .min_by_key(|(s, e)| ((*e - *s).num_seconds() - i64::from(duration)).abs())
}

/// Picks the answer reading inside the call whose distance to the end best matches `billsec`.
fn pick_answer(
    answers: Instants,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    billsec: u32,
) -> DateTime<Utc> {
    answers
        .iter()
        .min_by_key(|a| {
            let outside = !(start..=end).contains(a);
            (
                outside,
                ((end - *a).num_seconds() - i64::from(billsec)).abs(),
            )
        })
        .unwrap_or(answers.0)
}

/// What a parse-only run over a CDR file measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CdrParseStats {
    pub rows: u64,
    pub rejected: u64,
    pub elapsed: Duration,
}

impl CdrParseStats {
    pub fn rows_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            (self.rows + self.rejected) as f64 / secs
        } else {
            f64::INFINITY
        }
    }
}

impl fmt::Display for CdrParseStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} rows parsed, {} rejected in {:.3} s ({:.0} rows/s)",
            self.rows,
            self.rejected,
            self.elapsed.as_secs_f64(),
            self.rows_per_second()
        )
    }
}

/// Parses a whole CDR file and builds each row's call record, timing it: the pure part of
/// an import, for the benchmark command.
pub fn measure_cdr_parse(data: &[u8], zone: Tz) -> CdrParseStats {
    let started = Instant::now();
    let (mut rows, mut rejected) = (0u64, 0u64);
    for row in CdrReader::new(data, zone) {
        match row {
            Ok(row) => {
                std::hint::black_box(row.to_record("cdr"));
                rows += 1;
            }
            Err(_) => rejected += 1,
        }
    }
    CdrParseStats {
        rows,
        rejected,
        elapsed: started.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(data: &str) -> Vec<Result<CdrRow, RejectedRow>> {
        CdrReader::new(data.as_bytes(), DEFAULT_CDR_TIMEZONE).collect()
    }

    /// A cdr_csv line from: src, dstchannel, lastapp, start, answer (quoted or empty), end,
    /// duration, billsec, disposition.
    fn row(fields: [&str; 9]) -> String {
        let [
            src,
            dstchannel,
            lastapp,
            start,
            answer,
            end,
            dur,
            bill,
            disp,
        ] = fields;
        format!(
            "\"\",\"{src}\",\"020202\",\"welfare-in\",\"\"\"X\"\" <{src}>\",\"PJSIP/trunk-a-0000001a\",\"{dstchannel}\",\"{lastapp}\",\"sostegno,tTr,,,300\",\"{start}\",{answer},\"{end}\",{dur},{bill},\"{disp}\",\"DOCUMENTATION\",\"1772439245.101\",\"\"\n"
        )
    }

    #[test]
    fn channel_extensions() {
        assert_eq!(channel_extension("PJSIP/203-0000002b"), Some("203"));
        assert_eq!(channel_extension("SIP/lbassi-00000012"), Some("lbassi"));
        assert_eq!(
            channel_extension("Local/203@from-queue-0000001;1"),
            Some("203")
        );
        assert_eq!(channel_extension("DAHDI/1"), Some("1"));
        assert_eq!(channel_extension(""), None);
        assert_eq!(channel_extension("garbage"), None);
    }

    #[test]
    fn times_are_converted_from_rome_to_utc() {
        let data = row([
            "3331234567",
            "PJSIP/203-0000002b",
            "Queue",
            "2026-07-01 10:00:00",
            "\"2026-07-01 10:00:20\"",
            "2026-07-01 10:05:00",
            "300",
            "280",
            "ANSWERED",
        ]);
        let r = read(&data).remove(0).unwrap();
        assert_eq!(r.start.to_rfc3339(), "2026-07-01T08:00:00+00:00");
        assert_eq!(
            r.answer.map(|a| a.to_rfc3339()).as_deref(),
            Some("2026-07-01T08:00:20+00:00")
        );
        assert_eq!(r.queue.as_deref(), Some("sostegno"));
        let utc = CdrReader::new(data.as_bytes(), chrono_tz::UTC)
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(utc.start.to_rfc3339(), "2026-07-01T10:00:00+00:00");
    }

    #[test]
    fn repeated_autumn_hour_is_resolved_by_the_duration() {
        // 2026-10-25: 03:00 CEST becomes 02:00 CET, so 02:00-03:00 happens twice. A call
        // from 02:50 (first pass, CEST) to 02:10 (second pass, CET) lasted 20 minutes.
        let data = row([
            "3331234567",
            "PJSIP/203-0000002b",
            "Queue",
            "2026-10-25 02:50:00",
            "\"2026-10-25 02:52:00\"",
            "2026-10-25 02:10:00",
            "1200",
            "1080",
            "ANSWERED",
        ]);
        let r = read(&data).remove(0).unwrap();
        assert_eq!(r.start.to_rfc3339(), "2026-10-25T00:50:00+00:00");
        assert_eq!(r.end.to_rfc3339(), "2026-10-25T01:10:00+00:00");
        assert_eq!(
            r.answer.map(|a| a.to_rfc3339()).as_deref(),
            Some("2026-10-25T00:52:00+00:00")
        );
        // A short call inside the repeated hour: both readings fit, the earlier wins.
        let data = row([
            "3331234567",
            "",
            "Queue",
            "2026-10-25 02:10:00",
            "",
            "2026-10-25 02:11:00",
            "60",
            "0",
            "NO ANSWER",
        ]);
        let r = read(&data).remove(0).unwrap();
        assert_eq!(r.start.to_rfc3339(), "2026-10-25T00:10:00+00:00");
        assert_eq!(r.end - r.start, chrono::Duration::seconds(60));
    }

    #[test]
    fn spring_gap_time_is_rejected_with_a_hint() {
        let data = row([
            "3331234567",
            "",
            "Queue",
            "2026-03-29 02:30:00",
            "",
            "2026-03-29 03:31:00",
            "60",
            "0",
            "NO ANSWER",
        ]);
        let err = read(&data).remove(0).unwrap_err();
        assert_eq!(err.line, 1);
        assert!(
            err.to_string().contains("does not exist in Europe/Rome"),
            "{err}"
        );
    }

    #[test]
    fn outcomes_from_dispositions() {
        let cases = [
            (
                "3331234567",
                "PJSIP/203-0000002b",
                "Queue",
                "ANSWERED",
                CallOutcome::Answered,
                Direction::Inbound,
            ),
            (
                "3331234567",
                "",
                "Queue",
                "ANSWERED",
                CallOutcome::Abandoned,
                Direction::Inbound,
            ),
            (
                "3331234567",
                "",
                "VoiceMail",
                "ANSWERED",
                CallOutcome::Voicemail,
                Direction::Inbound,
            ),
            (
                "3331234567",
                "",
                "Queue",
                "NO ANSWER",
                CallOutcome::Missed,
                Direction::Inbound,
            ),
            (
                "3331234567",
                "",
                "Dial",
                "BUSY",
                CallOutcome::Missed,
                Direction::Inbound,
            ),
            (
                "3331234567",
                "",
                "Dial",
                "FAILED",
                CallOutcome::Missed,
                Direction::Inbound,
            ),
            (
                "3331234567",
                "",
                "Dial",
                "CONGESTION",
                CallOutcome::Missed,
                Direction::Inbound,
            ),
            (
                "203",
                "PJSIP/trunk-a-00000031",
                "Dial",
                "ANSWERED",
                CallOutcome::Answered,
                Direction::Outbound,
            ),
        ];
        for (src, dstchannel, app, disp, outcome, direction) in cases {
            let data = row([
                src,
                dstchannel,
                app,
                "2026-03-02 09:00:00",
                "\"2026-03-02 09:00:10\"",
                "2026-03-02 09:01:00",
                "60",
                "50",
                disp,
            ]);
            let r = read(&data).remove(0).unwrap();
            assert_eq!(
                (r.outcome, r.direction),
                (outcome, direction),
                "{src} {dstchannel} {app} {disp}"
            );
            let record = r.to_record("cdr");
            let folded = CallRecord::fold(&r.to_events("cdr")).ok().flatten();
            assert_eq!(
                Some(&record),
                folded.as_ref(),
                "to_record is the fold of to_events"
            );
            assert_eq!(record.outcome, Some(outcome), "{disp}");
            assert_eq!(record.direction, direction);
            assert_eq!(record.duration_secs(), Some(60));
        }
    }

    #[test]
    fn outbound_calls_name_the_calling_operator() {
        let data = "\"\",\"203\",\"3331234567\",\"from-internal\",\"\",\"PJSIP/203-00000031\",\"PJSIP/trunk-a-00000032\",\"Dial\",\"PJSIP/3331234567@trunk-a\",\"2026-03-02 10:00:00\",\"2026-03-02 10:00:08\",\"2026-03-02 10:02:00\",120,112,\"ANSWERED\",\"DOCUMENTATION\",\"1772442000.200\",\"\"\n";
        let r = read(data).remove(0).unwrap();
        assert_eq!(r.operator_extension(), Some("203"));
        let record = r.to_record("cdr");
        assert_eq!(
            record.citizen_number().map(|n| n.as_str()),
            Some("+393331234567")
        );
        assert_eq!(record.answerer(), Some(&Answerer::Extension("203".into())));
        assert_eq!(record.talk_secs(), Some(112));
        assert!(!record.needs_callback());
    }

    #[test]
    fn bad_rows_are_reported_by_line_and_reading_goes_on() {
        let good = row([
            "3331234567",
            "PJSIP/203-0000002b",
            "Queue",
            "2026-03-02 09:00:00",
            "\"2026-03-02 09:00:10\"",
            "2026-03-02 09:01:00",
            "60",
            "50",
            "ANSWERED",
        ]);
        let bad_cases: Vec<(String, &str)> = vec![
            ("\"only\",\"three\",\"columns\"\n".into(), "has 3 columns"),
            (
                good.replace("\"ANSWERED\"", "\"MAYBE\""),
                "disposition 'MAYBE'",
            ),
            (
                good.replace(",60,", ",sixty,"),
                "duration 'sixty' is not a whole number",
            ),
            (good.replace(",50,", ",-5,"), "billsec '-5'"),
            (
                good.replace("2026-03-02 09:00:00", "02/03/2026 09:00"),
                "start '02/03/2026 09:00' is not a YYYY-MM-DD",
            ),
            (
                good.replace("2026-03-02 09:00:00", "2026-02-30 09:00:00"),
                "start '2026-02-30 09:00:00'",
            ),
            (
                good.replace("\"2026-03-02 09:00:00\"", "\"\""),
                "start is empty",
            ),
            (
                good.replace("\"2026-03-02 09:01:00\"", "\"2026-03-02 08:00:00\""),
                "end is before start",
            ),
            (
                good.replace("\"1772439245.101\"", "\"\""),
                "uniqueid is empty",
            ),
            (
                good.replace("\"3331234567\"", "\"Mario\"")
                    .replace("<3331234567>", "<x>"),
                "src: phone number contains 'M'",
            ),
        ];
        let mut data = good.clone();
        for (bad, _) in &bad_cases {
            data.push_str(bad);
        }
        data.push('\n'); // a blank line is skipped, not rejected
        data.push_str(&good);
        let results = read(&data);
        assert_eq!(results.len(), bad_cases.len() + 2);
        assert!(results[0].is_ok());
        let last = results.last().and_then(|r| r.as_ref().ok()).map(|r| r.line);
        assert_eq!(last, Some(bad_cases.len() as u64 + 3));
        for (i, (_, reason)) in bad_cases.iter().enumerate() {
            let err = results[i + 1].as_ref().unwrap_err();
            assert_eq!(err.line, i as u64 + 2, "{err}");
            assert!(
                err.to_string().contains(reason),
                "want {reason:?}, got {err}"
            );
        }
    }

    #[test]
    fn line_numbers_survive_blank_lines_crlf_and_quoted_newlines() {
        let good = row([
            "3331234567",
            "",
            "Queue",
            "2026-03-02 09:00:00",
            "",
            "2026-03-02 09:01:00",
            "60",
            "0",
            "NO ANSWER",
        ]);
        let bad = good.replace("NO ANSWER", "MAYBE");
        let multi = good
            .replace("\"welfare-in\"", "\"welfare\nin\"")
            .replace("NO ANSWER", "MAYBE");
        let lines = |data: &str| -> Vec<(u64, bool)> {
            read(data)
                .into_iter()
                .map(|r| r.map_or_else(|e| (e.line, false), |r| (r.line, true)))
                .collect()
        };
        let data = format!("\n\n{good}\n{bad}{multi}{bad}{}", good.trim_end());
        assert_eq!(
            lines(&data),
            vec![(3, true), (5, false), (6, false), (8, false), (9, true)]
        );
        let crlf = data.replace('\n', "\r\n");
        assert_eq!(
            lines(&crlf),
            vec![(3, true), (5, false), (6, false), (8, false), (9, true)]
        );
    }

    #[test]
    fn invalid_utf8_is_rejected_per_row() {
        let mut data = row([
            "3331234567",
            "",
            "Queue",
            "2026-03-02 09:00:00",
            "",
            "2026-03-02 09:01:00",
            "60",
            "0",
            "NO ANSWER",
        ])
        .into_bytes();
        let at = data.iter().position(|&b| b == b'w').unwrap_or(0);
        data[at] = 0xff;
        let results: Vec<_> = CdrReader::new(&data[..], DEFAULT_CDR_TIMEZONE).collect();
        assert_eq!(results.len(), 1);
        assert_eq!(
            results[0].as_ref().unwrap_err().reason,
            CdrReason::InvalidUtf8("dcontext")
        );
    }

    #[test]
    fn read_errors_end_the_stream_with_a_reason() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk gone"))
            }
        }
        let results: Vec<_> = CdrReader::new(Failing, DEFAULT_CDR_TIMEZONE).collect();
        assert_eq!(results.len(), 1);
        assert!(
            matches!(&results[0], Err(RejectedRow { reason: CdrReason::Io(m), .. }) if m.contains("disk gone"))
        );
    }
}
