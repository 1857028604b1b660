//! What a panel asks for. Panels only draw and return an [`Action`]; `AlongsideApp::execute`
//! is the one place that carries it out (by changing what is shown, or by sending a command
//! to the backend).

use alongside_core::ids::GroupId;
use alongside_core::model::edits::NewStory;
use zeroize::Zeroizing;

/// Something a person asked for on screen.
#[must_use = "an action does nothing until the app executes it"]
pub(crate) enum Action {
    /// Create the profile (first run).
    CreateProfile {
        /// The device label.
        label: String,
        /// The chosen passphrase, already typed twice.
        passphrase: Zeroizing<String>,
    },
    /// Open the profile.
    Unlock {
        /// The passphrase typed in.
        passphrase: Zeroizing<String>,
    },
    /// Close the profile now.
    Lock,
    /// Found a group.
    CreateGroup {
        /// Its name.
        name: String,
        /// This member's display name in it.
        display_name: String,
    },
    /// Show a group's home.
    OpenGroup(GroupId),
    /// Go back to the list of groups.
    ShowGroups,
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
}
