//! Link options for the PAM module (the cdylib) only.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.contains("linux-gnu") {
        // Not -z pack-relative-relocs: DT_RELR shrinks the module by 0.4 MB
        // but needs glibc 2.36, which dpkg-shlibdeps does not record in the
        // .deb's Depends: Ubuntu 22.04 or RHEL 9 would install a module
        // that cannot load, and every login through it would fail.

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
