//! `sportello import-cdr FILE...`: Asterisk CDR files (`Master.csv`) into the call log, with a
//! progress bar and a report of every rejected row. The benchmark imports through this code.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use sportello_service::App;
use sportello_service::phone::sportello_phone::{CdrReader, CdrRow, RejectedRow};

/// Rows written per transaction (`--batch-rows`): large enough that the random-order indexes
/// (citizen, number) are not rewritten page by page at every commit (2,000 rows per batch spent
/// as long committing as writing; 20,000 import 10 % faster than 10,000), small enough that a
/// concurrent writer waits about a second at most and the pages a batch changes (about 100 MB)
/// stay in memory (see `cache_spill` in `sportello_store::connect`).
pub const BATCH_ROWS: usize = 20_000;

/// What importing one source of rows found.
#[derive(Debug, Default, Clone)]
pub struct Imported {
    /// Rows of calls not known before.
    pub new: u64,
    /// Rows of calls already recorded (a re-import, or a call reported live by a webhook).
    pub known: u64,
    pub rejected: Vec<RejectedRow>,
}

/// Counts the bytes read, for the progress bar.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Imports every row of a CDR stream under `source`, `batch_rows` rows per transaction.
/// Parsing runs on a blocking thread, and the service plans each batch while the previous one
/// is written ([`sportello_service::phone::CdrImport`]), so the three overlap.
pub async fn import_reader<R: Read + Send + 'static>(
    app: &App,
    source: &str,
    reader: R,
    batch_rows: usize,
    progress: &ProgressBar,
) -> anyhow::Result<Imported> {
    let batch_rows = batch_rows.max(1);
    let zone = app.config().phone.cdr_timezone;
    let read = Arc::new(AtomicU64::new(0));
    let counting = Counting {
        inner: reader,
        read: read.clone(),
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Vec<CdrRow>, Vec<RejectedRow>)>(2);
    let parser = tokio::task::spawn_blocking(move || {
        let mut rows = Vec::with_capacity(batch_rows);
        let mut rejected = Vec::new();
        for result in CdrReader::new(counting, zone) {
            match result {
                Ok(row) => rows.push(row),
                Err(bad) => rejected.push(bad),
            }
            if rows.len() >= batch_rows {
                let batch = std::mem::replace(&mut rows, Vec::with_capacity(batch_rows));
                if tx
                    .blocking_send((batch, std::mem::take(&mut rejected)))
                    .is_err()
                {
                    return;
                }
            }
        }
        let _ = tx.blocking_send((rows, rejected));
    });
    let mut out = Imported::default();
    let mut import = app.cdr_import(source);
    while let Some((rows, rejected)) = rx.recv().await {
        out.rejected.extend(rejected);
        if !rows.is_empty()
            && let Some(report) = import.push(rows).await?
        {
            out.new += report.new;
            out.known += report.known;
        }
        progress.set_position(read.load(Ordering::Relaxed));
        progress.set_message(format!("{} rows", out.new + out.known));
    }
    let (last, stats) = import.finish().await?;
    if let Some(report) = last {
        out.new += report.new;
        out.known += report.known;
    }
    tracing::info!(
        batches = stats.batches,
        planned_ahead = stats.planned_ahead,
        planned_again = stats.planned_again,
        "CDR rows written"
    );
    parser
        .await
        .context("the CDR reader stopped unexpectedly")?;
    Ok(out)
}

fn bar(len: u64, label: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let style =
        ProgressStyle::with_template("{prefix} [{bar:40}] {bytes}/{total_bytes} {msg} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(label.to_owned());
    bar
}

/// Imports the files in order and prints the report; `Ok(true)` when rows were rejected.
pub async fn run(
    app: &App,
    source: &str,
    files: &[PathBuf],
    batch_rows: usize,
) -> anyhow::Result<bool> {
    anyhow::ensure!(!files.is_empty(), "give at least one CDR file");
    anyhow::ensure!(!source.trim().is_empty(), "--source must not be empty");
    // Every file is opened first, so a typo in the last name does not leave half an import.
    let mut opened = Vec::new();
    for path in files {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        opened.push((path.as_path(), file, len));
    }
    let mut total = Imported::default();
    let mut reports: Vec<(&Path, Vec<RejectedRow>)> = Vec::new();
    for (path, file, len) in opened {
        let progress = bar(len, &path.display().to_string());
        let imported = import_reader(
            app,
            source,
            BufReader::with_capacity(1 << 16, file),
            batch_rows,
            &progress,
        )
        .await
        .with_context(|| format!("importing {}", path.display()))?;
        progress.finish_and_clear();
        total.new += imported.new;
        total.known += imported.known;
        reports.push((path, imported.rejected));
    }
    let several = files.len() > 1;
    let mut rejected = 0usize;
    for (path, rows) in &reports {
        for row in rows {
            rejected += 1;
            if several {
                println!("{}: {row}", path.display());
            } else {
                println!("{row}");
            }
        }
    }
    println!(
        "imported {} new, {} already present, {rejected} rejected",
        total.new, total.known
    );
    Ok(rejected > 0)
}
