//! Gives libwsconn.so its soname, libwsconn.so.MAJOR: a program linked against
//! it records that name, so it keeps the ABI it was built for across upgrades.

fn main() {
    let family = std::env::var("CARGO_CFG_TARGET_FAMILY").unwrap_or_default();
    let vendor = std::env::var("CARGO_CFG_TARGET_VENDOR").unwrap_or_default();
    // -soname is ELF's; Apple's linker names libraries otherwise.
    if family.split(',').any(|f| f == "unix") && vendor != "apple" {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets CARGO_PKG_VERSION_MAJOR");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libwsconn.so.{major}");
    }
}
