//! `sqlx::migrate!` embeds `../migrations` at compile time but cannot tell Cargo to watch the
//! directory, so a new migration would not trigger a rebuild without this.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
