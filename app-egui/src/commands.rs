//! Runs one parsed command against the profile. Every command that changes something
//! returns only after the change is durable; ids go to stdout, status to stderr.

use std::io::Write;
use std::path::Path;

use alongside_app::meeting_words::until_words;
use alongside_app::profile_setup::{self, SetupError};
use alongside_core::group::GroupSession;
use alongside_core::ids::{GroupId, MemberId};
use alongside_core::membership::Role;
use alongside_core::model::edits::{CheckInKind, NewCheckIn, NewMeeting, NewStory};
use alongside_core::vault::Vault;
use anyhow::{Context, Result, anyhow, bail};

macro_rules! say {
    ($o:expr, $($t:tt)*) => {{
        let _ = writeln!($o.out, $($t)*);
    }};
}
macro_rules! note {
    ($o:expr, $($t:tt)*) => {{
        let _ = writeln!($o.err, $($t)*);
    }};
}
use zeroize::Zeroizing;

use crate::cli::{
    AgreementCommand, Command, ExportFormat, GoalCommand, GroupCommand, HistoryMode, InvitationsCommand, ListArgs,
    MeetingCommand, MemberCommand, OnOff, ReachOutArgs, ReachOutCommand, RoleArg, StoryCommand,
};
use alongside_app::export;

fn member(v: &mut Vault, c: MemberCommand, o: &mut Out<'_>) -> Result<()> {
    match c {
        MemberCommand::List(l) => {
            let g = v.resolve_group(&l.group.group)?;
            let session = v.session(&g)?;
            if !session.membership().is_member(&session.me()) {
                note!(
                    o,
                    "You are no longer a member of this group; this is the list as you last knew it."
                );
            }
            let members = v.session(&g)?.members();
            print_list(o, &l, &members, |m| {
                format!(
                    "{}  {}  {}{}",
                    short(&m.id),
                    m.name,
                    m.role,
                    if m.me { "  (you)" } else { "" }
                )
            })?;
        }
        MemberCommand::Remove {
            group,
            member,
            revoke_invitations,
        } => {
            let g = v.resolve_group(&group.group)?;
            let session = v.session(&g)?;
            let who = session.find_member(&member)?;
            let name = session.display_name(&who);
            v.edit(&g, |s| s.remove_member(&who, now_ms()).map(|_| ()))?;
            note!(
                o,
                "{name} is no longer a member. They will not be able to read anything written from now on, and the group's devices will refuse to sync with them; they keep what they had already synced. Other members' devices apply this when they next sync with a device that knows."
            );
            if revoke_invitations {
                match v.revoke_invitations(&g, None, now_ms())? {
                    0 => {}
                    1 => note!(o, "The one open invitation was withdrawn too."),
                    n => note!(o, "The {n} open invitations were withdrawn too."),
                }
            } else {
                let open = v.invitations(&g)?.iter().filter(|r| r.is_open(now_ms())).count();
                if open > 0 {
                    note!(
                        o,
                        "{open} invitation(s) to this group can still be used. If {name} may have seen one, withdraw them: `alongside invitations revoke --group {} --all`.",
                        short(&g.to_hex())
                    );
                }
            }
        }
        MemberCommand::Role { group, member, role } => {
            let g = v.resolve_group(&group.group)?;
            let session = v.session(&g)?;
            let who = session.find_member(&member)?;
            let name = session.display_name(&who);
            let role = match role {
                RoleArg::Facilitator => Role::Facilitator,
                RoleArg::Member => Role::Member,
            };
            v.edit(&g, |s| s.change_role(&who, role, now_ms()).map(|_| ()))?;
            note!(o, "{name} is now a {}.", role.as_str());
        }
    }
    Ok(())
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The passphrase from `var` or, failing that, a prompt on the terminal.
fn passphrase(var: &str, prompt: &str) -> Result<Zeroizing<String>> {
    if let Ok(p) = std::env::var(var) {
        return Ok(Zeroizing::new(p));
    }
    rpassword::prompt_password(prompt)
        .map(Zeroizing::new)
        .map_err(|_| anyhow!("could not read a passphrase; set {var} or run in a terminal"))
}

fn new_passphrase(var: &str, what: &str, o: &mut Out<'_>) -> Result<Zeroizing<String>> {
    if let Ok(p) = std::env::var(var) {
        return Ok(Zeroizing::new(p));
    }
    note!(
        o,
        "Choose a passphrase. If you lose it, nobody can recover your data — not even us."
    );
    let first = passphrase(var, &format!("{what}: "))?;
    let again = passphrase(var, "Type it again: ")?;
    if *first != *again {
        bail!("the two passphrases were different; nothing was changed");
    }
    Ok(first)
}

/// Unlocks the profile in `dir` with the passphrase from the environment or a prompt.
pub(crate) fn unlock(dir: &Path) -> Result<Vault> {
    let pass = passphrase("ALONGSIDE_PASSPHRASE", "Passphrase: ")?;
    Ok(Vault::unlock(dir, pass.as_bytes())?)
}

/// Where a command writes: what scripts read (ids, lists) and status for people.
pub(crate) struct Out<'a> {
    pub(crate) out: &'a mut dyn Write,
    pub(crate) err: &'a mut dyn Write,
}

