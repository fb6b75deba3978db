//! Secrets do not outlive the login in the module's memory.
//!
//! The login runs in a child process (this binary, re-executed) whose
//! config holds the auth token inline; after pam_end the child searches its
//! own writable memory (heap, anonymous mappings, stack, libraries' data)
//! for the token. The simulator that checks the token runs in this process.
//!
//! Memory that is freed is soon handed out again and overwritten, which
//! would hide a copy left unwiped by chance. So the child also runs with a
//! small preloaded library, built here, that looks into every block as it
//! is freed: a copy that was not wiped is caught at that moment.

mod common;
mod reexec;

use common::*;
use pam_twilio_2fa::lab::Lab;
use pam_twilio_2fa::pam_client::PAM_SUCCESS;
use pam_twilio_2fa::simulator::SimConfig;
use reexec::ChildLogin;

/// Not a test of its own: the child side of the test below.
#[test]
#[ignore = "the child process of the other tests in this file"]
fn child_login() {
    if let Some(req) = reexec::requested() {
        req.run();
    }
}

#[test]
fn an_inline_auth_token_is_wiped_once_the_login_is_over() {
    // Random, so no other data in the child can look like it by chance.
    let token = format!("tok{:016x}{:016x}", rand(), rand());
    let sim = SimConfig {
        auth_token: token.clone(),
        ..SimConfig::default()
    };
    let (s, dir, outbox) = Setup::with_outbox(sim, "allowed_methods = [\"sms\"]\n");
    assert!(std::fs::read_to_string(&s.lab.config)
        .unwrap()
        .contains(&format!("auth_token = \"{token}\"")));
    let login = ChildLogin {
        confdir: &s.lab.confdir,
        service: SERVICE,
        user: USER,
        outbox: &outbox,
        right_code: true,
        ruid: None,
    };
    let watch = build_free_watch(&dir);
    let scan = [
        (reexec::SCAN_FOR, reexec::masked_hex(&token)),
        ("LD_PRELOAD", watch.display().to_string()),
    ];
    let end = reexec::spawn(&[], "child_login", &login, &scan).finish(60);
    assert_eq!(end.pam_rc(), Some(PAM_SUCCESS), "{end:?}");
    assert!(
        end.stdout.contains("SECRET_COPIES=0"),
        "copies of the auth token left in live memory: {}",
        end.stdout
    );
    let freed = end.stderr.matches("T2FA_FREED_SECRET").count();
    assert_eq!(freed, 0, "blocks freed with the auth token still in them");
}

/// `libfreewatch.so`: before a block goes back to the allocator (free,
/// realloc), look in it for the secret named by `SCAN_FOR`, and say so on
/// stderr. A freed copy is found when it is freed, before anything can
/// reuse and overwrite the block.
fn build_free_watch(dir: &Lab) -> std::path::PathBuf {
    let src = dir.dir.join("freewatch.c");
    let lib = dir.dir.join("libfreewatch.so");
    std::fs::write(&src, FREE_WATCH_C).unwrap();
    let out = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&lib)
        .arg(&src)
        .output()
        .expect("cc");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lib
}

const FREE_WATCH_C: &str = r#"#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <malloc.h>
extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
static unsigned char needle[256];
static size_t needle_len;
static int loaded;
static int hex(char c) {
    return c >= 'a' ? c - 'a' + 10 : c - '0';
}
static void load(void) {
    const char *h = getenv("T2FA_CHILD_SCAN_FOR");
    loaded = 1;
    if (!h) return;
    size_t n = strlen(h) / 2;
    if (n > sizeof needle) n = sizeof needle;
    for (size_t i = 0; i < n; i++) needle[i] = (hex(h[2 * i]) << 4) | hex(h[2 * i + 1]);
    needle_len = n;
}
static void watch(void *p) {
    if (!loaded) load();
    if (!p || !needle_len) return;
    size_t size = malloc_usable_size(p);
    const unsigned char *b = p;
    for (size_t i = 0; i + needle_len <= size; i++) {
        size_t j = 0;
        while (j < needle_len && (b[i + j] ^ 0x5a) == needle[j]) j++;
        if (j == needle_len) {
            static const char msg[] = "T2FA_FREED_SECRET\n";
            write(2, msg, sizeof msg - 1);
            return;
        }
    }
}
void free(void *p) {
    watch(p);
    __libc_free(p);
}
void *realloc(void *p, size_t n) {
    if (!p) return __libc_malloc(n);
    if (n == 0) { free(p); return NULL; }
    size_t old = malloc_usable_size(p);
    void *q = __libc_malloc(n);
    if (!q) return NULL;
    memcpy(q, p, old < n ? old : n);
    free(p);
    return q;
}
"#;

fn rand() -> u64 {
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .expect("urandom");
    u64::from_ne_bytes(b)
}
