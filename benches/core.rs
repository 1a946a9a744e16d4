//! Figures for the foundation: orbit allocation with 10,000 parked calls in a 1,000,000-orbit
//! table, state-machine events per second, and heap memory per parked call.
//!
//! Run: `cargo bench --bench core`. Memory is measured with a counting allocator and printed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use callpark::orbit::{OrbitRange, OrbitTable};
use callpark::park::*;
use criterion::{Criterion, black_box, criterion_group, criterion_main};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn table(ranges: usize) -> OrbitTable {
    OrbitTable::new(
        (0..ranges)
            .map(|i| OrbitRange {
                name: format!("r{i}"),
                span: format!("{}000000-{}999999", 10 + i, 10 + i)
                    .parse()
                    .unwrap(),
                pool: "pbx".into(),
                lot: None,
            })
            .collect(),
    )
    .unwrap()
}

fn everyone() -> PolicySet {
    PolicySet::new(vec![
        PolicyRule::new("all", true, &[], &[".*".to_string()]).unwrap(),
    ])
}

fn park(i: usize) -> Event {
    Event::Park(ParkRequest {
        channel: ChannelId::new(format!("1795360454.{i}")),
        caller: Party {
            name: "Caller Name".into(),
            number: format!("+4930{i:08}"),
        },
        parker: Parker {
            ids: vec![
                format!("{}", 100 + i % 900),
                format!("PJSIP/user{}", i % 900),
            ],
            endpoint: Some(format!("PJSIP/user{}", i % 900)),
            display: format!("user{}", i % 900),
        },
        announce_to: None,
        lot: None,
        orbit: None,
        replaces: None,
    })
}

fn parked_core(n: usize, ranges: usize) -> ParkCore {
    let mut core = ParkCore::new(
        Settings::default(),
        everyone(),
        PoolOrbits::new(&table(ranges), "pbx"),
    );
    for i in 0..n {
        core.handle(0, park(i));
    }
    core.drain_changes();
    core.drain_log();
    core
}

fn benches(c: &mut Criterion) {
    // Memory per parked call: heap growth of the core while 10,000 calls are parked.
    let before = LIVE.load(Ordering::Relaxed);
    let orbits = PoolOrbits::new(&table(1), "pbx");
    let mut core = ParkCore::new(Settings::default(), everyone(), orbits);
    let empty = LIVE.load(Ordering::Relaxed);
    for i in 0..10_000 {
        core.handle(0, park(i));
    }
    core.drain_changes();
    core.drain_log();
    let after = LIVE.load(Ordering::Relaxed);
    println!(
        "memory: empty core with a 1,000,000-orbit table {} KiB; {} bytes per parked call (10,000 parked)",
        (empty - before) / 1024,
        (after - empty) / 10_000
    );
    drop(core);

    let mut g = c.benchmark_group("allocation");
    for ranges in [1usize, 10] {
        let mut orbits = PoolOrbits::new(&table(ranges), "pbx");
        for _ in 0..10_000 {
            orbits.allocate(None);
        }
        // Free every other one so the lowest free orbit is not simply the next.
        let t = table(ranges);
        for i in (0..10_000).step_by(2) {
            orbits.release(t.ranges()[0].span.at(i).unwrap());
        }
        g.bench_function(
            format!(
                "allocate+release, 10k parked, {} orbits",
                ranges * 1_000_000
            ),
            |b| {
                b.iter(|| {
                    let o = orbits.allocate(None).unwrap();
                    orbits.release(black_box(o));
                })
            },
        );
    }
    g.finish();

    let mut g = c.benchmark_group("state machine");
    let mut core = parked_core(10_000, 1);
    let mut n = 1_000_000usize;
    // One cycle is three events: park, retrieve, bridged.
    g.throughput(criterion::Throughput::Elements(3));
    g.bench_function("park+retrieve+bridged cycle, 10k parked", |b| {
        b.iter(|| {
            n += 1;
            let cmds = core.handle(1, park(n));
            let orbit = match cmds.iter().find_map(|c| match c {
                Command::Lamp { orbit, .. } => Some(*orbit),
                _ => None,
            }) {
                Some(o) => o,
                None => unreachable!("parked"),
            };
            core.handle(
                2,
                Event::Retrieve {
                    channel: ChannelId::new(format!("r{n}")),
                    orbit,
                    by: Party::default(),
                    dialler: Parker::default(),
                },
            );
            core.handle(
                3,
                Event::Bridged {
                    channel: ChannelId::new(format!("r{n}")),
                },
            );
            core.drain_changes();
            core.drain_log();
        })
    });
    // Timer expiries: 10,000 parked calls whose pickup timeouts fall one per millisecond; one
    // iteration fires all of them (each starts a ringback).
    let mut base = ParkCore::new(
        Settings::default(),
        everyone(),
        PoolOrbits::new(&table(1), "pbx"),
    );
    for i in 0..10_000 {
        base.handle(i as Millis, park(i));
    }
    base.drain_changes();
    base.drain_log();
    g.throughput(criterion::Throughput::Elements(10_000));
    g.bench_function("10k timer expiries (ringback starts)", |b| {
        b.iter_batched_ref(
            || base.clone(),
            |core| {
                for t in 0..10_000 {
                    black_box(core.handle_timeout(90_000 + t));
                }
                core.drain_changes();
                core.drain_log();
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(core_benches, benches);
criterion_main!(core_benches);
