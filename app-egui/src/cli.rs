//! The command-line interface: argument definitions only. `commands.rs` runs them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Alongside: private peer support for small recovery groups, on your own devices.
#[derive(Debug, Parser)]
#[command(name = "alongside", version, about, long_about = None)]
pub(crate) struct Cli {
    /// Where this profile keeps its encrypted data (default: your user data directory).
    #[arg(long, global = true, env = "ALONGSIDE_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,

    #[command(flatten)]
    pub(crate) net: NetFlags,

    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

/// What the network side may reach (used by `serve`, `join`, `sync`).
#[derive(Debug, Clone, Args)]
pub(crate) struct NetFlags {
    /// Relays: `disabled` (only addresses you were given), `default` (iroh's public relays) or
    /// the URL of a relay your group runs.
    #[arg(
        long,
        global = true,
        env = "ALONGSIDE_RELAY",
        default_value = "disabled",
        value_name = "MODE"
    )]
    pub(crate) relay: String,
    /// Local-network discovery (meeting mode): `off` switches it off for every group,
    /// whatever each group's meeting-mode setting says.
    #[arg(
        long,
        global = true,
        env = "ALONGSIDE_LAN",
        default_value = "on",
        value_name = "on|off"
    )]
    pub(crate) lan: OnOff,
}

/// A switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OnOff {
    /// Switched on.
    On,
    /// Switched off.
    Off,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a new profile protected by a passphrase.
    Init {
        /// A label for this profile on this device only; it is never shared.
        #[arg(long)]
        name: String,
    },
    /// Change the passphrase (the new one comes from ALONGSIDE_NEW_PASSPHRASE or a prompt).
    Passwd,
    /// Create and list groups, and change group settings.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Share and read recovery stories.
    #[command(subcommand)]
    Story(StoryCommand),
    /// Keep accountability goals with daily check-ins.
    #[command(subcommand)]
    Goal(GoalCommand),
    /// Schedule meetings and write shared notes.
    #[command(subcommand)]
    Meeting(MeetingCommand),
    /// Ask for support (or `reach-out list`, `reach-out respond`).
    ReachOut(ReachOutArgs),
    /// The group's agreements (norms).
    #[command(subcommand)]
    Agreement(AgreementCommand),
    /// Members and roles.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Leave a group. You keep what you already synced; members will see you left.
    Leave {
        #[command(flatten)]
        group: GroupArg,
    },
    /// See and withdraw the invitations you made.
    #[command(subcommand)]
    Invitations(InvitationsCommand),
    /// Invite someone: prints a ticket (like a key to the group's history) and a QR code.
    Invite {
        /// The group (id prefix or name).
        #[arg(long)]
        group: String,
        /// How long the ticket works, e.g. 30m, 24h, 7d.
        #[arg(long, default_value = "24h")]
        expires: String,
    },
    /// Join a group with a ticket someone gave you; pulls the group and exits.
    Join {
        /// The ticket.
        ticket: String,
        /// Your display name in this group (default: the profile label).
        #[arg(long = "as", value_name = "DISPLAY_NAME")]
        display_name: Option<String>,
    },
    /// Reconcile once with every member this device can reach, then exit.
    Sync {
        /// The group (id prefix or name).
        #[arg(long)]
        group: String,
        /// Give up after this long, e.g. 30s.
        #[arg(long, default_value = "30s")]
        timeout: String,
    },
    /// Run this profile's node until interrupted: accept members and invitations.
    Serve {
        /// The address to listen on (default: every interface).
        #[arg(long, env = "ALONGSIDE_BIND")]
        bind: Option<std::net::IpAddr>,
    },
    /// Find members on the same Wi-Fi or local network, without the internet (this device
    /// only; off until switched on; works while `alongside serve` or the app runs). It
    /// switches itself off after the stated time; switching it on again renews it. Without
    /// on or off, says whether it is on and until when.
    MeetingMode {
        /// The group (id prefix or name).
        #[arg(long)]
        group: String,
        /// Switch it on or off (leave out to see whether it is on).
        #[arg(value_enum)]
        state: Option<OnOff>,
        /// How long it stays on, e.g. 90m or 3h (at most 12h).
        #[arg(long = "for", default_value = "3h")]
        on_for: String,
    },
    /// See it work: three members on this machine (loopback only) write apart and reconcile.
    Demo,
    /// Write what you can read in a group to a file or folder.
    Export {
        /// The group (id prefix or name).
        #[arg(long)]
        group: String,
        /// The format.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Where to write it (a folder for `automerge`). Must not exist yet.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ExportFormat {
    Json,
    Markdown,
    Automerge,
}

