//! Settings in the backend: the passphrase, "taking a break", muting, display names,
//! relays, and exports. Everything personal here stays on this device (`Vault`'s
//! personal settings, sealed like the rest of the profile).

use std::path::{Path, PathBuf};

use alongside_core::ids::{GroupId, MemberId};
use alongside_core::profile::ProfileError;
use alongside_core::vault::{Vault, VaultError};
use alongside_net::RelayChoice;

use super::{Backend, BackendError, Event, GroupCard, failed, now_ms};

/// The export formats offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExportFormat {
    /// One JSON file.
    Json,
    /// One Markdown file.
    Markdown,
    /// A folder of standard Automerge files.
    Automerge,
}

/// What the settings screen shows that the backend knows.
#[derive(Debug, Clone)]
pub(crate) struct SettingsView {
    /// The day a break lasts until, if the member is taking one.
    pub(crate) break_until: Option<String>,
    /// The relay choice saved on this device (`disabled`, `default`, a URL), if any.
    pub(crate) relay: Option<String>,
    /// Whoever started Alongside switched relays off for this run; the choice waits.
    pub(crate) relay_forced_off: bool,
    /// The groups (for names and exports).
    pub(crate) groups: Vec<GroupCard>,
}

impl Backend {
    pub(super) fn settings_view(&self) -> Result<SettingsView, BackendError> {
        let (break_until, relay) = self.with_vault(|v| Ok((v.break_until()?, v.relay_preference()?)))?;
        Ok(SettingsView {
            break_until,
            relay,
            relay_forced_off: self.config.net.relay == RelayChoice::Disabled,
            groups: self.group_cards()?,
        })
    }

    /// Saves something personal with `f`, then shows the settings again with `notice`.
    pub(super) fn save_setting(
        &mut self,
        what: &str,
        notice: &str,
        f: impl FnOnce(&mut Vault) -> Result<(), VaultError> + Send + 'static,
    ) -> Event {
        match self.with_vault(f).and_then(|()| self.settings_view()) {
            Ok(view) => {
                self.dirty.page = true;
                Event::SettingsSaved {
                    view,
                    notice: notice.to_string(),
                }
            }
            Err(err) => failed(what, &err),
        }
    }

    pub(super) fn handle_change_passphrase(&mut self, old: &str, new: &str) -> Event {
        if new.chars().count() < super::super::welcome::MIN_PASSPHRASE_CHARS {
            return Event::Failed {
                message: "The new passphrase needs at least 8 characters. Nothing was changed.".into(),
            };
        }
        match Vault::change_passphrase(&self.config.dir, old.as_bytes(), new.as_bytes()) {
            Ok(()) => Event::Notice(
                "Your passphrase is changed. Use the new one from now on; the old one no longer opens Alongside."
                    .into(),
            ),
            Err(VaultError::Profile(ProfileError::WrongPassphrase | ProfileError::EmptyPassphrase)) => Event::Failed {
                message: "That is not your current passphrase. Nothing was changed.".into(),
            },
            Err(err) => failed("Your passphrase was not changed", &err),
        }
    }

    pub(super) fn handle_set_muted(&mut self, group: GroupId, member: MemberId, muted: bool) -> Event {
        let changed = self.with_vault(move |v| {
            v.set_muted(&group, &member, muted)?;
            Ok(v.session(&group)?.display_name(&member))
        });
        match changed {
            Ok(name) if muted => self.saved(
                group,
                &format!("{name} is muted on this device: their stories and reach-outs are not shown here. They are not told."),
            ),
            Ok(name) => self.saved(group, &format!("{name} is no longer muted on this device.")),
            Err(err) => failed("Nothing was changed", &err),
        }
    }

    pub(super) fn handle_set_display_name(&mut self, group: GroupId, name: String) -> Event {
        let name = name.trim().to_string();
        if name.is_empty() {
            return Event::Failed {
                message: "Your name in the group cannot be empty.".into(),
            };
        }
        let saved = self.with_vault({
            let name = name.clone();
            move |v| v.edit(&group, |s| s.set_display_name(&name))
        });
        self.wrote(group);
        match saved {
            Ok(()) => self.saved(
                group,
                &format!("Members will see you as {name} once their devices sync."),
            ),
            Err(err) => failed("Your name was not changed", &err),
        }
    }

    pub(super) fn handle_export(&mut self, group: GroupId, format: ExportFormat, folder: PathBuf) -> Event {
        let written = self.with_vault(move |v| {
            let session = v.session(&group)?;
            export_to(session, format, &folder).map_err(|e| VaultError::Invalid(format!("{e:#}")))
        });
        match written {
            Ok(path) => Event::Notice(format!(
                "Saved to {}. This copy is not encrypted: anyone who opens it can read it. Keep it somewhere safe, and delete it when you no longer need it.",
                path.display()
            )),
            Err(err) => failed("Nothing was exported", &err),
        }
    }
}

/// Writes the export of `session` into `folder`; returns the path written.
fn export_to(
    session: &alongside_core::group::GroupSession,
    format: ExportFormat,
    folder: &Path,
) -> anyhow::Result<PathBuf> {
    use crate::export;
    std::fs::create_dir_all(folder)?;
    let day = alongside_core::model::date_of(now_ms());
    let stem: String = session
        .name()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == ' ' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let stem = format!("{} {day}", stem.trim());
    let now = now_ms();
    Ok(match format {
        ExportFormat::Json => {
            let path = folder.join(format!("{stem}.json"));
            export::write_file(&path, export::json(session, now)?.as_bytes())?;
            path
        }
        ExportFormat::Markdown => {
            let path = folder.join(format!("{stem}.md"));
            export::write_file(&path, export::markdown(session, now).as_bytes())?;
            path
        }
        ExportFormat::Automerge => {
            let path = folder.join(format!("{stem} automerge"));
            export::automerge_dir(session, &path)?;
            path
        }
    })
}
