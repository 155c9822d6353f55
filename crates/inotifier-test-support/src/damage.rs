//! Damaging a journal the way a bad disk or a stray write would: garbage over one page of its
//! SQLite file, found by what the page holds. For tests of what is refused, reported and
//! recovered.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

/// Overwrites page `page` (1-based) of the closed database at `path` with garbage.
pub fn damage_page(path: &Path, page: i64) {
    let page_size: i64 = {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap()
    };
    let mut file = OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(((page - 1) * page_size) as u64))
        .unwrap();
    file.write_all(&vec![0xa5; page_size as usize]).unwrap();
}

/// The root page of the table or index `name`.
pub fn root_page(path: &Path, name: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(
        "SELECT rootpage FROM sqlite_master WHERE name = ?1",
        [name],
        |r| r.get(0),
    )
    .unwrap()
}

/// A leaf page in the middle of the table `name` (which must span more than four): a scan
/// stops there, while lookups of the first and last rows go around it.
pub fn middle_leaf(path: &Path, name: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    let leaves: Vec<i64> = conn
        .prepare("SELECT pageno FROM dbstat WHERE name = ?1 AND pagetype = 'leaf' ORDER BY path")
        .unwrap()
        .query_map([name], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert!(leaves.len() > 4, "{} leaves", leaves.len());
    leaves[leaves.len() / 2]
}
