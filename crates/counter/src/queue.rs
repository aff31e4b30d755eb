//! Queue numbers shown to visitors at check-in: a letter for the kind of visit and a
//! three-digit number restarting every day (`A001`, `A002`, …, `W001`).
//!
//! The letter is per *service*, not per desk: visitors with an appointment get `A`, walk-ins
//! get `W`. Any free desk calls the next number, so a visitor does not need to know their desk
//! when they arrive; the display shows which desk called them.

use serde::{Deserialize, Serialize};

/// The kind of visit, which picks the queue letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueKind {
    Appointment,
    WalkIn,
}

impl QueueKind {
    pub fn letter(self) -> char {
        match self {
            QueueKind::Appointment => 'A',
            QueueKind::WalkIn => 'W',
        }
    }
}

/// The queue number of the `sequence`-th visitor of a kind on a day (1-based). Past 999 the
/// number simply grows to four digits rather than wrapping onto a number already called.
pub fn queue_number(kind: QueueKind, sequence: u32) -> String {
    format!("{}{:03}", kind.letter(), sequence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short_and_distinct() {
        assert_eq!(queue_number(QueueKind::Appointment, 1), "A001");
        assert_eq!(queue_number(QueueKind::Appointment, 12), "A012");
        assert_eq!(queue_number(QueueKind::WalkIn, 7), "W007");
        assert_eq!(queue_number(QueueKind::Appointment, 1000), "A1000");
        let all: std::collections::HashSet<_> = (1..=1500)
            .map(|n| queue_number(QueueKind::Appointment, n))
            .collect();
        assert_eq!(all.len(), 1500);
    }
}
