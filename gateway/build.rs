// `sqlx::migrate!` embeds schemas/migrations at compile time; a new migration file must
// trigger a rebuild too.
fn main() {
    println!("cargo:rerun-if-changed=../schemas/migrations");
}
