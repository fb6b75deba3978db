//! Link options for the PAM module (the cdylib) only.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.contains("linux-gnu") {
        // Every login maps and relocates the module afresh. Packed relative
        // relocations (DT_RELR, glibc 2.36+, binutils 2.38+) turn ~19,000
        // 24-byte RELA entries into a small bitmap that the loader walks far
        // faster. Older linkers ignore the option with a warning.
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,pack-relative-relocs");
        // Never unmapped by dlclose (pam_end). Rust's std can leave a
        // thread-exit hook pointing into the module (a pthread key made the
        // first time a thread waits on a lazily built value); in a threaded
        // PAM host a thread exiting after pam_end would jump into unmapped
        // memory and crash the host. Staying loaded also spares a host that
        // authenticates again the cost of mapping and relocating it again.
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
