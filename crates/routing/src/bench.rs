//! Assignment latency benchmark on synthetic data, for `sportello` bench commands and
//! docs/benchmarks.md (target: one decision under 1 ms at p99 with 10,000 waiting tickets and
//! 500 operators).

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::Serialize;
use sportello_domain::{Channel, Priority, Tier};
use uuid::Uuid;

use crate::assign::AssignmentIndex;
use crate::operators::{AssignmentPolicy, OperatorState, Presence, Strategy, WaitingTicket};
use crate::rng::SplitMix64;

/// The size and shape of the synthetic workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BenchConfig {
    pub tickets: usize,
    pub operators: usize,
    /// Distinct skills in play.
    pub skills: usize,
    pub strategy: Strategy,
    pub seed: u64,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            tickets: 10_000,
            operators: 500,
            skills: 20,
            strategy: Strategy::LongestIdle,
            seed: 42,
        }
    }
}

/// Latency figures in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    pub samples: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
}

impl Latency {
    fn of(mut ns: Vec<u128>) -> Latency {
        if ns.is_empty() {
            return Latency::default();
        }
        ns.sort_unstable();
        let pick = |q: f64| {
            ns[((ns.len() as f64 * q).ceil() as usize).clamp(1, ns.len()) - 1] as f64 / 1000.0
        };
        Latency {
            samples: ns.len(),
            p50_us: pick(0.5),
            p99_us: pick(0.99),
            max_us: ns[ns.len() - 1] as f64 / 1000.0,
            mean_us: ns.iter().sum::<u128>() as f64 / ns.len() as f64 / 1000.0,
        }
    }
}

/// What the benchmark measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    pub config: BenchConfig,
    /// Building the operator index.
    pub index_build_us: f64,
    /// Index build + sorting + planning every waiting ticket, as one assignment round does.
    pub full_round_ms: f64,
    pub assigned_in_round: usize,
    /// Each ticket's decision inside the round (choose + commit, or the skip of a ticket
    /// nobody can take).
    pub decision_in_round: Latency,
    /// A single decision for a newly arrived ticket against the fresh index.
    pub single_decision: Latency,
    /// The waiting reason of one ticket.
    pub waiting_reason: Latency,
}

fn instant(base: DateTime<Utc>, secs: i64) -> DateTime<Utc> {
    base + Duration::seconds(secs)
}

/// Synthetic operators and tickets: most operators near capacity, a mix of channels, tiers,
/// skills and deadlines.
pub fn synthetic(
    cfg: &BenchConfig,
    now: DateTime<Utc>,
) -> (Vec<WaitingTicket>, Vec<OperatorState>) {
    let mut rng = SplitMix64::new(cfg.seed);
    let skill = |i: u64| format!("skill_{i}");
    let nskills = cfg.skills.max(1) as u64;
    let mut ops = Vec::with_capacity(cfg.operators);
    for i in 0..cfg.operators {
        let tiers = match rng.below(10) {
            0..=6 => vec![Tier::FrontOffice],
            7..=8 => vec![Tier::BackOffice],
            _ => vec![Tier::FrontOffice, Tier::BackOffice],
        };
        let mut skills = BTreeMap::new();
        for _ in 0..(2 + rng.below(4)) {
            skills.insert(skill(rng.below(nskills)), 1 + rng.below(5) as u8);
        }
        let capacity = BTreeMap::from([
            (Channel::Phone, 1),
            (Channel::Email, 8),
            (Channel::Counter, 1),
        ]);
        let full = rng.below(10) < 7;
        let load = capacity
            .iter()
            .map(|(c, cap)| {
                (
                    *c,
                    if full {
                        *cap
                    } else {
                        rng.below(u64::from(*cap)) as u32
                    },
                )
            })
            .collect();
        let presence = match rng.below(20) {
            0 => Presence::Break,
            1 => Presence::Offline,
            2 => Presence::WrapUp,
            _ => Presence::Available,
        };
        ops.push(OperatorState {
            id: Uuid::from_u128(1_000_000 + i as u128),
            tiers,
            skills,
            capacity,
            load,
            presence,
            on_shift: rng.below(10) != 0,
            last_assigned_at: Some(instant(now, -(rng.below(7200) as i64))),
            idle_since: (!full).then(|| instant(now, -(rng.below(3600) as i64))),
        });
    }
    let mut tickets = Vec::with_capacity(cfg.tickets);
    for i in 0..cfg.tickets {
        let channel = match rng.below(10) {
            0..=2 => Channel::Phone,
            3 => Channel::Counter,
            _ => Channel::Email,
        };
        let mut skills = BTreeMap::new();
        for _ in 0..rng.below(3) {
            skills.insert(skill(rng.below(nskills)), 1 + rng.below(3) as u8);
        }
        tickets.push(WaitingTicket {
            id: Uuid::from_u128(i as u128 + 1),
            channel,
            tier: if rng.below(5) == 0 {
                Tier::BackOffice
            } else {
                Tier::FrontOffice
            },
            skills,
            priority: Priority::ALL[rng.below(4) as usize],
            sla_due: (rng.below(10) != 0).then(|| instant(now, rng.below(3 * 86_400) as i64)),
            enqueued_at: instant(now, -(rng.below(8 * 3600) as i64)),
        });
    }
    (tickets, ops)
}

