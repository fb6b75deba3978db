//! Keeps SIGPIPE from our own writes away from the host process.
//!
//! Our sockets are written with send(2) and MSG_NOSIGNAL (std's TcpStream,
//! which ureq and rustls write through, and `syslog`), but a request also
//! runs code we do not control: glibc's resolver, for one, writes DNS over
//! TCP with writev(2). A host that leaves SIGPIPE at its default (death)
//! must not die of a peer that went away. So, as libcurl does, SIGPIPE is
//! blocked in this thread while a request runs, and one raised meanwhile is
//! taken off before the host's mask is restored. Never a process-wide change.

use std::mem::MaybeUninit;

/// SIGPIPE blocked in this thread until dropped.
pub struct Blocked {
    old: libc::sigset_t,
    was_pending: bool,
}

fn pipe_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), libc::SIGPIPE);
        set.assume_init()
    }
}

fn pending() -> bool {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigpending(set.as_mut_ptr()) == 0
            && libc::sigismember(set.as_ptr(), libc::SIGPIPE) == 1
    }
}

impl Blocked {
    pub fn new() -> Blocked {
        let pipe = pipe_set();
        let mut old = MaybeUninit::<libc::sigset_t>::uninit();
        unsafe {
            libc::sigemptyset(old.as_mut_ptr());
            libc::pthread_sigmask(libc::SIG_BLOCK, &pipe, old.as_mut_ptr());
        }
        Blocked {
            old: unsafe { old.assume_init() },
            // One the host had already: not ours to take.
            was_pending: pending(),
        }
    }
}

impl Default for Blocked {
    fn default() -> Self {
        Blocked::new()
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        if !self.was_pending && pending() {
            let pipe = pipe_set();
            let zero = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            unsafe { libc::sigtimedwait(&pipe, std::ptr::null_mut(), &zero) };
        }
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked_now() -> bool {
        let mut cur = MaybeUninit::<libc::sigset_t>::uninit();
        unsafe {
            libc::sigemptyset(cur.as_mut_ptr());
            libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), cur.as_mut_ptr());
            libc::sigismember(cur.as_ptr(), libc::SIGPIPE) == 1
        }
    }

    #[test]
    fn a_sigpipe_raised_while_blocked_is_taken_off_and_the_mask_restored() {
        // Its own thread: the mask and the pending signal are per thread.
        std::thread::spawn(|| {
            assert!(!blocked_now());
            let mut fds = [0; 2];
            let rc =
                unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) };
            assert_eq!(rc, 0);
            unsafe { libc::close(fds[1]) };
            {
                let _guard = Blocked::new();
                assert!(blocked_now());
                // write(2), not send: this raises SIGPIPE for the thread.
                // (Rust test binaries ignore SIGPIPE, but a blocked signal
                // stays pending on Linux even when ignored.)
                let n = unsafe { libc::write(fds[0], b"x".as_ptr().cast(), 1) };
                assert_eq!(n, -1);
                assert!(pending(), "the write raised SIGPIPE");
            }
            assert!(!pending(), "taken off before the mask was restored");
            assert!(!blocked_now(), "the old mask is back");
            unsafe { libc::close(fds[0]) };
        })
        .join()
        .unwrap();
    }
}