/// Runs a command that needs only the profile itself (not the network) in `dir`.
pub(crate) fn run_local(dir: &Path, command: Command, o: &mut Out<'_>) -> Result<()> {
    match command {
        Command::Init { name } => init(dir, &name, o),
        Command::Passwd => {
            let old = passphrase("ALONGSIDE_PASSPHRASE", "Current passphrase: ")?;
            // Check the old one first, so a mistake is reported before asking for a new one.
            alongside_core::profile::unlock(dir, old.as_bytes())?;
            let new = new_passphrase("ALONGSIDE_NEW_PASSPHRASE", "New passphrase", o)?;
            Vault::change_passphrase(dir, old.as_bytes(), new.as_bytes())?;
            note!(o, "Passphrase changed. Use the new one from now on.");
            Ok(())
        }
        other => execute(&mut unlock(dir)?, other, o),
    }
}

/// Runs a content command against an unlocked vault (locally, or inside a running node).
pub(crate) fn execute(v: &mut Vault, command: Command, o: &mut Out<'_>) -> Result<()> {
    match command {
        Command::Group(c) => group(v, c, o),
        Command::Story(c) => story(v, c, o),
        Command::Goal(c) => goal(v, c, o),
        Command::Meeting(c) => meeting(v, c, o),
        Command::ReachOut(a) => reach_out(v, a, o),
        Command::Agreement(c) => agreement(v, c, o),
        Command::Member(c) => member(v, c, o),
        Command::Invitations(c) => invitations(v, c, o),
        Command::Leave { group } => {
            let g = v.resolve_group(&group.group)?;
            let name = v.session(&g)?.name();
            v.edit(&g, |s| s.leave(now_ms()))?;
            note!(
                o,
                "You have left {name}. Members will see this the next time this device reaches one of them. What you already synced stays on this device; nothing new will arrive."
            );
            Ok(())
        }
        Command::Export { group, format, out } => {
            let g = v.resolve_group(&group)?;
            export_group(v.session(&g)?, format, &out, o)
        }
        Command::MeetingMode { group, state, on_for } => meeting_mode(v, &group, state, &on_for, o),
        _ => bail!("that command cannot run here"),
    }
}

/// Switches meeting mode on (for `on_for`) or off, or says whether it is on.
fn meeting_mode(v: &mut Vault, group: &str, state: Option<OnOff>, on_for: &str, o: &mut Out<'_>) -> Result<()> {
    let g = v.resolve_group(group)?;
    let now = now_ms();
    let mode = match state {
        Some(OnOff::On) => {
            let on_for = crate::netcmd::parse_duration(on_for)?;
            let ms = i64::try_from(on_for.as_millis()).unwrap_or(i64::MAX);
            v.set_meeting_mode(&g, now, Some(ms))?
        }
        Some(OnOff::Off) => v.set_meeting_mode(&g, now, None)?,
        None => v.meeting_mode(&g, now)?,
    };
    let name = v.session(&g)?.name();
    match (mode.on_until(now), state) {
        (Some(until), Some(_)) => note!(
            o,
            "Meeting mode is on for {name} {}: while Alongside runs, members on the same Wi-Fi or local network find each other, no internet needed. Others on that network see only names and keys that change and cannot be traced to the group or to you. It switches itself off then; switch it on again to keep it on longer.",
            until_words(until, now)
        ),
        (Some(until), None) => {
            let _ = writeln!(o.out, "Meeting mode is on for {name} {}.", until_words(until, now));
        }
        (None, Some(_)) => note!(
            o,
            "Meeting mode is off for {name}: this device no longer looks for members on the local network."
        ),
        (None, None) => {
            let _ = writeln!(o.out, "Meeting mode is off for {name}.");
        }
    }
    Ok(())
}

