//! `ffi/include/ssekit.h` is what the pinned cbindgen makes of `ffi/src` (ffi/cbindgen.toml): this
//! fails when an export changed and the header was not regenerated. `SSEKIT_BLESS=1` rewrites it.

#[test]
fn the_checked_in_header_is_what_cbindgen_generates() {
    let crate_dir = env!("CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(format!("{crate_dir}/cbindgen.toml"))
        .expect("ffi/cbindgen.toml parses");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen reads ffi/src")
        .write(&mut generated);
    let path = format!("{crate_dir}/include/ssekit.h");
    if std::env::var_os("SSEKIT_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write the header");
        return;
    }
    let checked_in = std::fs::read(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "ffi/include/ssekit.h is stale: regenerate it with SSEKIT_BLESS=1 cargo test -p ssekit-ffi --test header"
    );
}
