//! A small PAM application side: runs a real libpam transaction from a private
//! folder of service files (`pam_start_confdir`). Used by `twilio-2fa demo`
//! and by the tests; nothing in the module itself calls it.

use crate::pam_ffi::*;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

pub const PAM_SUCCESS: i32 = 0;
pub const PAM_SERVICE_ERR: i32 = 3;
pub const PAM_SYSTEM_ERR: i32 = 4;
pub const PAM_AUTH_ERR: i32 = 7;
pub const PAM_AUTHINFO_UNAVAIL: i32 = 9;
pub const PAM_USER_UNKNOWN: i32 = 10;
pub const PAM_MAXTRIES: i32 = 11;
pub const PAM_CONV_ERR: i32 = 19;
pub const PAM_IGNORE: i32 = 25;
pub const PAM_SILENT: i32 = 0x8000;
pub const PAM_ESTABLISH_CRED: i32 = 0x0002;

const PAM_RHOST: c_int = 4;
const PAM_TTY: c_int = 3;
const PAM_CONV_ERR_C: c_int = 19;
const PAM_BUF_ERR: c_int = 5;

/// The kind of message the module sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    EchoOff,
    EchoOn,
    Error,
    Info,
}

/// Answers a message: `Some(text)` for prompts; `None` means "hang up".
pub type Responder<'a> = Box<dyn FnMut(Style, &str) -> Option<String> + 'a>;

type StartConfdirFn = unsafe extern "C" fn(
    *const c_char,
    *const c_char,
    *const PamConv,
    *const c_char,
    *mut *mut c_void,
) -> c_int;

#[link(name = "pam")]
extern "C" {
    fn pam_start(
        service: *const c_char,
        user: *const c_char,
        conv: *const PamConv,
        pamh: *mut *mut c_void,
    ) -> c_int;
    fn pam_authenticate(pamh: *mut c_void, flags: c_int) -> c_int;
    fn pam_setcred(pamh: *mut c_void, flags: c_int) -> c_int;
    fn pam_set_item(pamh: *mut c_void, item_type: c_int, item: *const c_void) -> c_int;
    fn pam_strerror(pamh: *mut c_void, errnum: c_int) -> *const c_char;
    fn pam_end(pamh: *mut c_void, status: c_int) -> c_int;
}

/// One PAM transaction. Dropping it calls `pam_end`.
pub struct Transaction<'a> {
    handle: *mut c_void,
    last: c_int,
    // Both must outlive the handle: libpam keeps pointers to them.
    _responder: Box<Responder<'a>>,
    _conv: Box<PamConv>,
}

unsafe extern "C" fn conversation(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    let run = || {
        if num_msg <= 0 || num_msg > 32 || msg.is_null() || resp.is_null() {
            return PAM_CONV_ERR_C;
        }
        let responder = &mut *(appdata as *mut Responder);
        let replies =
            libc::calloc(num_msg as usize, std::mem::size_of::<PamResponse>()) as *mut PamResponse;
        if replies.is_null() {
            return PAM_BUF_ERR;
        }
        for i in 0..num_msg as usize {
            let m = &**msg.add(i);
            let text = if m.msg.is_null() {
                String::new()
            } else {
                CStr::from_ptr(m.msg).to_string_lossy().into_owned()
            };
            let style = match m.msg_style {
                PAM_PROMPT_ECHO_OFF => Style::EchoOff,
                PAM_PROMPT_ECHO_ON => Style::EchoOn,
                PAM_ERROR_MSG => Style::Error,
                _ => Style::Info,
            };
            let answer = responder(style, &text);
            if matches!(style, Style::EchoOff | Style::EchoOn) {
                let Some(a) = answer else {
                    free_replies(replies, i);
                    return PAM_CONV_ERR_C;
                };
                let c = CString::new(a).unwrap_or_default();
                (*replies.add(i)).resp = libc::strdup(c.as_ptr());
            }
        }
        *resp = replies;
        0
    };
    catch_unwind(AssertUnwindSafe(run)).unwrap_or(PAM_CONV_ERR_C)
}

unsafe fn free_replies(replies: *mut PamResponse, filled: usize) {
    for j in 0..filled {
        let r = (*replies.add(j)).resp;
        if !r.is_null() {
            libc::free(r as *mut c_void);
        }
    }
    libc::free(replies as *mut c_void);
}

