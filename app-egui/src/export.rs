//! Exports of what a member can read: JSON, Markdown, or standard Automerge files.
//!
//! Files are written next to their destination under a temporary name and renamed into
//! place, so an interrupted export never leaves a half-written file under the chosen name.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use alongside_core::group::GroupSession;
use anyhow::{Context, Result};
use serde_json::json;

/// The whole readable content of the group as one JSON document.
pub fn json(s: &GroupSession, now_ms: i64) -> Result<String> {
    let value = json!({
        "format": "alongside-export",
        "version": 1,
        "group": { "id": s.id().to_hex(), "name": s.name() },
        "members": s.members(),
        "agreement": s.agreement(),
        "stories": s.stories(),
        "goals": s.goals(now_ms),
        "meetings": s.meetings(),
        "reach_outs": s.reach_outs(),
    });
    Ok(serde_json::to_string_pretty(&value)?)
}

/// The same content as readable Markdown.
pub fn markdown(s: &GroupSession, now_ms: i64) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# {}\n", s.name());
    let _ = writeln!(md, "## Members\n");
    for m in s.members() {
        let _ = writeln!(md, "- {} ({})", m.name, m.role);
    }
    if let Some(a) = s.agreement() {
        let _ = writeln!(md, "\n## Agreements\n\n{}\n", a.text);
    }
    let _ = writeln!(md, "\n## Stories\n");
    for st in s.stories() {
        let _ = writeln!(md, "### {}\n\n*by {}*\n", st.title, st.author.name);
        if !st.warnings.is_empty() {
            let _ = writeln!(md, "> Content warning: {}\n", st.warnings.join(", "));
        }
        let _ = writeln!(md, "{}\n", st.body);
        for r in &st.replies {
            let _ = writeln!(md, "- **{}** replied: {}", r.author.name, r.text);
        }
        if !st.reactions.is_empty() {
            let _ = writeln!(md, "- {} reaction(s) of support", st.reactions.len());
        }
    }
    let _ = writeln!(md, "\n## Goals\n");
    for g in s.goals(now_ms) {
        let _ = writeln!(
            md,
            "### {} ({})\n\n{} days in all; longest run {} days.\n",
            g.title, g.author.name, g.streak.total_days, g.streak.longest_run
        );
        for c in &g.checkins {
            let _ = writeln!(
                md,
                "- {}: {}{}",
                c.date,
                c.kind,
                if c.note.is_empty() {
                    String::new()
                } else {
                    format!(" — {}", c.note)
                }
            );
        }
    }
    let _ = writeln!(md, "\n## Meetings\n");
    for m in s.meetings() {
        let _ = writeln!(md, "### {} ({})\n", m.title, m.at);
        if let Some(p) = &m.place {
            let _ = writeln!(md, "Where: {p}\n");
        }
        if !m.notes.is_empty() {
            let _ = writeln!(md, "{}\n", m.notes);
        }
        for a in &m.actions {
            let _ = writeln!(md, "- [{}] {}", if a.done { "x" } else { " " }, a.text);
        }
    }
    let _ = writeln!(md, "\n## Reach-outs\n");
    for r in s.reach_outs() {
        let _ = writeln!(md, "- {}: {}", r.author.name, r.message);
        for resp in &r.responses {
            let _ = writeln!(md, "  - {}: {}", resp.author.name, resp.text);
        }
    }
    md
}

/// Writes `bytes` to `path` via a temporary file in the same directory.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().context("the export path needs a file name")?;
    let tmp = dir.join(format!(".{}.partial", name.to_string_lossy()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::anyhow!("could not write {}: {e}", path.display())
    })
}

/// A folder with one `.automerge` file per readable document and an `index.json`.
pub fn automerge_dir(s: &GroupSession, out: &Path) -> Result<()> {
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = out.file_name().context("the export path needs a folder name")?;
    let tmp = parent.join(format!(".{}.partial", name.to_string_lossy()));
    let build = || -> Result<()> {
        std::fs::create_dir(&tmp).with_context(|| format!("could not create {}", tmp.display()))?;
        let mut index = Vec::new();
        for (doc, label, bytes) in s.export_documents() {
            let file = format!("{label}.automerge");
            write_file(&tmp.join(&file), &bytes)?;
            index.push(json!({
                "file": file,
                "kind": format!("{:?}", doc.kind).to_lowercase(),
                "document": alongside_core::ids::hex(&doc.to_bytes()),
            }));
        }
        let index = json!({ "format": "alongside-automerge-export", "version": 1,
            "group": { "id": s.id().to_hex(), "name": s.name() }, "documents": index });
        write_file(
            &tmp.join("index.json"),
            serde_json::to_string_pretty(&index)?.as_bytes(),
        )?;
        std::fs::rename(&tmp, out).with_context(|| format!("could not create {}", out.display()))?;
        Ok(())
    };
    build().inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&tmp);
    })
}
