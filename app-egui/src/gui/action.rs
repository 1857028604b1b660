//! What a panel asks for. Panels only draw and return an [`Action`]; `AlongsideApp::execute`
//! is the one place that carries it out (by changing what is shown, or by sending a command
//! to the backend).

use alongside_core::model::edits::NewStory;

use super::backend::Command;
use super::home::HomeAction;

/// Something a person asked for on screen.
#[must_use = "an action does nothing until the app executes it"]
pub(crate) enum Action {
    /// Hand a command to the backend (create or unlock the profile, lock, create, join or open a
    /// group, sync, invite); the screen shows it is under way until the answer comes.
    Send(Command),
    /// Go back to the list of groups.
    ShowGroups,
    /// Put text on the clipboard (an invitation ticket).
    Copy(String),
    /// Open the settings screen.
    OpenSettings,
    /// Leave the settings screen.
    CloseSettings,
    /// Open the story writer.
    StartStory,
    /// Close the story writer without sharing.
    CancelStory,
    /// Share the story being written.
    ShareStory(NewStory),
    /// Show a story that was collapsed behind its warnings (by item id).
    RevealStory(String),
    /// Collapse that story again.
    ConcealStory(String),
    /// Change what a group's home shows (its tab, a form opened or closed).
    Home(HomeAction),
}