fn init(dir: &Path, label: &str, o: &mut Out<'_>) -> Result<()> {
    // Check what can be checked before asking for a passphrase twice.
    if label.trim().is_empty() {
        return Err(SetupError::EmptyLabel.into());
    }
    if alongside_core::profile::exists(dir) {
        return Err(SetupError::Exists(dir.to_path_buf()).into());
    }
    let kdf = profile_setup::kdf_from_env();
    let pass = new_passphrase("ALONGSIDE_PASSPHRASE", "Passphrase", o)?;
    profile_setup::create_profile(dir, label, pass.as_bytes(), kdf)?;
    note!(o, "Your profile is ready in {}.", dir.display());
    if !kdf.is_strong() {
        note!(
            o,
            "This is a test profile with weak passphrase protection. Do not keep real data in it."
        );
    }
    Ok(())
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

fn print_list<T: serde::Serialize>(
    o: &mut Out<'_>,
    args: &ListArgs,
    items: &[T],
    line: impl Fn(&T) -> String,
) -> Result<()> {
    if args.json {
        say!(o, "{}", serde_json::to_string_pretty(items)?);
    } else if items.is_empty() {
        note!(o, "Nothing here yet.");
    } else {
        for item in items {
            say!(o, "{}", line(item));
        }
    }
    Ok(())
}

fn members(session: &GroupSession, queries: &[String]) -> Result<Vec<MemberId>> {
    queries
        .iter()
        .map(|q| {
            session
                .find_member(q)
                .with_context(|| format!("could not find member '{q}'"))
        })
        .collect()
}

fn group(v: &mut Vault, c: GroupCommand, o: &mut Out<'_>) -> Result<()> {
    match c {
        GroupCommand::Create { name, display_name } => {
            let display = match display_name {
                Some(d) => d,
                None => v.label()?,
            };
            let id = v.create_group(&name, &display, now_ms())?;
            say!(o, "{id}");
            note!(o, "Created the group \"{name}\". You are its first facilitator.");
        }
        GroupCommand::List { json } => {
            let groups = v.groups()?;
            if json {
                say!(o, "{}", serde_json::to_string_pretty(&groups)?);
            } else if groups.is_empty() {
                note!(
                    o,
                    "You are not in any group yet. Create one with `alongside group create NAME`."
                );
            } else {
                for g in groups {
                    if g.damaged {
                        say!(
                            o,
                            "{}  (what this device keeps of this group is damaged; `alongside group repair --group {}` mends it)",
                            short(&g.id),
                            short(&g.id)
                        );
                        continue;
                    }
                    say!(
                        o,
                        "{}  {}  ({} members; you are {}, {})",
                        short(&g.id),
                        g.name,
                        g.members,
                        g.me,
                        g.role
                    );
                }
            }
        }
        GroupCommand::Settings { group, history } => {
            let g = v.resolve_group(&group.group)?;
            let since_join = matches!(history, HistoryMode::SinceJoin);
            v.edit(&g, |s| s.set_history_since_join(since_join))?;
            if since_join {
                note!(
                    o,
                    "From now on, people you add will see only what is written after they join. Members already in the group keep seeing everything they saw."
                );
            } else {
                note!(o, "From now on, people you add will see the group's whole history.");
            }
        }
        GroupCommand::Repair { group } => {
            let g = v.resolve_group(&group.group)?;
            let repaired = v.repair_group(&g)?;
            let name = v.session(&g)?.name();
            match repaired.set_aside {
                0 => note!(o, "Nothing in \"{name}\" needed repair."),
                n => note!(
                    o,
                    "Repaired \"{name}\": {n} damaged record(s) set aside, {} document(s) rebuilt from this device's own copies. Anything still missing comes back from members the next time you sync.",
                    repaired.rebuilt
                ),
            }
        }
    }
    Ok(())
}

/// A moment as this device's local date and time.
fn date_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

fn invitations(v: &mut Vault, c: InvitationsCommand, o: &mut Out<'_>) -> Result<()> {
    match c {
        InvitationsCommand::List { group, json } => {
            let g = v.resolve_group(&group.group)?;
            let now = now_ms();
            let list = v.invitations(&g)?;
            let state = |r: &alongside_core::invite::InviteRecord| match () {
                _ if r.used => "used",
                _ if r.revoked => "withdrawn",
                _ if !r.is_open(now) => "expired",
                _ => "open",
            };
            if json {
                let rows: Vec<serde_json::Value> = list
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "id": r.short_id(),
                            "expires_at_ms": r.expires_at_ms,
                            "state": state(r),
                        })
                    })
                    .collect();
                say!(o, "{}", serde_json::to_string_pretty(&rows)?);
            } else if list.is_empty() {
                note!(o, "You have not invited anyone to this group from this device.");
            } else {
                for r in &list {
                    say!(
                        o,
                        "{}  {}  (until {})",
                        r.short_id(),
                        state(r),
                        date_time(r.expires_at_ms)
                    );
                }
            }
        }
        InvitationsCommand::Revoke { group, id, all: _ } => {
            let g = v.resolve_group(&group.group)?;
            match v.revoke_invitations(&g, id.as_deref(), now_ms())? {
                0 => note!(o, "No open invitation was left to withdraw; nothing changed."),
                1 => note!(o, "Withdrawn: that ticket no longer works."),
                n => note!(o, "Withdrawn: those {n} tickets no longer work."),
            }
        }
    }
    Ok(())
}

