//! A throwaway setup for the demo and the tests: a private folder with a
//! config pointing at a simulator, a phone directory, an event log and a PAM
//! service file, so a real libpam transaction runs without touching /etc.

use crate::simulator::Simulator;
use std::ffi::CString;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub struct Lab {
    pub dir: PathBuf,
    /// Folder of PAM service files for `pam_start_confdir`.
    pub confdir: PathBuf,
    pub config: PathBuf,
    pub phones: PathBuf,
    pub event_log: PathBuf,
    pub state_dir: PathBuf,
}

impl Lab {
    /// A new private (0700) folder. As root it goes under /run, because the
    /// module refuses a state directory below a world-writable one like /tmp.
    pub fn new(prefix: &str) -> io::Result<Lab> {
        let base = if unsafe { libc::geteuid() } == 0 {
            PathBuf::from("/run")
        } else {
            std::env::temp_dir()
        };
        let template = base.join(format!("{prefix}.XXXXXX"));
        let c = CString::new(template.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
        let mut bytes = c.into_bytes_with_nul();
        let p = unsafe { libc::mkdtemp(bytes.as_mut_ptr() as *mut libc::c_char) };
        if p.is_null() {
            return Err(io::Error::last_os_error());
        }
        bytes.pop();
        let dir = PathBuf::from(String::from_utf8(bytes).map_err(io::Error::other)?);
        let lab = Lab {
            confdir: dir.join("pam.d"),
            config: dir.join("config.toml"),
            phones: dir.join("phones"),
            event_log: dir.join("events.log"),
            state_dir: dir.join("state"),
            dir,
        };
        std::fs::create_dir(&lab.confdir)?;
        std::fs::create_dir(&lab.phones)?;
        Ok(lab)
    }

    /// The config text for `sim`, with `extra` keys (and tables) added.
    pub fn config_text(&self, sim: &Simulator, extra: &str) -> String {
        let c = sim.config();
        let mut text = format!(
            "account_sid = \"{}\"\nauth_token = \"{}\"\nservice_sid = \"{}\"\nverify_url = \"{url}\"\nlookup_url = \"{url}\"\nevent_log = \"{}\"\nstate_dir = \"{}\"\n{extra}\n",
            c.account_sid,
            c.auth_token,
            c.service_sid,
            self.event_log.display(),
            self.state_dir.display(),
            url = sim.url(),
        );
        if !extra.contains("[phones]") {
            text.push_str(&format!(
                "[phones]\ndirectory = \"{}\"\n",
                self.phones.display()
            ));
        }
        text
    }

    /// Writes the config (mode 0600) for `sim`.
    pub fn write_config(&self, sim: &Simulator, extra: &str) -> io::Result<()> {
        self.write_private(&self.config, &self.config_text(sim, extra))
    }

    pub fn write_private(&self, path: &Path, text: &str) -> io::Result<()> {
        std::fs::write(path, text)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
    }

    pub fn set_phone(&self, user: &str, number: &str) -> io::Result<()> {
        self.write_private(&self.phones.join(user), &format!("{number}\n"))
    }

    /// Writes the service file `name` with one auth line for `module`.
    pub fn write_service(&self, name: &str, module: &Path, module_args: &str) -> io::Result<()> {
        let text = format!(
            "auth required {} config={} {module_args}\naccount required pam_permit.so\n",
            module.display(),
            self.config.display()
        );
        std::fs::write(self.confdir.join(name), text)
    }

    /// What the module logged to `event_log` so far.
    pub fn events(&self) -> String {
        std::fs::read_to_string(&self.event_log).unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Finds the built module: next to `exe`, or in its `deps/` (where cargo test puts it).
pub fn find_module(exe: &Path) -> Option<PathBuf> {
    let dir = exe.parent()?;
    [
        dir.to_path_buf(),
        dir.join("deps"),
        dir.parent()?.to_path_buf(),
    ]
    .iter()
    .map(|d| d.join("libpam_twilio_2fa.so"))
    .find(|p| p.is_file())
}
