//! `sportello report ...`: the reports of the API (contacts, applications, payments, SLA, the
//! comparison with the year before and the baselines) written to a CSV, XLSX or JSON file,
//! with a progress bar on a terminal; and `report import-baseline FILE`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sportello_domain::Role;
use sportello_service::reports::{ReportKind, ReportProgress, ReportQuery};
use sportello_service::{Actor, App};
use uuid::Uuid;

#[derive(Subcommand)]
pub enum ReportCommand {
    /// Contacts (tickets, by local creation date) per channel, measure, category, tier, day,
    /// week or month.
    Contacts(ReportArgs),
    /// Applications (by submission date) per status, measure, channel, day, week or month.
    Applications(ReportArgs),
    /// Payments (by payment date) per measure, month, day or week, with amounts in euros.
    Payments {
        #[command(flatten)]
        args: ReportArgs,
        /// Only this measure.
        #[arg(long)]
        measure: Option<String>,
    },
    /// First responses and resolutions against their SLA targets per channel, tier, category,
    /// measure or all together.
    Sla(ReportArgs),
    /// Each month against the same dates a year earlier and the imported baseline.
    Compare {
        #[command(flatten)]
        args: ReportArgs,
        /// contacts (default), applications or payments.
        #[arg(long)]
        metric: Option<String>,
        /// all (default) or dimension:slug, e.g. channel:phone or measure:b2.
        #[arg(long)]
        key: Option<String>,
        /// Compare every month with this year's baseline (default: the latest earlier year
        /// with one for that month).
        #[arg(long)]
        baseline_year: Option<String>,
    },
    /// Import baseline figures from a CSV file with the columns metric,key,period,count (a
    /// header row; `,` or `;`). Figures already imported for the same metric, key and month
    /// are replaced. All rows or none.
    ImportBaseline {
        /// The CSV file.
        file: PathBuf,
    },
}

#[derive(Args)]
pub struct ReportArgs {
    /// First local date, YYYY-MM-DD (included).
    #[arg(long)]
    from: String,
    /// Last local date, YYYY-MM-DD (included).
    #[arg(long)]
    to: String,
    /// How rows are keyed (see each report; the first listed is the default).
    #[arg(long)]
    group_by: Option<String>,
    /// csv, xlsx or json (default: from the output file's extension, else csv).
    #[arg(long)]
    format: Option<String>,
    /// Where to write the report (default: standard output, not for xlsx).
    #[arg(long, short)]
    output: Option<PathBuf>,
}

/// The command line acts as the system: the operating-system user is trusted, as with
/// `admin create-user`. The audit trail records its reports without an actor.
fn system() -> Actor {
    Actor {
        id: Uuid::nil(),
        username: "system".into(),
        name: "system".into(),
        roles: vec![Role::Admin],
    }
}

/// The progress bar: the style of `import-cdr`'s, counting the report's steps.
struct Bar(ProgressBar);

impl ReportProgress for Bar {
    fn advance(&self, done: u64, total: u64) {
        self.0.set_length(total);
        self.0.set_position(done);
    }
}

fn bar(label: &str) -> ProgressBar {
    let bar = ProgressBar::new(1);
    let style = ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} {msg} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(label.to_owned());
    // Redrawn while one long query runs, so the terminal shows the report is alive.
    bar.enable_steady_tick(std::time::Duration::from_millis(250));
    bar
}

/// The format asked for, else the output file's extension, else CSV.
fn format_of(args: &ReportArgs) -> String {
    if let Some(f) = &args.format {
        return f.clone();
    }
    match args
        .output
        .as_deref()
        .and_then(Path::extension)
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("xlsx") => "xlsx".into(),
        Some("json") => "json".into(),
        _ => "csv".into(),
    }
}

pub async fn run(app: &App, command: ReportCommand) -> anyhow::Result<()> {
    let (kind, args, query) = match command {
        ReportCommand::ImportBaseline { file } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let done = app.import_baselines(&system(), &bytes).await?;
            println!(
                "imported {} baseline figures ({} replaced earlier ones)",
                done.imported, done.replaced
            );
            return Ok(());
        }
        ReportCommand::Contacts(a) => (ReportKind::Contacts, a, ReportQuery::default()),
        ReportCommand::Applications(a) => (ReportKind::Applications, a, ReportQuery::default()),
        ReportCommand::Sla(a) => (ReportKind::Sla, a, ReportQuery::default()),
        ReportCommand::Payments { args, measure } => (
            ReportKind::Payments,
            args,
            ReportQuery {
                measure,
                ..Default::default()
            },
        ),
        ReportCommand::Compare {
            args,
            metric,
            key,
            baseline_year,
        } => (
            ReportKind::Compare,
            args,
            ReportQuery {
                metric,
                key,
                baseline_year,
                ..Default::default()
            },
        ),
    };
    let format = format_of(&args);
    anyhow::ensure!(
        format != "xlsx" || args.output.is_some(),
        "an XLSX report needs --output FILE"
    );
    let query = ReportQuery {
        from: Some(args.from.clone()),
        to: Some(args.to.clone()),
        group_by: args.group_by.clone(),
        format: Some(format),
        ..query
    };
    let progress = bar(kind.as_str());
    let result = app
        .report(&system(), kind, &query, &Bar(progress.clone()))
        .await;
    progress.finish_and_clear();
    let (report, format) = result?;
    let file = report.render(format)?;
    match &args.output {
        Some(path) => {
            std::fs::write(path, &file.bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("{} written to {}", file.file_name, path.display());
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&file.bytes)?;
            out.flush()?;
        }
    }
    Ok(())
}