fn story(v: &mut Vault, c: StoryCommand, o: &mut Out<'_>) -> Result<()> {
    match c {
        StoryCommand::Add {
            group,
            title,
            body,
            body_file,
            warnings,
            no_replies,
        } => {
            let g = v.resolve_group(&group.group)?;
            let body = match (body, body_file) {
                (Some(b), _) => b,
                (None, Some(path)) => std::fs::read_to_string(&path)
                    .with_context(|| format!("could not read the story from {}", path.display()))?,
                (None, None) => bail!("give the story with --body or --body-file"),
            };
            let story = NewStory {
                title,
                body,
                warnings,
                no_replies,
            };
            let id = v.edit(&g, |s| s.add_story(&story, now_ms()))?;
            say!(o, "{id}");
            note!(o, "Your story is saved and will be shared with the group.");
        }
        StoryCommand::List(l) => {
            let g = v.resolve_group(&l.group.group)?;
            let stories = v.session(&g)?.stories();
            print_list(o, &l, &stories, |s| {
                let warn = if s.warnings.is_empty() {
                    String::new()
                } else {
                    format!("  [content warning: {}]", s.warnings.join(", "))
                };
                format!("{}  \"{}\" by {}{warn}", short(&s.id), s.title, s.author.name)
            })?;
        }
        StoryCommand::React { group, story, kind } => {
            let g = v.resolve_group(&group.group)?;
            let id = v.edit(&g, |s| s.react(&story, &kind, now_ms()))?;
            say!(o, "{id}");
        }
        StoryCommand::Reply { group, story, text } => {
            let g = v.resolve_group(&group.group)?;
            let id = v.edit(&g, |s| s.reply(&story, &text, now_ms()))?;
            say!(o, "{id}");
        }
    }
    Ok(())
}

fn parse_halt(raw: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let tag = match part.to_ascii_lowercase().as_str() {
            "h" | "hungry" => "hungry",
            "a" | "angry" => "angry",
            "l" | "lonely" => "lonely",
            "t" | "tired" => "tired",
            _ => bail!("'{part}' is not a HALT tag; use hungry, angry, lonely, tired (or H, A, L, T)"),
        };
        if !out.iter().any(|t| t == tag) {
            out.push(tag.to_string());
        }
    }
    Ok(out)
}

