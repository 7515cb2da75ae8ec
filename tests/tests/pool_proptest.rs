//! proptest: random task lists (some panicking) on pools of random size, chunk
//! size and `maxtasksperchild` give exactly a sequential map, with errors
//! exactly where tasks panicked. Few cases: each builds a pool of real
//! processes.

use procshare::{Pool, PoolError};
use proptest::prelude::*;

/// Panics on multiples of 7; otherwise a value that depends on the input.
fn f(x: i32) -> i64 {
    if x % 7 == 0 {
        panic!("seven divides {x}");
    }
    x as i64 * 3 - 1
}

/// Never panics.
fn g(x: i32) -> i64 {
    x as i64 * 2 + 1
}

fn sequential(x: i32) -> Result<i64, PoolError> {
    if x % 7 == 0 {
        Err(PoolError::TaskPanicked(format!("seven divides {x}")))
    } else {
        Ok(x as i64 * 3 - 1)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn pool_map_equals_sequential_map(
        items in proptest::collection::vec(-50i32..50, 0..60),
        processes in 1usize..=3,
        chunksize in proptest::option::of(1usize..=6),
        maxtasks in proptest::option::of(1u64..=4),
        unordered in any::<bool>(),
    ) {
        std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
        let mut b = Pool::builder().processes(processes);
        if let Some(m) = maxtasks {
            b = b.maxtasksperchild(m);
        }
        let pool = b.build().unwrap();
        let want: Vec<Result<i64, PoolError>> = items.iter().copied().map(sequential).collect();
        let got = pool.map_async(f, items.clone(), chunksize).unwrap().get_all().unwrap();
        prop_assert_eq!(&got, &want);
        // `get`: every value in order, or the first task's error.
        let first: Result<Vec<i64>, PoolError> = want.iter().cloned().collect();
        prop_assert_eq!(pool.map_async(f, items.clone(), chunksize).unwrap().get(), first);
        let doubled: Vec<i64> = items.iter().map(|&x| g(x)).collect();
        prop_assert_eq!(pool.map_async(g, items.clone(), chunksize).unwrap().get(), Ok(doubled));
        if unordered {
            let mut got: Vec<String> = pool
                .imap_unordered(f, items.clone(), chunksize)
                .unwrap()
                .map(|r| format!("{r:?}"))
                .collect();
            let mut want: Vec<String> = want.iter().map(|r| format!("{r:?}")).collect();
            got.sort();
            want.sort();
            prop_assert_eq!(got, want);
        } else {
            let got: Vec<_> = pool.imap(f, items.clone(), chunksize).unwrap().collect();
            prop_assert_eq!(got, want);
        }
        pool.close().unwrap();
        pool.join().unwrap();
    }
}
