//! Builds the one C file of the server: INCRBYFLOAT's `long double` arithmetic
//! (src/cmd/long_double.c), which Rust cannot express.
fn main() {
    println!("cargo:rerun-if-changed=src/cmd/long_double.c");
    cc::Build::new()
        .file("src/cmd/long_double.c")
        .warnings(true)
        .compile("tierkv_long_double");
}