/// Runs the assignment benchmark (pure CPU, no IO; takes well under a second in release).
pub fn run_assignment_bench(cfg: &BenchConfig) -> BenchReport {
    let now = Utc
        .with_ymd_and_hms(2026, 3, 2, 10, 0, 0)
        .single()
        .unwrap_or_default();
    let (tickets, ops) = synthetic(cfg, now);
    let policy = AssignmentPolicy {
        strategy: cfg.strategy,
        overflow: crate::config::RoutingConfig::builtin()
            .map(|c| c.assignment.overflow)
            .unwrap_or_default(),
    };

    let t0 = Instant::now();
    let fresh = AssignmentIndex::new(&ops, &policy);
    let index_build_us = t0.elapsed().as_nanos() as f64 / 1000.0;

    // One full round, timing every decision.
    let t0 = Instant::now();
    let mut ix = AssignmentIndex::new(&ops, &policy);
    let mut order: Vec<&WaitingTicket> = tickets.iter().collect();
    order.sort_by_cached_key(|t| {
        (
            t.sla_due.is_none(),
            t.sla_due,
            std::cmp::Reverse(t.priority),
            t.enqueued_at,
            t.id,
        )
    });
    let mut per = Vec::with_capacity(order.len());
    let mut assigned = 0;
    for t in order {
        let d0 = Instant::now();
        if ix.assign(t, now).is_some() {
            assigned += 1;
        }
        per.push(d0.elapsed().as_nanos());
    }
    let full_round_ms = t0.elapsed().as_nanos() as f64 / 1e6;

    let single: Vec<u128> = tickets
        .iter()
        .map(|t| {
            let d0 = Instant::now();
            std::hint::black_box(fresh.choose(t, now));
            d0.elapsed().as_nanos()
        })
        .collect();
    let reasons: Vec<u128> = tickets
        .iter()
        .take(2000)
        .map(|t| {
            let d0 = Instant::now();
            std::hint::black_box(ix.waiting_reason(t, now));
            d0.elapsed().as_nanos()
        })
        .collect();

    BenchReport {
        config: cfg.clone(),
        index_build_us,
        full_round_ms,
        assigned_in_round: assigned,
        decision_in_round: Latency::of(per),
        single_decision: Latency::of(single),
        waiting_reason: Latency::of(reasons),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_benchmark_runs_and_assigns_something() {
        let r = run_assignment_bench(&BenchConfig {
            tickets: 500,
            operators: 50,
            ..BenchConfig::default()
        });
        assert!(r.assigned_in_round > 0);
        assert_eq!(r.decision_in_round.samples, 500);
        assert_eq!(r.single_decision.samples, 500);
        assert!(r.decision_in_round.p99_us >= r.decision_in_round.p50_us);
    }

    /// `cargo test --release -p sportello-routing print_assignment_benchmark -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement, meaningful only in release builds"]
    fn print_assignment_benchmark() {
        for strategy in Strategy::ALL {
            let r = run_assignment_bench(&BenchConfig {
                strategy: *strategy,
                ..BenchConfig::default()
            });
            println!("{}", serde_json::to_string_pretty(&r).unwrap());
        }
    }
}
