//! Prints `infra/permissions.json`: every function's IAM statements, from the permissions each
//! crate declares next to its AWS calls. `cargo run -p ir-tests --bin permissions >
//! infra/permissions.json`; a test fails while the committed file differs.

fn main() {
    print!("{}", ir_tests::permissions::rendered());
}
