//! SQLite's memory allocations routed to mimalloc, the binary's allocator.
//!
//! The bundled SQLite calls the C library's `malloc` for every bound parameter it copies, every
//! record it builds and every temporary b-tree, and counts each allocation under a global mutex
//! (`SQLITE_DEFAULT_MEMSTATUS`). Profiling the CDR import showed about a quarter of SQLite's
//! worker thread in glibc's `malloc`/`free` (fast-bin consolidation, chunk unlinking) and in that
//! bookkeeping. [`install`] hands SQLite mimalloc's functions and switches the counting off,
//! through `sqlite3_config`, which is only allowed before SQLite initialises: it runs first
//! thing in `main`, before any connection is opened.
//!
//! [`keep_freed_memory`] tunes mimalloc itself for the batch commands (see there).
//!
//! This is the workspace's one module with `unsafe` code (the workspace denies it elsewhere):
//! the FFI calls and the `extern "C"` callbacks SQLite calls. Each callback forwards to the
//! mimalloc function with the same contract, so SQLite sees the allocator it expects: 8-byte
//! aligned blocks (mimalloc aligns to 16), `free`/`realloc` of blocks it got from `malloc`, the
//! usable size of a block.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};

use libsqlite3_sys as ffi;

// SAFETY (all callbacks): SQLite calls them only with sizes it computed (positive, below 2 GiB)
// and pointers it got from these same functions, as sqlite3_mem_methods requires.
unsafe extern "C" fn x_malloc(n: c_int) -> *mut c_void {
    unsafe { libmimalloc_sys::mi_malloc(usize::try_from(n).unwrap_or(0)) }
}

unsafe extern "C" fn x_free(p: *mut c_void) {
    unsafe { libmimalloc_sys::mi_free(p) }
}

unsafe extern "C" fn x_realloc(p: *mut c_void, n: c_int) -> *mut c_void {
    unsafe { libmimalloc_sys::mi_realloc(p, usize::try_from(n).unwrap_or(0)) }
}

unsafe extern "C" fn x_size(p: *mut c_void) -> c_int {
    let size = unsafe { libmimalloc_sys::mi_usable_size(p) };
    c_int::try_from(size).unwrap_or(c_int::MAX)
}

unsafe extern "C" fn x_roundup(n: c_int) -> c_int {
    let size = unsafe { libmimalloc_sys::mi_good_size(usize::try_from(n).unwrap_or(0)) };
    c_int::try_from(size).unwrap_or(n)
}

unsafe extern "C" fn x_init(_: *mut c_void) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_shutdown(_: *mut c_void) {}

/// How the configuration went, for the log: SQLite refuses it once it has initialised (a
/// connection was opened before), and then keeps its own allocator, which is correct, only slower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    Yes,
    /// `sqlite3_config`'s result code for the allocator and for the counting.
    Refused(c_int, c_int),
}

/// Routes SQLite's allocations to mimalloc and turns off its allocation statistics. Call
/// before any SQLite connection is opened.
pub fn install() -> Installed {
    let methods = ffi::sqlite3_mem_methods {
        xMalloc: Some(x_malloc),
        xFree: Some(x_free),
        xRealloc: Some(x_realloc),
        xSize: Some(x_size),
        xRoundup: Some(x_roundup),
        xInit: Some(x_init),
        xShutdown: Some(x_shutdown),
        pAppData: std::ptr::null_mut(),
    };
    // SAFETY: SQLITE_CONFIG_MALLOC takes a pointer to a sqlite3_mem_methods, which SQLite
    // copies before returning; SQLITE_CONFIG_MEMSTATUS takes an int. Both are rejected (with
    // SQLITE_MISUSE, nothing changed) once SQLite has initialised.
    let malloc = unsafe {
        ffi::sqlite3_config(
            ffi::SQLITE_CONFIG_MALLOC,
            &methods as *const ffi::sqlite3_mem_methods,
        )
    };
    let memstatus = unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_MEMSTATUS, 0 as c_int) };
    if malloc == ffi::SQLITE_OK && memstatus == ffi::SQLITE_OK {
        Installed::Yes
    } else {
        Installed::Refused(malloc, memstatus)
    }
}

/// mimalloc's `mi_option_purge_delay` (`mimalloc.h`, version 3 of the allocator, which the
/// `libmimalloc-sys` crate builds by default): how long freed memory stays with the process
/// before it is returned to the kernel, in milliseconds (default 1,000; -1: never).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps the memory a batch command frees for its next batch instead of returning it to the
/// kernel. The CDR import builds and drops tens of megabytes per batch of rows, about a
/// second apart; returned memory came back as fresh pages the kernel had to zero (the import
/// ran 5 % faster without it, docs/benchmarks.md). Only for commands that end when their work
/// is done (`import-cdr`, `bench`): the server keeps mimalloc's default and gives memory back.
/// `MIMALLOC_PURGE_DELAY` in the environment still wins.
pub fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mi_option_set stores a value in mimalloc's option table; any thread, any
        // time, and an option index inside the table (15 < _mi_option_last).
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test: SQLite initialises once per process, so the order of these steps matters.
    #[tokio::test]
    async fn sqlite_runs_on_mimalloc_once_configured_before_any_connection() {
        assert_eq!(install(), Installed::Yes, "nothing opened SQLite before");

        let dir = std::env::temp_dir().join(format!("sportello-malloc-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
        // Migrations, the seeded taxonomy and a read back: real work through the allocator.
        let db = sportello_store::connect(&url, &sportello_store::DbOptions::default())
            .await
            .unwrap();
        use sea_orm::{ConnectionTrait, Statement};
        let row = db
            .read
            .query_one_raw(Statement::from_string(
                db.read.get_database_backend(),
                "SELECT count(*) AS n, sqlite_version() AS v FROM seaql_migrations",
            ))
            .await
            .unwrap()
            .unwrap();
        let n: i64 = row.try_get("", "n").unwrap();
        assert!(n >= 10, "every migration applied: {n}");
        db.close().await;

        // SQLite has initialised: it refuses a new allocator, and counts nothing.
        assert!(matches!(install(), Installed::Refused(..)));
        // SAFETY: a plain read of SQLite's counter.
        let used = unsafe { ffi::sqlite3_memory_used() };
        assert_eq!(used, 0, "allocation statistics are off");
        let _ = std::fs::remove_dir_all(dir);
    }
}
