//! The module inside a threaded PAM host (a RADIUS server, a VPN plugin, a
//! web console): logins run on worker threads, which end after pam_end.
//! One test in its own binary, so its threads are the first here to use the
//! module and build its lazily loaded data, some of them waiting on others.

mod common;

use common::*;
use pam_twilio_2fa::pam_client::*;
use std::sync::Barrier;

#[test]
fn worker_threads_that_log_in_and_end_leave_the_host_running() {
    let s = Setup::sms("");
    let users: Vec<(TestUser, String)> = (0..6)
        .map(|i| {
            let u = TestUser::new(&format!("w{i}x"));
            let phone = format!("+1201555{:04}", 3100 + i);
            s.lab.set_phone(&u.name, &phone).unwrap();
            (u, phone)
        })
        .collect();
    let start = Barrier::new(users.len());
    // Each worker has ended when the scope closes; a thread-exit hook left
    // pointing into an unloaded module would have killed this process.
    let codes: Vec<&str> = std::thread::scope(|scope| {
        let workers: Vec<_> = users
            .iter()
            .map(|(user, phone)| {
                let (s, start) = (&s, &start);
                scope.spawn(move || {
                    let responder = Box::new(move |style: Style, _: &str| -> Option<String> {
                        if !matches!(style, Style::EchoOff | Style::EchoOn) {
                            return Some(String::new());
                        }
                        let all = s.sim.deliveries();
                        all.iter()
                            .rev()
                            .find(|d| d.to == *phone)
                            .map(|d| d.code.clone())
                    });
                    start.wait();
                    let mut tx =
                        Transaction::start(SERVICE, &user.name, Some(&s.lab.confdir), responder)
                            .expect("pam_start_confdir");
                    let rc = tx.authenticate(0);
                    drop(tx); // pam_end: libpam closes the module
                    rc
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| code_name(w.join().expect("worker")))
            .collect()
    });
    assert!(codes.iter().all(|c| *c == "PAM_SUCCESS"), "{codes:?}");
    // The host goes on: one more login on this thread.
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);
}
