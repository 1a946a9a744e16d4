//! The run: cycles of actions with a fault among them, each followed by the wait until the
//! invariants hold again (the recovery), and the short run the tests make.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::Pbx;
use super::bed::Bed;
use super::invariants::{fired_twice, known, look};
use super::plan::{Cycle, Done, NODES, ONE_NODE};
use super::report::{Report, show_not_recovered, show_slow_recovery};
use super::rng::{Rng, seed};
use super::site::{Layout, Site};

/// Runs `cycles` cycles against one testbed, or as many as fit in `budget`, with callpark
/// laid out as `layout`. Panics only if the testbed itself fails.
pub async fn run(
    pbx: Pbx,
    layout: Layout,
    cycles: u32,
    seed: u64,
    budget: Option<Duration>,
) -> Report {
    println!(
        "fault run on {pbx} ({layout:?}): {cycles} cycles, seed {seed} (CALLPARK_FAULT_SEED={seed} replays it)"
    );
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let (bed, target) = Bed::take(pbx).await;
    let mut site = Site::start(layout, pbx, &bed, &target).await;
    let faults = match layout {
        Layout::OneNode => &ONE_NODE,
        Layout::Nodes => &NODES,
    };
    let mut report = Report {
        seed,
        cycles,
        layout: Some(layout),
        ..Report::default()
    };
    let mut handed: HashSet<String> = HashSet::new();
    let mut twice: HashSet<String> = HashSet::new();
    let mut n = 0u32;
    for cycle in 1..=cycles {
        if budget.is_some_and(|b| started.elapsed() > b) {
            println!("time budget spent after {} cycles", cycle - 1);
            report.cycles = cycle - 1;
            break;
        }
        let store = site.parked().await;
        let Cycle {
            fault,
            actions,
            fault_at,
            fault_for,
        } = Cycle::decide(&mut rng, faults, &store, &mut n, bed.orbit_base());
        *report.faults.entry(format!("{fault:?}")).or_default() += 1;

        // Actions and the fault, at their moments, together.
        let t0 = Instant::now();
        let actions = futures_util::future::join_all(actions.into_iter().map(|(at, a)| {
            let bed = &bed;
            async move {
                tokio::time::sleep(at).await;
                a.run(bed).await
            }
        }));
        let inject = site.inject(fault, fault_at, fault_for);
        let (done, ()) = tokio::join!(actions, inject);
        for d in done {
            match d {
                Done::Parked(ch) => {
                    report.parks += 1;
                    handed.insert(ch);
                }
                Done::Retrieved => report.retrieves += 1,
                Done::HungUp => report.hangups += 1,
            }
        }
        let fault_over = Instant::now();

        // Recovery: the invariants hold again, within a bound.
        let limit = Duration::from_secs(40);
        let mut first: Option<Vec<String>> = None;
        let problems = loop {
            let problems = look(&bed, &site, &handed).await;
            if problems.is_empty() || fault_over.elapsed() > limit {
                break problems;
            }
            first.get_or_insert_with(|| problems.clone());
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let recovery = fault_over.elapsed();
        if recovery > Duration::from_secs(5) {
            show_slow_recovery(cycle, recovery, &first, &site.log_text());
        }
        report.slowest_recovery.add(recovery, cycle);
        // Not things a recovery mends: a deadline fired twice, a write out of its epoch.
        for p in fired_twice(&site.log_rows().await, &mut twice) {
            println!("cycle {cycle}: {fault:?}: {p}");
            show_not_recovered(&site.log_text(), std::slice::from_ref(&p));
            report.fired_twice += 1;
            report
                .problems
                .push(format!("cycle {cycle} ({fault:?}): {p}"));
        }
        if let Site::Nodes(nodes) = &mut site {
            for p in nodes.check_commands().await {
                println!("cycle {cycle}: {fault:?}: {p}");
                report
                    .problems
                    .push(format!("cycle {cycle} ({fault:?}): {p}"));
            }
        }
        if !problems.is_empty() {
            report.double_held += problems
                .iter()
                .filter(|p| p.contains("is held twice"))
                .count() as u32;
            report.lost += problems.len() as u32;
            for p in &problems {
                report
                    .problems
                    .push(format!("cycle {cycle} ({fault:?}): {p}"));
            }
            println!("cycle {cycle}: {fault:?}: NOT RECOVERED after {recovery:.1?}: {problems:?}");
            show_not_recovered(&site.log_text(), &problems);
        }
        // Only parked calls carry over: finished conversations and calls at the operator go.
        let store = site.parked().await;
        let chans = bed.channels().await;
        bed.clean(&chans, &known(&store)).await;
        println!(
            "cycle {cycle}/{cycles}: {fault:?} at {fault_at:?} for {fault_for:?}; recovered in {recovery:.1?}; cycle {:.1?}; {} parked, {} channels",
            t0.elapsed(),
            store.len(),
            chans.len()
        );
    }
    if let Site::Nodes(nodes) = &mut site {
        // The last writes, once they are settled.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        for p in nodes.check_commands().await {
            report.problems.push(format!("at the end: {p}"));
        }
        report.commands = Some(std::mem::take(&mut nodes.seen));
    }
    report.elapsed = started.elapsed();
    site.stop();
    report
}

/// The short run the tests make: CALLPARK_FAULT_CYCLES cycles (30 unless set; with several
/// nodes CALLPARK_FAULT_NODE_CYCLES, 16 unless set), any seed (CALLPARK_FAULT_SEED replays
/// one); fails when a call was lost, a node wrote to the PBX out of its epoch, or nothing
/// was parked.
pub async fn no_call_lost(pbx: Pbx, layout: Layout) {
    let (var, default) = match layout {
        Layout::OneNode => ("CALLPARK_FAULT_CYCLES", 30),
        Layout::Nodes => ("CALLPARK_FAULT_NODE_CYCLES", 16),
    };
    let cycles = std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    let _turn = crate::exclusive_of(pbx.testbed()).await;
    let report = run(pbx, layout, cycles, seed(), None).await;
    println!("{report}");
    assert!(report.parks > 0, "the run parked nothing: {report}");
    assert!(report.sound(), "{report}\n{:#?}", report.problems);
    if layout == Layout::Nodes {
        let c = report
            .commands
            .as_ref()
            .expect("the PBX's view of the nodes");
        assert!(c.writes > 0, "no node wrote to the PBX: {report}");
    }
}