#[derive(Debug, Args)]
pub(crate) struct GroupArg {
    /// The group (id prefix or name).
    #[arg(long)]
    pub(crate) group: String,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    pub(crate) group: GroupArg,
    /// Print a JSON array instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum GroupCommand {
    /// Create a group; prints its id.
    Create {
        /// The group's name (shared with its members only).
        name: String,
        /// Your display name in this group (default: the profile label).
        #[arg(long = "as", value_name = "DISPLAY_NAME")]
        display_name: Option<String>,
    },
    /// List your groups.
    List {
        /// Print a JSON array instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Change a group setting (facilitators).
    Settings {
        #[command(flatten)]
        group: GroupArg,
        /// Whether new members see history from before they joined.
        #[arg(long, value_enum)]
        history: HistoryMode,
    },
    /// Repair a group whose data on this device is damaged: what cannot be read is set
    /// aside and comes back from this device's own copies or from members at the next sync.
    Repair {
        #[command(flatten)]
        group: GroupArg,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum HistoryMode {
    All,
    SinceJoin,
}

#[derive(Debug, Subcommand)]
pub(crate) enum StoryCommand {
    /// Share a story; prints its id.
    Add {
        #[command(flatten)]
        group: GroupArg,
        /// Title.
        #[arg(long)]
        title: String,
        /// The story itself.
        #[arg(long, conflicts_with = "body_file", required_unless_present = "body_file")]
        body: Option<String>,
        /// Read the story from a file.
        #[arg(long)]
        body_file: Option<PathBuf>,
        /// A content warning (repeat for several).
        #[arg(long = "warn", value_name = "TAG")]
        warnings: Vec<String>,
        /// Ask others not to reply.
        #[arg(long)]
        no_replies: bool,
    },
    /// List stories.
    List(ListArgs),
    /// React to a story with support; prints the reaction's id.
    React {
        #[command(flatten)]
        group: GroupArg,
        /// The story (id prefix).
        #[arg(long)]
        story: String,
        /// The reaction.
        #[arg(long, default_value = "support")]
        kind: String,
    },
    /// Reply to a story; prints the reply's id.
    Reply {
        #[command(flatten)]
        group: GroupArg,
        /// The story (id prefix).
        #[arg(long)]
        story: String,
        /// Your reply.
        #[arg(long)]
        text: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum GoalCommand {
    /// Add a goal; prints its id.
    Add {
        #[command(flatten)]
        group: GroupArg,
        /// Title.
        #[arg(long)]
        title: String,
        /// A target, e.g. "90 days".
        #[arg(long)]
        target: Option<String>,
        /// Share only with this member (repeat for several); default: the whole group.
        #[arg(long = "share-with", value_name = "MEMBER")]
        share_with: Vec<String>,
    },
    /// Check in on a goal; prints the check-in's id.
    CheckIn {
        #[command(flatten)]
        group: GroupArg,
        /// The goal (id prefix).
        #[arg(long)]
        goal: String,
        /// Today went as hoped.
        #[arg(long, conflicts_with = "setback", required_unless_present = "setback")]
        progress: bool,
        /// Today was a setback. It is information, not a verdict.
        #[arg(long)]
        setback: bool,
        /// Mood, 1 (low) to 5 (good).
        #[arg(long)]
        mood: Option<i64>,
        /// Craving, 0 (none) to 10 (strong).
        #[arg(long)]
        craving: Option<i64>,
        /// HALT: any of hungry, angry, lonely, tired (or H,A,L,T), comma-separated.
        #[arg(long)]
        halt: Option<String>,
        /// A note.
        #[arg(long, default_value = "")]
        note: String,
        /// The day (YYYY-MM-DD); default today.
        #[arg(long)]
        date: Option<String>,
    },
    /// List goals with their check-ins and streaks.
    List(ListArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum MeetingCommand {
    /// Schedule a meeting; prints its id.
    Add {
        #[command(flatten)]
        group: GroupArg,
        /// Title.
        #[arg(long)]
        title: String,
        /// When, e.g. 2026-12-01T19:00:00+01:00.
        #[arg(long)]
        at: String,
        /// Where, or a link.
        #[arg(long = "where")]
        place: Option<String>,
        /// Who facilitates (member id prefix or name); default: you.
        #[arg(long)]
        facilitator: Option<String>,
        /// The agenda.
        #[arg(long, default_value = "")]
        agenda: String,
    },
    /// Add to a meeting's shared notes.
    Notes {
        #[command(flatten)]
        group: GroupArg,
        /// The meeting (id prefix).
        #[arg(long)]
        meeting: String,
        /// Text to append.
        #[arg(long)]
        append: String,
    },
    /// Mark attendance.
    Attend {
        #[command(flatten)]
        group: GroupArg,
        /// The meeting (id prefix).
        #[arg(long)]
        meeting: String,
        /// Who (member id prefix or name); default: you.
        #[arg(long)]
        member: Option<String>,
        /// Mark as absent instead.
        #[arg(long)]
        absent: bool,
    },
    /// Add an action item; prints its id.
    Action {
        #[command(flatten)]
        group: GroupArg,
        /// The meeting (id prefix).
        #[arg(long)]
        meeting: String,
        /// What is to be done.
        #[arg(long)]
        text: String,
        /// Who takes it on (member id prefix or name).
        #[arg(long)]
        owner: Option<String>,
    },
    /// Mark an action item done.
    ActionDone {
        #[command(flatten)]
        group: GroupArg,
        /// The meeting (id prefix).
        #[arg(long)]
        meeting: String,
        /// The action item (id prefix).
        #[arg(long)]
        action: String,
        /// Mark it not done again.
        #[arg(long)]
        undo: bool,
    },
    /// List meetings with notes, attendance and action items.
    List(ListArgs),
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(crate) struct ReachOutArgs {
    #[command(subcommand)]
    pub(crate) action: Option<ReachOutCommand>,
    /// The group (id prefix or name).
    #[arg(long)]
    pub(crate) group: Option<String>,
    /// What you want to say.
    #[arg(long)]
    pub(crate) message: Option<String>,
    /// Send only to this member (repeat for several); default: the whole group.
    #[arg(long = "to", value_name = "MEMBER")]
    pub(crate) to: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ReachOutCommand {
    /// List reach-outs and their responses.
    List(ListArgs),
    /// Respond to a reach-out; prints the response's id.
    Respond {
        #[command(flatten)]
        group: GroupArg,
        /// The reach-out (id prefix).
        #[arg(long = "reach-out")]
        reach_out: String,
        /// Your response.
        #[arg(long)]
        text: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AgreementCommand {
    /// Set the agreements (facilitators).
    Set {
        #[command(flatten)]
        group: GroupArg,
        /// The text.
        #[arg(long)]
        text: String,
    },
    /// Acknowledge the current agreements.
    Ack(GroupArg),
    /// Show the agreements and who acknowledged them.
    Show(ListArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum MemberCommand {
    /// List members with their roles.
    List(ListArgs),
    /// Remove a member (facilitators). They will not be able to read anything written
    /// from now on; they keep what they already synced.
    Remove {
        #[command(flatten)]
        group: GroupArg,
        /// The member (id prefix or display name).
        member: String,
        /// Also withdraw every invitation to the group that is still open (they may have
        /// seen one).
        #[arg(long)]
        revoke_invitations: bool,
    },
    /// Give a member a role (facilitators).
    Role {
        #[command(flatten)]
        group: GroupArg,
        /// The member (id prefix or display name).
        member: String,
        /// The new role.
        #[arg(value_enum)]
        role: RoleArg,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum InvitationsCommand {
    /// List the invitations you made to a group, and whether each can still be used.
    List {
        #[command(flatten)]
        group: GroupArg,
        /// Print a JSON array instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Withdraw an invitation (or every open one): its ticket no longer works.
    Revoke {
        #[command(flatten)]
        group: GroupArg,
        /// The invitation's id (as `invitations list` shows it).
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Withdraw every invitation that is still open.
        #[arg(long)]
        all: bool,
    },
}

/// A role as the command line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RoleArg {
    /// May add and remove members and change roles.
    Facilitator,
    /// An ordinary member.
    Member,
}
