//! Reports as files: one table with a header row, written as CSV (the `csv` crate) or as an
//! XLSX workbook (`rust_xlsxwriter`) whose numbers are numeric cells, so a spreadsheet sums
//! them. Both files carry exactly the same figures.

use rust_xlsxwriter::{DocProperties, Format as CellFormat, Workbook, XlsxError};

use crate::ServiceError;

/// What a column holds; decides how its cells are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnKind {
    Text,
    /// Whole numbers (counts, seconds, deltas).
    Integer,
    /// Euro amounts, stored as cents: `750.00` in CSV, a number with a euro format in XLSX.
    Euros,
    /// A share between 0 and 1, rounded to four decimals: a percentage in XLSX.
    Ratio,
    /// A percentage already multiplied by 100, rounded to one decimal.
    Percent,
}

/// One column: its header (the JSON field name) and kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub kind: ColumnKind,
}

impl Column {
    pub const fn new(name: &'static str, kind: ColumnKind) -> Column {
        Column { name, kind }
    }
}

/// One cell; `Empty` for an absent value (a ticket without a measure, a percentage of
/// nothing).
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Integer(i64),
    Cents(i64),
    Number(f64),
}

impl From<Option<String>> for Cell {
    fn from(v: Option<String>) -> Cell {
        v.map_or(Cell::Empty, Cell::Text)
    }
}

impl From<u64> for Cell {
    fn from(v: u64) -> Cell {
        Cell::Integer(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<i64> for Cell {
    fn from(v: i64) -> Cell {
        Cell::Integer(v)
    }
}

impl From<Option<i64>> for Cell {
    fn from(v: Option<i64>) -> Cell {
        v.map_or(Cell::Empty, Cell::Integer)
    }
}

impl From<Option<u64>> for Cell {
    fn from(v: Option<u64>) -> Cell {
        v.map_or(Cell::Empty, Cell::from)
    }
}

impl From<Option<f64>> for Cell {
    fn from(v: Option<f64>) -> Cell {
        v.map_or(Cell::Empty, Cell::Number)
    }
}

/// A report as a table: the header row, then one row per key.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// The worksheet's name (at most 31 characters, no `[]:*?/\`).
    pub sheet: String,
    /// The workbook's title: what the figures are and over which dates.
    pub title: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
}

/// Cents as euros with two decimals: `75000` → `750.00`, `-5` → `-0.05`.
pub fn euros(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

impl Cell {
    fn text(&self) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(s) => s.clone(),
            Cell::Integer(n) => n.to_string(),
            Cell::Cents(c) => euros(*c),
            // The shortest text that reads back as the same number: the XLSX cell holds it
            // exactly.
            Cell::Number(x) => x.to_string(),
        }
    }
}

impl Table {
    /// The table as CSV: a header row of the column names, comma-separated, UTF-8.
    pub fn to_csv(&self) -> Result<Vec<u8>, ServiceError> {
        let fail = |e: csv::Error| ServiceError::Internal(format!("writing CSV: {e}"));
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(self.columns.iter().map(|c| c.name))
            .map_err(fail)?;
        for row in &self.rows {
            w.write_record(row.iter().map(Cell::text)).map_err(fail)?;
        }
        w.into_inner()
            .map_err(|e| ServiceError::Internal(format!("writing CSV: {e}")))
    }

    /// The table as an XLSX workbook of one sheet: a bold, frozen header row, numbers as
    /// numeric cells (amounts with a euro format, shares as percentages), columns as wide as
    /// their content.
    pub fn to_xlsx(&self) -> Result<Vec<u8>, ServiceError> {
        self.write_xlsx()
            .map_err(|e| ServiceError::Internal(format!("writing XLSX: {e}")))
    }

    fn write_xlsx(&self) -> Result<Vec<u8>, XlsxError> {
        let mut book = Workbook::new();
        book.set_properties(&DocProperties::new().set_title(&self.title));
        let header = CellFormat::new().set_bold();
        let money = CellFormat::new().set_num_format("#,##0.00 \"€\"");
        let ratio = CellFormat::new().set_num_format("0.00%");
        let percent = CellFormat::new().set_num_format("0.0");
        let sheet = book.add_worksheet();
        sheet.set_name(&self.sheet)?;
        let mut widths: Vec<usize> = self.columns.iter().map(|c| c.name.len()).collect();
        for (c, col) in self.columns.iter().enumerate() {
            sheet.write_string_with_format(0, c as u16, col.name, &header)?;
        }
        for (r, row) in self.rows.iter().enumerate() {
            let r = r as u32 + 1;
            for (c, (cell, col)) in row.iter().zip(&self.columns).enumerate() {
                let c16 = c as u16;
                match cell {
                    Cell::Empty => {}
                    Cell::Text(s) => {
                        sheet.write_string(r, c16, s)?;
                    }
                    Cell::Integer(n) => {
                        sheet.write_number(r, c16, *n as f64)?;
                    }
                    Cell::Cents(cents) => {
                        sheet.write_number_with_format(r, c16, *cents as f64 / 100.0, &money)?;
                    }
                    Cell::Number(x) => match col.kind {
                        ColumnKind::Ratio => {
                            sheet.write_number_with_format(r, c16, *x, &ratio)?;
                        }
                        ColumnKind::Percent => {
                            sheet.write_number_with_format(r, c16, *x, &percent)?;
                        }
                        _ => {
                            sheet.write_number(r, c16, *x)?;
                        }
                    },
                }
                // Amounts gain thousands separators and the euro sign when shown.
                let shown = cell.text().chars().count()
                    + if matches!(cell, Cell::Cents(_)) { 4 } else { 0 };
                if let Some(w) = widths.get_mut(c) {
                    *w = (*w).max(shown);
                }
            }
        }
        for (c, w) in widths.iter().enumerate() {
            sheet.set_column_width(c as u16, (*w).clamp(6, 60) as f64 + 2.0)?;
        }
        sheet.set_freeze_panes(1, 0)?;
        book.save_to_buffer()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table {
            sheet: "payments".into(),
            title: "Pagamenti".into(),
            columns: vec![
                Column::new("key", ColumnKind::Text),
                Column::new("count", ColumnKind::Integer),
                Column::new("amount", ColumnKind::Euros),
            ],
            rows: vec![
                vec![
                    Cell::Text("b2".into()),
                    Cell::Integer(2),
                    Cell::Cents(150_000),
                ],
                vec![Cell::Empty, Cell::Integer(1), Cell::Cents(1_234)],
            ],
        }
    }

    #[test]
    fn euros_have_two_decimals() {
        assert_eq!(euros(75_000), "750.00");
        assert_eq!(euros(5), "0.05");
        assert_eq!(euros(-1_234), "-12.34");
        assert_eq!(euros(0), "0.00");
    }

    #[test]
    fn csv_has_a_header_row_and_decimal_amounts() {
        let text = String::from_utf8(table().to_csv().unwrap()).unwrap();
        assert_eq!(text, "key,count,amount\nb2,2,1500.00\n,1,12.34\n");
    }

    #[test]
    fn xlsx_is_a_zip_workbook() {
        let bytes = table().to_xlsx().unwrap();
        assert_eq!(&bytes[..2], b"PK");
    }
}