impl<'a> Transaction<'a> {
    /// Starts a transaction for `service`; with `confdir`, service files are
    /// read from that folder instead of /etc/pam.d (needs Linux-PAM >= 1.4).
    pub fn start(
        service: &str,
        user: &str,
        confdir: Option<&Path>,
        responder: Responder<'a>,
    ) -> Result<Transaction<'a>, String> {
        Transaction::start_raw(service, user.as_bytes(), confdir, responder)
    }

    /// `start` with the user name as raw bytes (which need not be UTF-8).
    pub fn start_raw(
        service: &str,
        user: &[u8],
        confdir: Option<&Path>,
        responder: Responder<'a>,
    ) -> Result<Transaction<'a>, String> {
        let mut responder = Box::new(responder);
        let conv = Box::new(PamConv {
            conv: Some(conversation),
            appdata_ptr: &mut *responder as *mut Responder as *mut c_void,
        });
        let service_c = CString::new(service).map_err(|_| "bad service name")?;
        let user_c = CString::new(user).map_err(|_| "bad user name")?;
        let mut handle: *mut c_void = std::ptr::null_mut();
        let rc = match confdir {
            None => unsafe { pam_start(service_c.as_ptr(), user_c.as_ptr(), &*conv, &mut handle) },
            Some(dir) => {
                let start = start_confdir_fn().ok_or(
                    "this libpam has no pam_start_confdir (Linux-PAM 1.4 or newer needed)",
                )?;
                let dir_c =
                    CString::new(dir.as_os_str().as_encoded_bytes()).map_err(|_| "bad confdir")?;
                unsafe {
                    start(
                        service_c.as_ptr(),
                        user_c.as_ptr(),
                        &*conv,
                        dir_c.as_ptr(),
                        &mut handle,
                    )
                }
            }
        };
        if rc != PAM_SUCCESS || handle.is_null() {
            return Err(format!("pam_start failed ({rc})"));
        }
        Ok(Transaction {
            handle,
            last: rc,
            _responder: responder,
            _conv: conv,
        })
    }

    pub fn set_rhost(&mut self, rhost: &str) -> Result<(), String> {
        self.set_item(PAM_RHOST, rhost)
    }

    pub fn set_tty(&mut self, tty: &str) -> Result<(), String> {
        self.set_item(PAM_TTY, tty)
    }

    fn set_item(&mut self, item: c_int, value: &str) -> Result<(), String> {
        let v = CString::new(value).map_err(|_| "bad item value")?;
        let rc = unsafe { pam_set_item(self.handle, item, v.as_ptr() as *const c_void) };
        if rc == PAM_SUCCESS {
            Ok(())
        } else {
            Err(format!("pam_set_item failed ({rc})"))
        }
    }

    /// Runs the auth stack; returns the PAM code.
    pub fn authenticate(&mut self, flags: i32) -> i32 {
        self.last = unsafe { pam_authenticate(self.handle, flags) };
        self.last
    }

    /// Runs the stack's setcred step; returns the PAM code.
    pub fn setcred(&mut self, flags: i32) -> i32 {
        self.last = unsafe { pam_setcred(self.handle, flags) };
        self.last
    }

    /// libpam's text for a code, e.g. "Authentication failure".
    pub fn strerror(&self, code: i32) -> String {
        let p = unsafe { pam_strerror(self.handle, code) };
        if p.is_null() {
            return format!("PAM error {code}");
        }
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        unsafe {
            pam_end(self.handle, self.last);
        }
    }
}

/// Looked up at run time so that the module never links against a symbol
/// older libpams (RHEL 8's 1.3) lack.
fn start_confdir_fn() -> Option<StartConfdirFn> {
    let name = c"pam_start_confdir";
    let sym = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    if sym.is_null() {
        None
    } else {
        Some(unsafe { std::mem::transmute::<*mut c_void, StartConfdirFn>(sym) })
    }
}

/// The symbolic name of a PAM code, for messages and test failures.
pub fn code_name(code: i32) -> &'static str {
    match code {
        PAM_SUCCESS => "PAM_SUCCESS",
        PAM_SERVICE_ERR => "PAM_SERVICE_ERR",
        PAM_SYSTEM_ERR => "PAM_SYSTEM_ERR",
        PAM_AUTH_ERR => "PAM_AUTH_ERR",
        PAM_AUTHINFO_UNAVAIL => "PAM_AUTHINFO_UNAVAIL",
        PAM_USER_UNKNOWN => "PAM_USER_UNKNOWN",
        PAM_MAXTRIES => "PAM_MAXTRIES",
        PAM_CONV_ERR => "PAM_CONV_ERR",
        PAM_IGNORE => "PAM_IGNORE",
        _ => "PAM_OTHER",
    }
}
