//! Seed 000 run with real processes: a plain list stays empty in the parent;
//! a manager list holds the ten words, each worker's five in order.

use procshare_tests::seed000;

#[test]
fn seed000_plain_list_prints_empty() {
    procshare::set_fork_warning(false);
    assert_eq!(seed000::plain_list(), ["[]"]);
}

#[test]
fn seed000_manager_list_prints_ten_words() {
    procshare::set_fork_warning(false);
    let lines = seed000::manager_list();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(seed000::is_valid_manager_output(&lines[0]), "{}", lines[0]);
}
