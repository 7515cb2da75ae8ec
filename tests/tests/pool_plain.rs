//! Task arguments and results that are plain values (numbers, `bool`s,
//! `char`s, tuples, arrays and structs of them) cross between the parent and
//! real worker processes as fixed-width bytes; every other value as postcard.
//! Each kind, and a value that mixes them, comes back exactly.

use procshare::Pool;
use procshare_tests::quiet;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
struct Particle {
    id: u32,
    pos: [f64; 3],
    charge: i8,
    alive: bool,
    tag: char,
}

fn step(p: Particle) -> Particle {
    Particle {
        id: p.id.wrapping_mul(3),
        pos: [p.pos[0] + 1.0, -p.pos[1], p.pos[2] * 2.0],
        charge: p.charge.wrapping_neg(),
        alive: !p.alive,
        tag: char::from_u32(p.tag as u32 + 1).unwrap_or('?'),
    }
}

fn wide(x: (i128, u128, u16)) -> (u128, i128, u16) {
    (x.1.wrapping_add(1), x.0.wrapping_sub(1), x.2.rotate_left(3))
}

fn extremes(x: i64) -> (i64, u64, f32) {
    (x.wrapping_neg(), x as u64, x as f32)
}

/// Not plain (a string and an option): postcard, as before.
fn describe(p: Particle) -> (String, Option<u32>) {
    (format!("{}:{}", p.id, p.tag), p.alive.then_some(p.id))
}

fn particles(n: u32) -> Vec<Particle> {
    (0..n)
        .map(|i| Particle {
            id: i.wrapping_mul(2_654_435_761),
            pos: [
                f64::from(i),
                -0.5 * f64::from(i),
                f64::MAX / f64::from(i + 1),
            ],
            charge: (i % 256) as u8 as i8,
            alive: i % 3 == 0,
            tag: char::from_u32(0x61 + i % 1000).unwrap_or('x'),
        })
        .collect()
}

#[test]
fn plain_values_cross_to_real_workers_and_back_exactly() {
    quiet();
    let pool = Pool::new(2).unwrap();
    let ps = particles(10_000);
    let want: Vec<Particle> = ps.iter().copied().map(step).collect();
    assert_eq!(pool.map(step, ps.clone()).unwrap(), want);
    assert_eq!(pool.apply(step, ps[7]).unwrap(), step(ps[7]));

    let xs: Vec<(i128, u128, u16)> = (0..5_000u32)
        .map(|i| {
            let i = i128::from(i);
            (i128::MIN + i, u128::MAX - i as u128, (i * 7) as u16)
        })
        .collect();
    let want: Vec<_> = xs.iter().copied().map(wide).collect();
    assert_eq!(
        pool.map_async(wide, xs, Some(333)).unwrap().get().unwrap(),
        want
    );

    let ys = [i64::MIN, -1, 0, 1, i64::MAX];
    let want: Vec<_> = ys.iter().copied().map(extremes).collect();
    assert_eq!(pool.map(extremes, ys).unwrap(), want);

    // Plain arguments, results that are not plain.
    let want: Vec<_> = ps.iter().copied().map(describe).collect();
    assert_eq!(pool.map(describe, ps).unwrap(), want);
}