fn goal(v: &mut Vault, c: GoalCommand, o: &mut Out<'_>) -> Result<()> {
    match c {
        GoalCommand::Add {
            group,
            title,
            target,
            share_with,
        } => {
            let g = v.resolve_group(&group.group)?;
            let with = members(v.session(&g)?, &share_with)?;
            let id = v.edit(&g, |s| s.add_goal(&title, target.as_deref(), &with, now_ms()))?;
            say!(o, "{id}");
            if with.is_empty() {
                note!(o, "Goal added. The whole group can see it.");
            } else {
                note!(
                    o,
                    "Goal added. Only you and the {} member(s) you chose can see it.",
                    with.len()
                );
            }
        }
        GoalCommand::CheckIn {
            group,
            goal,
            progress: _,
            setback,
            mood,
            craving,
            halt,
            note,
            date,
        } => {
            let g = v.resolve_group(&group.group)?;
            let now = now_ms();
            let checkin = NewCheckIn {
                date: date.unwrap_or_else(|| alongside_core::model::date_of(now)),
                kind: if setback {
                    CheckInKind::Setback
                } else {
                    CheckInKind::Progress
                },
                mood,
                craving,
                halt: parse_halt(halt.as_deref().unwrap_or(""))?,
                note,
            };
            let id = v.edit(&g, |s| s.check_in(&goal, &checkin, now))?;
            say!(o, "{id}");
            if setback {
                note!(o, "You logged a setback. The days you have built still count.");
            }
        }
        GoalCommand::List(l) => {
            let g = v.resolve_group(&l.group.group)?;
            let goals = v.session(&g)?.goals(now_ms());
            print_list(o, &l, &goals, |goal| {
                format!(
                    "{}  \"{}\" by {}  ({} days in all, longest run {}, {} check-ins)",
                    short(&goal.id),
                    goal.title,
                    goal.author.name,
                    goal.streak.total_days,
                    goal.streak.longest_run,
                    goal.checkins.len()
                )
            })?;
        }
    }
    Ok(())
}

fn meeting(v: &mut Vault, c: MeetingCommand, o: &mut Out<'_>) -> Result<()> {
    match c {
        MeetingCommand::Add {
            group,
            title,
            at,
            place,
            facilitator,
            agenda,
        } => {
            let g = v.resolve_group(&group.group)?;
            let session = v.session(&g)?;
            let facilitator = match facilitator {
                Some(f) => session.find_member(&f)?,
                None => session.me(),
            };
            let m = NewMeeting {
                title,
                at,
                place,
                facilitator: Some(facilitator),
                agenda,
            };
            let id = v.edit(&g, |s| s.add_meeting(&m, now_ms()))?;
            say!(o, "{id}");
        }
        MeetingCommand::Notes { group, meeting, append } => {
            let g = v.resolve_group(&group.group)?;
            v.edit(&g, |s| s.append_meeting_notes(&meeting, &append))?;
            note!(o, "Added to the notes.");
        }
        MeetingCommand::Attend {
            group,
            meeting,
            member,
            absent,
        } => {
            let g = v.resolve_group(&group.group)?;
            let who = resolve_member_or_me(v, &g, member.as_deref())?;
            v.edit(&g, |s| s.set_attendance(&meeting, who, !absent))?;
        }
        MeetingCommand::Action {
            group,
            meeting,
            text,
            owner,
        } => {
            let g = v.resolve_group(&group.group)?;
            let owner = match owner {
                Some(o) => Some(v.session(&g)?.find_member(&o)?),
                None => None,
            };
            let id = v.edit(&g, |s| s.add_action_item(&meeting, &text, owner))?;
            say!(o, "{id}");
        }
        MeetingCommand::ActionDone {
            group,
            meeting,
            action,
            undo,
        } => {
            let g = v.resolve_group(&group.group)?;
            v.edit(&g, |s| s.set_action_done(&meeting, &action, !undo))?;
        }
        MeetingCommand::List(l) => {
            let g = v.resolve_group(&l.group.group)?;
            let meetings = v.session(&g)?.meetings();
            print_list(o, &l, &meetings, |m| {
                format!(
                    "{}  \"{}\" at {}{}",
                    short(&m.id),
                    m.title,
                    m.at,
                    m.place.as_ref().map(|p| format!(", {p}")).unwrap_or_default()
                )
            })?;
        }
    }
    Ok(())
}

