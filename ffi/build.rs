//! Gives the shared library a versioned SONAME (`libssekit.so.0`), so programs linked against one
//! release keep loading a compatible later one, as a system library's would.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libssekit.so.{major}");
    }
}
