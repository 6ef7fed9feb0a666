//! A real private cluster from the machine's `initdb`/`pg_ctl`: start, reuse, attach, stop,
//! clean up, and errors that quote the server log. Needs Postgres server binaries (the
//! `prerequisites` step of `cargo xtask test` installs them); no `DATABASE_URL`.

use std::fs;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use voice_node::local_postgres::{LocalPostgres, LocalPostgresError, PgBinaries};

/// A scratch directory under the temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "callgate-lpg-itest-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn accepts_tcp(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Runs SQL with the `psql` that sits beside `pg_ctl`, if the installation has one.
fn psql(pg: &LocalPostgres, sql: &str) -> Option<String> {
    let psql = PgBinaries::find().ok()?.pg_ctl.with_file_name("psql");
    if !psql.is_file() {
        return None;
    }
    let out = Command::new(psql)
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(pg.url())
        .args(["-c", sql])
        .output()
        .unwrap();
    assert!(out.status.success(), "psql: {out:?}");
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn finds_binaries_on_this_machine() {
    let bins = PgBinaries::find().expect("the CI image has Postgres server binaries");
    assert!(bins.initdb.ends_with("initdb"));
    assert_eq!(bins.initdb.parent(), bins.pg_ctl.parent());
}

#[test]
fn ephemeral_cluster_serves_its_url_and_vanishes_on_drop() {
    let pg = LocalPostgres::ephemeral().unwrap();
    let port = pg.port();
    assert_eq!(
        pg.url(),
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    );
    assert!(pg.initialized_now() && pg.owns_server());
    assert!(accepts_tcp(port));
    // The Unix socket lives inside the data dir.
    assert!(pg.data_dir().join(format!(".s.PGSQL.{port}")).exists());
    if let Some(answer) = psql(&pg, "SHOW fsync") {
        assert_eq!(answer, "off");
    }
    let root = pg.data_dir().parent().unwrap().to_owned();
    drop(pg);
    assert!(!root.exists(), "{} left behind", root.display());
    assert!(!accepts_tcp(port));
}

#[test]
fn persistent_cluster_keeps_its_data_across_restarts() {
    let scratch = Scratch::new("persist");
    let dir = scratch.0.join("nested/pgdata");
    let first = LocalPostgres::persistent(&dir).unwrap();
    assert!(first.initialized_now());
    let wrote = psql(
        &first,
        "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)",
    );
    first.stop().unwrap();
    assert!(!dir.join("postmaster.pid").exists());

    let second = LocalPostgres::persistent(&dir).unwrap();
    assert!(!second.initialized_now(), "an initialized dir is reused");
    assert!(accepts_tcp(second.port()));
    if wrote.is_some() {
        assert_eq!(psql(&second, "SELECT v FROM kept").unwrap(), "42");
        assert_eq!(psql(&second, "SHOW fsync").unwrap(), "on");
    }
    drop(second);
    assert!(dir.join("PG_VERSION").exists(), "persistent data is kept");
}

#[test]
fn second_start_on_a_running_dir_attaches_without_owning() {
    let scratch = Scratch::new("attach");
    let dir = scratch.0.join("pgdata");
    let owner = LocalPostgres::persistent(&dir).unwrap();
    let guest = LocalPostgres::persistent(&dir).unwrap();
    assert_eq!(guest.port(), owner.port());
    assert!(!guest.owns_server());
    drop(guest);
    assert!(accepts_tcp(owner.port()), "the guest must not stop it");
    let port = owner.port();
    drop(owner);
    assert!(!accepts_tcp(port));
}

#[test]
fn stopper_stops_once_and_drop_after_it_is_harmless() {
    let pg = LocalPostgres::ephemeral().unwrap();
    let port = pg.port();
    let stopper = pg.stopper();
    stopper.stop().unwrap();
    assert!(!accepts_tcp(port));
    stopper.stop().unwrap();
    drop(pg);
}

#[test]
fn refuses_to_initdb_over_an_unrelated_directory() {
    let scratch = Scratch::new("notpg");
    fs::write(scratch.0.join("notes.txt"), "mine").unwrap();
    let err = LocalPostgres::persistent(&scratch.0).unwrap_err();
    assert!(
        matches!(err, LocalPostgresError::NotADataDir { .. }),
        "{err}"
    );
    assert!(scratch.0.join("notes.txt").exists());
}

#[test]
fn start_failure_quotes_the_server_log() {
    let scratch = Scratch::new("badconf");
    let dir = scratch.0.join("pgdata");
    LocalPostgres::persistent(&dir).unwrap().stop().unwrap();
    let conf = dir.join("postgresql.conf");
    let mut text = fs::read_to_string(&conf).unwrap();
    text.push_str("\nshared_buffers = 'plenty'\n");
    fs::write(&conf, text).unwrap();

    let err = LocalPostgres::persistent(&dir).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("pg_ctl start failed"), "{msg}");
    assert!(msg.contains("last lines of"), "{msg}");
    assert!(msg.contains("shared_buffers"), "{msg}");
}