fn resolve_member_or_me(v: &mut Vault, g: &GroupId, query: Option<&str>) -> Result<MemberId> {
    let s = v.session(g)?;
    Ok(match query {
        Some(q) => s.find_member(q)?,
        None => s.me(),
    })
}

fn reach_out(v: &mut Vault, a: ReachOutArgs, o: &mut Out<'_>) -> Result<()> {
    match a.action {
        Some(ReachOutCommand::List(l)) => {
            let g = v.resolve_group(&l.group.group)?;
            let list = v.session(&g)?.reach_outs();
            print_list(o, &l, &list, |r| {
                format!(
                    "{}  {}: \"{}\"  ({})",
                    short(&r.id),
                    r.author.name,
                    r.message,
                    if r.answered {
                        "answered"
                    } else {
                        "waiting for a response"
                    }
                )
            })
        }
        Some(ReachOutCommand::Respond { group, reach_out, text }) => {
            let g = v.resolve_group(&group.group)?;
            let id = v.edit(&g, |s| s.respond(&reach_out, &text, now_ms()))?;
            say!(o, "{id}");
            Ok(())
        }
        None => {
            let (Some(group), Some(message)) = (a.group, a.message) else {
                bail!("reaching out needs --group and --message");
            };
            let g = v.resolve_group(&group)?;
            let to = members(v.session(&g)?, &a.to)?;
            let id = v.edit(&g, |s| s.reach_out(&message, &to, now_ms()))?;
            say!(o, "{id}");
            note!(
                o,
                "Your message is saved and will reach the others as soon as their devices connect."
            );
            Ok(())
        }
    }
}

fn agreement(v: &mut Vault, c: AgreementCommand, o: &mut Out<'_>) -> Result<()> {
    match c {
        AgreementCommand::Set { group, text } => {
            let g = v.resolve_group(&group.group)?;
            v.edit(&g, |s| s.set_agreement(&text, now_ms()))?;
            note!(
                o,
                "The agreements are updated. Members will be asked to acknowledge them."
            );
        }
        AgreementCommand::Ack(group) => {
            let g = v.resolve_group(&group.group)?;
            v.edit(&g, |s| s.acknowledge_agreement(now_ms()))?;
            note!(o, "Thank you. You acknowledged the group's agreements.");
        }
        AgreementCommand::Show(l) => {
            let g = v.resolve_group(&l.group.group)?;
            let a: Vec<_> = v.session(&g)?.agreement().into_iter().collect();
            print_list(o, &l, &a, |a| {
                let names: Vec<&str> = a.acknowledged_by.iter().map(|p| p.name.as_str()).collect();
                format!(
                    "{}\n\nAcknowledged by: {}",
                    a.text,
                    if names.is_empty() {
                        "nobody yet".into()
                    } else {
                        names.join(", ")
                    }
                )
            })?;
        }
    }
    Ok(())
}

fn export_group(session: &GroupSession, format: ExportFormat, out: &Path, o: &mut Out<'_>) -> Result<()> {
    if out.exists() {
        bail!(
            "{} already exists; choose a new path so nothing is overwritten",
            out.display()
        );
    }
    let now = now_ms();
    match format {
        ExportFormat::Json => export::write_file(out, export::json(session, now)?.as_bytes())?,
        ExportFormat::Markdown => export::write_file(out, export::markdown(session, now).as_bytes())?,
        ExportFormat::Automerge => export::automerge_dir(session, out)?,
    }
    note!(
        o,
        "Exported to {}. This copy is not encrypted: keep it somewhere safe, or delete it when you are done.",
        out.display()
    );
    Ok(())
}
